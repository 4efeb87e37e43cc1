"""Multi-fidelity problems: a learning curve per configuration, one value per epoch, maximised.

digits-sgd   A real one: scikit-learn's SGDClassifier on the digits dataset,
             trained epoch by epoch with partial_fit, validation accuracy after
             each epoch. The space is a grid of 648 configurations whose curves
             are computed once (a few minutes) and cached under
             ~/.cache/kubetune/bench, so every method reads the same curves and a
             run costs table look-ups, not training.
synthetic    Curves with a known optimum (accuracy 0.95 at a known point):
             acc(x, t) = final(x) - a(x)·t^-b(x) + noise. Fast learners (high
             lr) look best early but end worse, so low rungs mislead as they
             do in practice.

Both are written in a library-neutral form (`Param`) so kubetune and Optuna
search exactly the same space.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

CACHE = Path.home() / ".cache" / "kubetune" / "bench"


@dataclass(frozen=True)
class Param:
    name: str
    kind: str  # "int" (an index into a list of levels) or "float"
    low: float
    high: float
    log: bool = False


@dataclass(frozen=True)
class Problem:
    name: str
    params: tuple[Param, ...]
    max_epochs: int
    curve: Callable[[Mapping[str, Any]], np.ndarray]
    """The validation accuracy after each epoch, 1..max_epochs."""
    optimum: float | None
    """The best final accuracy any configuration reaches, when known."""

    def parameter_ranges(self) -> dict[str, Any]:
        """The space as kubetune's spec writes it."""
        ints = [
            {"name": p.name, "minValue": int(p.low), "maxValue": int(p.high), "scalingType": "Linear"}
            for p in self.params
            if p.kind == "int"
        ]
        floats = [
            {
                "name": p.name,
                "minValue": p.low,
                "maxValue": p.high,
                "scalingType": "Logarithmic" if p.log else "Linear",
            }
            for p in self.params
            if p.kind == "float"
        ]
        ranges: dict[str, Any] = {}
        if ints:
            ranges["integerParameterRanges"] = ints
        if floats:
            ranges["continuousParameterRanges"] = floats
        return ranges

    def suggest_optuna(self, trial: Any) -> dict[str, Any]:
        return {
            p.name: trial.suggest_int(p.name, int(p.low), int(p.high))
            if p.kind == "int"
            else trial.suggest_float(p.name, p.low, p.high, log=p.log)
            for p in self.params
        }


# -- digits, SGDClassifier ------------------------------------------------------------------

SGD_LEVELS: dict[str, list[Any]] = {
    "alpha": [1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1],
    "eta0": [1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0],
    "learning_rate": ["constant", "optimal", "invscaling"],
    "loss": ["hinge", "log_loss", "modified_huber"],
    "penalty": ["l2", "elasticnet"],
}
SGD_EPOCHS = 81


def _digits_table() -> np.ndarray:
    """Accuracy curves of every grid point, shape (alpha, eta0, learning_rate, loss, penalty, epoch)."""
    key = hashlib.sha256(json.dumps([SGD_LEVELS, SGD_EPOCHS]).encode()).hexdigest()[:12]
    path = CACHE / f"digits-sgd-{key}.npy"
    if path.exists():
        return np.load(path)
    from sklearn.datasets import load_digits
    from sklearn.linear_model import SGDClassifier
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler

    x, y = load_digits(return_X_y=True)
    x_train, x_valid, y_train, y_valid = train_test_split(x, y, test_size=0.33, random_state=0, stratify=y)
    scaler = StandardScaler().fit(x_train)
    x_train, x_valid = scaler.transform(x_train), scaler.transform(x_valid)
    shape = [len(v) for v in SGD_LEVELS.values()]
    table = np.zeros((*shape, SGD_EPOCHS))
    for index in itertools.product(*(range(n) for n in shape)):
        settings = {name: SGD_LEVELS[name][i] for name, i in zip(SGD_LEVELS, index, strict=True)}
        model = SGDClassifier(random_state=0, **settings)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for epoch in range(SGD_EPOCHS):
                model.partial_fit(x_train, y_train, classes=np.arange(10))
                table[(*index, epoch)] = model.score(x_valid, y_valid)
    CACHE.mkdir(parents=True, exist_ok=True)
    np.save(path, table)
    return table


def digits_sgd() -> Problem:
    table = _digits_table()
    params = tuple(Param(name, "int", 0, len(levels) - 1) for name, levels in SGD_LEVELS.items())

    def curve(config: Mapping[str, Any]) -> np.ndarray:
        return table[tuple(int(config[p.name]) for p in params)]  # type: ignore[no-any-return]

    return Problem("digits-sgd", params, SGD_EPOCHS, curve, optimum=float(table[..., -1].max()))


# -- synthetic curves --------------------------------------------------------------------------

SYNTHETIC_OPTIMUM = 0.95
"""The accuracy the best configuration tends to; after 81 epochs it is 0.003 short of it."""
SYNTHETIC_BEST = {"lr": 0.03, "width": 0.7, "reg": 0.2, "momentum": 0.5}
SYNTHETIC_EPOCHS = 81


def _synthetic_mean(config: Mapping[str, Any]) -> np.ndarray:
    lr = math.log10(float(config["lr"]) / 1e-4) / 4.0  # 1e-4..1 onto 0..1
    best_lr = math.log10(SYNTHETIC_BEST["lr"] / 1e-4) / 4.0
    width, reg, momentum = float(config["width"]), float(config["reg"]), float(config["momentum"])
    gap = 4 * (lr - best_lr) ** 2 + 2 * (width - 0.7) ** 2 + 3 * (reg - 0.2) ** 2 + (momentum - 0.5) ** 2
    final = SYNTHETIC_OPTIMUM - 0.6 * gap
    scale = 0.5 + 0.3 * width  # wider starts further away
    speed = 0.3 + 1.5 * lr  # higher learning rates converge sooner
    epochs = np.arange(1, SYNTHETIC_EPOCHS + 1)
    return final - scale * epochs ** (-speed)  # type: ignore[no-any-return]


def _synthetic_curve(config: Mapping[str, Any]) -> np.ndarray:
    """The mean curve plus noise that is a function of the configuration, so every method sees the same."""
    key = json.dumps({k: round(float(v), 12) for k, v in sorted(config.items())}).encode()
    rng = np.random.default_rng(int.from_bytes(hashlib.sha256(key).digest()[:8], "little"))
    return _synthetic_mean(config) + rng.normal(0.0, 0.003, SYNTHETIC_EPOCHS)  # type: ignore[no-any-return]


def synthetic() -> Problem:
    params = (
        Param("lr", "float", 1e-4, 1.0, log=True),
        Param("width", "float", 0.0, 1.0),
        Param("reg", "float", 0.0, 1.0),
        Param("momentum", "float", 0.0, 1.0),
    )
    optimum = float(_synthetic_mean(SYNTHETIC_BEST)[-1])  # within 1e-4 of the true maximum at 81 epochs
    return Problem("synthetic", params, SYNTHETIC_EPOCHS, _synthetic_curve, optimum=optimum)


PROBLEMS: dict[str, Callable[[], Problem]] = {"digits-sgd": digits_sgd, "synthetic": synthetic}
