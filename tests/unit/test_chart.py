"""The Helm chart without a cluster: lint, values schema, rendered objects, and the files generated from it."""

from __future__ import annotations

import ast
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

from kubetune.api import resource  # noqa: E402
from kubetune.api.template import TrialKind  # noqa: E402
from kubetune.operator import kueue  # noqa: E402
from kubetune.operator.kube import trial_path  # noqa: E402


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


def test_lease_timings_reach_the_operator(helm: str) -> None:
    args = _args(objects(helm, "--set", "leaderElection.leaseDuration=30", "--set", "leaderElection.renewDeadline=20"))
    assert "--leader-election" in args and _arg(args, "--lease-duration") == "30"
    assert _arg(args, "--lease-renew-deadline") == "20" and _arg(args, "--lease-retry-period") == "2"


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
    assert not [a for a in args if a.startswith("--lease-")], "no lease timings without leader election"
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
    ("kubetune.io", "hyperparametertuningjobs/status", "patch", ""),
    *{("batch", "jobs", v, "") for v in ("get", "list", "watch", "create", "patch")},
    *{("", "pods", v, "") for v in ("get", "list", "watch")},
    ("", "events", "create", ""),
    *{("kueue.x-k8s.io", "workloads", v, "") for v in ("get", "list", "watch", "patch")},
    *{("jobset.x-k8s.io", "jobsets", v, "") for v in ("get", "list", "watch", "create", "patch")},
}
"""What the README's table lists. Reads (get, list, watch) are kopf's watches of tuning jobs, Jobs, JobSets,
pods and Kueue's Workloads;
every write is one of Kube's calls in kube.py, which the next test reads off the source."""
CRDS = {("apiextensions.k8s.io", "customresourcedefinitions", v, "") for v in ("list", "watch")}
LEASE = {
    ("coordination.k8s.io", "leases", "create", ""),
    ("coordination.k8s.io", "leases", "get", "kubetune-operator"),
    ("coordination.k8s.io", "leases", "update", "kubetune-operator"),
}
WRITES = {"create", "update", "patch", "delete", "deletecollection"}
KUBE_PY = ROOT / "operator" / "kubetune" / "operator" / "kube.py"
VERBS = {"POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete", "GET": "get"}


def _path_text(node: ast.expr, assigned: dict[str, ast.expr]) -> str:
    """An f-string path with each placeholder kept as {NAME} (resource constants substituted), or a literal."""
    if isinstance(node, ast.Name) and node.id in assigned:
        return _path_text(assigned[node.id], assigned)
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    assert isinstance(node, ast.JoinedStr), ast.dump(node)
    names = {
        "GROUP": resource.GROUP,
        "VERSION": resource.VERSION,
        "PLURAL": resource.PLURAL,
        "kueue.GROUP": kueue.GROUP,
        "kueue.VERSION": kueue.VERSION,
        "kueue.PLURAL": kueue.PLURAL,
    }
    text = ""
    for part in node.values:
        if isinstance(part, ast.Constant):
            text += str(part.value)
        else:
            assert isinstance(part, ast.FormattedValue)
            source = ast.unparse(part.value)
            text += names.get(source, "{" + source + "}")
    return text


def _kube_calls() -> set[tuple[str, str, str]]:
    """(group, resource, verb) of every `self._call(METHOD, path, ...)` in kube.py."""
    found = set()
    for function in ast.walk(ast.parse(KUBE_PY.read_text())):
        if not isinstance(function, ast.AsyncFunctionDef | ast.FunctionDef):
            continue
        assigned = {
            target.id: stmt.value
            for stmt in ast.walk(function)
            if isinstance(stmt, ast.Assign)
            for target in stmt.targets
            if isinstance(target, ast.Name)
        }
        for call in ast.walk(function):
            if not (isinstance(call, ast.Call) and ast.unparse(call.func) == "self._call" and call.args):
                continue
            method = call.args[0]
            assert isinstance(method, ast.Constant), ast.unparse(call)
            for text in _paths(call.args[1], assigned):
                path = text.strip("/").split("/")
                group, rest = ("", path[2:]) if path[0] == "api" else (path[1], path[3:])
                assert rest[0] == "namespaces", path  # everything the operator writes is namespaced
                kind, named = rest[2], len(rest) > 3
                resource_name = kind + ("/" + rest[4] if len(rest) > 4 else "")
                verb = VERBS[method.value]
                if not named:
                    verb = {"get": "list", "delete": "deletecollection"}.get(verb, verb)
                found.add((group, resource_name, verb))
    return found


