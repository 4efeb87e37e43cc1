"""Leader election on a coordination.k8s.io Lease, as client-go's leaderelection does it, and fenced.

Only the holder of the Lease acts, so two replicas never both act on one tuning
job. Three durations make that hold without trusting the replicas' wall clocks:

- a standby takes the Lease only once it has seen the same record, unchanged,
  for the lease duration, timed on its own monotonic clock from when it first
  saw it (client-go's rule: another node's clock never enters the sum);
- the leader acts only while its last successful renew *started* less than the
  renew deadline ago; `LeaderElection.leading` answers that from the monotonic
  clock alone, so it turns false on time even if the renew thread is stuck in a
  request, and every write the operator makes asks it first (kube.Kube's fence);
- the renew deadline is shorter than the lease duration, so the leader has
  stopped before any standby may conclude that the Lease expired;
- a write that left before the renew deadline must land before then too, so
  each request's timeout is the time left to the lease duration
  (`LeaderElection.write_window`): the client hangs up before a standby may
  act, which cancels the request in the API server unless it already went to
  etcd. urllib3's retries, which would start the clock again, are off for
  fenced requests.

Every error while acquiring or renewing counts the same, not only API errors: a
refused connection (urllib3's MaxRetryError), a timeout, a 500. A standby logs
it and keeps trying; a leader keeps trying until its deadline, then gives up for
good — the process exits and comes back as a standby.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from dataclasses import dataclass

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from kubetune.logs import decision
from kubetune.operator.kube import without_retries

log = logging.getLogger("kubetune.operator")


@dataclass(frozen=True)
class LeaseSettings:
    namespace: str
    identity: str
    """This replica's name in the Lease: a container restarted in the same pod takes its lease back at once."""
    name: str = "kubetune-operator"
    duration_seconds: float = 15.0
    """A standby takes the Lease once it has seen it unrenewed for this long."""
    renew_deadline_seconds: float = 10.0
    """The leader stops acting once it has not renewed for this long; shorter than the duration, so it
    stops before a standby can take over."""
    retry_seconds: float = 2.0
    """Between two tries to acquire or renew: a few tries fit in the renew deadline."""

    def __post_init__(self) -> None:
        if not 0 < self.retry_seconds < self.renew_deadline_seconds < self.duration_seconds:
            raise ValueError(
                "lease timings must satisfy 0 < retry < renew deadline < duration, got retry "
                f"{self.retry_seconds}s, renew deadline {self.renew_deadline_seconds}s, "
                f"duration {self.duration_seconds}s"
            )


def lease_api(api: client.ApiClient) -> client.CoordinationV1Api:
    """A Lease client on its own connection pool and without urllib3's retries.

    A renew must answer within its timeout: retries would multiply that timeout,
    and a pool shared with the operator's writes could keep the renew waiting
    for a free connection. The credentials and server are the operator's own.
    """
    return client.CoordinationV1Api(without_retries(api))


class RenewDeadline:
    """Whether the last renew is recent enough to act on: the fence every write asks.

    Times are monotonic seconds passed in by the caller. Once the deadline has
    passed, or `revoke` was called, it stays passed: a leader that lost the
    Lease for a moment must not resume acting beside the replica that may have
    taken it meanwhile.
    """

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._renewed_at: float | None = None
        self._revoked = False
        self._lock = threading.Lock()

    def renewed(self, started_at: float) -> None:
        """A renew that started at `started_at` succeeded (the start, since the write may land any time after)."""
        with self._lock:
            if self._revoked:
                return
            if self._renewed_at is None or started_at > self._renewed_at:
                self._renewed_at = started_at

    def remaining(self, now: float) -> float:
        """Seconds left to act; 0 once the deadline has passed or leadership was revoked."""
        with self._lock:
            if self._revoked or self._renewed_at is None:
                return 0.0
            left = self._renewed_at + self.seconds - now
            if left <= 0:
                self._revoked = True
                return 0.0
            return left

    def leading(self, now: float) -> bool:
        return self.remaining(now) > 0

    def revoke(self) -> None:
        with self._lock:
            self._revoked = True


@dataclass(frozen=True)
class Attempt:
    """What one try to acquire or renew found."""

    held: bool
    """This replica holds the Lease now."""
    reason: str
    """Why it holds it, or why not."""
    holder: str = ""
    """Who holds it, when someone else does (empty: nobody, or unknown after a conflict)."""


_Record = tuple[str, dt.datetime | None, dt.datetime | None, int | None]


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, ApiException):
        return f"{type(exc).__name__}: {exc.status} {exc.reason}"
    return f"{type(exc).__name__}: {exc}"[:500]


