"""JobSet trials on the real nodes, with JobSet's controller built from its Go module (webhooks included).

Each trial is a JobSet of two replicated Jobs: a leader of one pod, the primary,
and two workers (an Indexed Job of two pods) whose training container has
another name. The training code is inline: the leader reports x, each worker
x + 1000 * (its index + 1), so a value of 1000 or more in a trial's record would
be a worker's.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from .harness import (
    IMAGE,
    OperatorProcess,
    apply,
    example,
    get,
    install_operator_access,
    status_of,
    tuning_job,
    wait_for_end,
    wait_until,
)

pytestmark = pytest.mark.cluster

JOBSETS = "jobsets.jobset.x-k8s.io"

SCRIPT = """
import os, sys, time
from kubetune import report
role, index = os.environ["ROLE"], int(os.environ.get("JOB_COMPLETION_INDEX", "0"))
x, mode = int(os.environ["HP_X"]), os.environ["MODE"]
print(f"{role} {index} got x={x}", flush=True)
if mode == "fail" and role == "worker" and index == 1:
    time.sleep(2)
    print("worker 1 broke on purpose", flush=True)
    sys.exit(3)
offset = 0 if role == "leader" else 1000 * (index + 1)
for step in range(1, {"ok": 4, "fail": 40, "hang": 200}[mode] + 1):
    report(step=step, score=x + offset)
    time.sleep(0.5)
