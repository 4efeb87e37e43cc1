"""Trials queued through the real Kueue controller (built from its Go module, webhooks included).

The queue (manifests/examples/kueue/queues.yaml) has one GPU of quota, fewer than
the tuning job's maxParallelTrainingJobs, and each trial asks for one GPU: so
trials wait in the queue, Hyperband's stops must hand the GPU on, and a
higher-priority Job preempts a running trial. A watch of the trial pods records
every pod ever created, so that a stopped trial whose pod came back would be seen
even if it ran for a moment only.
"""

from __future__ import annotations

import json
import subprocess
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from .harness import (
    EXAMPLES,
    IMAGE,
    OperatorProcess,
    apply,
    example,
    get,
    install_operator_access,
    status_of,
    tuning_job,
    wait_for_end,
    wait_until,
)
from .test_jobset import jobset_trials, jobsets_of

pytestmark = pytest.mark.cluster

QUEUE_LABEL = "kueue.x-k8s.io/queue-name"
WORKLOADS = "workloads.kueue.x-k8s.io"
CLUSTER_QUEUE = "gpus"


@pytest.fixture(scope="module")
def operator(cluster: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[OperatorProcess]:
    """Kueue (and JobSet) first, then the operator, in the order a cluster admin installs them: kopf
    serves the Workloads and JobSets whose CRDs it finds at its start (installed later, the operator
    must be restarted)."""
    if not cluster.local:
        pytest.skip("needs the local cluster's Kueue")
    cluster.start_jobset()
    cluster.start_kueue()
    kubeconfig = install_operator_access(cluster)
    process = OperatorProcess(
        cluster, kubeconfig, tmp_path_factory.mktemp("operator") / "operator.log", ["--leader-identity", "replica-a"]
    )
    process.start()
    try:
        yield process
    finally:
        process.stop()
        print(f"operator log: {process.log_path}")


@pytest.fixture
def queues(kueue_cluster: Any, namespace: str) -> Iterator[Any]:
    """queues.yaml as the example says: the cluster-wide objects (kept for the session: applying them again
    changes nothing), and the LocalQueue in the test's namespace."""
    kueue_cluster.kubectl("-n", namespace, "apply", "-f", str(EXAMPLES / "kueue" / "queues.yaml"))
    yield kueue_cluster


class PodWatch:
    """Every pod of a tuning job that the API server ever reports, by Job: (pod UID, phase) as seen."""

    def __init__(self, cluster: Any, namespace: str, tuning_job: str) -> None:
        columns = "JOB:.metadata.labels.job-name,UID:.metadata.uid,PHASE:.status.phase"
        self.process = subprocess.Popen(
            [str(cluster.binaries.kubectl), "-n", namespace, "get", "pods", "--watch", "--no-headers",
             "-l", f"kubetune.io/tuning-job={tuning_job}", "-o", f"custom-columns={columns}"],
            env=cluster.env(None), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        )  # fmt: skip
        self.seen: dict[str, dict[str, set[str]]] = {}
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            fields = line.split()
            if len(fields) == 3:
                job, uid, phase = fields
                self.seen.setdefault(job, {}).setdefault(uid, set()).add(phase)

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(10)
        self._thread.join(10)


def workloads(cluster: Any, namespace: str) -> dict[str, dict[str, Any]]:
    """Trial Job name -> the Workload Kueue made for it."""
    found = get(cluster, namespace, WORKLOADS)["items"]
    return {ref["name"]: wl for wl in found for ref in wl["metadata"].get("ownerReferences", [])}


def condition(obj: dict[str, Any], kind: str) -> dict[str, Any]:
    return next((c for c in obj.get("status", {}).get("conditions", []) if c["type"] == kind), {})


def record_of(job: dict[str, Any]) -> dict[str, Any]:
    return dict(json.loads(job["metadata"]["annotations"]["kubetune.io/trial-record"]))


def trial_jobs(cluster: Any, namespace: str, name: str) -> dict[str, dict[str, Any]]:
    jobs = get(cluster, namespace, "jobs", selector=f"kubetune.io/tuning-job={name}")["items"]
    return {j["metadata"]["name"]: j for j in jobs}


def admitted_workloads(cluster: Any, queue: str = CLUSTER_QUEUE) -> int:
    status = json.loads(cluster.kubectl("get", "clusterqueues.kueue.x-k8s.io", queue, "-o", "json").stdout)
    return int(status.get("status", {}).get("admittedWorkloads", 0))


def test_hyperband_under_a_gpu_quota_smaller_than_its_parallelism(
    queues: Any, namespace: str, operator: OperatorProcess
) -> None:
    cluster = queues
    name = "digits-hyperband-queued"
    resource = example("kueue/hyperband.yaml")  # as it stands: 9 trials, 3 created at a time, one GPU
    watch = PodWatch(cluster, namespace, name)
    try:
        apply(cluster, namespace, resource)

        # Three trials are created, one GPU admits one: the others wait, shown as pending in Kueue's words.
        def kueue_pending() -> str | None:
            status = status_of(cluster, namespace, name)
            message = condition({"status": status}, "TrialsPending").get("message", "")
            # "Pending: couldn't assign flavors ...": the Workload's QuotaReserved message, once it has one
            return message if "waiting for admission by Kueue (queue gpus): Pending:" in message else None

        message = wait_until(kueue_pending, 120, "trials pending on Kueue's quota", operator)
        assert "quota for nvidia.com/gpu" in message, message
        status = wait_for_end(cluster, namespace, name, operator, timeout=420)
    finally:
        watch.stop()
    assert status["hyperParameterTuningJobStatus"] == "Completed", status
    assert status["completionReason"] == "MaxNumberOfTrainingJobsReached"
    jobs = trial_jobs(cluster, namespace, name)
    assert len(jobs) == 9  # exactly the budget
    records = {n: record_of(j) for n, j in jobs.items()}
    stopped = {n for n, r in records.items() if r["status"] == "Stopped"}
    completed = {n for n, r in records.items() if r["status"] == "Completed"}
    assert len(stopped) >= 3 and completed and stopped | completed == set(jobs), records
    counters = status["trainingJobStatusCounters"]
    assert counters["stopped"] == len(stopped) and counters["completed"] == len(completed)
    assert counters.get("retryableError", 0) == 0 and counters.get("nonRetryableError", 0) == 0, counters

    # Kueue created each trial suspended, with the template's queue label.
    for job in jobs.values():
        assert job["metadata"]["labels"][QUEUE_LABEL] == "gpus"
    # Each trial ran exactly one pod, on the GPU node: no stopped trial's pod ever came back.
    assert set(watch.seen) == set(jobs), watch.seen
    for job_name, pods in watch.seen.items():
        assert len(pods) == 1, (job_name, pods)
    # The stopped trials' Workloads are deactivated (Kueue evicted them and will never readmit them),
    # the rest finished; nothing holds quota any more.
    by_job = workloads(cluster, namespace)
    for job_name in stopped:
        workload = by_job[job_name]
        assert workload["spec"]["active"] is False, workload
        assert condition(workload, "Evicted").get("reason") == "Deactivated", workload
        # Kueue's job reconciler suspends the Job after its Workload is evicted: a moment after, for a trial
        # stopped just before the tuning job ended (the run above saw it still unsuspended, once).
        wait_until(
            lambda n=job_name: get(cluster, namespace, "job", n)["spec"].get("suspend") is True,
            60,
            f"Kueue to suspend the stopped trial {job_name}",
            operator,
        )
    for job_name in completed:
        assert condition(by_job[job_name], "Finished").get("status") == "True", by_job[job_name]
    wait_until(lambda: admitted_workloads(cluster) == 0, 60, "the ClusterQueue to hold no workload", operator)
    # One line per stop, naming the Workload it deactivated.
    lines = [line for line in operator.log().splitlines() if " trial.stopped " in line]
    assert len(lines) == len(stopped) and all("workload_deactivated=job-" in line for line in lines), lines


PREEMPTED_SCRIPT = """
import os, time
from kubetune import report
for step in range(1, int(os.environ["STEPS"]) + 1):
    report(step=step, score=step)
    time.sleep(0.5)
"""


def urgent_job(name: str) -> dict[str, Any]:
    """Production work in the same queue at a higher WorkloadPriorityClass: it preempts a trial for the GPU."""
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "labels": {QUEUE_LABEL: "gpus", "kueue.x-k8s.io/priority-class": "urgent"}},
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
                            "command": ["sh", "-c", "sleep 3"],
                            "resources": {"limits": {"nvidia.com/gpu": 1}},
                        }
                    ],
                }
            },
        },
    }


