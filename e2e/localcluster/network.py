"""Pod networking: one Linux bridge per cluster, one network namespace per pod.

Several clusters may run on one machine at once (several test sessions in one
checkout), so each cluster takes a numbered *slot*, held by an flock for its
lifetime; the slot names its bridge, its /24 and the prefix of every netns and
interface it makes. Whoever takes a slot first sweeps what a killed holder of
that slot left behind, so even a SIGKILLed run cannot leak into the next one.
"""

from __future__ import annotations

import fcntl
import ipaddress
import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

from . import mountpoints

LOCK_DIR = Path("/run/kubetune")
MAX_SLOTS = 200
NETNS_DIR = Path("/run/netns")


def ip(*args: str, check: bool = True, netns: str | None = None) -> subprocess.CompletedProcess[str]:
    """Runs `ip ARGS` (inside `netns` when given)."""
    argv = ["ip", *(("-n", netns) if netns else ()), *args]
    result = subprocess.run(argv, capture_output=True, text=True)
    if check and result.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed: {result.stderr.strip()}")
    return result


@dataclass(frozen=True)
class Slot:
    """A cluster's share of the host network, named by its number."""

    number: int
    lock_fd: int

    @property
    def prefix(self) -> str:
        """Prefix of every netns and interface name of this slot (IFNAMSIZ is 15)."""
        return f"kt{self.number}"

    @property
    def bridge(self) -> str:
        return f"{self.prefix}br"

    @property
    def subnet(self) -> ipaddress.IPv4Network:
        return ipaddress.IPv4Network(f"10.244.{self.number}.0/24")

    @property
    def gateway(self) -> str:
        """The bridge's address: the host as pods see it (hostIP, API server)."""
        return str(self.subnet.network_address + 1)

    def release(self) -> None:
        os.close(self.lock_fd)


def _lock_slot(number: int) -> int | None:
    """The slot's lock file descriptor, held exclusively; None when a running cluster holds it."""
    fd = os.open(LOCK_DIR / f"slot-{number}.lock", os.O_CREAT | os.O_RDWR, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def acquire_slot() -> Slot:
    """Takes the lowest free slot whose /24 is not routed already."""
    LOCK_DIR.mkdir(parents=True, exist_ok=True)
    routes = ip("-4", "route", "show").stdout
    for number in range(MAX_SLOTS):
        fd = _lock_slot(number)
        if fd is None:
            continue
        slot = Slot(number, fd)
        sweep(slot)
        mountpoints.release_owner(number)
        if str(slot.subnet) in routes and not _own_route(slot, routes):
            slot.release()
            continue
        return slot
    raise RuntimeError("no free network slot for a local cluster")


def sweep_free_slots() -> list[str]:
    """Sweeps every slot that no running cluster holds; returns what went."""
    LOCK_DIR.mkdir(parents=True, exist_ok=True)
    removed: list[str] = []
    for number in range(MAX_SLOTS):
        fd = _lock_slot(number)
        if fd is None:
            continue
        removed += sweep(Slot(number, fd))
        mountpoints.release_owner(number)
        os.close(fd)
    return removed


def _own_route(slot: Slot, routes: str) -> bool:
    return any(str(slot.subnet) in line and f"dev {slot.bridge} " in line + " " for line in routes.splitlines())


def sweep(slot: Slot, bridge: bool = True) -> list[str]:
    """Deletes every pod netns and veth of this slot (and its bridge); returns what went."""
    removed: list[str] = []
    for name in list_netns(slot.prefix + "-"):
        ip("netns", "delete", name, check=False)
        removed.append(f"netns {name}")
    pattern = re.compile(rf"^{slot.prefix}(h|p{'|br' if bridge else ''})[0-9]*$")
    for name in list_links("kt"):
        if pattern.match(name):
            ip("link", "delete", name, check=False)
            removed.append(f"link {name}")
    return removed


def list_netns(prefix: str = "kt") -> list[str]:
    """Names of network namespaces under /run/netns that start with prefix."""
    if not NETNS_DIR.is_dir():
        return []
    return sorted(n for n in os.listdir(NETNS_DIR) if n.startswith(prefix))


def list_links(prefix: str = "kt") -> list[str]:
    """Names of host interfaces that start with prefix (veth peers drop the @peer)."""
    names = []
    for line in ip("-o", "link", "show").stdout.splitlines():
        name = line.split(":", 2)[1].strip().split("@")[0]
        if name.startswith(prefix):
            names.append(name)
    # The bridge goes last, after the veths enslaved to it.
    return sorted(names, key=lambda n: n.endswith("br"))


def create_bridge(slot: Slot) -> None:
    """Creates the slot's bridge with the gateway address."""
    ip("link", "add", slot.bridge, "type", "bridge")
    ip("addr", "add", f"{slot.gateway}/{slot.subnet.prefixlen}", "dev", slot.bridge)
    ip("link", "set", slot.bridge, "up")


def delete_bridge(slot: Slot) -> None:
    ip("link", "delete", slot.bridge, check=False)


@dataclass(frozen=True)
class PodNetwork:
    """A pod's network namespace, wired to the bridge by a veth pair."""

    netns: str
    host_if: str
    address: str

    @property
    def netns_path(self) -> Path:
        return NETNS_DIR / self.netns

    @classmethod
    def create(cls, slot: Slot, address: str, pod_key: str) -> PodNetwork:
        """Makes netns kt<slot>-<pod_key> with eth0=address and lo up."""
        host_octet = address.rsplit(".", 1)[1]
        net = cls(netns=f"{slot.prefix}-{pod_key}", host_if=f"{slot.prefix}h{host_octet}", address=address)
        peer = f"{slot.prefix}p{host_octet}"
        try:
            ip("netns", "add", net.netns)
            ip("link", "add", net.host_if, "type", "veth", "peer", "name", peer)
            ip("link", "set", peer, "netns", net.netns)
            ip("link", "set", net.host_if, "master", slot.bridge)
            ip("link", "set", net.host_if, "up")
            ip("link", "set", "lo", "up", netns=net.netns)
            ip("link", "set", peer, "name", "eth0", netns=net.netns)
            ip("addr", "add", f"{address}/{slot.subnet.prefixlen}", "dev", "eth0", netns=net.netns)
            ip("link", "set", "eth0", "up", netns=net.netns)
            ip("route", "add", "default", "via", slot.gateway, netns=net.netns)
        except Exception:
            net.delete()
            raise
        return net

    def delete(self) -> None:
        """Deleting the netns destroys eth0 and with it the host end of the pair."""
        ip("netns", "delete", self.netns, check=False)
        ip("link", "delete", self.host_if, check=False)
