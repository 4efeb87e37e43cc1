"""Live progress for `kubetune run` on a terminal: a table of the running trials that redraws in place.

The run loop calls `LiveProgress` on every turn; it redraws at most `refresh_per_second`
times, from the loop itself (no refresh thread reads the runner while it changes), and the
table stays bounded however many trials run: `max_rows` rows, then "+N more". The decision
log lines that would otherwise go to the same terminal are printed above the table, so the
table never tears; a stderr redirected to a file or a pipe keeps getting them unchanged.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from types import TracebackType
from typing import IO

from rich.console import Console, ConsoleOptions, Group, RenderableType, RenderResult
from rich.live import Live
from rich.table import Table
from rich.text import Text

from kubetune.api.spec import ParameterValue
from kubetune.engine import TrialStatus
from kubetune.runners.local import LocalRunner, ProgressSnapshot

MAX_ROWS = 20
REFRESH_PER_SECOND = 4.0
_COUNTED = (TrialStatus.RUNNING, TrialStatus.COMPLETED, TrialStatus.STOPPED, TrialStatus.FAILED)


def compact(hyperparameters: Mapping[str, ParameterValue]) -> str:
    """`learning_rate=0.0123 hidden_units=64`: floats to 3 significant digits, on one line."""
    return " ".join(f"{name}={_value(value)}" for name, value in hyperparameters.items())


def _value(value: ParameterValue | float | None) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def duration(seconds: float) -> str:
    """`0:04:07`; days are hours past 24, as a tuning job rarely runs for days."""
    whole = int(seconds)
    return f"{whole // 3600}:{whole % 3600 // 60:02d}:{whole % 60:02d}"


def render(snapshot: ProgressSnapshot, max_rows: int = MAX_ROWS) -> RenderableType:
    """The whole display: a header line (elapsed, budget left), the running trials, counts and the best."""
    return _View(snapshot, max_rows)


class _View:
    """Laid out when drawn, to the console's width then: only the hyperparameters are cut short."""

    def __init__(self, snapshot: ProgressSnapshot, max_rows: int) -> None:
        self.snapshot = snapshot
        self.max_rows = max_rows

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        yield _layout(self.snapshot, self.max_rows, options.max_width)


def _layout(snapshot: ProgressSnapshot, max_rows: int, width: int) -> RenderableType:
    header = Text()
    header.append(snapshot.job, style="bold")
    header.append(f"  {snapshot.strategy}, {snapshot.objective_type.lower()} {snapshot.metric}")
    header.append(f"  elapsed {duration(snapshot.elapsed_seconds)}")
    left = snapshot.trials_left
    if left is None:
        header.append(f"  {snapshot.started} trials started, no trial budget")
    else:
        header.append(f"  {left} of {snapshot.budget} trials left")
    seconds_left = snapshot.seconds_left
    if seconds_left is not None:
        header.append(f"  {duration(seconds_left)} of maxRuntimeInSeconds left")
    if snapshot.ended is not None:
        header.append(f"  ending: {snapshot.ended}", style="yellow")

    rows: list[list[Text]] = [
        [
            Text(trial.name).append(" (stopping)" if trial.stopping is not None else "", style="yellow"),
            Text(_value(trial.step)),
            Text(_value(trial.value)),
            Text(duration(trial.seconds)),
            Text(compact(trial.hyperparameters), no_wrap=True, overflow="ellipsis"),
        ]
        for trial in snapshot.running[:max_rows]
    ]
    hidden = len(snapshot.running) - max_rows
    if hidden > 0:
        rows.append([Text(f"+{hidden} more", style="dim"), Text(), Text(), Text(), Text()])
    if not snapshot.running:
        rows.append([Text("no trial running", style="dim"), Text(), Text(), Text(), Text()])
    headers = ("trial", "step", snapshot.metric, "time")
    widths = [max([len(title), *(row[i].cell_len for row in rows)]) for i, title in enumerate(headers)]
    # Between two columns: a space, the rule, a space; no padding at the table's edges.
    rest = max(width - sum(widths) - 3 * len(widths), len("hyperparameters"))
    table = Table(expand=False, show_edge=False, pad_edge=False, header_style="bold")
    table.add_column("trial", no_wrap=True, width=widths[0])
    for title, column_width in zip(headers[1:], widths[1:], strict=True):
        table.add_column(title, justify="right", no_wrap=True, width=column_width)
    table.add_column("hyperparameters", no_wrap=True, overflow="ellipsis", max_width=rest)
    for row in rows:
        table.add_row(*row)

    counts = Text("trials: ")
    counts.append(", ".join(f"{snapshot.counts.get(status, 0)} {status.value.lower()}" for status in _COUNTED))
    best = Text("best: ", no_wrap=True, overflow="ellipsis")
    if snapshot.best_name is None or snapshot.best_value is None:
        best.append("none yet", style="dim")
    else:
        best.append(f"{snapshot.best_name}  ", style="bold")
        best.append(f"{snapshot.metric}={snapshot.best_value:.6g}", style="bold green")
        if snapshot.best_hyperparameters:
            best.append(f"  ({compact(snapshot.best_hyperparameters)})")
    return Group(header, table, counts, best)


class _AboveTheTable(logging.Handler):
    """Writes a handler's formatted lines through the live console, which prints them above the table."""

    def __init__(self, console: Console, original: logging.Handler) -> None:
        super().__init__(original.level)
        self.setFormatter(original.formatter)
        self._console = console

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self._console.print(Text(self.format(record)), soft_wrap=True, highlight=False)
        except Exception:
            self.handleError(record)


class LiveProgress:
    """A `ProgressHook` for `LocalRunner` that draws `render(runner.snapshot())` in place.

    Use it as a context manager around the run: on exit the last table stays on screen
    and the root logger's handlers are as they were.
    """

    def __init__(
        self,
        file: IO[str] | None = None,
        *,
        force_terminal: bool | None = None,
        width: int | None = None,
        refresh_per_second: float = REFRESH_PER_SECOND,
        max_rows: int = MAX_ROWS,
    ) -> None:
        self.console = Console(file=file, force_terminal=force_terminal, width=width)
        self._live = Live(console=self.console, auto_refresh=False, transient=False)
        self._interval = 1.0 / refresh_per_second
        self._max_rows = max_rows
        self._last = float("-inf")
        self._swapped: list[tuple[logging.Handler, logging.Handler]] = []
        self.redraws = 0

    def __enter__(self) -> LiveProgress:
        self._live.start()
        root = logging.getLogger()
        for handler in list(root.handlers):
            if isinstance(handler, logging.StreamHandler) and _is_terminal(handler.stream):
                replacement = _AboveTheTable(self.console, handler)
                root.removeHandler(handler)
                root.addHandler(replacement)
                self._swapped.append((handler, replacement))
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        root = logging.getLogger()
        for original, replacement in self._swapped:
            root.removeHandler(replacement)
            root.addHandler(original)
        self._swapped.clear()
        self._live.stop()

    def __call__(self, runner: LocalRunner, final: bool = False) -> None:
        now = time.monotonic()
        if not final and now - self._last < self._interval:
            return
        self._last = now
        self.redraws += 1
        self._live.update(render(runner.snapshot(), self._max_rows), refresh=True)


def _is_terminal(stream: IO[str] | None) -> bool:
    try:
        return stream is not None and stream.isatty()
    except (AttributeError, ValueError):
        return False
