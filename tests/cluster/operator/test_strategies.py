"""Hyperband, Auto early stopping and Bayesian end to end, with the example training script.

The trials train a real MLP on digits (manifests/examples/train_digits.py),
paced with --epoch-seconds so that the operator's scrapes (every second here)
see each epoch and stop losing trials mid-run, as they would a bigger model.
"""

from __future__ import annotations

import json
import re
import statistics
from typing import Any

import pytest

from .harness import OperatorProcess, apply, example, get, wait_for_end, wait_until

pytestmark = pytest.mark.cluster

TUNED = {  # four decades of learning rate: most random draws are poor after a few epochs, the best are not rare
    "continuousParameterRanges": [
        {"name": "learning_rate", "minValue": 0.0001, "maxValue": 1.0, "scalingType": "Logarithmic"}
    ],
    "integerParameterRanges": [{"name": "hidden_units", "minValue": 4, "maxValue": 64}],
}


def paced(resource: dict[str, Any], epoch_seconds: float) -> dict[str, Any]:
    container = resource["spec"]["trialTemplate"]["spec"]["template"]["spec"]["containers"][0]
    container["command"] = ["python", "train_digits.py", "--metrics", "report", "--epoch-seconds", str(epoch_seconds)]
    return resource


def trial_jobs(cluster: Any, namespace: str, name: str) -> list[dict[str, Any]]:
    jobs = get(cluster, namespace, "jobs", selector=f"kubetune.io/tuning-job={name}")["items"]
    return sorted(jobs, key=lambda j: j["metadata"]["name"])


def record_of(job: dict[str, Any]) -> dict[str, Any]:
    return dict(json.loads(job["metadata"]["annotations"]["kubetune.io/trial-record"]))


def steps(record: dict[str, Any]) -> list[float]:
    return [r[1] for r in record["reports"]]


def events_of(cluster: Any, namespace: str, name: str) -> list[dict[str, Any]]:
    found = get(cluster, namespace, "events")["items"]
    return [e for e in found if e["involvedObject"]["name"] == name]


def stop_events(cluster: Any, namespace: str, name: str) -> dict[str, str]:
    """Trial Job name -> the message of its TrialStopped event."""
    stopped: dict[str, str] = {}
    for event in events_of(cluster, namespace, name):
        if event["reason"] == "TrialStopped":
            match = re.match(r"trial (\S+) stopped: (.*)", event["message"])
            assert match, event["message"]
            stopped[match.group(1)] = match.group(2)
    return stopped


def assert_stopped_trials_kept(cluster: Any, namespace: str, name: str, operator: OperatorProcess) -> None:
    """A stopped trial's Job stays, suspended, as its record; its pods are gone and none replaces them."""
    jobs = trial_jobs(cluster, namespace, name)
    stopped = [j for j in jobs if record_of(j)["status"] == "Stopped"]
    assert stopped and all(j["spec"]["suspend"] for j in stopped)
    assert all(not j["status"].get("active") for j in stopped)
    stopped_names = {j["metadata"]["name"] for j in stopped}

    def no_pods() -> bool:
        pods = get(cluster, namespace, "pods", selector=f"kubetune.io/tuning-job={name}")["items"]
        return not [p for p in pods if p["metadata"]["labels"].get("job-name") in stopped_names]

    wait_until(no_pods, 60, "the stopped trials' pods to be gone", operator)


def test_hyperband_stops_losers_at_the_rungs(cluster: Any, namespace: str, operator: OperatorProcess) -> None:
    # maxResource 9 from epochs; rungs at 1 and 3 epochs; eta 3.
    resource = paced(
        example(
            "hyperband.yaml",
            resourceLimits={"maxNumberOfTrainingJobs": 12, "maxParallelTrainingJobs": 3},
            parameterRanges=TUNED,
            staticHyperParameters={"epochs": 9, "momentum": 0.0, "batch_size": 32},
        ),
        epoch_seconds=0.5,
    )
    apply(cluster, namespace, resource)
    status = wait_for_end(cluster, namespace, "digits-hyperband", operator, timeout=300)
    assert status["hyperParameterTuningJobStatus"] == "Completed", status
    assert status["completionReason"] == "MaxNumberOfTrainingJobsReached"

    jobs = trial_jobs(cluster, namespace, "digits-hyperband")
    assert len(jobs) == 12
    records = {j["metadata"]["name"]: record_of(j) for j in jobs}
    assert all(r["hyperparameters"]["epochs"] == 9 for r in records.values())  # every trial is told maxResource
    stopped = {n: r for n, r in records.items() if r["status"] == "Stopped"}
    completed = {n: r for n, r in records.items() if r["status"] == "Completed"}
    assert len(stopped) + len(completed) == 12, {n: r["status"] for n, r in records.items()}
    counters = status["trainingJobStatusCounters"]
    assert counters["stopped"] == len(stopped) >= 4 and counters["completed"] == len(completed) >= 1

    events = stop_events(cluster, namespace, "digits-hyperband")
    assert set(events) == set(stopped)
    at_rung = {1: 0, 3: 0}
    for job_name, record in stopped.items():
        # Judged on the report at the rung, and scored by it: reports after the rejection are not taken.
        level = steps(record)[-1]
        assert level in (1.0, 3.0), (job_name, steps(record))
        assert record["value"] == record["reports"][-1][2]
        rung = 1 if level == 1.0 else 2
        assert re.match(
            rf"Hyperband rung {rung} of 2 \(epochs={level:g}, bracket \d of \d\): ranked \d+ of", events[job_name]
        )
        assert events[job_name] == record["reason"]
        at_rung[int(level)] += 1
    assert at_rung[1] >= 3, at_rung  # the first rung cuts hardest
    for job_name, record in completed.items():  # the winners passed every rung of their bracket and ran to the end
        assert steps(record)[-1] > 3.0, (job_name, steps(record))
        # The operator settles a trial when its pod succeeds; the Job controller marks the Job a moment later.
        wait_until(
            lambda n=job_name: get(cluster, namespace, "job", n)["status"].get("succeeded") == 1,
            30,
            f"Job {job_name} to count its success",
            operator,
        )
    # The best trial is one that ran to maxResource, and the losers are ranked by their value at the rung.
    assert status["bestTrainingJob"]["name"] in completed
    assert_stopped_trials_kept(cluster, namespace, "digits-hyperband", operator)
    print(f"Hyperband: {len(completed)} completed, stopped at epochs=1: {at_rung[1]}, at epochs=3: {at_rung[3]}; "
          f"best {status['bestTrainingJob']['finalObjectiveValue']}")  # fmt: skip


