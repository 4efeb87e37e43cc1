"""The committed CRD is what the models generate, and it is a structural schema."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from kubetune.api.crd import crd, crd_yaml

CRD_PATH = Path(__file__).resolve().parents[2] / "crds" / "hyperparametertuningjobs.kubetune.io.yaml"


def test_committed_crd_is_current() -> None:
    assert CRD_PATH.read_text() == crd_yaml(), "crds/ is stale: run `make crd` (kubetune crd -o ...)"


def walk(node: Any, path: str = ""):  # type: ignore[no-untyped-def]
    if isinstance(node, dict):
        yield path, node
        for key, value in node.items():
            yield from walk(value, f"{path}.{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from walk(value, f"{path}[{i}]")


def test_schema_is_structural_and_described() -> None:
    version = crd()["spec"]["versions"][0]
    schema = version["schema"]["openAPIV3Schema"]
    for path, node in walk(schema):
        assert "$ref" not in node and "anyOf" not in node and "allOf" not in node, path
        if path.endswith(".properties") or ".properties." not in path + ".":
            continue
        if path.split(".")[-2:-1] != ["properties"]:
            continue
        assert "type" in node or node.get("x-kubernetes-preserve-unknown-fields"), path
        if path != ".properties.metadata":  # the API server forbids anything but the type there
            assert node.get("description"), f"{path} has no description"


def test_crd_names_and_printer_columns() -> None:
    document = yaml.safe_load(CRD_PATH.read_text())
    names = document["spec"]["names"]
    assert names["shortNames"] == ["hptj"] and names["kind"] == "HyperParameterTuningJob"
    version = document["spec"]["versions"][0]
    assert version["name"] == "v1alpha1" and version["subresources"] == {"status": {}}
    columns = {c["name"]: c for c in version["additionalPrinterColumns"]}
    assert [n for n, c in columns.items() if not c.get("priority")] == [
        "Strategy",
        "Metric",
        "Status",
        "Trials",
        "Running",
        "Failed",
        "Best",
        "Age",
    ]
    assert [n for n, c in columns.items() if c.get("priority") == 1] == ["Reason"]  # kubectl get -o wide
    assert columns["Best"]["jsonPath"] == ".status.bestObjectiveValue" and columns["Best"]["type"] == "string"
    spec = version["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]
    assert spec["strategy"]["enum"] == ["Grid", "Random", "Bayesian", "Hyperband"]
    assert spec["strategy"]["default"] == "Bayesian"
    assert spec["trialTemplate"]["properties"]["spec"]["x-kubernetes-preserve-unknown-fields"] is True


def test_printer_columns_read_fields_the_schema_has() -> None:
    """A column whose JSONPath names no field shows <none> for ever: each must resolve to a typed property."""
    version = yaml.safe_load(CRD_PATH.read_text())["spec"]["versions"][0]
    root = version["schema"]["openAPIV3Schema"]
    kinds = {"string": "string", "integer": "integer", "number": "number"}
    for column in version["additionalPrinterColumns"]:
        path = column["jsonPath"].lstrip(".").split(".")
        if path[0] == "metadata":
            continue
        node = root
        for part in path:
            assert part in node.get("properties", {}), (column["name"], column["jsonPath"], part)
            node = node["properties"][part]
        assert kinds.get(node.get("type", "")) == column["type"], (column["name"], node.get("type"))
