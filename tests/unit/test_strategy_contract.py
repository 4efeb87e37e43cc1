"""One lifecycle every strategy goes through: ask, report, tell, fail, history round-trip, determinism.

A new strategy joins by adding a spec to STRATEGY_SPECS; it then has to pass
everything here, as Optuna's samplers share one contract test.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest

from kubetune import Tuner
from kubetune.engine import TrialStatus

from .conftest import make_spec

GRID_RANGES = {
    "integerParameterRanges": [{"name": "layers", "minValue": 1, "maxValue": 4}],
    "categoricalParameterRanges": [{"name": "optimizer", "values": ["sgd", "adam", "rmsprop"]}],
}

STRATEGY_SPECS: dict[str, dict[str, Any]] = {
    "Random": make_spec(strategy="Random"),
    "Grid": make_spec(strategy="Grid", parameterRanges=GRID_RANGES, resourceLimits={"maxParallelTrainingJobs": 4}),
}


def objective(config: dict[str, Any]) -> float:
    """A cheap deterministic function of any of the specs' hyperparameters."""
    total = 0.0
    for _, value in sorted(config.items()):
        if isinstance(value, bool) or not isinstance(value, int | float):
            total += (sum(map(ord, str(value))) % 7) / 7.0
        else:
            total += float(np.log1p(abs(value)))
    return total


def drive(tuner: Tuner, rounds: int) -> list[dict[str, Any]]:
    """Ask in batches, report twice, then tell, fail every fifth; returns the suggestions in order."""
    suggested = []
    for _ in range(rounds):
        trials = tuner.ask(3)
        if not trials:
            break
        for trial in trials:
            suggested.append(dict(trial.tuned))
            value = objective(dict(trial.tuned))
            if tuner.report(trial.id, 1, value * 2) or tuner.report(trial.id, 2, value * 1.5):
                continue
            if trial.number % 5 == 0:
                tuner.fail(trial.id, "exit code 1")
            else:
                tuner.tell(trial.id, value)
    return suggested


@pytest.fixture(params=sorted(STRATEGY_SPECS))
def strategy_spec(request: pytest.FixtureRequest) -> dict[str, Any]:
    return STRATEGY_SPECS[request.param]


def test_suggestions_lie_in_the_space(strategy_spec: dict[str, Any]) -> None:
    tuner = Tuner(strategy_spec)
    for config in drive(tuner, 4):
        for param in tuner.space.parameters:
            value = config[param.name]
            if param.choices:
                assert any(type(c) is type(value) and c == value for c in param.choices)
            else:
                assert param.low <= value <= param.high
                assert isinstance(value, int) == (param.kind == "integer")


def test_trial_lifecycle_counts(strategy_spec: dict[str, Any]) -> None:
    tuner = Tuner(strategy_spec)
    drive(tuner, 3)
    counts = tuner.counts()
    assert counts[TrialStatus.RUNNING] == 0
    assert counts[TrialStatus.FAILED] >= 1
    assert sum(counts.values()) == len(tuner.trials)
    best = tuner.best
    assert best is not None and best.status in (TrialStatus.COMPLETED, TrialStatus.STOPPED)


def test_same_seed_same_suggestions(strategy_spec: dict[str, Any]) -> None:
    assert drive(Tuner(strategy_spec), 5) == drive(Tuner(strategy_spec), 5)


def test_history_round_trip_continues_exactly(strategy_spec: dict[str, Any]) -> None:
    original = Tuner(strategy_spec)
    drive(original, 2)
    running = original.ask(2)
    state = json.loads(json.dumps(original.history()))  # it must survive JSON
    restored = Tuner(strategy_spec, history=state)
    assert restored.history() == original.history()
    assert [t.id for t in restored.running] == [t.id for t in running]
    for trial in running:
        original.tell(trial.id, 1.0)
        restored.tell(trial.id, 1.0)
    assert drive(restored, 3) == drive(original, 3)
    assert restored.best == original.best


def test_ask_respects_parallelism(strategy_spec: dict[str, Any]) -> None:
    tuner = Tuner(strategy_spec)
    limit = tuner.spec.resource_limits.max_parallel_training_jobs
    first = tuner.ask(100)
    assert len(first) == min(limit, tuner.budget or limit)
    assert tuner.ask(1) == []
    tuner.fail(first[0].id, "exit code 1")
    assert len(tuner.ask(5)) == 1


def test_unseeded_tuners_differ_but_restore_exactly(strategy_spec: dict[str, Any]) -> None:
    spec = {k: v for k, v in strategy_spec.items() if k != "randomSeed"}
    a = Tuner(spec)
    drive(a, 1)
    b = Tuner(spec, history=a.history())
    assert drive(a, 2) == drive(b, 2)


def test_random_trials_do_not_depend_on_batching() -> None:
    one_by_one, batched = Tuner(STRATEGY_SPECS["Random"]), Tuner(STRATEGY_SPECS["Random"])
    singles = [one_by_one.ask(1)[0].tuned for _ in range(4)]
    assert [t.tuned for t in batched.ask(4)] == singles
