"""The operator end to end on the real API server: tuning jobs in, trial Jobs with sidecars out, status back."""

from __future__ import annotations

import json
from typing import Any

import pytest

from .harness import (
    OperatorProcess,
    apply,
    example,
    get,
    status_of,
    wait_for_end,
    wait_until,
)

pytestmark = pytest.mark.cluster


def trial_jobs(cluster: Any, namespace: str, name: str) -> list[dict[str, Any]]:
    return list(get(cluster, namespace, "jobs", selector=f"kubetune.io/tuning-job={name}")["items"])


def job_value(job: dict[str, Any]) -> float | None:
    record = json.loads(job["metadata"]["annotations"]["kubetune.io/trial-record"])
    return record.get("value")


def test_random_example_runs_to_completion(cluster: Any, namespace: str, operator: OperatorProcess) -> None:
    resource = example("random.yaml", resourceLimits={"maxNumberOfTrainingJobs": 6, "maxParallelTrainingJobs": 3})
    apply(cluster, namespace, resource)
    status = wait_for_end(cluster, namespace, "digits-random", operator)
    assert status["hyperParameterTuningJobStatus"] == "Completed", status
    assert status["completionReason"] == "MaxNumberOfTrainingJobsReached"
    assert status["trainingJobStatusCounters"]["completed"] == 6
    assert status["objectiveStatusCounters"]["succeeded"] == 6
    jobs = trial_jobs(cluster, namespace, "digits-random")
    assert sorted(j["metadata"]["name"] for j in jobs) == [f"digits-random-{n:04d}" for n in range(1, 7)]
    best_job = max(jobs, key=lambda j: job_value(j) or -1)
    assert status["bestTrainingJob"]["name"] == best_job["metadata"]["name"]
    assert status["bestTrainingJob"]["finalObjectiveValue"] == job_value(best_job) > 0.8
    assert len(status["leaderboard"]) == 6 and status["progress"] == "6/6"
    pods = get(cluster, namespace, "pods", selector="kubetune.io/tuning-job=digits-random")["items"]
    sidecars = [c for p in pods for c in p["spec"].get("initContainers", []) if c["name"] == "kubetune-metrics"]
    assert len(sidecars) == len(pods) and all(c["restartPolicy"] == "Always" for c in sidecars)
    table = cluster.kubectl("-n", namespace, "get", "hptj").stdout
    assert "STRATEGY" in table and "Random" in table and "Completed" in table and "6/6" in table
    events = cluster.kubectl(
        "-n", namespace, "get", "events", "--field-selector", "involvedObject.name=digits-random"
    ).stdout
    assert "TrialCreated" in events and "TuningJobCompleted" in events


def test_grid_example_with_regex_metrics(cluster: Any, namespace: str, operator: OperatorProcess) -> None:
    resource = example(
        "grid.yaml",
        parameterRanges={
            "integerParameterRanges": [{"name": "hidden_units", "minValue": 15, "maxValue": 16}],
            "categoricalParameterRanges": [
                {"name": "learning_rate", "values": [0.01, 0.2]},
                {"name": "activation", "values": ["tanh"]},
            ],
        },
        staticHyperParameters={"epochs": 4},
    )
    apply(cluster, namespace, resource)
    status = wait_for_end(cluster, namespace, "digits-grid", operator)
    assert status["hyperParameterTuningJobStatus"] == "Completed", status
    jobs = trial_jobs(cluster, namespace, "digits-grid")
    tried = sorted((json.loads(j["metadata"]["annotations"]["kubetune.io/hyperparameters"])["hidden_units"],
                    json.loads(j["metadata"]["annotations"]["kubetune.io/hyperparameters"])["learning_rate"]) for j in jobs)  # fmt: skip
    assert tried == [(15, 0.01), (15, 0.2), (16, 0.01), (16, 0.2)]
    for job in jobs:  # the output was read through the wrapped command: one report per epoch
        record = json.loads(job["metadata"]["annotations"]["kubetune.io/trial-record"])
        assert [r[1] for r in record["reports"]] == [1.0, 2.0, 3.0, 4.0] and record["status"] == "Completed"
    assert status["bestTrainingJob"]["finalObjectiveValue"] == max(job_value(j) or 0 for j in jobs)


