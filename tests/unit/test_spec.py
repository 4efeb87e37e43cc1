"""Spec validation: valid specs parse with defaults; each invalid one names its field."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from kubetune import SpecError, Tuner
from kubetune.api.spec import EarlyStoppingType, Strategy, parse_spec

from .conftest import BASE_SPEC


def edited(path: str, value: Any) -> dict[str, Any]:
    """BASE_SPEC with the value at a dotted path (list indices as numbers) replaced; None deletes."""
    spec = copy.deepcopy(BASE_SPEC)
    *parents, last = [int(p) if p.isdigit() else p for p in path.split(".")]
    node: Any = spec
    for key in parents:
        node = node[key]
    if value is None:
        del node[last]
    else:
        node[last] = value
    return spec


def test_valid_spec_has_defaults() -> None:
    spec = parse_spec(copy.deepcopy(BASE_SPEC))
    assert spec.strategy is Strategy.RANDOM
    assert spec.training_job_early_stopping_type is EarlyStoppingType.OFF
    assert spec.primary_container["name"] == "train"
    assert spec.to_wire()["objective"] == {"metricName": "loss", "type": "Minimize"}


INVALID = [
    ("objective", None, "spec.objective", "Field required"),
    ("objective.type", "Bigger", "spec.objective.type", "Maximize"),
    ("strategy", "Genetic", "spec.strategy", "Grid"),
    (
        "parameterRanges.integerParameterRanges.0.minValue",
        9,
        "spec.parameterRanges.integerParameterRanges[0] (layers)",
        "less than",
    ),
    (
        "parameterRanges.continuousParameterRanges.0.minValue",
        0.0,
        "spec.parameterRanges.continuousParameterRanges[0] (lr)",
        "Logarithmic scaling needs minValue > 0",
    ),
    (
        "parameterRanges.continuousParameterRanges.1.maxValue",
        0.0,
        "spec.parameterRanges.continuousParameterRanges[1] (dropout)",
        "must be less than maxValue",
    ),
    (
        "parameterRanges.integerParameterRanges.0.scalingType",
        "ReverseLogarithmic",
        "spec.parameterRanges.integerParameterRanges[0] (layers).scalingType",
        "only valid for continuous",
    ),
    (
        "parameterRanges.categoricalParameterRanges.0.values",
        [],
        "spec.parameterRanges.categoricalParameterRanges[0] (optimizer).values",
        "at least 1",
    ),
    (
        "parameterRanges.categoricalParameterRanges.0.values",
        ["a", "a"],
        "spec.parameterRanges.categoricalParameterRanges[0] (optimizer).values",
        "distinct",
    ),
    ("parameterRanges.categoricalParameterRanges.0.name", "lr", "spec.parameterRanges", "unique; repeated: lr"),
    (
        "parameterRanges.integerParameterRanges.0.name",
        "9lives",
        "spec.parameterRanges.integerParameterRanges[0] (9lives).name",
        "not a valid",
    ),
    (
        "resourceLimits.maxParallelTrainingJobs",
        0,
        "spec.resourceLimits.maxParallelTrainingJobs",
        "greater than or equal to 1",
    ),
    (
        "resourceLimits.maxNumberOfTrainingJobs",
        -3,
        "spec.resourceLimits.maxNumberOfTrainingJobs",
        "greater than or equal",
    ),
    ("trainingJobEarlyStoppingType", "Sometimes", "spec.trainingJobEarlyStoppingType", "Off"),
    (
        "metricDefinitions",
        [{"name": "loss", "regex": "loss=("}],
        "spec.metricDefinitions[0] (loss).regex",
        "does not compile",
    ),
    (
        "metricDefinitions",
        [{"name": "loss", "regex": "loss=\\d+"}],
        "spec.metricDefinitions[0] (loss).regex",
        "capture group",
    ),
    ("staticHyperParameters", {"lr": 0.1}, "spec.staticHyperParameters", "repeats tuned hyperparameters: lr"),
    ("staticHyperParameters", {"LR": 0.1}, "spec.staticHyperParameters", "share the environment variable HP_LR"),
    ("trialTemplate.spec.template.spec.containers", [], "spec.trialTemplate", "at least one container"),
    ("trialTemplate.spec", None, "spec.trialTemplate.spec", "Field required"),
    ("trialTemplate.metadata", {"namespace": "kube-system"}, "spec.trialTemplate", "metadata.namespace must not"),
    (
        "trialTemplate.spec.template.spec.containers.0.resources",
        {"limits": {"memory": "lots"}},
        "spec.trialTemplate",
        "spec.template.spec.containers[0].resources.limits.memory: 'lots' is not a Kubernetes quantity",
    ),
    (
        "trialTemplate.metadata",
        {"ownerReferences": [{"apiVersion": "v1", "kind": "ConfigMap", "name": "x", "uid": "1"}]},
        "spec.trialTemplate",
        "metadata.ownerReferences must not",
    ),
    (
        "trialTemplate.spec.template.metadata",
        {"namespace": "kube-system"},
        "spec.trialTemplate",
        "spec.template.metadata.namespace must not",
    ),
    (
        "trialTemplate.spec.template.metadata",
        {"ownerReferences": []},
        "spec.trialTemplate",
        "spec.template.metadata.ownerReferences must not",
    ),
    ("primaryContainerName", "sidecar", "spec.primaryContainerName", "not a container"),
    ("randomSeed", -1, "spec.randomSeed", "greater than or equal to 0"),
    ("unknownField", 1, "spec.unknownField", "unknown field"),
    (
        "tuningJobCompletionCriteria",
        {"bestObjectiveNotImproving": {"maxNumberOfTrainingJobsNotImproving": 2}},
        "spec.tuningJobCompletionCriteria.bestObjectiveNotImproving.maxNumberOfTrainingJobsNotImproving",
        "greater than or equal to 3",
    ),
    (
        "tuningJobCompletionCriteria",
        {"convergenceDetected": {"completeOnConvergence": "Maybe"}},
        "spec.tuningJobCompletionCriteria.convergenceDetected.completeOnConvergence",
        "Enabled",
    ),
]


@pytest.mark.parametrize(("path", "value", "field", "words"), INVALID)
def test_invalid_spec_names_its_field(path: str, value: Any, field: str, words: str) -> None:
    with pytest.raises(SpecError) as info:
        parse_spec(edited(path, value))
    assert info.value.field == field, str(info.value)
    assert words in str(info.value)


def test_reverse_log_accepted_within_zero_one() -> None:
    parse_spec(edited("parameterRanges.continuousParameterRanges.1.scalingType", "ReverseLogarithmic"))


def test_too_many_parameters() -> None:
    spec = copy.deepcopy(BASE_SPEC)
    spec["parameterRanges"]["integerParameterRanges"] = [
        {"name": f"p{i}", "minValue": 0, "maxValue": 3} for i in range(28)
    ]
    with pytest.raises(SpecError) as info:
        parse_spec(spec)
    assert "at most 30" in str(info.value) and info.value.field == "spec.parameterRanges"


def test_no_ranges() -> None:
    with pytest.raises(SpecError, match="at least one parameter range") as info:
        parse_spec(edited("parameterRanges", {}))
    assert info.value.field == "spec.parameterRanges"


def test_hyperband_with_auto_early_stopping_is_refused() -> None:
    spec = edited("strategy", "Hyperband")
    spec["trainingJobEarlyStoppingType"] = "Auto"
    with pytest.raises(SpecError, match="must be Off with the Hyperband strategy"):
        parse_spec(spec)


def test_budget_required_except_grid() -> None:
    with pytest.raises(SpecError) as info:
        Tuner(edited("resourceLimits.maxNumberOfTrainingJobs", None))
    assert info.value.field == "spec.resourceLimits.maxNumberOfTrainingJobs"


def test_non_mapping_spec() -> None:
    with pytest.raises(SpecError, match="must be a mapping"):
        parse_spec("strategy: Random")  # type: ignore[arg-type]


# -- every problem at once, named --------------------------------------------------------


def test_every_problem_is_reported_at_once_with_the_parameters_name() -> None:
    spec = edited("parameterRanges.continuousParameterRanges.0.minValue", 0.0)  # lr is Logarithmic
    spec["parameterRanges"]["integerParameterRanges"][0].update(minValue=9)  # layers: 9 > 8
    spec["objective"]["metricNmae"] = spec["objective"].pop("metricName")
    spec["trainingJobEarlyStoppingType"] = False  # what YAML makes of an unquoted Off
    with pytest.raises(SpecError) as info:
        parse_spec(spec)
    problems = dict(info.value.problems)
    assert problems == {
        "spec.parameterRanges.integerParameterRanges[0] (layers)": "minValue (9) must be less than maxValue (8)",
        "spec.parameterRanges.continuousParameterRanges[0] (lr)": "Logarithmic scaling needs minValue > 0",
        "spec.objective.metricName": "Field required",
        "spec.objective.metricNmae": "unknown field; did you mean metricName?",
        "spec.trainingJobEarlyStoppingType": 'write "Off" in quotes: unquoted Off is YAML for false',
    }
    text = str(info.value)
    assert "more problem" not in text
    assert text == "; ".join(f"{path}: {message}" for path, message in info.value.problems)
    assert f"{info.value.field}: {info.value.message}" == text


def test_all_broken_rules_of_one_object_are_reported() -> None:
    spec = edited("parameterRanges.continuousParameterRanges.0", {"name": "lr", "minValue": 0.0, "maxValue": 0.0})
    spec["parameterRanges"]["continuousParameterRanges"][0]["scalingType"] = "Logarithmic"
    with pytest.raises(SpecError) as info:
        parse_spec(spec)
    messages = [m for p, m in info.value.problems if p == "spec.parameterRanges.continuousParameterRanges[0] (lr)"]
    assert messages == ["minValue (0.0) must be less than maxValue (0.0)", "Logarithmic scaling needs minValue > 0"]


@pytest.mark.parametrize(
    ("path", "value", "hint"),
    [
        ("trainingJobEarlyStoppingType", False, 'write "Off" in quotes: unquoted Off is YAML for false'),
        ("trainingJobEarlyStoppingType", True, 'write "Off" or "Auto" in quotes'),
        ("strategy", True, 'write "Grid" or "Random" or "Bayesian" or "Hyperband" in quotes'),
    ],
)
def test_a_yaml_boolean_where_a_word_is_expected_says_to_quote_it(path: str, value: bool, hint: str) -> None:
    with pytest.raises(SpecError) as info:
        parse_spec(edited(path, value))
    assert info.value.field == f"spec.{path}" and hint in info.value.message


def test_a_bad_categorical_value_is_one_problem_not_one_per_type() -> None:
    with pytest.raises(SpecError) as info:
        parse_spec(edited("parameterRanges.categoricalParameterRanges.0.values", ["sgd", {"lr": 1}]))
    assert info.value.problems == [
        (
            "spec.parameterRanges.categoricalParameterRanges[0] (optimizer).values[1]",
            "must be a string, a number or a boolean",
        )
    ]


def test_a_static_hyperparameters_path_keeps_its_name_as_written() -> None:
    with pytest.raises(SpecError) as info:
        parse_spec(edited("staticHyperParameters", {"num_layers": [1, 2]}))
    assert info.value.field == "spec.staticHyperParameters.num_layers"


def test_spec_error_keeps_its_one_problem_form() -> None:
    error = SpecError("spec.trialTemplate", "the API server refuses the trial Job")
    assert (error.field, error.message) == ("spec.trialTemplate", "the API server refuses the trial Job")
    assert error.problems == [("spec.trialTemplate", "the API server refuses the trial Job")]
    assert str(error) == "spec.trialTemplate: the API server refuses the trial Job"
    several = SpecError.of([("spec.a", "x"), ("spec.b", "y")])
    assert (several.field, several.message, str(several)) == ("spec.a", "x; spec.b: y", "spec.a: x; spec.b: y")
    with pytest.raises(ValueError):
        SpecError.of([])


def test_grid_budget_and_continuous_ranges_are_refused_by_the_spec_itself() -> None:
    grid = {"integerParameterRanges": [{"name": "layers", "minValue": 1, "maxValue": 3}]}
    with pytest.raises(SpecError) as info:
        parse_spec({**edited("strategy", "Grid"), "parameterRanges": grid})
    assert info.value.problems == [
        (
            "spec.resourceLimits.maxNumberOfTrainingJobs",
            "must equal the number of grid points (3) with the Grid strategy, or be left out",
        )
    ]
    with pytest.raises(SpecError, match=r"cannot enumerate continuous hyperparameters \(lr, dropout\)"):
        parse_spec(edited("strategy", "Grid"))
