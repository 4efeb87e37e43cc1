"""Trials of several pods (Indexed Jobs): the spec's rules, which pod is primary, how a trial ends, local runs."""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from kubetune import SpecError
from kubetune.api.spec import parse_spec
from kubetune.operator.podstate import (
    COMPLETION_INDEX,
    current_pods,
    failed_pod,
    primary_pod,
    trial_failure,
    trial_outcome,
    trial_waiting,
)

from .conftest import BASE_SPEC

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "manifests" / "examples" / "multinode.yaml"


def with_template(job: dict[str, Any], **template: Any) -> dict[str, Any]:
    spec = copy.deepcopy(BASE_SPEC)
    spec["trialTemplate"]["spec"].update(job)
    spec["trialTemplate"].update(template)
    return spec


INDEXED = {"completionMode": "Indexed", "completions": 2, "parallelism": 2}


# -- the spec -------------------------------------------------------------------------------------


def test_an_indexed_template_has_primary_index_0_by_default() -> None:
    template = parse_spec(with_template(INDEXED)).trial_template
    assert template.multi_pod and template.pods_per_trial == 2 and template.primary_index == 0
    assert parse_spec(with_template(INDEXED, primaryCompletionIndex=1)).trial_template.primary_index == 1
    single = parse_spec(copy.deepcopy(BASE_SPEC)).trial_template
    assert not single.multi_pod and single.primary_index is None


BAD = [
    ({"parallelism": 2}, {}, "spec.trialTemplate.spec.completionMode", "must be Indexed"),
    ({"completions": 3}, {}, "spec.trialTemplate.spec.completionMode", "completions=3"),
    ({"completions": 2, "parallelism": 2, "completionMode": "NonIndexed"}, {}, "spec.trialTemplate.spec.completionMode", "Indexed"),
    ({"completionMode": "Indexed", "parallelism": 2}, {}, "spec.trialTemplate.spec.completions", "required"),
    (INDEXED, {"primaryCompletionIndex": 2}, "spec.trialTemplate.primaryCompletionIndex", "outside the completion indexes 0 to 1"),
    (INDEXED, {"primaryCompletionIndex": -1}, "spec.trialTemplate.primaryCompletionIndex", "greater than or equal to 0"),
    ({}, {"primaryCompletionIndex": 0}, "spec.trialTemplate.primaryCompletionIndex", "only applies to an Indexed Job"),
]  # fmt: skip


@pytest.mark.parametrize(("job", "template", "field", "words"), BAD)
def test_a_bad_multi_pod_template_names_its_field(
    job: dict[str, Any], template: dict[str, Any], field: str, words: str
) -> None:
    with pytest.raises(SpecError) as info:
        parse_spec(with_template(job, **template))
    assert info.value.field == field, str(info.value)
    assert words in str(info.value)


def test_metric_definitions_need_a_command_to_wrap_in_a_multi_pod_trial() -> None:
    spec = with_template(INDEXED)
    spec["metricDefinitions"] = [{"name": "loss", "regex": "loss=([0-9.]+)"}]
    parse_spec(copy.deepcopy(spec))  # with a command: captured
    del spec["trialTemplate"]["spec"]["template"]["spec"]["containers"][0]["command"]
    with pytest.raises(SpecError) as info:
        parse_spec(spec)
    assert info.value.field == "spec.trialTemplate.spec.template.spec.containers", str(info.value)
    assert "[0] (train) has no command" in str(info.value) and "trial of 2 pods" in str(info.value)
    single = copy.deepcopy(spec)
    single["trialTemplate"]["spec"] = {"template": single["trialTemplate"]["spec"]["template"]}
    parse_spec(single)  # one pod: still allowed, the operator warns OutputNotCaptured


def test_the_crd_carries_the_field_with_its_minimum() -> None:
    from kubetune.api.crd import crd

    schema = crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    field = schema["properties"]["spec"]["properties"]["trialTemplate"]["properties"]["primaryCompletionIndex"]
    assert field["type"] == "integer" and field["minimum"] == 0 and "primary pod" in field["description"]


