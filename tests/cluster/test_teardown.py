"""Teardown leaves nothing: no process, container, mount, cgroup, network namespace, interface or folder.

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

from localcluster import ClusterConfig, LocalCluster, NodeSpec, network, sweep
from localcluster.binaries import read_versions

from .kube import apply, get, wait_for
from .procs import processes_with, token

pytestmark = pytest.mark.cluster
E2E = Path(__file__).resolve().parents[2] / "e2e"
#: These clusters' nodes import no image but the sandbox's, which runs until stopped: they start fast.
PAUSE_IMAGE = read_versions()["PAUSE_IMAGE"]


def busy_pod(word: str) -> dict:
    """A pod with a running container (`word` on its command line), a netns, mounts and cgroups."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "busy"},
        "spec": {
            "containers": [
                {
                    "name": "main",
                    "image": PAUSE_IMAGE,
                    "args": [word],
                    "volumeMounts": [{"name": "scratch", "mountPath": "/scratch"}],
                }
            ],
            "volumes": [{"name": "scratch", "emptyDir": {}}],
        },
    }


def running(cluster, name: str = "busy") -> bool:
    return get(cluster, "pod", name, "-n", "default").get("status", {}).get("phase") == "Running"


def test_context_manager_teardown_leaves_nothing(tmp_path):
    word = token()
    config = ClusterConfig(nodes=(NodeSpec("solo", images=False),), name="teardown", workdir=tmp_path / "cluster")
    with LocalCluster(config) as cluster:
        apply(cluster, "default", busy_pod(word))
        wait_for(lambda: running(cluster), timeout=60, what="pod running")
        wait_for(lambda: processes_with(word), timeout=10, what="the container process")
        slot = cluster.slot
        assert slot is not None
        pids = [p.pid for p in cluster.control_plane.processes] + [
            p.pid for n in cluster.nodes.values() for p in (n.containerd, n.kubelet, n.kube_proxy) if p
        ]
    assert cluster.left_over == []
    assert not processes_with(word)
    assert not any(Path(f"/proc/{pid}").exists() for pid in pids)
    assert not network.list_netns(slot.prefix + "-")
    assert not slot.state_dir.exists() and not slot.data_dir.exists()


def test_ctrl_c_on_cluster_up_tears_down(tmp_path):
    """With the addons too: Kueue and JobSet's controller go with the rest."""
    word = token()
    workdir = tmp_path / "up"
    proc = _cluster_up(workdir, "--kueue", "--jobset")
    try:
        slot = _wait_up(proc)
        assert processes_with(f"{workdir}/addons/kueue/") and processes_with(f"{workdir}/addons/jobset/")
        shell = _Shell(workdir / "admin.kubeconfig")
        apply(shell, "default", busy_pod(word))
        wait_for(lambda: running(shell), timeout=60, what="pod running")
        proc.send_signal(signal.SIGINT)
        assert proc.wait(120) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    assert not processes_with(word)
    assert not processes_with(str(workdir))
    assert _slot_leftovers(slot, workdir) == []


def test_sigkilled_cluster_dies_with_its_parent_and_is_swept(tmp_path):
    """SIGKILL skips all cleanup code: PDEATHSIG ends the components, the sweep the containers and the rest."""
    word = token()
    workdir = tmp_path / "killed"
    proc = _cluster_up(workdir)
    try:
        slot = _wait_up(proc)
        shell = _Shell(workdir / "admin.kubeconfig")
        apply(shell, "default", busy_pod(word))
        wait_for(lambda: running(shell), timeout=60, what="pod running")
    finally:
        proc.kill()
        proc.wait()
    wait_for(lambda: not processes_with(str(workdir) + "/"), timeout=15, what="the control plane gone")
    # containerd's shims daemonize, so no parent's death reaches them or their containers...
    assert processes_with(word)
    subprocess.run([sys.executable, str(E2E / "cluster.py"), "sweep"], check=True, capture_output=True)
    # ...until the sweep.
    assert not processes_with(word)
    assert _slot_leftovers(slot, workdir) == []


def _wait_up(proc: subprocess.Popen[str]) -> int:
    """Reads `cluster.py up` until it says the cluster is up; returns its slot number."""
    assert proc.stdout is not None
    lines: list[str] = []
    for line in proc.stdout:
        lines.append(line)
        if "cluster is up" in line:
            return int(next(ln for ln in lines if ln.startswith("# slot ")).split()[2].rstrip(":"))
    pytest.fail("cluster.py up did not come up:\n" + "".join(lines))


def _slot_leftovers(number: int, workdir: Path) -> list[str]:
    fd = network.lock_slot(number)
    assert fd is not None, f"slot {number} is still held"
    try:
        return sweep.leftovers(network.Slot(number, fd), workdir)
    finally:
        os.close(fd)


def _cluster_up(workdir: Path, *flags: str) -> subprocess.Popen[str]:
    """`e2e/cluster.py up` with one node, as a user would start it."""
    argv = [sys.executable, str(E2E / "cluster.py"), "up", "--workdir", str(workdir), "--keep", *flags]
    return subprocess.Popen(
        [*argv, "--node", '{"name": "solo", "images": false}'],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
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
