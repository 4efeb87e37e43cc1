"""The trial table: choose, order and render the rows, as `kubetune trials` and the CSV export show them."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from kubetune.engine import TrialStatus
from kubetune.errors import ResultsError
from kubetune.results.model import TrialRow, TuningResults

SORT_KEYS = ("objective", "number", "status", "duration", "steps")
"""Besides these, --sort-by takes any hyperparameter's name."""
FORMATS = ("table", "wide", "json", "csv")
REASON_WIDTH = 60
"""`table` cuts reasons here so a row fits a terminal; `wide`, json and csv keep them whole."""


@dataclass(frozen=True)
class Selection:
    """Which trials, in which order: --status and --sort-by, checked against the tuning job."""

    sort_by: str = "objective"
    statuses: tuple[str, ...] = ()
    reverse: bool = False

    def apply(self, results: TuningResults, now: float | None = None) -> list[TrialRow]:
        wanted = {_status(s) for s in self.statuses}
        rows = [r for r in results.trials if not wanted or r.status in wanted]
        rows.sort(key=self._key(results, time.time() if now is None else now))
        return rows[::-1] if self.reverse else rows

    def _key(self, results: TuningResults, now: float) -> Callable[[TrialRow], Any]:
        names = [p.name for p in results.parameters]
        if self.sort_by == "objective":
            return results.sort_key
        if self.sort_by == "number":
            return lambda r: r.number
        if self.sort_by == "status":
            return lambda r: (r.status, results.sort_key(r))
        if self.sort_by == "duration":
            return lambda r: (r.duration(now) is None, -(r.duration(now) or 0.0), r.number)
        if self.sort_by == "steps":
            return lambda r: (-r.steps, r.number)
        if self.sort_by in names:
            return lambda r: (*_ordered(r.hyperparameters.get(self.sort_by)), r.number)
        choices = ", ".join([*SORT_KEYS, *names])
        raise ResultsError(f"--sort-by {self.sort_by!r}: not a column of {results.name}; one of: {choices}")


def _status(text: str) -> str:
    for status in TrialStatus:
        if status.value.lower() == text.strip().lower():
            return status.value
    raise ResultsError(f"--status {text!r}: not a trial status; one of: {', '.join(s.value for s in TrialStatus)}")


def _ordered(value: Any) -> tuple[int, float, str]:
    """Numbers before text, missing last, so a mixed or incomplete column still sorts."""
    if value is None:
        return (2, 0.0, "")
    if isinstance(value, int | float) and not isinstance(value, bool):
        return (0, float(value), "")
    return (1, 0.0, str(value))


def render(results: TuningResults, rows: Sequence[TrialRow], output: str, now: float | None = None) -> str:
    """The rows in one of FORMATS."""
    moment = time.time() if now is None else now
    if output == "json":
        return json.dumps([record(results, r, moment) for r in rows], indent=2) + "\n"
    if output == "csv":
        return to_csv(results, rows, moment)
    if output == "table":
        return _aligned(_narrow(results, rows, moment))
    if output == "wide":
        return _aligned(_wide(results, rows, moment))
    raise ResultsError(f"-o {output!r}: one of {', '.join(FORMATS)}")


def record(results: TuningResults, row: TrialRow, now: float) -> dict[str, Any]:
    """One trial as JSON and CSV carry it: exact values, times in RFC 3339."""
    return {
        "number": row.number,
        "name": row.name,
        "status": row.status,
        results.metric: row.objective,
        "hyperparameters": dict(row.hyperparameters),
        "steps": row.steps,
        "lastStep": row.last_step,
        "startTime": _rfc3339(row.started_at),
        "endTime": _rfc3339(row.ended_at),
        "durationSeconds": _round(row.duration(now)),
        "reason": row.reason or None,
    }


def to_csv(results: TuningResults, rows: Sequence[TrialRow], now: float | None = None) -> str:
    """One column per hyperparameter, so a spreadsheet can plot them."""
    moment = time.time() if now is None else now
    names = [p.name for p in results.parameters]
    columns = ["number", "name", "status", results.metric, *names]
    columns += ["steps", "lastStep", "startTime", "endTime", "durationSeconds", "reason"]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        data = record(results, row, moment)
        hyper = data.pop("hyperparameters")
        data.update({n: hyper.get(n) for n in names})
        writer.writerow(["" if data[c] is None else data[c] for c in columns])
    return out.getvalue()


def _narrow(results: TuningResults, rows: Sequence[TrialRow], now: float) -> list[list[str]]:
    header = ["TRIAL", "STATUS", results.metric.upper(), "STEPS", "DURATION", "HYPERPARAMETERS", "REASON"]
    table = [header]
    for row in rows:
        params = " ".join(f"{k}={_value(v)}" for k, v in row.hyperparameters.items())
        reason = row.reason if len(row.reason) <= REASON_WIDTH else row.reason[: REASON_WIDTH - 1] + "…"
        table.append(
            [
                str(row.number),
                row.status,
                _value(row.objective),
                str(row.steps),
                _duration(row.duration(now)),
                params,
                reason,
            ]
        )
    return table


def _wide(results: TuningResults, rows: Sequence[TrialRow], now: float) -> list[list[str]]:
    names = [p.name for p in results.parameters]
    header = ["TRIAL", "NAME", "STATUS", results.metric.upper(), *(n.upper() for n in names)]
    header += ["STEPS", "LAST-STEP", "STARTED", "DURATION", "REASON"]
    table = [header]
    for row in rows:
        cells = [str(row.number), row.name, row.status, _value(row.objective)]
        cells += [_value(row.hyperparameters.get(n)) for n in names]
        cells += [str(row.steps), _value(row.last_step), _rfc3339(row.started_at) or "-", _duration(row.duration(now))]
        table.append([*cells, row.reason])
    return table


def _aligned(table: list[list[str]]) -> str:
    """kubectl's layout: columns padded to their widest cell, three spaces apart, the last one free."""
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    lines = []
    for row in table:
        cells = [cell.ljust(width) for cell, width in zip(row[:-1], widths, strict=False)]
        lines.append("   ".join([*cells, row[-1]]).rstrip())
    return "\n".join(lines) + "\n"


def _value(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def _duration(seconds: float | None) -> str:
    """kubectl's style: 45s, 3m12s, 2h5m."""
    if seconds is None:
        return "-"
    whole = int(seconds)
    if whole < 60:
        return f"{seconds:.1f}s" if seconds < 10 else f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m{whole % 60}s"
    return f"{whole // 3600}h{whole % 3600 // 60}m"


def _rfc3339(stamp: float | None) -> str | None:
    if stamp is None:
        return None
    return dt.datetime.fromtimestamp(stamp, dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _round(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else round(value, 3)
