"""The kubelet's log endpoint, so that `kubectl logs` works.

The API server proxies `kubectl logs` to https://<node InternalIP>:<kubelet
port>/containerLogs/<namespace>/<pod>/<container>; this serves that path
from the files the shims write, with tailLines, limitBytes, previous and
follow. It reuses the API server's serving certificate, which names the
bridge address the nodes advertise.
"""

from __future__ import annotations

import http.server
import logging
import ssl
import threading
import time
import urllib.parse
from collections.abc import Callable
from pathlib import Path

from .context import AgentContext

log = logging.getLogger(__name__)
# (namespace, pod, container, previous) -> (log file, still running?)
Lookup = Callable[[str, str, str, bool], "tuple[Path, Callable[[], bool]] | None"]


class LogServer(threading.Thread):
    """Serves container logs over HTTPS on the bridge address."""

    def __init__(self, ctx: AgentContext, listen: tuple[str, int], cert: Path, key: Path) -> None:
        super().__init__(name="log server", daemon=True)
        self.lookup: Lookup | None = None
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.handle(self)

            def log_message(self, fmt: str, *args: object) -> None:
                log.debug(fmt, *args)

        self.httpd = http.server.ThreadingHTTPServer(listen, Handler)
        self.httpd.daemon_threads = True
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(str(cert), str(key))
        self.httpd.socket = context.wrap_socket(self.httpd.socket, server_side=True)
        self.port = int(self.httpd.server_address[1])
        self.ctx = ctx

    def run(self) -> None:
        self.httpd.serve_forever(poll_interval=0.5)

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def handle(self, request: http.server.BaseHTTPRequestHandler) -> None:
        url = urllib.parse.urlparse(request.path)
        parts = url.path.strip("/").split("/")
        query = {k: v[-1] for k, v in urllib.parse.parse_qs(url.query).items()}
        found = None
        if len(parts) == 4 and parts[0] == "containerLogs" and self.lookup is not None:
            found = self.lookup(parts[1], parts[2], parts[3], query.get("previous") == "true")
        if found is None:
            request.send_error(404, "container not found")
            return
        path, running = found
        data = path.read_bytes() if path.exists() else b""
        if "tailLines" in query:
            lines = data.splitlines(keepends=True)
            data = b"".join(lines[-int(query["tailLines"]) :]) if int(query["tailLines"]) else b""
        limit = int(query["limitBytes"]) if "limitBytes" in query else None
        request.send_response(200)
        request.send_header("Content-Type", "text/plain")
        request.end_headers()
        sent = 0
        try:
            chunk = data[:limit] if limit is not None else data
            request.wfile.write(chunk)
            sent += len(chunk)
            if query.get("follow") != "true":
                return
            offset = path.stat().st_size if path.exists() else 0
            while limit is None or sent < limit:
                more = b""
                if path.exists():
                    with open(path, "rb") as f:
                        f.seek(offset)
                        more = f.read()
                if more:
                    offset += len(more)
                    request.wfile.write(more)
                    request.wfile.flush()
                    sent += len(more)
                elif not running():
                    return
                else:
                    time.sleep(0.2)
        except OSError:
            return
