"""The trial Job the operator creates: the template untouched but for what the trial needs."""

from __future__ import annotations

import copy
import json
from typing import Any

from kubetune import Tuner
from kubetune.api.spec import parse_spec
from kubetune.operator.names import SIDECAR_NAME, TRIAL_RECORD_ANNOTATION, trial_job_name
from kubetune.operator.records import history_from_jobs
from kubetune.operator.trialjob import OUTPUT_WRAPPER, SidecarConfig, build_trial_job

from .conftest import make_spec

OWNER = {"name": "tune", "namespace": "ml", "uid": "1234"}
GPU_TEMPLATE: dict[str, Any] = {
    "metadata": {"labels": {"team": "vision"}, "annotations": {"note": "x"}},
    "spec": {
        "backoffLimit": 0,
        "template": {
            "spec": {
                "restartPolicy": "Never",
                "nodeSelector": {"gpu": "a100"},
                "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
                "volumes": [{"name": "data", "emptyDir": {}}],
                "containers": [
                    {
                        "name": "train",
                        "image": "trainer:1",
                        "command": ["python", "train.py"],
                        "args": ["--lr=$(HP_LR)"],
                        "env": [{"name": "MINE", "value": "1"}],
                        "resources": {"limits": {"nvidia.com/gpu": 2}},
                        "volumeMounts": [{"name": "data", "mountPath": "/data"}],
                    },
                    {"name": "helper", "image": "helper:1"},
                ],
            }
        },
    },
}


def build(**changes: Any) -> tuple[dict[str, Any], bool]:
    spec = parse_spec(make_spec(trialTemplate=copy.deepcopy(GPU_TEMPLATE), **changes))
    tuner = Tuner(spec)
    (trial,) = tuner.ask(1)
    job = build_trial_job(spec, OWNER, trial, tuner.trial_document(trial.id), SidecarConfig(image="kubetune:1"))
    return job.manifest, job.output_captured


def test_names_labels_owner_and_record() -> None:
    manifest, _ = build()
    meta = manifest["metadata"]
    assert meta["name"] == "tune-0001" and meta["namespace"] == "ml"
    assert meta["labels"] == {
        "team": "vision",
        "kubetune.io/tuning-job": "tune",
        "kubetune.io/trial": "1",
        "kubetune.io/trial-status": "Running",  # the operator relabels the Job when the trial ends
    }
    assert meta["annotations"]["note"] == "x"
    assert json.loads(meta["annotations"][TRIAL_RECORD_ANNOTATION])["id"] == "1"
    owner = meta["ownerReferences"][0]
    assert (owner["kind"], owner["name"], owner["uid"], owner["controller"]) == ("HyperParameterTuningJob", "tune", "1234", True)
    pod_labels = manifest["spec"]["template"]["metadata"]["labels"]
    assert pod_labels["kubetune.io/tuning-job"] == "tune"
    assert "kubetune.io/trial-status" not in pod_labels  # a pod's labels are not rewritten as its trial ends


def test_template_is_otherwise_untouched() -> None:
    manifest, captured = build()
    pod = manifest["spec"]["template"]["spec"]
    assert captured
    assert pod["nodeSelector"] == {"gpu": "a100"} and pod["tolerations"] == GPU_TEMPLATE["spec"]["template"]["spec"]["tolerations"]
    train, helper = pod["containers"]
    assert train["resources"] == {"limits": {"nvidia.com/gpu": 2}}
    assert train["command"] == ["python", "train.py"] and train["args"] == ["--lr=$(HP_LR)"]  # no regexes: no wrapper
    assert helper == {"name": "helper", "image": "helper:1"}
    env = {e["name"]: e["value"] for e in train["env"]}
    assert env["MINE"] == "1" and env["HP_EPOCHS"] == "5" and "HP_LR" in env
    assert [e["name"] for e in train["env"]][-1] == "MINE"  # the template's own entries come last and win
    assert {"name": "data", "mountPath": "/data"} in train["volumeMounts"]
    assert [v["name"] for v in pod["volumes"]] == ["data", "kubetune-shared"]
    (sidecar,) = pod["initContainers"]
    assert sidecar["name"] == SIDECAR_NAME and sidecar["restartPolicy"] == "Always" and sidecar["image"] == "kubetune:1"


def test_metric_definitions_wrap_the_command_keeping_args() -> None:
    manifest, captured = build(metricDefinitions=[{"name": "loss", "regex": "loss=([0-9.]+)"}])
    train = manifest["spec"]["template"]["spec"]["containers"][0]
    assert captured
    assert train["command"][:3] == ["/bin/sh", "-c", OUTPUT_WRAPPER]
    assert train["command"][4:] == ["python", "train.py"] and train["args"] == ["--lr=$(HP_LR)"]


def test_no_command_means_no_capture() -> None:
    template = copy.deepcopy(GPU_TEMPLATE)
    del template["spec"]["template"]["spec"]["containers"][0]["command"]
    spec = parse_spec(make_spec(trialTemplate=template, metricDefinitions=[{"name": "loss", "regex": "l=(.+)"}]))
    tuner = Tuner(spec)
    (trial,) = tuner.ask(1)
    job = build_trial_job(spec, OWNER, trial, tuner.trial_document(trial.id), SidecarConfig(image="k"))
    assert not job.output_captured
    assert "command" not in job.manifest["spec"]["template"]["spec"]["containers"][0]


