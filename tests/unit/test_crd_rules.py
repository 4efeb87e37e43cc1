"""Every rule across fields is one Rule: checked by pydantic, and by the API server wherever CEL can say it."""

from __future__ import annotations

import re
from typing import Any

import pytest

from kubetune.api.crd import cel_validations, crd, models_of
from kubetune.api.model import Model
from kubetune.api.rules import Rule
from kubetune.api.spec import HyperParameterTuningJobSpec, parse_spec
from kubetune.errors import SpecError
from tests.unit.crd_rule_cases import CASES, Case, valid_spec

MODELS = models_of(HyperParameterTuningJobSpec)


def rules() -> dict[str, Rule]:
    return {f"{m.__name__}.{r.id}": r for m in MODELS for r in getattr(m, "RULES", ())}


def validations_in(node: Any) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    if isinstance(node, dict):
        found.extend(node.get("x-kubernetes-validations", []))
        for value in node.values():
            found.extend(validations_in(value))
    elif isinstance(node, list):
        for value in node:
            found.extend(validations_in(value))
    return found


def test_models_check_nothing_outside_their_rules() -> None:
    # A validator of its own would be a rule the CRD and the registry never hear of.
    for model in MODELS:
        assert issubclass(model, Model), model
        validators = set(model.__pydantic_decorators__.model_validators)
        assert validators == {"_check_rules"}, f"{model.__name__} validates outside RULES: {validators}"
        assert not model.__pydantic_decorators__.field_validators, model.__name__


def test_every_rule_has_cel_or_says_why_not() -> None:
    assert len(rules()) >= 25
    for key, rule in rules().items():
        assert (rule.cel is None) != (rule.no_cel is None), key
        assert rule.message and "\n" not in rule.message, key


def test_every_cel_rule_is_in_the_crd_on_its_model() -> None:
    schema = crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    in_crd = validations_in(schema)
    expected = [v for m in MODELS for v in cel_validations(m)]
    assert sorted(map(repr, in_crd)) == sorted(map(repr, expected))
    assert {r.cel for r in rules().values() if r.cel} <= {v["rule"] for v in in_crd}


def test_rules_on_named_things_name_the_thing_in_the_api_servers_message() -> None:
    ranges = [m for m in MODELS if m.__name__.endswith("ParameterRange")]
    assert len(ranges) == 3
    for model in ranges:
        for validation in cel_validations(model):
            assert validation["messageExpression"].startswith("self.name + ': ' + ")


def test_lists_the_rules_walk_are_bounded() -> None:
    # Without maxItems the API server estimates the cost of a rule over a list from the
    # largest request it takes, and refuses the CRD.
    schema = crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    ranges = schema["properties"]["parameterRanges"]["properties"]
    for kind in ("integerParameterRanges", "continuousParameterRanges", "categoricalParameterRanges"):
        assert ranges[kind]["maxItems"] == 30
    assert schema["properties"]["metricDefinitions"]["maxItems"] == 40


def test_every_cel_rule_has_a_case_breaking_it() -> None:
    with_cel = {key for key, rule in rules().items() if rule.cel}
    assert {case.rule for case in CASES} == with_cel


def test_the_valid_spec_of_the_cases_is_valid() -> None:
    parse_spec(valid_spec())


@pytest.mark.parametrize("case", CASES, ids=[c.rule for c in CASES])
def test_pydantic_refuses_each_case_at_the_field_the_api_server_names(case: Case) -> None:
    with pytest.raises(SpecError) as caught:
        parse_spec(case.spec())
    unnamed = [(re.sub(r" \([^)]*\)", "", path), message) for path, message in caught.value.problems]
    assert any(path == case.path and case.says in message for path, message in unnamed), caught.value.problems
