"""The operator's Prometheus metrics: a small registry and the text exposition format.

In-house rather than prometheus_client: the operator needs counters, one gauge
and histograms with labels, rendered as text on one endpoint — about a hundred
lines — and the sidecar image stays free of a dependency only the operator uses.
Thread-safe, because the HTTP endpoint runs in a thread beside the event loop.

One `OperatorMetrics` per operator process, created at startup and passed down
explicitly (`Deps.metrics`), never a module-level singleton.
"""

from __future__ import annotations

import math
import re
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

LabelValues = tuple[str, ...]


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _number(value: float) -> str:
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value)) if value != int(value) else str(int(value))


def _labels(names: Sequence[str], values: Sequence[str], extra: str = "") -> str:
    pairs = [f'{n}="{_escape(v)}"' for n, v in zip(names, values, strict=True)]
    if extra:
        pairs.append(extra)
    return "{" + ",".join(pairs) + "}" if pairs else ""


class _Metric:
    kind = ""

    def __init__(self, name: str, help_text: str, labels: Sequence[str], lock: threading.Lock) -> None:
        self.name = name
        self.help = help_text
        self.label_names = tuple(labels)
        self._lock = lock

    def _key(self, values: Sequence[str]) -> LabelValues:
        if len(values) != len(self.label_names):
            raise ValueError(f"{self.name} takes labels {self.label_names}, got {tuple(values)}")
        return tuple(str(v) for v in values)

    def header(self) -> list[str]:
        return [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} {self.kind}"]

    def samples(self) -> list[str]:
        raise NotImplementedError


class Counter(_Metric):
    kind = "counter"

    def __init__(self, name: str, help_text: str, labels: Sequence[str], lock: threading.Lock) -> None:
        super().__init__(name, help_text, labels, lock)
        self._values: dict[LabelValues, float] = {}

    def inc(self, *labels: str, amount: float = 1.0) -> None:
        key = self._key(labels)
        with self._lock:
            self._values[key] = self._values.get(key, 0.0) + amount

    def value(self, *labels: str) -> float:
        with self._lock:
            return self._values.get(self._key(labels), 0.0)

    def samples(self) -> list[str]:
        return [f"{self.name}{_labels(self.label_names, k)} {_number(v)}" for k, v in sorted(self._values.items())]


class Gauge(Counter):
    kind = "gauge"

    def set(self, value: float, *labels: str) -> None:
        key = self._key(labels)
        with self._lock:
            self._values[key] = value


class Sampled(_Metric):
    """A value read at exposition time from something that already counts it (the Scraper's errors)."""

    def __init__(self, name: str, help_text: str, kind: str, read: Callable[[], float], lock: threading.Lock) -> None:
        super().__init__(name, help_text, (), lock)
        self.kind = kind
        self._read = read

    def samples(self) -> list[str]:
        return [f"{self.name} {_number(self._read())}"]


