"""Kueue-queued trials: the Job is created for Kueue to admit, and a Workload is read in Kueue's own words."""

from __future__ import annotations

import asyncio
import copy
from typing import Any

from kubetune import Tuner
from kubetune.api.spec import parse_spec
from kubetune.operator import kueue
from kubetune.operator.reconcile import Deps, TuningJobRun
from kubetune.operator.scrape import Scraper
from kubetune.operator.settings import OperatorSettings
from kubetune.operator.trialjob import SidecarConfig, build_trial_job

from .conftest import make_spec
from .test_trialjob import GPU_TEMPLATE, OWNER

QUEUED = {"kueue.x-k8s.io/queue-name": "gpus", "kueue.x-k8s.io/priority-class": "tuning"}


def build(labels: dict[str, str], priority_class: str | None = None) -> dict[str, Any]:
    template = copy.deepcopy(GPU_TEMPLATE)
    template["metadata"]["labels"] = {**template["metadata"]["labels"], **labels}
    if priority_class:
        template["spec"]["template"]["spec"]["priorityClassName"] = priority_class
    spec = parse_spec(make_spec(trialTemplate=template))
    tuner = Tuner(spec)
    (trial,) = tuner.ask(1)
    return build_trial_job(spec, OWNER, trial, tuner.trial_document(trial.id), SidecarConfig(image="k:1")).manifest


def test_a_queued_trial_is_created_suspended_with_the_queue_and_priority_carried_through() -> None:
    job = build(QUEUED, priority_class="low")
    assert job["spec"]["suspend"] is True  # Kueue admits it by unsuspending it
    labels = job["metadata"]["labels"]
    assert labels["kueue.x-k8s.io/queue-name"] == "gpus" and labels["kueue.x-k8s.io/priority-class"] == "tuning"
    assert job["spec"]["template"]["spec"]["priorityClassName"] == "low"
    # Kueue evicts by suspending: the SIGTERM exit of the deleted pod must not fail the trial.
    rules = job["spec"]["podFailurePolicy"]["rules"]
    assert rules[1] == {
        "action": "Ignore",
        "onExitCodes": {"containerName": "train", "operator": "In", "values": [143]},
    }
    assert len(rules) == 2  # the template's own backoffLimit: 0 leaves no FailJob rule to add
    assert parse_spec(
        make_spec(trialTemplate={**GPU_TEMPLATE, "metadata": {"labels": QUEUED}})
    ).trial_template.queue == ("gpus")


def test_an_unqueued_trial_is_created_running() -> None:
    job = build({})
    assert "suspend" not in job["spec"]
    assert [r.get("onPodConditions") for r in job["spec"]["podFailurePolicy"]["rules"]] == [
        [{"type": "DisruptionTarget"}]
    ]
    assert parse_spec(make_spec(trialTemplate=copy.deepcopy(GPU_TEMPLATE))).trial_template.queue is None


def workload(*conditions: dict[str, Any], active: bool | None = None, owner: dict[str, Any] | None = None) -> Any:
    ref = {"apiVersion": "batch/v1", "kind": "Job", "name": "tune-0001", "uid": "job-uid", "controller": True}
    body: dict[str, Any] = {
        "metadata": {"name": "job-tune-0001-abcde", "uid": "wl-uid", "ownerReferences": [owner or ref]},
        "spec": {"podSets": [{"name": "main", "count": 1, "template": {"big": "x" * 1000}}]},
        "status": {"conditions": list(conditions), "admission": {"clusterQueue": "gpus"}},
    }
    if active is not None:
        body["spec"]["active"] = active
    return body


def cond(kind: str, status: str, reason: str = "", message: str = "", at: str = "2026-12-02T10:00:00Z") -> Any:
    return {"type": kind, "status": status, "reason": reason, "message": message, "lastTransitionTime": at}


