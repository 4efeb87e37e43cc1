"""`kubetune run`: a whole tuning job on one machine, each trial a subprocess.

The trial is made from the template's primary container exactly as the cluster
would run it — command and args with $(VAR) expansion, env, workingDir — minus
the image: the local environment runs it. Metrics come through the same
collector the sidecar uses, decisions from the same Tuner the operator uses.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kubetune.api.delivery import TrialIdentity, expand, trial_environment
from kubetune.api.spec import HyperParameterTuningJobSpec, ParameterValue
from kubetune.api.template import TrialTemplate
from kubetune.collector.collector import MetricCollector, MetricsFileTail, explain_missing_objective
from kubetune.engine import Trial, TrialStatus, Tuner
from kubetune.engine.completion import Completion
from kubetune.engine.trial import TrialRecord
from kubetune.errors import SpecError
from kubetune.logs import decision

log = logging.getLogger("kubetune.run")

DEFAULT_GRACE_SECONDS = 30.0
"""Kubernetes' default terminationGracePeriodSeconds."""


@dataclass(frozen=True)
class LocalRunSettings:
    name: str
    """The tuning job's name (metadata.name of the spec file)."""
    base_dir: Path
    """Where a relative workingDir resolves, and the default working directory: the spec file's folder."""
    output_dir: Path
    """Where each trial's output log and metrics file go."""
    poll_seconds: float = 0.2


@dataclass(frozen=True)
class RunningTrial:
    """One running trial as the progress display shows it."""

    name: str
    number: int
    hyperparameters: Mapping[str, ParameterValue]
    """The tuned ones alone: static values are the same for every trial."""
    value: float | None
    """The objective's latest reported value, None before the first report."""
    step: float | None
    seconds: float
    """How long it has run."""
    stopping: str | None = None
    """Why it is being stopped, while it winds down."""


@dataclass(frozen=True)
class ProgressSnapshot:
    """Where a local tuning job stands, for a live display: cheap to build a few times a second."""

    job: str
    strategy: str
    metric: str
    objective_type: str
    elapsed_seconds: float
    running: list[RunningTrial]
    counts: Mapping[TrialStatus, int]
    started: int
    """How many trials have been started in all."""
    budget: int | None
    """maxNumberOfTrainingJobs (or the strategy's bound), None when nothing bounds it."""
    max_runtime_seconds: float | None
    best_name: str | None = None
    best_value: float | None = None
    best_hyperparameters: Mapping[str, ParameterValue] = field(default_factory=dict)
    ended: str | None = None
    """The completion reason once the job is complete (or "Interrupted"), None while it goes on."""

    @property
    def trials_left(self) -> int | None:
        return None if self.budget is None else max(self.budget - self.started, 0)

    @property
    def seconds_left(self) -> float | None:
        if self.max_runtime_seconds is None:
            return None
        return max(self.max_runtime_seconds - self.elapsed_seconds, 0.0)


ProgressHook = Callable[["LocalRunner", bool], None]
"""Called on every turn of the run loop, and once at its end with True (final); it decides how often to redraw."""


@dataclass
class _Process:
    trial: Trial
    name: str
    process: asyncio.subprocess.Process
    collector: MetricCollector
    tail: MetricsFileTail
    log_path: Path
    started: float
    started_at: float = field(default_factory=time.time)
    """Wall-clock start (epoch seconds), for the result's durations and best-so-far-by-time."""
    readers: list[asyncio.Task[None]] = field(default_factory=list)
    told: int = 0
    """How many objective points the tuner has been told."""
    stop_reason: str | None = None
    kill_at: float | None = None
    last_line: str = ""


