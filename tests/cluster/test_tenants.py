"""A tuning job grants nothing its creator lacks: issue 11's attacks, as an unprivileged tenant.

The tenants are ServiceAccounts with their own RBAC, created through the API
and authenticated with TokenRequest tokens, so the API server's authorizer
and admission treat them exactly as it would a person. The chart's admission
policy and aggregated roles are applied as `helm template` renders them; the
operator is the harness's (`kubetune operator` under the chart's RBAC), with
the chart's default sidecar securityContext so its trial pods can pass the
"restricted" Pod Security Standard.
"""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.cluster.kube import install_crd
from tests.cluster.operator.harness import (
    CHART,
    CRD,
    IMAGE,
    KUBE_VERSION,
    OperatorProcess,
    example,
    get,
    install_operator_access,
    status_of,
    wait_for_end,
    wait_until,
)

pytestmark = pytest.mark.cluster

RELEASE = "kt-tenants"
POLICY = f"{RELEASE}-kubetune-trial-rights"
EXAMPLES = Path(__file__).resolve().parents[2] / "manifests" / "examples"
HPTJ = "hyperparametertuningjobs.kubetune.io"
TEMPLATES = ("templates/admission-policy.yaml", "templates/user-roles.yaml")


def chart_objects(cluster: Any) -> str:
    """The chart's admission policy, its binding and the aggregated roles, as the chart renders them."""
    args = [a for t in TEMPLATES for a in ("--show-only", t)]
    return str(
        cluster.helm(
            "template", RELEASE, str(CHART), "--namespace", "kubetune-system", "--kube-version", KUBE_VERSION, *args
        ).stdout
    )


def hostile(name: str, service_account: str) -> dict[str, Any]:
    """Issue 11's attack: a trial pod as a cluster-admin ServiceAccount, privileged, on the host, with / mounted."""
    return {
        "apiVersion": "kubetune.io/v1alpha1",
        "kind": "HyperParameterTuningJob",
        "metadata": {"name": name},
        "spec": {
            "strategy": "Random",
            "objective": {"metricName": "loot", "type": "Maximize"},
            "resourceLimits": {"maxNumberOfTrainingJobs": 1, "maxParallelTrainingJobs": 1},
            "parameterRanges": {"integerParameterRanges": [{"name": "n", "minValue": 1, "maxValue": 2}]},
            "trialTemplate": {
                "spec": {
                    "backoffLimit": 0,
                    "template": {
                        "spec": {
                            "serviceAccountName": service_account,
                            "hostNetwork": True,
                            "hostPID": True,
                            "restartPolicy": "Never",
                            "volumes": [{"name": "host", "hostPath": {"path": "/"}}],
                            "containers": [
                                {
                                    "name": "train",
                                    "image": IMAGE,
                                    "command": ["sh", "-c", "cat /host/etc/shadow; kubectl get secrets -A -o yaml"],
                                    "securityContext": {"privileged": True},
                                    "volumeMounts": [{"name": "host", "mountPath": "/host"}],
                                }
                            ],
                        }
                    },
                }
            },
        },
    }


class Tenant:
    """A ServiceAccount with its own RBAC in one namespace, and a kubeconfig that authenticates as it."""

    def __init__(self, cluster: Any, namespace: str, name: str, kubeconfig: Path) -> None:
        self.cluster = cluster
        self.namespace = namespace
        self.name = name
        self.kubeconfig = kubeconfig
        self.username = f"system:serviceaccount:{namespace}:{name}"

    def kubectl(self, *args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
        result: subprocess.CompletedProcess[str] = self.cluster.kubectl(
            "-n", self.namespace, *args, input=input, kubeconfig=self.kubeconfig, check=False
        )
        return result

    def can_i(self, verb: str, resource: str) -> bool:
        return self.kubectl("auth", "can-i", verb, resource).stdout.strip() == "yes"


def make_tenant(
    cluster: Any, namespace: str, name: str, *, rules: list[dict[str, Any]] | None = None, cluster_role: str = ""
) -> Tenant:
    """A ServiceAccount bound to a Role of these rules, or to an existing ClusterRole, in namespace only."""
    objects: list[dict[str, Any]] = [{"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": name}}]
    role_ref = {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": cluster_role}
    if rules is not None:
        role = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": {"name": name}}
        objects.append({**role, "rules": rules})
        role_ref = {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name}
    objects.append(
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"name": name},
            "roleRef": role_ref,
            "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": namespace}],
        }
    )
    cluster.kubectl("-n", namespace, "apply", "-f", "-", input=yaml.safe_dump_all(objects))
    return Tenant(cluster, namespace, name, Path(cluster.serviceaccount_kubeconfig(namespace, name)))


