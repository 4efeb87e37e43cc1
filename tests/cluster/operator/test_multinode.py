"""Trials of two pods (Indexed Jobs) on the real nodes: rank 0's metrics, the Job's outcome, a stop of every pod.

The training code is inline (python -c) so the test depends on nothing of the
image but Python and kubetune.report(): each rank reports x + 1000 * its index,
so a value of 1000 or more in a trial's record would be rank 1's.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from .harness import IMAGE, OperatorProcess, apply, example, get, status_of, tuning_job, wait_for_end, wait_until

pytestmark = pytest.mark.cluster

SCRIPT = """
import os, sys, time
from kubetune import report
index, x, mode = int(os.environ["JOB_COMPLETION_INDEX"]), int(os.environ["HP_X"]), os.environ["MODE"]
print(f"rank {index} got x={x}", flush=True)
if mode == "fail" and index == 1:
    time.sleep(2)
    print("rank 1 broke on purpose", flush=True)
    sys.exit(3)
for step in range(1, {"ok": 4, "fail": 40, "hang": 200}[mode] + 1):
    report(step=step, score=x + 1000 * index)
    time.sleep(0.5)
"""


def indexed(name: str, mode: str, trials: int) -> dict[str, Any]:
    return tuning_job(
        name,
        {
            "strategy": "Random",
            "randomSeed": 5,
            "objective": {"metricName": "score", "type": "Maximize"},
            "resourceLimits": {"maxNumberOfTrainingJobs": trials, "maxParallelTrainingJobs": trials},
            "parameterRanges": {"integerParameterRanges": [{"name": "x", "minValue": 1, "maxValue": 9}]},
            "trialTemplate": {
                "spec": {
                    "completionMode": "Indexed",
                    "completions": 2,
                    "parallelism": 2,
                    "activeDeadlineSeconds": 240,
                    "template": {
                        "spec": {
                            "terminationGracePeriodSeconds": 5,
                            "containers": [
                                {
                                    "name": "train",
                                    "image": IMAGE,
                                    "env": [{"name": "MODE", "value": mode}],
                                    "command": ["python", "-c", SCRIPT],
                                }
                            ],
                        }
                    },
                }
            },
        },
    )


def jobs_of(cluster: Any, namespace: str, name: str) -> list[dict[str, Any]]:
    return list(get(cluster, namespace, "jobs", selector=f"kubetune.io/tuning-job={name}")["items"])


def pods_of(cluster: Any, namespace: str, job: str) -> list[dict[str, Any]]:
    return list(get(cluster, namespace, "pods", selector=f"job-name={job}")["items"])


def record(job: dict[str, Any]) -> dict[str, Any]:
    return dict(json.loads(job["metadata"]["annotations"]["kubetune.io/trial-record"]))


def test_two_pod_trials_score_rank_0_and_fail_as_their_job(
    cluster: Any, namespace: str, operator: OperatorProcess
) -> None:
    apply(cluster, namespace, indexed("ranks-ok", "ok", 2))
    apply(cluster, namespace, indexed("ranks-fail", "fail", 1))

    status = wait_for_end(cluster, namespace, "ranks-ok", operator)
    assert status["hyperParameterTuningJobStatus"] == "Completed", status
    assert status["trainingJobStatusCounters"]["completed"] == 2
    for job in jobs_of(cluster, namespace, "ranks-ok"):
        trial = record(job)
        x = json.loads(job["metadata"]["annotations"]["kubetune.io/hyperparameters"])["x"]
        assert trial["status"] == "Completed" and trial["value"] == x, trial  # rank 0's value
        assert [r[1] for r in trial["reports"]] == [1.0, 2.0, 3.0, 4.0], trial
        assert all(r[2] < 1000 for r in trial["reports"]), f"rank 1's values were read: {trial}"
        assert not trial.get("attempts"), "rank 1 must not start a new attempt"
        pods = pods_of(cluster, namespace, job["metadata"]["name"])
        indexes = sorted(p["metadata"]["labels"]["batch.kubernetes.io/job-completion-index"] for p in pods)
        assert indexes == ["0", "1"] and all(p["status"]["phase"] == "Succeeded" for p in pods)
        for pod in pods:  # every rank got the hyperparameters (and the script reads them, or it fails)
            train = next(c for c in pod["spec"]["containers"] if c["name"] == "train")
            assert {"name": "HP_X", "value": str(x)} in train["env"]

    status = wait_for_end(cluster, namespace, "ranks-fail", operator)
    assert status["trainingJobStatusCounters"]["nonRetryableError"] == 1, status
    (job,) = jobs_of(cluster, namespace, "ranks-fail")
    trial = record(job)
    assert trial["status"] == "Failed", trial
    assert "(index 1) exited with code 3" in trial["reason"], trial["reason"]
    assert "rank 1 broke on purpose" in trial["reason"], trial["reason"]
    assert job["metadata"]["name"] + "-1-" in trial["reason"]  # the pod, by name


def test_stopping_a_two_pod_trial_stops_both_pods(cluster: Any, namespace: str, operator: OperatorProcess) -> None:
    apply(cluster, namespace, indexed("ranks-stop", "hang", 1))

    def both_running_and_reporting() -> bool:
        jobs = jobs_of(cluster, namespace, "ranks-stop")
        if len(jobs) != 1 or not record(jobs[0])["reports"]:
            return False
        pods = pods_of(cluster, namespace, jobs[0]["metadata"]["name"])
        return len(pods) == 2 and all(p["status"].get("phase") == "Running" for p in pods)

    wait_until(both_running_and_reporting, 120, "both ranks running and rank 0 reporting", operator)
    cluster.kubectl("-n", namespace, "patch", "hptj", "ranks-stop", "--type=merge", "-p", '{"spec":{"stopped":true}}')
    status = wait_for_end(cluster, namespace, "ranks-stop", operator, timeout=60)
    assert status["hyperParameterTuningJobStatus"] == "Stopped", status
    (job,) = jobs_of(cluster, namespace, "ranks-stop")
    assert job["spec"]["suspend"] is True
    assert all(r[2] < 1000 for r in record(job)["reports"])
    wait_until(
        lambda: not pods_of(cluster, namespace, job["metadata"]["name"]),
        60,
        "both pods of the stopped trial to be gone",
        operator,
    )
    assert status_of(cluster, namespace, "ranks-stop")["trainingJobStatusCounters"]["stopped"] == 1


def test_the_multinode_example_runs_rank_0_and_rank_1_on_their_shards(
    cluster: Any, namespace: str, operator: OperatorProcess
) -> None:
    apply(cluster, namespace, example("multinode.yaml"))
    status = wait_for_end(cluster, namespace, "digits-multinode", operator, timeout=300)
    assert status["hyperParameterTuningJobStatus"] == "Completed", status
    assert status["trainingJobStatusCounters"]["completed"] == 4
    assert status["bestTrainingJob"]["finalObjectiveValue"] > 0.5
    job = jobs_of(cluster, namespace, "digits-multinode")[0]["metadata"]["name"]
    for rank in (0, 1):
        (pod,) = [p for p in pods_of(cluster, namespace, job) if p["metadata"]["name"].startswith(f"{job}-{rank}-")]
        output = cluster.kubectl("-n", namespace, "logs", pod["metadata"]["name"], "-c", "train").stdout
        assert f"rank {rank} of 2: training on" in output, output
