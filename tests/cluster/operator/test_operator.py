"""The operator end to end on the real API server: tuning jobs in, trial Jobs with sidecars out, status back."""

from __future__ import annotations

import json
from typing import Any

import pytest

from .operator_harness import (
    OperatorProcess,
    apply,
    example,
    get,
    operator,  # noqa: F401  (the fixture)
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
    events = cluster.kubectl("-n", namespace, "get", "events", "--field-selector", "involvedObject.name=digits-random").stdout
    assert "TrialCreated" in events and "TuningJobCompleted" in events