def tuning_jobs_only(verbs: list[str]) -> list[dict[str, Any]]:
    return [{"apiGroups": ["kubetune.io"], "resources": ["hyperparametertuningjobs"], "verbs": verbs}]


def small_random(name: str) -> dict[str, Any]:
    resource = example("random.yaml", resourceLimits={"maxNumberOfTrainingJobs": 2, "maxParallelTrainingJobs": 2})
    resource["metadata"]["name"] = name
    resource["spec"]["staticHyperParameters"]["epochs"] = 2
    return resource


def admin_may_create(cluster: Any, namespace: str, resource: dict[str, Any]) -> subprocess.CompletedProcess[str]:
    result: subprocess.CompletedProcess[str] = cluster.kubectl(
        "-n", namespace, "create", "-f", "-", input=json.dumps(resource), check=False
    )
    return result


def _grants_tuning_jobs(cluster: Any, role: str) -> bool:
    rules = json.loads(cluster.kubectl("get", "clusterrole", role, "-o", "json").stdout).get("rules") or []
    return any("hyperparametertuningjobs" in r.get("resources", []) for r in rules)


@pytest.fixture(scope="module")
def policy(cluster: Any) -> Iterator[None]:
    """The chart's policy and roles, in force: a template naming a namespace is refused, edit includes tuning jobs."""
    objects = chart_objects(cluster)
    install_crd(cluster, str(CRD), HPTJ)
    cluster.kubectl("apply", "-f", "-", input=objects)
    probe_namespace = f"tenants-probe-{uuid.uuid4().hex[:5]}"
    cluster.kubectl("create", "namespace", probe_namespace)
    try:
        probe = small_random("probe")
        probe["spec"]["trialTemplate"]["metadata"] = {"namespace": "elsewhere"}

        def enforced() -> bool:
            result = cluster.kubectl(
                "-n", probe_namespace, "create", "--dry-run=server", "-f", "-", input=json.dumps(probe), check=False
            )
            return result.returncode != 0 and POLICY in result.stderr

        wait_until(enforced, 60, "the admission policy to be enforced")
        for role in ("admin", "edit", "view"):  # the clusterrole-aggregation-controller copies the rules in
            wait_until(lambda r=role: _grants_tuning_jobs(cluster, r), 60, f"ClusterRole {role} to include tuning jobs")
        yield
    finally:
        cluster.kubectl("delete", "namespace", probe_namespace, "--wait=false", check=False)
        cluster.kubectl("delete", "-f", "-", "--ignore-not-found", input=objects, check=False)


