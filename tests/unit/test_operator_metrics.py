"""The operator's Prometheus exposition and its probe endpoints."""

from __future__ import annotations

import re
import urllib.error
import urllib.request

import pytest

from kubetune.operator.endpoints import EndpointServer, Health
from kubetune.operator.metrics import OperatorMetrics, Registry, failure_reason

SAMPLE = re.compile(r'^[a-zA-Z_:][a-zA-Z0-9_:]*(\{([a-zA-Z_][a-zA-Z0-9_]*="([^"\\]|\\.)*",?)*\})? [-+0-9.eInf]+$')


def test_exposition_is_valid_text_format() -> None:
    metrics = OperatorMetrics()
    metrics.trials_started.inc("ns", "job-a")
    metrics.trials_started.inc("ns", "job-a")
    metrics.trials_failed.inc("ns", 'we"ird\njob', "DeadlineExceeded")
    metrics.suggestion_seconds.observe(0.02, "Bayesian")
    metrics.scrape_errors_from(lambda: 3)
    text = metrics.render()
    for line in text.splitlines():
        assert line.startswith("# HELP ") or line.startswith("# TYPE ") or SAMPLE.match(line), line
    assert 'kubetune_trials_started_total{namespace="ns",tuning_job="job-a"} 2' in text
    assert 'tuning_job="we\\"ird\\njob"' in text
    assert "kubetune_scrape_errors_total 3" in text
    assert "# TYPE kubetune_suggestion_duration_seconds histogram" in text


def test_histogram_buckets_are_cumulative() -> None:
    registry = Registry()
    latency = registry.histogram("x_seconds", "x", ("k",), buckets=(0.1, 1.0))
    for value in (0.05, 0.5, 5.0):
        latency.observe(value, "a")
    text = registry.render()
    assert 'x_seconds_bucket{k="a",le="0.1"} 1' in text
    assert 'x_seconds_bucket{k="a",le="1"} 2' in text
    assert 'x_seconds_bucket{k="a",le="+Inf"} 3' in text
    assert 'x_seconds_count{k="a"} 3' in text and 'x_seconds_sum{k="a"} 5.55' in text


def test_wrong_label_count_and_duplicate_names_are_refused() -> None:
    registry = Registry()
    counter = registry.counter("a_total", "a", ("x",))
    with pytest.raises(ValueError, match="takes labels"):
        counter.inc()
    with pytest.raises(ValueError, match="duplicate"):
        registry.counter("a_total", "again")


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
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_endpoints_serve_metrics_and_probes() -> None:
    metrics, health = OperatorMetrics(), Health()
    server = EndpointServer("127.0.0.1", 0, metrics, health)
    server.start()
    try:
        assert _get(server.port, "/healthz")[0] == 200
        assert _get(server.port, "/readyz")[0] == 503  # not started yet
        health.ready.set()
        assert _get(server.port, "/readyz")[0] == 200
        metrics.trials_started.inc("ns", "job")
        code, body = _get(server.port, "/metrics")
        assert code == 200 and 'kubetune_trials_started_total{namespace="ns",tuning_job="job"} 1' in body
        health.failed.set()
        assert _get(server.port, "/healthz")[0] == 503 and _get(server.port, "/readyz")[0] == 503
        assert _get(server.port, "/nope")[0] == 404
    finally:
        server.stop()
