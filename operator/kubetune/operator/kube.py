"""The few Kubernetes writes the operator makes, as async calls over the official client.

Reads come from kopf's watch-fed indexes, never from polling lists; this is
everything that writes, in one place, so the RBAC the chart grants can be read
off this file.
"""

from __future__ import annotations

import asyncio
import copy
import datetime as dt
import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import HTTPError

from kubetune.api.resource import API_VERSION, GROUP, KIND, PLURAL, VERSION
from kubetune.operator import jobset, kueue

COMPONENT = "kubetune-operator"


@dataclass
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
    def conflict(self) -> bool:
        """409 on a write to an existing object: a precondition (UID, resourceVersion) no longer holds."""
        return self.status == 409

    @property
    def transient(self) -> bool:
        """A refusal that time may lift: no answer, throttling, the server's own trouble, an exceeded quota."""
        quota = self.status == 403 and "quota" in self.message  # exceeded, or its usage not yet counted
        return self.status in (0, 429) or self.status >= 500 or quota


MERGE_PATCH = "application/merge-patch+json"
REQUEST_TIMEOUT_SECONDS = 30.0
"""No request may hang a tuning job's loop: a silent API server is an Unreachable error, retried next round."""
_WRITES = frozenset({"POST", "PUT", "PATCH"})
NOT_LEADER = "NotLeader"
"""KubeError.reason of a request the fence refused: it never left this process."""
UNREACHABLE = "Unreachable"
"""KubeError.reason when no answer came: the API server is down, unreachable, or too slow."""


def without_retries(api: client.ApiClient) -> client.ApiClient:
    """A client with `api`'s server and credentials, on its own connection pool, that never retries.

    For requests whose timeout must hold: urllib3 would start it again on each retry.
    """
    configuration = copy.deepcopy(api.configuration)
    configuration.retries = 0
    return client.ApiClient(configuration)


def trial_path(kind: str, namespace: str, name: str = "") -> str:
    """The API path of a namespace's trial objects of this kind (a Job or a JobSet), or of one of them."""
    base = (
        f"/apis/{jobset.API_VERSION}/namespaces/{namespace}/{jobset.PLURAL}"
        if kind == jobset.KIND
        else f"/apis/batch/v1/namespaces/{namespace}/jobs"
    )
    return f"{base}/{name}" if name else base


