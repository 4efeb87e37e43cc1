"""The loop that runs one tuning job: observe trials, tell the engine, act on its decisions, report status.

Each tuning job gets one TuningJobRun, driven by one kopf daemon, so nothing
else touches its Tuner. The run is rebuilt from the cluster whenever the
operator starts (records.py); in between it keeps the Tuner in memory and
writes every decision to the trial's Job before acting on it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from kubetune.api.spec import HyperParameterTuningJobSpec
from kubetune.api.status import HyperParameterTuningJobStatus, TuningJobStatus
from kubetune.collector.collector import explain_missing_objective
from kubetune.engine import Trial, TrialStatus, Tuner
from kubetune.engine.completion import Reason
from kubetune.logs import decision
from kubetune.operator.kube import NOT_LEADER, Kube, KubeError
from kubetune.operator.metrics import (
    STOP_PENDING,
    STOP_STRATEGY,
    STOP_TUNING_JOB_ENDED,
    STOP_USER,
    OperatorMetrics,
    failure_reason,
)
from kubetune.operator.names import (
    METRICS_ANNOTATION,
    OBJECTIVE_ANNOTATION,
    SIDECAR_NAME,
    TRIAL_RECORD_ANNOTATION,
    TRIAL_STATUS_LABEL,
    trial_job_name,
)
from kubetune.operator.ownership import controlled_by
from kubetune.operator.podstate import (
    attempt_end,
    created_at,
    newest,
    sidecar_running,
    sidecar_summary,
    trial_failure,
    trial_outcome,
    waiting_for,
)
from kubetune.operator.records import compact_record, read_record, trial_number
from kubetune.operator.scrape import Scraper, SeriesChunk
from kubetune.operator.settings import OperatorSettings
from kubetune.operator.status import set_condition, significant, tuner_status
from kubetune.operator.trialjob import build_trial_job

log = logging.getLogger("kubetune.operator")

JobsOf = Callable[[str, str, str], Sequence[Mapping[str, Any]]]
"""(namespace, tuning job, its UID) -> the trial Jobs it controls, from the watch-fed index."""
PodsOf = Callable[[str, str, str], Sequence[Mapping[str, Any]]]
"""(namespace, Job name, its UID) -> the pods that Job controls, from the watch-fed index."""

TERMINAL = {TuningJobStatus.COMPLETED, TuningJobStatus.FAILED, TuningJobStatus.STOPPED}
STOPPED_BY_USER = "the tuning job was stopped (spec.stopped is true)"
MAX_CREATE_BACKOFF_SECONDS = 60.0
MAX_ATTEMPTS_KEPT = 5
"""Earlier attempts whose series a trial's record keeps (the newest): the annotation must stay small."""
MAX_ATTEMPT_POINTS = 200


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