def _paths(node: ast.expr, assigned: dict[str, ast.expr]) -> list[str]:
    """The paths a call's path argument stands for: a trial_path(kind, namespace[, name]) call is
    one per trial kind, from the function itself; anything else is one f-string or literal."""
    if isinstance(node, ast.Name) and node.id in assigned:
        return _paths(assigned[node.id], assigned)
    if isinstance(node, ast.Call) and ast.unparse(node.func) == "trial_path":
        named = len(node.args) > 2
        return [trial_path(kind.value, "{namespace}", "{name}" if named else "") for kind in TrialKind]
    return [_path_text(node, assigned)]


def test_kube_py_calls_are_what_the_chart_grants() -> None:
    """Every request in kube.py is granted, and every write the chart grants is one kube.py makes."""
    calls = _kube_calls()
    assert calls, "found no self._call in kube.py"
    granted = {(g, r, v) for g, r, v, _ in NAMESPACED}
    assert calls <= granted, f"kube.py makes requests the chart does not grant: {sorted(calls - granted)}"
    granted_writes = {rule for rule in granted if rule[2] in WRITES}
    written = {call for call in calls if call[2] in WRITES}
    assert granted_writes == written, f"granted but never written by kube.py: {sorted(granted_writes - written)}"


def _operator_cluster_role(docs: list[dict[str, Any]]) -> dict[str, Any]:
    return next(d for d in docs if d["kind"] == "ClusterRole" and d["metadata"]["name"] == "kubetune-operator")


def test_rbac_cluster_wide_is_exactly_what_the_operator_uses(helm: str) -> None:
    """A change here is a change of the README's RBAC list: keep them together."""
    docs = objects(helm)
    assert _rules(_operator_cluster_role(docs)) == NAMESPACED | CRDS
    (binding,) = [d for d in docs if d["kind"] == "ClusterRoleBinding"]
    assert binding["roleRef"]["name"] == "kubetune-operator"
    (lease_role,) = [d for d in docs if d["kind"] == "Role"]
    assert lease_role["metadata"]["namespace"] == "kubetune-system" and _rules(lease_role) == LEASE
    kinds = sorted(d["kind"] for d in docs)
    assert kinds == sorted(
        [
            *["ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding", "ServiceAccount", "Service", "Deployment"],
            *["ClusterRole", "ClusterRole", "ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding"],
        ]
    )


def test_rbac_per_namespace_grants_nothing_cluster_wide(helm: str) -> None:
    docs = objects(helm, "--set", "watchNamespaces={team-a,team-b}")
    assert not [d for d in docs if d["kind"] == "ClusterRoleBinding"], "nothing cluster-scoped: kopf's scanning is off"
    user_roles = [d for d in docs if d["kind"] == "ClusterRole"]
    assert sorted(r["metadata"]["name"] for r in user_roles) == ["kubetune-edit", "kubetune-view"]
    assert all(d["roleRef"]["kind"] == "Role" for d in docs if d["kind"] == "RoleBinding"), "the user roles are unbound"
    roles = {
        d["metadata"]["namespace"]: d for d in docs if d["kind"] == "Role" and "leader" not in d["metadata"]["name"]
    }
    assert set(roles) == {"team-a", "team-b"} and all(_rules(r) == NAMESPACED for r in roles.values())
    bindings = [d for d in docs if d["kind"] == "RoleBinding" and d["metadata"]["namespace"] in roles]
    assert all(b["subjects"][0]["namespace"] == "kubetune-system" for b in bindings) and len(bindings) == 2


