"""The cluster's network: one host bridge per cluster, one network namespace per node.

Several clusters may run on one machine at once (several test sessions in one
checkout), so each cluster takes a numbered *slot*, held by an flock for its
lifetime. Slot N owns 10.(100+N).0.0/16 and every name that starts with ktN:

- the host bridge ktNbr, at 10.(100+N).0.1: the host as nodes see it, where
  the API server listens;
- node i's network namespace ktN-<node>, whose eth0 (10.(100+N).0.(10+i)) is
  the far end of the veth ktNn<i> on the bridge. The node's kubelet,
  containerd and kube-proxy run in it, so each node has its own CNI bridge
  (cni0), its own iptables (kube-proxy's Service rules) and its own port 10250;
- node i's pods, in 10.(100+N).(i+1).0/24 behind the node's cni0, routed from
  the host through the node's eth0. The host forwards between nodes, so every
  pod reaches every pod and the API server, and the host reaches every pod.

Whoever takes a slot first sweeps what a killed holder left (sweep.py), so even
a SIGKILLed run cannot leak into the next one.
"""

from __future__ import annotations

import fcntl
import ipaddress
import os
import re
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

LOCK_DIR = Path("/run/kubetune")
MAX_SLOTS = 100
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
    """A cluster's share of the host: its addresses, names and folders, named by its number."""

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
    def network(self) -> ipaddress.IPv4Network:
        """Everything of this slot: nodes in .0.0/24, node i's pods in .(i+1).0/24."""
        return ipaddress.IPv4Network(f"10.{100 + self.number}.0.0/16")

    @property
    def gateway(self) -> str:
        """The bridge's address: the host as nodes and pods see it (the API server listens here)."""
        return str(self.network.network_address + 1)

    def node_ip(self, index: int) -> str:
        return str(self.network.network_address + 10 + index)

    def pod_subnet(self, index: int) -> str:
        return f"10.{100 + self.number}.{index + 1}.0/24"

    def netns(self, node: str) -> str:
        return f"{self.prefix}-{node}"

    @property
    def state_dir(self) -> Path:
        """Sockets and runtime state of this slot's nodes (sweep.py removes it)."""
        return LOCK_DIR / self.prefix

    @property
    def data_dir(self) -> Path:
        """Disk state of this slot's nodes: containerd's images, kubelet's pods."""
        return Path("/var/lib/kubetune") / self.prefix

    @property
    def cgroup(self) -> str:
        """The cgroup (relative to each hierarchy's root) under which every node's pods run."""
        return f"kubetune/{self.prefix}"

    def release(self) -> None:
        os.close(self.lock_fd)


