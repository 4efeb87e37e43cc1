"""The operator's Prometheus metrics, on a prometheus_client registry of the operator's own.

One `OperatorMetrics` per operator process, created at startup and passed down
explicitly (`Deps.metrics`), never prometheus_client's global default registry:
each instance holds its own `CollectorRegistry`, so tests and a second operator
in one process never share a series. The process, platform and garbage-collector
collectors are registered on it, so `process_*` and `python_*` come with the
operator's own `kubetune_*` metrics.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector

CONTENT_TYPE = CONTENT_TYPE_LATEST
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

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


class _Sampled(Collector):
    """A counter read at exposition time from something that already counts it (the Scraper's errors)."""

    def __init__(self, name: str, help_text: str, read: Callable[[], float]) -> None:
        self._name, self._help, self._read = name, help_text, read

    def collect(self) -> Iterable[Metric]:
        family = CounterMetricFamily(self._name, self._help)
        family.add_metric([], float(self._read()))
        yield family


class OperatorMetrics:
    """Every metric the operator exports, named once here (a dashboard's contract)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = r = registry if registry is not None else CollectorRegistry()
        ProcessCollector(registry=r)
        PlatformCollector(registry=r)
        GCCollector(registry=r)
        job = ("namespace", "tuning_job")
        self.trials_started = Counter("kubetune_trials_started_total", "Trial Jobs created.", job, registry=r)
        self.trials_completed = Counter(
            "kubetune_trials_completed_total", "Trials that ended with exit code 0.", (*job, "reason"), registry=r
        )
        self.trials_stopped = Counter(
            "kubetune_trials_stopped_total",
            "Trials stopped before they ended: by the strategy (Hyperband, early stopping), "
            "because the tuning job ended, or by the user.",
            (*job, "reason"),
            registry=r,
        )
        self.trials_failed = Counter(
            "kubetune_trials_failed_total",
            "Trials that failed, by the Job's failure reason.",
            (*job, "reason"),
            registry=r,
        )
        self.tuning_jobs_ended = Counter(
            "kubetune_tuning_jobs_ended_total",
            "Tuning jobs that reached a final status.",
            ("namespace", "status"),
            registry=r,
        )
        self.suggestion_seconds = Histogram(
            "kubetune_suggestion_duration_seconds",
            "Time the strategy took to suggest trials (Tuner.ask).",
            ("strategy",),
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.reconcile_seconds = Histogram(
            "kubetune_reconcile_duration_seconds",
            "Time of one reconcile round of one tuning job.",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.leader = Gauge("kubetune_leader", "1 while this replica holds the leader Lease and acts.", registry=r)

    def scrape_errors_from(self, read: Callable[[], float]) -> None:
        """Export the scrape error count that the Scraper keeps (its own counter is the source of truth)."""
        self.registry.register(
            _Sampled("kubetune_scrape_errors_total", "Failed scrapes of trial sidecars (timeouts, HTTP errors).", read)
        )

    def forget_tuning_job(self, namespace: str, name: str) -> None:
        """Drop a deleted tuning job's series, so the label set does not grow with every job ever run."""
        labels = {"namespace": namespace, "tuning_job": name}
        for counter in (self.trials_started, self.trials_completed, self.trials_stopped, self.trials_failed):
            counter.remove_by_labels(labels)

    def render(self) -> bytes:
        """The Prometheus text exposition of every metric."""
        return generate_latest(self.registry)
