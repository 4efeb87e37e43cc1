"""JobSet trials: the spec's rules, the JobSet made for a trial, which pod is primary, how a trial ends."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from kubetune import SpecError, Tuner
from kubetune.api.spec import parse_spec
from kubetune.operator import jobset
from kubetune.operator.handlers import Indexes
from kubetune.operator.podstate import (
    COMPLETION_INDEX,
    current_pods,
    failed_pod,
    job_outcome,
    primary_pod,
    trial_failure,
    trial_outcome,
    trial_waiting,
)
from kubetune.operator.trialjob import SidecarConfig, build_trial_job

from .conftest import BASE_SPEC

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "manifests" / "examples" / "jobset" / "digits.yaml"


def replicated(name: str, container: str = "train", **job: Any) -> dict[str, Any]:
    return {
        "name": name,
        "replicas": 1,
        "template": {
            "spec": {
                **job,
                "template": {
                    "spec": {"restartPolicy": "Never", "containers": [{"name": container, "command": ["true"]}]}
                },
            }
        },
    }


LEADER = replicated("leader")
WORKERS = replicated("workers", "worker", completionMode="Indexed", completions=2, parallelism=2)


def jobset_spec(*jobs: dict[str, Any], **template: Any) -> dict[str, Any]:
    spec = copy.deepcopy(BASE_SPEC)
    spec["trialTemplate"] = {"kind": "JobSet", "spec": {"replicatedJobs": list(jobs or (LEADER, WORKERS))}, **template}
    return spec


def problems(spec: dict[str, Any]) -> dict[str, str]:
    """Field -> what is wrong there (every problem of a field, joined)."""
    with pytest.raises(SpecError) as info:
        parse_spec(spec)
    found: dict[str, str] = {}
    for field, message in info.value.problems:
        found[field] = f"{found[field]}; {message}" if field in found else message
    return found


# -- the spec -------------------------------------------------------------------------------------


def test_a_jobset_template_counts_every_pod_and_names_its_primary() -> None:
    template = parse_spec(jobset_spec()).trial_template
    assert template.jobset and template.pods_per_trial == 3 and template.multi_pod
    assert template.primary_replicated_job_name == "leader" and template.primary_index == 0  # JobSet makes it Indexed
    assert [c["name"] for c in template.containers()] == ["train"]
    chosen = parse_spec(jobset_spec(primaryReplicatedJob="workers", primaryCompletionIndex=1)).trial_template
    assert chosen.primary_replicated_job_name == "workers" and chosen.primary_index == 1
    assert [c["name"] for c in chosen.containers()] == ["worker"]


@pytest.mark.parametrize(
    ("spec", "field", "says"),
    [
        (jobset_spec(primaryReplicatedJob="driver"), "spec.trialTemplate.primaryReplicatedJob",
         "'driver' is not one of the JobSet's replicatedJobs (leader, workers)"),
        (jobset_spec(primaryReplicatedJob="workers", primaryCompletionIndex=2), "spec.trialTemplate.primaryCompletionIndex",
         "outside the completion indexes 0 to 1 of spec.trialTemplate.spec.replicatedJobs[1].template.spec.completions"),
        (jobset_spec({**LEADER, "name": ""}), "spec.trialTemplate.spec",
         "replicatedJobs[0] needs a name (the primary pod is found by it)"),
        (jobset_spec(LEADER, {**LEADER}), "spec.trialTemplate.spec", "names must be unique; repeated: leader"),
        ({**jobset_spec(), "trialTemplate": {"kind": "JobSet", "spec": {}}}, "spec.trialTemplate.spec",
         "replicatedJobs must list at least one replicated Job"),
        (jobset_spec(replicated("leader", completionMode="NonIndexed", completions=2)),
         "spec.trialTemplate.spec.replicatedJobs[0].template.spec.completionMode", "must be Indexed"),
    ],
)  # fmt: skip
def test_a_jobset_without_an_identifiable_primary_names_the_field(spec: dict[str, Any], field: str, says: str) -> None:
    found = problems(spec)
    assert field in found and says in found[field], found


def test_the_wrong_kind_for_the_spec_is_named_both_ways() -> None:
    job_with_jobset_spec = copy.deepcopy(jobset_spec())
    del job_with_jobset_spec["trialTemplate"]["kind"]
    found = problems(job_with_jobset_spec)
    assert "set spec.trialTemplate.kind to JobSet" in found["spec.trialTemplate.spec"], found
    primary_of_a_job = copy.deepcopy(BASE_SPEC)
    primary_of_a_job["trialTemplate"]["primaryReplicatedJob"] = "leader"
    assert "only applies with kind JobSet" in problems(primary_of_a_job)["spec.trialTemplate.primaryReplicatedJob"]


def test_no_metadata_of_a_jobset_may_name_a_namespace_or_an_owner() -> None:
    pod_meta = copy.deepcopy(WORKERS)
    pod_meta["template"]["spec"]["template"]["metadata"] = {"namespace": "kube-system"}
    job_meta = {**LEADER, "template": {**LEADER["template"], "metadata": {"ownerReferences": []}}}
    found = problems(jobset_spec(job_meta, pod_meta))
    text = " ".join(found.values())
    assert "spec.replicatedJobs[0].template.metadata.ownerReferences must not be set" in text, found
    assert "spec.replicatedJobs[1].template.spec.template.metadata.namespace must not be set" in text, found


def test_metric_definitions_need_the_primary_command_of_a_jobset() -> None:
    spec = jobset_spec(primaryReplicatedJob="workers")
    spec["metricDefinitions"] = [{"name": "loss", "regex": "loss=([0-9.]+)"}]
    del spec["trialTemplate"]["spec"]["replicatedJobs"][1]["template"]["spec"]["template"]["spec"]["containers"][0][
        "command"
    ]
    found = problems(spec)
    field = "spec.trialTemplate.spec.replicatedJobs[1].template.spec.template.spec.containers"
    assert "[0] (worker) has no command" in found[field] and "trial of 3 pods" in found[field], found


def test_the_jobset_example_validates() -> None:
    import yaml

    spec = parse_spec(yaml.safe_load(EXAMPLE.read_text())["spec"])
    assert spec.trial_template.jobset and spec.trial_template.pods_per_trial == 2


# -- the JobSet made for a trial ------------------------------------------------------------------


def build(spec: dict[str, Any]) -> dict[str, Any]:
    parsed = parse_spec(spec)
    (trial,) = Tuner(parsed).ask(1)
    owner = {"name": "tj", "namespace": "ns", "uid": "u"}
    return build_trial_job(parsed, owner, trial, {}, SidecarConfig(image="kt:1")).manifest


def test_every_pod_of_a_jobset_trial_gets_the_hyperparameters_and_a_sidecar() -> None:
    manifest = build(jobset_spec())
    assert (manifest["apiVersion"], manifest["kind"]) == ("jobset.x-k8s.io/v1alpha2", "JobSet")
    assert manifest["metadata"]["ownerReferences"][0]["uid"] == "u" and "suspend" not in manifest["spec"]
    for rj, container in zip(manifest["spec"]["replicatedJobs"], ("train", "worker"), strict=True):
        job = rj["template"]["spec"]
        pod = job["template"]["spec"]
        labels = job["template"]["metadata"]["labels"]
        assert labels == {"kubetune.io/tuning-job": "tj", "kubetune.io/trial": "1"}  # the pods are found by them
        env = {e["name"] for e in pod["containers"][0]["env"]}
        assert {"HP_LAYERS", "HP_LR", "KUBETUNE_HYPERPARAMETERS"} <= env, (rj["name"], env)
        assert [c["name"] for c in pod["initContainers"]] == ["kubetune-metrics"]
        assert {"name": "kubetune-shared", "emptyDir": {}} in pod["volumes"]
        fail_job = job["podFailurePolicy"]["rules"][-1]
        assert fail_job["action"] == "FailJob" and fail_job["onExitCodes"]["containerName"] == container
        assert job["backoffLimit"] == 0
    assert "kubetune.io/tuning-job" not in (manifest["spec"]["replicatedJobs"][0]["template"].get("metadata") or {})


def test_a_queued_jobset_trial_is_created_suspended() -> None:
    spec = jobset_spec(metadata={"labels": {"kueue.x-k8s.io/queue-name": "gpus"}})
    manifest = build(spec)
    assert manifest["spec"]["suspend"] is True
    assert manifest["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] == "gpus"
    for rj in manifest["spec"]["replicatedJobs"]:
        assert "suspend" not in rj["template"]["spec"]  # the JobSet suspends its Jobs itself
        exit_143 = rj["template"]["spec"]["podFailurePolicy"]["rules"][1]
        assert exit_143["action"] == "Ignore" and exit_143["onExitCodes"]["values"] == [143]


# -- the primary pod, the outcome -----------------------------------------------------------------


def pod(rj: str, job_index: int, index: int, created: str, phase: str = "Running", **status: Any) -> dict[str, Any]:
    name = f"t-{rj}-{job_index}-{index}-{created[-3:-1]}"
    return {
        "metadata": {
            "name": name,
            "uid": f"uid-{name}",
            "creationTimestamp": created,
            "labels": {
                jobset.REPLICATED_JOB_LABEL: rj,
                jobset.JOB_INDEX_LABEL: str(job_index),
                COMPLETION_INDEX: str(index),
                jobset.UID_LABEL: "js-uid",
                jobset.NAME_LABEL: "t",
            },
            "ownerReferences": [{"kind": "Job", "name": f"t-{rj}-{job_index}", "uid": "child", "controller": True}],
        },
        "status": {"phase": phase, **status},
    }


def test_the_primary_is_job_0_of_its_replicated_job_at_its_index() -> None:
    leader = pod("leader", 0, 0, "2026-01-01T00:00:00Z")
    worker0 = pod("workers", 0, 0, "2026-01-01T00:00:10Z")  # newer, same completion index: not the primary
    worker1 = pod("workers", 0, 1, "2026-01-01T00:00:11Z")
    pods = [leader, worker0, worker1]
    assert primary_pod(pods, 0, "leader") is leader
    assert primary_pod(pods, 1, "workers") is worker1
    assert primary_pod([worker0, worker1], 0, "leader") is None  # not created yet
    restarted = pod("leader", 0, 0, "2026-01-01T00:05:00Z")  # JobSet restarted: a new attempt
    assert primary_pod([*pods, restarted], 0, "leader") is restarted
    assert current_pods([*pods, restarted]) == [restarted, worker0, worker1]


def test_a_jobset_trial_ends_as_its_jobset_does_naming_the_rank_that_failed() -> None:
    spec = parse_spec(jobset_spec())
    running = {
        "kind": "JobSet",
        "spec": {},
        "status": {"conditions": [{"type": "StartupPolicyCompleted", "status": "True"}]},
    }
    done = pod("leader", 0, 0, "2026-01-01T00:00:00Z", phase="Succeeded")
    assert trial_outcome(running, done, multi_pod=True) is None  # the workers still train
    completed = {"kind": "JobSet", "status": {"conditions": [{"type": "Completed", "status": "True"}]}}
    assert job_outcome(completed) == (True, "")
    # A Job's Complete is not a JobSet's, nor the other way round
    assert job_outcome({"kind": "JobSet", "status": {"conditions": [{"type": "Complete", "status": "True"}]}}) is None
    failed = {"kind": "JobSet", "status": {"conditions": [
        {"type": "Failed", "status": "True", "reason": "FailedJobs", "message": "jobset failed due to one or more job failures"}]}}  # fmt: skip
    outcome = trial_outcome(failed, done, multi_pod=True)
    assert outcome == (False, "FailedJobs: jobset failed due to one or more job failures")
    broke = {"containerStatuses": [{"name": "worker", "state": {"terminated": {
        "exitCode": 3, "finishedAt": "2026-01-01T00:01:00Z", "message": "rank broke\n"}}}]}  # fmt: skip
    worker1 = pod("workers", 0, 1, "2026-01-01T00:00:01Z", "Failed", **broke)
    culprit = failed_pod(outcome[1], [done, worker1], "train", done)
    assert culprit is worker1  # its training container is named worker, not train: still found
    text = trial_failure(outcome[1], culprit, spec)
    assert "container worker of pod t-workers-0-1-01 (workers job 0 index 1) exited with code 3" in text, text
    assert text.endswith("last output:\nrank broke")


def test_a_jobset_trial_waits_naming_the_pod_that_waits() -> None:
    leader = pod("leader", 0, 0, "2026-01-01T00:00:00Z")
    pending = pod("workers", 0, 1, "2026-01-01T00:00:00Z", "Pending",
                  conditions=[{"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": "no gpu"}])  # fmt: skip
    waits = trial_waiting({"kind": "JobSet", "spec": {}}, [leader, pending], leader, multi_pod=True)
    assert waits == ("workers job 0 index 1: Unschedulable: no gpu", pending)
    suspended = {"kind": "JobSet", "spec": {"suspend": True}}
    assert trial_waiting(suspended, [], None, multi_pod=True) == ("its Job is suspended (waiting for admission)", None)


class _Index(dict[tuple[str, str], list[dict[str, Any]]]):
    """kopf's index as the handlers read it: key -> the bodies stored under it."""


