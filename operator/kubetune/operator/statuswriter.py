"""Writing the tuning job's status: the counters, the conditions of this round, and the end.

status.py computes the status from the Tuner alone; this adds what only the
round saw (pending pods, refused creations, taken names), sends only what
changed, and announces the end once (the job.ended line, metric and event).
"""

from __future__ import annotations

import logging

from kubetune.api.status import TuningJobStatus
from kubetune.logs import decision
from kubetune.operator.status import set_condition, tuner_status
from kubetune.operator.writeback import JobRecords

log = logging.getLogger("kubetune.operator")


class StatusWriter(JobRecords):
    """The part of a TuningJobRun that writes the tuning job's status."""

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
