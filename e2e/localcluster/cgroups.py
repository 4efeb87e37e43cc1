"""Cgroups under which the nodes' kubelets put their pods, in every hierarchy.

The kubelet's cgroupfs driver needs its cgroupRoot to exist already, in each
cgroup v1 hierarchy (cpu, memory, pids, cpuset, ... and the named systemd one)
and in the unified one. A child cpuset cgroup starts with no CPUs and no
memory nodes and refuses tasks, so each level copies its parent's. Removal
goes deepest first, and only once no task is left, which is what the sweep
guarantees by killing every process it finds in them first.
"""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path

MOUNTINFO = Path("/proc/self/mountinfo")


def hierarchies() -> list[Path]:
    """Mount points of every cgroup (v1) and cgroup2 filesystem."""
    roots = []
    for line in MOUNTINFO.read_text().splitlines():
        left, _, right = line.partition(" - ")
        if right.split(" ", 1)[0] in ("cgroup", "cgroup2"):
            roots.append(Path(left.split()[4]))
    return roots


def create(relative: str) -> None:
    """Makes `relative` (say kubetune/kt0/node-a) in every hierarchy."""
    for root in hierarchies():
        path = root
        for part in Path(relative).parts:
            parent, path = path, path / part
            # Nodes start in parallel and share their parents (kubetune/kt0): another may make one first.
            path.mkdir(exist_ok=True)
            for name in ("cpuset.cpus", "cpuset.mems"):
                if (path / name).exists() and not (path / name).read_text().strip():
                    (path / name).write_text((parent / name).read_text())


def pids(relative: str) -> set[int]:
    """Every task in `relative` or below it, in any hierarchy."""
    found: set[int] = set()
    for root in hierarchies():
        base = root / relative
        if not base.is_dir():
            continue
        for folder, _, _ in os.walk(base):
            with contextlib.suppress(OSError):
                found.update(int(p) for p in (Path(folder) / "cgroup.procs").read_text().split())
    return found


def remove(relative: str, timeout: float = 10.0) -> list[str]:
    """Removes `relative` and everything below it, deepest first; returns what could not go."""
    deadline = time.monotonic() + timeout
    left: list[str] = []
    for root in hierarchies():
        base = root / relative
        if not base.is_dir():
            continue
        folders = sorted((Path(f) for f, _, _ in os.walk(base)), key=lambda p: len(p.parts), reverse=True)
        for folder in folders:
            while True:
                try:
                    folder.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    # EBUSY while a killed task is still exiting.
                    if time.monotonic() > deadline:
                        left.append(str(folder))
                        break
                    time.sleep(0.1)
    return left


def existing(relative: str) -> list[str]:
    return [str(root / relative) for root in hierarchies() if (root / relative).is_dir()]
