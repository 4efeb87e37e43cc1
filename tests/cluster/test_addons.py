"""Kueue and JobSet run in the local cluster (LocalCluster.start_kueue / start_jobset), webhooks included.

Kueue admits suspended Jobs by GPU quota and its mutating webhook suspends
queued Jobs; JobSet's controller runs a JobSet's replicated Jobs to completion.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from .kube import IMAGE, apply, condition, get, job_pods, wait_for

pytestmark = pytest.mark.cluster

QUEUE_LABEL = "kueue.x-k8s.io/queue-name"
#: Kueue's Workloads and JobSets, by their full resource names (no short-name clash with others).
WORKLOADS = "workloads.kueue.x-k8s.io"
JOBSETS = "jobsets.jobset.x-k8s.io"


def gpu_job(name: str, queue: str, command: str) -> dict[str, Any]:
    """A suspended Job in `queue` whose one pod asks for one GPU and runs `command`."""
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "labels": {QUEUE_LABEL: queue}},
        "spec": {
            "suspend": True,
            "backoffLimit": 0,
            "template": {
                "spec": {
                    "restartPolicy": "Never",
                    "terminationGracePeriodSeconds": 1,
                    "containers": [
                        {
                            "name": "main",
                            "image": IMAGE,
                            "command": ["sh", "-c", command],
                            "resources": {"limits": {"nvidia.com/gpu": 1}},
                        }
                    ],
                }
            },
        },
    }


def gpu_queue(namespace: str) -> list[dict[str, Any]]:
    """A ResourceFlavor for the GPU node, a ClusterQueue with one GPU of quota, a LocalQueue in namespace."""
    name = f"gpu-{namespace}"
    return [
        {
            "apiVersion": "kueue.x-k8s.io/v1beta2",
            "kind": "ResourceFlavor",
            "metadata": {"name": name},
            # Kueue puts these on an admitted Job's pods as a nodeSelector: they land on node-gpu-0.
            "spec": {"nodeLabels": {"nvidia.com/gpu.present": "true"}},
        },
        {
            "apiVersion": "kueue.x-k8s.io/v1beta2",
            "kind": "ClusterQueue",
            "metadata": {"name": name},
            "spec": {
                "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}},
                "resourceGroups": [
                    {
                        "coveredResources": ["nvidia.com/gpu"],
                        "flavors": [{"name": name, "resources": [{"name": "nvidia.com/gpu", "nominalQuota": 1}]}],
                    }
                ],
            },
        },
        {
            "apiVersion": "kueue.x-k8s.io/v1beta2",
            "kind": "LocalQueue",
            "metadata": {"name": "gpus", "namespace": namespace},
            "spec": {"clusterQueue": name},
        },
    ]


def workload_of(cluster, namespace: str, job: str) -> dict[str, Any]:
    """The Workload Kueue made for a Job (it names the Job as its owner); {} until there is one."""
    for wl in get(cluster, WORKLOADS, "-n", namespace).get("items", []):
        if any(ref["name"] == job for ref in wl["metadata"].get("ownerReferences", [])):
            return wl
    return {}


def is_true(obj: dict[str, Any], kind: str) -> bool:
    found = condition(obj, kind)
    return found is not None and found["status"] == "True"


def test_kueue_admits_gpu_jobs_by_quota(kueue_cluster, namespace):
    cluster = kueue_cluster
    apply(cluster, namespace, *gpu_queue(namespace))
    # The first waits for /tmp/done, which the test writes once it has seen the second held back.
    first = gpu_job("first", "gpus", "until [ -e /tmp/done ]; do sleep 0.1; done")
    second = gpu_job("second", "gpus", "true")
    apply(cluster, namespace, first)
    wait_for(lambda: is_true(workload_of(cluster, namespace, "first"), "Admitted"), timeout=60, what="first admitted")
    apply(cluster, namespace, second)

    # The second's Workload says why it waits: the one GPU of quota is in use.
    def held_back() -> dict[str, Any] | None:
        reserved = condition(workload_of(cluster, namespace, "second"), "QuotaReserved")
        return reserved if reserved and reserved["status"] == "False" else None

    reserved = wait_for(held_back, timeout=30, what="second's Workload pending on quota")
    assert "quota" in reserved["message"], reserved
    assert get(cluster, "job", "second", "-n", namespace)["spec"]["suspend"] is True

    [pod] = wait_for(
        lambda: [p for p in job_pods(cluster, namespace, "first") if p["status"].get("phase") == "Running"],
        timeout=60,
        what="first's pod running",
    )
    assert pod["spec"]["nodeName"] == "node-gpu-0"
    assert get(cluster, "job", "second", "-n", namespace)["spec"]["suspend"] is True
    cluster.kubectl("exec", "-n", namespace, pod["metadata"]["name"], "--", "touch", "/tmp/done")

    wait_for(lambda: is_true(get(cluster, "job", "first", "-n", namespace), "Complete"), timeout=60, what="first done")
    wait_for(lambda: is_true(workload_of(cluster, namespace, "second"), "Admitted"), timeout=60, what="second admitted")
    wait_for(
        lambda: is_true(get(cluster, "job", "second", "-n", namespace), "Complete"), timeout=60, what="second done"
    )
    [pod] = job_pods(cluster, namespace, "second")
    assert pod["spec"]["nodeName"] == "node-gpu-0"


def test_kueue_webhook_suspends_a_queued_job(kueue_cluster, namespace):
    job = gpu_job("eager", "gpus", "true")
    job["spec"]["suspend"] = False
    created = kueue_cluster.kubectl("create", "-n", namespace, "-o", "json", "-f", "-", input=json.dumps(job))
    assert json.loads(created.stdout)["spec"]["suspend"] is True
    # A Job without the label is Kueue's to leave alone (manageJobsWithoutQueueName: false).
    del job["metadata"]["labels"]
    job["metadata"]["name"] = "unqueued"
    job["spec"]["template"]["spec"]["containers"][0]["resources"] = {}
    created = kueue_cluster.kubectl("create", "-n", namespace, "-o", "json", "-f", "-", input=json.dumps(job))
    assert json.loads(created.stdout)["spec"]["suspend"] is False


def test_jobset_runs_its_replicated_jobs(jobset_cluster, namespace):
    cluster = jobset_cluster

    def replicated(name: str, replicas: int, pods: int) -> dict[str, Any]:
        container = {"name": "main", "image": IMAGE, "command": ["sh", "-c", "true"]}
        return {
            "name": name,
            "replicas": replicas,
            "template": {
                "spec": {
                    "parallelism": pods,
                    "completions": pods,
                    "backoffLimit": 0,
                    "template": {
                        "spec": {
                            "restartPolicy": "Never",
                            "terminationGracePeriodSeconds": 1,
                            "containers": [container],
                        }
                    },
                }
            },
        }

    jobset = {
        "apiVersion": "jobset.x-k8s.io/v1alpha2",
        "kind": "JobSet",
        "metadata": {"name": "pair"},
        "spec": {"replicatedJobs": [replicated("leader", 1, 1), replicated("workers", 2, 2)]},
    }
    apply(cluster, namespace, jobset)
    done = wait_for(
        lambda: condition(get(cluster, JOBSETS, "pair", "-n", namespace), "Completed"),
        timeout=90,
        what="JobSet Completed",
    )
    assert done["status"] == "True"

    jobs = get(cluster, "jobs", "-n", namespace, "-l", "jobset.sigs.k8s.io/jobset-name=pair")["items"]
    by_name = {j["metadata"]["name"]: j for j in jobs}
    assert sorted(by_name) == ["pair-leader-0", "pair-workers-0", "pair-workers-1"]
    for job in jobs:
        labels = job["metadata"]["labels"]
        assert labels["jobset.sigs.k8s.io/replicatedjob-name"] == job["metadata"]["name"].split("-")[1]
        assert is_true(job, "Complete")
        # The webhook's defaults: Indexed completion.
        assert job["spec"]["completionMode"] == "Indexed"

    pods = get(cluster, "pods", "-n", namespace, "-l", "jobset.sigs.k8s.io/jobset-name=pair")["items"]
    assert len(pods) == 5
    for pod in pods:
        labels = pod["metadata"]["labels"]
        assert labels["jobset.sigs.k8s.io/replicatedjob-name"] in ("leader", "workers")
        assert "jobset.sigs.k8s.io/job-index" in labels
        assert pod["status"]["phase"] == "Succeeded"
