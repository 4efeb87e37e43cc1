"""Auto early stopping: the median rule, its minimums, and its decisions surviving a restore."""

from __future__ import annotations

from typing import Any

import pytest

from kubetune.api.spec import parse_spec
from kubetune.engine import TrialStatus, Tuner
from kubetune.engine.early_stopping import MIN_COMPLETED, MIN_REPORTS, MIN_TRIALS, Comparison, MedianStoppingRule
from kubetune.engine.factory import build
from kubetune.engine.space import SearchSpace
from kubetune.errors import SpecError
from tests.unit.conftest import make_spec


def start(rule: MedianStoppingRule, trial: str, curve: list[float], completed: bool = False) -> list[bool]:
    """Start a trial and report its curve; whether each report stopped it (reports after a stop are not sent).

    The trial then ends as `completed` says, unless it was stopped.
    """
    rule.on_start(trial, {"lr": 0.1})
    stops: list[bool] = []
    for step, loss in enumerate(curve, start=1):
        stops.append(rule.on_report(trial, step, loss).stop)
        if stops[-1]:
            break
    rule.on_end(trial, completed=completed and not stops[-1])
    return stops


def test_nothing_is_stopped_before_enough_trials_reached_the_step() -> None:
    rule = MedianStoppingRule()
    for n in range(MIN_TRIALS - 1):
        start(rule, str(n), [1.0] * 5)
    assert not any(start(rule, "bad", [9.0] * 5))  # one trial short of the minimum at every step
    assert start(rule, "worse", [10.0] * 5) == [False] * (MIN_REPORTS - 1) + [True]


@pytest.mark.parametrize("min_reports", [MIN_REPORTS, 3])
def test_nothing_is_stopped_before_its_own_minimum_of_reports(min_reports: int) -> None:
    rule = MedianStoppingRule(min_reports=min_reports)
    for n in range(MIN_TRIALS):
        start(rule, str(n), [1.0] * 5)
    stops = start(rule, "bad", [9.0] * 5)
    assert stops == [False] * (min_reports - 1) + [True]


def test_completed_trials_set_the_bar_once_enough_of_them_reached_the_step() -> None:
    rule = MedianStoppingRule()
    for n in range(MIN_TRIALS):
        start(rule, f"poor{n}", [5.0] * 3)  # ended without completing: never part of the completed bar
    for n in range(MIN_COMPLETED - 1):
        start(rule, f"good{n}", [1.0] * 3, completed=True)
    assert not any(start(rule, "middling", [3.0] * 3))  # one completed trial short: the earlier trials' median, 5
    start(rule, "good", [1.0] * 3, completed=True)
    rule.on_start("late", {})
    decision = rule.on_report("late", 1, 3.0)
    assert decision.stop
    assert decision.reason.endswith(f"of the objectives of the {MIN_COMPLETED} completed trials at that step")


def test_without_the_completed_bar_the_earlier_trials_always_set_it() -> None:
    rule = MedianStoppingRule(min_completed=None)
    for n in range(MIN_TRIALS):
        start(rule, f"poor{n}", [5.0] * 3)
    for n in range(MIN_COMPLETED):
        start(rule, f"good{n}", [1.0] * 3, completed=True)
    assert not any(start(rule, "middling", [3.0] * 3))  # median of 5, 5, 5, 5, 5, 1, 1, 1 is 5


def test_a_trial_better_than_the_median_runs_on() -> None:
    rule = MedianStoppingRule()
    for n in range(MIN_TRIALS):
        start(rule, str(n), [1.0 + n] * 5)
    assert not any(start(rule, "good", [2.5] * 5))  # median of 1..5 is 3


def test_the_stop_reason_names_the_step_and_the_comparison() -> None:
    rule = MedianStoppingRule()
    for n in range(MIN_TRIALS):
        start(rule, str(n), [1.0] * 5)
    rule.on_start("bad", {})
    for step in range(1, MIN_REPORTS):
        rule.on_report("bad", step, 2.0)
    decision = rule.on_report("bad", MIN_REPORTS, 2.0)
    assert decision.stop
    assert decision.reason == (
        f"Auto early stopping at step {MIN_REPORTS}: its objective is worse than the median"
        f" of the objectives of the {MIN_TRIALS} earlier trials at that step"
    )


