"""The operator touches only what its tuning job owns, and deleting a tuning job never waits for it.

The attacks are the ones found by hand: a Job already named like a trial
(`train-0001`) was adopted, annotated, suspended and had its pod deleted; a Job
labelled as a trial of someone's tuning job was read into its history; and kopf's
finalizer made `kubectl delete hptj` hang once no operator ran.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from .harness import IMAGE, OperatorProcess, apply, example, get, wait_for_end, wait_until

pytestmark = pytest.mark.cluster
LEGACY_FINALIZER = "kopf.zalando.org/KopfFinalizerMarker"


def bystander(name: str, labels: dict[str, str] | None = None, annotations: dict[str, str] | None = None) -> Any:
    """Somebody else's Job with a running pod: the operator must leave all of it alone."""
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "labels": labels or {}, "annotations": annotations or {}},
        "spec": {
            "backoffLimit": 0,
            "template": {
                "metadata": {"labels": labels or {}},
                "spec": {
                    "restartPolicy": "Never",
                    "terminationGracePeriodSeconds": 1,
                    "containers": [
                        {
                            "name": "main",
                            "image": IMAGE,
                            "command": ["python3", "-c", "import time; time.sleep(3600)", name],
                        }
                    ],
                },
            },
        },
    }


def running_pod(cluster: Any, namespace: str, job: str) -> dict[str, Any] | None:
    pods = get(cluster, namespace, "pods", selector=f"batch.kubernetes.io/job-name={job}")["items"]
    running = [p for p in pods if p["status"].get("phase") == "Running"]
    return running[0] if running else None


def untouched(job: dict[str, Any]) -> None:
    annotations = job["metadata"].get("annotations") or {}
    assert not [k for k in annotations if k.startswith("kubetune.io/") and k != "kubetune.io/trial-record"], annotations
    assert not job["spec"].get("suspend"), "suspended by the operator"
    managers = {m.get("manager") for m in job["metadata"].get("managedFields") or []}
    assert not [m for m in managers if m and "kubetune" in m], managers


def test_jobs_it_does_not_own_are_never_touched(cluster: Any, namespace: str, operator: OperatorProcess) -> None:
    # One Job holds trial 1's name; another claims, by its labels and record, to be trial 2 with a winning value.
    fake_record = {"id": "2", "number": 2, "hyperparameters": {}, "tuned": {}, "asked": 2, "reports": [],
                   "status": "Completed", "value": 0.999, "reason": "", "ended": 3}  # fmt: skip
    apply(cluster, namespace, bystander("train-0001"))
    apply(
        cluster,
        namespace,
        bystander(
            "planted",
            labels={"kubetune.io/tuning-job": "train", "kubetune.io/trial": "2"},
            annotations={"kubetune.io/trial-record": json.dumps(fake_record)},
        ),
    )
    pods = {
        name: wait_until(lambda n=name: running_pod(cluster, namespace, n), 60, f"{name}'s pod to run")  # type: ignore[misc]
        for name in ("train-0001", "planted")
    }
    resource = example("random.yaml", resourceLimits={"maxNumberOfTrainingJobs": 2, "maxParallelTrainingJobs": 1})
    resource["metadata"]["name"] = "train"
    apply(cluster, namespace, resource)
    status = wait_for_end(cluster, namespace, "train", operator)

    assert status["hyperParameterTuningJobStatus"] == "Completed", status
    assert status["trainingJobStatusCounters"]["completed"] == 2
    uid = get(cluster, namespace, "hptj", "train")["metadata"]["uid"]
    renamed = f"train-0001-{uid.replace('-', '')[:5]}"
    owned = sorted(
        j["metadata"]["name"]
        for j in get(cluster, namespace, "jobs")["items"]
        if any(r.get("uid") == uid for r in j["metadata"].get("ownerReferences") or [])
    )
    assert owned == sorted([renamed, "train-0002"])
    assert status["bestTrainingJob"]["finalObjectiveValue"] != 0.999  # the planted record was never read
    [conflict] = [c for c in status["conditions"] if c["type"] == "TrialNameConflict"]
    assert conflict["status"] == "True" and "Job train-0001 exists" in conflict["message"], conflict
    assert renamed in conflict["message"]
    events = cluster.kubectl("-n", namespace, "get", "events", "--field-selector", "involvedObject.name=train").stdout
    assert "TrialNameTaken" in events
    for name, pod in pods.items():
        untouched(get(cluster, namespace, "job", name))
        now = running_pod(cluster, namespace, name)
        assert now is not None and now["metadata"]["uid"] == pod["metadata"]["uid"], f"{name}'s pod was disturbed"
    planted = get(cluster, namespace, "job", "planted")
    assert json.loads(planted["metadata"]["annotations"]["kubetune.io/trial-record"]) == fake_record


def test_deleting_never_waits_for_an_operator(cluster: Any, namespace: str, operator: OperatorProcess) -> None:
    slow = example("random.yaml", resourceLimits={"maxNumberOfTrainingJobs": 4, "maxParallelTrainingJobs": 2},
                   staticHyperParameters={"epochs": 100, "batch_size": 32, "epoch_seconds": 0.3})  # fmt: skip
    apply(cluster, namespace, slow)
    # What 0.1.0 left on every tuning job: the new operator takes its old finalizer off.
    legacy = example("grid.yaml")
    legacy["metadata"]["finalizers"] = [LEGACY_FINALIZER]
    apply(cluster, namespace, legacy)
    legacy_name = legacy["metadata"]["name"]
    wait_until(
        lambda: not get(cluster, namespace, "hptj", legacy_name)["metadata"].get("finalizers"),
        60, "the operator to remove the legacy finalizer", operator,
    )  # fmt: skip
    # The operator logs the decision once its write returns, which may be after this test saw the write.
    wait_until(lambda: "finalizer.removed" in operator.log(), 30, "the operator to log the removal", operator)
    wait_until(
        lambda: len(get(cluster, namespace, "jobs", selector="kubetune.io/tuning-job=digits-random")["items"]) == 2,
        60, "two running trials", operator,
    )  # fmt: skip
    running = get(cluster, namespace, "hptj", "digits-random")
    assert not running["metadata"].get("finalizers")  # a running tuning job has none either
    assert not [k for k in running["metadata"].get("annotations") or {} if k.startswith("kopf")]
    operator.stop()
    try:
        # No operator now: deleting must still return, and take the trial Jobs with it.
        cluster.kubectl("-n", namespace, "delete", "hptj", "--all", "--wait=true", "--timeout=30s")
        wait_until(
            lambda: not get(cluster, namespace, "jobs", selector="kubetune.io/tuning-job")["items"],
            60, "the trial Jobs to be garbage-collected",
        )  # fmt: skip
        assert not get(cluster, namespace, "hptj")["items"]
    finally:
        operator.start()
