"""Specs that unit tests vary (one valid baseline, edited per test), and a real result file to read back."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

BASE_SPEC: dict[str, Any] = {
    "strategy": "Random",
    "objective": {"metricName": "loss", "type": "Minimize"},
    "resourceLimits": {"maxNumberOfTrainingJobs": 20, "maxParallelTrainingJobs": 4},
    "parameterRanges": {
        "integerParameterRanges": [{"name": "layers", "minValue": 1, "maxValue": 8}],
        "continuousParameterRanges": [
            {"name": "lr", "minValue": 1e-5, "maxValue": 1.0, "scalingType": "Logarithmic"},
            {"name": "dropout", "minValue": 0.0, "maxValue": 0.5},
        ],
        "categoricalParameterRanges": [{"name": "optimizer", "values": ["sgd", "adam", 1, 2.5, True]}],
    },
    "randomSeed": 11,
    "staticHyperParameters": {"epochs": 5},
    "trialTemplate": {
        "spec": {
            "template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "train", "command": ["true"]}]}}
        }
    },
}


@pytest.fixture
def spec() -> dict[str, Any]:
    return copy.deepcopy(BASE_SPEC)


def make_spec(**changes: Any) -> dict[str, Any]:
    """The baseline spec with top-level fields replaced."""
    spec = copy.deepcopy(BASE_SPEC)
    spec.update(changes)
    return spec


@pytest.fixture(scope="session")
def hyperband_result(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One real `kubetune run` of a small Hyperband job, shared by the results tests."""
    from .results_data import run_hyperband

    return run_hyperband(tmp_path_factory.mktemp("hyperband"))
