"""Kubeconfig files: the admin's (client certificate) and a ServiceAccount's (token).

Written as JSON, which every kubeconfig reader accepts as YAML.
"""

from __future__ import annotations

import json
from pathlib import Path


def write_kubeconfig(
    path: Path,
    server: str,
    ca_cert: Path,
    user: dict[str, str],
    name: str = "kubetune-local",
    namespace: str = "default",
) -> Path:
    """Writes a single-context kubeconfig whose user entry is `user`."""
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": name, "cluster": {"server": server, "certificate-authority": str(ca_cert)}}],
        "users": [{"name": name, "user": user}],
        "contexts": [{"name": name, "context": {"cluster": name, "user": name, "namespace": namespace}}],
        "current-context": name,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(config, indent=2))
    path.chmod(0o600)
    return path


def cert_user(cert: Path, key: Path) -> dict[str, str]:
    """A kubeconfig user that authenticates with a client certificate."""
    return {"client-certificate": str(cert), "client-key": str(key)}


def token_user(token: str) -> dict[str, str]:
    """A kubeconfig user that authenticates with a bearer token."""
    return {"token": token}
