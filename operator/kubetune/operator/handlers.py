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
from kubetune.operator import kueue
from kubetune.operator.controller import Controller
from kubetune.operator.names import TUNING_JOB_LABEL
from kubetune.operator.ownership import only_controlled_by

JOB_NAME_LABEL = "batch.kubernetes.io/job-name"


class Indexes:
    """Lookups over kopf's live indexes, handed to the Controller as plain callables."""

    def __init__(self) -> None:
        self.jobs: kopf.Index[tuple[str, str], dict[str, Any]] | None = None
        self.pods: kopf.Index[tuple[str, str], dict[str, Any]] | None = None
        self.workloads: kopf.Index[tuple[str, str], dict[str, Any]] | None = None

    def jobs_of(self, namespace: str, tuning_job: str, uid: str) -> Sequence[Mapping[str, Any]]:
        """The Jobs that the tuning job with this UID controls, whatever other Jobs carry its label."""
        found = list(self.jobs.get((namespace, tuning_job), [])) if self.jobs is not None else []
        return only_controlled_by(found, uid)

    def workload_of(self, namespace: str, job_uid: str) -> Mapping[str, Any] | None:
        """The Kueue Workload that the Job with this UID controls (Kueue makes one per Job), if any."""
        found = list(self.workloads.get((namespace, job_uid), [])) if self.workloads is not None else []
        return found[0] if found else None

    def pods_of(self, namespace: str, job_name: str, job_uid: str) -> Sequence[Mapping[str, Any]]:
        """The pods that the Job with this UID controls."""
        found = list(self.pods.get((namespace, job_name), [])) if self.pods is not None else []
        return only_controlled_by(found, job_uid)


def register(registry: kopf.OperatorRegistry, controller: Controller, indexes: Indexes) -> None:
    ours = {TUNING_JOB_LABEL: kopf.PRESENT}

    @kopf.on.login(registry=registry)
    def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
        # The same credentials as the kubernetes client: the pod's ServiceAccount or the kubeconfig.
        return kopf.login_via_client(**kwargs)

    @kopf.index("batch", "v1", "jobs", id="trial_jobs", labels=ours, registry=registry)
    def trial_jobs(namespace: str, labels: Mapping[str, str], body: kopf.Body, **_: Any) -> dict[Any, Any]:
        return {(namespace, labels[TUNING_JOB_LABEL]): copy.deepcopy(dict(body))}

    @kopf.index("", "v1", "pods", id="trial_pods", labels=ours, registry=registry)
    def trial_pods(namespace: str, labels: Mapping[str, str], body: kopf.Body, **_: Any) -> dict[Any, Any]:
        return {(namespace, labels.get(JOB_NAME_LABEL, "")): copy.deepcopy(dict(body))}

    # Kueue's Workloads carry none of our labels: the index keeps a slim copy of those a Job controls,
    # keyed by that Job's UID. Where Kueue is not installed, kopf serves nothing here.
    @kopf.index(kueue.GROUP, kueue.VERSION, kueue.PLURAL, id="trial_workloads", registry=registry)
    def trial_workloads(namespace: str, body: kopf.Body, **_: Any) -> dict[Any, Any] | None:
        job_uid = kueue.owner_uid(body)
        return {(namespace, job_uid): kueue.slim(body)} if job_uid else None

    @kopf.on.event("batch", "v1", "jobs", labels=ours, registry=registry)
    def job_changed(namespace: str, labels: Mapping[str, str], **_: Any) -> None:
        controller.wake(namespace, labels[TUNING_JOB_LABEL])

    @kopf.on.event("", "v1", "pods", labels=ours, registry=registry)
    def pod_changed(namespace: str, labels: Mapping[str, str], **_: Any) -> None:
        controller.wake(namespace, labels[TUNING_JOB_LABEL])

    @kopf.on.event(GROUP, VERSION, PLURAL, registry=registry)
    async def tuning_job(
        type: str | None, body: kopf.Body, trial_jobs: Any, trial_pods: Any, trial_workloads: Any = None, **_: Any
    ) -> None:
        indexes.jobs, indexes.pods, indexes.workloads = trial_jobs, trial_pods, trial_workloads
        await controller.observe(type, copy.deepcopy(dict(body)))

    @kopf.on.cleanup(registry=registry)
    async def shutdown(**_: Any) -> None:
        await controller.shutdown()
