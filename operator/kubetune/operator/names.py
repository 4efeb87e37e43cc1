"""Labels, annotations and names the operator writes: the cluster is the database, these are its columns."""

from __future__ import annotations

import hashlib

from kubetune.api.resource import GROUP

TUNING_JOB_LABEL = f"{GROUP}/tuning-job"
TRIAL_LABEL = f"{GROUP}/trial"
TRIAL_STATUS_LABEL = f"{GROUP}/trial-status"
"""Running, then Completed, Stopped or Failed: `kubectl get jobs -l kubetune.io/trial-status=Failed`."""
TRIAL_RECORD_ANNOTATION = f"{GROUP}/trial-record"
"""JSON of the trial's record in the Tuner's history format: hyperparameters, reports, outcome."""
HYPERPARAMETERS_ANNOTATION = f"{GROUP}/hyperparameters"
OBJECTIVE_ANNOTATION = f"{GROUP}/objective"
"""The trial's objective to 4 significant digits, for `kubectl get jobs -o custom-columns` (a label cannot hold
every float: label values must start and end with a letter or digit and may not hold `+`)."""
METRICS_ANNOTATION = f"{GROUP}/metrics"
"""Last value of each metric the trial reported, for `kubectl describe job`."""
SIDECAR_NAME = "kubetune-metrics"
SHARED_VOLUME = "kubetune-shared"
LEGACY_FINALIZER = "kopf.zalando.org/KopfFinalizerMarker"
"""kopf's finalizer, which 0.1.0 put on every tuning job; removed on sight, so nothing waits for an operator."""

MAX_NAME = 63
"""Job names become the `job-name` label of their pods, so they must fit a label value."""


def trial_job_name(tuning_job: str, number: int, variant: str = "") -> str:
    """Predictable: <tuning job>-<number, 4 digits>; long names are cut and keep a hash, so they stay unique.

    `variant` is for when that name is taken by a Job the tuning job does not own:
    the trial then runs as <tuning job>-<number>-<variant> (see creation.py).
    """
    suffix = f"-{number:04d}" + (f"-{variant}" if variant else "")
    if len(tuning_job) + len(suffix) <= MAX_NAME:
        return tuning_job + suffix
    digest = hashlib.sha256(tuning_job.encode()).hexdigest()[:6]
    keep = MAX_NAME - len(suffix) - len(digest) - 1
    return f"{tuning_job[:keep].rstrip('-.')}-{digest}{suffix}"
