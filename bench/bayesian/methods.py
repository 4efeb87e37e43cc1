"""Each optimiser behind one ask/tell interface, so every method runs the same loop.

`ask()` returns (handle, config); `tell(handle, value)` reports it. Peers are
imported lazily so that a run of a subset needs only that subset's packages.
Pending trials: kubetune, Optuna and hyperopt see running trials natively;
scikit-optimize has no notion of them, so with pending trials it is refitted
on each ask with the pending points told at the best value so far (constant
liar "cl_min", what its own `ask(n_points)` does for a batch).
"""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from problems import Problem

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "operator"))


class Optimizer(Protocol):
    def ask(self) -> tuple[Any, dict[str, Any]]: ...
    def tell(self, handle: Any, value: float) -> None: ...


def _kubetune_spec(problem: Problem, strategy: str, seed: int, budget: int, parallel: int) -> dict[str, Any]:
    ranges: dict[str, list[dict[str, Any]]] = {
        "continuousParameterRanges": [],
        "integerParameterRanges": [],
        "categoricalParameterRanges": [],
    }
    for p in problem.params:
        scaling = "Logarithmic" if p.log else "Linear"
        if p.kind == "float":
            ranges["continuousParameterRanges"].append(
                {"name": p.name, "minValue": p.low, "maxValue": p.high, "scalingType": scaling}
            )
        elif p.kind == "int":
            ranges["integerParameterRanges"].append(
                {"name": p.name, "minValue": int(p.low), "maxValue": int(p.high), "scalingType": scaling}
            )
        else:
            ranges["categoricalParameterRanges"].append({"name": p.name, "values": list(p.choices)})
    return {
        "strategy": strategy,
        "objective": {"metricName": "loss", "type": "Minimize"},
        "resourceLimits": {"maxNumberOfTrainingJobs": budget, "maxParallelTrainingJobs": parallel},
        "parameterRanges": ranges,
        "randomSeed": seed,
        "trialTemplate": {"spec": {"template": {"spec": {"containers": [{"name": "train", "image": "bench"}]}}}},
    }


class Kubetune:
    def __init__(self, problem: Problem, seed: int, budget: int, parallel: int, strategy: str) -> None:
        from kubetune.engine.tuner import Tuner

        self.tuner = Tuner(_kubetune_spec(problem, strategy, seed, budget, parallel))

    def ask(self) -> tuple[Any, dict[str, Any]]:
        trial = self.tuner.ask(1)[0]
        return trial.id, dict(trial.tuned)

    def tell(self, handle: Any, value: float) -> None:
        self.tuner.tell(handle, value)


class Optuna:
    def __init__(self, problem: Problem, seed: int, sampler: str) -> None:
        import optuna
        from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

        optuna.logging.set_verbosity(optuna.logging.ERROR)
        if sampler == "gp":
            s: optuna.samplers.BaseSampler = optuna.samplers.GPSampler(seed=seed)
        else:
            s = optuna.samplers.TPESampler(seed=seed, multivariate=True)
        self.study = optuna.create_study(sampler=s)
        self.dists: dict[str, Any] = {}
        for p in problem.params:
            if p.kind == "float":
                self.dists[p.name] = FloatDistribution(p.low, p.high, log=p.log)
            elif p.kind == "int":
                self.dists[p.name] = IntDistribution(int(p.low), int(p.high), log=p.log)
            else:
                self.dists[p.name] = CategoricalDistribution(list(p.choices))

    def ask(self) -> tuple[Any, dict[str, Any]]:
        trial = self.study.ask(self.dists)
        return trial, dict(trial.params)

    def tell(self, handle: Any, value: float) -> None:
        self.study.tell(handle, value)


def skopt_dimensions(problem: Problem) -> list[Any]:
    from skopt.space import Categorical, Integer, Real

    dims: list[Any] = []
    for p in problem.params:
        prior = "log-uniform" if p.log else "uniform"
        if p.kind == "float":
            dims.append(Real(p.low, p.high, prior=prior, name=p.name))
        elif p.kind == "int":
            dims.append(Integer(int(p.low), int(p.high), prior=prior, name=p.name))
        else:
            dims.append(Categorical(list(p.choices), name=p.name))
    return dims


def skopt_optimizer(problem: Problem, seed: int) -> Any:
    """The optimiser gp_minimize builds, with gp_minimize's defaults."""
    from skopt import Optimizer
    from skopt.space import Space
    from skopt.utils import cook_estimator

    dims = skopt_dimensions(problem)
    rng = np.random.RandomState(seed)
    estimator = cook_estimator(
        "GP", space=Space(dims), random_state=rng.randint(0, np.iinfo(np.int32).max), noise="gaussian"
    )
    return Optimizer(
        dims,
        estimator,
        n_initial_points=10,
        acq_func="gp_hedge",
        acq_optimizer="lbfgs",
        random_state=rng,
        acq_optimizer_kwargs={"n_points": 10000, "n_restarts_optimizer": 5, "n_jobs": 1},
    )