class LeaderElection:
    def __init__(self, leases: client.CoordinationV1Api, settings: LeaseSettings) -> None:
        self._leases = leases
        self.settings = settings
        self.identity = settings.identity
        self._deadline = RenewDeadline(settings.renew_deadline_seconds)
        self._observed: tuple[_Record, float] | None = None
        """The other holder's record as last seen, and since when (monotonic) it has looked so."""

    def _log_error(self, error: str) -> None:
        decision(log, "leader.error", logging.WARNING, lease=self.settings.name, identity=self.identity, error=error)

    def leading(self) -> bool:
        """True while this replica may act: its last successful renew began within the renew deadline."""
        return self._deadline.leading(time.monotonic())

    def write_window(self) -> float:
        """Seconds a request sent now may take and still land before any standby may lead; 0: send none.

        A standby takes the Lease no sooner than the lease duration after our last
        successful renew started; we stop sending at the renew deadline after it.
        """
        left = self._deadline.remaining(time.monotonic())
        if left <= 0:
            return 0.0
        return left + self.settings.duration_seconds - self.settings.renew_deadline_seconds

    def _attempt(self, timeout: float, take_over: bool) -> Attempt:
        """One read and at most one write of the Lease; `take_over` False only renews our own."""
        s = self.settings
        try:
            lease = self._leases.read_namespaced_lease(s.name, s.namespace, _request_timeout=timeout)
        except ApiException as exc:
            if exc.status != 404 or not take_over:
                raise
            return self._create(timeout)
        spec = lease.spec or client.V1LeaseSpec()
        holder = spec.holder_identity or ""
        if holder == self.identity:
            reason = "took back own lease"
        elif not take_over:
            return Attempt(False, f"lease taken by {holder or 'nobody'}", holder)
        elif not holder:
            reason = "lease was free"
        else:
            record: _Record = (holder, spec.renew_time, spec.acquire_time, spec.lease_transitions)
            now = time.monotonic()
            if self._observed is None or self._observed[0] != record:
                self._observed = (record, now)
            unchanged = now - self._observed[1]
            duration = spec.lease_duration_seconds or s.duration_seconds
            if unchanged < duration:
                return Attempt(False, f"held by {holder}", holder)
            reason = f"lease expired (held by {holder}, unrenewed for {unchanged:.1f}s)"
        wall = _now()
        if holder != self.identity:
            spec.acquire_time = wall
            spec.lease_transitions = (spec.lease_transitions or 0) + 1
        spec.holder_identity = self.identity
        spec.renew_time = wall
        spec.lease_duration_seconds = int(s.duration_seconds + 0.999)
        lease.spec = spec
        try:  # the resourceVersion makes this a compare-and-swap: one winner
            self._leases.replace_namespaced_lease(s.name, s.namespace, lease, _request_timeout=timeout)
        except ApiException as exc:
            if exc.status == 409:
                return Attempt(False, "the lease changed meanwhile (409)")
            raise
        return Attempt(True, reason)

    def _create(self, timeout: float) -> Attempt:
        s = self.settings
        wall = _now()
        body = client.V1Lease(
            metadata=client.V1ObjectMeta(name=s.name, namespace=s.namespace),
            spec=client.V1LeaseSpec(
                holder_identity=self.identity,
                lease_duration_seconds=int(s.duration_seconds + 0.999),
                acquire_time=wall,
                renew_time=wall,
                lease_transitions=0,
            ),
        )
        try:
            self._leases.create_namespaced_lease(s.namespace, body, _request_timeout=timeout)
        except ApiException as exc:
            if exc.status == 409:
                return Attempt(False, "another replica created the lease first (409)")
            raise
        return Attempt(True, "lease was free (created it)")

    def acquire(self, stop: threading.Event) -> bool:
        """Block until this process leads (True) or `stop` is set (False); no error ends the wait."""
        s = self.settings
        waiting_logged = False
        while not stop.is_set():
            started = time.monotonic()
            try:
                attempt = self._attempt(s.renew_deadline_seconds, take_over=True)
            except Exception as exc:  # an outage, a timeout, a 500: a standby keeps standing by
                self._log_error(_describe(exc))
            else:
                if attempt.held:
                    self._deadline.renewed(started)
                    decision(log, "leader.acquired", lease=s.name, identity=self.identity, reason=attempt.reason)
                    return True
                if not waiting_logged:
                    decision(log, "leader.waiting", lease=s.name, identity=self.identity, reason=attempt.reason)
                    waiting_logged = True
            stop.wait(s.retry_seconds)
        return False

    def keep(self, stop: threading.Event, lost: threading.Event) -> threading.Thread:
        """Renew in the background until `stop`; set `lost` once the renew deadline passed or the Lease was taken."""
        thread = threading.Thread(target=self._renew, args=(stop, lost), name="lease", daemon=True)
        thread.start()
        return thread

    def _renew(self, stop: threading.Event, lost: threading.Event) -> None:
        s = self.settings
        reason = "the renew thread ended unexpectedly"
        last_error = "no error"
        try:
            while True:
                left = self._deadline.remaining(time.monotonic())
                if left <= 0:
                    reason = f"not renewed within {s.renew_deadline_seconds:g}s: {last_error}"
                    return
                if stop.wait(min(s.retry_seconds, left)):
                    reason = ""
                    return
                started = time.monotonic()
                left = self._deadline.remaining(started)
                if left <= 0:
                    continue
                try:
                    attempt = self._attempt(left, take_over=False)
                except Exception as exc:  # every failure counts alike: retry until the deadline
                    last_error = _describe(exc)
                    self._log_error(last_error)
                    continue
                if attempt.held:
                    self._deadline.renewed(started)
                    last_error = "no error"
                elif attempt.holder:
                    reason = attempt.reason
                    return
                else:
                    last_error = attempt.reason
                    self._log_error(last_error)
        finally:
            if reason:  # anything but a requested stop: stop acting, and let the operator exit
                self._deadline.revoke()
                decision(log, "leader.lost", logging.ERROR, lease=s.name, identity=self.identity, reason=reason)
                lost.set()