def _policy(docs: list[dict[str, Any]]) -> tuple[dict[str, Any], dict[str, Any]]:
    (policy,) = [d for d in docs if d["kind"] == "ValidatingAdmissionPolicy"]
    (binding,) = [d for d in docs if d["kind"] == "ValidatingAdmissionPolicyBinding"]
    return policy, binding


def test_admission_policy_is_on_by_default_and_binds_itself(helm: str) -> None:
    policy, binding = _policy(objects(helm))
    assert policy["apiVersion"] == binding["apiVersion"] == "admissionregistration.k8s.io/v1"
    assert binding["spec"] == {"policyName": policy["metadata"]["name"], "validationActions": ["Deny"]}
    spec = policy["spec"]
    assert spec["failurePolicy"] == "Fail"
    (rule,) = spec["matchConstraints"]["resourceRules"]
    # The resource itself only: the operator's writes to the status subresource are never matched.
    assert rule["resources"] == ["hyperparametertuningjobs"] and rule["apiGroups"] == ["kubetune.io"]
    assert rule["operations"] == ["CREATE", "UPDATE"]
    (condition,) = spec["matchConditions"]
    assert "'stopped'" in condition["expression"] and "request.operation == 'CREATE'" in condition["expression"]
    checks = " ".join(v["expression"] for v in spec["validations"])
    assert "authorizer.group('batch').resource('jobs').namespace(request.namespace).check('create')" in checks
    messages = " ".join(v.get("message", "") + v.get("messageExpression", "") for v in spec["validations"])
    for field in ("metadata.namespace", "metadata.ownerReferences"):
        assert f"spec.trialTemplate.{field} must not be set" in messages
        assert f"spec.trialTemplate.spec.template.{field} must not be set" in messages
    assert "a tuning job creates its trials as Jobs" in messages


def test_admission_policy_and_user_roles_can_be_turned_off(helm: str) -> None:
    docs = objects(helm, "--set", "admissionPolicy.enabled=false", "--set", "aggregatedRoles.enabled=false")
    assert not [d for d in docs if d["kind"].startswith("ValidatingAdmissionPolicy")]
    assert [d["metadata"]["name"] for d in docs if d["kind"] == "ClusterRole"] == ["kubetune-operator"]


def test_user_roles_aggregate_into_admin_edit_and_view(helm: str) -> None:
    roles = {d["metadata"]["name"]: d for d in objects(helm) if d["kind"] == "ClusterRole"}
    edit, view = roles["kubetune-edit"], roles["kubetune-view"]
    aggregate = "rbac.authorization.k8s.io/aggregate-to-"
    assert {k: v for k, v in edit["metadata"]["labels"].items() if k.startswith(aggregate)} == {
        f"{aggregate}admin": "true",
        f"{aggregate}edit": "true",
    }
    assert {k: v for k, v in view["metadata"]["labels"].items() if k.startswith(aggregate)} == {
        f"{aggregate}view": "true"
    }
    everything = ("create", "update", "patch", "delete", "deletecollection", "get", "list", "watch")
    assert _rules(edit) == {
        *{("kubetune.io", "hyperparametertuningjobs", v, "") for v in everything},
        *{("kubetune.io", "hyperparametertuningjobs/status", v, "") for v in ("get", "list", "watch")},
    }
    assert _rules(view) == {
        ("kubetune.io", r, v, "")
        for r in ("hyperparametertuningjobs", "hyperparametertuningjobs/status")
        for v in ("get", "list", "watch")
    }


def test_chart_needs_the_kubernetes_that_has_admission_policies(helm: str) -> None:
    result = template(helm, "--kube-version", "1.29.9", check=False)
    assert result.returncode != 0 and "kubeVersion: >=1.30.0-0" in result.stderr, result.stderr


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


def test_one_version_for_the_package_the_chart_and_its_image() -> None:
    """kubetune.__version__ is a constant (no metadata lookup at import); the installed metadata, the chart's
    appVersion and its default image tag must all say the same."""
    from importlib.metadata import version

    import kubetune

    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert version("kubetune") == kubetune.__version__ == chart["appVersion"]
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert values["image"].get("tag") in ("", None, kubetune.__version__), values["image"]
