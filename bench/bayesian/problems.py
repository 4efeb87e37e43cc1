"""The benchmark's test functions, each with its search space in a library-neutral form.

Every function is minimised and has a known minimum, so simple regret is exact.
The noisy problem returns a noisy value to the optimiser, but its regret is
scored with the noise-free value of the point the optimiser would recommend
(its best observed point), which is what a user of the result gets.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Param:
    name: str
    kind: str  # "float" | "int" | "cat"
    low: float = 0.0
    high: float = 1.0
    log: bool = False
    choices: tuple[str, ...] = ()


@dataclass(frozen=True)
class Problem:
    name: str
    params: tuple[Param, ...]
    fn: Callable[[Mapping[str, Any]], float]
    minimum: float
    noise: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    def evaluate(self, config: Mapping[str, Any], rng: np.random.Generator) -> tuple[float, float]:
        """(value the optimiser sees, noise-free value)."""
        true = float(self.fn(config))
        seen = true + (float(rng.normal(0.0, self.noise)) if self.noise > 0 else 0.0)
        return seen, true


def _branin(c: Mapping[str, Any]) -> float:
    x1, x2 = float(c["x1"]), float(c["x2"])
    b, cc, r, s, t = 5.1 / (4 * math.pi**2), 5 / math.pi, 6.0, 10.0, 1 / (8 * math.pi)
    return (x2 - b * x1**2 + cc * x1 - r) ** 2 + s * (1 - t) * math.cos(x1) + s


_H6_A = np.array(
    [[10, 3, 17, 3.5, 1.7, 8], [0.05, 10, 17, 0.1, 8, 14], [3, 3.5, 1.7, 10, 17, 8], [17, 8, 0.05, 10, 0.1, 14]]
)
_H6_P = 1e-4 * np.array(
    [
        [1312, 1696, 5569, 124, 8283, 5886],
        [2329, 4135, 8307, 3736, 1004, 9991],
        [2348, 1451, 3522, 2883, 3047, 6650],
        [4047, 8828, 8732, 5743, 1091, 381],
    ]
)
_H6_ALPHA = np.array([1.0, 1.2, 3.0, 3.2])


def _hartmann6(c: Mapping[str, Any]) -> float:
    x = np.array([float(c[f"x{i}"]) for i in range(6)])
    return float(-np.sum(_H6_ALPHA * np.exp(-np.sum(_H6_A * (x - _H6_P) ** 2, axis=1))))


def _rosenbrock(c: Mapping[str, Any]) -> float:
    x = np.array([float(c[f"x{i}"]) for i in range(4)])
    return float(np.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2))


def _ackley(c: Mapping[str, Any]) -> float:
    x = np.array([float(c[f"x{i}"]) for i in range(5)])
    d = len(x)
    return float(
        -20 * math.exp(-0.2 * math.sqrt(np.sum(x**2) / d)) - math.exp(np.sum(np.cos(2 * math.pi * x)) / d) + 20 + math.e
    )


_MIXED_LR = {"sgd": 3e-2, "adam": 3e-3, "rmsprop": 1e-3, "adagrad": 1e-2}
_MIXED_OPT = {"sgd": 0.6, "adam": 0.0, "rmsprop": 0.2, "adagrad": 0.9}
_MIXED_ACT = {"relu": 0.0, "tanh": 0.3, "gelu": 0.1}


def _mixed(c: Mapping[str, Any]) -> float:
    """A stand-in for a network's validation loss: the best learning rate depends on the optimizer."""
    opt = str(c["optimizer"])
    lr = float(c["learning_rate"])
    value = (math.log10(lr) - math.log10(_MIXED_LR[opt])) ** 2 / 4
    value += 4 * (float(c["dropout"]) - 0.25) ** 2
    value += 0.1 * (int(c["layers"]) - 3) ** 2
    value += 0.05 * (math.log2(int(c["units"])) - 7) ** 2
    value += _MIXED_OPT[opt] + _MIXED_ACT[str(c["activation"])]
    return value


