"""The operator fixture for every test in this folder (see harness.py)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from .harness import OperatorProcess, install_operator_access


@pytest.fixture(scope="module")
def operator(cluster: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[OperatorProcess]:
    kubeconfig = install_operator_access(cluster)
    log_path = tmp_path_factory.mktemp("operator") / "operator.log"
    # A stable identity, like a pod's name: a restarted process takes its Lease back at once.
    process = OperatorProcess(cluster, kubeconfig, log_path, ["--leader-identity", "replica-a"])
    process.start()
    try:
        yield process
    finally:
        process.stop()
        print(f"operator log: {log_path}")
