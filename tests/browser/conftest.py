"""Real result files for the report's browser test, and a summary line naming every screenshot kept."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.unit.results_data import many_trials, run_hyperband

SCREENSHOTS: list[Path] = []


@pytest.fixture(scope="session")
def hyperband_result(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return run_hyperband(tmp_path_factory.mktemp("hyperband"))


@pytest.fixture(scope="session")
def auto_stopping_result(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Random search with Auto early stopping (the median rule), through the real Tuner."""
    return many_trials(300, tmp_path_factory.mktemp("auto") / "auto.json")


@pytest.fixture
def keep_screenshot() -> list[Path]:
    return SCREENSHOTS


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    for path in SCREENSHOTS:
        terminalreporter.write_line(f"report screenshot: {path}")
