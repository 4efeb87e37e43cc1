"""Disruptions are not failures: an evicted trial runs again, spends no budget, and keeps one series per attempt."""

from __future__ import annotations

import json
from typing import Any

import pytest

from .harness import OperatorProcess, apply, example, get, status_of, wait_for_end, wait_until

pytestmark = pytest.mark.cluster


def record_of(cluster: Any, namespace: str, job: str) -> dict[str, Any]:
    """The trial record on the Job; empty while the Job does not exist yet."""
    found = get(cluster, namespace, "jobs", selector="kubetune.io/tuning-job")
    jobs = [j for j in found["items"] if j["metadata"]["name"] == job]
    annotations = (jobs[0]["metadata"].get("annotations") or {}) if jobs else {}
    return dict(json.loads(annotations.get("kubetune.io/trial-record", "{}")))


def test_an_evicted_trial_runs_again_and_spends_no_budget(
    local_cluster: Any, namespace: str, operator: OperatorProcess
) -> None:
    cluster = local_cluster
    resource = example("random.yaml", resourceLimits={"maxNumberOfTrainingJobs": 2, "maxParallelTrainingJobs": 1},
                       staticHyperParameters={"epochs": 40, "batch_size": 32, "epoch_seconds": 0.5})  # fmt: skip
    apply(cluster, namespace, resource)
    first = "digits-random-0001"

    def reporting_pod() -> dict[str, Any] | None:
        if len(record_of(cluster, namespace, first).get("reports") or []) < 2:
            return None
        pods = get(cluster, namespace, "pods", selector=f"batch.kubernetes.io/job-name={first}")["items"]
        return next((p for p in pods if p["status"].get("phase") == "Running"), None)

    pod = wait_until(reporting_pod, 120, "trial 1 to report twice", operator)
    name = pod["metadata"]["name"]
    eviction = {"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": name, "namespace": namespace}}
    cluster.api.create(f"/api/v1/namespaces/{namespace}/pods/{name}/eviction", eviction)

    status = wait_for_end(cluster, namespace, "digits-random", operator, timeout=240)
    assert status["hyperParameterTuningJobStatus"] == "Completed", status
    counters = status["trainingJobStatusCounters"]
    assert counters["completed"] == 2 and counters["nonRetryableError"] == 0 and counters["retryableError"] == 1
    jobs = get(cluster, namespace, "jobs", selector="kubetune.io/tuning-job=digits-random")["items"]
    assert len(jobs) == 2, "the eviction spent no budget"
    record = record_of(cluster, namespace, first)
    assert record["status"] == "Completed" and record["value"] is not None
    [earlier] = record["attempts"]
    assert earlier["pod"] == name and "Eviction" in earlier["reason"], earlier
    assert len(earlier["series"]) >= 2
    steps = [report[1] for report in record["reports"]]
    assert steps == sorted(steps) and len(set(steps)) == len(steps), f"one series, not two mixed: {steps}"
    events = cluster.kubectl(
        "-n", namespace, "get", "events", "--field-selector", "involvedObject.name=digits-random"
    ).stdout
    assert "TrialRetried" in events and "TrialFailed" not in events
    assert "trial.retried" in operator.log()


def test_pending_is_not_running_and_waits_only_so_long(cluster: Any, namespace: str, operator: OperatorProcess) -> None:
    resource = example("random.yaml", resourceLimits={"maxNumberOfTrainingJobs": 2, "maxParallelTrainingJobs": 2,
                                                      "maxFailedTrainingJobs": 1},
                       trialStoppingCondition={"maxPendingTimeInSeconds": 20})  # fmt: skip
    container = resource["spec"]["trialTemplate"]["spec"]["template"]["spec"]["containers"][0]
    container["resources"] = {"limits": {"nvidia.com/gpu": 64}}  # no node has that many

    def pending() -> dict[str, Any] | None:
        status = status_of(cluster, namespace, "digits-random")
        condition = next((c for c in status.get("conditions") or [] if c["type"] == "TrialsPending"), None)
        return status if condition and condition["status"] == "True" else None

    apply(cluster, namespace, resource)
    status = wait_until(pending, 60, "TrialsPending", operator)
    condition = next(c for c in status["conditions"] if c["type"] == "TrialsPending")
    assert "Insufficient nvidia.com/gpu" in condition["message"] and "digits-random-0001" in condition["message"]
    assert status["trainingJobStatusCounters"]["pending"] == 2
    running = next(c for c in status["conditions"] if c["type"] == "Running")
    assert running["message"] == "0 trials running, 2 pending"

    status = wait_for_end(cluster, namespace, "digits-random", operator, timeout=120)
    assert status["hyperParameterTuningJobStatus"] == "Failed"
    counters = status["trainingJobStatusCounters"]
    assert counters["retryableError"] == 2 and counters["nonRetryableError"] == 0 and counters["pending"] == 0
    reasons = [record_of(cluster, namespace, f"digits-random-{n:04d}")["reason"] for n in (1, 2)]
    assert all("pending for more than 20s: Unschedulable" in r and "nvidia.com/gpu" in r for r in reasons), reasons
    jobs = get(cluster, namespace, "jobs", selector="kubetune.io/tuning-job=digits-random")["items"]
    assert all(j["spec"]["suspend"] for j in jobs)  # stopped: no pod waits on for a GPU
    after = next(c for c in status["conditions"] if c["type"] == "TrialsPending")
    assert after["status"] == "False"