def _xs(c: Mapping[str, Any], d: int) -> np.ndarray:
    return np.array([float(c[f"x{i}"]) for i in range(d)])


def _rosenbrock_d(d: int) -> Callable[[Mapping[str, Any]], float]:
    def fn(c: Mapping[str, Any]) -> float:
        x = _xs(c, d)
        return float(np.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2))

    return fn


def _ackley_d(d: int) -> Callable[[Mapping[str, Any]], float]:
    def fn(c: Mapping[str, Any]) -> float:
        x = _xs(c, d)
        return float(
            -20 * math.exp(-0.2 * math.sqrt(np.sum(x**2) / d))
            - math.exp(np.sum(np.cos(2 * math.pi * x)) / d)
            + 20
            + math.e
        )

    return fn


def _levy_d(d: int) -> Callable[[Mapping[str, Any]], float]:
    """Levy on [-10, 10]^d, minimum 0 at (1, ..., 1)."""

    def fn(c: Mapping[str, Any]) -> float:
        w = 1 + (_xs(c, d) - 1) / 4
        value = math.sin(math.pi * w[0]) ** 2 + (w[-1] - 1) ** 2 * (1 + math.sin(2 * math.pi * w[-1]) ** 2)
        return float(value + np.sum((w[:-1] - 1) ** 2 * (1 + 10 * np.sin(math.pi * w[:-1] + 1) ** 2)))

    return fn


def _floats(names: list[str], low: float, high: float) -> tuple[Param, ...]:
    return tuple(Param(n, "float", low, high) for n in names)


PROBLEMS: dict[str, Problem] = {
    p.name: p
    for p in [
        Problem("branin", (Param("x1", "float", -5, 10), Param("x2", "float", 0, 15)), _branin, 0.397887357729738),
        Problem("hartmann6", _floats([f"x{i}" for i in range(6)], 0, 1), _hartmann6, -3.32236801141551),
        Problem("rosenbrock4", _floats([f"x{i}" for i in range(4)], -5, 10), _rosenbrock, 0.0),
        Problem("ackley5", _floats([f"x{i}" for i in range(5)], -32.768, 32.768), _ackley, 0.0),
        Problem(
            "mixed",
            (
                Param("learning_rate", "float", 1e-5, 1.0, log=True),
                Param("dropout", "float", 0.0, 0.8),
                Param("layers", "int", 1, 8),
                Param("units", "int", 16, 1024, log=True),
                Param("optimizer", "cat", choices=("sgd", "adam", "rmsprop", "adagrad")),
                Param("activation", "cat", choices=("relu", "tanh", "gelu")),
            ),
            _mixed,
            0.0,
        ),
        Problem("hartmann6-noisy", _floats([f"x{i}" for i in range(6)], 0, 1), _hartmann6, -3.32236801141551, 0.1),
    ]
}

SCALE_PROBLEMS: dict[str, Problem] = {
    p.name: p
    for p in [
        PROBLEMS["hartmann6"],
        Problem("ackley10", _floats([f"x{i}" for i in range(10)], -32.768, 32.768), _ackley_d(10), 0.0),
        Problem("levy20", _floats([f"x{i}" for i in range(20)], -10, 10), _levy_d(20), 0.0),
        Problem("rosenbrock30", _floats([f"x{i}" for i in range(30)], -5, 10), _rosenbrock_d(30), 0.0),
        Problem("ackley20", _floats([f"x{i}" for i in range(20)], -32.768, 32.768), _ackley_d(20), 0.0),
        Problem("levy30", _floats([f"x{i}" for i in range(30)], -10, 10), _levy_d(30), 0.0),
    ]
}
"""Issue 16's problems: the batch runs (Hartmann6, Ackley-10, Levy-20, Rosenbrock-30) and the 20/30-dimensional
sequential runs (Levy-20, Rosenbrock-30, Ackley-20, Levy-30). Kept apart from PROBLEMS so issue 5's tables are
unchanged."""