def test_a_jobsets_pods_are_those_its_child_jobs_made_not_those_that_claim_its_labels() -> None:
    indexes = Indexes()
    ours = pod("leader", 0, 0, "2026-01-01T00:00:00Z")
    forged = copy.deepcopy(ours)
    forged["metadata"]["name"], forged["metadata"]["ownerReferences"] = "forged", []  # the labels, no controller
    other = copy.deepcopy(ours)
    other["metadata"]["labels"][jobset.UID_LABEL] = "someone-elses"
    indexes.pods = _Index({("ns", "t"): [ours, forged, other]})  # type: ignore[assignment]
    assert indexes.pods_of("ns", "t", "js-uid") == [ours]
    jobset_body = {"kind": "JobSet", "metadata": {"name": "t", "ownerReferences": [{"uid": "tj", "controller": True}]}}
    job_body = {"kind": "Job", "metadata": {"name": "j", "ownerReferences": [{"uid": "tj", "controller": True}]}}
    indexes.jobs = _Index({("ns", "tj-name"): [job_body]})  # type: ignore[assignment]
    indexes.jobsets = _Index({("ns", "tj-name"): [jobset_body]})  # type: ignore[assignment]
    assert indexes.jobs_of("ns", "tj-name", "tj") == [job_body, jobset_body]


