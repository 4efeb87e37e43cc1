"""kopf registrations: each handler a few lines that call the Controller.

Trial Jobs and their pods are read through watch-fed indexes (no list calls in
the loop); their events wake the owning tuning job's daemon so it reacts at
once instead of at the next interval.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any

import kopf

from kubetune.api.resource import GROUP, PLURAL, VERSION
from kubetune.operator.names import TUNING_JOB_LABEL
from kubetune.operator.reconcile import Controller

JOB_NAME_LABEL = "batch.kubernetes.io/job-name"


class Indexes:
    """Lookups over kopf's live indexes, handed to the Controller as plain callables."""

    def __init__(self) -> None:
        self.jobs: kopf.Index[tuple[str, str], dict[str, Any]] | None = None
        self.pods: kopf.Index[tuple[str, str], dict[str, Any]] | None = None

    def jobs_of(self, namespace: str, tuning_job: str) -> Sequence[Mapping[str, Any]]:
        return list(self.jobs.get((namespace, tuning_job), [])) if self.jobs is not None else []

    def pods_of(self, namespace: str, job_name: str) -> Sequence[Mapping[str, Any]]:
        return list(self.pods.get((namespace, job_name), [])) if self.pods is not None else []


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

    @kopf.on.event("batch", "v1", "jobs", labels=ours, registry=registry)
    def job_changed(namespace: str, labels: Mapping[str, str], **_: Any) -> None:
        controller.wake(namespace, labels[TUNING_JOB_LABEL])

    @kopf.on.event("", "v1", "pods", labels=ours, registry=registry)
    def pod_changed(namespace: str, labels: Mapping[str, str], **_: Any) -> None:
        controller.wake(namespace, labels[TUNING_JOB_LABEL])

    @kopf.on.update(GROUP, VERSION, PLURAL, field="spec", registry=registry)
    def spec_changed(namespace: str, name: str, **_: Any) -> None:
        controller.wake(namespace, name)

    @kopf.daemon(GROUP, VERSION, PLURAL, cancellation_timeout=30, backoff=5, registry=registry)
    async def tuning_job(
        body: kopf.Body, stopped: kopf.DaemonStopped, trial_jobs: Any, trial_pods: Any, **_: Any
    ) -> None:
        indexes.jobs, indexes.pods = trial_jobs, trial_pods
        await controller.run(body, lambda: bool(stopped))

    @kopf.on.delete(GROUP, VERSION, PLURAL, optional=True, registry=registry)
    def tuning_job_deleted(uid: str, **_: Any) -> None:
        controller.forget(uid)
