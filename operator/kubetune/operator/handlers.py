"""kopf registrations: each handler a few lines that call the Controller.

Only watch events and indexes, on purpose: kopf's daemons and its create,
update and delete handlers put a finalizer and bookkeeping annotations on every
tuning job, and a finalizer makes deleting a tuning job (or its CRD) wait for
an operator that may be gone. Watch events need neither, and the Controller
runs each tuning job's loop as its own task.

Trial Jobs and their pods are read through watch-fed indexes (no list calls in
the loop); their events wake the owning tuning job's loop so it reacts at once
instead of at the next interval. The indexes are keyed by labels, which anyone
may set: what the loop acts on is filtered by ownership (ownership.py).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any

import kopf

from kubetune.api.resource import GROUP, PLURAL, VERSION
from kubetune.operator import jobset, kueue
from kubetune.operator.controller import Controller
from kubetune.operator.names import TUNING_JOB_LABEL
from kubetune.operator.ownership import controlled_by, only_controlled_by

JOB_NAME_LABEL = "batch.kubernetes.io/job-name"


class Indexes:
    """Lookups over kopf's live indexes, handed to the Controller as plain callables."""

    def __init__(self) -> None:
        self.jobs: kopf.Index[tuple[str, str], dict[str, Any]] | None = None
        self.jobsets: kopf.Index[tuple[str, str], dict[str, Any]] | None = None
        self.pods: kopf.Index[tuple[str, str], dict[str, Any]] | None = None
        self.workloads: kopf.Index[tuple[str, str], dict[str, Any]] | None = None

    def jobs_of(self, namespace: str, tuning_job: str, uid: str) -> Sequence[Mapping[str, Any]]:
        """The trial Jobs (and JobSets) that the tuning job with this UID controls, whatever else carries its label."""
        found = [
            body
            for index in (self.jobs, self.jobsets)
            if index is not None
            for body in index.get((namespace, tuning_job), [])
        ]
        return only_controlled_by(found, uid)

    def workload_of(self, namespace: str, job_uid: str) -> Mapping[str, Any] | None:
        """The Kueue Workload that the Job with this UID controls (Kueue makes one per Job), if any."""
        found = list(self.workloads.get((namespace, job_uid), [])) if self.workloads is not None else []
        return found[0] if found else None

    def pods_of(self, namespace: str, job_name: str, job_uid: str) -> Sequence[Mapping[str, Any]]:
        """The pods that the trial Job with this UID controls, or that its JobSet's child Jobs do."""
        found = list(self.pods.get((namespace, job_name), [])) if self.pods is not None else []
        return [p for p in found if controlled_by(p, job_uid) or jobset.made_by(p, job_uid)]


def register(registry: kopf.OperatorRegistry, controller: Controller, indexes: Indexes) -> None:
    ours = {TUNING_JOB_LABEL: kopf.PRESENT}

    @kopf.on.login(registry=registry)
    def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
        # The same credentials as the kubernetes client: the pod's ServiceAccount or the kubeconfig.
        return kopf.login_via_client(**kwargs)

    @kopf.index("batch", "v1", "jobs", id="trial_jobs", labels=ours, registry=registry)
    def trial_jobs(namespace: str, labels: Mapping[str, str], body: kopf.Body, **_: Any) -> dict[Any, Any]:
        return {(namespace, labels[TUNING_JOB_LABEL]): copy.deepcopy(dict(body))}

    # JobSet trials, where JobSet is installed: the same as Jobs, one index more.
    @kopf.index(jobset.GROUP, jobset.VERSION, jobset.PLURAL, id="trial_jobsets", labels=ours, registry=registry)
    def trial_jobsets(namespace: str, labels: Mapping[str, str], body: kopf.Body, **_: Any) -> dict[Any, Any]:
        return {(namespace, labels[TUNING_JOB_LABEL]): copy.deepcopy(dict(body))}

    # A pod is found by its trial's name: its Job's (job-name), or for a JobSet's pod its JobSet's.
    @kopf.index("", "v1", "pods", id="trial_pods", labels=ours, registry=registry)
    def trial_pods(namespace: str, labels: Mapping[str, str], body: kopf.Body, **_: Any) -> dict[Any, Any]:
        trial = labels.get(jobset.NAME_LABEL) or labels.get(JOB_NAME_LABEL, "")
        return {(namespace, trial): copy.deepcopy(dict(body))}

    # Kueue's Workloads carry none of our labels: the index keeps a slim copy of those a Job controls,
    # keyed by that Job's UID. Where Kueue is not installed, kopf serves nothing here.
    @kopf.index(kueue.GROUP, kueue.VERSION, kueue.PLURAL, id="trial_workloads", registry=registry)
    def trial_workloads(namespace: str, body: kopf.Body, **_: Any) -> dict[Any, Any] | None:
        job_uid = kueue.owner_uid(body)
        return {(namespace, job_uid): kueue.slim(body)} if job_uid else None

    @kopf.on.event("batch", "v1", "jobs", labels=ours, registry=registry)
    def job_changed(namespace: str, labels: Mapping[str, str], **_: Any) -> None:
        controller.wake(namespace, labels[TUNING_JOB_LABEL])

    @kopf.on.event(jobset.GROUP, jobset.VERSION, jobset.PLURAL, labels=ours, registry=registry)
    def jobset_changed(namespace: str, labels: Mapping[str, str], **_: Any) -> None:
        controller.wake(namespace, labels[TUNING_JOB_LABEL])

    @kopf.on.event("", "v1", "pods", labels=ours, registry=registry)
    def pod_changed(namespace: str, labels: Mapping[str, str], **_: Any) -> None:
        controller.wake(namespace, labels[TUNING_JOB_LABEL])

    @kopf.on.event(GROUP, VERSION, PLURAL, registry=registry)
    async def tuning_job(
        type: str | None,
        body: kopf.Body,
        trial_jobs: Any,
        trial_pods: Any,
        trial_workloads: Any = None,
        trial_jobsets: Any = None,
        **_: Any,
    ) -> None:
        indexes.jobs, indexes.pods, indexes.workloads = trial_jobs, trial_pods, trial_workloads
        indexes.jobsets = trial_jobsets
        await controller.observe(type, copy.deepcopy(dict(body)))

    @kopf.on.cleanup(registry=registry)
    async def shutdown(**_: Any) -> None:
        await controller.shutdown()