# -- locally --------------------------------------------------------------------------------------


@pytest.mark.slow
def test_kubetune_run_runs_the_primary_pod_of_each_jobset_trial(tmp_path: Path) -> None:
    import subprocess
    import sys

    import yaml

    def role(name: str, container: str, word: str) -> dict[str, Any]:
        job = replicated(name, container)
        script = f"from kubetune import report; print('{word}', flush=True); report(step=1, loss=1.0)"
        job["template"]["spec"]["template"]["spec"]["containers"][0]["command"] = [sys.executable, "-c", script]
        return job

    spec = jobset_spec(role("leader", "train", "i-am-the-leader"), role("workers", "worker", "i-am-a-worker"))
    spec["resourceLimits"] = {"maxNumberOfTrainingJobs": 2, "maxParallelTrainingJobs": 2}
    spec["parameterRanges"] = {"integerParameterRanges": [{"name": "layers", "minValue": 1, "maxValue": 8}]}
    spec["staticHyperParameters"] = {}
    resource = {"apiVersion": "kubetune.io/v1alpha1", "kind": "HyperParameterTuningJob",
                "metadata": {"name": "sets"}, "spec": spec}  # fmt: skip
    (tmp_path / "sets.yaml").write_text(yaml.safe_dump(resource))
    result = subprocess.run(
        [sys.executable, "-m", "kubetune.cli", "run", "sets.yaml", "-o", "out.json", "--trial-dir", "trials"],
        cwd=tmp_path, capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "completion index 0 of job 0 of replicated Job leader" in result.stderr, result.stderr
    logs = sorted((tmp_path / "trials").glob("*.log"))
    assert len(logs) == 2 and all("i-am-the-leader" in log.read_text() for log in logs)
    assert not any("i-am-a-worker" in log.read_text() for log in logs)
