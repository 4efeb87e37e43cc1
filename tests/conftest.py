"""Longest test files first, so that `make test`'s workers finish together.

`make test` runs pytest-xdist with `--dist loadfile`: each file goes whole to
one worker, in the order the files are queued, to whichever worker is free.
xdist's default queues them by number of tests, which puts a file of 80 quick
unit cases ahead of a file of 3 operator tests that run for five minutes, and
one worker then ends minutes after the others. With `--no-loadscope-reorder`
(the Makefile passes it) the queue is the collection order, which this hook
sets: the longest files first by the time each took in the last run here,
longest-processing-time-first scheduling. The times are kept in the cache
(`~/.cache/kubetune/test-durations.json`, updated at the end of every run
with the files it ran); a file with no record yet goes by kind, cluster tests
before browser tests before unit tests.
"""

from __future__ import annotations

import json
import os
from collections import defaultdict
from pathlib import Path

import pytest

KIND_ORDER = ("tests/cluster/", "tests/browser/")
"""Files with no recorded time, in this order of kind (then everything else)."""


def durations_path() -> Path:
    cache = os.environ.get("KUBETUNE_CACHE") or str(Path.home() / ".cache" / "kubetune")
    return Path(cache) / "test-durations.json"


def _recorded() -> dict[str, float]:
    try:
        data = json.loads(durations_path().read_text())
    except (OSError, ValueError):
        return {}
    return {str(k): float(v) for k, v in data.items()} if isinstance(data, dict) else {}


def _file_of(nodeid: str) -> str:
    return nodeid.split("::", 1)[0]


def _rank(path: str, recorded: dict[str, float]) -> tuple[int, float, str]:
    if path in recorded:
        return (0, -recorded[path], path)
    kind = next((i for i, prefix in enumerate(KIND_ORDER) if path.startswith(prefix)), len(KIND_ORDER))
    return (1 + kind, 0.0, path)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Orders the items file by file (a stable sort: within a file, the order is the file's own)."""
    recorded = _recorded()
    items.sort(key=lambda item: _rank(_file_of(item.nodeid), recorded))


_spent: dict[str, float] = defaultdict(float)


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    _spent[_file_of(report.nodeid)] += report.duration


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Records what each file took (on the controller only: it sees every worker's reports)."""
    if hasattr(session.config, "workerinput") or not _spent:
        return
    merged = {**_recorded(), **{path: round(seconds, 1) for path, seconds in _spent.items()}}
    target = durations_path()
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f"{target.name}.{os.getpid()}")
        partial.write_text(json.dumps(merged, indent=1, sort_keys=True))
        partial.replace(target)
    except OSError:
        pass  # an order hint only: a read-only cache costs nothing but the order
