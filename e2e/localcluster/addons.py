"""Kueue and JobSet, run on demand against a LocalCluster: host processes, webhooks included.

e2e/build.sh builds each controller from its Go module and copies its
manifests (config/components/{crd,rbac,webhook}) into
~/.cache/kubetune/<name>-<version>/. Starting one here does what its
kustomize install does, minus the Deployment:

- the CRDs, with the conversion webhooks upstream's crd/kustomization.yaml
  enables;
- its namespace and ServiceAccount, upstream's ClusterRole (rbac/role.yaml)
  bound to it; the process runs with a token of that ServiceAccount, so it has
  exactly upstream's RBAC;
- a serving certificate from the cluster's own CA for the host's bridge
  address, where the process's webhook server listens; the webhook
  configurations say `clientConfig.url: https://<bridge>:<port>/<path>` with
  the cluster's CA as caBundle (the API server runs on the host and reaches
  that address), and the controllers' own certificate management is off;
- the process, started like the control plane's (own session, PDEATHSIG,
  a log in the cluster's logs/), with every port picked free, so that two
  clusters on one machine can each run one.

start() returns once the webhooks answer: a dry-run create that the mutating
webhook must default.
"""

from __future__ import annotations

import base64
import copy
import logging
import re
import shutil
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from .api import Api, ApiError
from .binaries import BinariesMissing, cache_root, read_versions
from .controlplane import free_port
from .procs import ManagedProcess, wait_until

if TYPE_CHECKING:
    from .cluster import LocalCluster

log = logging.getLogger(__name__)

Obj = dict[str, Any]

#: The Kueue integrations the tests use. Kueue's other webhooks (pods, deployments,
#: statefulsets, ...) would answer as no-ops with failurePolicy Fail: registering them
#: would put every pod creation of the cluster behind this one process for nothing.
KUEUE_FRAMEWORKS = ("batch/job", "jobset.x-k8s.io/jobset")
KUEUE_WEBHOOK_GROUPS = {"kueue.x-k8s.io", "batch", "jobset.x-k8s.io"}
#: Upstream's install keeps Kueue's job webhooks out of these (config/components/webhook/kustomization.yaml).
KUEUE_EXCLUDED_NAMESPACES = ["kube-system", "kueue-system"]
#: Where kueue reads its metrics certificate when its own certificate management is off (a fixed path).
KUEUE_METRICS_CERTS = "kueue/metrics/certs"