class Skopt:
    def __init__(self, problem: Problem, seed: int, parallel: int) -> None:
        self.problem, self.seed, self.parallel = problem, seed, parallel
        self.names = [p.name for p in problem.params]
        self.opt = skopt_optimizer(problem, seed)
        self.done_x: list[list[Any]] = []
        self.done_y: list[float] = []
        self.pending: dict[int, list[Any]] = {}
        self.asked = 0

    def _config(self, x: list[Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for p, v in zip(self.problem.params, x, strict=True):
            out[p.name] = int(v) if p.kind == "int" else (str(v) if p.kind == "cat" else float(v))
        return out

    def ask(self) -> tuple[Any, dict[str, Any]]:
        if self.parallel <= 1:
            x = self.opt.ask()
        else:
            opt = skopt_optimizer(self.problem, self.seed * 100_003 + self.asked)
            xs = self.done_x + list(self.pending.values())
            lie = min(self.done_y) if self.done_y else 0.0
            ys = self.done_y + [lie] * len(self.pending)
            if xs:
                opt.tell(xs, ys)
            x = opt.ask()
        handle = self.asked
        self.asked += 1
        self.pending[handle] = list(x)
        return handle, self._config(list(x))

    def tell(self, handle: Any, value: float) -> None:
        x = self.pending.pop(handle)
        self.done_x.append(x)
        self.done_y.append(value)
        if self.parallel <= 1:
            self.opt.tell(x, value)


def hyperopt_space(problem: Problem) -> dict[str, Any]:
    from hyperopt import hp

    space: dict[str, Any] = {}
    for p in problem.params:
        if p.kind == "float":
            space[p.name] = (
                hp.loguniform(p.name, math.log(p.low), math.log(p.high)) if p.log else hp.uniform(p.name, p.low, p.high)
            )
        elif p.kind == "int":
            space[p.name] = (
                hp.qloguniform(p.name, math.log(p.low), math.log(p.high), 1)
                if p.log
                else hp.uniformint(p.name, int(p.low), int(p.high))
            )
        else:
            space[p.name] = hp.choice(p.name, list(p.choices))
    return space


class Hyperopt:
    def __init__(self, problem: Problem, seed: int) -> None:
        from hyperopt import Domain, Trials

        self.problem = problem
        self.space = hyperopt_space(problem)
        self.domain = Domain(lambda _: 0.0, self.space)
        self.trials = Trials()
        self.rng = np.random.default_rng(seed)

    def ask(self) -> tuple[Any, dict[str, Any]]:
        from hyperopt import space_eval, tpe

        ids = self.trials.new_trial_ids(1)
        docs = tpe.suggest(ids, self.domain, self.trials, int(self.rng.integers(2**31 - 1)))
        self.trials.insert_trial_docs(docs)
        self.trials.refresh()
        vals = {k: v[0] for k, v in docs[0]["misc"]["vals"].items() if v}
        raw = space_eval(self.space, vals)
        config: dict[str, Any] = {}
        for p in self.problem.params:
            v = raw[p.name]
            if p.kind == "int":
                v = int(min(max(round(float(v)), p.low), p.high))
            config[p.name] = v
        return ids[0], config

    def tell(self, handle: Any, value: float) -> None:
        from hyperopt import JOB_STATE_DONE, STATUS_OK

        for doc in self.trials._dynamic_trials:
            if doc["tid"] == handle:
                doc["state"] = JOB_STATE_DONE
                doc["result"] = {"loss": value, "status": STATUS_OK}
        self.trials.refresh()


METHODS = ["kubetune", "random", "optuna-gp", "optuna-tpe", "skopt", "hyperopt"]


def make(method: str, problem: Problem, seed: int, budget: int, parallel: int) -> Optimizer:
    if method == "kubetune":
        return Kubetune(problem, seed, budget, parallel, "Bayesian")
    if method == "random":
        return Kubetune(problem, seed, budget, parallel, "Random")
    if method == "optuna-gp":
        return Optuna(problem, seed, "gp")
    if method == "optuna-tpe":
        return Optuna(problem, seed, "tpe")
    if method == "skopt":
        return Skopt(problem, seed, parallel)
    if method == "hyperopt":
        return Hyperopt(problem, seed)
    raise ValueError(f"unknown method {method!r}; known: {', '.join(METHODS)}")
