"""Operator settings, grouped and documented once; set at startup from the command line."""

from __future__ import annotations

from dataclasses import dataclass, field

from kubetune.operator.trialjob import SidecarConfig


@dataclass(frozen=True)
class ScrapeSettings:
    interval_seconds: float = 5.0
    """How often running trials' sidecars are scraped (and the loop runs when nothing wakes it)."""
    timeout_seconds: float = 3.0
    """Per request: a sidecar slower than this is skipped until the next round."""
    concurrency: int = 32
    """Requests in flight at once, across every tuning job."""
    record_interval_seconds: float = 10.0
    """Least time between two writes of a running trial's reports to its Job (decisions are written at once)."""


@dataclass(frozen=True)
class OperatorSettings:
    sidecar: SidecarConfig
    scrape: ScrapeSettings = field(default_factory=ScrapeSettings)
    namespaces: tuple[str, ...] = ()
    """Namespaces to watch; empty means all."""
    summary_grace_seconds: float = 15.0
    """How long to wait, after a trial's Job completed, for its sidecar's termination message."""
    job_visible_grace_seconds: float = 30.0
    """How long a created Job may be missing from the watch before it counts as deleted."""
