"""Leader election and the write fence, without a cluster.

The Lease client and Kube are the real ones, over real sockets: a port nothing
listens on gives urllib3's own MaxRetryError, a server that accepts and never
answers gives a real timeout, and a minimal HTTP server stands in for the two
Lease calls a first acquisition makes. What the election does against the real
API server, outages included, is tests/cluster/operator/test_leadership.py.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest
import urllib3
from kubernetes import client

from kubetune.operator.kube import NOT_LEADER, UNREACHABLE, Kube, KubeError
from kubetune.operator.leader import LeaderElection, LeaseSettings, RenewDeadline, lease_api

# -- the deadline arithmetic -------------------------------------------------------------------


def test_leading_only_within_the_renew_deadline_of_the_last_renew() -> None:
    deadline = RenewDeadline(10.0)
    assert not deadline.leading(0.0)  # never renewed: never leads
    deadline.renewed(100.0)
    assert deadline.leading(100.0) and deadline.leading(109.9)
    assert deadline.remaining(104.0) == pytest.approx(6.0)
    deadline.renewed(105.0)
    assert deadline.leading(114.9)
    deadline.renewed(103.0)  # an older renew that answered late never moves the deadline back
    assert deadline.remaining(110.0) == pytest.approx(5.0)
    assert not deadline.leading(115.0)


def test_a_passed_deadline_stays_passed() -> None:
    deadline = RenewDeadline(1.0)
    deadline.renewed(0.0)
    assert not deadline.leading(1.5)
    deadline.renewed(1.6)  # a renew that succeeded after the deadline must not resume leadership
    assert not deadline.leading(1.7)
    assert deadline.remaining(1.7) == 0.0


def test_the_write_window_reaches_the_earliest_takeover() -> None:
    election = LeaderElection(
        lease_api(_api("http://127.0.0.1:1")), LeaseSettings("ns", "a", duration_seconds=15, renew_deadline_seconds=10)
    )
    assert election.write_window() == 0.0  # never renewed
    election._deadline.renewed(time.monotonic() - 4)  # a renew that started 4 s ago
    assert election.write_window() == pytest.approx(6 + 5, abs=0.5)  # 6 s of leading, then 5 s to the duration
    election._deadline.revoke()
    assert election.write_window() == 0.0


def test_revoke_ends_leadership_at_once() -> None:
    deadline = RenewDeadline(10.0)
    deadline.renewed(0.0)
    deadline.revoke()
    assert not deadline.leading(0.1)
    deadline.renewed(0.2)
    assert not deadline.leading(0.3)


def test_defaults_match_client_go() -> None:
    s = LeaseSettings(namespace="ns", identity="a")
    assert (s.duration_seconds, s.renew_deadline_seconds, s.retry_seconds) == (15.0, 10.0, 2.0)


@pytest.mark.parametrize(
    ("duration", "deadline", "retry"),
    [(10.0, 10.0, 2.0), (10.0, 12.0, 2.0), (15.0, 10.0, 10.0), (15.0, 10.0, 0.0), (15.0, 0.0, 2.0)],
)
def test_a_renew_deadline_not_under_the_duration_is_refused(duration: float, deadline: float, retry: float) -> None:
    with pytest.raises(ValueError, match="retry < renew deadline < duration"):
        LeaseSettings("ns", "a", duration_seconds=duration, renew_deadline_seconds=deadline, retry_seconds=retry)


# -- against real sockets --------------------------------------------------------------------


def _api(url: str) -> client.ApiClient:
    configuration = client.Configuration()
    configuration.host = url
    return client.ApiClient(configuration)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


FAST = {"duration_seconds": 1.5, "renew_deadline_seconds": 1.0, "retry_seconds": 0.1}


def _events(caplog: pytest.LogCaptureFixture, event: str) -> list[dict[str, Any]]:
    return [dict(getattr(r, "kubetune_fields", {})) for r in caplog.records if r.getMessage() == event]


def test_a_standby_survives_a_refused_connection_and_keeps_trying(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="kubetune")
    election = LeaderElection(
        lease_api(_api(f"http://127.0.0.1:{_closed_port()}")), LeaseSettings("ns", "replica-b", **FAST)
    )
    stop = threading.Event()
    result: list[bool] = []
    thread = threading.Thread(target=lambda: result.append(election.acquire(stop)))
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while len(_events(caplog, "leader.error")) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert thread.is_alive()  # still standing by, not crashed
    finally:
        stop.set()
        thread.join(10)
    assert result == [False]
    errors = _events(caplog, "leader.error")
    assert len(errors) >= 3 and all("MaxRetryError" in e["error"] for e in errors), errors
    assert not election.leading()


@pytest.fixture
def silent_server() -> Iterator[int]:
    """Accepts connections and never answers: a hung API server."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    held: list[socket.socket] = []
    done = threading.Event()

    def accept() -> None:
        server.settimeout(0.1)
        while not done.is_set():
            try:
                held.append(server.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield int(server.getsockname()[1])
    done.set()
    thread.join(5)
    for conn in held:
        conn.close()
    server.close()


def test_a_hung_api_server_times_out_within_the_renew_deadline(
    silent_server: int, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="kubetune")
    election = LeaderElection(lease_api(_api(f"http://127.0.0.1:{silent_server}")), LeaseSettings("ns", "b", **FAST))
    stop = threading.Event()
    thread = threading.Thread(target=election.acquire, args=(stop,))
    started = time.monotonic()
    thread.start()
    try:
        while not _events(caplog, "leader.error") and time.monotonic() - started < 30:
            time.sleep(0.05)
    finally:
        stop.set()
        thread.join(10)
    errors = _events(caplog, "leader.error")
    assert errors and "timed out" in errors[0]["error"].lower(), errors


class ApiStandIn(ThreadingHTTPServer):
    """Just enough of coordination.k8s.io for a first acquisition: the Lease does not exist, create it."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _LeaseHandler)
        self.lease: dict[str, Any] | None = None
        self.requests: list[tuple[str, str, dict[str, list[str]]]] = []


class _LeaseHandler(BaseHTTPRequestHandler):
    server: ApiStandIn

    def _answer(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _record(self) -> Any:
        url = urlparse(self.path)
        self.server.requests.append((self.command, url.path, parse_qs(url.query)))
        length = int(self.headers.get("Content-Length") or 0)
        return json.loads(self.rfile.read(length)) if length else None

    def do_GET(self) -> None:
        self._record()
        if self.server.lease is None:
            self._answer(
                404, {"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound", "code": 404}
            )
        else:
            self._answer(200, self.server.lease)

    def do_POST(self) -> None:
        body = self._record()
        body.setdefault("metadata", {})["resourceVersion"] = "1"
        self.server.lease = body
        self._answer(201, body)

    do_PATCH = do_POST
    do_PUT = do_POST

    def do_DELETE(self) -> None:
        self._record()
        self._answer(200, {"kind": "Status", "apiVersion": "v1", "status": "Success"})

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def http_server() -> Iterator[ApiStandIn]:
    server = ApiStandIn()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def test_a_leader_that_cannot_renew_stops_at_its_deadline(
    http_server: ApiStandIn, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="kubetune")
    url = f"http://127.0.0.1:{http_server.server_address[1]}"
    election = LeaderElection(lease_api(_api(url)), LeaseSettings("ns", "replica-a", **FAST))
    stop, lost = threading.Event(), threading.Event()
    assert election.acquire(stop)
    assert election.leading()
    assert _events(caplog, "leader.acquired")[0]["reason"] == "lease was free (created it)"
    http_server.shutdown()  # the API server goes away: renews now hit a closed port
    http_server.server_close()
    election.keep(stop, lost)
    try:
        assert lost.wait(30)
    finally:
        stop.set()
    assert not election.leading()
    (gone,) = _events(caplog, "leader.lost")
    assert gone["reason"].startswith("not renewed within 1s: ") and "Error" in gone["reason"], gone


# -- the fence on every write ----------------------------------------------------------------


def test_a_refused_fence_sends_nothing(http_server: ApiStandIn) -> None:
    kube = Kube(_api(f"http://127.0.0.1:{http_server.server_address[1]}"), fence=lambda: 0.0)
    owner = {"name": "t", "namespace": "ns", "uid": "u"}
    with pytest.raises(KubeError) as refused:
        asyncio.run(kube.event(owner, "Normal", "Test", "hello"))
    assert refused.value.reason == NOT_LEADER and refused.value.status == 0
    with pytest.raises(KubeError):
        asyncio.run(kube.patch_status("ns", "t", {"x": 1}))
    assert http_server.requests == []
    assert kube.requests == 0


def test_writes_name_their_field_manager_and_pass_while_leading(http_server: ApiStandIn) -> None:
    window = [5.0]
    kube = Kube(
        _api(f"http://127.0.0.1:{http_server.server_address[1]}"),
        fence=lambda: window[0],
        field_manager="kubetune-operator-replica-a",
    )
    asyncio.run(kube.create_job({"metadata": {"name": "j", "namespace": "ns"}}))
    asyncio.run(kube.patch_status("ns", "t", {"x": 1}))
    assert [(m, q.get("fieldManager")) for m, _, q in http_server.requests] == [
        ("POST", ["kubetune-operator-replica-a"]),
        ("PATCH", ["kubetune-operator-replica-a"]),
    ]
    window[0] = 0.0  # the renew deadline passed: the next write stays here
    with pytest.raises(KubeError, match=NOT_LEADER):
        asyncio.run(kube.patch_status("ns", "t", {"x": 2}))
    assert len(http_server.requests) == 2 and kube.requests == 2


def test_a_fenced_write_gives_up_when_its_window_closes(silent_server: int) -> None:
    """A hung API server holds a write no longer than the fence allows, not the usual 30 s."""
    kube = Kube(_api(f"http://127.0.0.1:{silent_server}"), fence=lambda: 0.5)
    started = time.monotonic()
    with pytest.raises(KubeError) as failed:
        asyncio.run(kube.patch_status("ns", "t", {"x": 1}))
    assert failed.value.reason == UNREACHABLE and "timed out" in failed.value.message, failed.value
    assert time.monotonic() - started < 10  # 0.5 s, with room for a loaded machine; 30 s without the fence


def test_a_fenced_write_is_not_retried_by_urllib3(monkeypatch: pytest.MonkeyPatch) -> None:
    """urllib3 retries a refused connect with a fresh timeout: a fenced write tries once, then waits for its round."""
    tries: list[object] = []
    connect = urllib3.util.connection.create_connection

    def counted(*args: Any, **kwargs: Any) -> socket.socket:
        tries.append(args[0])
        return connect(*args, **kwargs)

    monkeypatch.setattr(urllib3.util.connection, "create_connection", counted)
    api = _api(f"http://127.0.0.1:{_closed_port()}")
    with pytest.raises(KubeError):
        asyncio.run(Kube(api).patch_status("ns", "t", {"x": 1}))
    assert len(tries) == 4  # unfenced: urllib3's default, three retries
    tries.clear()
    with pytest.raises(KubeError) as failed:
        asyncio.run(Kube(api, fence=lambda: 5.0).patch_status("ns", "t", {"x": 1}))
    assert len(tries) == 1 and failed.value.reason == UNREACHABLE
    assert api.configuration.retries is None  # the caller's own client keeps its retries


def test_a_long_field_manager_is_cut_to_what_the_api_server_accepts() -> None:
    assert len(Kube(_api("http://127.0.0.1:1"), field_manager="m" * 300).field_manager) == 128


def test_an_unreachable_api_server_is_a_kube_error() -> None:
    kube = Kube(_api(f"http://127.0.0.1:{_closed_port()}"))
    with pytest.raises(KubeError) as failed:
        asyncio.run(kube.patch_status("ns", "t", {"x": 1}))
    assert failed.value.reason == UNREACHABLE and failed.value.status == 0
