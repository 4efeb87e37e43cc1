"""LocalCluster: a whole cluster on this machine, started and torn down as one.

Order of start: network slot and bridge (the API server's certificate must
name the bridge address), PKI, etcd, kube-apiserver, kube-controller-manager,
then the node agent. Teardown runs in reverse and then sweeps the slot, so it
is complete even when a step failed half-way.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from . import mountpoints, network
from .api import MERGE, Api, ApiError
from .binaries import Binaries
from .controlplane import SERVICE_ACCOUNT_ISSUER, ControlPlane
from .images import ImageEntry
from .kubeconfig import token_user, write_kubeconfig
from .nodes import AGENT_LABEL, NodeSpec
from .pki import ClusterPKI
from .procs import ManagedProcess, run_cli, wait_until

log = logging.getLogger(__name__)
PACKAGE_PARENT = str(Path(__file__).resolve().parent.parent)

DEFAULT_NODES = (
    NodeSpec("node-cpu-0", cpu="8", memory="16Gi"),
    NodeSpec("node-gpu-0", cpu="8", memory="32Gi", gpus=1, labels={"nvidia.com/gpu.present": "true"}),
)


@dataclass
class ClusterConfig:
    """How to start a LocalCluster."""

    nodes: tuple[NodeSpec, ...] = DEFAULT_NODES
    name: str = "kubetune-e2e"
    #: Where logs, certificates and pod files go; a fresh temp dir when None.
    workdir: Path | None = None
    #: Keep the workdir after teardown (to read the component logs).
    keep_workdir: bool = field(default_factory=lambda: os.environ.get("KUBETUNE_E2E_KEEP") == "1")
    #: First delay before a crashed container restarts (the kubelet's is 10s).
    restart_backoff: float = 2.0
    #: PATH for containers; the running Python's bin dir comes first, so that
    #: `python` in a container is the Python running the tests.
    container_path: str = field(
        default_factory=lambda: os.pathsep.join(
            [os.path.dirname(sys.executable), os.environ.get("PATH", "/usr/bin:/bin")]
        )
    )


class LocalCluster:
    """A running local cluster; use as a context manager."""

    local = True

    def __init__(self, config: ClusterConfig | None = None) -> None:
        self.config = config or ClusterConfig()
        self.binaries = Binaries.locate()
        self.workdir = self.config.workdir or Path(tempfile.mkdtemp(prefix="kubetune-e2e-"))
        self.slot: network.Slot | None = None
        self.control_plane: ControlPlane | None = None
        self.agent: ManagedProcess | None = None
        self.image_map = self.workdir / "images.json"
        #: What stop() found still there after teardown (empty when clean).
        self.left_over: list[str] = []

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

    def start(self, timeout: float = 60.0) -> None:
        started = time.monotonic()
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.image_map.write_text("{}")
        self.slot = network.acquire_slot()
        network.create_bridge(self.slot)
        pki = ClusterPKI.create(self.workdir / "pki", ["127.0.0.1", self.slot.gateway, "10.96.0.1"])
        self.control_plane = ControlPlane(self.binaries, self.workdir, pki, self.slot.gateway)
        self.control_plane.start(timeout)
        self._start_agent(pki, timeout)
        log.info("local cluster ready in %.1fs: KUBECONFIG=%s", time.monotonic() - started, self.kubeconfig)

    def _start_agent(self, pki: ClusterPKI, timeout: float) -> None:
        assert self.slot is not None and self.control_plane is not None
        argv = [
            sys.executable,
            "-m",
            "localcluster.agent",
            "--name",
            self.config.name,
            "--server",
            f"127.0.0.1:{self.control_plane.apiserver_port}",
            "--ca",
            str(pki.ca_cert),
            "--cert",
            str(pki.admin.cert),
            "--key",
            str(pki.admin.key),
            "--serving-cert",
            str(pki.serving_cert),
            "--serving-key",
            str(pki.serving_key),
            "--slot",
            str(self.slot.number),
            "--workdir",
            str(self.workdir / "agent"),
            "--image-map",
            str(self.image_map),
            "--container-path",
            self.config.container_path,
            "--restart-backoff",
            str(self.config.restart_backoff),
            "--kubernetes-version",
            self.binaries.kubernetes_version,
        ]
        for node in self.config.nodes:
            argv += ["--node", json.dumps(_node_json(node))]
        env = {**os.environ, "PYTHONPATH": PACKAGE_PARENT, "PYTHONUNBUFFERED": "1"}
        self.agent = ManagedProcess("node-agent", argv, self.workdir / "logs" / "node-agent.log", env=env)
        names = [n.name for n in self.config.nodes]
        wait_until(
            lambda: not self.agent.alive() or self._nodes_ready(names),
            timeout,
            what="the node agent's nodes to be Ready",
        )
        if not self.agent.alive():
            raise RuntimeError(f"node agent exited:\n{self.agent.tail()}")

    def _nodes_ready(self, names: list[str]) -> bool:
        for name in names:
            node = self.api.get(f"/api/v1/nodes/{name}")
            ready = any(
                c["type"] == "Ready" and c["status"] == "True" for c in node.get("status", {}).get("conditions", [])
            )
            if not ready or any(t["key"].startswith("node.kubernetes.io/") for t in node["spec"].get("taints") or []):
                return False
        return True

    def stop(self) -> None:
        """Tears everything down; safe to call twice and after a failed start."""
        if self.agent is not None:
            self.agent.stop(grace=60)
            self.agent = None
        if self.control_plane is not None:
            self.control_plane.stop()
            self.control_plane = None
        if self.slot is not None:
            network.sweep(self.slot)
            mountpoints.release_owner(self.slot.number)
            self.left_over = self.leftovers()
            self.slot.release()
            self.slot = None
        if not self.config.keep_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def leftovers(self) -> list[str]:
        """What of this cluster still exists: processes, netns, interfaces, mount targets.

        Every process the cluster starts (control plane, agent, container shims
        and their PID 1) names the workdir on its command line, and a
        container's other processes die with its PID 1, so scanning command
        lines finds them all.
        """
        found = []
        marker = str(self.workdir).encode()
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            except OSError:
                continue
            if marker in cmdline and int(pid) != os.getpid():
                text = cmdline.replace(b"\0", b" ").decode(errors="replace")
                found.append(f"process {pid}: {text[:200]}")
        if self.slot is not None:
            found += [f"netns {n}" for n in network.list_netns(self.slot.prefix + "-")]
            found += [
                f"link {n}"
                for n in network.list_links(self.slot.prefix)
                if n.startswith((self.slot.prefix + "h", self.slot.prefix + "p", self.slot.bridge))
            ]
            found += [f"mount target {p}" for p in mountpoints.held_by(self.slot.number)]
        return found

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
        """The host's address on the pod bridge (pods reach the API server there)."""
        assert self.slot is not None
        return self.slot.gateway

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

    def map_image(
        self,
        image: str,
        entrypoint: list[str],
        cmd: list[str] | None = None,
        env: dict[str, str] | None = None,
        working_dir: str | None = None,
    ) -> None:
        """Makes containers of `image` (a name or fnmatch pattern) run a local command."""
        current = json.loads(self.image_map.read_text() or "{}")
        current[image] = ImageEntry(list(entrypoint), list(cmd or []), dict(env or {}), working_dir).to_json()
        tmp = self.image_map.with_suffix(".tmp")
        tmp.write_text(json.dumps(current, indent=2))
        tmp.replace(self.image_map)

    def unmap_image(self, image: str) -> None:
        current = json.loads(self.image_map.read_text() or "{}")
        current.pop(image, None)
        self.image_map.write_text(json.dumps(current, indent=2))

    def add_node(self, spec: NodeSpec, timeout: float = 30) -> None:
        """Adds a node while the cluster runs; returns once it is Ready."""
        try:
            self.api.create("/api/v1/nodes", spec.manifest(self.config.name))
        except ApiError as exc:
            if exc.status != 409:
                raise
            self.api.patch(f"/api/v1/nodes/{spec.name}", spec.manifest(self.config.name), MERGE)
        wait_until(lambda: self._nodes_ready([spec.name]), timeout, what=f"node {spec.name} Ready")

    def remove_node(self, name: str) -> None:
        """Deletes a node; the pod GC then deletes its pods, and the agent stops them."""
        try:
            self.api.delete(f"/api/v1/nodes/{name}")
        except ApiError as exc:
            if exc.status != 404:
                raise

    def restart_apiserver(self, down_seconds: float) -> None:
        """Kill kube-apiserver, keep it down for `down_seconds`, start it again on the same port and flags.

        Returns once it is ready. What runs against the cluster (the node agent,
        the controller manager, operators under test) sees a real outage:
        refused connections, then the same server back.
        """
        assert self.control_plane is not None, "cluster not started"
        self.control_plane.restart_apiserver(down_seconds)

    def logs_dir(self) -> Path:
        """Where the component logs are (kept after teardown with KUBETUNE_E2E_KEEP=1)."""
        return self.workdir / "logs"


def _node_json(spec: NodeSpec) -> dict[str, object]:
    return {
        "name": spec.name,
        "cpu": spec.cpu,
        "memory": spec.memory,
        "gpus": spec.gpus,
        "pods": spec.pods,
        "labels": spec.labels,
        "taints": spec.taints,
    }


__all__ = ["AGENT_LABEL", "ClusterConfig", "LocalCluster", "NodeSpec"]
