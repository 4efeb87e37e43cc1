"""The operator's Prometheus exposition and its probe endpoints."""

from __future__ import annotations

import asyncio
import re
import sys
import urllib.error
import urllib.request
from typing import cast

import pytest
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

from kubetune.operator.controller import Controller
from kubetune.operator.endpoints import EndpointServer, Health
from kubetune.operator.kube import Kube, KubeError
from kubetune.operator.metrics import STOP_STRATEGY, STOP_USER, OperatorMetrics, failure_reason
from kubetune.operator.reconcile import Deps
from kubetune.operator.scrape import Scraper
from kubetune.operator.settings import OperatorSettings
from kubetune.operator.trialjob import SidecarConfig

SAMPLE = re.compile(
    r'^[a-zA-Z_:][a-zA-Z0-9_:]*(\{([a-zA-Z_][a-zA-Z0-9_]*="([^"\\]|\\.)*",?)*\})? (?:[-+0-9.eE]+|[-+]Inf|NaN)$'
)


def _text(metrics: OperatorMetrics) -> str:
    return metrics.render().decode()


def test_exposition_is_valid_text_format() -> None:
    metrics = OperatorMetrics()
    metrics.trials_started.labels("ns", "job-a").inc()
    metrics.trials_started.labels("ns", "job-a").inc()
    metrics.trials_failed.labels("ns", 'we"ird\njob', "DeadlineExceeded").inc()
    metrics.suggestion_seconds.labels("Bayesian").observe(0.02)
    metrics.scrape_errors_from(lambda: 3)
    text = _text(metrics)
    for line in text.splitlines():
        assert line.startswith("# HELP ") or line.startswith("# TYPE ") or SAMPLE.match(line), line
    assert 'kubetune_trials_started_total{namespace="ns",tuning_job="job-a"} 2.0' in text
    assert 'tuning_job="we\\"ird\\njob"' in text
    assert "# TYPE kubetune_scrape_errors_total counter" in text and "kubetune_scrape_errors_total 3.0" in text
    assert "# TYPE kubetune_suggestion_duration_seconds histogram" in text
    assert 'kubetune_suggestion_duration_seconds_bucket{le="0.025",strategy="Bayesian"} 1.0' in text


def test_every_documented_metric_is_exported_with_its_labels() -> None:
    """The chart README's names are a dashboard's contract: the same names and labels as before prometheus_client."""
    metrics = OperatorMetrics()
    metrics.trials_started.labels("ns", "a").inc()
    metrics.trials_completed.labels("ns", "a", "ObjectiveReported").inc()
    metrics.trials_stopped.labels("ns", "a", STOP_STRATEGY).inc()
    metrics.trials_failed.labels("ns", "a", "Error").inc()
    metrics.tuning_jobs_ended.labels("ns", "Completed").inc()
    metrics.leader.set(1)
    with metrics.reconcile_seconds.time():
        pass
    text = _text(metrics)
    for sample in (
        'kubetune_trials_started_total{namespace="ns",tuning_job="a"} 1.0',
        'kubetune_trials_completed_total{namespace="ns",reason="ObjectiveReported",tuning_job="a"} 1.0',
        'kubetune_trials_stopped_total{namespace="ns",reason="StrategyStopped",tuning_job="a"} 1.0',
        'kubetune_trials_failed_total{namespace="ns",reason="Error",tuning_job="a"} 1.0',
        'kubetune_tuning_jobs_ended_total{namespace="ns",status="Completed"} 1.0',
        "kubetune_reconcile_duration_seconds_count 1.0",
        "kubetune_leader 1.0",
    ):
        assert sample in text, sample


def test_process_and_python_collectors_come_with_the_registry() -> None:
    text = _text(OperatorMetrics())
    assert "python_info{" in text and "python_gc_objects_collected_total{" in text
    if sys.platform == "linux":  # the process collector reads /proc
        assert "process_resident_memory_bytes " in text and "process_open_fds " in text


def test_each_operator_has_its_own_registry() -> None:
    first, second = OperatorMetrics(), OperatorMetrics()
    first.trials_started.labels("ns", "a").inc()
    assert "kubetune_trials_started_total{" not in _text(second)
    assert "kubetune_trials_started_total{" not in generate_latest(REGISTRY).decode()


