"""Time one `ask(1)` of the Random strategy after N finished trials, against Optuna's RandomSampler.

Usage: python bench/ask_latency/run.py [--sizes 100 1000 10000] [--repeats 200]

What it shows: the cost of a suggestion must not grow with the number of
finished trials (a tuning job may run tens of thousands). Optuna, if installed,
is the peer, measured in the same run on the same machine.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from typing import Any

from kubetune import Tuner

SPEC: dict[str, Any] = {
    "strategy": "Random",
    "randomSeed": 1,
    "objective": {"metricName": "loss", "type": "Minimize"},
    "resourceLimits": {"maxNumberOfTrainingJobs": 1_000_000, "maxParallelTrainingJobs": 1},
    "parameterRanges": {
        "continuousParameterRanges": [
            {"name": "lr", "minValue": 1e-5, "maxValue": 1.0, "scalingType": "Logarithmic"},
            {"name": "dropout", "minValue": 0.0, "maxValue": 0.5},
        ],
        "integerParameterRanges": [{"name": "layers", "minValue": 1, "maxValue": 8}],
        "categoricalParameterRanges": [{"name": "opt", "values": ["sgd", "adam", "rmsprop"]}],
    },
    "trialTemplate": {"spec": {"template": {"spec": {"containers": [{"name": "t", "command": ["true"]}]}}}},
}


def kubetune_ask_seconds(finished: int, repeats: int) -> float:
    tuner = Tuner(SPEC)
    for i in range(finished):
        (trial,) = tuner.ask(1)
        tuner.tell(trial.id, float(i % 97))
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        (trial,) = tuner.ask(1)
        samples.append(time.perf_counter() - start)
        tuner.tell(trial.id, 1.0)
    return statistics.median(samples)


def optuna_ask_seconds(finished: int, repeats: int) -> float | None:
    try:
        import optuna
    except ImportError:
        return None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))

    def suggest(trial: Any) -> None:
        trial.suggest_float("lr", 1e-5, 1.0, log=True)
        trial.suggest_float("dropout", 0.0, 0.5)
        trial.suggest_int("layers", 1, 8)
        trial.suggest_categorical("opt", ["sgd", "adam", "rmsprop"])

    for i in range(finished):
        trial = study.ask()
        suggest(trial)
        study.tell(trial, float(i % 97))
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        trial = study.ask()
        suggest(trial)
        samples.append(time.perf_counter() - start)
        study.tell(trial, 1.0)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 1000, 10000])
    parser.add_argument("--repeats", type=int, default=200)
    args = parser.parse_args()
    print(f"machine: {platform.machine()} {platform.processor() or ''} python {platform.python_version()}")
    print(f"{'finished':>9} {'kubetune ask(1)':>16} {'optuna ask':>12} {'optuna/kubetune':>16}")
    for size in args.sizes:
        ours = kubetune_ask_seconds(size, args.repeats)
        peer = optuna_ask_seconds(size, args.repeats)
        ratio = f"{peer / ours:.1f}x" if peer else "n/a"
        peer_text = f"{peer * 1e6:.0f} us" if peer else "not installed"
        print(f"{size:>9} {ours * 1e6:>13.0f} us {peer_text:>12} {ratio:>16}")


if __name__ == "__main__":
    main()
