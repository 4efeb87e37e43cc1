"""The Job controller and garbage collector driving pods that the node agent runs."""

from __future__ import annotations

import pytest

from .kube import IMAGE, apply, condition, container_status, get, job_pods, wait_for
from .procs import processes_with, token

pytestmark = pytest.mark.cluster
PY = IMAGE


def job(name: str, containers: list[dict], init: list[dict] | None = None, **spec: object) -> dict:
    pod_spec = {"restartPolicy": "Never", "terminationGracePeriodSeconds": 5, "containers": containers}
    if init:
        pod_spec["initContainers"] = init
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {"template": {"spec": pod_spec}, **spec},
    }


def sleeper(word: str) -> dict:
    """A container that sleeps until killed, findable by word on its command line."""
    return {"name": "main", "image": PY, "command": ["python3", "-c", "import time; time.sleep(3600)", word]}


def test_native_sidecar_job_completes_and_keeps_termination_message(cluster, namespace):
    sidecar = {
        "name": "collector",
        "image": PY,
        "restartPolicy": "Always",
        "command": [
            "python3",
            "-c",
            "import signal, sys, time\n"
            "def bye(*_):\n"
            "    open('/dev/termination-log', 'w').write('{\"best\": 0.91}')\n"
            "    sys.exit(0)\n"
            "signal.signal(signal.SIGTERM, bye)\n"
            "while True: time.sleep(0.1)\n",
        ],
    }
    main = {"name": "train", "image": PY, "command": ["python3", "-c", "import time; time.sleep(1)"]}
    apply(cluster, namespace, job("sidecar", [main], init=[sidecar], backoffLimit=0))

    done = wait_for(
        lambda: condition(get(cluster, "job", "sidecar", "-n", namespace), "Complete"), timeout=60, what="Job Complete"
    )
    assert done["status"] == "True"
    [pod] = job_pods(cluster, namespace, "sidecar")
    assert pod["status"]["phase"] == "Succeeded"
    collector = container_status(pod, "collector")["state"]["terminated"]
    assert collector["message"] == '{"best": 0.91}'
    assert container_status(pod, "train")["state"]["terminated"]["exitCode"] == 0


def test_failing_job_retries_up_to_backoff_limit_then_fails(cluster, namespace):
    fail = {"name": "main", "image": PY, "command": ["python3", "-c", "import sys; sys.exit(3)"]}
    apply(cluster, namespace, job("fails", [fail], backoffLimit=1))

    failed = wait_for(
        lambda: condition(get(cluster, "job", "fails", "-n", namespace), "Failed"), timeout=90, what="Job Failed"
    )
    assert failed["reason"] == "BackoffLimitExceeded"
    pods = job_pods(cluster, namespace, "fails")
    assert len(pods) == 2  # the first try and one retry
    for pod in pods:
        assert pod["status"]["phase"] == "Failed"
        terminated = container_status(pod, "main")["state"]["terminated"]
        assert (terminated["exitCode"], terminated["reason"]) == (3, "Error")


def test_suspending_a_running_job_kills_its_processes(local_cluster, namespace):
    word = token()
    apply(local_cluster, namespace, job("suspend", [sleeper(word)]))
    wait_for(lambda: processes_with(word), timeout=30, what="the container's process")

    local_cluster.kubectl(
        "patch", "job", "suspend", "-n", namespace, "--type=merge", "-p", '{"spec": {"suspend": true}}'
    )

    wait_for(lambda: not processes_with(word), timeout=30, what="the process to be killed")
    wait_for(lambda: not job_pods(local_cluster, namespace, "suspend"), timeout=30, what="pods gone")
    assert condition(get(local_cluster, "job", "suspend", "-n", namespace), "Suspended")["status"] == "True"


def test_deleting_a_job_in_background_removes_pods_and_processes(local_cluster, namespace):
    word = token()
    apply(local_cluster, namespace, job("gc", [sleeper(word)], parallelism=2, completions=2))
    wait_for(lambda: len(processes_with(word)) >= 2, timeout=30, what="both containers running")

    local_cluster.kubectl("delete", "job", "gc", "-n", namespace, "--cascade=background")

    wait_for(
        lambda: not job_pods(local_cluster, namespace, "gc"),
        timeout=30,
        what="the garbage collector to delete the pods",
    )
    wait_for(lambda: not processes_with(word), timeout=30, what="the processes to be killed")