def test_a_timed_block_passes_its_exception_through_and_is_still_counted() -> None:
    metrics = OperatorMetrics()
    error = KubeError(409, "Conflict", "changed meanwhile")
    with pytest.raises(KubeError) as raised, metrics.suggestion_seconds.labels("Random").time():
        raise error
    assert raised.value is error
    assert 'kubetune_suggestion_duration_seconds_count{strategy="Random"} 1.0' in _text(metrics)


def test_forgetting_a_tuning_job_drops_only_its_series() -> None:
    metrics = OperatorMetrics()
    for name in ("gone", "kept"):
        metrics.trials_started.labels("ns", name).inc()
        metrics.trials_stopped.labels("ns", name, STOP_USER).inc()
        metrics.trials_failed.labels("ns", name, "Error").inc()
        metrics.trials_completed.labels("ns", name, "ObjectiveReported").inc()
    metrics.trials_started.labels("other", "gone").inc()
    metrics.tuning_jobs_ended.labels("ns", "Completed").inc()
    metrics.forget_tuning_job("ns", "gone")
    text = _text(metrics)
    gone = [line for line in text.splitlines() if 'tuning_job="gone"' in line]
    assert [line for line in gone if "_total{" in line] == [
        'kubetune_trials_started_total{namespace="other",tuning_job="gone"} 1.0'
    ]
    assert all('namespace="other"' in line for line in gone), gone  # the _created samples go too
    for family in ("started", "stopped", "failed", "completed"):
        assert re.search(rf'kubetune_trials_{family}_total\{{[^}}]*tuning_job="kept"', text), family
    assert 'kubetune_tuning_jobs_ended_total{namespace="ns",status="Completed"} 1.0' in text


def test_a_deleted_tuning_job_loses_its_series() -> None:
    metrics = OperatorMetrics()
    deps = Deps(
        kube=cast(Kube, None),  # a DELETED event makes no request
        scraper=Scraper(1, 1.0),
        settings=OperatorSettings(sidecar=SidecarConfig(image="sidecar:test")),
        jobs_of=lambda namespace, name, uid: [],
        pods_of=lambda namespace, name, uid: [],
        metrics=metrics,
    )
    metrics.trials_started.labels("ns", "gone").inc()
    metrics.trials_started.labels("ns", "kept").inc()
    body = {"metadata": {"name": "gone", "namespace": "ns", "uid": "u-1"}}
    asyncio.run(Controller(deps).observe("DELETED", body))
    text = _text(metrics)
    assert 'tuning_job="gone"' not in text and 'tuning_job="kept"} 1.0' in text


@pytest.mark.parametrize(
    ("reason", "label"),
    [
        ("DeadlineExceeded: Job was active longer than specified deadline", "DeadlineExceeded"),
        ("BackoffLimitExceeded; container train exited with code 1", "BackoffLimitExceeded"),
        ("its Job was deleted", "JobDeleted"),
        ("container train exited with code 3", "Error"),
        ("something unheard of", "Other"),
    ],
)
def test_failure_reasons_are_a_bounded_set(reason: str, label: str) -> None:
    assert failure_reason(reason) == label


def _get(port: int, path: str) -> tuple[int, str]:
    return _get_typed(port, path)[:2]


def _get_typed(port: int, path: str) -> tuple[int, str, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
            return response.status, response.read().decode(), response.headers["Content-Type"]
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(), exc.headers["Content-Type"]


def test_endpoints_serve_metrics_and_probes() -> None:
    metrics, health = OperatorMetrics(), Health()
    server = EndpointServer("127.0.0.1", 0, metrics, health)
    server.start()
    try:
        assert _get(server.port, "/healthz")[0] == 200
        assert _get(server.port, "/readyz")[0] == 503  # not started yet
        health.ready.set()
        assert _get(server.port, "/readyz")[0] == 200
        metrics.trials_started.labels("ns", "job").inc()
        code, body, content_type = _get_typed(server.port, "/metrics")
        assert code == 200 and content_type == CONTENT_TYPE_LATEST
        assert 'kubetune_trials_started_total{namespace="ns",tuning_job="job"} 1.0' in body
        assert "process_cpu_seconds_total" in body or sys.platform != "linux"
        health.failed.set()
        assert _get(server.port, "/healthz")[0] == 503 and _get(server.port, "/readyz")[0] == 503
        assert _get(server.port, "/nope")[0] == 404
    finally:
        server.stop()
