"""Teardown leaves nothing: no process, mount target, network namespace or interface.

These start clusters of their own (beside the session's, which also shows
that two clusters can run on one machine at once).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from localcluster import ClusterConfig, LocalCluster, NodeSpec, network

from .kube import apply, get, wait_for
from .procs import processes_with, token

pytestmark = pytest.mark.cluster
E2E = Path(__file__).resolve().parents[2] / "e2e"


def busy_pod(word: str, mount: str) -> dict:
    """A pod with a running process, a netns and a volume at a path the host lacks."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "busy"},
        "spec": {
            "containers": [
                {
                    "name": "main",
                    "image": "python:3.12-slim",
                    "command": ["python3", "-c", "import time; time.sleep(600)", word],
                    "volumeMounts": [{"name": "scratch", "mountPath": mount}],
                }
            ],
            "volumes": [{"name": "scratch", "emptyDir": {}}],
        },
    }


def running(cluster, name: str = "busy") -> bool:
    return get(cluster, "pod", name, "-n", "default").get("status", {}).get("phase") == "Running"


def test_context_manager_teardown_leaves_nothing(tmp_path):
    word, mount = token(), f"/opt/kubetune-e2e-{token()}/scratch"
    config = ClusterConfig(nodes=(NodeSpec("solo"),), name="teardown", workdir=tmp_path / "cluster")
    with LocalCluster(config) as cluster:
        apply(cluster, "default", busy_pod(word, mount))
        wait_for(lambda: running(cluster), timeout=60, what="pod running")
        assert processes_with(word)
        slot = cluster.slot
        pids = [p.pid for p in cluster.control_plane.processes] + [cluster.agent.pid]
    assert cluster.left_over == []
    assert not processes_with(word)
    assert not any(Path(f"/proc/{pid}").exists() for pid in pids)
    assert not network.list_netns(slot.prefix + "-")
    assert not Path(mount).exists() and not Path(mount).parent.exists()


def test_ctrl_c_on_cluster_up_tears_down(tmp_path):
    word, mount = token(), f"/opt/kubetune-e2e-{token()}/scratch"
    workdir = tmp_path / "up"
    proc = subprocess.Popen(
        [
            sys.executable,
            str(E2E / "cluster.py"),
            "up",
            "--workdir",
            str(workdir),
            "--keep",
            "--node",
            '{"name": "solo"}',
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert proc.stdout is not None
        lines = []
        for line in proc.stdout:
            lines.append(line)
            if "cluster is up" in line:
                break
        else:
            pytest.fail("cluster.py up did not come up:\n" + "".join(lines))
        env = {**os.environ, "KUBECONFIG": str(workdir / "admin.kubeconfig")}
        kubectl = next(line.split("=", 1)[1].split(":", 1)[0] for line in lines if line.startswith("export PATH="))

        class Shell:
            def kubectl(self, *args, input=None, check=True):
                return subprocess.run(
                    [f"{kubectl}/kubectl", *args], input=input, text=True, capture_output=True, env=env, check=check
                )

        shell = Shell()
        apply(shell, "default", busy_pod(word, mount))
        wait_for(lambda: running(shell), timeout=60, what="pod running")
        proc.send_signal(signal.SIGINT)
        assert proc.wait(120) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    marker = str(workdir)
    assert not processes_with(word)
    assert not processes_with(marker)
    assert not Path(mount).parent.exists()
