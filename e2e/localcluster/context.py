"""What every pod worker of one agent shares: API, network, settings."""

from __future__ import annotations

import ipaddress
import logging
import secrets
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from .api import Api, ApiError, Obj

log = logging.getLogger(__name__)


def now_rfc3339() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class IPPool:
    """Pod addresses of the slot's /24, .2 to .254 (.1 is the bridge)."""

    def __init__(self, subnet: ipaddress.IPv4Network) -> None:
        self._free = [str(h) for h in list(subnet.hosts())[1:]]
        self._lock = threading.Lock()

    def take(self) -> str:
        with self._lock:
            if not self._free:
                raise RuntimeError("pod address pool exhausted")
            return self._free.pop(0)

    def give_back(self, address: str) -> None:
        with self._lock:
            self._free.append(address)


@dataclass
class AgentContext:
    """Settings and shared services of one node agent."""

    api: Api
    workdir: Path
    slot_number: int
    subnet: ipaddress.IPv4Network
    gateway: str
    image_map: Path | None
    container_path: str
    service_env: dict[str, str]
    restart_backoff: float = 2.0
    restart_backoff_cap: float = 60.0
    shutdown_grace: float = 2.0
    allocatable: dict[str, dict[str, str]] = field(default_factory=dict)
    stopping: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self.ips = IPPool(self.subnet)

    def event(
        self, obj: Obj, reason: str, message: str, kind: str = "Normal", component: str = "kubelet", host: str = ""
    ) -> None:
        """Records a core/v1 Event, so `kubectl describe` tells what happened."""
        meta = obj["metadata"]
        namespace = meta.get("namespace") or "default"
        stamp = now_rfc3339()
        body = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": f"{meta['name']}.{secrets.token_hex(8)}", "namespace": namespace},
            "involvedObject": {
                "apiVersion": obj.get("apiVersion", "v1"),
                "kind": obj.get("kind", "Pod"),
                "name": meta["name"],
                "namespace": namespace,
                "uid": meta["uid"],
            },
            "reason": reason,
            "message": message,
            "type": kind,
            "source": {"component": component, "host": host},
            "firstTimestamp": stamp,
            "lastTimestamp": stamp,
            "count": 1,
            "reportingComponent": component,
            "reportingInstance": host,
        }
        try:
            self.api.create(f"/api/v1/namespaces/{namespace}/events", body)
        except (ApiError, OSError) as exc:
            log.debug("event %s not recorded: %s", reason, exc)
