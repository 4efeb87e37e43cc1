"""LocalCluster: a whole cluster on this machine, started and torn down as one.

Order of start: network slot and bridge (the API server listens on the
bridge's address, which its certificate must name), PKI, etcd,
kube-apiserver, kube-controller-manager, kube-scheduler, then the nodes
(node.py), in parallel. Teardown stops the nodes, then the control plane, then
sweeps the slot (sweep.py), so it is complete even when a step failed half-way.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from . import network, sweep
from .addons import JobSet, Kueue, addons
from .api import Api, Obj
from .binaries import Binaries
from .controlplane import SERVICE_ACCOUNT_ISSUER, ControlPlane
from .images import KUBETUNE_IMAGE, NodeImage, kubetune_image
from .kubeconfig import token_user, write_kubeconfig
from .node import Node, NodeSpec
from .pki import ClusterPKI
from .procs import run_cli
from .resources import Resources, get_json

log = logging.getLogger(__name__)

DEFAULT_NODES = (
    NodeSpec("node-cpu-0"),
    NodeSpec("node-gpu-0", gpus=1, labels={"nvidia.com/gpu.present": "true"}),
)


@dataclass
class ClusterConfig:
    """How to start a LocalCluster."""

    nodes: tuple[NodeSpec, ...] = DEFAULT_NODES
    name: str = "kubetune-e2e"
    #: Where logs, certificates and etcd's data go; a fresh temp dir when None.
    workdir: Path | None = None
    #: Keep the workdir after teardown (to read the component logs).
    keep_workdir: bool = field(default_factory=lambda: os.environ.get("KUBETUNE_E2E_KEEP") == "1")


class LocalCluster:
    """A running local cluster; use as a context manager."""

    local = True

    def __init__(self, config: ClusterConfig | None = None) -> None:
        self.config = config or ClusterConfig()
        self.binaries = Binaries.locate()
        needs_image = any(n.images for n in self.config.nodes)
        self._image: NodeImage | None = kubetune_image() if needs_image else None
        self.workdir = self.config.workdir or Path(tempfile.mkdtemp(prefix="kubetune-e2e-"))
        self.slot: network.Slot | None = None
        self.pki: ClusterPKI | None = None
        self.control_plane: ControlPlane | None = None
        self.nodes: dict[str, Node] = {}
        self._nodes_lock = threading.Lock()
        self._kueue, self._jobset = addons()
        self._reads: tuple[Api, Resources] | None = None
        #: What stop() found still there after teardown (empty when clean).
        self.left_over: list[str] = []

    #: The image built from this checkout (`make image`): what trials, the sidecar and the operator run.
    image = KUBETUNE_IMAGE

    # -- lifecycle -------------------------------------------------------------

    def __enter__(self) -> LocalCluster:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def start(self, timeout: float = 180.0) -> None:
        started = time.monotonic()
        self._reads = None  # a new control plane: new address and credentials
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.slot = network.acquire_slot(sweep.sweep_slot)
        network.create_bridge(self.slot)
        self.pki = ClusterPKI.create(self.workdir / "pki", ["127.0.0.1", self.slot.gateway, "10.96.0.1"])
        self.control_plane = ControlPlane(self.binaries, self.workdir, self.pki, self.slot.gateway)
        self.control_plane.start(timeout)
        with ThreadPoolExecutor(max_workers=len(self.config.nodes) or 1) as pool:
            for future in [pool.submit(self.add_node, spec, timeout) for spec in self.config.nodes]:
                future.result()
        log.info("local cluster ready in %.1fs: KUBECONFIG=%s", time.monotonic() - started, self.kubeconfig)

    def stop(self) -> None:
        """Tears everything down; safe to call twice and after a failed start."""
        api = self.api if self.control_plane is not None else None
        for addon in (self._kueue, self._jobset):
            addon.stop(api)
        for node in list(self.nodes.values()):
            node.stop()
        self.nodes.clear()
        if self.control_plane is not None:
            self.control_plane.stop()
            self.control_plane = None
        if self.slot is not None:
            sweep.sweep_slot(self.slot)
            self.left_over = self.leftovers()
            self.slot.release()
            self.slot = None
        if not self.config.keep_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def leftovers(self) -> list[str]:
        """What of this cluster still exists: processes, cgroups, mounts, netns, interfaces, folders."""
        assert self.slot is not None
        return sweep.leftovers(self.slot, self.workdir)

    # -- nodes -----------------------------------------------------------------

    def add_node(self, spec: NodeSpec, timeout: float = 180.0) -> Node:
        """Starts a node (containerd, kubelet, kube-proxy) while the cluster runs; returns once it is Ready."""
        assert self.slot is not None and self.pki is not None and self.control_plane is not None
        with self._nodes_lock:
            if spec.name in self.nodes:
                raise ValueError(f"node {spec.name} exists already")
            used = {n.index for n in self.nodes.values()}
            index = next(i for i in range(250) if i not in used)
            images = []
            if spec.images:
                self._image = self._image or kubetune_image()
                images.append(self._image)
            node = Node(spec, index, self.slot, self.binaries, self.pki, self.server, self.logs_dir(), images)
            self.nodes[spec.name] = node
        node.start(self.api, timeout)
        return node

    def node(self, name: str) -> Node:
        try:
            return self.nodes[name]
        except KeyError:
            raise KeyError(f"no node {name!r} in this cluster (nodes: {sorted(self.nodes)})") from None

    def remove_node(self, name: str) -> None:
        """Deletes the Node object (the pod GC deletes its pods) and stops the node itself."""
        self.api.delete(f"/api/v1/nodes/{name}", missing_ok=True)
        with self._nodes_lock:
            node = self.nodes.pop(name, None)
        if node is not None:
            node.stop()

    # -- addons ----------------------------------------------------------------

    def start_kueue(self, timeout: float = 120.0) -> Kueue:
        """Runs Kueue (batch/v1 Job and JobSet integrations) unless it runs already; returns once its
        webhooks answer. Stopped at teardown. See addons.py."""
        self._kueue.start(self, timeout)
        return self._kueue

    def start_jobset(self, timeout: float = 120.0) -> JobSet:
        """Runs JobSet's controller unless it runs already; returns once its webhooks answer."""
        self._jobset.start(self, timeout)
        return self._jobset

    def stop_addon(self, addon: Kueue | JobSet) -> None:
        """Stops one addon now: its webhook configurations go first, so that no create waits on it."""
        addon.stop(self.api)

    # -- faults ----------------------------------------------------------------

    def restart_apiserver(self, down_seconds: float) -> None:
        """Kill kube-apiserver, keep it down for `down_seconds`, start it again on the same port and flags.

        Returns once it is ready. What runs against the cluster (kubelets,
        controllers, the scheduler, operators under test) sees a real outage:
        refused connections, then the same server back.
        """
        assert self.control_plane is not None, "cluster not started"
        self.control_plane.restart_apiserver(down_seconds)

    def stop_kubelet(self, node: str) -> None:
        """SIGKILLs a node's kubelet: its containers run on, but the node goes NotReady
        after the node monitor's grace period (controlplane.NODE_MONITOR_GRACE)."""
        self.node(node).stop_kubelet()

    def start_kubelet(self, node: str, timeout: float = 120.0) -> None:
        """Starts a stopped kubelet again; returns once its node is Ready."""
        self.node(node).start_kubelet(self.api, timeout)

    def kill_container(self, namespace: str, pod: str, container: str, signal: str = "SIGKILL") -> None:
        """Kills one running container through the runtime, as an OOM kill or a crash would."""
        obj = self.api.get(f"/api/v1/namespaces/{namespace}/pods/{pod}")
        statuses = obj.get("status", {}).get("containerStatuses", []) + obj.get("status", {}).get(
            "initContainerStatuses", []
        )
        for status in statuses:
            if status["name"] == container and status.get("containerID"):
                self.node(obj["spec"]["nodeName"]).kill_container(status["containerID"].split("://", 1)[1], signal)
                return
        raise RuntimeError(f"container {container} of pod {namespace}/{pod} has no running container")

    def evict(self, namespace: str, pod: str) -> None:
        """Evicts a pod through the Eviction API, as `kubectl drain` does (PodDisruptionBudgets apply)."""
        self.api.create(
            f"/api/v1/namespaces/{namespace}/pods/{pod}/eviction",
            {"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": pod, "namespace": namespace}},
        )

    # -- what tests use --------------------------------------------------------

    @property
    def kubeconfig(self) -> Path:
        """The admin kubeconfig (group system:masters)."""
        assert self.control_plane is not None, "cluster not started"
        return self.control_plane.admin_kubeconfig

    @property
    def server(self) -> str:
        assert self.control_plane is not None, "cluster not started"
        return self.control_plane.server

    @property
    def api(self) -> Api:
        """A small REST client with admin rights."""
        assert self.control_plane is not None, "cluster not started"
        return self.control_plane.admin_api()

    @property
    def pod_gateway(self) -> str:
        """The host's address on the cluster's bridge (nodes and pods reach the API server there)."""
        assert self.slot is not None
        return self.slot.gateway

    def get_json(
        self, kind: str, name: str = "", namespace: str | None = None, selector: str = "", all_namespaces: bool = False
    ) -> Obj:
        """What `kubectl get KIND [NAME] [-n NS] [-l SELECTOR] [-A] -o json` prints, read without a kubectl process.

        As admin. Raises ApiError (status 404 when the object is not there).
        """
        if self._reads is None:
            api = self.api
            self._reads = (api, Resources(api))
        return get_json(*self._reads, kind, name, namespace, selector, all_namespaces)

    def create_namespace(self, name: str) -> None:
        """`kubectl create namespace NAME`, without a kubectl process: the suite makes one per test."""
        self.api.create("/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})

    def delete_namespace(self, name: str) -> None:
        """`kubectl delete namespace NAME --wait=false`, without a kubectl process; one already gone is fine."""
        self.api.delete(f"/api/v1/namespaces/{name}", missing_ok=True)

    def env(self, kubeconfig: Path | None = None) -> dict[str, str]:
        """os.environ with KUBECONFIG set and kubectl/helm first on PATH."""
        path = os.pathsep.join(
            [str(self.binaries.kubectl.parent), str(self.binaries.helm.parent), os.environ.get("PATH", "")]
        )
        return {**os.environ, "KUBECONFIG": str(kubeconfig or self.kubeconfig), "PATH": path}

    def kubectl(
        self,
        *args: str,
        input: str | None = None,
        check: bool = True,
        kubeconfig: Path | None = None,
        timeout: float = 120,
    ) -> subprocess.CompletedProcess[str]:
        """Runs kubectl against this cluster (as admin unless kubeconfig is given)."""
        return run_cli([str(self.binaries.kubectl), *args], self.env(kubeconfig), input, check, timeout)

    def helm(
        self, *args: str, check: bool = True, kubeconfig: Path | None = None, timeout: float = 300
    ) -> subprocess.CompletedProcess[str]:
        """Runs helm against this cluster."""
        return run_cli([str(self.binaries.helm), *args], self.env(kubeconfig), None, check, timeout)

    def serviceaccount_kubeconfig(self, namespace: str, name: str, expiration_seconds: int = 86400) -> Path:
        """A kubeconfig that authenticates as ServiceAccount namespace/name.

        The token comes from the TokenRequest API, exactly what a pod of that
        ServiceAccount would get, so RBAC applies as it would in the pod.
        """
        answer = self.api.create(
            f"/api/v1/namespaces/{namespace}/serviceaccounts/{name}/token",
            {
                "apiVersion": "authentication.k8s.io/v1",
                "kind": "TokenRequest",
                "spec": {"audiences": [SERVICE_ACCOUNT_ISSUER], "expirationSeconds": expiration_seconds},
            },
        )
        assert self.control_plane is not None
        return write_kubeconfig(
            self.workdir / "kubeconfigs" / f"{namespace}.{name}.kubeconfig",
            self.server,
            self.control_plane.pki.ca_cert,
            token_user(answer["status"]["token"]),
            namespace=namespace,
        )

    def logs_dir(self) -> Path:
        """Where the component logs are (kept after teardown with KUBETUNE_E2E_KEEP=1)."""
        return self.workdir / "logs"


__all__ = ["ClusterConfig", "LocalCluster", "NodeSpec"]
