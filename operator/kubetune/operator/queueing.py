"""Trials queued through Kueue: stopping them by deactivating their Workload, and keeping them stopped.

kueue.py says why a suspended Job is no stop under Kueue. Here the run stops a
queued trial through its Workload, and every round makes sure that each trial
it has stopped stays released: a Workload that Kueue made only after the stop
(the trial was stopped within moments of its creation), or a deactivation that
the API server refused for a passing cause, is deactivated then. The state
this reads is all in the cluster (the trial Job's status label and its
Workload), so a restarted operator carries on where the last one stopped.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from typing import Any

from kubetune.engine import Trial, TrialStatus
from kubetune.logs import decision
from kubetune.operator import kueue
from kubetune.operator.kube import KubeError
from kubetune.operator.names import TRIAL_STATUS_LABEL
from kubetune.operator.podstate import created_at, job_outcome
from kubetune.operator.runstate import TrialRuntime
from kubetune.operator.writeback import JobRecords

log = logging.getLogger("kubetune.operator")

WORKLOAD_GRACE_SECONDS = 60.0
"""How long after its creation a stopped queued trial's Job may still get its Workload from Kueue;
one without a Workload by then is not Kueue's (no Kueue, or a namespace it does not manage)."""
ASK_INTERVAL_SECONDS = 15.0
"""Least time between two asks for the Workloads the watch does not deliver, per tuning job."""
NO_KUEUE_RETRY_SECONDS = 300.0
"""Where Kueue's Workload API is not served at all, how long before asking again."""
MAX_ASKED = 50
"""Job UIDs in one ask: the label selector goes in the URL."""
_RELEASED = {TrialStatus.STOPPED.value, TrialStatus.FAILED.value}
"""Trials whose Job is to hold no quota although it has not finished: the operator stopped them."""