def gpu_trials(name: str, budget: int, parallel: int, steps: int = 20) -> dict[str, Any]:
    """Random trials of one GPU each in the queue, each reporting score=step, a step per 0.5 s."""
    return tuning_job(
        name,
        {
            "strategy": "Random",
            "randomSeed": 3,
            "objective": {"metricName": "score", "type": "Maximize"},
            "resourceLimits": {"maxNumberOfTrainingJobs": budget, "maxParallelTrainingJobs": parallel},
            "parameterRanges": {"integerParameterRanges": [{"name": "x", "minValue": 1, "maxValue": 9}]},
            "trialTemplate": {
                "metadata": {"labels": {QUEUE_LABEL: "gpus"}},
                "spec": {
                    "template": {
                        "spec": {
                            "terminationGracePeriodSeconds": 5,
                            "containers": [
                                {
                                    "name": "train",
                                    "image": IMAGE,
                                    "command": ["python", "-c", PREEMPTED_SCRIPT],
                                    "env": [{"name": "STEPS", "value": str(steps)}],
                                    "resources": {"limits": {"nvidia.com/gpu": 1}},
                                }
                            ],
                        }
                    }
                },
            },
        },
    )


def test_a_preempted_trial_runs_again_and_spends_no_budget(
    queues: Any, namespace: str, operator: OperatorProcess
) -> None:
    cluster = queues
    name = "preempted"
    # 20 s of training: on a loaded machine, a shorter trial could end on its own before Kueue's eviction lands.
    resource = gpu_trials(name, budget=1, parallel=1, steps=40)
    watch = PodWatch(cluster, namespace, name)
    try:
        apply(cluster, namespace, resource)
        trial = f"{name}-0001"

        def reported() -> bool:
            job = trial_jobs(cluster, namespace, name).get(trial)
            return bool(job and len(record_of(job).get("reports", [])) >= 2)

        wait_until(reported, 120, "the trial to report twice", operator)
        cluster.kubectl("-n", namespace, "create", "-f", "-", input=json.dumps(urgent_job("urgent")))
        wait_until(
            lambda: condition(workloads(cluster, namespace).get(trial, {}), "Evicted").get("reason") == "Preempted",
            60,
            "Kueue to preempt the trial",
            operator,
        )
        status = wait_for_end(cluster, namespace, name, operator, timeout=240)
    finally:
        watch.stop()
    assert status["hyperParameterTuningJobStatus"] == "Completed", status
    urgent = get(cluster, namespace, "job", "urgent")
    assert condition(urgent, "Complete").get("status") == "True", urgent
    jobs = trial_jobs(cluster, namespace, name)
    assert list(jobs) == [trial]  # the budget of one trial, spent once
    record = record_of(jobs[trial])
    assert record["status"] == "Completed" and record["value"] == 40, record  # the last of its 40 steps
    [attempt] = record["attempts"]
    assert attempt["reason"].startswith("evicted by Kueue: Preempted"), attempt
    assert len(watch.seen[trial]) == 2, watch.seen  # the preempted pod, and the one that finished
    counters = status["trainingJobStatusCounters"]
    assert counters["completed"] == 1 and counters.get("nonRetryableError", 0) == 0, counters