def test_deleting_the_tuning_job_deletes_its_trials(cluster: Any, namespace: str, operator: OperatorProcess) -> None:
    resource = example("random.yaml", resourceLimits={"maxNumberOfTrainingJobs": 4, "maxParallelTrainingJobs": 2},
                       staticHyperParameters={"epochs": 100, "batch_size": 32, "epoch_seconds": 0.3})  # fmt: skip
    apply(cluster, namespace, resource)
    wait_until(lambda: len(trial_jobs(cluster, namespace, "digits-random")) == 2, 60, "two trial Jobs", operator)
    cluster.kubectl("-n", namespace, "delete", "hptj", "digits-random", "--wait=true", "--timeout=60s")
    wait_until(
        lambda: (
            not trial_jobs(cluster, namespace, "digits-random")
            and not get(cluster, namespace, "pods", selector="kubetune.io/tuning-job=digits-random")["items"]
        ),
        90,
        "the trial Jobs and pods to be garbage-collected",
        operator,
    )


def test_stopping_the_tuning_job(cluster: Any, namespace: str, operator: OperatorProcess) -> None:
    resource = example("random.yaml", resourceLimits={"maxNumberOfTrainingJobs": 6, "maxParallelTrainingJobs": 2},
                       staticHyperParameters={"epochs": 100, "batch_size": 32, "epoch_seconds": 0.3})  # fmt: skip
    apply(cluster, namespace, resource)

    def reporting() -> bool:
        jobs = trial_jobs(cluster, namespace, "digits-random")
        return len(jobs) == 2 and all(
            json.loads(j["metadata"]["annotations"]["kubetune.io/trial-record"])["reports"] for j in jobs
        )

    wait_until(reporting, 120, "two trials reporting", operator)
    cluster.kubectl(
        "-n", namespace, "patch", "hptj", "digits-random", "--type=merge", "-p", '{"spec":{"stopped":true}}'
    )
    status = wait_for_end(cluster, namespace, "digits-random", operator, timeout=60)
    assert status["hyperParameterTuningJobStatus"] == "Stopped" and status["completionReason"] == "StoppedByUser"
    assert status["trainingJobStatusCounters"]["stopped"] == 2
    jobs = trial_jobs(cluster, namespace, "digits-random")
    assert len(jobs) == 2 and all(j["spec"]["suspend"] for j in jobs)  # kept as the trials' record, suspended
    assert status["bestTrainingJob"]["status"] == "Stopped"  # scored by the last value it reported
    wait_until(lambda: not get(cluster, namespace, "pods", selector="kubetune.io/tuning-job=digits-random")["items"],
               60, "the stopped trials' pods to be gone", operator)  # fmt: skip
    events = cluster.kubectl(
        "-n", namespace, "get", "events", "--field-selector", "involvedObject.name=digits-random"
    ).stdout
    assert "TrialStopped" in events and "spec.stopped is true" in events


