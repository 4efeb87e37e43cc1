"""The API server refuses what the models' CEL rules refuse, naming the field, before any operator sees it.

Each case of tests/unit/crd_rule_cases.py breaks one rule; the unit tests hold
pydantic to refusing it at the same path, so `kubectl apply` and `kubetune
validate` agree on every rule that CEL expresses.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.cluster.kube import install_crd
from tests.unit.crd_rule_cases import CASES, Case, valid_spec

pytestmark = pytest.mark.cluster

CRD = Path(__file__).resolve().parents[2] / "crds" / "hyperparametertuningjobs.kubetune.io.yaml"


def resource(spec: dict[str, Any]) -> str:
    return json.dumps(
        {
            "apiVersion": "kubetune.io/v1alpha1",
            "kind": "HyperParameterTuningJob",
            "metadata": {"name": "rules"},
            "spec": spec,
        }
    )


@pytest.fixture(scope="module")
def crd_installed(cluster: Any) -> Any:
    # The API server compiles every rule and checks its cost estimate here: a rule it
    # cannot compile or afford fails the whole CRD, and this fixture with it.
    install_crd(cluster, str(CRD), "hyperparametertuningjobs.kubetune.io")
    return cluster


def test_the_valid_spec_is_accepted(crd_installed: Any, namespace: str) -> None:
    crd_installed.kubectl("-n", namespace, "apply", "--dry-run=server", "-f", "-", input=resource(valid_spec()))


@pytest.mark.parametrize("case", CASES, ids=[c.rule for c in CASES])
def test_kubectl_apply_refuses_each_broken_rule_with_the_field_named(
    crd_installed: Any, namespace: str, case: Case
) -> None:
    result = crd_installed.kubectl("-n", namespace, "apply", "-f", "-", input=resource(case.spec()), check=False)
    assert result.returncode != 0, f"{case.rule}: the API server accepted it"
    assert f"{case.path}: Invalid value" in result.stderr, result.stderr
    assert case.says in result.stderr, result.stderr
    assert crd_installed.kubectl("-n", namespace, "get", "hptj", "-o", "name").stdout.strip() == ""