def test_stopping_releases_running_and_waiting_trials_for_good(
    queues: Any, namespace: str, operator: OperatorProcess
) -> None:
    cluster = queues
    name = "stopped-in-queue"
    watch = PodWatch(cluster, namespace, name)
    try:
        apply(cluster, namespace, gpu_trials(name, budget=3, parallel=3, steps=120))

        def one_runs_two_wait() -> bool:
            jobs = trial_jobs(cluster, namespace, name)
            running = [j for j in jobs.values() if len(record_of(j).get("reports", [])) >= 2]
            message = condition({"status": status_of(cluster, namespace, name)}, "TrialsPending").get("message", "")
            return (
                len(jobs) == 3 and len(running) == 1 and message.startswith("2 waiting to run") and "quota" in message
            )

        wait_until(one_runs_two_wait, 120, "one trial running and two waiting on the quota", operator)
        cluster.kubectl("-n", namespace, "patch", "hyperparametertuningjob", name, "--type=merge",
                        "-p", '{"spec": {"stopped": true}}')  # fmt: skip
        status = wait_for_end(cluster, namespace, name, operator, timeout=120)
        assert status["hyperParameterTuningJobStatus"] == "Stopped", status
        wait_until(lambda: admitted_workloads(cluster) == 0, 60, "the ClusterQueue to hold no workload", operator)
        time.sleep(5)  # long enough for Kueue to admit a waiting trial had it not been deactivated
    finally:
        watch.stop()
    jobs = trial_jobs(cluster, namespace, name)
    by_job = workloads(cluster, namespace)
    assert all(by_job[n]["spec"]["active"] is False for n in jobs), by_job
    assert all(record_of(j)["status"] == "Stopped" for j in jobs.values())
    # The one that ran had its pod; the two that waited never got one, before the stop or after it.
    assert len(watch.seen) == 1 and all(len(pods) == 1 for pods in watch.seen.values()), watch.seen
    assert admitted_workloads(cluster) == 0


