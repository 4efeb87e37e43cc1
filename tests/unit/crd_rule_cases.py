"""One spec breaking each CEL rule of the models, shared by the unit test (pydantic refuses it)
and the cluster test (the API server refuses it), so both are held to the same field."""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


def valid_spec() -> dict[str, Any]:
    """A spec every rule accepts; each case breaks exactly one rule of it."""
    return {
        "strategy": "Random",
        "objective": {"metricName": "val_accuracy", "type": "Maximize"},
        "resourceLimits": {"maxNumberOfTrainingJobs": 4},
        "parameterRanges": {
            "integerParameterRanges": [{"name": "hidden_units", "minValue": 8, "maxValue": 128}],
            "continuousParameterRanges": [{"name": "learning_rate", "minValue": 0.001, "maxValue": 1.0}],
            "categoricalParameterRanges": [{"name": "activation", "values": ["relu", "tanh"]}],
        },
        "metricDefinitions": [{"name": "val_accuracy", "regex": "val_accuracy=([0-9.]+)"}],
        "trainingJobEarlyStoppingType": "Off",
        "trialTemplate": {
            "spec": {
                "template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "train", "image": "busybox"}]}}
            }
        },
    }


@dataclass(frozen=True)
class Case:
    rule: str
    """Model.ruleId, as crd_rule_keys() names it."""
    change: Callable[[dict[str, Any]], None]
    path: str
    """Where the API server reports it (kubetune validate adds the parameter's name after an index)."""
    says: str
    """Part of the message both give."""

    def spec(self) -> dict[str, Any]:
        spec = copy.deepcopy(valid_spec())
        self.change(spec)
        return spec


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def change(spec: dict[str, Any]) -> None:
        node: Any = spec
        parts = [int(p) if p.isdigit() else p for p in path.split(".")]
        for part in parts[:-1]:
            node = node[part]
        if value is _DELETE:
            del node[parts[-1]]
        else:
            node[parts[-1]] = value

    return change


_DELETE = object()
_RANGES = "parameterRanges"
_INT = f"{_RANGES}.integerParameterRanges.0"
_CONT = f"{_RANGES}.continuousParameterRanges.0"


def _many(spec: dict[str, Any]) -> None:
    spec[_RANGES] = {
        "integerParameterRanges": [{"name": f"i{n}", "minValue": 1, "maxValue": 9} for n in range(16)],
        "continuousParameterRanges": [{"name": f"c{n}", "minValue": 0.1, "maxValue": 0.9} for n in range(15)],
    }


def _hyperband(config: dict[str, Any], early_stopping: str = "Off") -> Callable[[dict[str, Any]], None]:
    def change(spec: dict[str, Any]) -> None:
        spec["strategy"] = "Hyperband"
        spec["strategyConfig"] = {"hyperbandStrategyConfig": config}
        spec["trainingJobEarlyStoppingType"] = early_stopping

    return change


def _also(*changes: Callable[[dict[str, Any]], None]) -> Callable[[dict[str, Any]], None]:
    def change(spec: dict[str, Any]) -> None:
        for c in changes:
            c(spec)

    return change