class Kube:
    """Async writes as raw JSON over the official client's connection and credentials.

    Raw, not through the client's generated models: those validate and re-shape
    a user's pod template (quantities must be strings, unknown fields vanish),
    and the operator's promise is to pass the template through as written.
    Calls are blocking, so they run in worker threads.
    """

    def __init__(
        self,
        api: client.ApiClient,
        fence: Callable[[], float] | None = None,
        field_manager: str = COMPONENT,
    ) -> None:
        # urllib3 retries a failed connect with a fresh timeout each time: a fenced write could
        # then leave long after its window closed. Ours retry in the next round instead.
        self._api = without_retries(api) if fence is not None else api
        self._fence = fence
        """Asked before every request: how many seconds it may take (leader election's `write_window`);
        0 or less refuses it unsent; None: always act, within REQUEST_TIMEOUT_SECONDS."""
        self.field_manager = field_manager[:128]
        """Sent with every write, so managedFields name the replica that wrote (the API server allows 128 characters)."""
        self.requests = 0
        """API requests made, for the bench's requests-per-trial figure."""

    def _request(
        self,
        method: str,
        path: str,
        body: Any = None,
        content_type: str = "application/json",
        query: list[tuple[str, str]] | None = None,
    ) -> Any:
        query = list(query or [])
        if method in _WRITES:
            query.append(("fieldManager", self.field_manager))
        method_, url, headers, payload, _ = self._api.param_serialize(
            method=method,
            resource_path=path,
            query_params=query,
            header_params={"Content-Type": content_type, "Accept": "application/json"},
            body=body,
            auth_settings=["BearerToken"],
        )
        # Again here, as late as can be: the worker thread may have waited for its turn. The timeout
        # ends the request before a standby may lead (the API server cancels it, unless it reached etcd).
        timeout = self._check_fence()
        response = self._api.call_api(method_, url, header_params=headers, body=payload, _request_timeout=timeout)
        response.read()  # type: ignore[no-untyped-call]
        if not 200 <= response.status < 300:
            raise ApiException(http_resp=response)
        return json.loads(response.data) if response.data else None

    def _check_fence(self) -> float:
        """The timeout for a request that leaves now; raises NOT_LEADER if none may leave."""
        if self._fence is None:
            return REQUEST_TIMEOUT_SECONDS
        window = self._fence()
        if window <= 0:
            raise KubeError(0, NOT_LEADER, "this replica no longer holds the leader Lease: nothing was sent")
        return min(REQUEST_TIMEOUT_SECONDS, window)

    async def _call(self, method: str, path: str, body: Any = None, **kwargs: Any) -> Any:
        """One request in a worker thread; whatever goes wrong comes back as a KubeError.

        Transport failures (a refused connection, a timeout: urllib3's errors)
        become KubeError(0, "Unreachable") rather than escaping as something
        else, so callers handle an API outage where they handle a refused write.
        """
        self._check_fence()
        self.requests += 1
        try:
            return await asyncio.to_thread(self._request, method, path, body, **kwargs)
        except ApiException as exc:
            raise KubeError.from_api(exc) from None
        except (HTTPError, OSError) as exc:
            raise KubeError(0, UNREACHABLE, f"{type(exc).__name__}: {exc}"[:500]) from None

    async def create_job(self, manifest: dict[str, Any], dry_run: bool = False) -> dict[str, Any]:
        """Create a trial's Job (or JobSet, by the manifest's kind). Strict field validation: an unknown
        or duplicate field in the template is an error, never silently dropped; `dry_run` checks without
        creating."""
        namespace = manifest["metadata"]["namespace"]
        query = [("fieldValidation", "Strict")] + ([("dryRun", "All")] if dry_run else [])
        path = trial_path(str(manifest.get("kind", "Job")), namespace)
        return dict(await self._call("POST", path, manifest, query=query))

    async def get_job(self, namespace: str, name: str, kind: str = "Job") -> dict[str, Any]:
        """One trial Job (or JobSet) as it is now: to tell whose a name that is already taken is."""
        return dict(await self._call("GET", trial_path(kind, namespace, name)))

    async def patch_job(self, namespace: str, name: str, uid: str, patch: dict[str, Any], kind: str = "Job") -> None:
        """Merge-patch the trial Job (or JobSet) with this UID: the UID is a precondition, so one deleted
        and replaced by someone else's under the same name is refused (409) rather than written to."""
        meta = {**patch.get("metadata", {}), "uid": uid}
        await self._call(
            "PATCH", trial_path(kind, namespace, name), {**patch, "metadata": meta}, content_type=MERGE_PATCH
        )

    async def job_workloads(self, namespace: str, job_uids: list[str]) -> list[dict[str, Any]]:
        """The Kueue Workloads that Kueue labelled as made for the Jobs with these UIDs: asked only for
        queued trials whose Workload the watch has not delivered (kueue.py)."""
        path = f"/apis/{kueue.GROUP}/{kueue.VERSION}/namespaces/{namespace}/{kueue.PLURAL}"
        selector = f"{kueue.JOB_UID_LABEL} in ({','.join(job_uids)})"
        found = await self._call("GET", path, query=[("labelSelector", selector)])
        return [dict(item) for item in (found or {}).get("items") or []]

    async def deactivate_workload(self, namespace: str, name: str, uid: str) -> None:
        """Set a Workload's spec.active to false, if it is still the object with this UID: Kueue then
        evicts it, keeps its Job suspended and never admits it again."""
        path = f"/apis/{kueue.GROUP}/{kueue.VERSION}/namespaces/{namespace}/{kueue.PLURAL}/{name}"
        await self._call("PATCH", path, {"metadata": {"uid": uid}, "spec": {"active": False}}, content_type=MERGE_PATCH)

    async def set_finalizers(
        self, namespace: str, name: str, uid: str, resource_version: str, finalizers: list[str]
    ) -> None:
        """Replace a tuning job's finalizers, if it is still the object (UID) and version that was read."""
        path = f"/apis/{GROUP}/{VERSION}/namespaces/{namespace}/{PLURAL}/{name}"
        meta = {"uid": uid, "resourceVersion": resource_version, "finalizers": finalizers}
        await self._call("PATCH", path, {"metadata": meta}, content_type=MERGE_PATCH)

    async def patch_status(self, namespace: str, name: str, status: dict[str, Any]) -> None:
        path = f"/apis/{GROUP}/{VERSION}/namespaces/{namespace}/{PLURAL}/{name}/status"
        await self._call("PATCH", path, {"status": status}, content_type=MERGE_PATCH)

    async def event(self, owner: dict[str, Any], kind: str, reason: str, message: str) -> None:
        """A core/v1 Event on the tuning job: what `kubectl describe hptj` lists."""
        now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        body = {
            "apiVersion": "v1",
            "kind": "Event",
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
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        }
        await self._call("POST", f"/api/v1/namespaces/{owner['namespace']}/events", body)
