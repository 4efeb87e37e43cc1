"""The faults the local cluster can inject, each checked against what the real components do.

An API server outage while pods start, an eviction, one container killed
through the runtime, a node whose kubelet stops: the operator's tests use
these (tests/cluster/operator), so here each is shown to be the real thing.
"""

from __future__ import annotations

import threading
import time

import pytest

from .kube import apply, condition, container_status, get, job_pods, wait_for

pytestmark = pytest.mark.cluster


def sleeper(image: str, seconds: int = 600) -> dict:
    return {"name": "main", "image": image, "command": ["python3", "-c", f"import time; time.sleep({seconds})"]}


def test_pods_started_across_an_api_server_outage_complete(local_cluster, namespace):
    """The kubelets, the scheduler and the Job controller reconnect; no pod is lost or doubled."""
    probe = {"exec": {"command": ["true"]}, "periodSeconds": 1, "failureThreshold": 30}
    main = {
        "name": "main",
        "image": local_cluster.image,
        "command": ["python3", "-c", "import time; time.sleep(4)"],
        "startupProbe": probe,
    }
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "outage"},
        "spec": {
            "completions": 3,
            "parallelism": 3,
            "backoffLimit": 0,
            "template": {"spec": {"restartPolicy": "Never", "containers": [main]}},
        },
    }
    apply(local_cluster, namespace, job)
    wait_for(lambda: len(job_pods(local_cluster, namespace, "outage")) == 3, timeout=60, what="3 pods created")
    local_cluster.restart_apiserver(down_seconds=5)
    done = wait_for(
        lambda: condition(get(local_cluster, "job", "outage", "-n", namespace), "Complete"),
        timeout=120,
        what="the Job to complete",
    )
    assert done["status"] == "True"
    status = get(local_cluster, "job", "outage", "-n", namespace)["status"]
    assert status["succeeded"] == 3 and not status.get("failed")
    assert len(job_pods(local_cluster, namespace, "outage")) == 3


def test_an_evicted_pod_gets_the_disruption_condition(local_cluster, namespace):
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "evictee"},
        "spec": {"terminationGracePeriodSeconds": 2, "containers": [sleeper(local_cluster.image)]},
    }
    apply(local_cluster, namespace, pod)
    wait_for(
        lambda: get(local_cluster, "pod", "evictee", "-n", namespace).get("status", {}).get("phase") == "Running",
        timeout=90,
        what="the pod to run",
    )
    seen: list[dict] = []

    def watch() -> None:
        # The condition is there from the eviction until the pod object goes.
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            obj = get(local_cluster, "pod", "evictee", "-n", namespace)
            if not obj:
                return
            found = condition(obj, "DisruptionTarget")
            if found:
                seen.append(found)
                return
            time.sleep(0.1)

    watcher = threading.Thread(target=watch)
    watcher.start()
    local_cluster.evict(namespace, "evictee")
    watcher.join()
    assert seen and seen[0]["reason"] == "EvictionByEvictionAPI", seen
    wait_for(lambda: not get(local_cluster, "pod", "evictee", "-n", namespace), timeout=30, what="the pod to go")


def test_a_container_killed_through_the_runtime_is_restarted_by_the_kubelet(local_cluster, namespace):
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "crashy"},
        "spec": {"restartPolicy": "OnFailure", "containers": [sleeper(local_cluster.image)]},
    }
    apply(local_cluster, namespace, pod)
    wait_for(
        lambda: (
            container_status(get(local_cluster, "pod", "crashy", "-n", namespace), "main")
            .get("state", {})
            .get("running")
            if get(local_cluster, "pod", "crashy", "-n", namespace).get("status", {}).get("containerStatuses")
            else None
        ),
        timeout=90,
        what="the container to run",
    )
    local_cluster.kill_container(namespace, "crashy", "main")

    def restarted() -> dict | None:
        status = container_status(get(local_cluster, "pod", "crashy", "-n", namespace), "main")
        return status if status["restartCount"] >= 1 and "running" in status["state"] else None

    status = wait_for(restarted, timeout=60, what="the kubelet to restart the container")
    last = status["lastState"]["terminated"]
    assert last["exitCode"] == 137 and last["reason"] == "Error", last


def test_a_node_whose_kubelet_stops_goes_not_ready_and_comes_back(local_cluster):
    node = "node-cpu-0"

    def ready() -> str:
        found = condition(get(local_cluster, "node", node), "Ready")
        return found["status"] if found else ""

    assert ready() == "True"
    local_cluster.stop_kubelet(node)
    try:
        wait_for(lambda: ready() == "Unknown", timeout=90, what=f"{node} to go NotReady")

        def taints() -> set[str]:
            return {t["key"] for t in get(local_cluster, "node", node)["spec"].get("taints", [])}

        # the node lifecycle controller taints on its next pass after the condition turns Unknown, not with it
        wait_for(lambda: "node.kubernetes.io/unreachable" in taints(), timeout=30, what=f"{node}'s unreachable taint")
    finally:
        local_cluster.start_kubelet(node)
    assert ready() == "True"
