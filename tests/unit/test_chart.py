"""The Helm chart without a cluster: lint, values schema, rendered objects, and the files generated from it."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "kubetune"
sys.path.insert(0, str(ROOT / "charts"))

import render_install  # noqa: E402


@pytest.fixture(scope="module")
def helm() -> str:
    try:
        return render_install.helm_binary()
    except SystemExit:
        pytest.skip("helm is not built yet (bash e2e/build.sh)")


def template(helm: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [helm, "template", "kubetune", str(CHART), "--namespace", "kubetune-system", "--kube-version", "1.34.0", *args],
        capture_output=True, text=True, check=check,
    )  # fmt: skip


def objects(helm: str, *args: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(template(helm, *args).stdout) if d]


def test_helm_lint_is_clean(helm: str) -> None:
    result = subprocess.run([helm, "lint", "--strict", str(CHART)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "[WARNING]" not in result.stdout and "[ERROR]" not in result.stdout, result.stdout


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ("logLevel=LOUD", "at '/logLevel': value must be one of 'DEBUG', 'INFO', 'WARNING', 'ERROR'"),
        ("logFormat=xml", "at '/logFormat': value must be one of 'json', 'text'"),
        ("scrape.interval=0", "at '/scrape/interval': exclusiveMinimum"),
        ("watchNamespaces[0]=Not_A_Namespace", "at '/watchNamespaces/0': 'Not_A_Namespace' does not match pattern"),
        ("image.pullPolicy=Sometimes", "at '/image/pullPolicy': value must be one of"),
        ("sidecar.port=70000", "at '/sidecar/port': maximum"),
        ("resources.requests.memory=lots", "at '/resources/requests/memory': 'lots' does not match pattern"),
        ("replicas=2", "additional properties 'replicas' not allowed"),
        ("metrics.serviceMonitor.interval=often", "at '/metrics/serviceMonitor/interval'"),
    ],
)
def test_schema_rejects_wrong_values_clearly(helm: str, setting: str, message: str) -> None:
    result = template(helm, "--set", setting, check=False)
    assert result.returncode != 0
    assert "values don't meet the specifications of the schema" in result.stderr
    assert message in result.stderr, result.stderr


def test_service_monitor_without_service_says_why(helm: str) -> None:
    result = template(
        helm, "--set", "metrics.serviceMonitor.enabled=true", "--set", "metrics.service.enabled=false", check=False
    )
    assert result.returncode != 0 and "needs metrics.service.enabled" in result.stderr


def test_chart_crd_is_the_generated_one() -> None:
    committed = (ROOT / "crds" / "hyperparametertuningjobs.kubetune.io.yaml").read_text()
    assert (CHART / "crds" / "hyperparametertuningjobs.kubetune.io.yaml").read_text() == committed, (
        "charts/kubetune/crds is stale: run `make crd`"
    )


def test_install_yaml_is_not_stale(helm: str) -> None:
    assert render_install.OUTPUT.read_text() == render_install.render(), (
        "manifests/install.yaml is stale: run `make manifests`"
    )


def _deployment(docs: list[dict[str, Any]]) -> dict[str, Any]:
    return next(d for d in docs if d["kind"] == "Deployment")


def _args(docs: list[dict[str, Any]]) -> list[str]:
    return list(_deployment(docs)["spec"]["template"]["spec"]["containers"][0]["args"])


def _arg(args: list[str], flag: str) -> str:
    return next(a.split("=", 1)[1] for a in args if a.startswith(flag + "="))


def test_operator_and_sidecar_are_locked_down(helm: str) -> None:
    docs = objects(helm)
    pod = _deployment(docs)["spec"]["template"]["spec"]
    container = pod["containers"][0]
    sidecar = json.loads(_arg(_args(docs), "--sidecar-security-context"))
    assert pod["securityContext"]["runAsNonRoot"] is True
    for context in (container["securityContext"], sidecar):
        assert context["readOnlyRootFilesystem"] is True
        assert context["allowPrivilegeEscalation"] is False
        assert context["capabilities"] == {"drop": ["ALL"]}
        assert context["seccompProfile"] == {"type": "RuntimeDefault"}
    assert sidecar["runAsNonRoot"] is True
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert {e["name"] for e in container["env"]} >= {"POD_NAME", "POD_NAMESPACE"}


def test_values_reach_the_operators_command_line(helm: str) -> None:
    docs = objects(
        helm,
        "--set", "watchNamespaces={team-a,team-b}", "--set", "scrape.interval=2.5", "--set", "logFormat=text",
        "--set", "sidecar.image.repository=example.org/sidecar", "--set", "sidecar.pullPolicy=Always",
        "--set", "leaderElection.enabled=false", "--set", "priorityClassName=high",
        "--set", "nodeSelector.pool=ops", "--set", "tolerations[0].operator=Exists",
    )  # fmt: skip
    args = _args(docs)
    assert args[:3] == ["--log-level=INFO", "--log-format=text", "operator"]
    assert [a for a in args if a.startswith("--namespace=")] == ["--namespace=team-a", "--namespace=team-b"]
    assert _arg(args, "--sidecar-image") == "example.org/sidecar:0.1.0"
    assert _arg(args, "--sidecar-image-pull-policy") == "Always"
    assert _arg(args, "--scrape-interval") == "2.5" and "--no-leader-election" in args
    assert json.loads(_arg(args, "--sidecar-resources"))["limits"] == {"memory": "128Mi"}
    pod = _deployment(docs)["spec"]["template"]["spec"]
    assert pod["priorityClassName"] == "high" and pod["nodeSelector"] == {"pool": "ops"}
    assert pod["tolerations"] == [{"operator": "Exists"}]
    assert not any(d["kind"] == "Role" and d["metadata"]["name"].endswith("leader-election") for d in docs)


def _rules(doc: dict[str, Any]) -> set[tuple[str, str, str, str]]:
    return {
        (group, resource, verb, ",".join(rule.get("resourceNames", [])))
        for rule in doc["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }


NAMESPACED = {
    *{("kubetune.io", "hyperparametertuningjobs", v, "") for v in ("get", "list", "watch", "patch")},
    *{("kubetune.io", "hyperparametertuningjobs/status", v, "") for v in ("get", "patch")},
    *{("batch", "jobs", v, "") for v in ("get", "list", "watch", "create", "patch")},
    *{("", "pods", v, "") for v in ("get", "list", "watch", "delete", "deletecollection")},
    *{(g, "events", v, "") for g in ("", "events.k8s.io") for v in ("create", "patch")},
}
CRDS = {("apiextensions.k8s.io", "customresourcedefinitions", v, "") for v in ("list", "watch")}
LEASE = {
    ("coordination.k8s.io", "leases", "create", ""),
    ("coordination.k8s.io", "leases", "get", "kubetune-operator"),
    ("coordination.k8s.io", "leases", "update", "kubetune-operator"),
}


def test_rbac_cluster_wide_is_exactly_what_the_operator_uses(helm: str) -> None:
    """A change here is a change of the README's RBAC list: keep them together."""
    docs = objects(helm)
    cluster_role = next(d for d in docs if d["kind"] == "ClusterRole")
    assert _rules(cluster_role) == NAMESPACED | CRDS
    (lease_role,) = [d for d in docs if d["kind"] == "Role"]
    assert lease_role["metadata"]["namespace"] == "kubetune-system" and _rules(lease_role) == LEASE
    kinds = sorted(d["kind"] for d in docs)
    assert kinds == sorted(
        ["ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding", "ServiceAccount", "Service", "Deployment"]
    )