def test_like_with_like_stops_a_trial_the_literal_rule_lets_pass() -> None:
    earlier = [10.0, 4.0, 2.0, 1.0]  # running averages 10, 7, 5.33, 4.25
    behind = [9.0, 5.0, 2.5, 1.5]  # behind the others' values from step 2, ahead of their lagging averages throughout
    rules = {c: MedianStoppingRule(c) for c in Comparison}
    for rule in rules.values():
        for n in range(MIN_TRIALS):
            start(rule, str(n), earlier)
    assert not any(start(rules[Comparison.LATEST_AGAINST_AVERAGES], "behind", behind))
    assert start(rules[Comparison.LATEST], "behind", behind) == [False, True]
    assert start(rules[Comparison.RUNNING_AVERAGE], "behind", behind) == [False, False, True]  # 5.5 > 5.33
    reason = rules[Comparison.RUNNING_AVERAGE].on_report("behind", 1, 99.0)  # ended: a late report is ignored
    assert not reason.stop


# -- through the tuner -----------------------------------------------------------------------


def auto_spec(**changes: Any) -> dict[str, Any]:
    spec = make_spec(trainingJobEarlyStoppingType="Auto", **changes)
    spec["resourceLimits"] = {"maxNumberOfTrainingJobs": 40, "maxParallelTrainingJobs": 3}
    return spec


def curve(tuned: Any, step: int) -> float:
    return float(tuned["dropout"]) + 1.0 / step


def drive(tuner: Tuner, reports: int) -> list[tuple[str, int, bool]]:
    """Report epoch after epoch, round-robin over the running trials; every trial ends after 8 epochs."""
    said: list[tuple[str, int, bool]] = []
    steps: dict[str, int] = {}
    for _ in range(reports):
        tuner.ask(3)
        if not tuner.running:
            break
        trial = min(tuner.running, key=lambda t: (steps.get(t.id, 0), t.number))
        step = steps[trial.id] = steps.get(trial.id, 0) + 1
        stop = tuner.report(trial.id, step, curve(trial.tuned, step))
        said.append((trial.id, step, stop))
        if not stop and step == 8:
            tuner.tell(trial.id, curve(trial.tuned, step))
    return said


@pytest.mark.parametrize("strategy", ["Grid", "Random"])
def test_auto_builds_the_median_rule_for_strategies_without_their_own(strategy: str) -> None:
    changes: dict[str, Any] = {"strategy": strategy}
    if strategy == "Grid":
        changes["parameterRanges"] = {"integerParameterRanges": [{"name": "layers", "minValue": 1, "maxValue": 4}]}
    raw = auto_spec(**changes)
    if strategy == "Grid":
        raw["resourceLimits"]["maxNumberOfTrainingJobs"] = 4  # the grid's size, or none
    spec = parse_spec(raw)
    _, scheduler = build(spec, SearchSpace.from_spec(spec))
    assert isinstance(scheduler, MedianStoppingRule)
    assert scheduler.comparison is Comparison.LATEST


def test_auto_with_hyperband_is_refused() -> None:
    with pytest.raises(SpecError, match="must be Off with the Hyperband strategy"):
        parse_spec(auto_spec(strategy="Hyperband"))


def test_stopped_trials_and_their_reasons_survive_a_restore() -> None:
    original = Tuner(auto_spec())
    drive(original, 120)
    restored = Tuner(auto_spec(), history=original.history())
    assert [(r.trial.id, r.status, r.reason) for r in restored.trials] == [
        (r.trial.id, r.status, r.reason) for r in original.trials
    ]
    assert drive(restored, 200) == drive(original, 200)
    stopped = [r for r in original.trials if r.status is TrialStatus.STOPPED]
    assert stopped and all(r.reason.startswith("Auto early stopping at step") for r in stopped)
    assert any("completed trials" in r.reason for r in stopped)
    assert all(r.value == r.reports[-1][2] for r in stopped)  # scored by their last report
