"""The operator as the tests run it: a `kubetune operator` process under a ServiceAccount with the chart's RBAC.

Trials and the metrics sidecar run the image built from this checkout
(`make image`; KUBETUNE_E2E_IMAGE names another for an external cluster), in
real containers on the cluster's nodes: its working directory /app holds the
examples' training script, as in manifests/examples.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from tests.cluster.kube import install_crd

ROOT = Path(__file__).resolve().parents[3]
EXAMPLES = ROOT / "manifests" / "examples"
CRD = ROOT / "crds" / "hyperparametertuningjobs.kubetune.io.yaml"
CHART = ROOT / "charts" / "kubetune"
IMAGE = os.environ.get("KUBETUNE_E2E_IMAGE", "localhost/kubetune:dev")
OPERATOR_NAMESPACE = "kubetune-system"
KUBE_VERSION = "1.34.0"
"""For `helm template`: the chart needs 1.29+ (native sidecars), and a locally built helm defaults to 1.20."""


STOP_SECONDS = 20
"""kopf gives its tasks 5 s to finish; a pod's default terminationGracePeriodSeconds is 30."""


class OperatorProcess:
    """A running `kubetune operator`; kill() and start() again to test restarts."""

    def __init__(self, cluster: Any, kubeconfig: Path, log_path: Path, extra: list[str]) -> None:
        self.cluster = cluster
        self.kubeconfig = kubeconfig
        self.log_path = log_path
        self.extra = extra
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        env = {**os.environ, "KUBECONFIG": str(self.kubeconfig)}
        env.pop("KUBERNETES_SERVICE_HOST", None)
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [
                sys.executable, "-m", "kubetune.cli", "operator",
                "--sidecar-image", IMAGE,
                "--scrape-interval", "1",
                "--lease-namespace", OPERATOR_NAMESPACE,
                "--metrics-port", "0",  # several operators may run at once here
                *self.extra,
            ],
            env=env, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)

    def stop(self) -> None:
        """SIGTERM, as a pod's deletion sends it; the operator must be gone well within the default 30 s grace period."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=STOP_SECONDS)
            except subprocess.TimeoutExpired:
                self.kill()
                raise AssertionError(
                    f"the operator ignored SIGTERM for {STOP_SECONDS}s (killed); log: {self.log_path}"
                ) from None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def chart_access(cluster: Any, namespace: str, *helm_args: str) -> str:
    """The chart's ServiceAccount and RBAC for a release `kubetune` in `namespace`, as `helm template` renders them."""
    return str(
        cluster.helm(
            "template", "kubetune", str(CHART), "--namespace", namespace, "--kube-version", KUBE_VERSION,
            "--show-only", "templates/serviceaccount.yaml", "--show-only", "templates/rbac.yaml", *helm_args,
        ).stdout
    )  # fmt: skip


def install_operator_access(cluster: Any) -> Path:
    """CRD, namespace, and the chart's ServiceAccount and RBAC (nothing more); returns the ServiceAccount's kubeconfig."""
    install_crd(cluster, str(CRD), "hyperparametertuningjobs.kubetune.io")
    cluster.kubectl("create", "namespace", OPERATOR_NAMESPACE, check=False)
    cluster.kubectl("apply", "-f", "-", input=chart_access(cluster, OPERATOR_NAMESPACE))
    return Path(cluster.serviceaccount_kubeconfig(OPERATOR_NAMESPACE, "kubetune-operator"))


def tuning_job(name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "kubetune.io/v1alpha1",
        "kind": "HyperParameterTuningJob",
        "metadata": {"name": name},
        "spec": spec,
    }


def example(name: str, **changes: Any) -> dict[str, Any]:
    """An example from manifests/examples with this checkout's image and top-level spec fields changed."""
    resource = yaml.safe_load((EXAMPLES / name).read_text())
    template = resource["spec"]["trialTemplate"]
    jobs = (
        [r["template"]["spec"] for r in template["spec"]["replicatedJobs"]]
        if template.get("kind") == "JobSet"
        else [template["spec"]]
    )
    for job in jobs:  # a Job's pod template, or each of a JobSet's
        for container in job["template"]["spec"]["containers"]:
            container["image"] = IMAGE
    resource["spec"].update(changes)
    return dict(resource)


def apply(cluster: Any, namespace: str, resource: dict[str, Any]) -> None:
    cluster.kubectl("-n", namespace, "apply", "-f", "-", input=json.dumps(resource))


def get(cluster: Any, namespace: str, kind: str, name: str = "", selector: str = "") -> Any:
    """`kubectl -n NAMESPACE get KIND [NAME] [-l SELECTOR] -o json`, decoded; a missing object fails."""
    reader = getattr(cluster, "get_json", None)
    if reader is not None:  # without a kubectl process per poll (tests/cluster/kube.py, read_json)
        return reader(kind, name, namespace=namespace, selector=selector)
    args = ["-n", namespace, "get", kind, "-o", "json"]
    if name:
        args.insert(4, name)
    if selector:
        args += ["-l", selector]
    return json.loads(cluster.kubectl(*args).stdout)


def wait_until(predicate: Callable[[], Any], timeout: float, what: str, operator: OperatorProcess | None = None) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(0.5)
    tail = "\n".join(operator.log().splitlines()[-40:]) if operator else ""
    raise AssertionError(f"timed out after {timeout}s waiting for {what}; last: {last!r}\n{tail}")


def status_of(cluster: Any, namespace: str, name: str) -> dict[str, Any]:
    return dict(get(cluster, namespace, "hyperparametertuningjob", name).get("status") or {})


def wait_for_end(
    cluster: Any, namespace: str, name: str, operator: OperatorProcess, timeout: float = 240
) -> dict[str, Any]:
    def ended() -> dict[str, Any] | None:
        status = status_of(cluster, namespace, name)
        state = status.get("hyperParameterTuningJobStatus")
        return status if state in {"Completed", "Failed", "Stopped"} else None

    return dict(wait_until(ended, timeout, f"tuning job {name} to end", operator))
