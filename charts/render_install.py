"""Render manifests/install.yaml from the chart with its default values: `kubectl apply -f` without Helm.

    python3 charts/render_install.py            # rewrite manifests/install.yaml
    python3 charts/render_install.py --check    # exit 1 when it is stale (CI)

helm comes from $HELM, else the one e2e/build.sh builds, else PATH.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHART = ROOT / "charts" / "kubetune"
OUTPUT = ROOT / "manifests" / "install.yaml"
NAMESPACE = "kubetune-system"
KUBE_VERSION = "1.34.0"  # only for helm's own check of the chart's kubeVersion (>= 1.30)

HEADER = f"""\
# kubetune, installed without Helm: `kubectl apply --server-side -f manifests/install.yaml`.
# GENERATED from charts/kubetune with its default values by charts/render_install.py; do not edit
# (a test fails when this file is stale). Change the chart, then run `make manifests`.
apiVersion: v1
kind: Namespace
metadata:
  name: {NAMESPACE}
  labels:
    app.kubernetes.io/part-of: kubetune
"""


def helm_binary() -> str:
    if os.environ.get("HELM"):
        return os.environ["HELM"]
    versions = dict(
        line.split("=", 1) for line in (ROOT / "e2e" / "versions.env").read_text().splitlines() if "=" in line
    )
    built = Path.home() / ".cache" / "kubetune" / f"helm-{versions['HELM_VERSION'].strip()}" / "bin" / "helm"
    if built.exists():
        return str(built)
    found = shutil.which("helm")
    if found is None:
        raise SystemExit("helm not found: run `bash e2e/build.sh` or set $HELM")
    return found


def render() -> str:
    rendered = subprocess.run(
        [helm_binary(), "template", "kubetune", str(CHART), "--namespace", NAMESPACE, "--include-crds",
         "--kube-version", KUBE_VERSION],
        check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    return HEADER + rendered


def main(argv: list[str]) -> int:
    text = render()
    if "--check" in argv:
        if not OUTPUT.exists() or OUTPUT.read_text() != text:
            print(f"{OUTPUT.relative_to(ROOT)} is stale: run `make manifests`", file=sys.stderr)
            return 1
        return 0
    OUTPUT.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
