"""kubetune.Client and the results commands against the real API server and operator."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import optuna
import pytest

from kubetune import Client, SpecError
from kubetune.client import ClientError

from .harness import OperatorProcess, example, get, status_of, wait_until

pytestmark = pytest.mark.cluster


def test_submit_wait_read_and_stop(cluster: Any, namespace: str, operator: OperatorProcess, tmp_path: Path) -> None:
    tuner = Client(namespace=namespace, kubeconfig=str(cluster.kubeconfig))
    assert tuner.namespace == namespace
    resource = example("random.yaml", resourceLimits={"maxNumberOfTrainingJobs": 4, "maxParallelTrainingJobs": 2})
    job = tuner.submit(resource)
    lines = io.StringIO()
    final = job.wait(timeout=240, poll_seconds=0.5, progress=lines)
    assert final.hyper_parameter_tuning_job_status is not None
    assert final.hyper_parameter_tuning_job_status.value == "Completed", final
    assert final == job.status() and status_of(cluster, namespace, "digits-random")["progress"] == "4/4"
    shown = lines.getvalue().splitlines()
    assert shown[-1].startswith("digits-random: Completed, 4/4 trials, 0 running, best ") and len(shown) >= 2

    trials = job.trials()
    jobs = get(cluster, namespace, "jobs", selector="kubetune.io/tuning-job=digits-random")["items"]
    records = {
        int(j["metadata"]["labels"]["kubetune.io/trial"]): json.loads(
            j["metadata"]["annotations"]["kubetune.io/trial-record"]
        )
        for j in jobs
    }
    assert sorted(t.number for t in trials) == sorted(records) == [1, 2, 3, 4]
    for trial in trials:
        record = records[trial.number]
        assert (trial.status, trial.objective, dict(trial.hyperparameters)) == (
            record["status"],
            record["value"],
            record["tuned"],
        )
        assert trial.steps == len(record["reports"]) == 8 and trial.duration(0) is not None
    objectives = [t.objective for t in trials]
    assert objectives == sorted(objectives, reverse=True)  # best first
    best = job.best()
    assert best is not None and best.name == trials[0].name and best.final_objective_value == trials[0].objective
    # One Job per page: the list call's continue token carries the rest.
    assert [t.number for t in job.trials(page_size=1)] == [t.number for t in trials]
    frame = job.analytics()
    assert len(frame) == 4 and frame["FinalObjectiveValue"].max() == best.final_objective_value

    cli = subprocess.run(
        [sys.executable, "-m", "kubetune.cli", "trials", "digits-random", "-n", namespace, "--kubeconfig", str(cluster.kubeconfig), "-o", "json"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert cli.returncode == 0, cli.stderr
    assert [r["number"] for r in json.loads(cli.stdout)] == [t.number for t in trials]
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    flags = ["-n", namespace, "--kubeconfig", str(cluster.kubeconfig)]
    for command in (
        ["export", "digits-random", "--optuna", storage],
        ["report", "digits-random", "-o", str(tmp_path / "r.html")],
    ):
        done = subprocess.run(
            [sys.executable, "-m", "kubetune.cli", *command, *flags], capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 0, done.stderr
    study = optuna.load_study(study_name="digits-random", storage=storage)
    assert sorted(t.number + 1 for t in study.trials) == [1, 2, 3, 4]
    assert study.best_value == best.final_objective_value
    assert all(len(t.intermediate_values) == 8 for t in study.trials)
    assert "digits-random" in (tmp_path / "r.html").read_text()

    with pytest.raises(ClientError, match="exists already in namespace"):
        tuner.submit(resource)
    with pytest.raises(SpecError, match="maxValue"):
        bad = example("random.yaml")
        bad["spec"]["parameterRanges"]["integerParameterRanges"][0]["maxValue"] = 1
        tuner.submit(bad, name="bad-range")
    with pytest.raises(ClientError, match="no-such-job"):
        tuner.attach("no-such-job")

    long = example("random.yaml", resourceLimits={"maxNumberOfTrainingJobs": 20, "maxParallelTrainingJobs": 1})
    long["spec"]["staticHyperParameters"]["epochs"] = 400
    running = tuner.submit(long, name="digits-stopped")
    wait_until(lambda: running.status().training_job_status_counters.running >= 1, 120, "a running trial", operator)
    running.stop()
    stopped = tuner.attach("digits-stopped").wait(timeout=120, poll_seconds=0.5, progress=False)
    assert stopped.hyper_parameter_tuning_job_status is not None
    assert stopped.hyper_parameter_tuning_job_status.value == "Stopped", stopped
    assert stopped.trials_started < 20
    assert {t.status for t in running.trials()} <= {"Stopped", "Completed"}
