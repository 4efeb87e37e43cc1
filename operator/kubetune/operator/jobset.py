"""JobSet trials: where their objects live in the API, and which of their pods is which.

A trial of kind JobSet is one JobSet (jobset.x-k8s.io/v1alpha2) that the
tuning job controls, exactly as a Job trial is one Job: its record annotation,
its status label, its suspend. JobSet's controller makes a child Job per
replica of each replicated Job (`<jobset>-<replicated job>-<job index>`) and
labels the Jobs and their pods with the JobSet's name and UID, the replicated
Job's name and the job index; the Job controller adds the completion index.
Those labels say which pod is the primary (podstate.py).

A JobSet is stopped, as a Job is, by setting its `spec.suspend`: JobSet's
controller suspends every child Job, and the Job controller deletes their pods
with their grace period. It ends as its `Completed` or `Failed` condition says;
by default it fails as soon as one child Job fails, and a child Job fails as its
podFailurePolicy says (trialjob.py gives each the same policy a Job trial has).
Queued through Kueue, the JobSet is one Workload for all its pods (Kueue's
JobSet integration): admitted whole or not at all.

These are pure readings and constants; the API calls are in kube.py.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

GROUP = "jobset.x-k8s.io"
VERSION = "v1alpha2"
API_VERSION = f"{GROUP}/{VERSION}"
KIND = "JobSet"
PLURAL = "jobsets"

NAME_LABEL = "jobset.sigs.k8s.io/jobset-name"
UID_LABEL = "jobset.sigs.k8s.io/jobset-uid"
"""On every child Job and pod: the UID of the JobSet that made it."""
REPLICATED_JOB_LABEL = "jobset.sigs.k8s.io/replicatedjob-name"
JOB_INDEX_LABEL = "jobset.sigs.k8s.io/job-index"
"""Which replica of its replicated Job a child Job (and its pods) is."""
COMPLETED = "Completed"
"""A JobSet's condition once every Job has succeeded (a Job's own is "Complete"); both fail as "Failed"."""


def made_by(pod: Mapping[str, Any], jobset_uid: str) -> bool:
    """Whether JobSet's controller made this pod for the JobSet with this UID.

    The pod must carry that JobSet's UID label and be controlled by a Job (the
    child Job): a label alone is a claim anyone who may create pods can make, the
    same trust as a Job trial's pod, which is its Job's by ownerReference.
    """
    meta = pod.get("metadata") or {}
    if not jobset_uid or (meta.get("labels") or {}).get(UID_LABEL) != jobset_uid:
        return False
    return any(
        isinstance(ref, Mapping) and ref.get("controller") is True and ref.get("kind") == "Job"
        for ref in meta.get("ownerReferences") or []
    )


def position(pod: Mapping[str, Any] | None) -> tuple[str, int] | None:
    """(replicated Job, job index) of a JobSet's pod; None for a pod of a plain Job."""
    labels = ((pod or {}).get("metadata") or {}).get("labels") or {}
    name, index = labels.get(REPLICATED_JOB_LABEL), labels.get(JOB_INDEX_LABEL)
    if name is None:
        return None
    try:
        return str(name), int(str(index))
    except (TypeError, ValueError):
        return str(name), -1
