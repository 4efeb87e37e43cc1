"""Leader election on a coordination.k8s.io Lease, as client-go's leaderelection does it.

Only the holder of the Lease runs the operator's handlers, so two replicas never
both act on one tuning job. A standby waits for the Lease to expire; a leader
that cannot renew in time stops itself rather than risk acting beside a new one.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from dataclasses import dataclass

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from kubetune.logs import decision

log = logging.getLogger("kubetune.operator")


@dataclass(frozen=True)
class LeaseSettings:
    namespace: str
    identity: str
    """This replica's name in the Lease: a container restarted in the same pod takes its lease back at once."""
    name: str = "kubetune-operator"
    duration_seconds: int = 15
    """A leader that has not renewed for this long is presumed dead."""
    renew_seconds: float = 5.0


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class LeaderElection:
    def __init__(self, api: client.ApiClient, settings: LeaseSettings) -> None:
        self._api = client.CoordinationV1Api(api)
        self.settings = settings
        self.identity = settings.identity

    def _try_acquire_or_renew(self) -> bool:
        s = self.settings
        now = _now()
        try:
            lease = self._api.read_namespaced_lease(s.name, s.namespace)
        except ApiException as exc:
            if exc.status != 404:
                raise
            body = client.V1Lease(
                metadata=client.V1ObjectMeta(name=s.name, namespace=s.namespace),
                spec=client.V1LeaseSpec(
                    holder_identity=self.identity,
                    lease_duration_seconds=s.duration_seconds,
                    acquire_time=now,
                    renew_time=now,
                    lease_transitions=0,
                ),
            )
            try:
                self._api.create_namespaced_lease(s.namespace, body)
            except ApiException as create_exc:
                if create_exc.status == 409:
                    return False
                raise
            return True
        spec = lease.spec or client.V1LeaseSpec()
        holder = spec.holder_identity
        renewed = spec.renew_time
        duration = spec.lease_duration_seconds or s.duration_seconds
        expired = renewed is None or renewed + dt.timedelta(seconds=duration) < now
        if holder != self.identity and not expired:
            return False
        if holder != self.identity:
            spec.acquire_time = now
            spec.lease_transitions = (spec.lease_transitions or 0) + 1
        spec.holder_identity = self.identity
        spec.renew_time = now
        spec.lease_duration_seconds = s.duration_seconds
        lease.spec = spec
        try:  # the resourceVersion makes this a compare-and-swap: one winner
            self._api.replace_namespaced_lease(s.name, s.namespace, lease)
        except ApiException as exc:
            if exc.status == 409:
                return False
            raise
        return True

    def acquire(self, stop: threading.Event) -> bool:
        """Block until this process leads (True) or `stop` is set (False)."""
        waiting_logged = False
        while not stop.is_set():
            try:
                if self._try_acquire_or_renew():
                    decision(log, "leader.acquired", lease=self.settings.name, identity=self.identity)
                    return True
            except ApiException as exc:
                decision(log, "leader.error", logging.WARNING, error=f"{exc.status} {exc.reason}")
            if not waiting_logged:
                decision(log, "leader.waiting", lease=self.settings.name, identity=self.identity)
                waiting_logged = True
            stop.wait(self.settings.renew_seconds)
        return False

    def keep(self, stop: threading.Event, lost: threading.Event) -> threading.Thread:
        """Renew in the background; set `lost` when the lease could not be renewed in time."""

        def renew() -> None:
            last = _now()
            while not stop.wait(self.settings.renew_seconds):
                try:
                    if self._try_acquire_or_renew():
                        last = _now()
                        continue
                except ApiException as exc:
                    decision(log, "leader.error", logging.WARNING, error=f"{exc.status} {exc.reason}")
                if (_now() - last).total_seconds() >= self.settings.duration_seconds * 2 / 3:
                    decision(log, "leader.lost", logging.ERROR, lease=self.settings.name, identity=self.identity)
                    lost.set()
                    return

        thread = threading.Thread(target=renew, name="lease", daemon=True)
        thread.start()
        return thread
