"""A real node: containerd, runc, the CNI bridge, a kubelet and kube-proxy, in the node's netns.

The kubelet is the one built with the control plane (e2e/build.sh); containerd,
runc and the CNI plugins are Debian's packages. Each node has its own network
namespace (network.py), in which its three processes run, so that nodes do not
share a CNI bridge, iptables rules or ports; its own containerd (socket and
state under /run/kubetune/ktN/<node>/, images and snapshots under
/var/lib/kubetune/ktN/<node>/); and its own cgroup root,
/kubetune/ktN/<node>, under which the kubelet makes its QoS and pod cgroups.

What this machine needs of them (and a normal node does not):

- containerd's `restrict_oom_score_adj`: root here may not lower
  oom_score_adj, and runc's default of -998 for the sandbox fails with
  "can't get final child's PID from pipe: EOF";
- `netns_mounts_under_state_dir`, so that the pods' network namespaces are
  mounted under the node's own folder and the sweep finds them;
- the kubelet's `failCgroupV1: false` and the cgroupfs driver: the machine is
  cgroup v1 and runs no systemd to delegate cgroups;
- no image is ever pulled: images are imported from archives (images.py),
  once, into a seeded root that each node's containerd starts on (seeded.py).

GPUs are advertised the documented way for an extended resource without a
device plugin: a JSON patch of the node's status capacity. The kubelet keeps
such resources across its status updates; the node re-applies the patch
after a kubelet restart, which resets them.
"""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from . import cgroups, seeded, sweep
from .api import JSON_PATCH, Api, ApiError
from .binaries import Binaries
from .images import NodeImage, ctr, import_archives
from .kubeconfig import cert_user, write_kubeconfig
from .network import NodeNetwork, Slot
from .pki import ClusterPKI
from .procs import ManagedProcess, wait_until

log = logging.getLogger(__name__)
GPU = "nvidia.com/gpu"
CNI_BIN = "/usr/lib/cni"
Obj = dict[str, Any]


@dataclass(frozen=True)
class NodeSpec:
    """What a test asks of a node.

    Its CPU and memory are the machine's, as a kubelet reports them; `gpus`
    advertises that many `nvidia.com/gpu`; `images=False` skips importing
    kubetune's image (a node that only needs to be scheduled to starts faster).
    """

    name: str
    gpus: int = 0
    max_pods: int = 110
    labels: dict[str, str] = field(default_factory=dict)
    taints: list[Obj] = field(default_factory=list)
    images: bool = True

    @classmethod
    def from_json(cls, raw: Obj) -> NodeSpec:
        return cls(
            name=raw["name"],
            gpus=int(raw.get("gpus", 0)),
            max_pods=int(raw.get("maxPods", 110)),
            labels=dict(raw.get("labels", {})),
            taints=list(raw.get("taints", [])),
            images=bool(raw.get("images", True)),
        )


