"""Mounts the nodes leave on the host, found by path and detached deepest first.

The kubelet mounts volumes (tmpfs for Secrets and projected tokens, binds for
emptyDirs) and containerd mounts each container's overlay root filesystem and
each pod's network namespace, all in the host's mount namespace and all below
the slot's folders. Teardown finds them in /proc/self/mountinfo rather than
asking components that may already be dead.
"""

from __future__ import annotations

import ctypes
import os
from pathlib import Path

MNT_DETACH = 2
_libc = ctypes.CDLL(None, use_errno=True)


def _unescape(field: str) -> str:
    # mountinfo escapes space, tab, newline and backslash as octal.
    return field.encode().decode("unicode_escape")


def under(*prefixes: Path) -> list[str]:
    """Mount points at or below any of the prefixes, deepest first."""
    roots = [str(p).rstrip("/") for p in prefixes]
    found = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = _unescape(line.split()[4])
        if any(point == r or point.startswith(r + "/") for r in roots):
            found.append(point)
    return sorted(set(found), key=lambda p: p.count("/"), reverse=True)


def detach(*prefixes: Path) -> list[str]:
    """Lazily unmounts everything below the prefixes (repeatedly: mounts stack); returns what stays."""
    for _ in range(5):
        points = under(*prefixes)
        if not points:
            return []
        for point in points:
            _libc.umount2(os.fsencode(point), MNT_DETACH)
    return under(*prefixes)
