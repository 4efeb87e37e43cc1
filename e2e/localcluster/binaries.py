"""Where e2e/build.sh put the binaries, read from the same versions.env.

Keeping the versions in one file that both the build script and Python read
means the launcher can never start a binary the build did not produce.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

E2E_DIR = Path(__file__).resolve().parent.parent
VERSIONS_FILE = E2E_DIR / "versions.env"


#: Debian's packages that e2e/build.sh installs: the container runtime, and what nodes run in a netns with.
HOST_TOOLS = ("containerd", "ctr", "runc", "nsenter", "ip", "iptables", "conntrack", "openssl")


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
    kube_scheduler: Path
    kubelet: Path
    kube_proxy: Path
    kubectl: Path
    helm: Path
    kubernetes_version: str
    #: The pod sandbox image as a docker-archive, and the name it carries.
    pause_archive: Path
    pause_image: str

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
            kube_scheduler=k8s / "kube-scheduler",
            kubelet=k8s / "kubelet",
            kube_proxy=k8s / "kube-proxy",
            kubectl=k8s / "kubectl",
            helm=root / f"helm-{v['HELM_VERSION']}" / "bin" / "helm",
            kubernetes_version=v["KUBERNETES_VERSION"],
            pause_archive=root / "pause" / "pause.tar",
            pause_image=v["PAUSE_IMAGE"],
        )
        needed = (
            found.etcd,
            found.kube_apiserver,
            found.kube_controller_manager,
            found.kube_scheduler,
            found.kubelet,
            found.kube_proxy,
            found.kubectl,
        )
        for path in needed:
            if not os.access(path, os.X_OK):
                raise BinariesMissing(f"{path} is missing: run `bash e2e/build.sh` first")
        if not found.pause_archive.is_file():
            raise BinariesMissing(f"{found.pause_archive} is missing: run `bash e2e/build.sh` first")
        for tool in HOST_TOOLS:
            if shutil.which(tool) is None:
                raise BinariesMissing(f"{tool} is not on PATH: run `bash e2e/build.sh`, which installs it")
        return found
