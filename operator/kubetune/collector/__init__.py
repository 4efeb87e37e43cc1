"""Metrics collection, shared by `kubetune run` and the in-pod sidecar: one code path, one behaviour."""

from kubetune.collector.collector import MetricCollector, MetricPoint
from kubetune.collector.report import METRICS_FILE_ENV, report

__all__ = ["METRICS_FILE_ENV", "MetricCollector", "MetricPoint", "report"]