def test_gpu_trials_wait_for_free_gpus(cluster: Any, namespace: str, operator: OperatorProcess) -> None:
    resource = example("random.yaml", resourceLimits={"maxNumberOfTrainingJobs": 3, "maxParallelTrainingJobs": 2},
                       staticHyperParameters={"epochs": 20, "batch_size": 32, "epoch_seconds": 0.2})  # fmt: skip
    pod = resource["spec"]["trialTemplate"]["spec"]["template"]["spec"]
    pod["containers"][0]["resources"] = {"limits": {"nvidia.com/gpu": 1}}
    apply(cluster, namespace, resource)

    def one_running_one_pending() -> bool:
        pods = get(cluster, namespace, "pods", selector="kubetune.io/tuning-job=digits-random")["items"]
        phases = sorted(p["status"].get("phase") for p in pods)
        return phases == ["Pending", "Running"]

    wait_until(one_running_one_pending, 120, "one GPU trial running and one pending", operator)
    status = wait_for_end(cluster, namespace, "digits-random", operator)
    assert status["hyperParameterTuningJobStatus"] == "Completed"
    pods = get(cluster, namespace, "pods", selector="kubetune.io/tuning-job=digits-random")["items"]
    assert len(pods) == 3
    for p in pods:
        assert p["spec"]["nodeName"] == "node-gpu-0"
        assert p["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] in (1, "1")


def test_invalid_spec_is_reported_and_creates_nothing(cluster: Any, namespace: str, operator: OperatorProcess) -> None:
    resource = example("random.yaml", resourceLimits={"maxNumberOfTrainingJobs": 1, "maxParallelTrainingJobs": 1})
    # A rule the CRD's CEL cannot express (api/rules.py says why), so only the operator can refuse it.
    resource["spec"]["staticHyperParameters"]["learning_rate"] = 0.1
    resource["metadata"]["name"] = "no-budget"
    apply(cluster, namespace, resource)
    status = wait_until(
        lambda: status_of(cluster, namespace, "no-budget").get("failureReason"), 30, "a rejection", operator
    )
    assert "spec.staticHyperParameters" in status and "learning_rate" in status
    full = status_of(cluster, namespace, "no-budget")
    valid = next(c for c in full["conditions"] if c["type"] == "Valid")
    assert valid["status"] == "False" and valid["reason"] == "InvalidSpec"
    events = cluster.kubectl(
        "-n", namespace, "get", "events", "--field-selector", "involvedObject.name=no-budget"
    ).stdout
    assert "InvalidSpec" in events
    assert not trial_jobs(cluster, namespace, "no-budget")
    # The operator keeps serving others, and takes the fixed spec.
    cluster.kubectl("-n", namespace, "patch", "hptj", "no-budget", "--type=merge",
                    "-p", '{"spec":{"staticHyperParameters":{"learning_rate":null}}}')  # fmt: skip
    generation = get(cluster, namespace, "hptj", "no-budget")["metadata"]["generation"]

    def fixed_and_ended() -> dict[str, Any] | None:  # not the rejection of the spec before the fix
        status = status_of(cluster, namespace, "no-budget")
        ended = status.get("hyperParameterTuningJobStatus") in {"Completed", "Failed", "Stopped"}
        return status if ended and status.get("observedGeneration") == generation else None

    fixed = wait_until(fixed_and_ended, 240, "the fixed spec to run to its end", operator)
    assert fixed["hyperParameterTuningJobStatus"] == "Completed", fixed


def test_schema_rejects_bad_input_at_the_api_server(cluster: Any, namespace: str) -> None:
    resource = example("random.yaml", strategy="Genetic")
    result = cluster.kubectl("-n", namespace, "apply", "-f", "-", input=json.dumps(resource), check=False)
    assert result.returncode != 0 and "spec.strategy" in result.stderr and "Unsupported value" in result.stderr


def test_failing_trials_count_and_fail_the_job(cluster: Any, namespace: str, operator: OperatorProcess) -> None:
    resource = example("random.yaml", resourceLimits={"maxNumberOfTrainingJobs": 6, "maxParallelTrainingJobs": 2,
                                                      "maxFailedTrainingJobs": 1})  # fmt: skip
    container = resource["spec"]["trialTemplate"]["spec"]["template"]["spec"]["containers"][0]
    container["command"] = [
        "python",
        "-c",
        "import sys; print('epoch 1'); print('out of memory', file=sys.stderr); sys.exit(3)",
    ]
    apply(cluster, namespace, resource)
    status = wait_for_end(cluster, namespace, "digits-random", operator)
    assert status["hyperParameterTuningJobStatus"] == "Failed"
    assert (
        status["completionReason"] == "MaxFailedTrainingJobsExceeded" and "2 trials failed" in status["failureReason"]
    )
    events = cluster.kubectl(
        "-n", namespace, "get", "events", "--field-selector", "involvedObject.name=digits-random"
    ).stdout
    assert "TrialFailed" in events and "exited with code 3" in events
    failed = [j for j in trial_jobs(cluster, namespace, "digits-random")
              if json.loads(j["metadata"]["annotations"]["kubetune.io/trial-record"])["status"] == "Failed"]  # fmt: skip
    reason = json.loads(failed[0]["metadata"]["annotations"]["kubetune.io/trial-record"])["reason"]
    assert "last output:" in reason and "out of memory" in reason, reason  # the tail of its logs, as kubetune run shows


TEMPLATE_MISTAKES = {
    # tuning job: ((in the primary container or the Job spec, field, wrong value), what the message must name)
    "typo": (("container", "comand", ["python", "x.py"]), "comand"),
    "not-a-number": (("job", "backoffLimit", "lots"), "backoffLimit"),
    "bad-quantity": (("container", "resources", {"limits": {"memory": "lots"}}), "limits.memory: 'lots' is not"),
    "bad-name": (("container", "name", "Not_A_DNS_Label"), "Not_A_DNS_Label"),
}


def test_template_mistakes_are_found_before_any_trial_runs(
    cluster: Any, namespace: str, operator: OperatorProcess
) -> None:
    for name, ((where, key, value), _) in TEMPLATE_MISTAKES.items():
        resource = example("random.yaml")
        resource["metadata"]["name"] = name
        job_spec = resource["spec"]["trialTemplate"]["spec"]
        (job_spec["template"]["spec"]["containers"][0] if where == "container" else job_spec)[key] = value
        if key == "name":
            resource["spec"]["primaryContainerName"] = value
        apply(cluster, namespace, resource)
    for name, (_, named) in TEMPLATE_MISTAKES.items():
        reason = wait_until(
            lambda n=name: status_of(cluster, namespace, n).get("failureReason"), 60, f"{name} rejected", operator
        )
        assert reason.startswith("spec.trialTemplate: ") and named in reason, reason
        valid = next(c for c in status_of(cluster, namespace, name)["conditions"] if c["type"] == "Valid")
        assert valid["status"] == "False" and valid["reason"] == "InvalidSpec"
        assert not trial_jobs(cluster, namespace, name)
    events = cluster.kubectl("-n", namespace, "get", "events", "--field-selector", "involvedObject.name=typo").stdout
    assert "InvalidSpec" in events and "comand" in events


def _deny_trial(cluster: Any, namespace: str, number: int) -> str:
    """An admission policy that refuses the Job of trial `number` in this namespace; returns its name."""
    name = f"deny-trial-{namespace}"[:63]
    expression = f"object.metadata.?labels[?'kubetune.io/trial'].orValue('') != '{number}'"
    policy = {
        "apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicy", "metadata": {"name": name},
        "spec": {
            "failurePolicy": "Fail",
            "matchConstraints": {"resourceRules": [
                {"apiGroups": ["batch"], "apiVersions": ["v1"], "operations": ["CREATE"], "resources": ["jobs"]}
            ]},
            "validations": [{"expression": expression, "message": f"trial {number} is not allowed here"}],
        },
    }  # fmt: skip
    binding = {
        "apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicyBinding",
        "metadata": {"name": name},
        "spec": {"policyName": name, "validationActions": ["Deny"], "matchResources": {
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}}}},
    }  # fmt: skip
    for resource in (policy, binding):
        cluster.kubectl("apply", "-f", "-", input=json.dumps(resource))
    probe = {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "probe", "labels": {"kubetune.io/trial": str(number)}},
             "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "x"}]}}}}  # fmt: skip

    def in_force() -> bool:
        result = cluster.kubectl(
            "-n", namespace, "create", "--dry-run=server", "-f", "-", input=json.dumps(probe), check=False
        )
        return result.returncode != 0 and "not allowed here" in result.stderr

    wait_until(in_force, 30, "the admission policy to be in force")
    return name


