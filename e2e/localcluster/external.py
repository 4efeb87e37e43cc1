"""The same fixture surface over a cluster someone else runs (kind, or any).

With KUBETUNE_E2E_KUBECONFIG set, the tests run against that cluster instead
of starting a local one, with the image KUBETUNE_E2E_IMAGE (which that cluster's
nodes must be able to pull or already hold). The local harness's own faults
(extra nodes, stopping a kubelet, restarting the API server) are not available.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from .kubeconfig import token_user, write_kubeconfig
from .procs import run_cli

#: What `make e2e` loads into kind (e2e/kind.sh) when KUBETUNE_E2E_IMAGE is not set.
DEFAULT_IMAGE = "localhost/kubetune:dev"


class Unsupported(RuntimeError):
    """A local-harness feature asked of an external cluster (tests skip on it)."""


class ExternalCluster:
    """A cluster reached through an existing kubeconfig."""

    local = False

    def __init__(self, kubeconfig: Path) -> None:
        self.kubeconfig = kubeconfig
        self.workdir = Path(tempfile.mkdtemp(prefix="kubetune-external-"))
        self.kubectl_path = shutil.which("kubectl") or "kubectl"
        self.helm_path = shutil.which("helm") or "helm"
        self.left_over: list[str] = []
        self.image = os.environ.get("KUBETUNE_E2E_IMAGE", DEFAULT_IMAGE)

    def env(self, kubeconfig: Path | None = None) -> dict[str, str]:
        return {**os.environ, "KUBECONFIG": str(kubeconfig or self.kubeconfig)}

    def kubectl(
        self,
        *args: str,
        input: str | None = None,
        check: bool = True,
        kubeconfig: Path | None = None,
        timeout: float = 120,
    ) -> subprocess.CompletedProcess[str]:
        return run_cli([self.kubectl_path, *args], self.env(kubeconfig), input, check, timeout)

    def helm(
        self, *args: str, check: bool = True, kubeconfig: Path | None = None, timeout: float = 300
    ) -> subprocess.CompletedProcess[str]:
        return run_cli([self.helm_path, *args], self.env(kubeconfig), None, check, timeout)

    def get_json(
        self, kind: str, name: str = "", namespace: str | None = None, selector: str = "", all_namespaces: bool = False
    ) -> Any:
        """`kubectl get KIND [NAME] [-n NS] [-l SELECTOR] [-A] -o json`, decoded (LocalCluster reads without kubectl).

        Raises subprocess.CalledProcessError when kubectl fails, a missing object included.
        """
        args = ["get", kind, *([name] if name else []), *(["-n", namespace] if namespace else [])]
        args += (["-l", selector] if selector else []) + (["-A"] if all_namespaces else [])
        return json.loads(self.kubectl(*args, "-o", "json").stdout)

    def create_namespace(self, name: str) -> None:
        self.kubectl("create", "namespace", name)

    def delete_namespace(self, name: str) -> None:
        """Returns at once (the namespace goes in the background); one already gone is fine."""
        self.kubectl("delete", "namespace", name, "--wait=false", "--ignore-not-found")

    def serviceaccount_kubeconfig(self, namespace: str, name: str, expiration_seconds: int = 86400) -> Path:
        token = self.kubectl(
            "create", "token", name, "-n", namespace, f"--duration={expiration_seconds}s"
        ).stdout.strip()
        view = json.loads(self.kubectl("config", "view", "--raw", "--minify", "-o", "json").stdout)
        cluster = view["clusters"][0]["cluster"]
        ca = self.workdir / "ca.crt"
        if "certificate-authority-data" in cluster:
            import base64

            ca.write_bytes(base64.b64decode(cluster["certificate-authority-data"]))
        else:
            ca = Path(cluster["certificate-authority"])
        return write_kubeconfig(
            self.workdir / f"{namespace}.{name}.kubeconfig",
            cluster["server"],
            ca,
            token_user(token),
            namespace=namespace,
        )

    def add_node(self, *args: object, **kwargs: object) -> None:
        raise Unsupported("adding nodes needs the local cluster")

    def stop(self) -> None:
        shutil.rmtree(self.workdir, ignore_errors=True)
