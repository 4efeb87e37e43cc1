"""Grid: every combination of categorical and integer ranges, exactly once."""

from __future__ import annotations

import itertools

import pytest

from kubetune import SpecError, Tuner

from .conftest import make_spec

GRID_RANGES = {
    "integerParameterRanges": [{"name": "layers", "minValue": 1, "maxValue": 3}],
    "categoricalParameterRanges": [
        {"name": "optimizer", "values": ["sgd", "adam"]},
        {"name": "batch", "values": [16, 32.5, True]},
    ],
}


def grid_spec(**limits: int) -> dict:
    return make_spec(
        strategy="Grid",
        parameterRanges=GRID_RANGES,
        resourceLimits={"maxParallelTrainingJobs": 5, **limits},
    )


def test_enumerates_every_combination_once() -> None:
    tuner = Tuner(grid_spec())
    assert tuner.budget == 18
    seen = []
    while not tuner.is_complete:
        batch = tuner.ask(5)
        assert batch
        for trial in batch:
            seen.append(tuple((k, type(v), v) for k, v in trial.tuned.items()))
            tuner.tell(trial.id, 1.0)
    expected = {
        (("layers", int, layers), ("optimizer", str, opt), ("batch", type(batch), batch))
        for layers, opt, batch in itertools.product([1, 2, 3], ["sgd", "adam"], [16, 32.5, True])
    }
    assert len(seen) == 18 and set(seen) == expected
    assert tuner.completion_reason == "MaxNumberOfTrainingJobsReached"
    assert tuner.ask(1) == []


def test_budget_equal_to_grid_size_is_accepted() -> None:
    assert Tuner(grid_spec(maxNumberOfTrainingJobs=18)).budget == 18


def test_budget_other_than_grid_size_is_refused() -> None:
    with pytest.raises(SpecError, match="must equal the number of grid points \\(18\\)") as info:
        Tuner(grid_spec(maxNumberOfTrainingJobs=10))
    assert info.value.field == "spec.resourceLimits.maxNumberOfTrainingJobs"


def test_continuous_range_is_refused() -> None:
    spec = make_spec(strategy="Grid", resourceLimits={})
    with pytest.raises(SpecError, match=r"cannot enumerate continuous hyperparameters \(lr, dropout\)") as info:
        Tuner(spec)
    assert info.value.field == "spec.parameterRanges.continuousParameterRanges"


def test_restored_grid_continues_where_it_stopped() -> None:
    original = Tuner(grid_spec())
    first = original.ask(4)
    for trial in first[:2]:
        original.tell(trial.id, 0.5)
    restored = Tuner(grid_spec(), history=original.history())
    assert [t.tuned for t in restored.ask(3)] == [t.tuned for t in original.ask(3)]