def test_long_names_stay_valid_and_distinct() -> None:
    long = "a" * 70
    names = {trial_job_name(long, n) for n in range(1, 50)}
    assert len(names) == 49 and all(len(n) <= 63 for n in names)
    assert trial_job_name("short", 7) == "short-0007"


def test_history_from_jobs_restores_the_tuner_and_fills_gaps() -> None:
    spec = parse_spec(make_spec())
    tuner = Tuner(spec)
    trials = tuner.ask(3)
    tuner.report(trials[0].id, 1, 0.5)
    tuner.tell(trials[0].id, 0.4)
    jobs = []
    for trial in trials:
        manifest = build_trial_job(spec, OWNER, trial, tuner.trial_document(trial.id), SidecarConfig(image="k")).manifest
        jobs.append(manifest)
    history = history_from_jobs([jobs[0], jobs[2]], tuner.seed, tuner.started_at, "tune")  # trial 2's Job was deleted
    restored = Tuner(spec, history=history)
    assert [r.status.value for r in restored.trials] == ["Completed", "Failed", "Running"]
    assert restored.record("2").reason == "its Job was deleted"
    assert restored.best is not None and restored.best.value == 0.4
    assert [t.tuned for t in restored.ask(1)] == [t.tuned for t in Tuner(spec, history=history).ask(1)]


def _job_of(job_spec: dict[str, Any], **changes: Any) -> dict[str, Any]:
    spec = parse_spec(make_spec(trialTemplate={"spec": job_spec}, **changes))
    [trial] = Tuner(spec).ask(1)
    return build_trial_job(spec, OWNER, trial, {}, SidecarConfig(image="kt:1")).manifest


def test_disruptions_are_ignored_and_the_codes_own_failure_is_final() -> None:
    job = _job_of({"template": {"spec": {"containers": [{"name": "train", "image": "t:1"}]}}})
    assert job["spec"]["backoffLimit"] == 0
    assert job["spec"]["podFailurePolicy"]["rules"] == [
        {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget"}]},
        {"action": "FailJob", "onExitCodes": {"containerName": "train", "operator": "NotIn", "values": [0]}},
    ]
    primary = job["spec"]["template"]["spec"]["containers"][0]
    assert primary["terminationMessagePolicy"] == "FallbackToLogsOnError"


def test_retry_strategy_sets_the_retries_and_the_template_keeps_its_own_policy() -> None:
    containers = [{"name": "train", "image": "t:1", "terminationMessagePolicy": "File"}]
    job = _job_of({"template": {"spec": {"containers": containers}}}, retryStrategy={"maximumRetryAttempts": 3})
    assert job["spec"]["backoffLimit"] == 3
    assert job["spec"]["template"]["spec"]["containers"][0]["terminationMessagePolicy"] == "File"
    own = {"rules": [{"action": "Count", "onExitCodes": {"operator": "In", "values": [42]}}]}
    job = _job_of({"backoffLimit": 2, "podFailurePolicy": own, "template": {"spec": {"containers": containers}}})
    assert job["spec"]["podFailurePolicy"] == own and job["spec"]["backoffLimit"] == 2
    job = _job_of({"template": {"spec": {"restartPolicy": "OnFailure", "containers": containers}}})
    assert "podFailurePolicy" not in job["spec"]  # the API server allows a policy with restartPolicy Never only
    backoff = _job_of({"backoffLimit": 4, "template": {"spec": {"containers": containers}}})
    assert backoff["spec"]["backoffLimit"] == 4  # the template's retries of any failure stand, disruptions aside
    assert backoff["spec"]["podFailurePolicy"]["rules"] == [
        {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget"}]}
    ]


def test_trial_pods_share_their_process_namespace_unless_the_template_decides() -> None:
    """The sandbox is then PID 1, so a trainer gets SIGTERM's default action when its trial is stopped."""
    manifest, _ = build()
    assert manifest["spec"]["template"]["spec"]["shareProcessNamespace"] is True
    template = copy.deepcopy(GPU_TEMPLATE)
    template["spec"]["template"]["spec"]["shareProcessNamespace"] = False
    spec = parse_spec(make_spec(trialTemplate=template))
    tuner = Tuner(spec)
    (trial,) = tuner.ask(1)
    job = build_trial_job(spec, OWNER, trial, tuner.trial_document(trial.id), SidecarConfig(image="kubetune:1"))
    assert job.manifest["spec"]["template"]["spec"]["shareProcessNamespace"] is False
    template["spec"]["template"]["spec"] = {**template["spec"]["template"]["spec"], "hostPID": True}
    del template["spec"]["template"]["spec"]["shareProcessNamespace"]
    spec = parse_spec(make_spec(trialTemplate=template))
    job = build_trial_job(spec, OWNER, trial, tuner.trial_document(trial.id), SidecarConfig(image="kubetune:1"))
    assert "shareProcessNamespace" not in job.manifest["spec"]["template"]["spec"]  # refused with hostPID
