"""Creating trial Jobs: starting trials as slots free up, adopting our own Jobs, and refusals.

A trial's Job is created once; one found already there is adopted when this
tuning job owns it and never touched when it does not (the trial takes its
second name). A refusal for a passing cause (quota, throttling, an API server
down) is waited out with backoff; any other fails the tuning job at once.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from typing import Any

from kubetune.engine import Trial
from kubetune.engine.completion import Reason
from kubetune.logs import decision
from kubetune.operator.kube import NOT_LEADER, KubeError
from kubetune.operator.ownership import controlled_by
from kubetune.operator.records import compact_record
from kubetune.operator.runstate import RunState, TrialRuntime
from kubetune.operator.trialjob import build_trial_job

log = logging.getLogger("kubetune.operator")

MAX_CREATE_BACKOFF_SECONDS = 60.0


class TrialCreation(RunState):
    """The part of a TuningJobRun that turns the Tuner's suggestions into trial Jobs."""

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
            return await self.deps.kube.get_job(self.namespace, name, kind=self.spec.trial_template.kind.value)
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