def test_a_refused_trial_job_fails_the_job_at_once(cluster: Any, namespace: str, operator: OperatorProcess) -> None:
    """A refusal only the real creation meets (an admission policy on trial 3) is the template's: Failed, at once."""
    policy = _deny_trial(cluster, namespace, 3)
    try:
        resource = example("random.yaml", resourceLimits={"maxNumberOfTrainingJobs": 5, "maxParallelTrainingJobs": 1})
        apply(cluster, namespace, resource)
        status = wait_for_end(cluster, namespace, "digits-random", operator)
    finally:
        cluster.kubectl("delete", "validatingadmissionpolicybinding,validatingadmissionpolicy", policy, check=False)
    assert status["hyperParameterTuningJobStatus"] == "Failed", status
    assert status["completionReason"] == "InvalidTrialTemplate"
    assert "cannot create Job digits-random-0003" in status["failureReason"]
    assert "trial 3 is not allowed here" in status["failureReason"]
    assert len(trial_jobs(cluster, namespace, "digits-random")) == 2
    events = cluster.kubectl(
        "-n", namespace, "get", "events", "--field-selector", "involvedObject.name=digits-random"
    ).stdout
    assert "InvalidTrialTemplate" in events and "StoppedByUser" not in json.dumps(status)


def test_a_full_quota_blocks_trials_until_it_frees(cluster: Any, namespace: str, operator: OperatorProcess) -> None:
    quota = {"apiVersion": "v1", "kind": "ResourceQuota", "metadata": {"name": "jobs"},
             "spec": {"hard": {"count/jobs.batch": "1"}}}  # fmt: skip
    apply(cluster, namespace, quota)
    wait_until(
        lambda: get(cluster, namespace, "resourcequota", "jobs").get("status", {}).get("used"), 30, "quota usage"
    )
    resource = example("random.yaml", resourceLimits={"maxNumberOfTrainingJobs": 2, "maxParallelTrainingJobs": 2})
    apply(cluster, namespace, resource)

    def blocked() -> dict[str, Any] | None:
        conditions = status_of(cluster, namespace, "digits-random").get("conditions") or []
        return next((c for c in conditions if c["type"] == "TrialsBlocked" and c["status"] == "True"), None)

    condition = wait_until(blocked, 60, "TrialsBlocked", operator)
    assert "exceeded quota" in condition["message"] and "digits-random-0002" in condition["message"]
    assert status_of(cluster, namespace, "digits-random")["hyperParameterTuningJobStatus"] == "InProgress"
    quota["spec"]["hard"]["count/jobs.batch"] = "2"
    apply(cluster, namespace, quota)
    status = wait_for_end(cluster, namespace, "digits-random", operator, timeout=180)
    assert status["hyperParameterTuningJobStatus"] == "Completed", status
    assert status["trainingJobStatusCounters"]["completed"] == 2
    unblocked = next(c for c in status["conditions"] if c["type"] == "TrialsBlocked")
    assert unblocked["status"] == "False"


