"""Installing kubetune as a user would, on the local control plane.

`helm install` of charts/kubetune with its default image: the local node agent
runs `ghcr.io/kubetune/kubetune:*` as this virtualenv's `kubetune` (e2e/README.md),
so the operator runs as the chart's Deployment, in its pod, with the chart's
ServiceAccount token and RBAC and nothing else. Every example in
manifests/examples is applied with kubectl, as it stands, and must complete.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.cluster.kube import install_crd
from tests.cluster.operator.harness import (
    CHART,
    CRD,
    EXAMPLES,
    OperatorProcess,
    chart_access,
    example,
    status_of,
    wait_until,
)

pytestmark = pytest.mark.cluster

ROOT = Path(__file__).resolve().parents[3]
RELEASE = "kt-install"
RELEASE_NAMESPACE = "kubetune-helm"
OPERATOR = f"{RELEASE}-kubetune-operator"
SELECTOR = f"app.kubernetes.io/instance={RELEASE}"
ENDED = {"Completed", "Failed", "Stopped"}
KIND = "HyperParameterTuningJob"


def _json(cluster: Any, *args: str) -> Any:
    return json.loads(cluster.kubectl(*args, "-o", "json").stdout)


def _http(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=3) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, ""
    except OSError:
        return 0, ""


class Release:
    def __init__(self, cluster: Any) -> None:
        self.cluster = cluster

    def pod(self) -> dict[str, Any] | None:
        pods = _json(self.cluster, "-n", RELEASE_NAMESPACE, "get", "pods", "-l", SELECTOR)["items"]
        running = [p for p in pods if p["status"].get("phase") == "Running" and p["status"].get("podIP")]
        return running[0] if running else None

    def url(self, path: str) -> str:
        pod = wait_until(self.pod, 60, "the operator pod to run")
        return f"http://{pod['status']['podIP']}:8080{path}"

    def logs(self) -> str:
        result = self.cluster.kubectl("-n", RELEASE_NAMESPACE, "logs", f"deploy/{OPERATOR}", "--tail=60", check=False)
        return str(result.stdout + result.stderr)


@pytest.fixture(scope="module")
def release(cluster: Any) -> Iterator[Release]:
    cluster.helm(
        "install", RELEASE, str(CHART), "--namespace", RELEASE_NAMESPACE, "--create-namespace",
        "--set", "scrape.interval=1", "--set", "logFormat=text", "--wait", "--timeout", "120s",
    )  # fmt: skip
    installed = Release(cluster)
    try:
        wait_until(lambda: _http(installed.url("/readyz"))[0] == 200, 60, "the operator to be ready")
        yield installed
    finally:
        cluster.helm("uninstall", RELEASE, "--namespace", RELEASE_NAMESPACE, "--wait", check=False)


def test_examples_complete_under_the_helm_installed_operator(cluster: Any, namespace: str, release: Release) -> None:
    # Every tuning job in the folder; restricted-namespace.yaml is a Namespace, tests/cluster/test_tenants.py runs it.
    files = [f for f in sorted(EXAMPLES.glob("*.yaml")) if yaml.safe_load(f.read_text())["kind"] == KIND]
    strategies = {example(f.name)["spec"]["strategy"] for f in files}
    assert strategies == {"Grid", "Random", "Bayesian", "Hyperband"}, "at least one example per strategy"
    names = {}
    for path in files:  # as they stand: the image is the chart's default, mapped to this venv
        cluster.kubectl("-n", namespace, "apply", "-f", str(path))
        names[path.name] = example(path.name)["metadata"]["name"]

    def all_ended() -> dict[str, Any] | None:
        statuses = {n: status_of(cluster, namespace, n) for n in names.values()}
        return statuses if all(s.get("hyperParameterTuningJobStatus") in ENDED for s in statuses.values()) else None

    deadline = time.monotonic() + 600
    statuses = None
    while time.monotonic() < deadline and statuses is None:
        statuses = all_ended()
        time.sleep(2)
    assert statuses is not None, f"examples still running after 600 s\n{release.logs()}"
    for name, status in statuses.items():
        assert status["hyperParameterTuningJobStatus"] == "Completed", (name, status, release.logs())
        assert status["bestTrainingJob"]["finalObjectiveValue"] > 0.5, (name, status["bestTrainingJob"])

    code, text = _http(release.url("/metrics"))
    assert code == 200
    for name in names.values():
        assert f'kubetune_trials_started_total{{namespace="{namespace}",tuning_job="{name}"}}' in text
        assert (
            f'kubetune_tuning_jobs_ended_total{{namespace="{namespace}",status="Completed"}} {float(len(names))}'
            in text
        )
    for strategy in ("Grid", "Random", "Bayesian", "Hyperband"):
        assert f'kubetune_suggestion_duration_seconds_count{{strategy="{strategy}"}}' in text
    assert 'kubetune_trials_stopped_total{namespace="' in text  # Hyperband stops the losers at its rungs
    assert "kubetune_reconcile_duration_seconds_count" in text and "kubetune_leader 1.0" in text
    assert "process_resident_memory_bytes" in text and "python_info{" in text  # prometheus_client's collectors
    assert _http(release.url("/healthz"))[0] == 200


def test_the_chart_service_account_can_do_nothing_else(cluster: Any, release: Release) -> None:
    user = f"system:serviceaccount:{RELEASE_NAMESPACE}:{OPERATOR}"
    for verb, resource in [("get", "secrets"), ("list", "configmaps"), ("create", "pods"), ("delete", "jobs"),
                           ("update", "hyperparametertuningjobs.kubetune.io"), ("create", "deployments.apps")]:  # fmt: skip
        answer = cluster.kubectl("auth", "can-i", verb, resource, "-A", "--as", user, check=False).stdout.strip()
        assert answer == "no", (verb, resource)
    answer = cluster.kubectl(
        "auth", "can-i", "get", "leases/someone-else", "-n", RELEASE_NAMESPACE, "--as", user, check=False
    )
    assert answer.stdout.strip() == "no"


def test_install_yaml_is_accepted_by_the_api_server(cluster: Any, release: Release) -> None:
    cluster.kubectl("create", "namespace", "kubetune-system", check=False)
    result = cluster.kubectl(
        "apply",
        "--server-side",
        "--force-conflicts",
        "--dry-run=server",
        "-f",
        str(ROOT / "manifests" / "install.yaml"),
    )
    for kind in (
        "customresourcedefinition", "deployment.apps", "clusterrole", "serviceaccount", "service",
        "validatingadmissionpolicy.admissionregistration.k8s.io",
        "validatingadmissionpolicybinding.admissionregistration.k8s.io",
    ):  # fmt: skip
        assert kind in result.stdout, result.stdout


def test_uninstall_leaves_no_operator_objects_but_keeps_the_crd(cluster: Any, release: Release) -> None:
    cluster.helm("uninstall", RELEASE, "--namespace", RELEASE_NAMESPACE, "--wait")
    kinds = "deployments,replicasets,pods,services,serviceaccounts,roles,rolebindings,configmaps,secrets"

    def gone() -> bool:
        left = _json(cluster, "-n", RELEASE_NAMESPACE, "get", kinds, "-l", SELECTOR)["items"]
        return not left

    wait_until(gone, 60, "the release's objects to go")
    assert not _json(cluster, "get", "clusterroles,clusterrolebindings", "-l", SELECTOR)["items"]
    pods = _json(cluster, "-n", RELEASE_NAMESPACE, "get", "pods")["items"]
    assert not pods, [p["metadata"]["name"] for p in pods]
    assert cluster.helm("list", "-A", "-q").stdout.split().count(RELEASE) == 0
    crd = _json(cluster, "get", "crd", "hyperparametertuningjobs.kubetune.io")
    assert crd["metadata"]["name"] == "hyperparametertuningjobs.kubetune.io"  # Helm never deletes CRDs


def test_per_namespace_rbac_is_enough(cluster: Any, namespace: str, tmp_path: Path) -> None:
    """watchNamespaces: the operator runs with Roles in the watched namespace only, and that suffices."""
    home = "kubetune-scoped"
    install_crd(cluster, str(CRD), "hyperparametertuningjobs.kubetune.io")
    cluster.kubectl("create", "namespace", home, check=False)
    access = chart_access(cluster, home, "--set", f"watchNamespaces={{{namespace}}}")
    cluster.kubectl("apply", "-f", "-", input=access)
    try:
        kubeconfig = Path(cluster.serviceaccount_kubeconfig(home, "kubetune-operator"))
        other = cluster.kubectl("auth", "can-i", "list", "jobs", "-n", "default", kubeconfig=kubeconfig, check=False)
        assert other.stdout.strip() == "no"
        process = OperatorProcess(
            cluster, kubeconfig, tmp_path / "operator.log", ["--namespace", namespace, "--lease-namespace", home]
        )
        process.start()
        try:
            resource = example(
                "random.yaml", resourceLimits={"maxNumberOfTrainingJobs": 2, "maxParallelTrainingJobs": 2}
            )
            resource["spec"]["staticHyperParameters"]["epochs"] = 2
            cluster.kubectl("-n", namespace, "apply", "-f", "-", input=json.dumps(resource))

            def ended() -> str | None:
                state = status_of(cluster, namespace, "digits-random").get("hyperParameterTuningJobStatus")
                return state if state in ENDED else None

            assert wait_until(ended, 180, "the scoped tuning job to end", process) == "Completed"
            assert "Forbidden" not in process.log(), process.log()[-3000:]  # kopf names a 403 so
        finally:
            process.stop()
    finally:
        cluster.kubectl("delete", "-f", "-", "--wait=false", input=access, check=False)
