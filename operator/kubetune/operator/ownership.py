"""What the operator may act on: only objects controlled by the object it serves, by UID.

Labels and names are claims anyone who may create a Job in the namespace can
make; an ownerReference with `controller: true` and the owner's UID is what
the API server and the garbage collector go by, so it is what the operator goes
by too. A Job labelled as a trial of a tuning job, or named like one, but not
controlled by that tuning job's UID, is never read into its history, scraped,
patched or suspended; a pod is a trial's pod only if that trial's Job controls it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any


def controller_uid(obj: Mapping[str, Any]) -> str | None:
    """The UID of the object's controller (the ownerReference with controller: true), if any."""
    for ref in (obj.get("metadata") or {}).get("ownerReferences") or []:
        if isinstance(ref, Mapping) and ref.get("controller") is True:
            uid = ref.get("uid")
            return str(uid) if uid else None
    return None


def controlled_by(obj: Mapping[str, Any], owner_uid: str) -> bool:
    return bool(owner_uid) and controller_uid(obj) == owner_uid


def only_controlled_by(objects: Iterable[Mapping[str, Any]], owner_uid: str) -> list[Mapping[str, Any]]:
    return [o for o in objects if controlled_by(o, owner_uid)]