class QueuedTrials(JobRecords):
    """The part of a TuningJobRun that stops Kueue-queued trials in the way Kueue respects."""

    def _waiting_first(self, trials: Sequence[Trial]) -> list[Trial]:
        """The trials in the order to stop them all at once: those still waiting to run first.

        Under Kueue, stopping a trial that holds quota frees it, and Kueue admits
        the next waiting Workload at once; had that been one of this job's, about
        to be stopped a moment later (each stop is a few requests: more than a
        second on a loaded API server), its pod would start and be killed. A
        trial that waits holds nothing, so the waiting ones are released first,
        and the quota freed last goes to someone else's work.
        """
        return sorted(trials, key=lambda t: (r := self.trials.get(t.id)) is not None and r.job_name not in self.pending)

    def _workload(self, job_uid: str) -> Mapping[str, Any] | None:
        """The trial Job's Workload: from the watch, else as last asked of the API server."""
        if not job_uid:
            return None
        return self.deps.workload_of(self.namespace, job_uid) or self.asked_workloads.get(job_uid)

    async def _ask_unwatched_workloads(self, jobs: Sequence[Mapping[str, Any]]) -> None:
        """Ask the API server for the Workloads of queued, unfinished trial Jobs that the watch has none for.

        kopf serves only the resources it finds at its start (or notices appear):
        with Kueue installed after the operator, or its CRD seen too late, the
        index stays empty. One list per tuning job, for all such Jobs at once, at
        most every ASK_INTERVAL_SECONDS, and none for a while where there is no
        Kueue to ask; the watch, once it serves, makes this a no-op.
        """
        now = time.monotonic()
        if now < self.ask_workloads_after:
            return
        candidates = [
            job
            for job in jobs
            if kueue.queue_name(job["metadata"].get("labels"))
            and job_outcome(job) is None
            and self.deps.workload_of(self.namespace, str(job["metadata"]["uid"])) is None
        ]
        # Running trials first (why they wait), then stopped ones (whether they are released).
        candidates.sort(key=lambda j: (j["metadata"].get("labels") or {}).get(TRIAL_STATUS_LABEL) in _RELEASED)
        unwatched = [str(job["metadata"]["uid"]) for job in candidates[:MAX_ASKED]]
        if not unwatched:
            self.asked_workloads = {}
            return
        self.ask_workloads_after = now + ASK_INTERVAL_SECONDS
        try:
            found = await self.deps.kube.job_workloads(self.namespace, unwatched)
        except KubeError as exc:
            if exc.not_found:  # Kueue's CRD is not installed: the Jobs wait for nothing it could say
                self.ask_workloads_after = now + NO_KUEUE_RETRY_SECONDS
            return
        self.asked_workloads = {uid: kueue.slim(w) for w in found if (uid := kueue.owner_uid(w)) in unwatched}

    async def _stop_queued(self, runtime: TrialRuntime, metadata: dict[str, Any]) -> str | None:
        """Stop a queued trial: write its record, then deactivate its Workload.

        Returns the Workload's name, or None where the trial is not Kueue's (or
        has no Workload yet): then the caller suspends the Job, as for any trial.
        """
        workload = self._workload(runtime.job_uid) or await self._ask_workload(runtime.job_uid)
        if workload is None:
            return None
        await self._patch_own_job(runtime, {"metadata": metadata})
        await self._deactivate(runtime.job_name, workload)
        return str(workload["metadata"].get("name", ""))

    async def _ask_workload(self, job_uid: str) -> Mapping[str, Any] | None:
        """The Workload of a Job that the watch has not delivered yet: asked of the API server."""
        try:
            found = await self.deps.kube.job_workloads(self.namespace, [job_uid])
        except KubeError:  # no Kueue here (404), or not now: the round's release pass looks again
            return None
        return next((kueue.slim(w) for w in found if kueue.owner_uid(w) == job_uid), None)

    async def _deactivate(self, job_name: str, workload: Mapping[str, Any]) -> bool:
        meta = workload.get("metadata") or {}
        name, uid = str(meta.get("name", "")), str(meta.get("uid", ""))
        try:
            await self.deps.kube.deactivate_workload(self.namespace, name, uid)
        except KubeError as exc:
            if exc.not_found or exc.conflict:
                return True  # gone with its Job, or replaced: nothing of ours holds quota
            decision(
                log,
                "trial.release_failed",
                logging.WARNING,
                tuning_job=self.name,
                namespace=self.namespace,
                trial=job_name,
                workload=name,
                error=str(exc),
            )
            return False
        self.deactivated.add(uid)
        return True

    async def _release_stopped(self) -> bool:
        """Deactivate the Workloads of stopped queued trials that are still active; True while a
        stopped trial may still get one (or could not be released), so the run must go on."""
        outstanding = False
        now = time.time()
        for job in self.owned_jobs():
            meta = job["metadata"]
            if not kueue.queue_name(meta.get("labels")) or (meta.get("labels") or {}).get(TRIAL_STATUS_LABEL) not in (
                _RELEASED
            ):
                continue
            if job_outcome(job) is not None:
                continue  # the Job finished: Kueue has released its quota itself
            workload = self._workload(str(meta.get("uid", "")))
            if workload is None:
                outstanding = outstanding or now - created_at(job) < WORKLOAD_GRACE_SECONDS
                continue
            uid = str(workload["metadata"].get("uid", ""))
            if not kueue.is_active(workload) or kueue.finished(workload):
                self.deactivated.discard(uid)
                continue
            if uid in self.deactivated:
                continue  # patched; the watch has not shown it yet
            if await self._deactivate(str(meta["name"]), workload):
                decision(
                    log,
                    "trial.released",
                    tuning_job=self.name,
                    namespace=self.namespace,
                    trial=meta["name"],
                    workload=workload["metadata"].get("name"),
                    reason="its Workload was still active after the trial was stopped",
                )
            else:
                outstanding = True
        return outstanding