class LocalRunner:
    """Drives a Tuner with local subprocesses until the tuning job is complete or interrupted."""

    def __init__(
        self,
        spec: HyperParameterTuningJobSpec,
        settings: LocalRunSettings,
        tuner: Tuner | None = None,
        progress: ProgressHook | None = None,
    ) -> None:
        self.spec = spec
        self.progress = progress
        self.settings = settings
        self.tuner = tuner or Tuner(spec)
        self._container = spec.primary_container
        self._command = [*self._container.get("command", []), *self._container.get("args", [])]
        if not self._container.get("command"):
            raise SpecError(
                "spec.trialTemplate.spec.template.spec.containers[].command",
                f"container {self._container['name']!r} has no command; kubetune run runs the command locally"
                " and cannot run an image's entrypoint",
            )
        template = spec.trial_template
        if template.multi_pod:
            # A trial of several pods needs a cluster to place them; locally each trial is its
            # primary pod alone, told its index as the Job controller would tell it.
            decision(
                log,
                "trial.multi_pod",
                logging.WARNING,
                pods=template.pods_per_trial,
                runs=f"only the primary pod ({_primary_described(template)}) of each trial",
                reason="kubetune run runs each trial as one local process",
            )
        self._completion_index = template.primary_index
        job_spec = template.primary_job_spec()[1]  # of a JobSet: the primary's replicated Job
        pod_spec = job_spec.get("template", {}).get("spec", {})
        self._grace = float(pod_spec.get("terminationGracePeriodSeconds", DEFAULT_GRACE_SECONDS))
        deadline = job_spec.get("activeDeadlineSeconds")
        self._trial_deadline = float(deadline) if deadline else None
        self._running: dict[str, _Process] = {}
        self._interrupted = False
        self.results: dict[str, dict[str, Any]] = {}

    # -- the loop ---------------------------------------------------------------------------

    async def run(self) -> Tuner:
        self.settings.output_dir.mkdir(parents=True, exist_ok=True)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self._interrupt)
        try:
            while True:
                self._collect_all()
                await self._reap()
                self._enforce_deadlines()
                if self._interrupted:
                    self.tuner.cancel("interrupted")
                completion = self.tuner.completion
                if self._interrupted or completion is not None:
                    self._stop_all(self._stop_reason(completion))
                    if not self._running:
                        break
                else:
                    started = await self._fill_slots()
                    if not started and not self._running and self.tuner.completion is None:
                        # The strategy offered nothing and nothing runs: never spin for ever.
                        raise RuntimeError("the strategy proposed no trial although the tuning job is not complete")
                if self.progress is not None:
                    self.progress(self, False)
                await asyncio.sleep(self.settings.poll_seconds)
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)
            for proc in list(self._running.values()):
                _signal_group(proc.process, signal.SIGKILL)
        completion = self.tuner.completion
        best = self.tuner.best
        decision(
            log,
            "job.ended",
            job=self.settings.name,
            status=completion.outcome.value if completion else "Stopped",
            reason=completion.reason.value if completion else "Interrupted",
            message=completion.message if completion else "",
            best_trial=self.results.get(best.id, {}).get("name", best.id) if best else None,
            best_value=best.value if best else None,
        )
        if self.progress is not None:
            self.progress(self, True)
        return self.tuner

    def snapshot(self) -> ProgressSnapshot:
        """The job's state now: running trials with their latest objective point, counts, best and budget."""
        now = time.monotonic()
        metric = self.spec.objective.metric_name
        running = []
        for proc in sorted(self._running.values(), key=lambda p: p.trial.number):
            points = proc.collector.series(metric)
            latest = points[-1] if points else None
            running.append(
                RunningTrial(
                    name=proc.name,
                    number=proc.trial.number,
                    hyperparameters=dict(proc.trial.tuned),
                    value=latest.value if latest else None,
                    step=latest.step if latest else None,
                    seconds=now - proc.started,
                    stopping=proc.stop_reason,
                )
            )
        best = self.tuner.best
        completion = self.tuner.completion
        ended = completion.reason.value if completion else ("Interrupted" if self._interrupted else None)
        runtime = self.spec.resource_limits.max_runtime_in_seconds
        return ProgressSnapshot(
            job=self.settings.name,
            strategy=self.spec.strategy.value,
            metric=metric,
            objective_type=self.spec.objective.type.value,
            elapsed_seconds=max(time.time() - self.tuner.started_at, 0.0),
            running=running,
            counts=self.tuner.counts(),
            started=len(self.tuner.trials),
            budget=self.tuner.budget,
            max_runtime_seconds=float(runtime) if runtime else None,
            best_name=self.results.get(best.id, {}).get("name", best.id) if best else None,
            best_value=best.value if best else None,
            best_hyperparameters=dict(best.tuned) if best else {},
            ended=ended,
        )

    def _stop_reason(self, completion: Completion | None) -> str:
        if self._interrupted:
            return "interrupted"
        return f"the tuning job completed ({completion.reason.value})" if completion else "stopped"

    def _interrupt(self) -> None:
        if not self._interrupted:
            decision(log, "job.interrupted", job=self.settings.name, running=len(self._running))
        self._interrupted = True

    async def _fill_slots(self) -> int:
        """Start what the tuner asks for; how many trials it gave (some may have failed to start)."""
        free = self.spec.resource_limits.max_parallel_training_jobs - len(self._running)
        if free <= 0:
            return 0
        trials = self.tuner.ask(free)
        for trial in trials:
            await self._spawn(trial)
        return len(trials)

    # -- one trial ---------------------------------------------------------------------------

    async def _spawn(self, trial: Trial) -> None:
        name = f"{self.settings.name}-{trial.number:04d}"
        metrics_path = self.settings.output_dir / f"{name}.metrics.jsonl"
        log_path = self.settings.output_dir / f"{name}.log"
        metrics_path.unlink(missing_ok=True)
        identity = TrialIdentity(self.settings.name, name, trial.number, str(metrics_path))
        env = self._environment(trial, identity)
        argv = [expand(part, env) for part in self._command]
        cwd = self.settings.base_dir / expand(self._container.get("workingDir", "."), env)
        collector = MetricCollector(self.spec.metric_definitions, self.spec.objective.metric_name)
        try:
            process = await asyncio.create_subprocess_exec(
                *argv,
                cwd=cwd,
                env=env,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                start_new_session=True,
            )
        except OSError as exc:
            # No such file, not executable, no such workingDir: the cluster would fail this
            # trial's container too, so it is a failed trial with the OS's words, not a crash.
            detail = exc.strerror or str(exc)
            if exc.filename is not None and str(exc.filename) != argv[0]:
                detail += f": {exc.filename}"  # e.g. the workingDir that does not exist
            reason = f"could not start {argv[0]!r}: {detail}"
            decision(log, "trial.failed", logging.WARNING, trial=name, reason=reason)
            self.tuner.fail(trial.id, reason)
            now = time.time()
            self.results[trial.id] = {
                "name": name,
                "exitCode": None,
                "log": None,
                "metrics": {},
                "series": [],
                "startedAt": now,
                "endedAt": now,
            }
            return
        proc = _Process(trial, name, process, collector, MetricsFileTail(str(metrics_path)), log_path, time.monotonic())
        handle = log_path.open("w", encoding="utf-8")
        assert process.stdout is not None and process.stderr is not None
        proc.readers = [
            asyncio.create_task(self._read(proc, process.stdout, handle)),
            asyncio.create_task(self._read(proc, process.stderr, handle)),
        ]
        asyncio.get_running_loop().create_task(_close_when_done(proc.readers, handle))
        self._running[trial.id] = proc
        decision(log, "trial.started", trial=name, pid=process.pid, hyperparameters=dict(trial.tuned))

    def _environment(self, trial: Trial, identity: TrialIdentity) -> dict[str, str]:
        env = dict(os.environ)
        # `python` in a command means the Python kubetune runs in, as the image's would in a pod.
        env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
        env.update(trial_environment(trial.hyperparameters, identity))
        if self._completion_index is not None:  # as the Job controller sets it in an Indexed Job's pods
            env["JOB_COMPLETION_INDEX"] = str(self._completion_index)
        for item in self._container.get("env", []):
            if "value" in item:
                env[item["name"]] = expand(str(item["value"]), env)
            elif "valueFrom" in item:
                decision(log, "env.skipped", logging.WARNING, variable=item["name"], reason="valueFrom needs a cluster")
        return env

    async def _read(self, proc: _Process, stream: asyncio.StreamReader, handle: Any) -> None:
        while True:
            raw = await stream.readline()
            if not raw:
                return
            line = raw.decode("utf-8", errors="replace").rstrip("\n")
            handle.write(line + "\n")
            if line.strip():
                proc.last_line = line.strip()
            proc.collector.feed_line(line)

    def _collect_all(self) -> None:
        for proc in list(self._running.values()):
            self._collect(proc)

    def _collect(self, proc: _Process) -> None:
        for line in proc.tail.read_records():
            proc.collector.feed_record(line)
        points = proc.collector.series(self.spec.objective.metric_name)
        for point in points[proc.told :]:
            proc.told += 1
            if proc.stop_reason is None and self.tuner.report(proc.trial.id, point.step, point.value):
                record = self._record(proc.trial.id)
                self._terminate(proc, record.reason or "stopped by the strategy")
                decision(
                    log, "trial.stopping", trial=proc.name, step=point.step, value=point.value, reason=record.reason
                )

    def _enforce_deadlines(self) -> None:
        now = time.monotonic()
        for proc in self._running.values():
            if proc.kill_at is not None and now >= proc.kill_at and proc.process.returncode is None:
                _signal_group(proc.process, signal.SIGKILL)
            if (
                self._trial_deadline is not None
                and proc.stop_reason is None
                and now - proc.started >= self._trial_deadline
            ):
                self._terminate(
                    proc, f"DeadlineExceeded: ran longer than activeDeadlineSeconds ({self._trial_deadline:g})"
                )

    def _terminate(self, proc: _Process, reason: str) -> None:
        if proc.stop_reason is None:
            proc.stop_reason = reason
            proc.kill_at = time.monotonic() + self._grace
            _signal_group(proc.process, signal.SIGTERM)

    def _stop_all(self, reason: str) -> None:
        for proc in self._running.values():
            self._terminate(proc, reason)

    async def _reap(self) -> None:
        for trial_id, proc in list(self._running.items()):
            if proc.process.returncode is None:
                continue
            await asyncio.gather(*proc.readers)
            self._collect(proc)
            del self._running[trial_id]
            self._finish(proc)

    def _finish(self, proc: _Process) -> None:
        code = proc.process.returncode
        record = self._record(proc.trial.id)
        final = proc.collector.final_objective()
        summary = proc.collector.summary()
        if record.status is TrialStatus.RUNNING:
            if proc.stop_reason and proc.stop_reason.startswith("DeadlineExceeded"):
                self.tuner.fail(proc.trial.id, proc.stop_reason)
            elif proc.stop_reason:
                self.tuner.stop(proc.trial.id, proc.stop_reason)
            elif code == 0:
                self.tuner.tell(proc.trial.id, final, diagnostic=explain_missing_objective(summary))
            else:
                detail = f": {proc.last_line[-200:]}" if proc.last_line else ""
                self.tuner.fail(proc.trial.id, f"exit code {code}{detail}")
        record = self._record(proc.trial.id)
        counts = self.tuner.counts()
        best = self.tuner.best
        ended = sum(n for status, n in counts.items() if status is not TrialStatus.RUNNING)
        event = {
            TrialStatus.COMPLETED: "trial.completed",
            TrialStatus.STOPPED: "trial.stopped",
            TrialStatus.FAILED: "trial.failed",
        }.get(record.status, "trial.ended")
        decision(
            log,
            event,
            logging.WARNING if record.status is TrialStatus.FAILED else logging.INFO,
            trial=proc.name,
            value=record.value,
            reason=record.reason or None,
            exit_code=code,
            progress=f"{ended}/{self.tuner.budget or '?'}",
            running=len(self._running),
            best=best.value if best else None,
        )
        self.results[proc.trial.id] = {
            "name": proc.name,
            "exitCode": code,
            "log": str(proc.log_path),
            "metrics": summary["metrics"],
            "series": summary["series"],
            "diagnostics": summary["diagnostics"],
            "startedAt": proc.started_at,
            "endedAt": time.time(),
        }

    def _record(self, trial_id: str) -> TrialRecord:
        return self.tuner.record(trial_id)