RANKS_SCRIPT = """
import os, time
from kubetune import report
for step in range(1, 7):
    report(step=step, score=step + int(os.environ["HP_X"]))
    time.sleep(0.5)
"""


def cpu_queue(namespace: str) -> list[dict[str, Any]]:
    """A ClusterQueue with 1.5 CPUs of quota: room for one two-pod trial of 500m pods, and one more pod."""
    return [
        {"apiVersion": "kueue.x-k8s.io/v1beta2", "kind": "ResourceFlavor", "metadata": {"name": "any-node"}},
        {
            "apiVersion": "kueue.x-k8s.io/v1beta2",
            "kind": "ClusterQueue",
            "metadata": {"name": "cpus"},
            "spec": {
                "namespaceSelector": {},
                "resourceGroups": [
                    {
                        "coveredResources": ["cpu", "memory"],
                        "flavors": [
                            {
                                "name": "any-node",
                                "resources": [
                                    {"name": "cpu", "nominalQuota": "1500m"},
                                    {"name": "memory", "nominalQuota": "64Gi"},
                                ],
                            }
                        ],
                    }
                ],
            },
        },
        {
            "apiVersion": "kueue.x-k8s.io/v1beta2",
            "kind": "LocalQueue",
            "metadata": {"name": "cpus", "namespace": namespace},
            "spec": {"clusterQueue": "cpus"},
        },
    ]


def test_a_multi_pod_trial_is_admitted_as_one_workload(queues: Any, namespace: str, operator: OperatorProcess) -> None:
    cluster = queues
    for obj in cpu_queue(namespace):
        apply(cluster, namespace, obj)
    name = "ranks-queued"
    resource = tuning_job(
        name,
        {
            "strategy": "Random",
            "randomSeed": 4,
            "objective": {"metricName": "score", "type": "Maximize"},
            "resourceLimits": {"maxNumberOfTrainingJobs": 2, "maxParallelTrainingJobs": 2},
            "parameterRanges": {"integerParameterRanges": [{"name": "x", "minValue": 1, "maxValue": 9}]},
            "trialTemplate": {
                "metadata": {"labels": {QUEUE_LABEL: "cpus"}},
                "spec": {
                    "completionMode": "Indexed",
                    "completions": 2,
                    "parallelism": 2,
                    "template": {
                        "spec": {
                            "terminationGracePeriodSeconds": 5,
                            "containers": [
                                {
                                    "name": "train",
                                    "image": IMAGE,
                                    "command": ["python", "-c", RANKS_SCRIPT],
                                    "resources": {"requests": {"cpu": "500m"}},
                                }
                            ],
                        }
                    },
                },
            },
        },
    )
    watch = PodWatch(cluster, namespace, name)
    try:
        apply(cluster, namespace, resource)
        status = wait_for_end(cluster, namespace, name, operator, timeout=240)
    finally:
        watch.stop()
    assert status["hyperParameterTuningJobStatus"] == "Completed", status
    assert status["trainingJobStatusCounters"]["completed"] == 2, status
    jobs = trial_jobs(cluster, namespace, name)
    by_job = workloads(cluster, namespace)
    for job_name in jobs:  # one Workload per trial, for both its pods
        [pod_set] = by_job[job_name]["spec"]["podSets"]
        assert pod_set["count"] == 2, pod_set
        assert len(watch.seen[job_name]) == 2, watch.seen  # both ranks, once each
    # The quota had room for one more 500m pod while the first trial ran both its pods, but not for the
    # whole second trial: Kueue held it back, whole, until the first released quota. A rank that has
    # succeeded is reclaimable (Kueue's reclaimablePods), so that is when the first rank of the first
    # trial finished, not when its Job completed.
    first, second = sorted(jobs.values(), key=lambda j: j["status"]["startTime"])
    ranks = get(cluster, namespace, "pods", selector=f"job-name={first['metadata']['name']}")["items"]
    finished = [
        s["state"]["terminated"]["finishedAt"]
        for pod in ranks
        for s in pod["status"].get("containerStatuses", [])
        if s["name"] == "train" and "terminated" in s.get("state", {})
    ]
    assert len(finished) == 2, ranks
    assert second["status"]["startTime"] >= min(finished), (finished, second["status"])