def test_rbac_per_namespace_grants_nothing_cluster_wide(helm: str) -> None:
    docs = objects(helm, "--set", "watchNamespaces={team-a,team-b}")
    assert not [d for d in docs if d["kind"].startswith("Cluster")], "nothing cluster-scoped: kopf's scanning is off"
    roles = {
        d["metadata"]["namespace"]: d for d in docs if d["kind"] == "Role" and "leader" not in d["metadata"]["name"]
    }
    assert set(roles) == {"team-a", "team-b"} and all(_rules(r) == NAMESPACED for r in roles.values())
    bindings = [d for d in docs if d["kind"] == "RoleBinding" and d["metadata"]["namespace"] in roles]
    assert all(b["subjects"][0]["namespace"] == "kubetune-system" for b in bindings) and len(bindings) == 2


# Kubernetes objects passed through whole: one row each, their default as one JSON value.
WHOLE = {"resources", "sidecar.resources", "securityContext", "sidecar.securityContext", "podSecurityContext"}


def _flatten(values: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, dict) and value and f"{prefix}{key}" not in WHOLE:
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


TABLE_ROW = re.compile(r"^\| `([^`]+)` \| `(.*)` \| .+ \|$")


def test_readme_configuration_table_matches_values_yaml() -> None:
    """Every value in values.yaml has one row in the chart README, with its default as JSON."""
    values = _flatten(yaml.safe_load((CHART / "values.yaml").read_text()))
    rows = {}
    for line in (CHART / "README.md").read_text().splitlines():
        match = TABLE_ROW.match(line)
        if match:
            rows[match.group(1)] = match.group(2)
    assert sorted(rows) == sorted(values), "charts/kubetune/README.md's table and values.yaml list different keys"
    for key, default in values.items():
        assert json.loads(rows[key]) == default, f"{key}: README says {rows[key]}, values.yaml {default!r}"