def test_a_spec_larger_than_annotations_allow_runs(cluster: Any, namespace: str, operator: OperatorProcess) -> None:
    """kopf once kept a copy of the spec in an annotation (256 KiB at most) and looped on 'Too long'."""
    resource = example("random.yaml", resourceLimits={"maxNumberOfTrainingJobs": 2, "maxParallelTrainingJobs": 2})
    container = resource["spec"]["trialTemplate"]["spec"]["template"]["spec"]["containers"][0]
    # 300 KiB of spec, in variables of 100 KiB (the most one variable may hold when a process starts).
    container["env"] = [{"name": f"PADDING_{i}", "value": "x" * 100_000} for i in range(3)]
    assert len(json.dumps(resource)) > 300_000
    # Server-side: client-side apply keeps its own copy of the object in an annotation, and fails the same way.
    cluster.kubectl("-n", namespace, "apply", "--server-side", "-f", "-", input=json.dumps(resource))
    status = wait_for_end(cluster, namespace, "digits-random", operator)
    assert status["hyperParameterTuningJobStatus"] == "Completed", status
    annotations = get(cluster, namespace, "hptj", "digits-random")["metadata"].get("annotations") or {}
    assert not [k for k in annotations if "kopf" in k], list(annotations)
    assert "Too long" not in operator.log()


def test_an_objective_no_trial_reports_fails_the_job_early(
    cluster: Any, namespace: str, operator: OperatorProcess
) -> None:
    resource = example("random.yaml", resourceLimits={"maxNumberOfTrainingJobs": 8, "maxParallelTrainingJobs": 1})
    resource["spec"]["objective"]["metricName"] = "val_acc"  # the script reports val_accuracy
    apply(cluster, namespace, resource)
    status = wait_for_end(cluster, namespace, "digits-random", operator)
    assert status["hyperParameterTuningJobStatus"] == "Failed", status
    assert status["completionReason"] == "ObjectiveNotReported"
    assert "val_acc" in status["failureReason"] and "val_accuracy" in status["failureReason"], status["failureReason"]
    assert len(trial_jobs(cluster, namespace, "digits-random")) == 3, "the budget was not spent on it"
    events = cluster.kubectl(
        "-n", namespace, "get", "events", "--field-selector", "involvedObject.name=digits-random"
    ).stdout
    assert "no objective value: " in events and "val_accuracy" in events