CASES = [
    Case(
        "IntegerParameterRange.name-pattern",
        _set(f"{_INT}.name", "9lives"),
        "spec.parameterRanges.integerParameterRanges[0].name",
        "is not a valid hyperparameter name",
    ),
    Case(
        "IntegerParameterRange.min-below-max",
        _set(f"{_INT}.minValue", 500),
        "spec.parameterRanges.integerParameterRanges[0]",
        "must be less than maxValue",
    ),
    Case(
        "IntegerParameterRange.logarithmic-positive",
        _also(_set(f"{_INT}.minValue", 0), _set(f"{_INT}.scalingType", "Logarithmic")),
        "spec.parameterRanges.integerParameterRanges[0]",
        "Logarithmic scaling needs minValue > 0",
    ),
    Case(
        "IntegerParameterRange.integer-not-reverse-logarithmic",
        _set(f"{_INT}.scalingType", "ReverseLogarithmic"),
        "spec.parameterRanges.integerParameterRanges[0].scalingType",
        "only valid for continuous ranges",
    ),
    Case(
        "ContinuousParameterRange.name-pattern",
        _set(f"{_CONT}.name", "learning rate"),
        "spec.parameterRanges.continuousParameterRanges[0].name",
        "is not a valid hyperparameter name",
    ),
    Case(
        "ContinuousParameterRange.min-below-max",
        _set(f"{_CONT}.maxValue", 0.0001),
        "spec.parameterRanges.continuousParameterRanges[0]",
        "must be less than maxValue",
    ),
    Case(
        "ContinuousParameterRange.logarithmic-positive",
        _also(_set(f"{_CONT}.minValue", 0.0), _set(f"{_CONT}.scalingType", "Logarithmic")),
        "spec.parameterRanges.continuousParameterRanges[0]",
        "Logarithmic scaling needs minValue > 0",
    ),
    Case(
        "ContinuousParameterRange.reverse-logarithmic-bounds",
        _also(_set(f"{_CONT}.maxValue", 1.5), _set(f"{_CONT}.scalingType", "ReverseLogarithmic")),
        "spec.parameterRanges.continuousParameterRanges[0]",
        "ReverseLogarithmic scaling needs 0 <= minValue and maxValue < 1",
    ),
    Case(
        "CategoricalParameterRange.name-pattern",
        _set(f"{_RANGES}.categoricalParameterRanges.0.name", "-act"),
        "spec.parameterRanges.categoricalParameterRanges[0].name",
        "is not a valid hyperparameter name",
    ),
    Case(
        "ParameterRanges.at-least-one-range", _set(_RANGES, {}), "spec.parameterRanges", "at least one parameter range"
    ),
    Case("ParameterRanges.at-most-30-parameters", _many, "spec.parameterRanges", "at most 30 tunable hyperparameters"),
    Case(
        "ParameterRanges.unique-parameter-names",
        _set(f"{_CONT}.name", "hidden_units"),
        "spec.parameterRanges",
        "hyperparameter names must be unique",
    ),
    Case(
        "HyperbandStrategyConfig.min-resource-below-max",
        _hyperband({"minResource": 9, "maxResource": 3}),
        "spec.strategyConfig.hyperbandStrategyConfig.minResource",
        "must be less than maxResource",
    ),
    Case(
        "HyperParameterTuningJobSpec.unique-metric-names",
        _set("metricDefinitions", [{"name": "loss", "regex": "loss=(.*)"}, {"name": "loss", "regex": "l=(.*)"}]),
        "spec.metricDefinitions",
        "names must be unique",
    ),
    Case(
        "HyperParameterTuningJobSpec.hyperband-without-auto",
        _hyperband({"maxResource": 9}, early_stopping="Auto"),
        "spec.trainingJobEarlyStoppingType",
        "must be Off with the Hyperband strategy",
    ),
    Case(
        "HyperParameterTuningJobSpec.hyperband-config-only-with-hyperband",
        _set("strategyConfig", {"hyperbandStrategyConfig": {"eta": 3}}),
        "spec.strategyConfig.hyperbandStrategyConfig",
        "is only valid with the Hyperband strategy",
    ),
    Case(
        "HyperParameterTuningJobSpec.grid-without-continuous",
        _also(_set("strategy", "Grid"), _set("resourceLimits", {})),
        "spec.parameterRanges.continuousParameterRanges",
        "the Grid strategy cannot enumerate continuous hyperparameters",
    ),
    Case(
        "HyperParameterTuningJobSpec.budget-required",
        _set("resourceLimits.maxNumberOfTrainingJobs", _DELETE),
        "spec.resourceLimits.maxNumberOfTrainingJobs",
        "is required",
    ),
    Case(
        "TrialTemplate.primary-replicated-job",
        _set("trialTemplate.primaryReplicatedJob", "workers"),
        "spec.trialTemplate.primaryReplicatedJob",
        "with kind JobSet",
    ),
]