@dataclass
class Addon:
    """One controller of an addon: its cache entry, its identity, its process and webhooks."""

    name: str
    version: str
    namespace: str
    service_account: str
    #: Whether the process runs where /etc has its metrics certificate (kueue's fixed path).
    etc_overlay: bool = False
    process: ManagedProcess | None = None
    webhook_configurations: list[tuple[str, str]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def home(self) -> Path:
        return cache_root() / f"{self.name}-{self.version}"

    @property
    def binary(self) -> Path:
        return self.home / "bin" / self.name

    @property
    def manifests(self) -> Path:
        return self.home / "manifests"

    def check_built(self) -> None:
        if not self.binary.is_file() or not (self.manifests / ".complete").is_file():
            raise BinariesMissing(f"{self.name} {self.version} is not in {self.home}: run `bash e2e/build.sh` first")

    def running(self) -> bool:
        return self.process is not None and self.process.alive()

    # -- start -----------------------------------------------------------------

    def start(self, cluster: LocalCluster, timeout: float = 120.0) -> None:
        """Installs and starts the addon unless it runs already; returns once its webhooks answer."""
        with self._lock:
            if self.running():
                return
            self.check_built()
            try:
                self._start(cluster, timeout)
            except BaseException:
                # Not half up: webhooks with failurePolicy Fail and no server would refuse every Job.
                self._stop(cluster.api)
                raise

    def _start(self, cluster: LocalCluster, timeout: float) -> None:
        started = time.monotonic()
        assert cluster.pki is not None and cluster.control_plane is not None
        home = cluster.workdir / "addons" / self.name
        shutil.rmtree(home, ignore_errors=True)
        home.mkdir(parents=True)
        host, port = cluster.pod_gateway, free_port(cluster.pod_gateway)
        base_url = f"https://{host}:{port}"
        ca_bundle = _b64(cluster.pki.ca_cert)

        crds = list(self._crds(base_url, ca_bundle))
        ns, sa = self.namespace, self.service_account
        rbac: list[Obj] = [
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}},
            {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": sa, "namespace": ns}},
        ]
        for role in self._cluster_roles():
            rbac += [role, _cluster_role_binding(role["metadata"]["name"], ns, sa)]
        for role in self._roles():
            rbac += [role, _role_binding(role["metadata"]["name"], ns, sa)]
        api = cluster.api
        _apply(api, crds + rbac)
        for crd in crds:
            name = crd["metadata"]["name"]
            wait_until(lambda n=name: _established(api, n), 60, what=f"CRD {name} established")

        cert_dir = home / "certs"
        cert_dir.mkdir()
        serving = cluster.pki.serving(f"{self.name}-webhook", [host])
        shutil.copy(serving.cert, cert_dir / "tls.crt")
        shutil.copy(serving.key, cert_dir / "tls.key")
        config_path = home / "config.yaml"
        config_path.write_text(yaml.safe_dump(self._config(cert_dir, host, port)))
        kubeconfig = cluster.serviceaccount_kubeconfig(ns, sa)

        argv = [str(self.binary), f"--config={config_path}", f"--kubeconfig={kubeconfig}", "--zap-log-level=2"]
        if self.etc_overlay:
            argv = _with_etc_overlay(home, cert_dir, argv)
        self.process = ManagedProcess(self.name, argv, cluster.logs_dir() / f"{self.name}.log")

        webhooks = self._webhook_configurations(base_url, ca_bundle)
        self.webhook_configurations = [(w["kind"], w["metadata"]["name"]) for w in webhooks]
        _apply(api, webhooks)
        process = self.process
        try:
            wait_until(
                lambda: not process.alive() or self._probe(api),
                timeout,
                interval=0.5,
                what=f"{self.name}'s webhooks to answer",
            )
        except TimeoutError as exc:
            raise RuntimeError(f"{exc}\n{self.name}'s log ends:\n{process.tail()}") from None
        if not process.alive():
            raise RuntimeError(f"{self.name} exited with {process.popen.returncode}:\n{process.tail()}")
        log.info("%s %s ready in %.1fs (webhooks at %s)", self.name, self.version, time.monotonic() - started, base_url)

    def _crds(self, base_url: str, ca_bundle: str) -> Iterator[Obj]:
        """The CRDs; those upstream's crd/kustomization.yaml patches get its conversion webhook, at our URL."""
        crd_dir = self.manifests / "crd"
        kustomization = (crd_dir / "kustomization.yaml").read_text()
        patched: set[str] = set()
        for match in re.finditer(r"^- path: (patches/webhook_in_\S+\.yaml)", kustomization, re.M):
            patch = yaml.safe_load((crd_dir / match.group(1)).read_text())
            patched.add(patch["metadata"]["name"])
        for path in sorted((crd_dir / "bases").glob("*.yaml")):
            for crd in _documents(path):
                if crd["metadata"]["name"] in patched:
                    crd["spec"]["conversion"] = {
                        "strategy": "Webhook",
                        "webhook": {
                            "clientConfig": {"url": f"{base_url}/convert", "caBundle": ca_bundle},
                            "conversionReviewVersions": ["v1"],
                        },
                    }
                yield crd

    def _cluster_roles(self) -> list[Obj]:
        """Upstream's manager ClusterRole, under a name of the addon's."""
        roles = []
        for doc in _documents(self.manifests / "rbac" / "role.yaml"):
            if doc["kind"] == "ClusterRole":
                doc["metadata"]["name"] = f"{self.name}-{doc['metadata']['name']}"
                roles.append(doc)
        return roles

    def _roles(self) -> list[Obj]:
        """Upstream's Role for the Secrets of its own namespace (rbac/manager_secrets_role.yaml), which
        both managers watch even with their certificate management off."""
        roles = []
        for doc in _documents(self.manifests / "rbac" / "manager_secrets_role.yaml"):
            doc["metadata"] = {"name": f"{self.name}-{doc['metadata']['name']}", "namespace": self.namespace}
            roles.append(doc)
        return roles

    def _config(self, cert_dir: Path, host: str, port: int) -> Obj:
        """Its Configuration file: webhook server on host:port with the certificate in cert_dir."""
        raise NotImplementedError

    def _probe(self, api: Api) -> bool:
        """True once its mutating webhook answers."""
        raise NotImplementedError

    def _webhook_configurations(self, base_url: str, ca_bundle: str) -> list[Obj]:
        """Upstream's webhook configurations, named for the addon, calling `base_url` instead of a Service."""
        out = []
        for doc in _documents(self.manifests / "webhook" / "manifests.yaml"):
            doc["metadata"] = {"name": f"{self.name}-{doc['metadata']['name']}"}
            hooks = []
            for hook in doc.get("webhooks", []):
                hook = self._adapt_webhook(hook)
                if hook is None:
                    continue
                path = hook["clientConfig"]["service"]["path"]
                hook["clientConfig"] = {"url": base_url + path, "caBundle": ca_bundle}
                hooks.append(hook)
            doc["webhooks"] = hooks
            out.append(doc)
        return out

    def _adapt_webhook(self, hook: Obj) -> Obj | None:
        """What upstream's kustomize patches do to one webhook; None drops it."""
        return hook

    # -- stop ------------------------------------------------------------------

    def stop(self, api: Api | None) -> None:
        """Deletes its webhook configurations (when the API server is given), then stops the process.

        Without them, the API server calls no dead webhook after this; the CRDs stay.
        """
        with self._lock:
            self._stop(api)

    def _stop(self, api: Api | None) -> None:
        if api is not None:
            for kind, name in self.webhook_configurations:
                path = f"/apis/admissionregistration.k8s.io/v1/{kind.lower()}s/{name}"
                try:
                    api.delete(path)
                except (ApiError, OSError) as exc:
                    log.debug("deleting %s: %s", path, exc)
        self.webhook_configurations = []
        if self.process is not None:
            self.process.stop(grace=10)
            self.process = None


