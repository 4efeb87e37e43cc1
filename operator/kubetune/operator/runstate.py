"""What one tuning job's run holds between rounds, and what it is given to act with.

The loop (reconcile.py), trial creation (creation.py), writing records back
(writeback.py) and the status (statuswriter.py) all work on this one state; it
lives here so each of them can be read, and type-checked, on its own. What of it
must outlive the operator is also in the cluster: a restarted operator rebuilds
the Tuner from the trial Jobs (records.py) and re-learns the rest.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from kubetune.api.spec import HyperParameterTuningJobSpec
from kubetune.api.status import HyperParameterTuningJobStatus
from kubetune.engine import Tuner
from kubetune.logs import decision
from kubetune.operator.kube import Kube, KubeError
from kubetune.operator.metrics import OperatorMetrics
from kubetune.operator.records import read_record
from kubetune.operator.scrape import Scraper
from kubetune.operator.settings import OperatorSettings

log = logging.getLogger("kubetune.operator")

JobsOf = Callable[[str, str, str], Sequence[Mapping[str, Any]]]
"""(namespace, tuning job, its UID) -> the trial Jobs it controls, from the watch-fed index."""
PodsOf = Callable[[str, str, str], Sequence[Mapping[str, Any]]]
"""(namespace, Job name, its UID) -> the pods that Job controls, from the watch-fed index."""
WorkloadOf = Callable[[str, str], Mapping[str, Any] | None]
"""(namespace, trial Job's UID) -> the Kueue Workload that Job controls, from the watch-fed index."""


def no_workloads(namespace: str, job_uid: str) -> Mapping[str, Any] | None:
    """Where no Kueue Workloads are watched: none."""
    return None


@dataclass
class TrialRuntime:
    """What the operator knows of a running trial beyond the Tuner: nothing it cannot re-learn."""

    job_name: str
    created_at: float
    job_uid: str = ""
    """The Job's UID: every write to it is conditional on it (ownership.py)."""
    pod_uid: str | None = None
    consumed: int = 0
    """Objective points of the current pod already read from its sidecar."""
    pod_name: str = ""
    pod_seen: Mapping[str, Any] | None = None
    """The current pod as last seen: why it ended is read from it once it is gone."""
    attempt: list[tuple[float, float]] = field(default_factory=list)
    """The current pod's own series: each pod of a trial runs the training from the start."""
    evicted: str | None = None
    """Why Kueue last evicted the trial's Workload (preempted, ...): the reason its next attempt gives."""
    retryable: bool = False
    """It failed for a cause a retry could fix (it waited too long to run): a retryableError, not a nonRetryable one."""
    attempts: list[dict[str, Any]] = field(default_factory=list)
    """Earlier pods of this trial (evicted, preempted, retried): their names, why they ended, their series."""
    written_at: float = 0.0
    dirty: bool = False
    ended_at: float | None = None
    """When the Job was first seen finished (the summary may arrive a moment later)."""
    metrics: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Deps:
    kube: Kube
    scraper: Scraper
    settings: OperatorSettings
    jobs_of: JobsOf
    pods_of: PodsOf
    metrics: OperatorMetrics = field(default_factory=OperatorMetrics)
    workload_of: WorkloadOf = no_workloads


class RunState:
    """One tuning job's Tuner, its trials' runtimes and the dependencies; the base of TuningJobRun."""

    def __init__(self, deps: Deps, owner: dict[str, Any], spec: HyperParameterTuningJobSpec, tuner: Tuner) -> None:
        self.deps = deps
        self.owner = owner
        self.spec = spec
        self.tuner = tuner
        self.trials: dict[str, TrialRuntime] = {}
        self.uncreated: set[str] = set()
        """Trials asked for whose Job creation was refused; retried before asking for more."""
        self.blocked: str | None = None
        """Why the last Job creation was refused (quota, admission), until one succeeds."""
        self.retryable_errors, self.retryable_failures = _retries_recorded(self.owned_jobs())
        """Trial pods replaced by another attempt, plus trials that waited too long to run (retryableError);
        the second is those failed trials alone, which are not nonRetryableError."""
        self.pending: dict[str, str] = {}
        """Trial Job -> what its pod is waiting for, as of the last round (TrialsPending)."""
        self.refusals = 0
        """Job creations refused in a row for a passing cause (quota, throttling, API server down)."""
        self.create_after = 0.0
        """No Job creation before this (monotonic): the backoff after such a refusal."""
        self.name_conflict: str | None = None
        """The last trial name found taken by a Job this tuning job does not own (TrialNameConflict)."""
        self.announced_capture = False
        self.deactivated: set[str] = set()
        """UIDs of the Kueue Workloads this run deactivated, until the watch shows them inactive."""
        self.asked_workloads: dict[str, Mapping[str, Any]] = {}
        """Trial Job UID -> its Workload as asked of the API server, for those the watch does not deliver."""
        self.ask_workloads_after = 0.0
        """No ask for unwatched Workloads before this (monotonic)."""
        self.status = HyperParameterTuningJobStatus()
        self._written_status: dict[str, Any] | None = None
        self._requests_at_open = deps.kube.requests
        """API writes counted from here, for the job.ended line (exact when one tuning job runs at a time)."""

    @property
    def name(self) -> str:
        return str(self.owner["name"])

    def written(self, wire: dict[str, Any]) -> None:
        """The status as last written, so the next write sends only a change."""
        self._written_status = wire

    @property
    def namespace(self) -> str:
        return str(self.owner["namespace"])

    @property
    def uid(self) -> str:
        return str(self.owner["uid"])

    def owned_jobs(self) -> Sequence[Mapping[str, Any]]:
        return self.deps.jobs_of(self.namespace, self.name, self.uid)

    async def _event(self, kind: str, reason: str, message: str) -> None:
        try:
            await self.deps.kube.event(self.owner, kind, reason, message)
        except KubeError as exc:  # an event is a courtesy: never let it stop a decision
            decision(log, "event.failed", logging.WARNING, tuning_job=self.name, reason=reason, error=str(exc))


def _retries_recorded(jobs: Sequence[Mapping[str, Any]]) -> tuple[int, int]:
    """(retryable errors, retryable failed trials) on the trial Jobs, for the counters a restarted
    operator continues; one pass, since each record is a JSON document of up to a thousand reports."""
    errors = failures = 0
    for job in jobs:
        record = read_record(job) or {}
        retryable = bool(record.get("retryable"))
        errors += len(record.get("attempts") or []) + retryable
        failures += retryable
    return errors, failures
