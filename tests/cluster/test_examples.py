"""Every tuning job the README and manifests/examples show is valid as written, locally and to the API server.

A user copies them as they stand: `kubetune validate` must accept each one and a
server-side dry run must too (the CRD's schema and rules, and the admission the
cluster applies), so a README example can never be rejected by the cluster again
the way the unquoted `Off` was.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.cluster.kube import install_crd

pytestmark = pytest.mark.cluster

ROOT = Path(__file__).resolve().parents[2]
CRD = ROOT / "crds" / "hyperparametertuningjobs.kubetune.io.yaml"


def tuning_job_examples() -> list[tuple[str, str]]:
    """(where, YAML text) of every HyperParameterTuningJob in README.md and manifests/examples."""
    found = []
    readme = (ROOT / "README.md").read_text()
    for i, block in enumerate(re.findall(r"```ya?ml\n(.*?)```", readme, re.S)):
        if "kind: HyperParameterTuningJob" in block:
            found.append((f"README.md block {i}", block))
    for path in sorted((ROOT / "manifests" / "examples").rglob("*.yaml")):
        text = path.read_text()
        if "kind: HyperParameterTuningJob" in text:
            found.append((str(path.relative_to(ROOT)), text))
    return found


EXAMPLES = tuning_job_examples()


def test_there_are_examples_to_check() -> None:
    assert len(EXAMPLES) >= 5 and any(w.startswith("README") for w, _ in EXAMPLES)


@pytest.mark.parametrize(("where", "text"), EXAMPLES, ids=[w for w, _ in EXAMPLES])
def test_example_validates_and_the_api_server_accepts_it(
    cluster: Any, namespace: str, tmp_path: Path, where: str, text: str
) -> None:
    path = tmp_path / "example.yaml"
    path.write_text(text)
    local = subprocess.run(
        [sys.executable, "-m", "kubetune.cli", "validate", str(path)], capture_output=True, text=True, timeout=60
    )
    assert local.returncode == 0, f"{where}: kubetune validate says\n{local.stdout}{local.stderr}"
    install_crd(cluster, str(CRD), "hyperparametertuningjobs.kubetune.io")
    resource = yaml.safe_load(text)
    resource["metadata"].pop("namespace", None)
    result = cluster.kubectl(
        "-n", namespace, "create", "--dry-run=server", "-f", "-", input=yaml.safe_dump(resource), check=False
    )
    assert result.returncode == 0, f"{where}: the API server refuses it:\n{result.stderr}"
