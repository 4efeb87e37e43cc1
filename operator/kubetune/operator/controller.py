"""One loop per tuning job, driven by watch events: started, fed, woken and ended here.

kopf delivers every tuning job's watch events (handlers.py); the Controller
turns them into one asyncio task per tuning job, which runs a TuningJobRun
(reconcile.py) round by round. Watch events, unlike kopf's daemons, need no
finalizer, so deleting a tuning job never waits for an operator.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from kubetune.api.spec import HyperParameterTuningJobSpec, parse_spec
from kubetune.api.status import HyperParameterTuningJobStatus, TuningJobStatus
from kubetune.engine import Tuner
from kubetune.errors import SpecError
from kubetune.logs import decision
from kubetune.operator import jobset
from kubetune.operator.kube import KubeError
from kubetune.operator.names import LEGACY_FINALIZER, MAX_NAME
from kubetune.operator.reconcile import TERMINAL, Deps, TuningJobRun
from kubetune.operator.records import compact_record, history_from_jobs
from kubetune.operator.status import now_rfc3339, parse_rfc3339, rfc3339, set_condition, status_from_wire
from kubetune.operator.trialjob import build_trial_job

log = logging.getLogger("kubetune.operator")


@dataclass
class _Loop:
    """One tuning job's loop: the newest body the watch delivered, and what wakes it."""

    body: Mapping[str, Any]
    wakeup: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None


