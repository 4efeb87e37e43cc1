"""The methods compared: kubetune's strategies through its public Tuner, and Optuna's pruners as peers.

Every method gets the same problem, seeds, worker counts and budgets. The
Optuna peers use its RandomSampler, so that a difference between, say,
kubetune's Hyperband and Optuna's HyperbandPruner is the stopping rule's and
not the sampler's; their resource settings match ours (minResource 1, eta 3).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from typing import Any

import optuna
from problems import Problem

from kubetune.engine import Tuner
from kubetune.engine.early_stopping import Comparison, MedianStoppingRule

UNLIMITED_TRIALS = 1_000_000


class KubetuneDriver:
    def __init__(self, problem: Problem, seed: int, workers: int, max_trials: int, **spec: Any) -> None:
        self.tuner = Tuner(
            {
                "objective": {"metricName": "accuracy", "type": "Maximize"},
                "resourceLimits": {"maxNumberOfTrainingJobs": max_trials, "maxParallelTrainingJobs": workers},
                "parameterRanges": problem.parameter_ranges(),
                "randomSeed": seed,
                "staticHyperParameters": {"epochs": problem.max_epochs},
                "trialTemplate": {"spec": {"template": {"spec": {"containers": [{"name": "train"}]}}}},
                **spec,
            }
        )

    def ask(self, count: int) -> list[tuple[Any, dict[str, Any]]]:
        return [(t.id, dict(t.tuned)) for t in self.tuner.ask(count)]

    def report(self, key: Any, epoch: int, value: float) -> bool:
        return self.tuner.report(key, epoch, value)

    def tell(self, key: Any, value: float) -> None:
        self.tuner.tell(key, value)


class AutoReadingDriver(KubetuneDriver):
    """Random with Auto early stopping under another reading of the median rule than the default.

    The spec has no switch for it (users get one Auto), so the benchmark swaps
    the scheduler of a fresh tuner before its first trial.
    """

    def __init__(self, problem: Problem, seed: int, workers: int, max_trials: int, rule: MedianStoppingRule) -> None:
        super().__init__(problem, seed, workers, max_trials, strategy="Random")
        self.tuner._scheduler = rule


class OptunaDriver:
    def __init__(self, problem: Problem, seed: int, pruner: optuna.pruners.BasePruner) -> None:
        self.problem = problem
        self.study = optuna.create_study(
            study_name="bench",  # Optuna's Hyperband deals brackets by a hash of the study name
            direction="maximize",
            sampler=optuna.samplers.RandomSampler(seed=seed),
            pruner=pruner,
        )
        self.trials: dict[int, optuna.Trial] = {}

    def ask(self, count: int) -> list[tuple[Any, dict[str, Any]]]:
        asked = []
        for _ in range(count):
            trial = self.study.ask()
            self.trials[trial.number] = trial
            asked.append((trial.number, self.problem.suggest_optuna(trial)))
        return asked

    def report(self, key: Any, epoch: int, value: float) -> bool:
        trial = self.trials[key]
        trial.report(value, epoch)
        if trial.should_prune():
            self.study.tell(trial, state=optuna.trial.TrialState.PRUNED)
            del self.trials[key]
            return True
        return False

    def tell(self, key: Any, value: float) -> None:
        self.study.tell(self.trials.pop(key), value)


Factory = Callable[[Problem, int, int, int], Any]
"""(problem, seed, workers, max_trials) -> a driver."""


AUTO_PEERS = ["random+auto", "random+auto-all-earlier", "random+auto-sagemaker-text", "optuna-median"]
"""The early-stopping methods, compared both with the same trials and at the same resource budget."""


def _bayesian_available() -> bool:
    return importlib.util.find_spec("kubetune.engine.strategies.bayesian") is not None


def _methods() -> dict[str, Factory]:
    def hyperband(proposer: str) -> Factory:
        config = {"hyperbandStrategyConfig": {"proposer": proposer}}
        return lambda p, s, w, n: KubetuneDriver(p, s, w, n, strategy="Hyperband", strategyConfig=config)

    def auto_reading(comparison: Comparison, **options: Any) -> Factory:
        return lambda p, s, w, n: AutoReadingDriver(p, s, w, n, MedianStoppingRule(comparison, **options))

    def auto(p: Problem, s: int, w: int, n: int) -> KubetuneDriver:
        return KubetuneDriver(p, s, w, n, strategy="Random", trainingJobEarlyStoppingType="Auto")

    def median(p: Problem, s: int, w: int, n: int) -> OptunaDriver:
        return OptunaDriver(p, s, optuna.pruners.MedianPruner())

    methods: dict[str, Factory] = {
        "random": lambda p, s, w, n: KubetuneDriver(p, s, w, n, strategy="Random"),
        "random+auto": auto,
        "random+auto-sagemaker-text": auto_reading(Comparison.LATEST_AGAINST_AVERAGES, min_completed=None),
        "random+auto-all-earlier": auto_reading(Comparison.LATEST, min_completed=None),
        "hyperband": hyperband("Random"),
        "optuna-hyperband": lambda p, s, w, n: OptunaDriver(
            p, s, optuna.pruners.HyperbandPruner(min_resource=1, max_resource=p.max_epochs, reduction_factor=3)
        ),
        "optuna-sh": lambda p, s, w, n: OptunaDriver(
            p, s, optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=3)
        ),
        "optuna-median": median,
        "optuna-random": lambda p, s, w, n: OptunaDriver(p, s, optuna.pruners.NopPruner()),
    }
    for name in AUTO_PEERS:
        methods[f"{name}-budget"] = methods[name]  # the same method, run to a resource budget instead
    if _bayesian_available():
        methods["bayesian"] = lambda p, s, w, n: KubetuneDriver(p, s, w, n, strategy="Bayesian")
        methods["hyperband-bayesian"] = hyperband("Bayesian")
    return methods


METHODS = _methods()
BUDGETED = {"hyperband", "hyperband-bayesian", "optuna-hyperband", "optuna-sh", *(f"{m}-budget" for m in AUTO_PEERS)}
"""Methods that run as many trials as a resource budget allows; the others run a fixed number of trials."""
SLOW = {"bayesian", "hyperband-bayesian"}
"""Methods that fit a model per trial: run on fewer seeds (run.py --slow-seeds)."""

optuna.logging.set_verbosity(optuna.logging.WARNING)
