"""How long one suggestion takes once n results are in, for each method, on Hartmann6.

Each method is given the same n uniformly random evaluated points and asked
for one suggestion; what is timed is everything the method does between the
last result arriving and the suggestion being ready (a model fit included).
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
from methods import Optuna, _kubetune_spec, hyperopt_space, skopt_optimizer
from problems import PROBLEMS

PROBLEM = PROBLEMS["hartmann6"]


def _history(n: int, seed: int) -> tuple[list[dict[str, Any]], list[float]]:
    rng = np.random.default_rng([seed, n])
    xs = [{p.name: float(v) for p, v in zip(PROBLEM.params, row, strict=True)} for row in rng.random((n, 6))]
    return xs, [PROBLEM.fn(x) for x in xs]


def time_kubetune(n: int, seed: int) -> float:
    from kubetune.api.spec import parse_spec
    from kubetune.engine.factory import build
    from kubetune.engine.space import SearchSpace
    from kubetune.engine.strategies.base import Observation, SearchState

    spec = parse_spec(_kubetune_spec(PROBLEM, "Bayesian", seed, n + 1, 1))
    space = SearchSpace.from_spec(spec)
    strategy, _ = build(spec, space)
    xs, ys = _history(n, seed)
    state = SearchState(space, [Observation(x, y, True) for x, y in zip(xs, ys, strict=True)], [], [], n)
    t0 = time.perf_counter()
    strategy.suggest(state, 1, seed)
    return time.perf_counter() - t0


def time_optuna(n: int, seed: int, sampler: str) -> float:
    import optuna

    opt = Optuna(PROBLEM, seed, sampler)
    xs, ys = _history(n, seed)
    opt.study.add_trials(
        [optuna.trial.create_trial(params=x, distributions=opt.dists, value=y) for x, y in zip(xs, ys, strict=True)]
    )
    t0 = time.perf_counter()
    opt.ask()
    return time.perf_counter() - t0


def time_skopt(n: int, seed: int) -> float:
    opt = skopt_optimizer(PROBLEM, seed)
    xs, ys = _history(n, seed)
    rows = [[x[p.name] for p in PROBLEM.params] for x in xs]
    opt.tell(rows[:-1], ys[:-1], fit=False)
    t0 = time.perf_counter()
    opt.tell(rows[-1], ys[-1])  # skopt fits its GP here
    opt.ask()
    return time.perf_counter() - t0


def time_hyperopt(n: int, seed: int) -> float:
    from hyperopt import JOB_STATE_DONE, STATUS_OK, Domain, Trials, tpe

    space = hyperopt_space(PROBLEM)
    domain = Domain(lambda _: 0.0, space)
    trials = Trials()
    xs, ys = _history(n, seed)
    ids = trials.new_trial_ids(n)
    docs = []
    for tid, x, y in zip(ids, xs, ys, strict=True):
        misc = {
            "tid": tid,
            "cmd": domain.cmd,
            "workdir": None,
            "idxs": {k: [tid] for k in x},
            "vals": {k: [v] for k, v in x.items()},
        }
        result = {"loss": y, "status": STATUS_OK}
        doc = trials.new_trial_docs([tid], [None], [result], [misc])[0]
        doc["state"] = JOB_STATE_DONE
        docs.append(doc)
    trials.insert_trial_docs(docs)
    trials.refresh()
    t0 = time.perf_counter()
    tpe.suggest(trials.new_trial_ids(1), domain, trials, seed)
    return time.perf_counter() - t0


TIMERS = {
    "kubetune": time_kubetune,
    "optuna-gp": lambda n, s: time_optuna(n, s, "gp"),
    "optuna-tpe": lambda n, s: time_optuna(n, s, "tpe"),
    "skopt": time_skopt,
    "hyperopt": time_hyperopt,
}
