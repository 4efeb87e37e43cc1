"""Real tuning-job results for the tests of tables, exports and reports.

`run_hyperband` runs a real `kubetune run` (subprocess trials reporting through
kubetune.report()), so the result file has Completed, Stopped (at a Hyperband
rung) and Failed trials exactly as users get them. `many_trials` drives the real
Tuner through thousands of trials in-process, for the scale tests.
"""

from __future__ import annotations

import json
import math
import random
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import yaml

from kubetune.engine import Tuner

TRAIN = """
import json, os, sys, time
import kubetune
hp = json.loads(os.environ["KUBETUNE_HYPERPARAMETERS"])
lr, width, act = float(os.environ["HP_LR"]), int(os.environ["HP_WIDTH"]), os.environ["HP_ACT"]
if width % 4 == 1:
    print(f"width {width} is unlucky", file=sys.stderr)
    sys.exit(3)
best = 1.0 - abs(__import__("math").log10(lr) + 2.0) / 4.0 - abs(width - 20) / 100.0 + (0.05 if act == "tanh" else 0.0)
for epoch in range(1, int(os.environ["HP_EPOCHS"]) + 1):
    time.sleep(0.02)
    kubetune.report(score=best * (1.0 - 0.5 ** epoch), step=epoch)
"""


def hyperband_spec(trials: int = 14) -> dict[str, Any]:
    return {
        "strategy": "Hyperband",
        "strategyConfig": {"hyperbandStrategyConfig": {"minResource": 1, "eta": 3}},
        "randomSeed": 5,
        "objective": {"metricName": "score", "type": "Maximize"},
        "resourceLimits": {
            "maxNumberOfTrainingJobs": trials,
            "maxParallelTrainingJobs": 3,
            "maxFailedTrainingJobs": trials,
        },
        "parameterRanges": {
            "continuousParameterRanges": [
                {"name": "lr", "minValue": 1e-4, "maxValue": 1.0, "scalingType": "Logarithmic"}
            ],
            "integerParameterRanges": [{"name": "width", "minValue": 4, "maxValue": 40}],
            "categoricalParameterRanges": [{"name": "act", "values": ["relu", "tanh"]}],
        },
        "staticHyperParameters": {"epochs": 9},
        "trialTemplate": {
            "spec": {"template": {"spec": {"containers": [{"name": "main", "command": ["python", "train.py"]}]}}}
        },
    }


def run_hyperband(directory: Path, trials: int = 14) -> Path:
    """A real `kubetune run`; returns its result file."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "train.py").write_text(textwrap.dedent(TRAIN))
    resource = {
        "apiVersion": "kubetune.io/v1alpha1",
        "kind": "HyperParameterTuningJob",
        "metadata": {"name": "hb"},
        "spec": hyperband_spec(trials),
    }
    (directory / "hb.yaml").write_text(yaml.safe_dump(resource))
    result = directory / "result.json"
    done = subprocess.run(
        [sys.executable, "-m", "kubetune.cli", "run", "hb.yaml", "-o", str(result), "--progress", "lines"],
        cwd=directory,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode in (0, 1), done.stderr
    return result


def many_trials(count: int, path: Path, seed: int = 1) -> Path:
    """A result file of `count` trials from the real Tuner (Random, Auto early stopping), in kubetune run's format."""
    spec = hyperband_spec(count)
    spec.update(strategy="Random", strategyConfig=None, trainingJobEarlyStoppingType="Auto")
    spec["resourceLimits"]["maxParallelTrainingJobs"] = 8
    spec = {k: v for k, v in spec.items() if v is not None}
    tuner = Tuner(spec)
    rng = random.Random(seed)
    clock = time.time() - count
    extra: dict[str, dict[str, Any]] = {}
    while not tuner.is_complete:
        for trial in tuner.ask(8):
            extra[trial.id] = {"name": f"many-{trial.number:05d}", "startedAt": clock}
            quality = 1.0 - abs(math.log10(float(trial.tuned["lr"])) + 2.0) / 4.0 + rng.gauss(0, 0.05)
            stopped = False
            for epoch in range(1, 10):
                if tuner.report(trial.id, epoch, quality * (1.0 - 0.5**epoch)):
                    stopped = True
                    break
            if int(trial.tuned["width"]) % 4 == 1:
                tuner.fail(trial.id, f"exit code 3: width {trial.tuned['width']} is unlucky")
            elif not stopped:
                tuner.tell(trial.id, quality * (1.0 - 0.5**9))
            clock += 1.0
            extra[trial.id]["endedAt"] = clock
    best = tuner.best
    document = {
        "tuningJob": "many",
        "status": tuner.completion.outcome.value if tuner.completion else "Stopped",
        "completionReason": tuner.completion_reason,
        "message": "",
        "objective": spec["objective"],
        "spec": tuner.spec.to_wire(),
        "best": None if best is None else {"trial": best.id, "objective": best.value},
        "trials": [
            {
                "id": r.trial.id,
                "hyperparameters": dict(r.trial.hyperparameters),
                "status": r.status.value,
                "objective": r.value,
                "reason": r.reason or None,
                **extra[r.trial.id],
            }
            for r in tuner.trials
        ],
        "history": tuner.history(),
    }
    path.write_text(json.dumps(document))
    return path
