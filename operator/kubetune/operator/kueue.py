"""Kueue: trials admitted through a queue, and stopped so that they stay stopped.

A trial template whose metadata carries Kueue's `kueue.x-k8s.io/queue-name`
label makes every trial Job a Kueue workload: the Job is created suspended,
Kueue's job reconciler makes a Workload for it (owned by the Job) and
unsuspends the Job once the Workload is admitted under its ClusterQueue's quota.
The label, `kueue.x-k8s.io/priority-class` and the pod's priorityClassName pass
through to the Job unchanged (trialjob.py copies the template's metadata).

Stopping such a trial by suspending its Job, as kubetune does otherwise, does
not hold: Kueue unsuspends any suspended Job whose Workload is admitted. The
stop is Kueue's own: the Workload's `spec.active` is set to false
(deactivation). Kueue then evicts it (reason Deactivated), suspends the Job
itself, which deletes its pods with their grace period, releases the quota as
soon as the pods are gone, and never admits it again. The operator patches only
Workloads controlled by one of its own trial Jobs (by UID), and only to
deactivate them.

A Workload that Kueue evicts for any other reason (preemption by a higher
priority, a lost node) stays active: Kueue requeues it and unsuspends the Job
when it is admitted again, and the trial runs again as a new attempt of the
same trial (reconcile.py), spending no budget. While a trial waits for
admission, its pending reason is the Workload's own words.

These are pure readings of a Workload; the API calls are in kube.py.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kubetune.api.template import QUEUE_LABEL as QUEUE_LABEL

PRIORITY_CLASS_LABEL = "kueue.x-k8s.io/priority-class"
JOB_UID_LABEL = "kueue.x-k8s.io/job-uid"
"""The label Kueue puts on the Workload it makes for a Job: that Job's UID."""
GROUP = "kueue.x-k8s.io"
VERSION = "v1beta2"
"""Served since Kueue v0.15, its storage version since v0.16 (v1beta1 support ends with v0.17)."""
PLURAL = "workloads"
_OWNER_KINDS = {("batch/v1", "Job"), ("jobset.x-k8s.io/v1alpha2", "JobSet")}
"""The trial kinds whose Workloads the operator reads: only a trial's own Job (or JobSet) makes one."""


def queue_name(labels: Mapping[str, Any] | None) -> str | None:
    """The Kueue LocalQueue a trial Job (or its template) names, if any."""
    value = (labels or {}).get(QUEUE_LABEL)
    return str(value) if value else None


def owner_uid(workload: Mapping[str, Any]) -> str | None:
    """The UID of the trial Job that controls this Workload, None if a Job does not."""
    for ref in (workload.get("metadata") or {}).get("ownerReferences") or []:
        if not isinstance(ref, Mapping) or ref.get("controller") is not True:
            continue
        if (ref.get("apiVersion"), ref.get("kind")) in _OWNER_KINDS and ref.get("uid"):
            return str(ref["uid"])
    return None


def slim(workload: Mapping[str, Any]) -> dict[str, Any]:
    """What the operator keeps of a Workload: in a shared cluster the index holds every Job's."""
    meta = workload.get("metadata") or {}
    status = workload.get("status") or {}
    return {
        "metadata": {k: meta[k] for k in ("name", "namespace", "uid", "ownerReferences") if k in meta},
        "spec": {"active": (workload.get("spec") or {}).get("active", True)},
        "status": {"conditions": list(status.get("conditions") or [])},
    }


def is_active(workload: Mapping[str, Any]) -> bool:
    return (workload.get("spec") or {}).get("active", True) is not False


def _condition(workload: Mapping[str, Any] | None, kind: str) -> Mapping[str, Any] | None:
    for condition in ((workload or {}).get("status") or {}).get("conditions") or []:
        if isinstance(condition, Mapping) and condition.get("type") == kind:
            return condition
    return None


def _holds(workload: Mapping[str, Any] | None, kind: str) -> bool:
    condition = _condition(workload, kind)
    return condition is not None and condition.get("status") == "True"


def _words(condition: Mapping[str, Any]) -> str:
    return f"{condition.get('reason', '')}: {condition.get('message', '')}".strip(": ")


def admitted(workload: Mapping[str, Any] | None) -> bool:
    return _holds(workload, "Admitted")


def finished(workload: Mapping[str, Any] | None) -> bool:
    return _holds(workload, "Finished")


def eviction(workload: Mapping[str, Any] | None) -> str | None:
    """Why Kueue evicted the Workload (preempted, a lost node, ...), while it says so."""
    condition = _condition(workload, "Evicted")
    if condition is None or condition.get("status") != "True":
        return None
    return f"evicted by Kueue: {_words(condition)}"


def admission_wait(queue: str, workload: Mapping[str, Any] | None) -> str:
    """Why a queued trial's Job is not running, in Kueue's words: what `kubectl describe workload` says."""
    where = f"waiting for admission by Kueue (queue {queue})"
    if workload is None:
        return f"{where}: no Workload yet"
    evicted = eviction(workload)
    if evicted is not None:
        return f"{where}: {evicted}"
    reserved = _condition(workload, "QuotaReserved")
    if reserved is not None and reserved.get("status") == "False" and reserved.get("message"):
        return f"{where}: {_words(reserved)}"
    if _holds(workload, "QuotaReserved"):
        return f"{where}: quota reserved, admission checks pending"
    return where


def waiting_since(workload: Mapping[str, Any] | None) -> str | None:
    """When the Workload last started to wait (RFC 3339): its QuotaReserved=False transition."""
    reserved = _condition(workload, "QuotaReserved")
    if reserved is not None and reserved.get("status") == "False":
        since = reserved.get("lastTransitionTime")
        return str(since) if since else None
    return None
