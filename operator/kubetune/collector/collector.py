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
from typing import Any, Protocol

SUMMARY_LIMIT_BYTES = 4000
"""The kubelet keeps at most 4 KiB of a termination message; the summary must fit."""

DIAGNOSTIC_NAMES = 10
"""At most this many metrics in each part of the diagnostics (the objective's first): the summary must fit."""
EXAMPLE_CHARS = 40
"""How much of a bad value or step the diagnostics quote."""
REGEX_CHARS = 80
"""How much of a metric definition's regex the diagnostics quote."""


@dataclass(frozen=True)
class MetricPoint:
    step: float
    value: float
    timestamp: float


@dataclass
class _Series:
    points: list[MetricPoint] = field(default_factory=list)

    def next_step(self, step: float | None) -> float:
        if step is not None:
            return float(step)
        return (self.points[-1].step + 1) if self.points else 1.0

    def add(self, step: float | None, value: float, timestamp: float) -> MetricPoint:
        point = MetricPoint(self.next_step(step), value, timestamp)
        self.points.append(point)
        return point


@dataclass
class _Seen:
    """Something seen that is no value: how often, the last example and where."""

    count: int = 0
    example: str = ""
    step: float | None = None

    def saw(self, example: str, step: float | None = None) -> None:
        self.count += 1
        self.example = example[:EXAMPLE_CHARS]
        self.step = step

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"count": self.count, "example": self.example}
        if self.step is not None:
            out["step"] = self.step
        return out


class MetricPattern(Protocol):
    """What the collector needs of a metric definition: kubetune.api.spec's MetricDefinition is one.

    A protocol rather than that model, so the in-pod sidecar starts without
    importing pydantic and the spec (about a third of a second of CPU per trial pod).
    """

    @property
    def name(self) -> str: ...

    @property
    def regex(self) -> str: ...


class MetricCollector:
    """Collects every metric; the objective's new points are what the tuner is told."""

    def __init__(self, definitions: Sequence[MetricPattern], objective: str) -> None:
        self.objective = objective
        self._definitions = list(definitions)
        self._patterns = [(d.name, re.compile(d.regex)) for d in definitions]
        self._series: dict[str, _Series] = {}
        # What was seen but is no value: a trial without an objective must be able to say why.
        self._matched: set[str] = set()
        self._not_a_number: dict[str, _Seen] = {}
        self._non_finite: dict[str, _Seen] = {}
        self._bad_steps = _Seen()

    def feed_line(self, line: str, timestamp: float | None = None) -> list[tuple[str, MetricPoint]]:
        """Apply every metric definition to one output line."""
        found: list[tuple[str, MetricPoint]] = []
        now = time.time() if timestamp is None else timestamp
        for name, pattern in self._patterns:
            match = pattern.search(line)
            if match is None:
                continue
            self._matched.add(name)
            point = self._add(name, None, match.group(1), now)
            if point is not None:
                found.append((name, point))
        return found

    def feed_record(self, record: Mapping[str, Any]) -> list[tuple[str, MetricPoint]]:
        """Apply one metrics-file record (see kubetune.collector.report for the format).

        A record whose step is there but is not a number is rejected whole: taking it
        as "the next step" would let `"step": "x"` overwrite the real final value.
        """
        metrics = record.get("metrics")
        if not isinstance(metrics, Mapping):
            return []
        raw_step = record.get("step")
        step: float | None = None
        if raw_step is not None:
            if isinstance(raw_step, bool) or not isinstance(raw_step, int | float) or not math.isfinite(raw_step):
                self._bad_steps.saw(repr(raw_step))
                return []
            step = float(raw_step)
        stamp = record.get("time")
        now = float(stamp) if isinstance(stamp, int | float) and not isinstance(stamp, bool) else time.time()
        found = []
        for name, raw in metrics.items():
            point = self._add(str(name), step, raw, now)
            if point is not None:
                found.append((str(name), point))
        return found

    def _add(self, name: str, step: float | None, raw: Any, now: float) -> MetricPoint | None:
        """Add one value to a series, or note why it is none (not a number, NaN, infinite)."""
        try:
            if isinstance(raw, bool) or not isinstance(raw, int | float | str):
                raise TypeError(raw)  # true is no measurement, whatever float() makes of it
            value = float(raw)
        except (TypeError, ValueError):
            self._not_a_number.setdefault(name, _Seen()).saw(repr(raw))
            return None
        series = self._series.setdefault(name, _Series())
        if not math.isfinite(value):
            self._non_finite.setdefault(name, _Seen()).saw(str(value), series.next_step(step))
            return None
        return series.add(step, value, now)

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

    def diagnostics(self, limit: int = DIAGNOSTIC_NAMES) -> dict[str, Any]:
        """What the trial emitted that gave no value, bounded to `limit` metrics per part.

        Keys appear only when there is something to say: "unmatched" (metricDefinitions
        that never matched a line: name and regex), "notANumber" and "nonFinite" (per
        metric: count, the last example, and for nonFinite its step), "badSteps"
        (metrics-file records rejected for a step that is not a number).
        """
        out: dict[str, Any] = {}
        unmatched = [d for d in self._definitions if d.name not in self._matched]
        if unmatched:
            out["unmatched"] = [{"name": d.name, "regex": d.regex[:REGEX_CHARS]} for d in self._first(unmatched, limit)]
        for key, seen in (("notANumber", self._not_a_number), ("nonFinite", self._non_finite)):
            if seen:
                names = self._objective_first(list(seen))[:limit]
                out[key] = {name: seen[name].to_json() for name in names}
        if self._bad_steps.count:
            out["badSteps"] = self._bad_steps.to_json()
        return out

    def _objective_first(self, names: list[str]) -> list[str]:
        return sorted(names, key=lambda n: n != self.objective)

    def _first(self, definitions: list[MetricPattern], limit: int) -> list[MetricPattern]:
        return sorted(definitions, key=lambda d: d.name != self.objective)[:limit]

    def summary(self, max_points: int = 60) -> dict[str, Any]:
        """The final word on a trial, small enough for a termination message.

        Past the limit the series is thinned first, then fewer metrics and diagnostics
        are kept (the objective's always), so the summary is valid JSON that fits.
        """
        names = self._objective_first([name for name, s in self._series.items() if s.points])
        limit = max(len(names), DIAGNOSTIC_NAMES)
        while True:
            summary = {
                "objective": self.objective,
                "final": self.final_objective(),
                "metrics": {
                    name: {"last": s.points[-1].value, "step": s.points[-1].step, "count": len(s.points)}
                    for name in names[:limit]
                    for s in (self._series[name],)
                },
                "series": compact_series(self.series(self.objective), max_points),
                "diagnostics": self.diagnostics(min(limit, DIAGNOSTIC_NAMES)),
            }
            if len(json.dumps(summary, separators=(",", ":"))) <= SUMMARY_LIMIT_BYTES or limit <= 1:
                return summary
            if max_points > 2:
                max_points //= 2
            else:
                limit //= 2


