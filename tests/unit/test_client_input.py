"""What kubetune.Client.submit accepts, and the errors for what it does not (no cluster needed)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from kubetune.client import ClientError, as_resource

EXAMPLE = Path(__file__).resolve().parents[2] / "manifests" / "examples" / "random.yaml"


def test_file_text_resource_and_bare_spec_give_the_same_body(tmp_path: Path) -> None:
    from_file = as_resource(str(EXAMPLE), None)
    assert from_file["metadata"] == {"name": "digits-random"} and from_file["kind"] == "HyperParameterTuningJob"
    assert as_resource(EXAMPLE, None) == from_file
    assert as_resource(EXAMPLE.read_text(), None) == from_file
    document = yaml.safe_load(EXAMPLE.read_text())
    document["metadata"]["namespace"] = "elsewhere"
    assert as_resource(document, None) == from_file  # the client's namespace decides
    assert as_resource(document["spec"], "digits-random") == from_file
    assert as_resource(document, "renamed")["metadata"]["name"] == "renamed"


def test_bad_input_says_what_and_where(tmp_path: Path) -> None:
    with pytest.raises(ClientError, match=r"metadata.name is missing; give submit\(\) a name="):
        as_resource(yaml.safe_load(EXAMPLE.read_text())["spec"], None)
    missing = tmp_path / "nothing.yaml"
    with pytest.raises(ClientError, match=re.escape(f"{missing}: No such file")):
        as_resource(str(missing), None)
    other = tmp_path / "other.yaml"
    other.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n")
    with pytest.raises(ClientError, match=re.escape(f"{other}: no HyperParameterTuningJob document found")):
        as_resource(other, None)
    with pytest.raises(ClientError, match="not valid YAML"):
        as_resource("kind: [\nspec: 1\n", None)
    with pytest.raises(ClientError, match=re.escape("must be apiVersion kubetune.io/v1alpha1")):
        as_resource({"apiVersion": "kubetune.io/v2", "kind": "HyperParameterTuningJob", "spec": {}}, "x")
