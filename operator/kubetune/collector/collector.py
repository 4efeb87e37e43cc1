"""Turns training output and metrics-file records into metric series.

The same class runs in `kubetune run` (fed from the subprocess's pipes and its
metrics file) and in the sidecar (fed from the shared volume), so a trial's
metrics do not depend on where it runs.
"""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from kubetune.api.spec import MetricDefinition

SUMMARY_LIMIT_BYTES = 4000
"""The kubelet keeps at most 4 KiB of a termination message; the summary must fit."""


@dataclass(frozen=True)
class MetricPoint:
    step: float
    value: float
    timestamp: float


@dataclass
class _Series:
    points: list[MetricPoint] = field(default_factory=list)

    def add(self, step: float | None, value: float, timestamp: float) -> MetricPoint:
        if step is None:
            step = (self.points[-1].step + 1) if self.points else 1
        point = MetricPoint(float(step), value, timestamp)
        self.points.append(point)
        return point


class MetricCollector:
    """Collects every metric; the objective's new points are what the tuner is told."""

    def __init__(self, definitions: Sequence[MetricDefinition], objective: str) -> None:
        self.objective = objective
        self._patterns = [(d.name, re.compile(d.regex)) for d in definitions]
        self._series: dict[str, _Series] = {}

    def feed_line(self, line: str, timestamp: float | None = None) -> list[tuple[str, MetricPoint]]:
        """Apply every metric definition to one output line."""
        found: list[tuple[str, MetricPoint]] = []
        now = time.time() if timestamp is None else timestamp
        for name, pattern in self._patterns:
            match = pattern.search(line)
            if match is None:
                continue
            value = _to_float(match.group(1))
            if value is not None:
                found.append((name, self._series.setdefault(name, _Series()).add(None, value, now)))
        return found

    def feed_record(self, record: Mapping[str, Any]) -> list[tuple[str, MetricPoint]]:
        """Apply one metrics-file record (see kubetune.collector.report for the format)."""
        metrics = record.get("metrics")
        if not isinstance(metrics, Mapping):
            return []
        step = record.get("step")
        step = float(step) if isinstance(step, int | float) and not isinstance(step, bool) else None
        stamp = record.get("time")
        now = float(stamp) if isinstance(stamp, int | float) else time.time()
        found = []
        for name, raw in metrics.items():
            value = _to_float(raw)
            if value is not None:
                found.append((str(name), self._series.setdefault(str(name), _Series()).add(step, value, now)))
        return found

    def series(self, name: str) -> list[MetricPoint]:
        series = self._series.get(name)
        return list(series.points) if series else []

    @property
    def names(self) -> list[str]:
        return list(self._series)

    def final_objective(self) -> float | None:
        """SageMaker's rule: a trial's objective is the last value it emitted."""
        points = self.series(self.objective)
        return points[-1].value if points else None

    def summary(self, max_points: int = 60) -> dict[str, Any]:
        """The final word on a trial, small enough for a termination message."""
        while True:
            summary = {
                "objective": self.objective,
                "final": self.final_objective(),
                "metrics": {
                    name: {"last": s.points[-1].value, "step": s.points[-1].step, "count": len(s.points)}
                    for name, s in self._series.items()
                    if s.points
                },
                "series": compact_series(self.series(self.objective), max_points),
            }
            if len(json.dumps(summary, separators=(",", ":"))) <= SUMMARY_LIMIT_BYTES or max_points <= 2:
                return summary
            max_points //= 2


def compact_series(points: Sequence[MetricPoint], limit: int) -> list[list[float]]:
    """At most `limit` [step, value] pairs, evenly thinned, always keeping the last point."""
    if len(points) <= limit:
        chosen: Iterable[MetricPoint] = points
    else:
        stride = len(points) / (limit - 1)
        chosen = [points[int(i * stride)] for i in range(limit - 1)] + [points[-1]]
    return [[p.step, p.value] for p in chosen]


def _to_float(raw: Any) -> float | None:
    try:
        value = float(raw)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


class LineTail:
    """Reads the complete lines appended to a file since the last read (a partial last line waits)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._offset = 0
        self._partial = b""

    def read_lines(self) -> list[str]:
        try:
            with open(self.path, "rb") as handle:
                handle.seek(self._offset)
                chunk = handle.read()
        except FileNotFoundError:
            return []
        self._offset += len(chunk)
        lines = (self._partial + chunk).split(b"\n")
        self._partial = lines.pop()
        return [line.decode("utf-8", errors="replace") for line in lines]

    def flush_partial(self) -> list[str]:
        """The unterminated last line, once the writer is known to be done."""
        rest, self._partial = self._partial, b""
        return [rest.decode("utf-8", errors="replace")] if rest else []


class MetricsFileTail(LineTail):
    """Reads the records appended to a metrics file (one JSON object a line); other lines are skipped."""

    def read_records(self) -> list[dict[str, Any]]:
        records = []
        for line in self.read_lines():
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if isinstance(record, dict):
                records.append(record)
        return records
