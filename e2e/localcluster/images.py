"""The images a local node runs, and the names they answer to.

No registry is reachable here, so nodes never pull: each node's containerd
imports the images from archives in the cache at start. Two archives:

- the pod sandbox image (e2e/pause, built by e2e/build.sh);
- kubetune's own image, built from operator/Dockerfile by `make image`
  (operator/build-image.sh) as localhost/kubetune:dev.

kubetune's image is also tagged with the name the chart and the examples use
by default (ghcr.io/kubetune/kubetune:<appVersion>), so `helm install` with
default values and `kubectl apply -f manifests/examples/...` run as they
stand, against the image built from this checkout.
"""

from __future__ import annotations

import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

from .binaries import cache_root

ROOT = Path(__file__).resolve().parents[2]
CHART_YAML = ROOT / "charts" / "kubetune" / "Chart.yaml"
#: The name `make image` gives the image built from this checkout.
KUBETUNE_IMAGE = "localhost/kubetune:dev"
PUBLISHED_REPOSITORY = "ghcr.io/kubetune/kubetune"


def kubetune_archive() -> Path:
    """Where `make image` writes the image (KUBETUNE_IMAGE_ARCHIVE overrides it)."""
    return Path(os.environ.get("KUBETUNE_IMAGE_ARCHIVE", cache_root() / "images" / "kubetune-dev.tar"))


def app_version() -> str:
    """The chart's appVersion: the tag of the image it installs by default."""
    match = re.search(r'^appVersion:\s*"?([^"\s]+)"?', CHART_YAML.read_text(), re.MULTILINE)
    if match is None:
        raise RuntimeError(f"no appVersion in {CHART_YAML}")
    return match.group(1)


@dataclass(frozen=True)
class NodeImage:
    """An archive to import into a node, the name in it, and the other names it gets."""

    archive: Path
    name: str
    aliases: tuple[str, ...] = ()


class ImageMissing(RuntimeError):
    """The image archive was never built."""


def kubetune_image() -> NodeImage:
    archive = kubetune_archive()
    if not archive.is_file():
        raise ImageMissing(f"{archive} is missing: run `make image` (operator/build-image.sh) first")
    return NodeImage(archive, KUBETUNE_IMAGE, (f"{PUBLISHED_REPOSITORY}:{app_version()}",))


PINNED_LABEL = "io.cri-containerd.pinned=pinned"
"""The label that keeps containerd's CRI from ever collecting an image (the pod sandbox's)."""


def ctr(socket: Path, *args: str, check: bool = True, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """Runs `ctr` against one containerd, in the namespace the CRI uses; a failure says what ctr said."""
    argv = ["ctr", "--address", str(socket), "--namespace", "k8s.io", *args]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed: {result.stderr.strip()[-2000:]}")
    return result


def import_archives(socket: Path, images: list[NodeImage], pinned: str) -> None:
    """Imports (and unpacks) each archive, gives each image its other names, and pins `pinned`."""
    for image in images:
        ctr(socket, "images", "import", "--no-unpack=false", str(image.archive), timeout=600)
        for alias in image.aliases:
            ctr(socket, "images", "tag", "--force", image.name, alias)
    ctr(socket, "images", "label", pinned, PINNED_LABEL, check=False)
