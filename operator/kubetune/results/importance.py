"""Hyperparameter importance: fANOVA main effects over a random forest, in numpy.

The method, as the report states it:

1. Each trial's tuned hyperparameters are mapped to the unit cube exactly as the
   strategies see them (kubetune.engine.space: log ranges log-scaled, integers
   and categories at the centres of equal cells), so a uniform point of the
   cube is a draw from the search distribution.
2. A random forest of regression trees (bootstrap samples, a random subset of
   the hyperparameters tried at each split, leaves of at least MIN_LEAF trials)
   is fitted to the objective of the trials that completed with one (when fewer
   than MIN_TRIALS completed, every trial with an objective, stopped ones
   included, is used, and the report says so).
3. Hutter et al.'s functional ANOVA (fANOVA, ICML 2014) splits the variance of
   the forest's prediction f over the cube into parts due to each
   hyperparameter alone and to their interactions. The main effect of x_i is
   f_i(v) = E[f(x) | x_i = v], averaged over the other coordinates; its
   importance is Var_v(f_i) / Var(f), the share of the variance that x_i
   explains on its own (its first-order Sobol index). We estimate both by
   Monte Carlo: BACKGROUND uniform points of the cube, GRID values of x_i
   (every category for a categorical), the forest evaluated on each
   combination. Shares need not sum to 1: the rest is interactions.

This is the quantity Optuna's FanovaImportanceEvaluator reports, estimated by
sampling instead of by exact integration over the trees' cells; with few trials
it is a rough guide and the report says how many trials it used.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from kubetune.engine.space import Kind, Parameter, SearchSpace
from kubetune.results.model import TuningResults

TREES = 48
MIN_LEAF = 2
MAX_DEPTH = 12
MAX_TRIALS = 2000
"""A forest on more trials than this fits a random subset of them: the estimate barely moves, the time would."""
MIN_TRIALS = 8
BACKGROUND = 256
GRID = 24


@dataclass(frozen=True)
class Importance:
    """Each tuned hyperparameter's share of the objective's variance, largest first."""

    shares: tuple[tuple[str, float], ...]
    trials_used: int
    population: str
    """Which trials the forest was fitted to, in words."""
    note: str = ""
    """Why there is no estimate, when shares is empty."""


def importance(results: TuningResults, seed: int = 0) -> Importance:
    space = SearchSpace(results.parameters)
    if not space.parameters:
        return Importance((), 0, "", "the tuning job has no tuned hyperparameters")
    rows = [t for t in results.trials if t.objective is not None and math.isfinite(t.objective)]
    completed = [t for t in rows if t.status == "Completed"]
    if len(completed) >= MIN_TRIALS:
        chosen, population = completed, "the trials that completed with an objective"
    else:
        chosen, population = rows, "every trial with an objective, stopped ones at their last report"
    usable = []
    for row in chosen:
        try:
            usable.append((space.encode(row.hyperparameters), float(row.objective or 0.0)))
        except (KeyError, ValueError, TypeError):
            continue  # a trial outside the current ranges (e.g. a lost trial with no hyperparameters)
    if len(usable) < 4:
        return Importance((), len(usable), population, f"needs at least 4 trials with an objective, has {len(usable)}")
    rng = np.random.default_rng(seed)
    if len(usable) > MAX_TRIALS:
        usable = [usable[i] for i in rng.choice(len(usable), MAX_TRIALS, replace=False)]
    x = np.array([u for u, _ in usable])
    y = np.array([v for _, v in usable])
    if float(np.var(y)) == 0.0:
        return Importance((), len(usable), population, "every trial has the same objective value")
    forest = Forest.fit(x, y, rng)
    shares = main_effects(forest, space.parameters, rng)
    ordered = tuple(sorted(zip(space.names, shares, strict=True), key=lambda p: -p[1]))
    return Importance(ordered, len(usable), population)


def main_effects(forest: Forest, parameters: tuple[Parameter, ...], rng: np.random.Generator) -> list[float]:
    """Var(f_i) / Var(f) for each coordinate i, by Monte Carlo over the unit cube."""
    background = rng.random((BACKGROUND, len(parameters)))
    total = float(np.var(forest.predict(background)))
    if total <= 0.0:
        return [0.0] * len(parameters)
    shares = []
    for i, parameter in enumerate(parameters):
        if parameter.kind is Kind.CATEGORICAL:
            k = len(parameter.choices)
            values = (np.arange(k) + 0.5) / k
        elif parameter.kind is Kind.INTEGER and (parameter.cardinality or GRID) <= GRID:
            values = np.array([parameter.to_unit(v) for v in parameter.grid_values()])
        else:
            values = (np.arange(GRID) + 0.5) / GRID
        points = np.repeat(background[None, :, :], len(values), axis=0)
        points[:, :, i] = values[:, None]
        marginal = forest.predict(points.reshape(-1, len(parameters))).reshape(len(values), BACKGROUND).mean(axis=1)
        shares.append(min(1.0, float(np.var(marginal)) / total))
    return shares


@dataclass(frozen=True)
class Tree:
    """A regression tree as flat arrays: node n splits on feature[n] at threshold[n], or is a leaf (feature -1)."""

    feature: np.ndarray
    threshold: np.ndarray
    left: np.ndarray
    right: np.ndarray
    value: np.ndarray

    def predict(self, x: np.ndarray) -> np.ndarray:
        node = np.zeros(len(x), dtype=int)
        active = self.feature[node] >= 0
        while active.any():
            idx = np.nonzero(active)[0]
            n = node[idx]
            go_left = x[idx, self.feature[n]] <= self.threshold[n]
            node[idx] = np.where(go_left, self.left[n], self.right[n])
            active = self.feature[node] >= 0
        return self.value[node]


@dataclass(frozen=True)
class Forest:
    trees: tuple[Tree, ...]

    @classmethod
    def fit(cls, x: np.ndarray, y: np.ndarray, rng: np.random.Generator, trees: int = TREES) -> Forest:
        tries = max(1, math.ceil(x.shape[1] * 0.7))
        built = []
        for _ in range(trees):
            sample = rng.integers(0, len(x), len(x))
            built.append(_grow(x[sample], y[sample], rng, tries))
        return cls(tuple(built))

    def predict(self, x: np.ndarray) -> np.ndarray:
        mean: np.ndarray = np.mean([t.predict(x) for t in self.trees], axis=0)
        return mean


def _grow(x: np.ndarray, y: np.ndarray, rng: np.random.Generator, tries: int) -> Tree:
    feature: list[int] = []
    threshold: list[float] = []
    left: list[int] = []
    right: list[int] = []
    value: list[float] = []

    def node(rows: np.ndarray, depth: int) -> int:
        index = len(feature)
        feature.append(-1)
        threshold.append(0.0)
        left.append(-1)
        right.append(-1)
        value.append(float(y[rows].mean()))
        if depth >= MAX_DEPTH or len(rows) < 2 * MIN_LEAF or np.ptp(y[rows]) == 0.0:
            return index
        split = _best_split(x[rows], y[rows], rng.choice(x.shape[1], tries, replace=False))
        if split is None:
            return index
        f, t = split
        mask = x[rows, f] <= t
        feature[index], threshold[index] = f, t
        left[index] = node(rows[mask], depth + 1)
        right[index] = node(rows[~mask], depth + 1)
        return index

    node(np.arange(len(x)), 0)
    return Tree(np.array(feature), np.array(threshold), np.array(left), np.array(right), np.array(value))


def _best_split(x: np.ndarray, y: np.ndarray, features: np.ndarray) -> tuple[int, float] | None:
    """The (feature, threshold) that most reduces the squared error, each side keeping MIN_LEAF rows."""
    best: tuple[float, int, float] | None = None
    n = len(y)
    for f in features:
        order = np.argsort(x[:, f], kind="stable")
        xs, ys = x[order, f], y[order]
        csum, csq = np.cumsum(ys), np.cumsum(ys * ys)
        k = np.arange(MIN_LEAF, n - MIN_LEAF + 1)  # rows on the left
        valid = xs[k - 1] < xs[np.minimum(k, n - 1)]
        if not valid.any():
            continue
        k = k[valid]
        left_sse = csq[k - 1] - csum[k - 1] ** 2 / k
        right_sum, right_sq = csum[-1] - csum[k - 1], csq[-1] - csq[k - 1]
        right_sse = right_sq - right_sum**2 / (n - k)
        sse = left_sse + right_sse
        j = int(np.argmin(sse))
        if best is None or sse[j] < best[0]:
            best = (float(sse[j]), int(f), float((xs[k[j] - 1] + xs[k[j]]) / 2.0))
    return None if best is None else (best[1], best[2])
