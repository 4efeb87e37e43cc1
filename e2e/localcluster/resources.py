"""`kubectl get -o json` without a kubectl process: kinds resolved by API discovery.

Why: the tests poll the cluster (a tuning job's status, a trial's pods) every
half second, and each kubectl is a Go process start, a discovery cache read and
a TLS handshake. On CI's two cores those polls were about a seventh of all the
CPU the suite used (process accounting, 2,950 kubectl runs). Reads go over the
harness's own REST client instead; what kubectl prints is kept: a list is
`{"kind": "List", "items": [...]}` with each item's apiVersion and kind set.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from .api import Api, ApiError, Obj


def _base(group_version: str) -> str:
    """Where a group version is served: the core group under /api, every other under /apis."""
    return "/api/v1" if group_version == "v1" else f"/apis/{group_version}"


@dataclass(frozen=True)
class Resource:
    """Where one kind of object is served."""

    group_version: str  # "v1", "batch/v1"
    plural: str
    kind: str
    namespaced: bool

    def path(self, namespace: str | None, name: str = "") -> str:
        base = _base(self.group_version)
        scope = f"/namespaces/{namespace}" if self.namespaced and namespace else ""
        return f"{base}{scope}/{self.plural}" + (f"/{name}" if name else "")


class Resources:
    """The names kubectl accepts for a kind (plural, singular, short names, Kind, name.group), from discovery.

    Discovery is read once and again whenever a name is unknown, since CRDs and
    add-ons (Kueue, JobSet) are installed while the session runs. Core names win
    over groups' ("events" is v1, not events.k8s.io), as in kubectl.
    """

    def __init__(self, api: Api) -> None:
        self._api = api
        self._lock = threading.Lock()
        self._names: dict[str, Resource] = {}

    def resolve(self, name: str) -> Resource:
        key = name.lower()
        with self._lock:
            if key not in self._names:
                self._names = self._discover()
            if key not in self._names:
                raise KeyError(f"the server serves no resource named {name!r}")
            return self._names[key]

    def _discover(self) -> dict[str, Resource]:
        names: dict[str, Resource] = {}
        versions = ["v1"] + [
            group["preferredVersion"]["groupVersion"] for group in self._api.get("/apis").get("groups", [])
        ]
        for group_version in versions:
            try:
                listing = self._api.get(_base(group_version))
            except ApiError as exc:
                if exc.status in (404, 503):  # an aggregated API that is not up (yet): skip it
                    continue
                raise
            group = group_version.split("/")[0] if "/" in group_version else ""
            for entry in listing.get("resources", []):
                if "/" in entry["name"]:  # a subresource (pods/log, jobs/status)
                    continue
                resource = Resource(group_version, entry["name"], entry["kind"], bool(entry["namespaced"]))
                aliases = [entry["name"], entry.get("singularName") or "", entry["kind"], *entry.get("shortNames", [])]
                for alias in filter(None, aliases):
                    names.setdefault(alias.lower(), resource)
                    if group:
                        names.setdefault(f"{alias.lower()}.{group}", resource)
        return names


def get_json(
    api: Api, resources: Resources, kind: str, name: str, namespace: str | None, selector: str, all_namespaces: bool
) -> Obj:
    """One object, or the list of a kind, shaped as kubectl's JSON output.

    As in kubectl, no namespace means "default" for a namespaced kind, unless all namespaces are asked for.
    """
    resource = resources.resolve(kind)
    where = None if all_namespaces and not name else (namespace or "default")
    if name:
        return api.get(resource.path(where, name))
    answer = api.get(resource.path(where), **({"labelSelector": selector} if selector else {}))
    api_version = resource.group_version
    items = [{"apiVersion": api_version, "kind": resource.kind, **item} for item in answer.get("items", [])]
    return {"apiVersion": "v1", "kind": "List", "items": items, "metadata": {"resourceVersion": ""}}