class Kueue(Addon):
    """Kueue's manager (cmd/kueue) with the batch/v1 Job and JobSet integrations."""

    def __init__(self, version: str) -> None:
        super().__init__("kueue", version, "kueue-system", "kueue-controller-manager", etc_overlay=True)

    def _config(self, cert_dir: Path, host: str, port: int) -> Obj:
        return {
            "apiVersion": "config.kueue.x-k8s.io/v1beta2",
            "kind": "Configuration",
            "namespace": self.namespace,
            "health": {"healthProbeBindAddress": f"127.0.0.1:{free_port()}"},
            # Off: nothing scrapes it (it would need kueue's fixed metrics certificate path anyway).
            "metrics": {"bindAddress": "0"},
            "webhook": {"host": host, "port": port, "certDir": str(cert_dir)},
            "leaderElection": {"leaderElect": False},
            "internalCertManagement": {"enable": False},
            "manageJobsWithoutQueueName": False,
            "integrations": {"frameworks": list(KUEUE_FRAMEWORKS)},
            # Off, though on by default: its pending-workloads API is reached through an APIService,
            # which names a Service, and the API server on the host cannot reach a ClusterIP. It would
            # also read its serving certificate from the fixed path /visibility/tls.crt.
            "featureGates": {"VisibilityOnDemand": False},
        }

    def _probe(self, api: Api) -> bool:
        return _kueue_webhook_answers(api)

    def _adapt_webhook(self, hook: Obj) -> Obj | None:
        groups = {g for rule in hook.get("rules", []) for g in rule.get("apiGroups", [])}
        if not groups & KUEUE_WEBHOOK_GROUPS:
            return None
        if groups & {"batch", "jobset.x-k8s.io"}:
            hook["namespaceSelector"] = {
                "matchExpressions": [
                    {"key": "kubernetes.io/metadata.name", "operator": "NotIn", "values": KUEUE_EXCLUDED_NAMESPACES}
                ]
            }
        return hook


class JobSet(Addon):
    """JobSet's controller manager (the module's root package)."""

    def __init__(self, version: str) -> None:
        super().__init__("jobset", version, "jobset-system", "jobset-controller-manager")

    def _config(self, cert_dir: Path, host: str, port: int) -> Obj:
        return {
            "apiVersion": "config.jobset.x-k8s.io/v1alpha1",
            "kind": "Configuration",
            "health": {"healthProbeBindAddress": f"127.0.0.1:{free_port()}"},
            "metrics": {"bindAddress": "0"},
            "webhook": {"host": host, "port": port, "certDir": str(cert_dir)},
            "leaderElection": {"leaderElect": False},
            "internalCertManagement": {"enable": False},
        }

    def _probe(self, api: Api) -> bool:
        return _jobset_webhook_answers(api)

    def _adapt_webhook(self, hook: Obj) -> Obj | None:
        # Upstream's webhook/patches: the pod webhooks only see a JobSet's pods.
        if any("pods" in rule.get("resources", []) for rule in hook.get("rules", [])):
            hook["objectSelector"] = {
                "matchExpressions": [{"key": "jobset.sigs.k8s.io/jobset-name", "operator": "Exists"}]
            }
        return hook


def addons() -> tuple[Kueue, JobSet]:
    versions = read_versions()
    return Kueue(versions["KUEUE_VERSION"]), JobSet(versions["JOBSET_VERSION"])


# -- probes: the mutating webhook must have defaulted what a dry run sends -------


def _kueue_webhook_answers(api: Api) -> bool:
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"generateName": "kueue-probe-", "labels": {"kueue.x-k8s.io/queue-name": "probe"}},
        "spec": {
            "suspend": False,
            "template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "probe"}]}},
        },
    }
    answer = _dry_run(api, "/apis/batch/v1/namespaces/default/jobs", job)
    return answer is not None and answer["spec"].get("suspend") is True


