"""Hyperband: settings and their inference, rung decisions, brackets, parallel slots, restore."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from kubetune.api.spec import ParameterValue, parse_spec
from kubetune.engine import TrialStatus, Tuner
from kubetune.engine.factory import build
from kubetune.engine.rungs import Rung
from kubetune.engine.space import SearchSpace
from kubetune.engine.strategies.base import Config, SearchState, Strategy
from kubetune.engine.strategies.hyperband import (
    HyperbandScheduler,
    HyperbandSettings,
    RungFittedStrategy,
    build_hyperband,
    min_model_points,
)
from kubetune.engine.strategies.random import RandomStrategy
from kubetune.errors import SpecError
from tests.unit.conftest import make_spec


def hyperband_spec(config: dict[str, Any] | None = None, **changes: Any) -> dict[str, Any]:
    changes.setdefault("staticHyperParameters", {"epochs": 81})
    spec = make_spec(strategy="Hyperband", **changes)
    spec["resourceLimits"] = {"maxNumberOfTrainingJobs": 200, "maxParallelTrainingJobs": 4}
    if config is not None:
        spec["strategyConfig"] = {"hyperbandStrategyConfig": config}
    return spec


def settings(config: dict[str, Any] | None = None, **changes: Any) -> HyperbandSettings:
    return HyperbandSettings.from_spec(parse_spec(hyperband_spec(config, **changes)))


def loss_of(config: Mapping[str, ParameterValue], step: float) -> float:
    """A learning curve per configuration: deterministic, falling with the resource, ranked by lr."""
    lr = float(config["lr"])
    return abs(lr - 0.01) + 1.0 / step


# -- settings ------------------------------------------------------------------------------


def test_max_resource_is_inferred_from_each_epochs_hyperparameter() -> None:
    for key in ("epochs", "numepochs", "n-epochs", "n_epochs", "num_epochs"):
        resolved = settings(staticHyperParameters={key: "27"})
        assert (resolved.max_resource, resolved.resource_name) == (27, key)


def test_explicit_settings_win_and_levels_follow_them() -> None:
    resolved = settings({"maxResource": 100, "minResource": 2, "eta": 4, "resourceName": "steps"})
    assert resolved == HyperbandSettings(min_resource=2, max_resource=100, eta=4, resource_name="steps")
    assert resolved.levels == (2, 8, 32)


def test_default_min_resource_puts_the_top_rung_near_max_resource() -> None:
    assert settings().levels == (1, 3, 9, 27)
    assert settings(staticHyperParameters={"epochs": 20}).levels == (2, 6, 18)
    assert settings(staticHyperParameters={"epochs": 2}).levels == (1,)


def test_missing_max_resource_is_a_clear_error() -> None:
    with pytest.raises(SpecError) as caught:
        settings(staticHyperParameters={"batch_size": 32})
    assert caught.value.field == "spec.strategyConfig.hyperbandStrategyConfig.maxResource"
    assert "num_epochs" in caught.value.message


@pytest.mark.parametrize(
    ("static", "field"),
    [
        ({"epochs": "many"}, "spec.staticHyperParameters.epochs"),
        ({"epochs": 2.5}, "spec.staticHyperParameters.epochs"),
        ({"epochs": True}, "spec.staticHyperParameters.epochs"),
        ({"epochs": 1}, "spec.staticHyperParameters.epochs"),
        ({"epochs": 20_001}, "spec.staticHyperParameters.epochs"),
    ],
)
def test_unusable_epochs_hyperparameter_names_the_field(static: dict[str, Any], field: str) -> None:
    with pytest.raises(SpecError) as caught:
        settings(staticHyperParameters=static)
    assert caught.value.field == field


def test_min_resource_must_stay_below_an_inferred_max_resource() -> None:
    with pytest.raises(SpecError, match="must be less than maxResource"):
        settings({"minResource": 81})


def test_resource_name_must_not_be_tuned() -> None:
    with pytest.raises(SpecError) as caught:
        settings({"resourceName": "lr"})
    assert caught.value.field == "spec.strategyConfig.hyperbandStrategyConfig.resourceName"


def test_hyperband_with_auto_early_stopping_is_an_error() -> None:
    with pytest.raises(SpecError, match="must be Off with the Hyperband strategy"):
        Tuner(hyperband_spec(trainingJobEarlyStoppingType="Auto"))


def test_every_trial_is_told_max_resource() -> None:
    tuner = Tuner(hyperband_spec({"maxResource": 27}, staticHyperParameters={"batch": 8}))
    (trial,) = tuner.ask()
    assert trial.hyperparameters["epochs"] == 27
    assert trial.hyperparameters["batch"] == 8


# -- rungs and brackets --------------------------------------------------------------------------


def test_rung_keeps_the_top_third_of_arrivals_so_far_rounded_down_but_never_nobody() -> None:
    rung = Rung(level=1, eta=3)
    outcomes = [rung.admit(loss) for loss in (5.0, 6.0, 4.0, 4.5, 9.0, 4.2)]
    assert [o.continues for o in outcomes] == [True, False, True, False, False, True]
    assert (outcomes[3].rank, outcomes[3].size, outcomes[3].keep) == (2, 4, 1)
    assert (outcomes[5].rank, outcomes[5].size, outcomes[5].keep) == (2, 6, 2)


def in_bracket(scheduler: HyperbandScheduler, bracket: int, count: int) -> list[str]:
    """Start trials until `count` of them landed in `bracket`; their ids (the others never report)."""
    chosen: list[str] = []
    n = 0
    while len(chosen) < count:
        n += 1
        scheduler.on_start(str(n), {"lr": 0.1})
        if scheduler.bracket_of(str(n)) == bracket:
            chosen.append(str(n))
    return chosen


def test_a_trial_outside_the_top_third_is_stopped_with_a_reason_naming_the_rung() -> None:
    scheduler = HyperbandScheduler(HyperbandSettings(1, 81, 3, "epochs"))
    first, second = in_bracket(scheduler, 0, 2)
    assert not scheduler.on_report(first, 1, 1.0).stop
    decision = scheduler.on_report(second, 1, 2.0)
    assert decision.stop
    assert decision.reason == (
        "Hyperband rung 1 of 4 (epochs=1, bracket 1 of 5): ranked 2 of the 2 trials that reached it;"
        " only the top 1 (1/3) continue"
    )


def test_brackets_judge_from_their_own_first_rung() -> None:
    scheduler = HyperbandScheduler(HyperbandSettings(1, 81, 3, "epochs"))
    first, second = in_bracket(scheduler, 1, 2)
    for step in (1, 2):
        assert not scheduler.on_report(first, step, 1.0).stop
        assert not scheduler.on_report(second, step, 2.0).stop
    assert not scheduler.on_report(first, 3, 1.0).stop
    assert "rung 2 of 4 (epochs=3, bracket 2 of 5)" in scheduler.on_report(second, 3, 2.0).reason


def test_reports_between_rungs_are_never_judged() -> None:
    scheduler = HyperbandScheduler(HyperbandSettings(2, 20, 3, "epochs"))
    first, second = in_bracket(scheduler, 0, 2)
    scheduler.on_report(first, 2, 1.0)
    assert not scheduler.on_report(second, 1, 50.0).stop  # below the first rung (2)
    assert scheduler.on_report(second, 2, 50.0).stop


def test_a_report_that_skips_rungs_is_judged_at_each_of_them() -> None:
    scheduler = HyperbandScheduler(HyperbandSettings(1, 81, 3, "epochs"))
    first, second = in_bracket(scheduler, 0, 2)
    for step in (1, 3, 9):
        scheduler.on_report(first, step, 1.0)
    assert not scheduler.on_report(second, 1, 0.5).stop
    decision = scheduler.on_report(second, 9, 2.0)  # passes rung 3 (alone with trial 1, worse): stopped there
    assert decision.stop and "rung 2 of 4 (epochs=3" in decision.reason


def test_each_bracket_gets_one_eta_cubed_of_the_trials_of_the_one_before_in_every_prefix() -> None:
    scheduler = HyperbandScheduler(HyperbandSettings(1, 9, 3, "epochs"))  # rungs 1, 3: brackets 0, 1, 2
    counts = [0] * 3
    shares = (729 / 757, 27 / 757, 1 / 757)
    for n in range(1, 758):
        scheduler.on_start(str(n), {"lr": 0.1})
        bracket = scheduler.bracket_of(str(n))
        assert bracket is not None
        counts[bracket] += 1
        assert all(abs(count - n * share) < 1 for count, share in zip(counts, shares, strict=True))
    assert counts == [729, 27, 1]


def test_brackets_share_one_ranking_per_rung_level() -> None:
    scheduler = HyperbandScheduler(HyperbandSettings(1, 9, 3, "epochs"))
    (aggressive,) = in_bracket(scheduler, 0, 1)
    (hedge,) = in_bracket(scheduler, 1, 1)
    for step in (1, 2, 3):
        assert not scheduler.on_report(aggressive, step, 1.0).stop
    assert not scheduler.on_report(hedge, 1, 0.5).stop  # bracket 2 is not judged at the first rung
    decision = scheduler.on_report(hedge, 3, 2.0)  # but at the second it meets bracket 1's trial, which was better
    assert decision.stop and "ranked 2 of the 2 trials that reached it" in decision.reason


def test_the_last_bracket_never_stops_anyone() -> None:
    scheduler = HyperbandScheduler(HyperbandSettings(1, 9, 3, "epochs"))  # rungs 1, 3; brackets 0..2
    for n, trial in enumerate(in_bracket(scheduler, 2, 5)):
        for step in range(1, 10):
            assert not scheduler.on_report(trial, step, 100.0 + n).stop


def test_a_trial_running_past_max_resource_is_stopped() -> None:
    scheduler = HyperbandScheduler(HyperbandSettings(1, 3, 3, "epochs"))
    scheduler.on_start("1", {"lr": 0.1})
    assert not scheduler.on_report("1", 3, 1.0).stop
    decision = scheduler.on_report("1", 4, 1.0)
    assert decision.stop and "ran past maxResource (epochs=3)" in decision.reason


# -- the tuner drives it ---------------------------------------------------------------------


def run_jobs(tuner: Tuner, events: int) -> list[tuple[str, Any]]:
    """Drive a tuner for `events` epochs, round-robin over the running trials; what it said, in order."""
    said: list[tuple[str, Any]] = []
    steps: dict[str, int] = {}
    for _ in range(events):
        for trial in tuner.ask(tuner.spec.resource_limits.max_parallel_training_jobs):
            said.append(("ask", (trial.id, dict(trial.tuned))))
        running = sorted(tuner.running, key=lambda t: steps.get(t.id, 0) * 1000 + t.number)
        if not running:
            break
        trial = running[0]
        step = steps.get(trial.id, 0) + 1
        steps[trial.id] = step
        stop = tuner.report(trial.id, step, loss_of(trial.tuned, step))
        said.append(("report", (trial.id, step, stop)))
        if not stop and step >= 27:
            tuner.tell(trial.id, loss_of(trial.tuned, step))
    return said


def test_freed_slots_are_filled_at_once_whatever_the_bracket_sizes() -> None:
    spec = hyperband_spec({"maxResource": 27})
    spec["resourceLimits"]["maxParallelTrainingJobs"] = 16
    tuner = Tuner(spec)
    assert len(tuner.ask(16)) == 16
    stopped = 0
    for trial in list(tuner.running):
        if tuner.report(trial.id, 1, loss_of(trial.tuned, 1)):
            stopped += 1
            assert len(tuner.ask(16)) == 1  # the freed slot, refilled without waiting for the rung
            assert len(tuner.running) == 16
    assert stopped > 0


def test_history_round_trip_reproduces_every_decision() -> None:
    spec = hyperband_spec({"maxResource": 27})
    original = Tuner(spec)
    run_jobs(original, 150)
    restored = Tuner(spec, history=original.history())
    assert [(r.trial.id, r.status, r.reason) for r in restored.trials] == [
        (r.trial.id, r.status, r.reason) for r in original.trials
    ]
    assert run_jobs(restored, 300) == run_jobs(original, 300)
    assert any(r.status is TrialStatus.STOPPED and r.reason.startswith("Hyperband rung") for r in original.trials)
    assert any(r.status is TrialStatus.COMPLETED for r in original.trials)


# -- the model-based proposer -----------------------------------------------------------------


class Recorder(Strategy):
    """A stand-in model that remembers what it was fitted on."""

    def __init__(self) -> None:
        self.seen: list[SearchState] = []

    def suggest(self, state: SearchState, count: int, seed: int) -> list[Config]:
        self.seen.append(state)
        return RandomStrategy().suggest(state, count, seed)


def feed(scheduler: HyperbandScheduler, first: int, trials: int) -> dict[float, int]:
    """Start trials with lr = 0.001·n and report their curves as far as they survive: lr → steps reached."""
    reached: dict[float, int] = {}
    for n in range(first, first + trials):
        lr = 0.001 * n
        scheduler.on_start(str(n), {"lr": lr})
        for step in range(1, 28):
            reached[lr] = step
            if scheduler.on_report(str(n), step, loss_of({"lr": lr}, step)).stop:
                break
        scheduler.on_end(str(n))
    return reached


def test_the_model_is_fitted_on_the_highest_rung_with_enough_results() -> None:
    spec = parse_spec(hyperband_spec({"maxResource": 27, "proposer": "Bayesian"}))
    space = SearchSpace.from_spec(spec)
    model = Recorder()
    proposer, scheduler = build_hyperband(spec, space, model)
    need = min_model_points(space)
    state = SearchState(space=space, observations=[], pending=[], failed=[], asked=0)
    assert len(proposer.suggest(state, 2, 0)) == 2 and not model.seen  # no level has data yet: the fallback proposes

    reached = feed(scheduler, 1, need - 1)
    proposer.suggest(state, 1, 0)
    assert not model.seen  # not one level has `need` results yet

    reached |= feed(scheduler, need, 40)
    proposer.suggest(state, 1, 0)
    (fitted,) = model.seen
    level = max(level for level in (1, 3, 9, 27) if sum(steps >= level for steps in reached.values()) >= need)
    assert level > 1
    assert sorted(float(o.config["lr"]) for o in fitted.observations) == sorted(
        lr for lr, steps in reached.items() if steps >= level
    )
    assert all(o.final and o.loss == loss_of(o.config, level) for o in fitted.observations)
    # the trials stopped below that level reach the model as failed: it must learn its picks die early
    assert sorted(float(c["lr"]) for c in fitted.failed) == sorted(lr for lr, steps in reached.items() if steps < level)


def test_model_based_hyperband_outlives_a_small_discrete_space() -> None:
    spec = hyperband_spec({"maxResource": 9, "proposer": "Bayesian"})
    spec["parameterRanges"] = {"integerParameterRanges": [{"name": "layers", "minValue": 1, "maxValue": 6}]}
    spec["resourceLimits"] = {"maxNumberOfTrainingJobs": 30, "maxParallelTrainingJobs": 2}
    tuner = Tuner(spec)
    while not tuner.is_complete:
        (trial,) = tuner.ask(1)  # a stall would come back empty here, with nothing running
        for step in range(1, 10):
            loss = abs(int(trial.tuned["layers"]) - 4) + 1.0 / step
            if tuner.report(trial.id, step, loss):
                break
        else:
            tuner.tell(trial.id, loss)
    assert len(tuner.trials) == 30 and len({t.trial.tuned["layers"] for t in tuner.trials}) == 6


def test_the_factory_wires_the_proposer_through_the_rungs() -> None:
    for config, kind in (({"proposer": "Bayesian"}, RungFittedStrategy), ({}, RandomStrategy)):
        spec = parse_spec(hyperband_spec(config))
        strategy, scheduler = build(spec, SearchSpace.from_spec(spec))
        assert type(strategy) is kind
        assert isinstance(scheduler, HyperbandScheduler)


def test_late_reports_inform_the_rungs_but_do_not_stop_a_finished_trial() -> None:
    from kubetune import Tuner

    spec = {
        "strategy": "Hyperband",
        "randomSeed": 5,
        "objective": {"metricName": "acc", "type": "Maximize"},
        "resourceLimits": {"maxNumberOfTrainingJobs": 20, "maxParallelTrainingJobs": 4},
        "parameterRanges": {"continuousParameterRanges": [{"name": "x", "minValue": 0.0, "maxValue": 1.0}]},
        "strategyConfig": {"hyperbandStrategyConfig": {"minResource": 1, "maxResource": 9, "eta": 3}},
        "trialTemplate": {"spec": {"template": {"spec": {"containers": [{"name": "t", "command": ["true"]}]}}}},
    }
    live = Tuner(spec)  # reported as they happen, the bad trial's reports stop it at a rung
    good, bad = live.ask(2)[:2]
    for step in range(1, 10):
        assert live.report(good.id, step, 0.9) is False
    live.tell(good.id, 0.9)
    assert any(live.report(bad.id, step, 0.1) for step in range(1, 10))

    tuner = Tuner(spec)
    good, bad = tuner.ask(2)[:2]
    for step in range(1, 10):  # the good one reaches every rung first, with high values
        assert tuner.report(good.id, step, 0.9) is False
    tuner.tell(good.id, 0.9)
    # The bad one ran between two scrapes: its reports arrive with its end. At the first rung it would
    # have been cut, but it already ran to the end: it keeps its real final value, and stays Completed.
    tuner.tell(bad.id, 0.5, late_reports=[(float(s), 0.1) for s in range(1, 10)])
    record = tuner.record(bad.id)
    assert record.status.value == "Completed" and record.value == 0.5 and len(record.reports) == 9
    restored = Tuner(spec, history=tuner.history())
    assert restored.history() == tuner.history()
    assert restored.record(bad.id).status.value == "Completed"