def test_every_pod_of_an_indexed_trial_gets_the_hyperparameters_and_a_sidecar() -> None:
    from kubetune import Tuner
    from kubetune.operator.trialjob import SidecarConfig, build_trial_job

    spec = parse_spec(with_template(INDEXED))
    (trial,) = Tuner(spec).ask(1)
    owner = {"name": "tj", "namespace": "ns", "uid": "u"}
    job = build_trial_job(spec, owner, trial, {}, SidecarConfig(image="kt:1")).manifest["spec"]
    assert {k: job[k] for k in INDEXED} == INDEXED  # one pod template for every index
    pod = job["template"]["spec"]
    env = {e["name"] for e in pod["containers"][0]["env"]}
    assert {"HP_LAYERS", "HP_LR", "KUBETUNE_HYPERPARAMETERS"} <= env
    assert [c["name"] for c in pod["initContainers"]] == ["kubetune-metrics"]
    assert job["backoffLimit"] == 0 and job["podFailurePolicy"]["rules"][1]["action"] == "FailJob"  # any rank
    per_index = build_trial_job(
        parse_spec(with_template({**INDEXED, "backoffLimitPerIndex": 2})), owner, trial, {}, SidecarConfig("kt:1")
    ).manifest["spec"]
    assert "backoffLimit" not in per_index and per_index["backoffLimitPerIndex"] == 2  # its retries per rank stand
    assert per_index["podFailurePolicy"]["rules"] == [
        {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget"}]}
    ]


# -- the primary pod ------------------------------------------------------------------------------


def pod(name: str, index: int | None, created: str, phase: str = "Running", **status: Any) -> dict[str, Any]:
    labels = {} if index is None else {COMPLETION_INDEX: str(index)}
    return {
        "metadata": {"name": name, "uid": f"uid-{name}", "creationTimestamp": created, "labels": labels},
        "status": {"phase": phase, **status},
    }


def test_the_primary_is_the_newest_pod_of_its_index_not_the_newest_pod() -> None:
    rank0 = pod("t-0-a", 0, "2026-01-01T00:00:00Z")
    rank1 = pod("t-1-a", 1, "2026-01-01T00:00:05Z")
    assert primary_pod([rank0, rank1], 0) is rank0
    replaced1 = pod("t-1-b", 1, "2026-01-01T00:01:00Z")  # rank 1 ran again: rank 0 is still the primary
    assert primary_pod([rank0, rank1, replaced1], 0) is rank0
    retried0 = pod("t-0-b", 0, "2026-01-01T00:02:00Z")  # rank 0 ran again: a new primary, a new attempt
    assert primary_pod([rank0, rank1, replaced1, retried0], 0) is retried0
    assert primary_pod([rank0, rank1], 1) is rank1
    assert primary_pod([rank1], 0) is None  # rank 0 not created yet
    assert current_pods([rank0, rank1, replaced1, retried0]) == [retried0, replaced1]


def test_one_pod_trials_keep_the_newest_pod() -> None:
    first, second = pod("t-a", None, "2026-01-01T00:00:00Z"), pod("t-b", None, "2026-01-01T00:01:00Z")
    assert primary_pod([first, second], None) is second


# -- how a trial ends -----------------------------------------------------------------------------

RUNNING_JOB: dict[str, Any] = {"spec": {}, "status": {"active": 1}}
COMPLETE_JOB = {"spec": {}, "status": {"conditions": [{"type": "Complete", "status": "True"}]}}


def test_the_primary_succeeding_does_not_end_a_multi_pod_trial() -> None:
    done = pod("t-0-a", 0, "2026-01-01T00:00:00Z", phase="Succeeded")
    assert trial_outcome(RUNNING_JOB, done, multi_pod=True) is None  # rank 1 still trains
    assert trial_outcome(COMPLETE_JOB, done, multi_pod=True) == (True, "")
    assert trial_outcome(RUNNING_JOB, done) == (True, "")  # one pod: its success is the trial's


def terminated(code: int, finished: str, message: str = "") -> dict[str, Any]:
    return {
        "containerStatuses": [
            {"name": "train", "state": {"terminated": {"exitCode": code, "finishedAt": finished, "message": message}}}
        ]
    }


def test_a_failing_rank_fails_the_trial_naming_its_pod_index_and_output() -> None:
    spec = parse_spec(with_template(INDEXED))
    rank0 = pod("t-0-a", 0, "2026-01-01T00:00:00Z", "Failed", **terminated(143, "2026-01-01T00:00:09Z"))
    rank1 = pod("t-1-a", 1, "2026-01-01T00:00:00Z", "Failed", **terminated(3, "2026-01-01T00:00:05Z", "boom\n"))
    reason = (
        "PodFailurePolicy: Container train for pod ns/t-1-a failed with exit code 3 matching FailJob rule at index 1"
    )
    job = {"spec": {}, "status": {"conditions": [{"type": "Failed", "status": "True", "reason": "PodFailurePolicy",
                                                  "message": reason.split(": ", 1)[1]}]}}  # fmt: skip
    outcome = trial_outcome(job, rank0, multi_pod=True)
    assert outcome == (False, reason)
    culprit = failed_pod(reason, [rank0, rank1], "train", rank0)
    assert culprit is rank1
    text = trial_failure(reason, culprit, spec)
    assert "container train of pod t-1-a (index 1) exited with code 3" in text and text.endswith("last output:\nboom")
    # BackoffLimitExceeded names no pod: the first to fail is the cause, not the one stopped after it
    assert (
        failed_pod("BackoffLimitExceeded: Job has reached the specified backoff limit", [rank0, rank1], "train", rank0)
        is rank1
    )
    assert failed_pod("DeadlineExceeded", [], "train", rank0) is rank0  # fmt: skip


def test_a_retried_or_disrupted_pod_is_not_taken_for_the_cause() -> None:
    ok0 = pod("t-0-a", 0, "2026-01-01T00:00:00Z", "Succeeded", **terminated(0, "2026-01-01T00:09:00Z"))
    early1 = pod("t-1-a", 1, "2026-01-01T00:00:00Z", "Failed", **terminated(1, "2026-01-01T00:01:00Z"))
    late1 = pod("t-1-b", 1, "2026-01-01T00:02:00Z", "Failed", **terminated(2, "2026-01-01T00:03:00Z"))
    evicted2 = pod("t-2-a", 2, "2026-01-01T00:00:00Z", "Failed", **terminated(137, "2026-01-01T00:00:30Z"),
                   conditions=[{"type": "DisruptionTarget", "status": "True", "reason": "EvictionByEvictionAPI"}])  # fmt: skip
    reason = "BackoffLimitExceeded: Job has reached the specified backoff limit"
    assert failed_pod(reason, [ok0, early1, late1, evicted2], "train", ok0) is late1


def test_a_multi_pod_trial_waits_while_any_rank_does() -> None:
    rank0 = pod("t-0-a", 0, "2026-01-01T00:00:00Z")
    rank1 = pod("t-1-a", 1, "2026-01-01T00:00:00Z", "Pending",
                conditions=[{"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": "no cpu"}])  # fmt: skip
    waits = trial_waiting(RUNNING_JOB, [rank0, rank1], rank0, multi_pod=True)
    assert waits == ("index 1: Unschedulable: no cpu", rank1)
    assert trial_waiting(RUNNING_JOB, [rank0, rank1], rank0, multi_pod=False) is None
    assert trial_waiting(RUNNING_JOB, [rank1], None, multi_pod=True) == ("no pod yet", None)


# -- the example, here ----------------------------------------------------------------------------


def kubetune(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kubetune.cli", *args], cwd=cwd, capture_output=True, text=True, timeout=180
    )


def test_the_multinode_example_validates(tmp_path: Path) -> None:
    result = kubetune("validate", str(EXAMPLE), cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "budget 4 trials, 2 pods per trial, primary index 0)" in result.stdout


@pytest.mark.slow
def test_kubetune_run_runs_the_primary_of_each_multi_pod_trial(tmp_path: Path) -> None:
    result = kubetune("run", str(EXAMPLE), "-o", "out.json", "--trial-dir", "trials", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "trial.multi_pod" in result.stderr and "only the primary pod (completion index 0)" in result.stderr
    logs = sorted((tmp_path / "trials").glob("*.log"))
    assert len(logs) == 4
    assert all("rank 0 of 2: training on" in log.read_text() for log in logs)  # told its rank and world
    assert "Completed" in (tmp_path / "out.json").read_text()
