"""The few Kubernetes writes the operator makes, as async calls over the official client.

Reads come from kopf's watch-fed indexes, never from polling lists; this is
everything that writes, in one place, so the RBAC the chart grants can be read
off this file.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import secrets
from dataclasses import dataclass
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from kubetune.api.resource import API_VERSION, GROUP, KIND, PLURAL, VERSION

COMPONENT = "kubetune-operator"


@dataclass(frozen=True)
class KubeError(Exception):
    """An API call that failed, with the API server's own words."""

    status: int
    reason: str
    message: str

    def __str__(self) -> str:
        return f"{self.reason} ({self.status}): {self.message}"

    @classmethod
    def from_api(cls, exc: ApiException) -> KubeError:
        message = exc.reason or ""
        reason = exc.reason or "Error"
        try:
            body = json.loads(exc.body or "{}")
            message = body.get("message", message)
            reason = body.get("reason", reason)
        except ValueError:
            pass
        return cls(int(exc.status or 0), str(reason), str(message))

    @property
    def already_exists(self) -> bool:
        return self.status == 409

    @property
    def not_found(self) -> bool:
        return self.status == 404

    @property
    def invalid(self) -> bool:
        return self.status == 422


class Kube:
    """Async writes through a shared ApiClient (the client is sync: calls run in worker threads)."""

    def __init__(self, api: client.ApiClient) -> None:
        self._batch = client.BatchV1Api(api)
        self._core = client.CoreV1Api(api)
        self._custom = client.CustomObjectsApi(api)
        self.requests = 0
        """API requests made, for the bench's requests-per-trial figure."""

    async def _call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        self.requests += 1
        try:
            return await asyncio.to_thread(fn, *args, **kwargs)
        except ApiException as exc:
            raise KubeError.from_api(exc) from None

    async def create_job(self, manifest: dict[str, Any]) -> dict[str, Any]:
        namespace = manifest["metadata"]["namespace"]
        result = await self._call(self._batch.create_namespaced_job, namespace, manifest, _preload_content=False)
        return dict(json.loads(result.data))

    async def patch_job(self, namespace: str, name: str, patch: dict[str, Any]) -> None:
        await self._call(self._batch.patch_namespaced_job, name, namespace, patch)

    async def delete_pods(self, namespace: str, job_name: str) -> None:
        await self._call(
            self._core.delete_collection_namespaced_pod,
            namespace,
            label_selector=f"batch.kubernetes.io/job-name={job_name}",
        )

    async def patch_status(self, namespace: str, name: str, status: dict[str, Any]) -> None:
        await self._call(
            self._custom.patch_namespaced_custom_object_status,
            GROUP,
            VERSION,
            namespace,
            PLURAL,
            name,
            {"status": status},
        )

    async def event(self, owner: dict[str, Any], kind: str, reason: str, message: str) -> None:
        """A core/v1 Event on the tuning job: what `kubectl describe hptj` lists."""
        now = dt.datetime.now(dt.UTC)
        body = {
            "metadata": {"name": f"{owner['name']}.{secrets.token_hex(8)}", "namespace": owner["namespace"]},
            "involvedObject": {
                "apiVersion": API_VERSION,
                "kind": KIND,
                "name": owner["name"],
                "namespace": owner["namespace"],
                "uid": owner["uid"],
            },
            "type": kind,
            "reason": reason,
            "message": message[:1024],
            "source": {"component": COMPONENT},
            "reportingComponent": COMPONENT,
            "reportingInstance": COMPONENT,
            "firstTimestamp": now.isoformat(),
            "lastTimestamp": now.isoformat(),
            "count": 1,
        }
        await self._call(self._core.create_namespaced_event, owner["namespace"], body)