class Controller:
    """Runs one loop per tuning job, keyed by UID, fed by watch events; forgets a job when it is deleted."""

    def __init__(self, deps: Deps) -> None:
        self.deps = deps
        self._runs: dict[str, TuningJobRun] = {}
        self._loops: dict[str, _Loop] = {}
        self._uids: dict[tuple[str, str], str] = {}
        self._ended: dict[str, int | None] = {}
        """UID -> the generation its loop ended at: nothing to do until the spec changes."""
        self._stopping = False

    def wake(self, namespace: str, name: str) -> None:
        loop = self._loops.get(self._uids.get((namespace, name), ""))
        if loop is not None:
            loop.wakeup.set()

    async def observe(self, event_type: str | None, body: Mapping[str, Any]) -> None:
        """A watch event of a tuning job: start its loop, hand it the new body, or end it on deletion."""
        meta = body["metadata"]
        uid = str(meta["uid"])
        if event_type == "DELETED":
            loop = self._loops.pop(uid, None)
            if loop is not None and loop.task is not None:
                loop.task.cancel()  # its Jobs go with it, through their owner references
            self._runs.pop(uid, None)
            self._ended.pop(uid, None)
            self.deps.metrics.forget_tuning_job(str(meta["namespace"]), str(meta["name"]))
            return
        await self._drop_legacy_finalizer(meta)
        loop = self._loops.get(uid)
        if loop is not None:
            changed = meta.get("generation") != loop.body["metadata"].get("generation")
            loop.body = body
            if changed or meta.get("deletionTimestamp"):
                loop.wakeup.set()
            return
        if self._stopping or meta.get("deletionTimestamp"):
            return
        if uid in self._ended and self._ended[uid] == meta.get("generation"):
            return
        loop = self._loops[uid] = _Loop(body)
        self._uids[(meta["namespace"], meta["name"])] = uid
        loop.task = asyncio.create_task(self._run(uid, loop), name=f"tuning job {meta['namespace']}/{meta['name']}")

    async def shutdown(self, grace_seconds: float = 30.0) -> None:
        """Let every loop finish its round, then cancel what is still running."""
        self._stopping = True
        tasks = [loop.task for loop in self._loops.values() if loop.task is not None]
        for loop in self._loops.values():
            loop.wakeup.set()
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=grace_seconds)
            for task in pending:
                task.cancel()

    async def _drop_legacy_finalizer(self, meta: Mapping[str, Any]) -> None:
        """0.1.0's kopf finalizer would make deleting this tuning job wait for an operator: remove it."""
        finalizers = list(meta.get("finalizers") or [])
        if LEGACY_FINALIZER not in finalizers:
            return
        try:
            await self.deps.kube.set_finalizers(
                meta["namespace"],
                meta["name"],
                str(meta["uid"]),
                str(meta.get("resourceVersion", "")),
                [f for f in finalizers if f != LEGACY_FINALIZER],
            )
        except KubeError as exc:  # changed meanwhile: the next event tries again
            decision(
                log,
                "finalizer.error",
                logging.WARNING,
                tuning_job=meta["name"],
                namespace=meta["namespace"],
                error=str(exc),
            )
            return
        decision(
            log, "finalizer.removed", tuning_job=meta["name"], namespace=meta["namespace"], finalizer=LEGACY_FINALIZER
        )

    async def _run(self, uid: str, loop: _Loop) -> None:
        """A round per wake-up or interval until the tuning job ends, is deleted, or the operator stops."""
        failures = 0
        try:
            while not self._stopping:
                loop.wakeup.clear()
                body = loop.body
                meta = body["metadata"]
                try:
                    if await self.reconcile(body):
                        if loop.body["metadata"].get("generation") == meta.get("generation"):
                            self._ended[uid] = meta.get("generation")
                            return
                        continue  # the spec changed during the last round: look again
                    failures = 0
                except Exception as exc:  # one bad round must not end the loop or touch other jobs
                    failures += 1
                    decision(
                        log,
                        "reconcile.error",
                        logging.ERROR,
                        tuning_job=meta["name"],
                        namespace=meta["namespace"],
                        error=f"{type(exc).__name__}: {exc}",
                        attempt=failures,
                    )
                delay = self.deps.settings.scrape.interval_seconds * min(2**failures, 12)
                await _wait(loop.wakeup, delay, lambda: self._stopping)
        finally:
            if self._loops.get(uid) is loop:
                del self._loops[uid]
            key = (loop.body["metadata"]["namespace"], loop.body["metadata"]["name"])
            if self._uids.get(key) == uid:
                del self._uids[key]

    def forget(self, uid: str) -> None:
        self._runs.pop(uid, None)

    async def reconcile(self, body: Mapping[str, Any]) -> bool:
        """One round for one tuning job; True when there is nothing left to do."""
        meta = body["metadata"]
        owner = {"name": meta["name"], "namespace": meta["namespace"], "uid": meta["uid"]}
        status = status_from_wire(body.get("status"))
        generation = meta.get("generation")
        if meta.get("deletionTimestamp"):
            return True  # being deleted: the garbage collector removes its Jobs
        run = self._runs.get(meta["uid"])
        if run is None:
            rejected = _rejected_generation(status)
            if rejected is not None and rejected == generation:
                return False  # invalid as it stands: wait for the user to fix the spec
            if status.hyper_parameter_tuning_job_status in TERMINAL and rejected is None:
                return True
            run = await self._open(owner, body.get("spec") or {}, status, generation)
            if run is None:
                return False
            self._runs[meta["uid"]] = run
        stopped = bool((body.get("spec") or {}).get("stopped"))
        with self.deps.metrics.reconcile_seconds.time():
            ended = await run.step(stopped, generation)
        if ended:
            self.forget(meta["uid"])
        return ended

    async def _open(
        self,
        owner: dict[str, Any],
        raw_spec: dict[str, Any],
        status: HyperParameterTuningJobStatus,
        generation: int | None,
    ) -> TuningJobRun | None:
        try:
            spec = parse_spec(raw_spec)
            seed = status.random_seed if status.random_seed is not None else spec.random_seed
            if seed is None:
                seed = secrets.randbits(31)
            started = parse_rfc3339(status.creation_time) if status.creation_time else time.time()
            history = history_from_jobs(
                self.deps.jobs_of(owner["namespace"], owner["name"], owner["uid"]), seed, started, owner["name"]
            )
            tuner = Tuner(spec, history=history)
            if not tuner.trials:
                await self._check_template(owner, spec, history)
        except SpecError as exc:
            await self._reject(owner, status, exc, generation)
            return None
        run = TuningJobRun(self.deps, owner, spec, tuner)
        run.status = status.model_copy(
            update={
                "random_seed": seed,
                "creation_time": rfc3339(started),
                "hyper_parameter_tuning_job_status": TuningJobStatus.IN_PROGRESS,
                "failure_reason": None,
                "end_time": None,
            }
        )
        resumed = len(tuner.trials)
        # The seed and start time are stored before the first trial exists, so a restart continues the same way.
        cleared = {k: None for k in status.to_wire() if k not in run.status.to_wire()}
        await self.deps.kube.patch_status(owner["namespace"], owner["name"], {**cleared, **run.status.to_wire()})
        run.written(run.status.to_wire())
        decision(
            log,
            "job.resumed" if resumed else "job.started",
            tuning_job=owner["name"],
            namespace=owner["namespace"],
            strategy=spec.strategy.value,
            seed=seed,
            trials=resumed,
            budget=tuner.budget,
        )
        if not resumed:
            await run._event(
                "Normal", "TuningJobStarted", f"{spec.strategy.value} search, budget {tuner.budget} trials, seed {seed}"
            )
        return run

    async def _check_template(
        self, owner: dict[str, Any], spec: HyperParameterTuningJobSpec, history: dict[str, Any]
    ) -> None:
        """Before any trial runs, the API server dry-runs the first trial's Job with strict field validation.

        The template has no schema of its own in the CRD, so only the API server can
        say that `comand` is a typo or `backoffLimit: lots` is not a number; asking it
        now turns that into Valid=False on the spec instead of a run that fails later.
        A refusal that time may lift (quota, throttling, the server down) is not the
        spec's fault: an exceeded quota lets the job start (it waits at creation), the
        others retry the round.
        """
        probe = Tuner(spec, history=history)  # a copy: asking it spends nothing of the real one
        trial = probe.ask(1)[0]
        record = compact_record(probe.trial_document(trial.id))
        manifest = build_trial_job(spec, owner, trial, record, self.deps.settings.sidecar).manifest
        name = manifest["metadata"].pop("name")
        manifest["metadata"]["generateName"] = f"{name[: MAX_NAME - 6]}-"  # never collides with anything
        try:
            await self.deps.kube.create_job(manifest, dry_run=True)
        except (ValueError, TypeError) as exc:
            raise SpecError("spec.trialTemplate", f"the trial Job cannot be encoded: {exc}") from None
        except KubeError as exc:
            if exc.transient:
                if exc.status == 403:
                    return  # an exceeded quota: the template is fine as far as can be told now
                raise
            if exc.not_found and spec.trial_template.jobset:
                raise SpecError(
                    "spec.trialTemplate.kind",
                    f"is JobSet, but this cluster does not serve JobSets ({jobset.API_VERSION}): install JobSet's"
                    " controller, or make the trials Jobs (an Indexed Job runs several pods too)",
                ) from None
            what = "JobSet" if spec.trial_template.jobset else "Job"
            raise SpecError("spec.trialTemplate", f"the API server refuses the trial {what}: {exc.message}") from None

    async def _reject(
        self, owner: dict[str, Any], status: HyperParameterTuningJobStatus, exc: SpecError, generation: int | None
    ) -> None:
        message = str(exc)
        conditions = set_condition(list(status.conditions), "Valid", "False", "InvalidSpec", message, generation)
        rejected = status.model_copy(
            update={
                "hyper_parameter_tuning_job_status": TuningJobStatus.FAILED,
                "failure_reason": message,
                "conditions": conditions,
                "observed_generation": generation,
                "end_time": now_rfc3339(),
            }
        )
        decision(
            log,
            "job.invalid",
            logging.WARNING,
            tuning_job=owner["name"],
            namespace=owner["namespace"],
            field=exc.field,
            reason=exc.message,
        )
        await self.deps.kube.patch_status(owner["namespace"], owner["name"], rejected.to_wire())
        with contextlib.suppress(KubeError):  # an event is a courtesy
            await self.deps.kube.event(owner, "Warning", "InvalidSpec", message)


async def _wait(wakeup: asyncio.Event, delay: float, stopped: Callable[[], bool]) -> None:
    deadline = time.monotonic() + delay
    while not stopped() and not wakeup.is_set():
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return
        try:
            await asyncio.wait_for(wakeup.wait(), timeout=min(remaining, 1.0))
        except TimeoutError:
            continue


def _rejected_generation(status: HyperParameterTuningJobStatus) -> int | None:
    """The generation whose spec was found invalid, if the last verdict was a rejection."""
    for condition in status.conditions:
        if condition.type == "Valid" and condition.status == "False":
            return condition.observed_generation if condition.observed_generation is not None else -1
    return None
