"""A small Kubernetes REST client for the harness's own calls.

Starting and checking the cluster needs only get/create/patch/delete, with
exact control of patch types (a node's GPUs are a JSON patch of its status);
plain JSON over http.client keeps the harness free of a client library's
model classes and version skew.
"""

from __future__ import annotations

import http.client
import json
import ssl
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

Obj = dict[str, Any]

STRATEGIC = "application/strategic-merge-patch+json"
MERGE = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"


class ApiError(RuntimeError):
    """A non-2xx answer from the API server, with its status code and reason."""

    def __init__(self, status: int, body: str, method: str, path: str) -> None:
        self.status = status
        self.body = body
        try:
            self.reason = json.loads(body).get("reason", "")
        except ValueError:
            self.reason = ""
        super().__init__(f"{method} {path}: {status} {body[:300]}")


@dataclass
class Api:
    """Talks to one API server with one identity."""

    host: str
    port: int
    ca_cert: Path
    client_cert: Path | None = None
    client_key: Path | None = None
    token: str | None = None
    timeout: float = 30.0

    def __post_init__(self) -> None:
        self._ctx = ssl.create_default_context(cafile=str(self.ca_cert))
        if self.client_cert and self.client_key:
            self._ctx.load_cert_chain(str(self.client_cert), str(self.client_key))

    def _connection(self, timeout: float | None) -> http.client.HTTPSConnection:
        return http.client.HTTPSConnection(self.host, self.port, context=self._ctx, timeout=timeout or self.timeout)

    def _headers(self, content_type: str = "application/json") -> dict[str, str]:
        headers = {
            "Accept": "application/json",
            "Content-Type": content_type,
            "User-Agent": "kubetune-e2e-localcluster",
        }
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        return headers

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        params: dict[str, Any] | None = None,
        content_type: str = "application/json",
    ) -> Obj:
        """One call; returns the decoded JSON answer or raises ApiError."""
        text = self.text(method, path, body, params, content_type)
        return json.loads(text) if text else {}

    def text(
        self,
        method: str,
        path: str,
        body: Any = None,
        params: dict[str, Any] | None = None,
        content_type: str = "application/json",
    ) -> str:
        """One call; returns the answer's body as text or raises ApiError."""
        url = path + ("?" + urllib.parse.urlencode(params) if params else "")
        conn = self._connection(None)
        try:
            data = json.dumps(body).encode() if body is not None else None
            conn.request(method, url, body=data, headers=self._headers(content_type))
            resp = conn.getresponse()
            text = resp.read().decode()
        finally:
            conn.close()
        if resp.status >= 300:
            raise ApiError(resp.status, text, method, url)
        return text

    def get(self, path: str, **params: Any) -> Obj:
        return self.request("GET", path, params=params or None)

    def create(self, path: str, body: Obj) -> Obj:
        return self.request("POST", path, body)

    def patch(self, path: str, body: Any, patch_type: str = STRATEGIC) -> Obj:
        return self.request("PATCH", path, body, content_type=patch_type)

    def delete(self, path: str, body: Obj | None = None, missing_ok: bool = False) -> Obj:
        """DELETE; with `missing_ok`, an object already gone (404) is not an error and gives {}."""
        try:
            return self.request("DELETE", path, body)
        except ApiError as exc:
            if missing_ok and exc.status == 404:
                return {}
            raise