async def _close_when_done(readers: list[asyncio.Task[None]], handle: Any) -> None:
    with contextlib.suppress(Exception):
        await asyncio.gather(*readers)
    handle.close()


def _signal_group(process: asyncio.subprocess.Process, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, sig)


def result_document(runner: LocalRunner) -> dict[str, Any]:
    """The JSON `kubetune run` writes: the outcome, the best trial and every trial."""
    tuner = runner.tuner
    completion = tuner.completion
    best = tuner.best
    trials: list[Mapping[str, Any]] = []
    for record in tuner.trials:
        extra = runner.results.get(record.trial.id, {})
        trials.append(
            {
                "id": record.trial.id,
                "name": extra.get("name"),
                "hyperparameters": dict(record.trial.hyperparameters),
                "status": record.status.value,
                "objective": record.value,
                "reason": record.reason or None,
                **{k: v for k, v in extra.items() if k != "name"},
            }
        )
    return {
        "tuningJob": runner.settings.name,
        "status": completion.outcome.value if completion else "Stopped",
        "completionReason": completion.reason.value if completion else "Interrupted",
        "message": completion.message if completion else "",
        "objective": runner.spec.objective.model_dump(by_alias=True, mode="json"),
        "spec": runner.spec.to_wire(),
        "best": None
        if best is None
        else {
            "trial": best.id,
            "name": runner.results.get(best.id, {}).get("name"),
            "hyperparameters": dict(best.tuned),
            "objective": best.value,
            "status": best.status.value,
        },
        "trials": trials,
        "history": tuner.history(),
    }


def _primary_described(template: TrialTemplate) -> str:
    """'completion index 0', or for a JobSet 'completion index 0 of job 0 of replicated Job leader'."""
    index = f"completion index {template.primary_index}"
    name = template.primary_replicated_job_name
    return f"{index} of job 0 of replicated Job {name}" if name else index