def _jobset_webhook_answers(api: Api) -> bool:
    jobset = {
        "apiVersion": "jobset.x-k8s.io/v1alpha2",
        "kind": "JobSet",
        "metadata": {"generateName": "jobset-probe-"},
        "spec": {
            "replicatedJobs": [
                {
                    "name": "w",
                    "template": {
                        "spec": {
                            "template": {
                                "spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "probe"}]}
                            }
                        }
                    },
                }
            ]
        },
    }
    answer = _dry_run(api, "/apis/jobset.x-k8s.io/v1alpha2/namespaces/default/jobsets", jobset)
    if answer is None:
        return False
    return bool(answer["spec"]["replicatedJobs"][0]["template"]["spec"].get("completionMode") == "Indexed")


def _dry_run(api: Api, collection: str, body: Obj) -> Obj | None:
    try:
        return api.request("POST", collection, body, params={"dryRun": "All"})
    except ApiError as exc:
        # 500 "failed calling webhook" while the process starts; anything else is a real answer.
        log.debug("dry run: %s", exc)
        return None


# -- helpers -------------------------------------------------------------------


def _documents(path: Path) -> list[Obj]:
    # libyaml's loader where PyYAML has it: Kueue's CRDs take pure Python seconds on a busy machine.
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    return [d for d in yaml.load_all(path.read_text(), Loader=loader) if d]


def _cluster_role_binding(role: str, namespace: str, service_account: str) -> Obj:
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": {"name": role},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
        "subjects": [{"kind": "ServiceAccount", "name": service_account, "namespace": namespace}],
    }


def _established(api: Api, crd: str) -> bool:
    status = api.get(f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{crd}").get("status", {})
    return any(c["type"] == "Established" and c["status"] == "True" for c in status.get("conditions") or [])


def _role_binding(role: str, namespace: str, service_account: str) -> Obj:
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": {"name": role, "namespace": namespace},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": role},
        "subjects": [{"kind": "ServiceAccount", "name": service_account, "namespace": namespace}],
    }


#: Where each kind the addons install lives in the API: (group/version path, plural, namespaced).
_RESOURCES = {
    "CustomResourceDefinition": ("/apis/apiextensions.k8s.io/v1", "customresourcedefinitions", False),
    "Namespace": ("/api/v1", "namespaces", False),
    "ServiceAccount": ("/api/v1", "serviceaccounts", True),
    "ClusterRole": ("/apis/rbac.authorization.k8s.io/v1", "clusterroles", False),
    "ClusterRoleBinding": ("/apis/rbac.authorization.k8s.io/v1", "clusterrolebindings", False),
    "Role": ("/apis/rbac.authorization.k8s.io/v1", "roles", True),
    "RoleBinding": ("/apis/rbac.authorization.k8s.io/v1", "rolebindings", True),
    "MutatingWebhookConfiguration": (
        "/apis/admissionregistration.k8s.io/v1",
        "mutatingwebhookconfigurations",
        False,
    ),
    "ValidatingWebhookConfiguration": (
        "/apis/admissionregistration.k8s.io/v1",
        "validatingwebhookconfigurations",
        False,
    ),
}


def _apply(api: Api, objects: list[Obj]) -> None:
    """Creates each object, or replaces it when it exists (a second start after the process died).

    Straight to the API: a kubectl apply of Kueue's CRDs (0.85 MB of schema) takes
    seconds longer, for server-side apply's field bookkeeping.
    """
    for obj in objects:
        prefix, plural, namespaced = _RESOURCES[obj["kind"]]
        meta = obj["metadata"]
        collection = f"{prefix}/namespaces/{meta['namespace']}/{plural}" if namespaced else f"{prefix}/{plural}"
        try:
            api.create(collection, obj)
        except ApiError as exc:
            if exc.status != 409:
                raise
            path = f"{collection}/{meta['name']}"
            current = api.get(path)
            if obj["kind"] in ("Namespace", "ServiceAccount"):
                continue
            body = copy.deepcopy(obj)
            body["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
            api.request("PUT", path, body)


def _b64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode()


def _with_etc_overlay(home: Path, cert_dir: Path, argv: list[str]) -> list[str]:
    """argv run in a mount namespace of its own where /etc/kueue/metrics/certs holds our certificate.

    Kueue reads its metrics certificate from that fixed path whenever its own
    certificate management is off. An overlay of /etc in a private mount
    namespace puts it there for this process only: the host's /etc is untouched,
    and the mount goes with the process.
    """
    upper, work = home / "etc-upper", home / "etc-work"
    certs = upper / KUEUE_METRICS_CERTS
    certs.mkdir(parents=True)
    work.mkdir()
    for name in ("tls.crt", "tls.key"):
        shutil.copy(cert_dir / name, certs / name)
    script = f'mount -t overlay kubetune-etc -o "lowerdir=/etc,upperdir={upper},workdir={work}" /etc && exec "$@"'
    return ["unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh", *argv]
