"""The cluster is the database: kill the operator at any moment and its successor carries on exactly."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from .harness import EXAMPLES, OperatorProcess, apply, example, get, wait_for_end, wait_until

pytestmark = pytest.mark.cluster


def trial_jobs(cluster: Any, namespace: str, name: str) -> list[dict[str, Any]]:
    return list(get(cluster, namespace, "jobs", selector=f"kubetune.io/tuning-job={name}")["items"])


def restart_spec() -> dict[str, Any]:
    resource = example(
        "random.yaml",
        resourceLimits={"maxNumberOfTrainingJobs": 10, "maxParallelTrainingJobs": 3},
        staticHyperParameters={"epochs": 15, "batch_size": 32},
    )
    return resource


def test_sigkill_loses_and_repeats_nothing(
    cluster: Any, namespace: str, operator: OperatorProcess, tmp_path: Path
) -> None:
    resource = restart_spec()
    apply(cluster, namespace, resource)
    for at_least in (2, 5, 8):  # kill it while trials run, at three points of the job
        wait_until(
            lambda n=at_least: len(trial_jobs(cluster, namespace, "digits-random")) >= n,
            120,
            f"{at_least} trials",
            operator,
        )
        operator.kill()
        time.sleep(1.5)
        operator.start()
    status = wait_for_end(cluster, namespace, "digits-random", operator)
    assert status["hyperParameterTuningJobStatus"] == "Completed", status
    jobs = trial_jobs(cluster, namespace, "digits-random")
    assert sorted(j["metadata"]["name"] for j in jobs) == [f"digits-random-{n:04d}" for n in range(1, 11)]
    counters = status["trainingJobStatusCounters"]
    assert counters["completed"] == 10 and counters.get("nonRetryableError", 0) == 0 and counters.get("stopped", 0) == 0
    assert operator.log().count("leader.acquired") == 4

    # The same spec, uninterrupted, on this machine: the same trials and the same best.
    # In the image the script is in /app; here it is in the examples folder.
    local_resource = copy.deepcopy(resource)
    local_resource["spec"]["trialTemplate"]["spec"]["template"]["spec"]["containers"][0]["workingDir"] = str(EXAMPLES)
    spec_path = tmp_path / "job.yaml"
    spec_path.write_text(yaml.safe_dump(local_resource))
    subprocess.run(
        [
            sys.executable,
            "-m",
            "kubetune.cli",
            "run",
            str(spec_path),
            "-o",
            str(tmp_path / "out.json"),
            "--trial-dir",
            str(tmp_path / "t"),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    local = json.loads((tmp_path / "out.json").read_text())
    in_cluster = {
        int(j["metadata"]["labels"]["kubetune.io/trial"]): json.loads(
            j["metadata"]["annotations"]["kubetune.io/hyperparameters"]
        )
        for j in jobs
    }
    assert in_cluster == {int(t["id"]): t["hyperparameters"] for t in local["trials"]}
    assert status["bestTrainingJob"]["tunedHyperParameters"] == local["best"]["hyperparameters"]
    assert status["bestTrainingJob"]["finalObjectiveValue"] == pytest.approx(local["best"]["objective"])


def test_a_second_replica_waits_then_takes_over(
    cluster: Any, namespace: str, operator: OperatorProcess, tmp_path: Path
) -> None:
    standby = OperatorProcess(
        cluster, operator.kubeconfig, tmp_path / "standby.log", ["--leader-identity", "replica-b"]
    )
    standby.start()
    try:
        wait_until(lambda: "leader.waiting" in standby.log(), 60, "the standby to wait for the lease")
        resource = restart_spec()
        resource["spec"]["resourceLimits"] = {"maxNumberOfTrainingJobs": 4, "maxParallelTrainingJobs": 2}
        apply(cluster, namespace, resource)
        wait_until(
            lambda: len(trial_jobs(cluster, namespace, "digits-random")) >= 2,
            60,
            "the leader to start trials",
            operator,
        )
        assert "trial.created" not in standby.log()  # a standby never acts
        operator.kill()
        status = wait_for_end(cluster, namespace, "digits-random", standby, timeout=180)
        assert status["hyperParameterTuningJobStatus"] == "Completed"
        assert "leader.acquired" in standby.log() and "trial.created" in standby.log()
        assert len(trial_jobs(cluster, namespace, "digits-random")) == 4
    finally:
        standby.stop()
        operator.start()  # the module's operator, for the tests after this one
