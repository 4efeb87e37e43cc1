"""Placement by resources: GPUs go only where GPUs are free."""

from __future__ import annotations

import uuid

import pytest

from localcluster import NodeSpec
from localcluster.binaries import read_versions

from .kube import apply, condition, get, wait_for

pytestmark = pytest.mark.cluster
PAUSE_IMAGE = read_versions()["PAUSE_IMAGE"]


def gpu_pod(name: str, pool: str, gpus: int) -> dict:
    resources = {"limits": {"nvidia.com/gpu": str(gpus)}} if gpus else {}
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {
            "nodeSelector": {"pool": pool},
            "terminationGracePeriodSeconds": 1,
            "tolerations": [{"key": "pool", "operator": "Exists"}],
            "containers": [
                # The sandbox image: it runs until stopped, and these nodes need no other.
                {"name": "main", "image": PAUSE_IMAGE, "resources": resources}
            ],
        },
    }


def test_gpu_pods_go_to_free_gpus_and_wait_pending_otherwise(local_cluster, namespace):
    # A pool of two nodes of this test's own (tainted, so other tests' pods stay off them).
    # A letter first: a label value of hex digits alone can read as a number in YAML ("3500e1" is 35000.0).
    pool = f"p{uuid.uuid4().hex[:6]}"
    taint = [{"key": "pool", "value": pool, "effect": "NoSchedule"}]
    cpu_node, gpu_node = f"cpu-{pool}", f"gpu-{pool}"
    local_cluster.add_node(NodeSpec(cpu_node, labels={"pool": pool}, taints=taint, images=False))
    local_cluster.add_node(NodeSpec(gpu_node, gpus=1, labels={"pool": pool}, taints=taint, images=False))
    try:
        node_of = lambda name: get(local_cluster, "pod", name, "-n", namespace)["spec"].get("nodeName")  # noqa: E731
        apply(local_cluster, namespace, gpu_pod("first", pool, 1))
        assert wait_for(lambda: node_of("first"), timeout=30, what="first GPU pod bound") == gpu_node

        apply(local_cluster, namespace, gpu_pod("second", pool, 1))
        scheduled = wait_for(
            lambda: condition(get(local_cluster, "pod", "second", "-n", namespace), "PodScheduled"),
            timeout=30,
            what="PodScheduled condition",
        )
        assert (scheduled["status"], scheduled["reason"]) == ("False", "Unschedulable")
        assert "Insufficient nvidia.com/gpu" in scheduled["message"]
        assert get(local_cluster, "pod", "second", "-n", namespace)["status"]["phase"] == "Pending"

        # A CPU-only pod still fits, the GPUs being all taken.
        apply(local_cluster, namespace, gpu_pod("cpu-only", pool, 0))
        assert wait_for(lambda: node_of("cpu-only"), timeout=30, what="cpu pod bound") in (cpu_node, gpu_node)

        local_cluster.kubectl("delete", "pod", "first", "-n", namespace)
        assert wait_for(lambda: node_of("second"), timeout=30, what="second GPU pod bound") == gpu_node
        wait_for(
            lambda: get(local_cluster, "pod", "second", "-n", namespace)["status"].get("phase") == "Running",
            timeout=30,
            what="second GPU pod running",
        )
    finally:
        local_cluster.kubectl("delete", "pods", "--all", "-n", namespace, "--wait=true", "--timeout=60s", check=False)
        local_cluster.remove_node(cpu_node)
        local_cluster.remove_node(gpu_node)