def test_random_with_auto_early_stopping(cluster: Any, namespace: str, operator: OperatorProcess) -> None:
    resource = paced(
        example(
            "random.yaml",
            resourceLimits={"maxNumberOfTrainingJobs": 14, "maxParallelTrainingJobs": 3},
            parameterRanges=TUNED,
            staticHyperParameters={"epochs": 6, "momentum": 0.0, "batch_size": 32},
            trainingJobEarlyStoppingType="Auto",
        ),
        epoch_seconds=0.4,
    )
    apply(cluster, namespace, resource)
    status = wait_for_end(cluster, namespace, "digits-random", operator, timeout=300)
    assert status["hyperParameterTuningJobStatus"] == "Completed", status

    jobs = trial_jobs(cluster, namespace, "digits-random")
    records = {j["metadata"]["name"]: record_of(j) for j in jobs}
    stopped = {n: r for n, r in records.items() if r["status"] == "Stopped"}
    completed = {n: r for n, r in records.items() if r["status"] == "Completed"}
    assert len(stopped) + len(completed) == 14, {n: r["status"] for n, r in records.items()}
    assert status["trainingJobStatusCounters"]["stopped"] == len(stopped) >= 2
    events = stop_events(cluster, namespace, "digits-random")
    assert set(events) == set(stopped)
    for job_name, record in stopped.items():
        step = steps(record)[-1]
        assert 1 <= step <= 6, (job_name, steps(record))
        assert record["value"] == record["reports"][-1][2]
        match = re.match(rf"Auto early stopping at step {step:g}: its objective is worse than the median of the"
                         r" objectives of the (\d+) (completed|earlier) trials at that step", events[job_name])  # fmt: skip
        assert match, events[job_name]
        assert int(match.group(1)) >= (3 if match.group(2) == "completed" else 5), events[job_name]  # the minimums
    assert all(steps(r)[-1] == 6.0 for r in completed.values()), {n: steps(r) for n, r in completed.items()}
    # Random + Auto does not know the last epoch, so a trial may be stopped at it; most are stopped well before.
    early = [r for r in stopped.values() if steps(r)[-1] < 6]
    assert len(early) >= 2, {n: steps(r) for n, r in stopped.items()}
    assert_stopped_trials_kept(cluster, namespace, "digits-random", operator)
    print(f"Random + Auto: {len(stopped)} of 14 stopped at steps "
          f"{sorted(steps(r)[-1] for r in stopped.values())}")  # fmt: skip


def test_bayesian_beats_random_at_the_same_budget(cluster: Any, namespace: str, operator: OperatorProcess) -> None:
    budget = 12
    limits = {"maxNumberOfTrainingJobs": budget, "maxParallelTrainingJobs": 2}
    static = {"epochs": 3, "momentum": 0.0, "batch_size": 32}
    # One trial at a time: each pick sees every earlier result, so the run does not depend on which of two
    # parallel trials the cluster happens to finish first (with 2 at a time, a 12-trial run varies a lot).
    bayesian = example("bayesian.yaml", randomSeed=7, resourceLimits={**limits, "maxParallelTrainingJobs": 1},
                       parameterRanges=TUNED, staticHyperParameters=static)  # fmt: skip
    random = example("random.yaml", randomSeed=7, resourceLimits=limits, parameterRanges=TUNED,
                     staticHyperParameters=static)  # fmt: skip
    apply(cluster, namespace, bayesian)
    apply(cluster, namespace, random)
    ended = {name: wait_for_end(cluster, namespace, name, operator, timeout=300)
             for name in ("digits-bayesian", "digits-random")}  # fmt: skip
    values: dict[str, list[float]] = {}
    for name, status in ended.items():
        assert status["hyperParameterTuningJobStatus"] == "Completed", status
        assert status["trainingJobStatusCounters"]["completed"] == budget
        records = sorted((record_of(j) for j in trial_jobs(cluster, namespace, name)), key=lambda r: r["number"])
        values[name] = [r["value"] for r in records]
    # After its space-filling start (5 trials), the model's picks cluster where the accuracy is high;
    # random draws keep spreading over the whole range, most of which trains poorly in 3 epochs.
    later = {name: statistics.median(v[budget // 2 :]) for name, v in values.items()}
    assert later["digits-bayesian"] >= 0.8 and later["digits-bayesian"] >= later["digits-random"] + 0.2, values
    # The best trial is not compared: a lucky random draw can match the model's best at this budget.
    best = {name: max(v) for name, v in values.items()}
    print(f"median of the last {budget - budget // 2} trials: {later}; best: {best}; all: {values}")