class Node:
    """One started node of a LocalCluster."""

    def __init__(
        self,
        spec: NodeSpec,
        index: int,
        slot: Slot,
        binaries: Binaries,
        pki: ClusterPKI,
        server: str,
        logs: Path,
        images: list[NodeImage],
    ) -> None:
        self.spec = spec
        self.index = index
        self.slot = slot
        self.binaries = binaries
        self.pki = pki
        self.server = server
        self.logs = logs
        self.images = images
        self.network = NodeNetwork(slot, index, spec.name)
        self.state = slot.state_dir / spec.name
        self.data = slot.data_dir / spec.name
        self.cgroup = f"{slot.cgroup}/{spec.name}"
        self.containerd: ManagedProcess | None = None
        self.kubelet: ManagedProcess | None = None
        self.kube_proxy: ManagedProcess | None = None

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def address(self) -> str:
        return self.network.address

    @property
    def socket(self) -> Path:
        return self.state / "containerd.sock"

    # -- lifecycle -----------------------------------------------------------------

    def start(self, api: Api, timeout: float = 120.0) -> None:
        """Brings the node up and returns once it is Ready (and advertises its GPUs)."""
        started = time.monotonic()
        for folder in (self.state, self.data):
            folder.mkdir(parents=True, exist_ok=True)
        self.network.create()
        cgroups.create(self.cgroup)
        cloned = self._seed_images()
        self._start_containerd()
        if not cloned:
            self._import_images()
        self._write_kubelet_files()
        self.start_kubelet(api, timeout)
        self._start_kube_proxy()
        log.info("node %s ready in %.1fs", self.name, time.monotonic() - started)

    def stop(self) -> list[str]:
        """Stops every process of the node and removes what it made; returns what would not go."""
        for proc in (self.kube_proxy, self.kubelet, self.containerd):
            if proc is not None:
                proc.stop(grace=5)
        self.kube_proxy = self.kubelet = self.containerd = None
        return sweep.sweep_node(self.slot, self.name, self.index)

    def _in_netns(self) -> list[str]:
        return ["nsenter", f"--net={self.network.netns_path}", "--"]

    def _start_containerd(self) -> None:
        config = self.state / "containerd.toml"
        config.write_text(self._containerd_config())
        (self.state / "cni").mkdir(exist_ok=True)
        (self.state / "cni" / "10-kubetune.conflist").write_text(json.dumps(self._cni_config(), indent=2))
        self.containerd = ManagedProcess(
            f"containerd-{self.name}",
            [*self._in_netns(), "containerd", "--config", str(config)],
            self.logs / f"containerd-{self.name}.log",
        )
        proc = self.containerd
        wait_until(
            lambda: not proc.alive() or self._ctr("version", check=False).returncode == 0,
            30,
            what=f"containerd of node {self.name}",
        )
        if not proc.alive():
            raise RuntimeError(f"containerd of node {self.name} exited:\n{proc.tail()}")

    def _containerd_config(self) -> str:
        cri = "io.containerd.grpc.v1.cri"
        runc_options = {"Root": str(self.state / "runc"), "SystemdCgroup": False, "BinaryName": "runc"}
        config = {
            "version": 2,
            "root": str(self.data / "containerd"),
            "state": str(self.state / "containerd"),
            "oom_score": 0,
            "grpc": {"address": str(self.socket)},
            "ttrpc": {"address": str(self.state / "containerd.sock.ttrpc")},
            "debug": {"address": "", "level": "info"},
            "metrics": {"address": ""},
            # Plugins that would reach for the host's own folders or services.
            "disabled_plugins": ["io.containerd.internal.v1.tracing", "io.containerd.tracing.processor.v1.otlp"],
            "plugins": {
                cri: {
                    "sandbox_image": self.binaries.pause_image,
                    "restrict_oom_score_adj": True,
                    "netns_mounts_under_state_dir": True,
                    "disable_apparmor": True,
                    "enable_selinux": False,
                    "disable_cgroup": False,
                    "enable_unprivileged_ports": True,
                    "enable_unprivileged_icmp": True,
                    "max_container_log_line_size": 16384,
                    "containerd": {
                        "snapshotter": "overlayfs",
                        "default_runtime_name": "runc",
                        "runtimes": {"runc": {"runtime_type": "io.containerd.runc.v2", "options": runc_options}},
                    },
                    "cni": {"bin_dir": CNI_BIN, "conf_dir": str(self.state / "cni"), "max_conf_num": 1},
                    "registry": {"config_path": ""},
                },
                "io.containerd.internal.v1.opt": {"path": str(self.data / "opt")},
            },
        }
        return _toml(config)

    def _cni_config(self) -> Obj:
        return {
            "cniVersion": "1.0.0",
            "name": "kubetune",
            "plugins": [
                {
                    "type": "bridge",
                    "bridge": "cni0",
                    "isGateway": True,
                    "ipMasq": False,
                    "hairpinMode": True,
                    "ipam": {
                        "type": "host-local",
                        "ranges": [[{"subnet": self.network.pod_subnet}]],
                        "routes": [{"dst": "0.0.0.0/0"}],
                        "dataDir": str(self.state / "ipam"),
                    },
                },
                {"type": "portmap", "capabilities": {"portMappings": True}},
            ],
        }

    def _ctr(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return ctr(self.socket, *args, check=check)

    def _archives(self) -> list[NodeImage]:
        archives = [NodeImage(self.binaries.pause_archive, self.binaries.pause_image)]
        return archives + self.images if self.spec.images else archives

    def _seed_images(self) -> bool:
        """Starts containerd's root as a clone of the seeded root of this node's images (seeded.py).

        False, and the node imports its images itself, where that cannot be done (no hard links).
        """
        target = self.data / "containerd"
        if target.exists():
            return False
        try:
            seeded.clone(seeded.seeded_root(self._archives(), self.binaries.pause_image, self.logs), target)
        except (OSError, RuntimeError, subprocess.SubprocessError) as exc:
            log.warning("node %s imports its images itself: %s", self.name, exc)
            shutil.rmtree(target, ignore_errors=True)
            return False
        return True

    def _import_images(self) -> None:
        import_archives(self.socket, self._archives(), self.binaries.pause_image)

    def _write_kubelet_files(self) -> None:
        client, serving = self.pki.node(self.name, self.address)
        self.kubeconfig = write_kubeconfig(
            self.state / "kubelet.kubeconfig", self.server, self.pki.ca_cert, cert_user(client.cert, client.key)
        )
        self.proxy_kubeconfig = write_kubeconfig(
            self.state / "kube-proxy.kubeconfig",
            self.server,
            self.pki.ca_cert,
            cert_user(self.pki.kube_proxy.cert, self.pki.kube_proxy.key),
        )
        config = {
            "apiVersion": "kubelet.config.k8s.io/v1beta1",
            "kind": "KubeletConfiguration",
            "address": self.address,
            "port": 10250,
            "readOnlyPort": 0,
            "healthzBindAddress": "127.0.0.1",
            "healthzPort": 10248,
            "authentication": {
                "anonymous": {"enabled": False},
                "webhook": {"enabled": True},
                "x509": {"clientCAFile": str(self.pki.ca_cert)},
            },
            "authorization": {"mode": "Webhook"},
            "tlsCertFile": str(serving.cert),
            "tlsPrivateKeyFile": str(serving.key),
            "containerRuntimeEndpoint": f"unix://{self.socket}",
            "cgroupDriver": "cgroupfs",
            "cgroupRoot": f"/{self.cgroup}",
            "failCgroupV1": False,
            "failSwapOn": False,
            "maxPods": self.spec.max_pods,
            "podLogsDir": str(self.data / "pod-logs"),
            "imageGCHighThresholdPercent": 100,
            "imageGCLowThresholdPercent": 99,
            # Evict nothing for a full disk or memory of the shared test machine.
            "evictionHard": {"memory.available": "1Mi", "nodefs.available": "0%", "imagefs.available": "0%"},
            "nodeStatusUpdateFrequency": "5s",
            # Posted when it changes, else once a minute: set alone, the update frequency above would also
            # make the kubelet write its whole Node status every 5 s (the Lease is the heartbeat).
            "nodeStatusReportFrequency": "1m",
            "nodeLeaseDurationSeconds": 20,
            "syncFrequency": "10s",
            "serializeImagePulls": False,
            "resolvConf": "/etc/resolv.conf",
            "clusterDomain": "cluster.local",
            # No cluster DNS runs. Without a clusterDNS the kubelet writes a MissingClusterDNS warning on
            # every sync of every pod (e2e/README.md); the node's own address, where nothing listens on
            # port 53, refuses a lookup at once.
            "clusterDNS": [self.address],
            "shutdownGracePeriod": "0s",
            "containerLogMaxSize": "10Mi",
            "enforceNodeAllocatable": ["pods"],
        }
        self.kubelet_config = self.state / "kubelet.yaml"
        self.kubelet_config.write_text(yaml.safe_dump(config))
        proxy = {
            "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
            "kind": "KubeProxyConfiguration",
            "clientConnection": {"kubeconfig": str(self.proxy_kubeconfig)},
            "hostnameOverride": self.name,
            "mode": "iptables",
            "clusterCIDR": str(self.slot.network),
            "bindAddress": self.address,
            "healthzBindAddress": "127.0.0.1:10256",
            "metricsBindAddress": "127.0.0.1:10249",
            # 0: leave the machine's conntrack settings alone (they are not per netns).
            "conntrack": {"maxPerCore": 0, "min": 0, "tcpEstablishedTimeout": "0s", "tcpCloseWaitTimeout": "0s"},
        }
        self.proxy_config = self.state / "kube-proxy.yaml"
        self.proxy_config.write_text(yaml.safe_dump(proxy))

    def _kubelet_argv(self) -> list[str]:
        argv = [
            *self._in_netns(),
            str(self.binaries.kubelet),
            f"--config={self.kubelet_config}",
            f"--kubeconfig={self.kubeconfig}",
            f"--root-dir={self.data / 'kubelet'}",
            f"--cert-dir={self.state / 'kubelet-pki'}",
            f"--hostname-override={self.name}",
            f"--node-ip={self.address}",
            "--v=1",
        ]
        if self.spec.labels:
            argv.append("--node-labels=" + ",".join(f"{k}={v}" for k, v in sorted(self.spec.labels.items())))
        if self.spec.taints:
            argv.append(
                "--register-with-taints="
                + ",".join(f"{t['key']}={t.get('value', '')}:{t['effect']}" for t in self.spec.taints)
            )
        return argv

    def start_kubelet(self, api: Api, timeout: float = 120.0) -> None:
        """Starts (or restarts) the kubelet and waits until the node is Ready."""
        self.kubelet = ManagedProcess(
            f"kubelet-{self.name}", self._kubelet_argv(), self.logs / f"kubelet-{self.name}.log"
        )
        proc = self.kubelet
        wait_until(lambda: not proc.alive() or _ready(api, self.name), timeout, what=f"node {self.name} Ready")
        if not proc.alive():
            raise RuntimeError(f"kubelet of node {self.name} exited:\n{proc.tail()}")
        if self.spec.gpus:
            self.advertise_gpus(api)

    def stop_kubelet(self) -> None:
        """SIGKILLs the kubelet, as a crashed or partitioned kubelet: the containers run on."""
        if self.kubelet is not None:
            self.kubelet.kill()
            self.kubelet = None

    def advertise_gpus(self, api: Api) -> None:
        """Patches `nvidia.com/gpu` into the node's status capacity; waits until allocatable has it."""
        path = "/status/capacity/" + GPU.replace("/", "~1")
        patch = [{"op": "add", "path": path, "value": str(self.spec.gpus)}]
        api.patch(f"/api/v1/nodes/{self.name}/status", patch, JSON_PATCH)
        wait_until(
            lambda: (
                api.get(f"/api/v1/nodes/{self.name}")["status"].get("allocatable", {}).get(GPU) == str(self.spec.gpus)
            ),
            30,
            what=f"node {self.name} to have {self.spec.gpus} allocatable {GPU}",
        )

    def _start_kube_proxy(self) -> None:
        self.kube_proxy = ManagedProcess(
            f"kube-proxy-{self.name}",
            [*self._in_netns(), str(self.binaries.kube_proxy), f"--config={self.proxy_config}", "--v=1"],
            self.logs / f"kube-proxy-{self.name}.log",
        )

    # -- faults ----------------------------------------------------------------------

    def kill_container(self, container_id: str, signal: str = "SIGKILL") -> None:
        """Kills one container's process through the runtime (the kubelet sees it exit)."""
        self._ctr("tasks", "kill", "--signal", signal, container_id)


def _ready(api: Api, name: str) -> bool:
    try:
        node = api.get(f"/api/v1/nodes/{name}")
    except (ApiError, OSError):
        return False
    conditions = node.get("status", {}).get("conditions", [])
    ready = any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)
    taints = node.get("spec", {}).get("taints") or []
    return ready and not any(t["key"].startswith("node.kubernetes.io/") for t in taints)


def _toml(config: Obj) -> str:
    """The small subset of TOML containerd's config needs: tables, strings, numbers, booleans, lists."""
    lines: list[str] = []

    def value(v: object) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, int):
            return str(v)
        if isinstance(v, list):
            return "[" + ", ".join(value(x) for x in v) + "]"
        return json.dumps(str(v))

    def table(prefix: list[str], body: Obj) -> None:
        scalars = {k: v for k, v in body.items() if not isinstance(v, dict)}
        if prefix:
            lines.append("[" + ".".join(json.dumps(p) if "." in p else p for p in prefix) + "]")
        lines.extend(f"{k} = {value(v)}" for k, v in scalars.items())
        lines.append("")
        for key, sub in body.items():
            if isinstance(sub, dict):
                table([*prefix, key], sub)

    table([], config)
    return "\n".join(lines)
