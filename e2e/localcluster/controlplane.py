"""etcd, kube-apiserver, kube-controller-manager and kube-scheduler, configured as kubeadm would.

The flags follow a normal cluster: RBAC (plus the Node authorizer), the
default admission plugins plus NodeRestriction, ServiceAccount tokens signed
by the cluster's own key, controllers using per-controller ServiceAccount
credentials. Every port is picked free at start, so several clusters can run
side by side on one machine.

The controller manager and the scheduler run with leader election on, as
kubeadm's static pods do, and are restarted when they exit, as the kubelet
restarts a static pod. That is how a real control plane lives through an API
server outage: once the outage outlasts the renew deadline (10 s), each loses
its Lease, exits and starts over with fresh watches. Without it, client-go's
watches back off for up to a minute after the server is back, and a Job
created then got its pods only 46 s later (measured in the 20 s outage test).
"""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from .api import Api, ApiError
from .binaries import Binaries
from .kubeconfig import cert_user, write_kubeconfig
from .pki import ClusterPKI
from .procs import ManagedProcess, wait_until

SERVICE_ACCOUNT_ISSUER = "https://kubernetes.default.svc.cluster.local"
SERVICE_CIDR = "10.96.0.0/16"

# What the harness and the operator's tests rely on, node lifecycle included
# (a node whose kubelet stops goes NotReady, and its pods are evicted); the
# others a normal cluster runs (IPAM, volumes, cloud) have nothing to act on
# here: each node's pod range is fixed by network.py.
CONTROLLERS = (
    "job-controller",
    "cronjob-controller",
    "garbage-collector-controller",
    "namespace-controller",
    "ttl-after-finished-controller",
    "serviceaccount-token-controller",
    "serviceaccount-controller",
    "root-ca-certificate-publisher-controller",
    "clusterrole-aggregation-controller",
    "deployment-controller",
    "replicaset-controller",
    "statefulset-controller",
    "endpoints-controller",
    "endpointslice-controller",
    "pod-garbage-collector-controller",
    "resourcequota-controller",
    "disruption-controller",
    "node-lifecycle-controller",
    "taint-eviction-controller",
)
#: How long a node's kubelet may be silent before the node is NotReady (the default is 40 s).
NODE_MONITOR_GRACE = "20s"
#: Restarted when they exit (the kubelet's part for a static pod). Leader election's defaults, as kubeadm's:
#: a 15 s Lease, renewed every 2 s, given up (and the process exits) after 10 s without a renewal.
RESTARTED = ("kube-controller-manager", "kube-scheduler")
#: The pause before a restart. A kubelet waits 10 s before it restarts a crashed container the first time;
#: shorter here, because tests wait for it.
RESTART_DELAY = 1.0


def free_port(address: str = "127.0.0.1") -> int:
    """A TCP port on `address` that nothing listens on right now."""
    with socket.socket() as s:
        s.bind((address, 0))
        return int(s.getsockname()[1])


