"""Fixtures shared by the install tests: the chart's image, mapped to this virtualenv."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.cluster.operator.harness import EXAMPLES


@pytest.fixture(scope="module")
def images(cluster: Any) -> None:
    """The chart's and the examples' image, and the harness's, run this venv's `kubetune` in the examples folder."""
    bin_dir = str(Path(sys.executable).parent)
    for pattern in ("ghcr.io/kubetune/kubetune:*", "kubetune-test/*"):
        cluster.map_image(
            pattern,
            entrypoint=["kubetune"],
            env={"PATH": f"{bin_dir}:{os.environ.get('PATH', '/usr/bin:/bin')}"},
            working_dir=str(EXAMPLES),
        )
