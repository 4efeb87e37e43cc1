"""Removes everything a cluster slot (or one node of it) holds on the host.

What a node leaves when its processes die uncleanly: containerd's shims (which
daemonize, so no parent's death reaches them) and the containers under them,
overlay and tmpfs mounts, pod network namespaces, cgroups, the node's
namespace and veth, and its folders. Everything is found by name: every
process of a node names the node's folder (`/run/kubetune/ktN/<node>/` or
`/var/lib/kubetune/ktN/<node>/`) on its command line or runs in the node's
cgroup, every mount lies below those folders. So the sweep needs no record
of what was started, and works after a SIGKILL as well as after a clean stop.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import time
from pathlib import Path

from . import cgroups, mounts, network
from .network import Slot


def processes_naming(*markers: str) -> dict[int, str]:
    """PID -> command line of every process whose command line contains a marker."""
    wanted = [m.encode() for m in markers]
    found: dict[int, str] = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if int(pid) != os.getpid() and any(m in cmdline for m in wanted):
            found[int(pid)] = cmdline.replace(b"\0", b" ").decode(errors="replace").strip()
    return found


def _kill_all(pids: set[int], timeout: float = 10.0) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(Path(f"/proc/{p}").exists() and not _zombie(p) for p in pids):
        time.sleep(0.05)


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return False


def _markers(slot: Slot, node: str | None) -> list[str]:
    tail = f"{node}/" if node else ""
    return [f"{slot.state_dir}/{tail}", f"{slot.data_dir}/{tail}"]


def kill_processes(slot: Slot, node: str | None = None) -> None:
    """SIGKILLs the node's (or slot's) processes: components and shims by name, containers by cgroup.

    Repeated, because a shim killed mid-start can still have forked a child.
    """
    cgroup = f"{slot.cgroup}/{node}" if node else slot.cgroup
    for _ in range(3):
        pids = set(processes_naming(*_markers(slot, node))) | cgroups.pids(cgroup)
        if not pids:
            return
        _kill_all(pids)


def sweep_node(slot: Slot, node: str, index: int | None = None) -> list[str]:
    """Removes one node: its processes, mounts, cgroups, folders and (given its index) its network."""
    kill_processes(slot, node)
    left = [f"mount {m}" for m in mounts.detach(slot.state_dir / node, slot.data_dir / node)]
    left += [f"cgroup {c}" for c in cgroups.remove(f"{slot.cgroup}/{node}")]
    for folder in (slot.state_dir / node, slot.data_dir / node):
        shutil.rmtree(folder, ignore_errors=True)
    if index is not None:
        network.NodeNetwork(slot, index, node).delete()
    return left


def sweep_slot(slot: Slot) -> list[str]:
    """Removes everything of the slot; returns what it found to remove (empty: it was clean)."""
    found = leftovers(slot)
    kill_processes(slot)
    mounts.detach(slot.state_dir, slot.data_dir)
    cgroups.remove(slot.cgroup)
    network.sweep(slot)
    for folder in (slot.state_dir, slot.data_dir):
        shutil.rmtree(folder, ignore_errors=True)
    return found


def leftovers(slot: Slot, workdir: Path | None = None) -> list[str]:
    """What of the slot (and of the control plane run from `workdir`) still exists, removing nothing."""
    markers = _markers(slot, None) + ([str(workdir) + "/"] if workdir else [])
    found = [f"process {pid}: {cmd[:160]}" for pid, cmd in processes_naming(*markers).items()]
    found += [f"cgroup task {pid}" for pid in cgroups.pids(slot.cgroup)]
    found += [f"mount {m}" for m in mounts.under(slot.state_dir, slot.data_dir)]
    found += [f"cgroup {c}" for c in cgroups.existing(slot.cgroup)]
    found += [f"netns {n}" for n in network.list_netns(slot.prefix + "-")]
    found += [f"link {n}" for n in network.slot_links(slot)]
    found += [f"folder {f}" for f in (slot.state_dir, slot.data_dir) if f.exists()]
    return found


def sweep_free_slots() -> list[str]:
    """Sweeps every slot that no running cluster holds; returns what went."""
    network.LOCK_DIR.mkdir(parents=True, exist_ok=True)
    removed: list[str] = []
    for number in range(network.MAX_SLOTS):
        fd = network.lock_slot(number)
        if fd is None:
            continue
        removed += sweep_slot(Slot(number, fd))
        os.close(fd)
    return removed