@dataclass
class ControlPlane:
    """The three control-plane processes of one cluster, started in order."""

    binaries: Binaries
    workdir: Path
    pki: ClusterPKI
    advertise_address: str
    processes: list[ManagedProcess] = field(default_factory=list)
    apiserver_port: int = 0
    admin_kubeconfig: Path = Path()
    #: How often each of RESTARTED was started again after it exited (a lost Lease, usually).
    restarts: dict[str, int] = field(default_factory=dict, init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)
    _stopping: threading.Event = field(default_factory=threading.Event, init=False, repr=False)
    _supervisor: threading.Thread | None = field(default=None, init=False, repr=False)

    @property
    def server(self) -> str:
        return f"https://{self.advertise_address}:{self.apiserver_port}"

    def admin_api(self) -> Api:
        return Api(
            self.advertise_address, self.apiserver_port, self.pki.ca_cert, self.pki.admin.cert, self.pki.admin.key
        )

    def start(self, timeout: float = 60.0) -> None:
        """Starts etcd, the API server and the controller manager; waits until usable."""
        logs = self.workdir / "logs"
        etcd_port, peer_port = free_port(), free_port()
        etcd_url = f"http://127.0.0.1:{etcd_port}"
        peer_url = f"http://127.0.0.1:{peer_port}"
        etcd = self._spawn(
            "etcd",
            [
                str(self.binaries.etcd),
                "--name=local",
                f"--data-dir={self.workdir / 'etcd'}",
                f"--listen-client-urls={etcd_url}",
                f"--advertise-client-urls={etcd_url}",
                f"--listen-peer-urls={peer_url}",
                f"--initial-advertise-peer-urls={peer_url}",
                f"--initial-cluster=local={peer_url}",
                "--unsafe-no-fsync=true",
                "--log-level=warn",
            ],
            logs,
        )
        wait_until(lambda: _tcp_open(etcd_port) or _dead(etcd), 20, what="etcd to listen")
        _check_alive(etcd)

        # On the slot's bridge address: reachable from this machine and from every node's netns.
        self.apiserver_port = free_port(self.advertise_address)
        pki = self.pki
        apiserver = self._spawn(
            "kube-apiserver",
            [
                str(self.binaries.kube_apiserver),
                f"--etcd-servers={etcd_url}",
                f"--bind-address={self.advertise_address}",
                f"--secure-port={self.apiserver_port}",
                f"--advertise-address={self.advertise_address}",
                f"--tls-cert-file={pki.serving_cert}",
                f"--tls-private-key-file={pki.serving_key}",
                f"--client-ca-file={pki.ca_cert}",
                "--authorization-mode=Node,RBAC",
                "--enable-admission-plugins=NodeRestriction",
                f"--service-account-issuer={SERVICE_ACCOUNT_ISSUER}",
                f"--service-account-key-file={pki.sa_pub}",
                f"--service-account-signing-key-file={pki.sa_key}",
                f"--api-audiences={SERVICE_ACCOUNT_ISSUER}",
                f"--service-cluster-ip-range={SERVICE_CIDR}",
                f"--kubelet-client-certificate={pki.admin.cert}",
                f"--kubelet-client-key={pki.admin.key}",
                "--kubelet-preferred-address-types=InternalIP",
                f"--kubelet-certificate-authority={pki.ca_cert}",
                "--allow-privileged=true",
                "--profiling=false",
            ],
            logs,
        )
        self.admin_kubeconfig = write_kubeconfig(
            self.workdir / "admin.kubeconfig", self.server, pki.ca_cert, cert_user(pki.admin.cert, pki.admin.key)
        )
        api = self.admin_api()
        wait_until(
            lambda: _dead(apiserver) or api.text("GET", "/readyz") == "ok", timeout, what="kube-apiserver /readyz"
        )
        _check_alive(apiserver)

        kcm_config = write_kubeconfig(
            self.workdir / "controller-manager.kubeconfig",
            self.server,
            pki.ca_cert,
            cert_user(pki.controller_manager.cert, pki.controller_manager.key),
        )
        kcm = self._spawn(
            "kube-controller-manager",
            [
                str(self.binaries.kube_controller_manager),
                f"--kubeconfig={kcm_config}",
                f"--authentication-kubeconfig={kcm_config}",
                f"--authorization-kubeconfig={kcm_config}",
                "--bind-address=127.0.0.1",
                f"--secure-port={free_port()}",
                f"--controllers={','.join(CONTROLLERS)}",
                f"--service-account-private-key-file={pki.sa_key}",
                f"--root-ca-file={pki.ca_cert}",
                "--use-service-account-credentials=true",
                f"--cluster-signing-cert-file={pki.ca_cert}",
                f"--cluster-signing-key-file={pki.ca_key}",
                "--leader-elect=true",
                f"--node-monitor-grace-period={NODE_MONITOR_GRACE}",
            ],
            logs,
        )
        # Usable means: the controllers have done their first work in "default".
        wait_until(
            lambda: _dead(kcm) or _controllers_ready(api),
            timeout,
            what="kube-controller-manager to create the default ServiceAccount",
        )
        _check_alive(kcm)
        # Kubelets authenticate and authorize the API server's calls (logs, exec) by
        # TokenReview and SubjectAccessReview, which the Node authorizer leaves to RBAC.
        _ensure(
            api,
            "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings",
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "ClusterRoleBinding",
                "metadata": {"name": "kubetune-e2e:nodes-delegate-auth"},
                "roleRef": {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "ClusterRole",
                    "name": "system:auth-delegator",
                },
                "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": "system:nodes"}],
            },
        )

        sched_config = write_kubeconfig(
            self.workdir / "scheduler.kubeconfig",
            self.server,
            pki.ca_cert,
            cert_user(pki.scheduler.cert, pki.scheduler.key),
        )
        scheduler = self._spawn(
            "kube-scheduler",
            [
                str(self.binaries.kube_scheduler),
                f"--kubeconfig={sched_config}",
                f"--authentication-kubeconfig={sched_config}",
                f"--authorization-kubeconfig={sched_config}",
                "--bind-address=127.0.0.1",
                f"--secure-port={free_port()}",
                "--leader-elect=true",
            ],
            logs,
        )
        time.sleep(0.5)
        _check_alive(scheduler)
        self._supervisor = threading.Thread(target=self._restart_exited, name="control plane restarts", daemon=True)
        self._supervisor.start()

    def _restart_exited(self) -> None:
        """The kubelet's part for the static pods RESTARTED: start each again, same flags and log, once it exits."""
        while not self._stopping.wait(RESTART_DELAY):
            with self._lock:
                for index, proc in enumerate(self.processes):
                    if proc.name in RESTARTED and not proc.alive() and not self._stopping.is_set():
                        proc.stop(grace=0)  # reaps it and closes its log
                        self.processes[index] = ManagedProcess(proc.name, proc.argv, proc.log_path)
                        self.restarts[proc.name] = self.restarts.get(proc.name, 0) + 1

    def restart_apiserver(self, down_seconds: float, timeout: float = 60.0, recovery_timeout: float = 120.0) -> None:
        """An API server outage: SIGKILL kube-apiserver, wait `down_seconds`, start it again.

        The same binary, flags and port, so every client (controllers, scheduler,
        kubelets, kube-proxies, operators) reconnects to where it was; etcd keeps the state.
        Returns once /readyz says ok again and the controllers watch again.
        """
        with self._lock:
            index = next(i for i, p in enumerate(self.processes) if p.name == "kube-apiserver")
            old = self.processes[index]
            old.kill()
        time.sleep(down_seconds)
        with self._lock:
            new = ManagedProcess(old.name, old.argv, old.log_path)
            self.processes[index] = new
        api = self.admin_api()
        wait_until(lambda: _dead(new) or api.text("GET", "/readyz") == "ok", timeout, what="kube-apiserver /readyz")
        _check_alive(new)
        self._wait_controllers_back(api, recovery_timeout)

    def _wait_controllers_back(self, api: Api, timeout: float) -> None:
        """Returns once kube-controller-manager acts on a new namespace again (makes its default ServiceAccount).

        Why: after a short outage the controller manager keeps its Lease, and
        client-go's reflectors back off exponentially (to 30 s, jittered up to
        twice that) while the server refuses connections, so /readyz can say ok
        well before the controllers watch again. Whatever the caller does next
        (a test's namespace, a Job's pods) would otherwise race that backoff.
        """
        probe = f"kubetune-e2e-probe-{time.monotonic_ns() % 10**9}"
        _ensure(api, "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": probe}})
        try:
            wait_until(
                lambda: _exists(api, f"/api/v1/namespaces/{probe}/serviceaccounts/default"),
                timeout,
                what="kube-controller-manager to watch again after the API server's restart",
            )
        finally:
            api.delete(f"/api/v1/namespaces/{probe}", missing_ok=True)

    def _spawn(self, name: str, argv: list[str], logs: Path) -> ManagedProcess:
        proc = ManagedProcess(name, argv, logs / f"{name}.log")
        self.processes.append(proc)
        return proc

    def stop(self) -> None:
        """Stops in reverse order, so nothing reconnects to a stopped peer.

        A short grace: the cluster is going away, so there is nothing for kube-apiserver's
        graceful shutdown to drain, and it can otherwise spend 10 s waiting on closed watches.
        """
        self._stopping.set()
        if self._supervisor is not None:
            self._supervisor.join()
        with self._lock:
            for proc in reversed(self.processes):
                proc.stop(grace=3)
            self.processes.clear()


def _tcp_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _dead(proc: ManagedProcess) -> bool:
    return not proc.alive()


def _check_alive(proc: ManagedProcess) -> None:
    if not proc.alive():
        raise RuntimeError(f"{proc.name} exited with {proc.popen.returncode}:\n{proc.tail()}")


def _ensure(api: Api, collection: str, body: dict[str, object]) -> None:
    try:
        api.create(collection, body)
    except ApiError as exc:
        if exc.status != 409:
            raise


def _exists(api: Api, path: str) -> bool:
    try:
        api.get(path)
    except ApiError:
        return False
    return True


def _controllers_ready(api: Api) -> bool:
    return _exists(api, "/api/v1/namespaces/default/serviceaccounts/default") and _exists(
        api, "/api/v1/namespaces/default/configmaps/kube-root-ca.crt"
    )