def test_only_a_workload_a_job_controls_is_a_trials() -> None:
    assert kueue.owner_uid(workload()) == "job-uid"
    not_controller = {"apiVersion": "batch/v1", "kind": "Job", "name": "x", "uid": "u", "controller": False}
    assert kueue.owner_uid(workload(owner=not_controller)) is None
    other_kind = {"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "x", "uid": "u", "controller": True}
    assert kueue.owner_uid(workload(owner=other_kind)) is None


def test_the_index_keeps_what_it_reads_and_not_the_pod_sets() -> None:
    slim = kueue.slim(workload(cond("Admitted", "True"), active=False))
    assert slim["spec"] == {"active": False} and slim["metadata"]["uid"] == "wl-uid"
    assert kueue.admitted(slim) and not kueue.is_active(slim)
    assert kueue.is_active(kueue.slim(workload()))  # active unless it says otherwise


def test_a_waiting_trial_gives_kueues_reason() -> None:
    assert kueue.admission_wait("gpus", None) == "waiting for admission by Kueue (queue gpus): no Workload yet"
    quota = "couldn't assign flavors to pod set main: insufficient unused quota for nvidia.com/gpu in flavor gpu-nodes"
    pending = workload(cond("QuotaReserved", "False", "Pending", quota, at="2026-12-02T10:05:00Z"))
    assert kueue.admission_wait("gpus", pending) == f"waiting for admission by Kueue (queue gpus): Pending: {quota}"
    assert kueue.waiting_since(pending) == "2026-12-02T10:05:00Z"
    preempted = workload(
        cond("QuotaReserved", "False", "Pending", "Preempted to accommodate a workload"),
        cond("Evicted", "True", "Preempted", "Preempted to accommodate a workload (UID: 1) due to prioritization"),
    )
    assert kueue.eviction(preempted) == (
        "evicted by Kueue: Preempted: Preempted to accommodate a workload (UID: 1) due to prioritization"
    )
    assert "evicted by Kueue: Preempted" in kueue.admission_wait("gpus", preempted)
    assert kueue.eviction(workload(cond("Evicted", "False", "Preempted", "earlier"))) is None
    assert kueue.waiting_since(workload(cond("QuotaReserved", "True"))) is None
    assert kueue.finished(workload(cond("Finished", "True", "Succeeded")))


class RecordingKube:
    """The Kube calls a run makes, answered as the API server would for one namespace with Kueue.

    Only what these tests need: created Jobs are kept (and handed back by jobs_of,
    as the watch would), and the Workloads are the ones the test puts there.
    """

    def __init__(self) -> None:
        self.requests = 0
        self.jobs: dict[str, dict[str, Any]] = {}
        self.workloads: list[dict[str, Any]] = []
        self.calls: list[tuple[str, Any]] = []

    async def create_job(self, manifest: dict[str, Any], dry_run: bool = False) -> dict[str, Any]:
        job = copy.deepcopy(manifest)
        job["metadata"].update(uid=f"uid-{len(self.jobs) + 1}", creationTimestamp="2026-12-02T10:00:00Z")
        job["status"] = {}
        self.jobs[job["metadata"]["name"]] = job
        return job

    async def patch_job(self, namespace: str, name: str, uid: str, patch: dict[str, Any], kind: str = "Job") -> None:
        self.calls.append(("patch_job", patch))
        self.jobs[name]["metadata"]["labels"].update(patch.get("metadata", {}).get("labels", {}))
        self.jobs[name]["spec"].update(patch.get("spec", {}))

    async def job_workloads(self, namespace: str, job_uids: list[str]) -> list[dict[str, Any]]:
        self.calls.append(("job_workloads", job_uids))
        return [w for w in self.workloads if kueue.owner_uid(w) in job_uids]

    async def deactivate_workload(self, namespace: str, name: str, uid: str) -> None:
        self.calls.append(("deactivate_workload", (name, uid)))

    async def patch_status(self, namespace: str, name: str, status: dict[str, Any]) -> None:
        pass

    async def event(self, owner: dict[str, Any], kind: str, reason: str, message: str) -> None:
        pass


def queued_run(kube: RecordingKube, trials: int, pods_of: Any = None) -> TuningJobRun:
    """A run of `trials` GPU trials at once in Kueue's queue `gpus`, acting through `kube`; the watch-fed
    indexes hand back the Jobs kube holds and the pods `pods_of` gives (none by default)."""
    deps = Deps(
        kube=kube,  # type: ignore[arg-type]
        scraper=Scraper(1, 1.0),
        settings=OperatorSettings(sidecar=SidecarConfig(image="k:1")),
        jobs_of=lambda namespace, name, uid: list(kube.jobs.values()),
        pods_of=pods_of or (lambda namespace, name, uid: []),
    )
    template = copy.deepcopy(GPU_TEMPLATE)
    template["metadata"]["labels"] = QUEUED
    limits = {"maxNumberOfTrainingJobs": trials, "maxParallelTrainingJobs": trials}
    spec = parse_spec(make_spec(trialTemplate=template, resourceLimits=limits))
    return TuningJobRun(deps, {"name": "tune", "namespace": "ml", "uid": "tj-uid"}, spec, Tuner(spec))


def test_without_a_watch_on_workloads_a_run_asks_for_them_and_stops_through_them() -> None:
    """Kueue installed after the operator: kopf serves no Workloads, and the run asks the API server."""
    kube = RecordingKube()
    run = queued_run(kube, trials=1)

    async def rounds() -> None:
        assert not await run.step(False, 1)  # creates the trial, suspended
        [job] = kube.jobs.values()
        assert job["spec"]["suspend"] is True
        quota = "couldn't assign flavors to pod set main: insufficient unused quota for nvidia.com/gpu"
        kube.workloads.append(workload(cond("QuotaReserved", "False", "Pending", quota)))
        kube.workloads[0]["metadata"]["ownerReferences"][0]["uid"] = job["metadata"]["uid"]
        assert not await run.step(False, 1)
        assert run.pending == {"tune-0001": f"waiting for admission by Kueue (queue gpus): Pending: {quota}"}
        asks = [c for c in kube.calls if c[0] == "job_workloads"]
        assert asks == [("job_workloads", ["uid-1"])]
        assert not await run.step(False, 1)  # within the interval: no second ask
        assert len([c for c in kube.calls if c[0] == "job_workloads"]) == 1
        assert await run.step(True, 1)  # stopped by the user: through the Workload, the Job left to Kueue
        assert ("deactivate_workload", ("job-tune-0001-abcde", "wl-uid")) in kube.calls
        patches = [c[1] for c in kube.calls if c[0] == "patch_job"]
        assert patches and all("spec" not in p for p in patches), patches
        assert kube.jobs["tune-0001"]["metadata"]["labels"]["kubetune.io/trial-status"] == "Stopped"

    asyncio.run(rounds())


def test_a_stop_of_every_trial_releases_the_waiting_ones_before_the_one_that_holds_quota() -> None:
    """Freed quota goes to the next waiting Workload at once: were it one of ours, about to be stopped, its pod
    would start (seen on a loaded machine, where the three stops of the Kueue test took 3 s)."""
    kube = RecordingKube()
    admitted = "tune-0002"  # not the first created: the order must come from what each trial is doing

    def pods_of(namespace: str, name: str, uid: str) -> list[dict[str, Any]]:
        if name != admitted:
            return []
        meta = {"name": f"{name}-x", "uid": f"pod-{uid}", "creationTimestamp": "2026-12-02T10:00:01Z"}
        return [{"metadata": meta, "status": {"phase": "Running"}}]

    run = queued_run(kube, trials=3, pods_of=pods_of)

    async def rounds() -> None:
        assert not await run.step(False, 1)  # three trials created, suspended
        for name, job in sorted(kube.jobs.items()):
            wl = workload(cond("QuotaReserved", "True" if name == admitted else "False", "Pending", "quota"))
            wl["metadata"].update(name=f"wl-{name}", uid=f"wl-uid-{name}")
            wl["metadata"]["ownerReferences"][0].update(name=name, uid=job["metadata"]["uid"])
            kube.workloads.append(wl)
        assert not await run.step(False, 1)
        assert sorted(run.pending) == ["tune-0001", "tune-0003"], run.pending
        assert await run.step(True, 1)
        deactivated = [c[1][0] for c in kube.calls if c[0] == "deactivate_workload"]
        assert deactivated[-1] == f"wl-{admitted}" and sorted(deactivated) == [
            "wl-tune-0001",
            "wl-tune-0002",
            "wl-tune-0003",
        ]

    asyncio.run(rounds())
