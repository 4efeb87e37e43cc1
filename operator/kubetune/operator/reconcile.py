"""The loop that runs one tuning job: observe trials, tell the engine, act on its decisions, report status.

Each tuning job gets one TuningJobRun, driven by one kopf daemon, so nothing
else touches its Tuner. The run is rebuilt from the cluster whenever the
operator starts (records.py); in between it keeps the Tuner in memory and
writes every decision to the trial's Job before acting on it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping, Sequence
from typing import Any

from kubetune.api.status import TuningJobStatus
from kubetune.collector.collector import explain_missing_objective
from kubetune.engine import Trial, TrialStatus
from kubetune.logs import decision
from kubetune.operator import kueue
from kubetune.operator.creation import TrialCreation
from kubetune.operator.metrics import (
    STOP_PENDING,
    STOP_STRATEGY,
    STOP_TUNING_JOB_ENDED,
    STOP_USER,
    failure_reason,
)
from kubetune.operator.names import SIDECAR_NAME, trial_job_name
from kubetune.operator.podstate import (
    attempt_end,
    created_at,
    failed_pod,
    primary_pod,
    sidecar_running,
    sidecar_summary,
    trial_failure,
    trial_outcome,
    trial_waiting,
)
from kubetune.operator.queueing import QueuedTrials
from kubetune.operator.records import read_record, trial_number
from kubetune.operator.runstate import Deps, JobsOf, PodsOf, TrialRuntime
from kubetune.operator.scrape import SeriesChunk
from kubetune.operator.statuswriter import StatusWriter

__all__ = [
    "MAX_ATTEMPTS_KEPT",
    "STOPPED_BY_USER",
    "TERMINAL",
    "Deps",
    "JobsOf",
    "PodsOf",
    "TrialRuntime",
    "TuningJobRun",
]

log = logging.getLogger("kubetune.operator")

TERMINAL = {TuningJobStatus.COMPLETED, TuningJobStatus.FAILED, TuningJobStatus.STOPPED}
STOPPED_BY_USER = "the tuning job was stopped (spec.stopped is true)"
MAX_ATTEMPTS_KEPT = 5
"""Earlier attempts whose series a trial's record keeps (the newest): the annotation must stay small."""
MAX_ATTEMPT_POINTS = 200


class TuningJobRun(TrialCreation, QueuedTrials, StatusWriter):
    """One tuning job's Tuner and the Jobs that carry out its trials.

    Its parts live apart: the state (runstate.py), creating trial Jobs
    (creation.py), stopping Kueue-queued ones (queueing.py), writing records
    back (writeback.py) and the status (statuswriter.py); here is the round
    that ties them together.
    """

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
            for trial in self._waiting_first(self.tuner.running):
                await self._stop(trial, reason, by_tuner=False)
        else:
            await self._start_trials()
        await self._write_records()
        # A stopped queued trial whose Workload is yet to come (or to be deactivated) keeps the run going.
        releasing = await self._release_stopped()
        ended = self.tuner.completion is not None and not releasing
        await self._report_status(generation, stopping=stopped_by_user and not ended)
        return ended

    async def _observe(self) -> None:
        self.pending = {}
        owned = self.owned_jobs()
        await self._ask_unwatched_workloads(owned)
        jobs = {j["metadata"]["name"]: j for j in owned}
        by_number = {trial_number(j): j for j in owned}
        scrapes: list[tuple[Trial, TrialRuntime, str, int]] = []
        now = time.monotonic()
        primary_index = self.spec.trial_template.primary_index
        primary_job = self.spec.trial_template.primary_replicated_job_name
        multi_pod = self.spec.trial_template.multi_pod
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
            # The primary pod alone is scraped and read; another index's pod being replaced
            # changes nothing here, while a new primary pod is a new attempt.
            pod = primary_pod(pods, primary_index, primary_job)
            uid = pod["metadata"].get("uid") if pod is not None else None
            if uid is not None and uid != runtime.pod_uid:
                if runtime.pod_uid is not None:  # the Job ran the trial again: a new pod, a new series
                    earlier = next((p for p in pods if p["metadata"].get("uid") == runtime.pod_uid), runtime.pod_seen)
                    await self._retried(trial, runtime, earlier)
                runtime.pod_uid, runtime.pod_name = uid, str(pod["metadata"].get("name", "")) if pod else ""
            if pod is not None:
                runtime.pod_seen = pod
            outcome = trial_outcome(job, pod, multi_pod)
            if outcome is not None:
                await self._finish(trial, runtime, job, pod, outcome, now, pods)
                continue
            queue = kueue.queue_name(job["metadata"].get("labels"))
            workload = self._workload(runtime.job_uid) if queue else None
            runtime.evicted = kueue.eviction(workload) or runtime.evicted
            waits = trial_waiting(job, pods, pod, multi_pod)
            if waits is not None:
                waiting, waiting_pod = waits
                since = created_at(waiting_pod or job)
                if queue and waiting_pod is None:  # not admitted (yet, or again since an eviction)
                    waiting = kueue.admission_wait(queue, workload)
                    since_wait = kueue.waiting_since(workload)  # an evicted trial waits since its eviction
                    if since_wait is not None:
                        since = created_at({"metadata": {"creationTimestamp": since_wait}})
                waited = time.time() - since
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
        why = runtime.evicted or attempt_end(earlier)
        runtime.evicted = None
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
        pods: Sequence[Mapping[str, Any]] = (),
    ) -> None:
        multi_pod = self.spec.trial_template.multi_pod
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
            # With several pods, the words come from the one that failed; with one, from it.
            culprit = failed_pod(reason, pods, self.spec.primary_container["name"], pod) if multi_pod else pod
            await self._end(trial, runtime, TrialStatus.FAILED, None, trial_failure(reason, culprit, self.spec))

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
        workload = None
        if runtime.job_uid:
            metadata = self._job_metadata(trial.id, runtime)
            if self.spec.trial_template.queue is not None:  # Kueue would undo a suspend: see kueue.py
                workload = await self._stop_queued(runtime, metadata)
            if workload is None:
                await self._patch_own_job(runtime, {"metadata": metadata, "spec": {"suspend": True}})
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
            workload_deactivated=workload,
        )
        await self._event("Normal", "TrialStopped", f"trial {runtime.job_name} stopped: {reason}")
        self.trials.pop(trial.id, None)


def _thinned(points: Sequence[tuple[float, float]]) -> Sequence[tuple[float, float]]:
    if len(points) <= MAX_ATTEMPT_POINTS:
        return points
    stride = len(points) / MAX_ATTEMPT_POINTS
    return [points[int(i * stride)] for i in range(MAX_ATTEMPT_POINTS - 1)] + [points[-1]]
