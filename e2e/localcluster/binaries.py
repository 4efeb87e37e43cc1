"""Where e2e/build.sh put the binaries, read from the same versions.env.

Keeping the versions in one file that both the build script and Python read
means the launcher can never start a binary the build did not produce.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

E2E_DIR = Path(__file__).resolve().parent.parent
VERSIONS_FILE = E2E_DIR / "versions.env"


class BinariesMissing(RuntimeError):
    """The cache lacks a binary: run `bash e2e/build.sh` first."""


def read_versions(path: Path = VERSIONS_FILE) -> dict[str, str]:
    """Parses the KEY=VALUE lines of versions.env (comments and blanks skipped)."""
    versions: dict[str, str] = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            key, _, value = line.partition("=")
            versions[key.strip()] = value.strip()
    return versions


def cache_root() -> Path:
    """The cache folder; KUBETUNE_CACHE overrides it as it does for build.sh."""
    return Path(os.environ.get("KUBETUNE_CACHE", Path.home() / ".cache" / "kubetune"))


@dataclass(frozen=True)
class Binaries:
    """Absolute paths of every binary the local cluster runs."""

    etcd: Path
    kube_apiserver: Path
    kube_controller_manager: Path
    kubectl: Path
    helm: Path
    kubernetes_version: str

    @classmethod
    def locate(cls) -> Binaries:
        """Finds the cached binaries, failing with the command that builds them."""
        v = read_versions()
        root = cache_root()
        k8s = root / f"kubernetes-{v['KUBERNETES_VERSION']}" / "bin"
        found = cls(
            etcd=root / f"etcd-{v['ETCD_VERSION']}" / "bin" / "etcd",
            kube_apiserver=k8s / "kube-apiserver",
            kube_controller_manager=k8s / "kube-controller-manager",
            kubectl=k8s / "kubectl",
            helm=root / f"helm-{v['HELM_VERSION']}" / "bin" / "helm",
            kubernetes_version=v["KUBERNETES_VERSION"],
        )
        for path in (found.etcd, found.kube_apiserver, found.kube_controller_manager, found.kubectl):
            if not os.access(path, os.X_OK):
                raise BinariesMissing(f"{path} is missing: run `bash e2e/build.sh` first")
        return found