class Histogram(_Metric):
    kind = "histogram"

    def __init__(
        self, name: str, help_text: str, labels: Sequence[str], lock: threading.Lock, buckets: Sequence[float]
    ) -> None:
        super().__init__(name, help_text, labels, lock)
        self.buckets = tuple(sorted(buckets))
        self._counts: dict[LabelValues, list[int]] = {}
        self._sums: dict[LabelValues, float] = {}

    def observe(self, value: float, *labels: str) -> None:
        key = self._key(labels)
        with self._lock:
            counts = self._counts.setdefault(key, [0] * (len(self.buckets) + 1))
            for i, bound in enumerate(self.buckets):
                if value <= bound:
                    counts[i] += 1
            counts[-1] += 1
            self._sums[key] = self._sums.get(key, 0.0) + value

    @contextmanager
    def time(self, *labels: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self.observe(time.perf_counter() - started, *labels)

    def count(self, *labels: str) -> int:
        with self._lock:
            return self._counts.get(self._key(labels), [0])[-1]

    def samples(self) -> list[str]:
        lines = []
        for key, counts in sorted(self._counts.items()):
            for bound, n in zip((*self.buckets, math.inf), counts, strict=True):
                le = 'le="' + _number(bound) + '"'
                lines.append(f"{self.name}_bucket{_labels(self.label_names, key, le)} {n}")
            lines.append(f"{self.name}_sum{_labels(self.label_names, key)} {_number(self._sums[key])}")
            lines.append(f"{self.name}_count{_labels(self.label_names, key)} {counts[-1]}")
        return lines


_NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")


class Registry:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._metrics: list[_Metric] = []

    def _add(self, metric: _Metric) -> None:
        if not _NAME.match(metric.name) or any(m.name == metric.name for m in self._metrics):
            raise ValueError(f"bad or duplicate metric name {metric.name!r}")
        self._metrics.append(metric)

    def counter(self, name: str, help_text: str, labels: Sequence[str] = ()) -> Counter:
        metric = Counter(name, help_text, labels, self._lock)
        self._add(metric)
        return metric

    def gauge(self, name: str, help_text: str, labels: Sequence[str] = ()) -> Gauge:
        metric = Gauge(name, help_text, labels, self._lock)
        self._add(metric)
        return metric

    def histogram(
        self, name: str, help_text: str, labels: Sequence[str] = (), buckets: Sequence[float] = LATENCY_BUCKETS
    ) -> Histogram:
        metric = Histogram(name, help_text, labels, self._lock, buckets)
        self._add(metric)
        return metric

    def sampled(self, name: str, help_text: str, kind: str, read: Callable[[], float]) -> Sampled:
        metric = Sampled(name, help_text, kind, read, self._lock)
        self._add(metric)
        return metric

    def render(self) -> str:
        """The Prometheus text exposition of every metric (a consistent snapshot)."""
        lines: list[str] = []
        with self._lock:
            for metric in self._metrics:
                lines += metric.header() + metric.samples()
        return "\n".join(lines) + "\n"


# Reasons are label values, so they must come from a small fixed set, never free text.
STOP_STRATEGY = "StrategyStopped"
STOP_TUNING_JOB_ENDED = "TuningJobEnded"
STOP_USER = "StoppedByUser"
STOP_PENDING = "PendingTooLong"
_JOB_REASON = re.compile(r"^([A-Z][A-Za-z]+)(?::|;|$)")


def failure_reason(reason: str) -> str:
    """A bounded label for why a trial failed: the Job condition's reason (BackoffLimitExceeded, ...) or a kind."""
    match = _JOB_REASON.match(reason)
    if match:
        return match.group(1)
    if reason.startswith("its Job was deleted"):
        return "JobDeleted"
    if reason.startswith("cannot create Job"):
        return "InvalidTrialTemplate"
    if reason.startswith("container "):
        return "Error"
    return "Other"


class OperatorMetrics:
    """Every metric the operator exports, named once here (a dashboard's contract)."""

    def __init__(self, registry: Registry | None = None) -> None:
        self.registry = registry or Registry()
        r = self.registry
        job = ("namespace", "tuning_job")
        self.trials_started = r.counter("kubetune_trials_started_total", "Trial Jobs created.", job)
        self.trials_completed = r.counter(
            "kubetune_trials_completed_total", "Trials that ended with exit code 0.", (*job, "reason")
        )
        self.trials_stopped = r.counter(
            "kubetune_trials_stopped_total",
            "Trials stopped before they ended: by the strategy (Hyperband, early stopping), "
            "because the tuning job ended, or by the user.",
            (*job, "reason"),
        )
        self.trials_failed = r.counter(
            "kubetune_trials_failed_total", "Trials that failed, by the Job's failure reason.", (*job, "reason")
        )
        self.tuning_jobs_ended = r.counter(
            "kubetune_tuning_jobs_ended_total", "Tuning jobs that reached a final status.", ("namespace", "status")
        )
        self.suggestion_seconds = r.histogram(
            "kubetune_suggestion_duration_seconds",
            "Time the strategy took to suggest trials (Tuner.ask).",
            ("strategy",),
        )
        self.reconcile_seconds = r.histogram(
            "kubetune_reconcile_duration_seconds", "Time of one reconcile round of one tuning job."
        )
        self.leader = r.gauge("kubetune_leader", "1 while this replica holds the leader Lease and acts.")

    def scrape_errors_from(self, read: Callable[[], float]) -> None:
        """Export the scrape error count that the Scraper keeps (its own counter is the source of truth)."""
        self.registry.sampled(
            "kubetune_scrape_errors_total", "Failed scrapes of trial sidecars (timeouts, HTTP errors).", "counter", read
        )

    def render(self) -> str:
        return self.registry.render()