def compact_series(points: Sequence[MetricPoint], limit: int) -> list[list[float]]:
    """At most `limit` [step, value] pairs, evenly thinned, always keeping the last point."""
    if len(points) <= limit:
        chosen: Iterable[MetricPoint] = points
    else:
        stride = len(points) / (limit - 1)
        chosen = [points[int(i * stride)] for i in range(limit - 1)] + [points[-1]]
    return [[p.step, p.value] for p in chosen]


def explain_missing_objective(summary: Mapping[str, Any]) -> str | None:
    """The sentence a user needs when a trial ended without an objective value, from its summary
    (MetricCollector.summary(), as the sidecar's termination message or `kubetune run` has it);
    None when it has one.

    e.g. `no objective: val_accuracy was never reported; reported: loss (12); metricDefinitions
    that never matched: val_accuracy ("val_acc=([0-9.]+)")`, or `the objective val_accuracy was
    NaN at step 3`.
    """
    if summary.get("final") is not None:
        return None
    objective = str(summary.get("objective", "the objective"))
    diagnostics = summary.get("diagnostics") or {}
    metrics = summary.get("metrics") or {}
    non_finite = (diagnostics.get("nonFinite") or {}).get(objective)
    parts: list[str] = []
    if non_finite:
        value = "NaN" if "nan" in str(non_finite.get("example", "")).lower() else "infinite"
        step = non_finite.get("step")
        where = f" at step {step:g}" if isinstance(step, int | float) else ""
        more = f" ({non_finite['count']} such values)" if non_finite.get("count", 1) > 1 else ""
        parts.append(f"the objective {objective} was {value}{where}{more}")
    else:
        bad = (diagnostics.get("notANumber") or {}).get(objective)
        if bad:
            parts.append(
                f"no objective: {objective} was reported {bad['count']} times, never as a number"
                f" (last: {bad.get('example', '')})"
            )
        else:
            parts.append(f"no objective: {objective} was never reported")
        reported = [f"{name} ({info.get('count', '?')})" for name, info in metrics.items()]
        parts.append("reported: " + (", ".join(reported) if reported else "nothing"))
        # Only when the objective was never seen: then a definition that never matched is the likely cause.
        unmatched = [] if bad else diagnostics.get("unmatched") or []
        if unmatched:
            parts.append(
                "metricDefinitions that never matched: "
                + ", ".join(f"{d.get('name')} ({json.dumps(d.get('regex', ''))})" for d in unmatched)
            )
    bad_steps = diagnostics.get("badSteps")
    if bad_steps:
        parts.append(
            f"{bad_steps['count']} metrics-file record(s) rejected: step {bad_steps.get('example', '')} is not a number"
        )
    return "; ".join(parts)


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
