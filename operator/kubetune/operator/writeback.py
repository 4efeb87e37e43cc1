"""Writing a trial's record back to its Job: the cluster is the database.

Every trial Job carries its trial's history document, its status label and its
rounded objective; these methods write them, conditional on the Job's UID so a
Job that is not ours is never touched. records.py reads them back after a restart.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from kubetune.engine import Trial
from kubetune.operator.kube import KubeError
from kubetune.operator.names import (
    METRICS_ANNOTATION,
    OBJECTIVE_ANNOTATION,
    TRIAL_RECORD_ANNOTATION,
    TRIAL_STATUS_LABEL,
    trial_job_name,
)
from kubetune.operator.records import compact_record, trial_number
from kubetune.operator.runstate import RunState, TrialRuntime
from kubetune.operator.status import significant


class JobRecords(RunState):
    """The part of a TuningJobRun that writes what it knows of each trial onto the trial's Job."""

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
            await self.deps.kube.patch_job(
                self.namespace, runtime.job_name, runtime.job_uid, patch, kind=self.spec.trial_template.kind.value
            )
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
