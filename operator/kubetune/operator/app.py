"""Start the operator: kubeconfig, leader election, kopf settings, then the handlers."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

import kopf
from kubernetes import client, config

from kubetune.logs import decision
from kubetune.operator.controller import Controller
from kubetune.operator.endpoints import EndpointServer, Health
from kubetune.operator.handlers import Indexes, register
from kubetune.operator.kube import COMPONENT, Kube
from kubetune.operator.leader import LeaderElection, LeaseSettings, lease_api
from kubetune.operator.metrics import OperatorMetrics
from kubetune.operator.reconcile import Deps
from kubetune.operator.scrape import Scraper
from kubetune.operator.settings import OperatorSettings

if TYPE_CHECKING:
    from kopf._core.engines.peering import Identity  # a NewType of str that kopf does not export

log = logging.getLogger("kubetune.operator")


@dataclass(frozen=True)
class RunOptions:
    settings: OperatorSettings
    lease: LeaseSettings | None
    """None: no leader election (a single replica, or tests)."""
    liveness_endpoint: str | None = None
    metrics_port: int | None = None
    """Serve /metrics, /healthz and /readyz on this port (0: any free port); None: no endpoint."""
    metrics_address: str = "0.0.0.0"


def api_client() -> client.ApiClient:
    """In a pod: its ServiceAccount; elsewhere: $KUBECONFIG or ~/.kube/config."""
    try:
        config.load_incluster_config()
    except config.ConfigException:
        config.load_kube_config()
    configuration = client.Configuration.get_default_copy()
    configuration.connection_pool_maxsize = 32
    return client.ApiClient(configuration)


def kopf_settings(settings: kopf.OperatorSettings) -> kopf.OperatorSettings:
    # kopf's own bookkeeping goes to annotations: our status schema is strict and would prune it.
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix="kopf.kubetune.io")
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix="kopf.kubetune.io", key="last-handled-configuration"
    )
    settings.posting.level = logging.WARNING  # our own events say what happened; kopf's would be noise
    settings.watching.server_timeout = 300
    settings.networking.request_timeout = 60
    return settings


def run_operator(options: RunOptions) -> int:
    metrics, health = OperatorMetrics(), Health()
    endpoints = None
    if options.metrics_port is not None:
        endpoints = EndpointServer(options.metrics_address, options.metrics_port, metrics, health)
        endpoints.start()
        decision(log, "endpoints.started", port=endpoints.port, paths="/metrics /healthz /readyz")
    api = api_client()
    stop = threading.Event()
    lost = threading.Event()
    fence: Callable[[], float] | None = None
    field_manager = COMPONENT
    if options.lease is not None:
        health.ready.set()  # standing by for the Lease is this replica's job until it leads
        election = LeaderElection(lease_api(api), options.lease)
        if not election.acquire(stop):
            return 0
        election.keep(stop, lost)
        # Every write asks the election first, so none leaves once the renew deadline has passed,
        # whatever kopf still does while it stops, and none that left lands once a standby may lead;
        # managedFields name the replica that wrote.
        fence, field_manager = election.write_window, f"{COMPONENT}-{options.lease.identity}"
    kube = Kube(api, fence=fence, field_manager=field_manager)
    metrics.leader.set(1)
    try:
        asyncio.run(_serve(kube, options, lost, metrics, health))
    finally:
        stop.set()
        health.failed.set()
        if endpoints is not None:
            endpoints.stop()
    if lost.is_set():
        return 1  # let the Deployment restart us as a standby
    return 0


def _loop_flag(lost: threading.Event) -> asyncio.Event:
    """`lost` mirrored into an asyncio.Event of the running loop, for kopf's stop_flag.

    kopf waits for a threading.Event in the loop's default executor, and that
    thread never returns while the flag stays down; asyncio.run joins the
    executor on the way out, so a SIGTERM left the operator hanging until its
    pod's grace period ended in SIGKILL. A daemon thread of our own waits instead.
    """
    loop = asyncio.get_running_loop()
    flag = asyncio.Event()

    def mirror() -> None:
        lost.wait()
        with contextlib.suppress(RuntimeError):  # the loop already closed: nothing is waiting any more
            loop.call_soon_threadsafe(flag.set)

    threading.Thread(target=mirror, name="lease-lost", daemon=True).start()
    return flag


async def _serve(
    kube: Kube, options: RunOptions, lost: threading.Event, metrics: OperatorMetrics, health: Health
) -> None:
    settings = options.settings
    scraper = Scraper(settings.scrape.concurrency, settings.scrape.timeout_seconds)
    indexes = Indexes()
    metrics.scrape_errors_from(lambda: scraper.errors)
    controller = Controller(
        Deps(kube, scraper, settings, indexes.jobs_of, indexes.pods_of, metrics, workload_of=indexes.workload_of)
    )
    registry = kopf.OperatorRegistry()
    register(registry, controller, indexes)

    @kopf.on.startup(registry=registry)
    def ready(**_: Any) -> None:
        health.ready.set()

    decision(
        log,
        "operator.started",
        namespaces=list(settings.namespaces) or "all",
        sidecar_image=settings.sidecar.image,
        scrape_interval=settings.scrape.interval_seconds,
    )
    operator_settings = kopf_settings(kopf.OperatorSettings())
    # Named namespaces leave nothing to discover: without scanning, kopf never lists namespaces or
    # CRDs cluster-wide, so a per-namespace install needs no cluster-scoped RBAC at all.
    operator_settings.scanning.disabled = bool(settings.namespaces)
    try:
        await kopf.operator(
            registry=registry,
            settings=operator_settings,
            standalone=True,
            # Our own: kopf's default asks getpass.getuser(), which raises for the image's
            # numeric user, unknown to /etc/passwd (runAsNonRoot needs a number).
            identity=cast(
                "Identity", options.lease.identity if options.lease else f"{COMPONENT}@{socket.gethostname()}"
            ),
            clusterwide=not settings.namespaces,
            namespaces=list(settings.namespaces),
            stop_flag=_loop_flag(lost),
            liveness_endpoint=options.liveness_endpoint,
        )
    finally:
        await scraper.close()
