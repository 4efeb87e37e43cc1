"""The operator's HTTP endpoint: /metrics for Prometheus, /healthz and /readyz for the kubelet's probes.

/metrics is prometheus_client's text exposition of the operator's own registry;
the server stays ours so that the probes share its port.

It runs in a thread of its own and starts before leader election, so a standby
replica waiting for the Lease answers its probes too (kopf's own liveness
endpoint exists only once kopf runs, i.e. on the leader).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from kubetune.operator.metrics import CONTENT_TYPE, OperatorMetrics


@dataclass
class Health:
    """What the probes report; set by the operator's startup and shutdown."""

    ready: threading.Event = field(default_factory=threading.Event)
    """Set once the operator has loaded its credentials and is either acting (leader) or standing by."""
    failed: threading.Event = field(default_factory=threading.Event)
    """Set when the process cannot go on (leadership lost, loop ended): liveness fails so the pod restarts."""


class EndpointServer:
    def __init__(self, address: str, port: int, metrics: OperatorMetrics, health: Health) -> None:
        self.metrics = metrics
        self.health = health
        self._server = ThreadingHTTPServer((address, port), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="kubetune-endpoints", daemon=True)

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                if path == "/metrics":
                    self._send(200, owner.metrics.render(), CONTENT_TYPE)
                elif path == "/healthz":
                    failed = owner.health.failed.is_set()
                    self._send(503 if failed else 200, "failed\n" if failed else "ok\n")
                elif path == "/readyz":
                    ready = owner.health.ready.is_set() and not owner.health.failed.is_set()
                    self._send(200 if ready else 503, "ok\n" if ready else "not ready\n")
                else:
                    self._send(404, "not found: try /metrics, /healthz or /readyz\n")

            def _send(self, code: int, body: str | bytes, content_type: str = "text/plain; charset=utf-8") -> None:
                data = body.encode() if isinstance(body, str) else body
                self.send_response(code)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: object) -> None:
                pass  # a probe every few seconds is not news

        return Handler