def test_a_queued_jobset_trial_is_admitted_whole_and_stopped_through_its_workload(
    queues: Any, namespace: str, operator: OperatorProcess
) -> None:
    cluster = queues
    for obj in cpu_queue(namespace):
        apply(cluster, namespace, obj)
    name = "sets-queued"
    resource = jobset_trials(name, "hang", 2)
    template = resource["spec"]["trialTemplate"]
    template["metadata"] = {"labels": {QUEUE_LABEL: "cpus"}}
    for replicated in template["spec"]["replicatedJobs"]:  # 3 pods of 500m: the whole 1.5 CPUs of the queue
        for train in replicated["template"]["spec"]["template"]["spec"]["containers"]:
            train["resources"] = {"requests": {"cpu": "500m"}}
    watch = PodWatch(cluster, namespace, name)
    try:
        apply(cluster, namespace, resource)

        def one_runs_one_waits() -> dict[str, dict[str, Any]] | None:
            sets = {s["metadata"]["name"]: s for s in jobsets_of(cluster, namespace, name)}
            running = [n for n, s in sets.items() if record_of(s).get("reports")]
            message = condition({"status": status_of(cluster, namespace, name)}, "TrialsPending").get("message", "")
            return sets if len(sets) == 2 and len(running) == 1 and "quota" in message else None

        sets = wait_until(one_runs_one_waits, 120, "one JobSet trial running and one waiting on the quota", operator)
        running = next(n for n, s in sets.items() if record_of(s).get("reports"))
        cluster.kubectl("-n", namespace, "patch", "hyperparametertuningjob", name, "--type=merge",
                        "-p", '{"spec": {"stopped": true}}')  # fmt: skip
        status = wait_for_end(cluster, namespace, name, operator, timeout=120)
        assert status["hyperParameterTuningJobStatus"] == "Stopped", status
        wait_until(lambda: admitted_workloads(cluster, "cpus") == 0, 60, "the ClusterQueue to hold nothing", operator)
        time.sleep(5)  # long enough for Kueue to admit the waiting trial had it not been deactivated
    finally:
        watch.stop()
    by_owner = workloads(cluster, namespace)
    for set_name in sets:  # one Workload per JobSet, for all its pods, deactivated by the stop
        workload = by_owner[set_name]
        counts = sorted((p["name"], p["count"]) for p in workload["spec"]["podSets"])
        assert counts == [("leader", 1), ("workers", 2)], counts
        assert workload["spec"]["active"] is False, workload["spec"]
    pods_by_set = {
        n: [uid for job, uids in watch.seen.items() if job.startswith(f"{n}-") for uid in uids] for n in sets
    }
    assert len(pods_by_set[running]) == 3, watch.seen  # the admitted trial ran its three pods, once each
    assert all(not pods for n, pods in pods_by_set.items() if n != running), watch.seen  # the other, none ever