@pytest.fixture(scope="module")
def operator(cluster: Any, policy: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[OperatorProcess]:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    kubeconfig = install_operator_access(cluster)
    log_path = tmp_path_factory.mktemp("tenants") / "operator.log"
    process = OperatorProcess(
        cluster,
        kubeconfig,
        log_path,
        ["--no-leader-election", f"--sidecar-security-context={json.dumps(values['sidecar']['securityContext'])}"],
    )
    process.start()
    try:
        yield process
    finally:
        process.stop()
        print(f"operator log: {log_path}")


@pytest.fixture
def cluster_admin_account(cluster: Any, namespace: str) -> Iterator[str]:
    """A ServiceAccount of the namespace bound to cluster-admin, as in the issue: what a hostile trial would run as."""
    name = "ci-deployer"
    binding = f"{namespace}-{name}"
    cluster.kubectl("-n", namespace, "create", "serviceaccount", name)
    cluster.kubectl(
        "create", "clusterrolebinding", binding, "--clusterrole=cluster-admin", f"--serviceaccount={namespace}:{name}"
    )
    try:
        yield name
    finally:
        cluster.kubectl("delete", "clusterrolebinding", binding, "--ignore-not-found", check=False)


def test_a_tenant_without_job_rights_cannot_run_the_hostile_trial(
    cluster: Any, namespace: str, operator: OperatorProcess, cluster_admin_account: str
) -> None:
    alice = make_tenant(cluster, namespace, "alice", rules=tuning_jobs_only(["create", "get"]))
    assert alice.can_i("create", HPTJ)
    for verb, resource in [("create", "jobs.batch"), ("create", "pods"), ("list", "secrets"), ("get", "secrets")]:
        assert not alice.can_i(verb, resource), (verb, resource)

    result = alice.kubectl("create", "-f", "-", input=json.dumps(hostile("train", cluster_admin_account)))
    assert result.returncode != 0
    message = result.stderr
    assert POLICY in message and "denied request" in message, message
    assert f'user "{alice.username}" may not create jobs.batch in namespace "{namespace}"' in message, message
    assert "a tuning job creates its trials as Jobs" in message, message

    assert get(cluster, namespace, "hyperparametertuningjobs")["items"] == []
    # The operator runs: had the tuning job been admitted, it would have created its trial by now.
    wait_until(lambda: "operator.started" in operator.log(), 30, "the operator to run", operator)
    assert get(cluster, namespace, "jobs")["items"] == [] and get(cluster, namespace, "pods")["items"] == []


def test_stopping_needs_no_job_rights_but_changing_the_trials_does(
    cluster: Any, namespace: str, operator: OperatorProcess
) -> None:
    """A change of spec.stopped alone creates no trial, so a user who may only patch tuning jobs may stop one."""
    resource = small_random("stoppable")
    resource["spec"]["trialTemplate"]["spec"]["suspend"] = True  # its trials never run: nothing to wait for
    created = admin_may_create(cluster, namespace, resource)
    assert created.returncode == 0, created.stderr
    stopper = make_tenant(cluster, namespace, "stopper", rules=tuning_jobs_only(["get", "patch"]))

    retemplate = {"spec": {"trialTemplate": {"spec": {"activeDeadlineSeconds": 7}}}}
    refused = stopper.kubectl("patch", "hptj", "stoppable", "--type=merge", "-p", json.dumps(retemplate))
    assert refused.returncode != 0 and "may not create jobs.batch" in refused.stderr, refused.stderr
    assert "change the trials of" in refused.stderr, refused.stderr
    other = {"spec": {"resourceLimits": {"maxNumberOfTrainingJobs": 3}}}
    refused = stopper.kubectl("patch", "hptj", "stoppable", "--type=merge", "-p", json.dumps(other))
    assert refused.returncode != 0 and "may not create jobs.batch" in refused.stderr, refused.stderr

    stopped = stopper.kubectl("patch", "hptj", "stoppable", "--type=merge", "-p", '{"spec":{"stopped":true}}')
    assert stopped.returncode == 0, stopped.stderr
    labelled = stopper.kubectl("label", "hptj", "stoppable", "team=a")
    assert labelled.returncode == 0, labelled.stderr  # metadata is not what trials are made of
    assert wait_for_end(cluster, namespace, "stoppable", operator, 60)["hyperParameterTuningJobStatus"] == "Stopped"


def test_edit_and_view_include_tuning_jobs_through_aggregation(
    cluster: Any, namespace: str, operator: OperatorProcess
) -> None:
    editor = make_tenant(cluster, namespace, "alice", cluster_role="edit")
    viewer = make_tenant(cluster, namespace, "victor", cluster_role="view")
    for verb in ("create", "update", "patch", "delete", "deletecollection", "get", "list", "watch"):
        assert editor.can_i(verb, HPTJ), verb
    assert viewer.can_i("list", HPTJ) and not viewer.can_i("create", HPTJ) and not viewer.can_i("patch", HPTJ)

    resource = small_random("edited")
    created = editor.kubectl("create", "-f", "-", input=json.dumps(resource))
    assert created.returncode == 0, created.stderr  # edit has create on jobs.batch: the policy admits her
    patched = editor.kubectl("patch", "hptj", "edited", "--type=merge", "-p", '{"spec":{"stopped":true}}')
    assert patched.returncode == 0, patched.stderr
    retemplated = editor.kubectl(
        "patch", "hptj", "edited", "--type=merge", "-p", '{"spec":{"trialTemplate":{"spec":{"backoffLimit":1}}}}'
    )
    assert retemplated.returncode == 0, retemplated.stderr

    seen = viewer.kubectl("get", "hptj", "edited", "-o", "json")
    assert seen.returncode == 0 and json.loads(seen.stdout)["metadata"]["name"] == "edited", seen.stderr
    denied = viewer.kubectl("create", "-f", "-", input=json.dumps(small_random("viewed")))
    assert denied.returncode != 0 and "forbidden" in denied.stderr.lower(), denied.stderr
    assert f'User "{viewer.username}" cannot create resource "hyperparametertuningjobs"' in denied.stderr

    deleted = editor.kubectl("delete", "hptj", "edited", "--timeout=30s")
    assert deleted.returncode == 0, deleted.stderr
    assert status_of_gone(cluster, namespace, "edited")


def status_of_gone(cluster: Any, namespace: str, name: str) -> bool:
    result = cluster.kubectl("-n", namespace, "get", "hptj", name, check=False)
    return result.returncode != 0 and "NotFound" in result.stderr


@pytest.mark.parametrize(
    ("where", "field"),
    [
        (("metadata",), "spec.trialTemplate.metadata.namespace"),
        (("metadata",), "spec.trialTemplate.metadata.ownerReferences"),
        (("spec", "template", "metadata"), "spec.trialTemplate.spec.template.metadata.namespace"),
        (("spec", "template", "metadata"), "spec.trialTemplate.spec.template.metadata.ownerReferences"),
    ],
)
def test_templates_that_name_a_namespace_or_an_owner_are_refused(
    cluster: Any, namespace: str, policy: None, where: tuple[str, ...], field: str
) -> None:
    """Refused on create, and on an update that adds them, even for a user who may create Jobs (the admin)."""
    values = {
        "namespace": "kube-system",
        "ownerReferences": [{"apiVersion": "v1", "kind": "ConfigMap", "name": "x", "uid": str(uuid.uuid4())}],
    }
    key = field.rsplit(".", 1)[1]
    resource = small_random("named")
    resource["spec"]["trialTemplate"]["spec"]["suspend"] = True
    node = resource["spec"]["trialTemplate"]
    for step in where:
        node = node.setdefault(step, {})
    node[key] = values[key]
    result = admin_may_create(cluster, namespace, resource)
    assert result.returncode != 0 and POLICY in result.stderr, result.stderr
    assert f"{field} must not be set" in result.stderr, result.stderr

    del node[key]
    assert admin_may_create(cluster, namespace, resource).returncode == 0
    patch: dict[str, Any] = {key: values[key]}
    for step in reversed(("spec", "trialTemplate", *where)):
        patch = {step: patch}
    result = cluster.kubectl(
        "-n", namespace, "patch", "hptj", "named", "--type=merge", "-p", json.dumps(patch), check=False
    )
    assert result.returncode != 0 and f"{field} must not be set" in result.stderr, result.stderr


def restrict(cluster: Any, namespace: str) -> None:
    """Label the test's namespace as manifests/examples/restricted-namespace.yaml labels its own."""
    labels = yaml.safe_load((EXAMPLES / "restricted-namespace.yaml").read_text())["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"
    cluster.kubectl("label", "namespace", namespace, "--overwrite", *(f"{k}={v}" for k, v in labels.items()))


def test_pod_security_refuses_the_hostile_trial_pods_and_runs_the_restricted_example(
    cluster: Any, namespace: str, operator: OperatorProcess, cluster_admin_account: str
) -> None:
    """A user who may create Jobs may write any pod spec: Pod Security on the namespace is what stops it."""
    restrict(cluster, namespace)
    assert admin_may_create(cluster, namespace, hostile("hostile", cluster_admin_account)).returncode == 0
    restricted = example("random-restricted.yaml")
    restricted["spec"]["resourceLimits"] = {"maxNumberOfTrainingJobs": 2, "maxParallelTrainingJobs": 2}
    restricted["spec"]["staticHyperParameters"]["epochs"] = 2
    assert admin_may_create(cluster, namespace, restricted).returncode == 0

    name = restricted["metadata"]["name"]
    status = wait_for_end(cluster, namespace, name, operator, 240)
    assert status["hyperParameterTuningJobStatus"] == "Completed", status
    assert status["trainingJobStatusCounters"]["completed"] == 2, status  # its pods passed "restricted"

    trial = "hostile-0001"
    # The operator may still be creating it when the restricted job has ended: NotFound is "not yet".
    wait_until(
        lambda: cluster.kubectl("-n", namespace, "get", "jobs", trial, check=False).returncode == 0,
        60,
        f"the hostile trial's Job {trial}",
        operator,
    )

    def refused() -> str:
        events = get(cluster, namespace, "events")["items"]
        return "\n".join(
            e["message"]
            for e in events
            if e["involvedObject"]["name"] == trial and "PodSecurity" in e.get("message", "")
        )

    message = wait_until(refused, 60, f"a PodSecurity event on Job {trial}", operator)
    assert 'violates PodSecurity "restricted:latest"' in message, message
    for rule in ("privileged", "host namespaces", "hostPath", "runAsNonRoot"):
        assert rule in message, (rule, message)
    hostile_pods = get(cluster, namespace, "pods", selector=f"batch.kubernetes.io/job-name={trial}")["items"]
    assert hostile_pods == []
    assert status_of(cluster, namespace, "hostile").get("hyperParameterTuningJobStatus") != "Completed"


def as_jobset(resource: dict[str, Any]) -> dict[str, Any]:
    """The tuning job with its Job template made the one replicated Job of a JobSet template, suspended (no pods)."""
    job = resource["spec"]["trialTemplate"]["spec"]
    job.pop("suspend", None)
    resource["spec"]["trialTemplate"] = {
        "kind": "JobSet",
        "spec": {"suspend": True, "replicatedJobs": [{"name": "leader", "replicas": 1, "template": {"spec": job}}]},
    }
    return resource


def test_a_jobset_template_needs_the_right_to_create_jobsets_not_jobs(
    cluster: Any, namespace: str, policy: None
) -> None:
    job_rights = [{"apiGroups": ["batch"], "resources": ["jobs"], "verbs": ["create"]}]
    jobset_rights = [{"apiGroups": ["jobset.x-k8s.io"], "resources": ["jobsets"], "verbs": ["create"]}]
    bob = make_tenant(cluster, namespace, "bob", rules=tuning_jobs_only(["create", "get"]) + job_rights)
    refused = bob.kubectl("create", "-f", "-", input=json.dumps(as_jobset(small_random("sets"))))
    assert refused.returncode != 0 and POLICY in refused.stderr, refused.stderr
    assert f'user "{bob.username}" may not create jobsets.jobset.x-k8s.io in namespace "{namespace}"' in refused.stderr
    assert "its trialTemplate has kind JobSet" in refused.stderr, refused.stderr

    carol = make_tenant(cluster, namespace, "carol", rules=tuning_jobs_only(["create", "get"]) + jobset_rights)
    created = carol.kubectl("create", "-f", "-", input=json.dumps(as_jobset(small_random("sets"))))
    assert created.returncode == 0, created.stderr  # a JobSet template makes no Job: the right to create Jobs is moot

    # A replicated Job's own metadata, or its pods', may name no namespace either, whoever writes it.
    elsewhere = as_jobset(small_random("sets-elsewhere"))
    replicated = elsewhere["spec"]["trialTemplate"]["spec"]["replicatedJobs"][0]
    replicated["template"]["spec"]["template"]["metadata"] = {"namespace": "kube-system"}
    result = admin_may_create(cluster, namespace, elsewhere)
    assert result.returncode != 0 and POLICY in result.stderr, result.stderr
    assert "replicatedJobs[].template.spec.template.metadata must set neither namespace" in result.stderr