class TuningJobRun:
    """One tuning job's Tuner and the Jobs that carry out its trials."""

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

    # -- one round ------------------------------------------------------------------------------

    async def step(self, stopped_by_user: bool, generation: int | None) -> bool:
        """Observe, decide, act, report. Returns True once the tuning job has ended."""
        await self._observe()
        if stopped_by_user:
            self.tuner.cancel(STOPPED_BY_USER)
        completion = self.tuner.completion
        if stopped_by_user or completion is not None:
            reason = (
                STOPPED_BY_USER
                if stopped_by_user
                else f"the tuning job completed: {completion.message if completion else ''}"
            )
            for trial in self.tuner.running:
                await self._stop(trial, reason, by_tuner=False)
        else:
            await self._start_trials()
        await self._write_records()
        ended = self.tuner.completion is not None
        await self._report_status(generation, stopping=stopped_by_user and not ended)
        return ended

    async def _observe(self) -> None:
        self.pending = {}
        owned = self.owned_jobs()
        jobs = {j["metadata"]["name"]: j for j in owned}
        by_number = {trial_number(j): j for j in owned}
        scrapes: list[tuple[Trial, TrialRuntime, str, int]] = []
        now = time.monotonic()
        for trial in self.tuner.running:
            if trial.id in self.uncreated:
                continue
            runtime = self.trials.get(trial.id)
            if runtime is None:  # running in the Tuner since a restart: its Job exists, maybe renamed
                known = by_number.get(trial.number)
                name = known["metadata"]["name"] if known else trial_job_name(self.name, trial.number)
                runtime = self.trials[trial.id] = TrialRuntime(name, now)
                runtime.attempts = list(((read_record(known) if known else None) or {}).get("attempts") or [])
            job = jobs.get(runtime.job_name)
            if job is None:
                if now - runtime.created_at > self.deps.settings.job_visible_grace_seconds:
                    await self._end(trial, runtime, TrialStatus.FAILED, None, "its Job was deleted")
                continue
            runtime.job_uid = str(job["metadata"]["uid"])
            pods = self.deps.pods_of(self.namespace, runtime.job_name, runtime.job_uid)
            pod = newest(pods)
            uid = pod["metadata"].get("uid") if pod is not None else None
            if uid is not None and uid != runtime.pod_uid:
                if runtime.pod_uid is not None:  # the Job ran the trial again: a new pod, a new series
                    earlier = next((p for p in pods if p["metadata"].get("uid") == runtime.pod_uid), runtime.pod_seen)
                    await self._retried(trial, runtime, earlier)
                runtime.pod_uid, runtime.pod_name = uid, str(pod["metadata"].get("name", "")) if pod else ""
            if pod is not None:
                runtime.pod_seen = pod
            outcome = trial_outcome(job, pod)
            if outcome is not None:
                await self._finish(trial, runtime, job, pod, outcome, now)
                continue
            waiting = waiting_for(job, pod)
            if waiting is not None:
                waited = time.time() - created_at(pod or job)
                limit = (
                    self.spec.trial_stopping_condition
                    and self.spec.trial_stopping_condition.max_pending_time_in_seconds
                )
                if limit and waited > limit:
                    await self._stop(trial, f"pending for more than {limit}s: {waiting}", by_tuner=False, pending=True)
                    continue
                self.pending[runtime.job_name] = waiting
                continue
            ip = (pod or {}).get("status", {}).get("podIP")
            if ip and sidecar_running(pod):
                scrapes.append((trial, runtime, ip, runtime.consumed))
        port = self.deps.settings.sidecar.port
        results = await asyncio.gather(*(self.deps.scraper.fetch(ip, port, since) for _, _, ip, since in scrapes))
        for (trial, runtime, _, _), result in zip(scrapes, results, strict=True):
            if isinstance(result, SeriesChunk):
                await self._feed(trial, runtime, result.points)

    async def _retried(self, trial: Trial, runtime: TrialRuntime, earlier: Mapping[str, Any] | None) -> None:
        """The trial's pod was replaced (a disruption, or a retry allowed by retryStrategy): a new attempt.

        The earlier attempt's series is kept apart in the record; the Tuner keeps one
        series, to which the new attempt adds only the steps beyond what it has seen.
        """
        why = attempt_end(earlier)
        runtime.attempts = [
            *runtime.attempts,
            {"pod": runtime.pod_name, "reason": why, "series": [list(p) for p in _thinned(runtime.attempt)]},
        ][-MAX_ATTEMPTS_KEPT:]
        runtime.attempt, runtime.consumed, runtime.dirty = [], 0, True
        self.retryable_errors += 1
        decision(
            log,
            "trial.retried",
            tuning_job=self.name,
            namespace=self.namespace,
            trial=runtime.job_name,
            pod=runtime.pod_name,
            reason=why,
        )
        await self._event(
            "Normal", "TrialRetried", f"trial {runtime.job_name} runs again: pod {runtime.pod_name} ended: {why}"
        )

    async def _feed(self, trial: Trial, runtime: TrialRuntime, points: Sequence[tuple[float, float]]) -> None:
        for step, value in points:
            runtime.consumed += 1
            runtime.dirty = True
            runtime.attempt.append((step, value))
            record = self.tuner.record(trial.id)
            if record.status is not TrialStatus.RUNNING:
                return
            if record.reports and step <= record.reports[-1][1]:
                continue  # an attempt after a disruption repeats what an earlier one reported
            if self.tuner.report(trial.id, step, value):
                record = self.tuner.record(trial.id)
                await self._stop(trial, record.reason or "stopped by the strategy", by_tuner=True)
                return

    async def _finish(
        self,
        trial: Trial,
        runtime: TrialRuntime,
        job: Mapping[str, Any],
        pod: Mapping[str, Any] | None,
        outcome: tuple[bool, str],
        now: float,
    ) -> None:
        succeeded, reason = outcome
        summary = sidecar_summary(pod)
        if summary is None:
            runtime.ended_at = runtime.ended_at or now
            if now - runtime.ended_at < self.deps.settings.summary_grace_seconds:
                return  # the kubelet may not have recorded the sidecar's last word yet
        late: list[tuple[float, float]] = []
        if summary is not None:
            runtime.metrics = dict(summary.get("metrics", {}))
            # What the trial reported after the last scrape (all of it if it ran between two): the
            # scheduler learns from every report, not only those a scrape happened to catch.
            reports = self.tuner.record(trial.id).reports
            last_step = reports[-1][1] if reports else float("-inf")
            late = [(float(s), float(v)) for s, v in summary.get("series", []) if float(s) > last_step]
        if self.tuner.record(trial.id).status is not TrialStatus.RUNNING:
            return
        final = summary.get("final") if summary else None
        if final is None:
            final = self.tuner.record(trial.id).last_value
        if succeeded:  # it ran to its end: late reports inform the scheduler but cannot stop it any more
            if summary is not None:
                missing = explain_missing_objective(summary)
            else:
                missing = None if final is not None else f"its metrics sidecar ({SIDECAR_NAME}) left no summary"
            await self._end(trial, runtime, TrialStatus.COMPLETED, final, missing or "", late)
        else:
            await self._end(trial, runtime, TrialStatus.FAILED, None, trial_failure(reason, pod, self.spec))

    async def _end(
        self,
        trial: Trial,
        runtime: TrialRuntime,
        status: TrialStatus,
        value: float | None,
        reason: str,
        late_reports: Sequence[tuple[float, float]] = (),
    ) -> None:
        if status is TrialStatus.COMPLETED:  # `reason`: what it reported instead of an objective, if none
            self.tuner.tell(trial.id, value, late_reports, diagnostic=reason or None)
        else:
            self.tuner.fail(trial.id, reason)
        record = self.tuner.record(trial.id)
        await self._write_record(trial, runtime, force=True)
        event = "trial.completed" if status is TrialStatus.COMPLETED else "trial.failed"
        if status is TrialStatus.COMPLETED:
            objective = "NoObjective" if record.value is None else "ObjectiveReported"
            self.deps.metrics.trials_completed.labels(self.namespace, self.name, objective).inc()
        else:
            self.deps.metrics.trials_failed.labels(self.namespace, self.name, failure_reason(reason)).inc()
        decision(
            log,
            event,
            logging.INFO if status is TrialStatus.COMPLETED else logging.WARNING,
            tuning_job=self.name,
            namespace=self.namespace,
            trial=runtime.job_name,
            value=record.value,
            reason=reason or None,
        )
        if status is TrialStatus.COMPLETED:
            shown = (
                f"no objective value: {reason or 'none reported'}"
                if record.value is None
                else f"{self.spec.objective.metric_name}={record.value:g}"
            )
            await self._event("Normal", "TrialCompleted", f"trial {runtime.job_name} completed: {shown}")
        else:
            await self._event("Warning", "TrialFailed", f"trial {runtime.job_name} failed: {reason}")
        self.trials.pop(trial.id, None)

    async def _stop(self, trial: Trial, reason: str, by_tuner: bool, pending: bool = False) -> None:
        """Record the stop on the Job and suspend it, in one write.

        Suspending is the whole stop: the Job controller deletes a suspended Job's
        pods (with their grace period, so the sidecar's last word is written), and
        the operator never deletes pods itself, so it needs no right to.
        """
        runtime = self.trials.get(trial.id) or self._runtime_of(trial)
        if pending:  # it never ran: a failure, but one a retry could fix (SageMaker's MaxPendingTimeInSeconds)
            self.tuner.fail(trial.id, reason)
            runtime.retryable = True
            self.retryable_errors += 1
            self.retryable_failures += 1
        elif not by_tuner:
            self.tuner.stop(trial.id, reason)
        record = self.tuner.record(trial.id)
        if runtime.job_uid:
            await self._patch_own_job(
                runtime,
                {"metadata": self._job_metadata(trial.id, runtime), "spec": {"suspend": True}},
            )
        why = (
            STOP_STRATEGY
            if by_tuner
            else STOP_PENDING
            if pending
            else STOP_USER
            if reason == STOPPED_BY_USER
            else STOP_TUNING_JOB_ENDED
        )
        self.deps.metrics.trials_stopped.labels(self.namespace, self.name, why).inc()
        decision(
            log,
            "trial.stopped",
            tuning_job=self.name,
            namespace=self.namespace,
            trial=runtime.job_name,
            value=record.value,
            reason=reason,
        )
        await self._event("Normal", "TrialStopped", f"trial {runtime.job_name} stopped: {reason}")
        self.trials.pop(trial.id, None)

    async def _start_trials(self) -> None:
        if time.monotonic() < self.create_after:
            return  # the last creation was refused for a passing cause: back off
        free = self.spec.resource_limits.max_parallel_training_jobs - len(self.tuner.running)
        # A trial asked for but not yet created (its creation was refused) is retried first.
        for trial in [t for t in self.tuner.running if t.id in self.uncreated]:
            if not await self._create(trial):
                return
        if free <= 0:
            return
        with self.deps.metrics.suggestion_seconds.labels(self.spec.strategy.value).time():
            suggested = self.tuner.ask(free)
        for trial in suggested:
            if not await self._create(trial):
                return

    async def _create(self, trial: Trial) -> bool:
        """Create the trial's Job; adopt it if this tuning job already created it (before a restart).

        A Job of that name that this tuning job does not own is never touched: the
        trial takes its second name, <name>-<a UID-derived suffix>, and the
        collision is reported; if that is taken too, the tuning job ends.
        """
        record = compact_record(self.tuner.trial_document(trial.id))
        taken: list[str] = []
        for variant in ("", self.uid.replace("-", "")[:5]):
            job = build_trial_job(self.spec, self.owner, trial, record, self.deps.settings.sidecar, variant)
            name = job.manifest["metadata"]["name"]
            try:
                created = await self.deps.kube.create_job(job.manifest)
            except (KubeError, ValueError, TypeError) as exc:
                if not isinstance(exc, KubeError):  # the manifest could not even be serialised
                    exc = KubeError(422, "Invalid", str(exc))
                if exc.reason == NOT_LEADER:
                    raise  # nothing was sent: this replica is stopping, its successor creates the trial
                if not exc.already_exists:
                    self.uncreated.add(trial.id)
                    await self._creation_refused(trial, name, exc)
                    return False
                existing = await self._existing_job(name)
                if existing is None:  # gone again in between: try again next round
                    self.uncreated.add(trial.id)
                    return False
                if not controlled_by(existing, self.uid):
                    taken.append(_described(existing))
                    continue
                created = existing  # ours: created before a restart, adopt it
            break
        else:
            await self._names_taken(trial, taken)
            return False
        if taken:
            await self._renamed(trial, taken[0], name)
        self.uncreated.discard(trial.id)
        job_uid = str((created.get("metadata") or {}).get("uid") or "")
        self.trials[trial.id] = TrialRuntime(name, time.monotonic(), job_uid=job_uid, written_at=time.monotonic())
        self.blocked, self.refusals = None, 0
        self.deps.metrics.trials_started.labels(self.namespace, self.name).inc()
        decision(
            log,
            "trial.created",
            tuning_job=self.name,
            namespace=self.namespace,
            trial=name,
            hyperparameters=dict(trial.tuned),
        )
        await self._event("Normal", "TrialCreated", f"created trial {name} with {_format(trial.tuned)}")
        if not job.output_captured and not self.announced_capture:
            self.announced_capture = True
            await self._event(
                "Warning",
                "OutputNotCaptured",
                f"container {self.spec.primary_container['name']!r} has no command to wrap, so metricDefinitions cannot "
                "read its output; report metrics with kubetune.report() or the metrics file instead",
            )
        return True

    async def _existing_job(self, name: str) -> dict[str, Any] | None:
        try:
            return await self.deps.kube.get_job(self.namespace, name)
        except KubeError as exc:
            if exc.not_found:
                return None
            raise

    async def _renamed(self, trial: Trial, taken: str, name: str) -> None:
        message = f"{taken} exists and is not owned by this tuning job: trial {trial.number} runs as Job {name}"
        self.name_conflict = message
        decision(log, "trial.renamed", logging.WARNING, tuning_job=self.name, namespace=self.namespace, reason=message)
        await self._event("Warning", "TrialNameTaken", message)

    async def _names_taken(self, trial: Trial, taken: Sequence[str]) -> None:
        message = (
            f"cannot create trial {trial.number}: {' and '.join(taken)} exist and are not owned by this tuning job; "
            "rename the tuning job or delete those Jobs"
        )
        self.name_conflict = message
        self.uncreated.discard(trial.id)
        self.tuner.fail(trial.id, message)
        self.tuner.abort(Reason.TRIAL_NAME_TAKEN, message)
        decision(log, "trial.name_taken", logging.ERROR, tuning_job=self.name, namespace=self.namespace, reason=message)
        await self._event("Warning", "TrialNameTaken", message)

    async def _creation_refused(self, trial: Trial, name: str, exc: KubeError) -> None:
        """A quota, a throttle or an unavailable API server is waited out, with backoff; any other
        refusal is the template's (every trial would meet it), so the tuning job fails at once."""
        message = f"cannot create Job {name}: {exc}"
        if not exc.transient:
            self.uncreated.discard(trial.id)
            self.tuner.fail(trial.id, message)
            self.tuner.abort(Reason.INVALID_TRIAL_TEMPLATE, message)
            self.blocked = None
            decision(
                log, "trial.invalid", logging.ERROR, tuning_job=self.name, namespace=self.namespace, reason=message
            )
            await self._event("Warning", "InvalidTrialTemplate", message)
            return
        self.refusals += 1
        backoff = self.deps.settings.scrape.interval_seconds * 2 ** min(self.refusals, 6)
        self.create_after = time.monotonic() + min(backoff, MAX_CREATE_BACKOFF_SECONDS)
        if self.blocked != message:
            self.blocked = message
            decision(
                log, "trial.blocked", logging.WARNING, tuning_job=self.name, namespace=self.namespace, reason=message
            )
            await self._event("Warning", "TrialCreationBlocked", message)

    # -- writing back ---------------------------------------------------------------------------

    def _job_metadata(self, trial_id: str, runtime: TrialRuntime) -> dict[str, Any]:
        """What the trial's Job carries of it: its record, and for kubectl its status and rounded objective."""
        annotations = self._annotations(trial_id, runtime)
        trial = self.tuner.record(trial_id)
        if trial.value is not None:
            annotations[OBJECTIVE_ANNOTATION] = significant(trial.value)
        return {"annotations": annotations, "labels": {TRIAL_STATUS_LABEL: trial.status.value}}

    def _annotations(self, trial_id: str, runtime: TrialRuntime) -> dict[str, str]:
        record = compact_record(self.tuner.trial_document(trial_id))
        if runtime.attempts:
            record["attempts"] = runtime.attempts
        if runtime.retryable:
            record["retryable"] = True
        annotations = {TRIAL_RECORD_ANNOTATION: json.dumps(record, separators=(",", ":"))}
        if runtime.metrics:
            last = {k: v.get("last") for k, v in runtime.metrics.items() if isinstance(v, dict)}
            annotations[METRICS_ANNOTATION] = json.dumps(last, separators=(",", ":"), sort_keys=True)
        return annotations

    async def _write_record(self, trial: Trial, runtime: TrialRuntime, force: bool) -> None:
        now = time.monotonic()
        if not force and (
            not runtime.dirty or now - runtime.written_at < self.deps.settings.scrape.record_interval_seconds
        ):
            return
        if runtime.job_uid:
            await self._patch_own_job(runtime, {"metadata": self._job_metadata(trial.id, runtime)})
        runtime.written_at, runtime.dirty = now, False

    async def _patch_own_job(self, runtime: TrialRuntime, patch: dict[str, Any]) -> None:
        """Patch the trial's Job if it is still the one this tuning job created (same UID); else it is gone."""
        try:
            await self.deps.kube.patch_job(self.namespace, runtime.job_name, runtime.job_uid, patch)
        except KubeError as exc:
            if not (exc.not_found or exc.conflict):  # deleted, or replaced by a Job that is not ours
                raise

    def _job_names(self) -> Callable[[int], str]:
        """Trial number -> its Job's name, which is not always the usual one (a taken name)."""
        names = {trial_number(j): str(j["metadata"]["name"]) for j in self.owned_jobs()}
        names.update({t.number: r.job_name for t in self.tuner.running if (r := self.trials.get(t.id))})
        return lambda number: names.get(number) or trial_job_name(self.name, number)

    def _runtime_of(self, trial: Trial) -> TrialRuntime:
        """A runtime for a trial not seen this round, from its owned Job if there is one."""
        for job in self.owned_jobs():
            if trial_number(job) == trial.number:
                meta = job["metadata"]
                return TrialRuntime(meta["name"], time.monotonic(), job_uid=str(meta["uid"]))
        return TrialRuntime(trial_job_name(self.name, trial.number), time.monotonic())

    async def _write_records(self) -> None:
        for trial in self.tuner.running:
            runtime = self.trials.get(trial.id)
            if runtime is not None:
                await self._write_record(trial, runtime, force=False)

    async def _report_status(self, generation: int | None, stopping: bool) -> None:
        completion_before = self.status.completion_reason
        names = self._job_names()
        status = tuner_status(
            self.tuner,
            names,
            self.status,
            generation,
            stopping,
            retryable_errors=self.retryable_errors,
            retryable_failures=self.retryable_failures,
            pending=len(self.pending),
        )
        if self.pending or any(c.type == "TrialsPending" and c.status == "True" for c in status.conditions):
            waiting = "; ".join(f"{job}: {why}" for job, why in sorted(self.pending.items())[:3])
            more = f" (and {len(self.pending) - 3} more)" if len(self.pending) > 3 else ""
            status = status.model_copy(
                update={
                    "conditions": set_condition(
                        status.conditions,
                        "TrialsPending",
                        "True" if self.pending else "False",
                        "PodsWaiting" if self.pending else "NonePending",
                        f"{len(self.pending)} waiting to run: {waiting}{more}" if self.pending else "",
                        generation,
                    )
                }
            )
        if self.name_conflict:
            status = status.model_copy(
                update={
                    "conditions": set_condition(
                        status.conditions, "TrialNameConflict", "True", "JobNotOwned", self.name_conflict, generation
                    )
                }
            )
        if self.blocked:
            status = status.model_copy(
                update={
                    "conditions": set_condition(
                        status.conditions, "TrialsBlocked", "True", "JobCreationRefused", self.blocked, generation
                    )
                }
            )
        elif any(c.type == "TrialsBlocked" and c.status == "True" for c in status.conditions):
            status = status.model_copy(
                update={
                    "conditions": set_condition(
                        status.conditions, "TrialsBlocked", "False", "JobsCreated", "", generation
                    )
                }
            )
        self.status = status
        wire = status.to_wire()
        if wire != self._written_status:
            # A merge patch keeps what it does not mention: clear what is no longer set.
            cleared = {k: None for k in self._written_status or {} if k not in wire}
            await self.deps.kube.patch_status(self.namespace, self.name, {**cleared, **wire})
            self._written_status = wire
        completion = self.tuner.completion
        if completion is not None and completion_before is None:
            best = self.tuner.best
            best_text = (
                f"; best trial {names(best.number)} with {self.spec.objective.metric_name}={best.value:g}"
                if best
                else ""
            )
            ended_as = status.hyper_parameter_tuning_job_status
            self.deps.metrics.tuning_jobs_ended.labels(self.namespace, ended_as.value if ended_as else "Unknown").inc()
            decision(
                log,
                "job.ended",
                tuning_job=self.name,
                namespace=self.namespace,
                status=status.hyper_parameter_tuning_job_status,
                reason=completion.reason.value,
                message=completion.message,
                best=best.value if best else None,
                trials=len(self.tuner.trials),
                api_writes=self.deps.kube.requests - self._requests_at_open,
            )
            kind = "Warning" if status.hyper_parameter_tuning_job_status is TuningJobStatus.FAILED else "Normal"
            await self._event(
                kind,
                f"TuningJob{status.hyper_parameter_tuning_job_status.value if status.hyper_parameter_tuning_job_status else ''}",
                completion.message + best_text,
            )

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


def _thinned(points: Sequence[tuple[float, float]]) -> Sequence[tuple[float, float]]:
    if len(points) <= MAX_ATTEMPT_POINTS:
        return points
    stride = len(points) / MAX_ATTEMPT_POINTS
    return [points[int(i * stride)] for i in range(MAX_ATTEMPT_POINTS - 1)] + [points[-1]]


def _described(job: Mapping[str, Any]) -> str:
    """'Job train-0001 (controlled by CronJob nightly)': what the user needs to find it."""
    meta = job.get("metadata") or {}
    text = f"Job {meta.get('name')}"
    for ref in meta.get("ownerReferences") or []:
        if isinstance(ref, Mapping) and ref.get("controller") is True:
            return f"{text} (controlled by {ref.get('kind')} {ref.get('name')})"
    return text


def _format(values: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in values.items())
