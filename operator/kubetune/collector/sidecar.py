"""`kubetune sidecar`: the metrics collector inside a trial pod.

It runs the collector `kubetune run` uses over what the training container
leaves in the shared volume — its captured output (when the operator wrapped
its command) and the metrics file kubetune.report() appends to — serves the
series over HTTP for the operator to scrape, and writes the final summary into
its termination message when the training container has ended or at SIGTERM,
so the last values reach the operator even if the pod is gone before the next
scrape. The summary also holds the collector's diagnostics (metrics that gave
no value, definitions that never matched, rejected records), so a trial without
an objective can say why: kubetune.collector.collector.explain_missing_objective.
"""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

from kubetune.collector.collector import LineTail, MetricCollector, MetricPattern, MetricsFileTail
from kubetune.logs import decision

log = logging.getLogger("kubetune.sidecar")

SHARED_DIR = "/kubetune"
METRICS_FILE = "metrics.jsonl"
STDOUT_FILE = "stdout.log"
STDERR_FILE = "stderr.log"
EXIT_CODE_FILE = "exit-code"
DEFAULT_PORT = 9465
MAX_POINTS_PER_RESPONSE = 5000


@dataclass(frozen=True)
class Definition:
    """One metric definition as the operator passes it (validated as the spec's MetricDefinition there)."""

    name: str
    regex: str

    @classmethod
    def from_json(cls, raw: Any) -> Definition:
        """Checks what the collector relies on: a named string regex that compiles, with a group for the value."""
        if not isinstance(raw, dict) or not isinstance(raw.get("name"), str) or not isinstance(raw.get("regex"), str):
            raise ValueError(f"a metric definition must have a string name and regex, not {raw!r:.200}")
        try:
            groups = re.compile(raw["regex"]).groups
        except re.error as exc:
            raise ValueError(f"metric {raw['name']!r}: regex does not compile: {exc}") from None
        if groups < 1:
            raise ValueError(f"metric {raw['name']!r}: regex has no capture group around the value")
        return cls(raw["name"], raw["regex"])


@dataclass(frozen=True)
class SidecarSettings:
    """Read from the environment the operator gives the sidecar container."""

    shared_dir: Path
    objective: str
    definitions: tuple[MetricPattern, ...]
    port: int
    termination_log: Path
    poll_seconds: float = 0.5

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> SidecarSettings:
        env = dict(os.environ if env is None else env)
        raw = json.loads(env.get("KUBETUNE_METRIC_DEFINITIONS", "[]"))
        return cls(
            shared_dir=Path(env.get("KUBETUNE_DIR", SHARED_DIR)),
            objective=env["KUBETUNE_OBJECTIVE"],
            definitions=tuple(Definition.from_json(d) for d in raw),
            port=int(env.get("KUBETUNE_SIDECAR_PORT", DEFAULT_PORT)),
            termination_log=Path(env.get("KUBETUNE_TERMINATION_LOG", "/dev/termination-log")),
        )


class TrialWatcher:
    """Feeds the collector from the shared volume; thread-safe for the HTTP handlers."""

    def __init__(self, settings: SidecarSettings) -> None:
        self.settings = settings
        self.collector = MetricCollector(settings.definitions, settings.objective)
        self._lock = threading.Lock()
        directory = settings.shared_dir
        self._outputs = [LineTail(str(directory / STDOUT_FILE)), LineTail(str(directory / STDERR_FILE))]
        self._metrics = MetricsFileTail(str(directory / METRICS_FILE))
        self._exit_file = directory / EXIT_CODE_FILE
        self.exit_code: int | None = None

    def poll(self, final: bool = False) -> None:
        """Read what is new; `final` also takes unterminated last lines, the writer being gone."""
        exit_code = self._read_exit_code()
        done = final or exit_code is not None
        with self._lock:
            for tail in self._outputs:
                lines = tail.read_lines() + (tail.flush_partial() if done else [])
                for line in lines:
                    self.collector.feed_line(line)
            for record in self._metrics.read_records():
                self.collector.feed_record(record)
            if exit_code is not None:
                self.exit_code = exit_code

    def _read_exit_code(self) -> int | None:
        try:
            return int(self._exit_file.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None

    def series(self, since: int) -> dict[str, Any]:
        with self._lock:
            points = self.collector.series(self.settings.objective)
            chosen = points[since : since + MAX_POINTS_PER_RESPONSE]
            return {
                "objective": self.settings.objective,
                "count": len(points),
                "since": since,
                "points": [[p.step, p.value, p.timestamp] for p in chosen],
                "ended": self.exit_code is not None,
                "exitCode": self.exit_code,
            }

    def summary(self) -> dict[str, Any]:
        with self._lock:
            summary = self.collector.summary()
        summary["exitCode"] = self.exit_code
        return summary

    def write_termination_message(self) -> None:
        text = json.dumps(self.summary(), separators=(",", ":"))
        try:
            self.settings.termination_log.write_text(text)
        except OSError as exc:  # never let the last word crash the sidecar
            decision(log, "termination_message.failed", logging.WARNING, error=str(exc))


def _handler(watcher: TrialWatcher) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            url = urlparse(self.path)
            if url.path == "/healthz":
                self._send(200, {"ok": True})
            elif url.path == "/series":
                try:
                    since = max(0, int(parse_qs(url.query).get("since", ["0"])[0]))
                except ValueError:
                    self._send(400, {"error": "since must be an integer"})
                    return
                self._send(200, watcher.series(since))
            elif url.path == "/summary":
                self._send(200, watcher.summary())
            else:
                self._send(404, {"error": f"no such path {url.path}"})

        def _send(self, code: int, body: dict[str, Any]) -> None:
            data = json.dumps(body, separators=(",", ":")).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:  # scrapes are not decisions
            return

    return Handler


def run_sidecar(settings: SidecarSettings, stop: threading.Event | None = None) -> int:
    """Serve until SIGTERM; the termination message is written when the trial ends and again at exit."""
    settings.shared_dir.mkdir(parents=True, exist_ok=True)
    watcher = TrialWatcher(settings)
    server = ThreadingHTTPServer(("0.0.0.0", settings.port), _handler(watcher))
    server.daemon_threads = True
    stop = stop or threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    # shutdown() waits for the serving loop to look up: at 0.5 s (the default) that was a quarter of a second
    # on average between SIGTERM and exit, which the kubelet, and so the operator, waits out for every trial.
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="http", daemon=True).start()
    decision(log, "sidecar.started", port=settings.port, objective=settings.objective)
    written_for_exit = False
    while not stop.wait(settings.poll_seconds):
        watcher.poll()
        if watcher.exit_code is not None and not written_for_exit:
            watcher.write_termination_message()
            written_for_exit = True
            decision(log, "trial.ended", exit_code=watcher.exit_code, final=watcher.collector.final_objective())
    watcher.poll(final=True)
    watcher.write_termination_message()
    server.shutdown()
    decision(log, "sidecar.stopped", final=watcher.collector.final_objective())
    return 0
