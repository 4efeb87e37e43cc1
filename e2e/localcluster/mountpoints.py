"""Mount targets that do not exist on the host, created and removed with care.

A bind mount needs an existing target, and a pod's mountPath (say
/var/run/secrets/kubernetes.io/serviceaccount) usually does not exist on this
machine. The agent creates the missing directories or file, and removes them
when the last container that needed them is gone. Reference counts, per
cluster slot, live in one locked file under /run/kubetune, because several
clusters on one machine may share a path (removing it under another
cluster's running pod would detach that pod's mount), and because a cluster
killed with SIGKILL must have its share released by the next user of its slot.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

REGISTRY = Path("/run/kubetune/mountpoints.json")
Counts = dict[str, dict[str, int]]  # path -> {owner slot: references}


@contextmanager
def _locked_registry() -> Iterator[Counts]:
    REGISTRY.parent.mkdir(parents=True, exist_ok=True)
    with open(REGISTRY.with_suffix(".lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            counts: Counts = json.loads(REGISTRY.read_text()) if REGISTRY.exists() else {}
        except ValueError:
            counts = {}
        yield counts
        _remove_unused(counts)
        REGISTRY.write_text(json.dumps(counts))


def ensure(target: str, is_dir: bool, owner: int) -> list[str]:
    """Makes target exist (a directory, or a file when not is_dir).

    Returns the created or shared paths that `owner` now holds a reference to.
    """
    path = Path(os.path.realpath(target))
    claimed: list[str] = []
    with _locked_registry() as counts:
        # Looked for under the lock: another pod (or cluster) may be creating the same path right now.
        missing: list[Path] = []
        probe = path
        while not probe.exists():
            missing.append(probe)
            probe = probe.parent
        for item in reversed(missing):  # shallowest first
            if item == path and not is_dir:
                item.touch()
            else:
                item.mkdir()
            counts[str(item)] = {}
        for item in [path, *path.parents]:
            if str(item) in counts:
                refs = counts[str(item)]
                refs[str(owner)] = refs.get(str(owner), 0) + 1
                claimed.append(str(item))
    return claimed


def release(claimed: list[str], owner: int) -> None:
    """Drops owner's references; removes the paths that no one needs any more."""
    with _locked_registry() as counts:
        for item in claimed:
            refs = counts.get(item, {})
            if str(owner) in refs:
                refs[str(owner)] -= 1
                if refs[str(owner)] <= 0:
                    del refs[str(owner)]


def release_owner(owner: int) -> None:
    """Drops every reference of owner: the sweep after a killed cluster."""
    with _locked_registry() as counts:
        for refs in counts.values():
            refs.pop(str(owner), None)


def _remove_unused(counts: Counts) -> None:
    for item in sorted([p for p, refs in counts.items() if not refs], key=len, reverse=True):
        del counts[item]
        p = Path(item)
        # Not empty: something else put files there; leave it.
        with contextlib.suppress(OSError):
            p.rmdir() if p.is_dir() and not p.is_symlink() else p.unlink()


def held_by(owner: int) -> list[str]:
    """Paths that owner still holds a reference to."""
    with _locked_registry() as counts:
        return sorted(p for p, refs in counts.items() if str(owner) in refs)
