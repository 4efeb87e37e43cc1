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
        wait_for(lambda: processes_with(word), timeout=10, what="the container process")
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
    proc = _cluster_up(workdir)
    try:
        assert proc.stdout is not None
        lines = []
        for line in proc.stdout:
            lines.append(line)
            if "cluster is up" in line:
                break
        else:
            pytest.fail("cluster.py up did not come up:\n" + "".join(lines))
        shell = _Shell(workdir / "admin.kubeconfig")
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


def test_sigkilled_cluster_dies_with_its_parent_and_is_swept(tmp_path):
    """SIGKILL skips all cleanup code: PDEATHSIG ends the processes, the sweep the rest."""
    word, mount = token(), f"/opt/kubetune-e2e-{token()}/scratch"
    workdir = tmp_path / "killed"
    proc = _cluster_up(workdir)
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            if "cluster is up" in line:
                break
        shell = _Shell(workdir / "admin.kubeconfig")
        apply(shell, "default", busy_pod(word, mount))
        wait_for(lambda: running(shell), timeout=60, what="pod running")
    finally:
        proc.kill()
        proc.wait()
    wait_for(lambda: not processes_with(word) and not processes_with(str(workdir)), timeout=15, what="processes gone")
    assert Path(mount).exists()  # nothing ran to remove it...
    subprocess.run([sys.executable, str(E2E / "cluster.py"), "sweep"], check=True, capture_output=True)
    assert not Path(mount).parent.exists()  # ...until the sweep
    assert not [n for n in network.list_links("kt") if n.endswith("br") and not _slot_held(n)]


def _cluster_up(workdir: Path) -> subprocess.Popen[str]:
    """`e2e/cluster.py up` with one node, as a user would start it."""
    argv = [sys.executable, str(E2E / "cluster.py"), "up", "--workdir", str(workdir), "--keep"]
    return subprocess.Popen(
        [*argv, "--node", '{"name": "solo"}'], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


class _Shell:
    """kubectl with a given kubeconfig, for clusters this process does not own."""

    def __init__(self, kubeconfig: Path) -> None:
        from localcluster.binaries import Binaries

        self.kubectl_path = Binaries.locate().kubectl
        self.env = {**os.environ, "KUBECONFIG": str(kubeconfig)}

    def kubectl(self, *args, input=None, check=True):
        return subprocess.run(
            [str(self.kubectl_path), *args], input=input, text=True, capture_output=True, env=self.env, check=check
        )


def _slot_held(bridge: str) -> bool:
    """Whether a running cluster holds the slot of this bridge (its lock is taken)."""
    import fcntl

    number = bridge[2:-2]
    with open(network.LOCK_DIR / f"slot-{number}.lock", "a") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(f, fcntl.LOCK_UN)
        return False