"""


@pytest.fixture(scope="module")
def operator(cluster: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[OperatorProcess]:
    """JobSet first, then the operator, as a cluster admin installs them: kopf watches the JobSets whose
    CRD it finds at its start."""
    if not cluster.local:
        pytest.skip("needs the local cluster's JobSet controller")
    cluster.start_jobset()
    kubeconfig = install_operator_access(cluster)
    process = OperatorProcess(
        cluster, kubeconfig, tmp_path_factory.mktemp("operator") / "operator.log", ["--leader-identity", "replica-a"]
    )
    process.start()
    try:
        yield process
    finally:
        process.stop()
        print(f"operator log: {process.log_path}")


def container(name: str, role: str, mode: str) -> dict[str, Any]:
    return {
        "name": name,
        "image": IMAGE,
        "env": [{"name": "MODE", "value": mode}, {"name": "ROLE", "value": role}],
        "command": ["python", "-c", SCRIPT],
    }


def jobset_trials(name: str, mode: str, trials: int) -> dict[str, Any]:
    pod = {"terminationGracePeriodSeconds": 5, "restartPolicy": "Never"}
    return tuning_job(
        name,
        {
            "strategy": "Random",
            "randomSeed": 5,
            "objective": {"metricName": "score", "type": "Maximize"},
            "resourceLimits": {"maxNumberOfTrainingJobs": trials, "maxParallelTrainingJobs": trials},
            "parameterRanges": {"integerParameterRanges": [{"name": "x", "minValue": 1, "maxValue": 9}]},
            "trialTemplate": {
                "kind": "JobSet",
                "spec": {
                    "replicatedJobs": [
                        {
                            "name": "leader",
                            "replicas": 1,
                            "template": {
                                "spec": {
                                    "activeDeadlineSeconds": 240,
                                    "template": {"spec": {**pod, "containers": [container("train", "leader", mode)]}},
                                }
                            },
                        },
                        {
                            "name": "workers",
                            "replicas": 1,
                            "template": {
                                "spec": {
                                    "completionMode": "Indexed",
                                    "completions": 2,
                                    "parallelism": 2,
                                    "activeDeadlineSeconds": 240,
                                    "template": {"spec": {**pod, "containers": [container("worker", "worker", mode)]}},
                                }
                            },
                        },
                    ]
                },
            },
        },
    )


def jobsets_of(cluster: Any, namespace: str, name: str) -> list[dict[str, Any]]:
    return list(get(cluster, namespace, JOBSETS, selector=f"kubetune.io/tuning-job={name}")["items"])


def pods_of(cluster: Any, namespace: str, jobset: str) -> list[dict[str, Any]]:
    return list(get(cluster, namespace, "pods", selector=f"jobset.sigs.k8s.io/jobset-name={jobset}")["items"])


def record(obj: dict[str, Any]) -> dict[str, Any]:
    return dict(json.loads(obj["metadata"]["annotations"]["kubetune.io/trial-record"]))


def test_jobset_trials_score_the_leader_and_fail_as_their_jobset(
    cluster: Any, namespace: str, operator: OperatorProcess
) -> None:
    apply(cluster, namespace, jobset_trials("sets-ok", "ok", 2))
    apply(cluster, namespace, jobset_trials("sets-fail", "fail", 1))

    status = wait_for_end(cluster, namespace, "sets-ok", operator, timeout=240)
    assert status["hyperParameterTuningJobStatus"] == "Completed", status
    assert status["trainingJobStatusCounters"]["completed"] == 2
    hptj_uid = get(cluster, namespace, "hptj", "sets-ok")["metadata"]["uid"]
    sets = jobsets_of(cluster, namespace, "sets-ok")
    assert len(sets) == 2
    assert not get(cluster, namespace, "jobs", selector="kubetune.io/tuning-job=sets-ok")["items"]  # no Job trials
    for jobset in sets:
        assert jobset["metadata"]["ownerReferences"][0]["uid"] == hptj_uid
        assert jobset["metadata"]["labels"]["kubetune.io/trial-status"] == "Completed"
        trial = record(jobset)
        x = json.loads(jobset["metadata"]["annotations"]["kubetune.io/hyperparameters"])["x"]
        assert trial["status"] == "Completed" and trial["value"] == x, trial  # the leader's value
        assert [r[1] for r in trial["reports"]] == [1.0, 2.0, 3.0, 4.0], trial
        assert all(r[2] < 1000 for r in trial["reports"]), f"a worker's values were read: {trial}"
        assert not trial.get("attempts"), "a worker must not start a new attempt"
        pods = pods_of(cluster, namespace, jobset["metadata"]["name"])
        slots = sorted(
            (p["metadata"]["labels"]["jobset.sigs.k8s.io/replicatedjob-name"],
             p["metadata"]["labels"]["batch.kubernetes.io/job-completion-index"]) for p in pods
        )  # fmt: skip
        assert slots == [("leader", "0"), ("workers", "0"), ("workers", "1")], slots
        assert all(p["status"]["phase"] == "Succeeded" for p in pods)
        for pod in pods:  # every pod got the hyperparameters, in its own training container
            train = pod["spec"]["containers"][0]
            assert {"name": "HP_X", "value": str(x)} in train["env"], (pod["metadata"]["name"], train["name"])

    # `kubetune trials` reads the JobSets as it reads Jobs: every trial, with the leader's value.
    cli = subprocess.run(
        [sys.executable, "-m", "kubetune.cli", "trials", "sets-ok", "-n", namespace,
         "--kubeconfig", str(cluster.kubeconfig), "-o", "json"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert cli.returncode == 0, cli.stderr
    rows = json.loads(cli.stdout)
    assert sorted(r["name"] for r in rows) == sorted(s["metadata"]["name"] for s in sets), rows
    assert all(r["status"] == "Completed" and r["score"] < 1000 for r in rows), rows  # the metric, by name

    status = wait_for_end(cluster, namespace, "sets-fail", operator, timeout=240)
    assert status["trainingJobStatusCounters"]["nonRetryableError"] == 1, status
    (jobset,) = jobsets_of(cluster, namespace, "sets-fail")
    trial = record(jobset)
    assert trial["status"] == "Failed", trial
    assert "container worker of pod" in trial["reason"], trial["reason"]
    assert "(workers job 0 index 1) exited with code 3" in trial["reason"], trial["reason"]
    assert "worker 1 broke on purpose" in trial["reason"], trial["reason"]


def test_stopping_a_jobset_trial_stops_all_its_pods(cluster: Any, namespace: str, operator: OperatorProcess) -> None:
    apply(cluster, namespace, jobset_trials("sets-stop", "hang", 1))

    def all_running_and_reporting() -> bool:
        sets = jobsets_of(cluster, namespace, "sets-stop")
        if len(sets) != 1 or not record(sets[0])["reports"]:
            return False
        pods = pods_of(cluster, namespace, sets[0]["metadata"]["name"])
        return len(pods) == 3 and all(p["status"].get("phase") == "Running" for p in pods)

    wait_until(all_running_and_reporting, 120, "all three pods running and the leader reporting", operator)
    cluster.kubectl("-n", namespace, "patch", "hptj", "sets-stop", "--type=merge", "-p", '{"spec":{"stopped":true}}')
    status = wait_for_end(cluster, namespace, "sets-stop", operator, timeout=60)
    assert status["hyperParameterTuningJobStatus"] == "Stopped", status
    (jobset,) = jobsets_of(cluster, namespace, "sets-stop")
    assert jobset["spec"]["suspend"] is True
    assert all(r[2] < 1000 for r in record(jobset)["reports"])
    wait_until(
        lambda: not pods_of(cluster, namespace, jobset["metadata"]["name"]),
        90,
        "every pod of the stopped trial to be gone",
        operator,
    )
    assert status_of(cluster, namespace, "sets-stop")["trainingJobStatusCounters"]["stopped"] == 1


def test_a_jobset_trial_without_an_identifiable_primary_is_refused_naming_the_field(
    cluster: Any, namespace: str, operator: OperatorProcess
) -> None:
    resource = jobset_trials("sets-unnamed", "ok", 1)
    del resource["spec"]["trialTemplate"]["spec"]["replicatedJobs"][0]["name"]
    apply(cluster, namespace, resource)  # the CRD cannot see into the template: the operator refuses it
    status = wait_until(
        lambda: (
            (s := status_of(cluster, namespace, "sets-unnamed")).get("hyperParameterTuningJobStatus") == "Failed" and s
        ),
        60,
        "the tuning job to fail as invalid",
        operator,
    )
    assert "spec.trialTemplate.spec: replicatedJobs[0] needs a name" in status["failureReason"], status
    assert not jobsets_of(cluster, namespace, "sets-unnamed")


def test_the_jobset_example_runs_leader_and_worker_on_their_shards(
    cluster: Any, namespace: str, operator: OperatorProcess
) -> None:
    apply(cluster, namespace, example("jobset/digits.yaml"))
    status = wait_for_end(cluster, namespace, "digits-jobset", operator, timeout=300)
    assert status["hyperParameterTuningJobStatus"] == "Completed", status
    assert status["trainingJobStatusCounters"]["completed"] == 4
    assert status["bestTrainingJob"]["finalObjectiveValue"] > 0.5
    jobset = jobsets_of(cluster, namespace, "digits-jobset")[0]["metadata"]["name"]
    for rank, replicated in ((0, "leader"), (1, "workers")):
        (pod,) = [
            p
            for p in pods_of(cluster, namespace, jobset)
            if p["metadata"]["labels"]["jobset.sigs.k8s.io/replicatedjob-name"] == replicated
        ]
        output = cluster.kubectl("-n", namespace, "logs", pod["metadata"]["name"], "-c", "train").stdout
        assert f"rank {rank} of 2: training on" in output, output
