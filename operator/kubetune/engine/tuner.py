"""The Tuner: the public ask/report/tell API that the operator, the local runner and users drive.

Every event (ask, report, end) gets a sequence number and is recorded in the
trial it concerns. `history()` is those records; `Tuner(spec, history=...)`
replays them in sequence order through the same code paths (the strategy is
not consulted for recorded trials), so schedulers rebuild their state and the
restored tuner continues exactly as the original would have.
"""

from __future__ import annotations

import math
import secrets
import time
from collections.abc import Mapping, Sequence
from typing import Any

from kubetune.api.spec import HyperParameterTuningJobSpec, ObjectiveType, ParameterValue, Strategy, parse_spec
from kubetune.engine.completion import Completion, CompletionCriteria, LossTrace, Outcome, Progress, Reason
from kubetune.engine.factory import build
from kubetune.engine.space import SearchSpace
from kubetune.engine.strategies.base import Observation, SearchState
from kubetune.engine.trial import Trial, TrialRecord, TrialResult, TrialStatus
from kubetune.errors import SpecError

HISTORY_FORMAT = "kubetune.io/history/v1"


class Tuner:
    """Decides which trials to run and when the tuning job is done; knows nothing of how trials run."""

    def __init__(
        self,
        spec: HyperParameterTuningJobSpec | dict[str, Any],
        history: Mapping[str, Any] | None = None,
    ) -> None:
        self.spec = parse_spec(spec)
        self.space = SearchSpace.from_spec(self.spec)
        self._strategy, self._scheduler = build(self.spec, self.space)
        self._sign = -1.0 if self.spec.objective.type is ObjectiveType.MAXIMIZE else 1.0
        self._budget = self._resolve_budget()
        self._criteria = CompletionCriteria(self.spec, self._budget)
        self._trials: dict[str, TrialRecord] = {}
        self._running: dict[str, TrialRecord] = {}
        self._observations: list[Observation] = []
        self._failed_configs: list[Mapping[str, ParameterValue]] = []
        self._losses = LossTrace()
        self._failed = 0
        self._without_objective = 0
        self._last_without_objective = ""
        self._seq = 0
        self._cancelled: str | None = None
        self._aborted: Completion | None = None
        self._completion: Completion | None = None
        if history is not None:
            self._restore(history)
        else:
            self.seed = self.spec.random_seed if self.spec.random_seed is not None else secrets.randbits(31)
            self.started_at = time.time()

    # -- the public API -------------------------------------------------------------------

    def ask(self, count: int = 1) -> list[Trial]:
        """Up to `count` new trials, within the budget, the parallelism limit and what the strategy has left."""
        if count < 1 or self._cancelled is not None or self._aborted is not None or self.is_complete:
            return []
        room = self.spec.resource_limits.max_parallel_training_jobs - len(self._running)
        if self._budget is not None:
            room = min(room, self._budget - len(self._trials))
        count = min(count, room)
        if count <= 0:
            return []
        configs = self._strategy.suggest(self._search_state(), count, self.seed)[:count]
        return [self._start(config, self._next_seq()) for config in configs]

    def report(self, trial_id: str, step: float, value: float) -> bool:
        """Record an intermediate objective value; True means the trial must stop now."""
        record = self._record(trial_id)
        if record.status is not TrialStatus.RUNNING:
            return record.status is TrialStatus.STOPPED
        return self._report(record, float(step), float(value), self._next_seq())

    def tell(
        self,
        trial_id: str,
        value: float | None,
        late_reports: Sequence[tuple[float, float]] = (),
        diagnostic: str | None = None,
    ) -> None:
        """The trial finished; `value` is its final objective (None or NaN: it yielded none).

        `late_reports` are (step, value) reports the runner only learned of once the
        trial was over (it ran between two scrapes): the scheduler learns from them
        — a rung counts every trial that reached it — but they cannot stop a trial
        that has already run to its end, so it keeps its real final value.

        `diagnostic` says, when there is no value, what the trial did emit
        (kubetune.collector.explain_missing_objective): it becomes the trial's reason,
        and the message of the job's failure once OBJECTIVE_NOT_REPORTED_TRIALS
        trials in a row came back without a value.
        """
        record = self._record(trial_id)
        if record.status is TrialStatus.RUNNING:
            for step, reported in late_reports:
                self._report(record, float(step), float(reported), self._next_seq(), may_stop=False)
            missing = value is None or not math.isfinite(value)
            reason = (diagnostic or "") if missing else ""
            self._end(record, TrialStatus.COMPLETED, value, reason, self._next_seq())

    def fail(self, trial_id: str, reason: str) -> None:
        """The trial failed: it counts against maxFailedTrainingJobs and yields no objective."""
        record = self._record(trial_id)
        if record.status is TrialStatus.RUNNING:
            self._end(record, TrialStatus.FAILED, None, reason, self._next_seq())

    def stop(self, trial_id: str, reason: str) -> None:
        """The runner stopped the trial (the job completed, or the user stopped it); its last report is its result."""
        record = self._record(trial_id)
        if record.status is TrialStatus.RUNNING:
            self._end(record, TrialStatus.STOPPED, record.last_value, reason, self._next_seq())

    def cancel(self, reason: str = "the tuning job was stopped") -> None:
        """Stop the whole tuning job: no new trials; it ends as Stopped once the runner stopped the running ones."""
        if self._cancelled is None:
            self._cancelled = reason

    def abort(self, reason: Reason, message: str) -> None:
        """End the whole tuning job as Failed, for a cause no further trial can get past (an invalid
        trial template, an objective no trial reports); it ends once the runner stopped the running ones."""
        if self._aborted is None and self._cancelled is None:
            self._aborted = Completion(Outcome.FAILED, reason, message)
            self._completion = None

    @property
    def running(self) -> list[Trial]:
        return [r.trial for r in self._running.values()]

    def record(self, trial_id: str) -> TrialRecord:
        """One trial's record (read-only by contract); KeyError names an unknown id."""
        return self._record(trial_id)

    @property
    def trials(self) -> list[TrialRecord]:
        """Every trial's record, in start order (read-only by contract)."""
        return list(self._trials.values())

    @property
    def best(self) -> TrialResult | None:
        board = self.leaderboard(1)
        return board[0] if board else None

    def leaderboard(self, size: int) -> list[TrialResult]:
        """The `size` best trials, best first; ties go to the earlier trial."""
        scored = [r for r in self._trials.values() if r.value is not None]
        scored.sort(key=lambda r: (self._sign * (r.value or 0.0), r.trial.number))
        return [
            TrialResult(r.trial.id, r.trial.number, r.trial.hyperparameters, r.trial.tuned, r.value or 0.0, r.status)
            for r in scored[:size]
        ]

    @property
    def budget(self) -> int | None:
        """How many trials the tuning job may start in all, or None when the strategy sets no bound."""
        return self._budget

    @property
    def is_complete(self) -> bool:
        return self.completion is not None

    @property
    def completion(self) -> Completion | None:
        """Why and how the job ended, or None while it goes on. Sticky once set."""
        if self._completion is None:
            self._completion = self._check_completion()
        return self._completion

    @property
    def completion_reason(self) -> str | None:
        completion = self.completion
        return completion.reason.value if completion else None

    def counts(self) -> dict[TrialStatus, int]:
        counts = dict.fromkeys(TrialStatus, 0)
        for record in self._trials.values():
            counts[record.status] += 1
        return counts

    def history(self) -> dict[str, Any]:
        """A JSON-serialisable record of every trial and report: enough to continue exactly."""
        history = make_history(
            self.seed, self.started_at, [_record_to_json(r) for r in self._trials.values()], self._cancelled
        )
        if self._aborted is not None:
            history["aborted"] = {"reason": self._aborted.reason.value, "message": self._aborted.message}
        return history

    def trial_document(self, trial_id: str) -> dict[str, Any]:
        """One trial's part of history(), for runners that store each trial apart (the operator, on its Job)."""
        return _record_to_json(self._record(trial_id))

    # -- internals ---------------------------------------------------------------------------

    def _resolve_budget(self) -> int | None:
        limits = self.spec.resource_limits
        size = self._strategy.size()
        if self.spec.strategy is Strategy.GRID:
            if limits.max_number_of_training_jobs is not None and limits.max_number_of_training_jobs != size:
                raise SpecError(
                    "spec.resourceLimits.maxNumberOfTrainingJobs",
                    f"must equal the number of grid points ({size}) with the Grid strategy, or be left out",
                )
            return size
        if limits.max_number_of_training_jobs is None:
            raise SpecError(
                "spec.resourceLimits.maxNumberOfTrainingJobs",
                f"is required with the {self.spec.strategy.value} strategy",
            )
        return limits.max_number_of_training_jobs

    def _next_seq(self) -> int:
        self._seq += 1
        return self._seq

    def _record(self, trial_id: str) -> TrialRecord:
        try:
            return self._trials[trial_id]
        except KeyError:
            raise KeyError(f"no trial with id {trial_id!r} in this tuning job") from None

    def _search_state(self) -> SearchState:
        return SearchState(
            space=self.space,
            observations=self._observations,
            pending=[r.trial.tuned for r in self._running.values()],
            failed=self._failed_configs,
            asked=len(self._trials),
        )

    def _start(self, tuned: Mapping[str, ParameterValue], seq: int) -> Trial:
        number = len(self._trials) + 1
        trial_id = str(number)
        extra = self._scheduler.on_start(trial_id, tuned)
        hyperparameters = {**self.spec.static_hyper_parameters, **extra, **tuned}
        trial = Trial(trial_id, number, hyperparameters, dict(tuned))
        record = TrialRecord(trial, seq)
        self._trials[trial_id] = record
        self._running[trial_id] = record
        self._completion = None
        return trial

    def _report(self, record: TrialRecord, step: float, value: float, seq: int, may_stop: bool = True) -> bool:
        self._seq = max(self._seq, seq)
        if not math.isfinite(value):
            return False
        record.reports.append((seq, step, value))
        decision = self._scheduler.on_report(record.trial.id, step, self._sign * value)
        if decision.stop and may_stop:
            self._end(record, TrialStatus.STOPPED, value, decision.reason, self._next_seq())
        return decision.stop

    def _end(self, record: TrialRecord, status: TrialStatus, value: float | None, reason: str, seq: int) -> None:
        self._seq = max(self._seq, seq)
        if value is not None and not math.isfinite(value):
            value = None
        record.status, record.value, record.reason, record.end_seq = status, value, reason, seq
        self._running.pop(record.trial.id, None)
        self._scheduler.on_end(record.trial.id, completed=status is TrialStatus.COMPLETED)
        if status is TrialStatus.FAILED:
            self._failed += 1
            if record.trial.tuned:  # a trial whose Job was deleted before it was read has no known config
                self._failed_configs.append(record.trial.tuned)
        elif value is not None:
            loss = self._sign * value
            self._observations.append(Observation(record.trial.tuned, loss, status is TrialStatus.COMPLETED))
            self._losses.append(loss)
        elif status is TrialStatus.COMPLETED:
            self._without_objective += 1
            self._last_without_objective = reason
        self._completion = None

    def _check_completion(self) -> Completion | None:
        if self._cancelled is not None or self._aborted is not None:
            if self._running:
                return None
            return self._aborted or Completion(Outcome.STOPPED, Reason.STOPPED_BY_USER, str(self._cancelled))
        size = self._strategy.size()
        progress = Progress(
            asked=len(self._trials),
            running=len(self._running),
            failed=self._failed,
            losses=self._losses,
            elapsed_seconds=time.time() - self.started_at,
            budget=self._budget,
            strategy_exhausted=size is not None and len(self._trials) >= size,
            without_objective=self._without_objective,
            last_without_objective=self._last_without_objective,
        )
        return self._criteria.check(progress)

    def _restore(self, history: Mapping[str, Any]) -> None:
        if history.get("format") != HISTORY_FORMAT:
            raise ValueError(f"history format {history.get('format')!r} is not {HISTORY_FORMAT!r}")
        self.seed = int(history["seed"])
        self.started_at = float(history["startedAt"])
        events: list[tuple[int, int, Any]] = []
        final_status = {raw["id"]: raw.get("status") for raw in history["trials"] if raw.get("ended") is not None}
        for raw in history["trials"]:
            events.append((int(raw["asked"]), 0, raw))
            for seq, step, value in raw.get("reports", []):
                events.append((int(seq), 1, (raw["id"], step, value)))
            if raw.get("ended") is not None:
                events.append((int(raw["ended"]), 2, raw))
        for seq, kind, payload in sorted(events, key=lambda e: (e[0], e[1])):
            if kind == 0:
                trial = self._start(payload["tuned"], seq)
                if trial.id != payload["id"]:
                    raise ValueError(f"history trial {payload['id']!r} is out of order")
                self._seq = max(self._seq, seq)
            elif kind == 1:
                record = self._trials[payload[0]]
                if record.status is TrialStatus.RUNNING:
                    # Only a trial recorded as Stopped was ever stopped by a report: the others'
                    # reports were late ones (see tell), which inform the scheduler and nothing more.
                    may_stop = final_status.get(payload[0]) in (None, TrialStatus.STOPPED.value)
                    self._report(record, float(payload[1]), float(payload[2]), seq, may_stop=may_stop)
            else:
                record = self._trials[payload["id"]]
                if record.status is TrialStatus.RUNNING:
                    value = payload.get("value")
                    self._end(record, TrialStatus(payload["status"]), value, payload.get("reason", ""), seq)
        if history.get("cancelled"):
            self._cancelled = str(history["cancelled"])
        aborted = history.get("aborted")
        if isinstance(aborted, Mapping):
            self._aborted = Completion(Outcome.FAILED, Reason(aborted["reason"]), str(aborted.get("message", "")))


def make_history(
    seed: int, started_at: float, trials: list[dict[str, Any]], cancelled: str | None = None
) -> dict[str, Any]:
    """Assemble a history from trial documents kept elsewhere (e.g. one per Job): what Tuner(history=) takes."""
    return {
        "format": HISTORY_FORMAT,
        "seed": seed,
        "startedAt": started_at,
        "cancelled": cancelled,
        "trials": sorted(trials, key=lambda t: int(t["number"])),
    }


def _record_to_json(record: TrialRecord) -> dict[str, Any]:
    return {
        "id": record.trial.id,
        "number": record.trial.number,
        "hyperparameters": dict(record.trial.hyperparameters),
        "tuned": dict(record.trial.tuned),
        "asked": record.asked_seq,
        "reports": [[seq, step, value] for seq, step, value in record.reports],
        "status": record.status.value,
        "value": record.value,
        "reason": record.reason,
        "ended": record.end_seq,
    }