def lock_slot(number: int) -> int | None:
    """The slot's lock file descriptor, held exclusively; None when a running cluster holds it."""
    fd = os.open(LOCK_DIR / f"slot-{number}.lock", os.O_CREAT | os.O_RDWR, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def acquire_slot(sweeper: Callable[[Slot], list[str]]) -> Slot:
    """Takes the lowest free slot whose addresses nothing else routes, after sweeping it."""
    LOCK_DIR.mkdir(parents=True, exist_ok=True)
    for number in range(MAX_SLOTS):
        fd = lock_slot(number)
        if fd is None:
            continue
        slot = Slot(number, fd)
        sweeper(slot)
        if _routed_elsewhere(slot):
            slot.release()
            continue
        return slot
    raise RuntimeError("no free network slot for a local cluster")


def _routed_elsewhere(slot: Slot) -> bool:
    """Whether a route into the slot's /16 exists that is not through its own bridge."""
    for line in ip("-4", "route", "show").stdout.splitlines():
        dest = line.split()[0]
        if dest == "default" or ("/" not in dest and not dest[0].isdigit()):
            continue
        try:
            net = ipaddress.IPv4Network(dest if "/" in dest else f"{dest}/32", strict=False)
        except ValueError:
            continue
        if net.overlaps(slot.network) and f"dev {slot.bridge} " not in line + " ":
            return True
    return False


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


def slot_links(slot: Slot) -> list[str]:
    pattern = re.compile(rf"^{slot.prefix}(n[0-9]+|br)$")
    return [n for n in list_links(slot.prefix) if pattern.match(n)]


def sweep(slot: Slot) -> list[str]:
    """Deletes the slot's node namespaces, veths and bridge; returns what went."""
    removed: list[str] = []
    for name in list_netns(slot.prefix + "-"):
        ip("netns", "delete", name, check=False)
        removed.append(f"netns {name}")
    for name in slot_links(slot):
        ip("link", "delete", name, check=False)
        removed.append(f"link {name}")
    return removed


def _sysctl(path: str, value: str, netns: str | None = None) -> None:
    if netns is None:
        Path("/proc/sys", path).write_text(value)
    else:
        subprocess.run(
            ["nsenter", f"--net={NETNS_DIR / netns}", "sh", "-c", f"echo {value} > /proc/sys/{path}"], check=True
        )


def create_bridge(slot: Slot) -> None:
    """Creates the slot's bridge with the gateway address, and lets the host route between nodes."""
    ip("link", "add", slot.bridge, "type", "bridge")
    ip("addr", "add", f"{slot.gateway}/24", "dev", slot.bridge)
    ip("link", "set", slot.bridge, "up")
    _sysctl("net/ipv4/ip_forward", "1")


@dataclass(frozen=True)
class NodeNetwork:
    """A node's network namespace, on the slot's bridge, with a route to its pods."""

    slot: Slot
    index: int
    name: str

    @property
    def netns(self) -> str:
        return self.slot.netns(self.name)

    @property
    def netns_path(self) -> Path:
        return NETNS_DIR / self.netns

    @property
    def address(self) -> str:
        return self.slot.node_ip(self.index)

    @property
    def pod_subnet(self) -> str:
        return self.slot.pod_subnet(self.index)

    @property
    def host_if(self) -> str:
        return f"{self.slot.prefix}n{self.index}"

    def create(self) -> None:
        """Makes the namespace with eth0 and lo up, a default route to the host, and forwarding on."""
        peer = f"{self.slot.prefix}p{self.index}"
        try:
            ip("netns", "add", self.netns)
            ip("link", "add", self.host_if, "type", "veth", "peer", "name", peer)
            ip("link", "set", peer, "netns", self.netns)
            ip("link", "set", self.host_if, "master", self.slot.bridge)
            ip("link", "set", self.host_if, "up")
            ip("link", "set", "lo", "up", netns=self.netns)
            ip("link", "set", peer, "name", "eth0", netns=self.netns)
            ip("addr", "add", f"{self.address}/24", "dev", "eth0", netns=self.netns)
            ip("link", "set", "eth0", "up", netns=self.netns)
            ip("route", "add", "default", "via", self.slot.gateway, netns=self.netns)
            ip("route", "replace", self.pod_subnet, "via", self.address, "dev", self.slot.bridge)
            # The node routes between its pods and the world; kube-proxy's DNAT of
            # Service addresses needs localnet routing for NodePorts on loopback.
            _sysctl("net/ipv4/ip_forward", "1", self.netns)
            _sysctl("net/ipv4/conf/all/route_localnet", "1", self.netns)
            # The node's address is its pods' clusterDNS, where nothing answers (node.py): the kernel's
            # limit of one ICMP error a second per peer would leave most lookups to the resolver's 5 s timeout.
            _sysctl("net/ipv4/icmp_ratelimit", "0", self.netns)
        except Exception:
            self.delete()
            raise

    def delete(self) -> None:
        """Deleting the netns destroys eth0 and with it the host end of the pair (and the route)."""
        ip("route", "delete", self.pod_subnet, check=False)
        ip("netns", "delete", self.netns, check=False)
        ip("link", "delete", self.host_if, check=False)
