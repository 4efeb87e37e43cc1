"""Trials under the faults of real nodes: a node that drops out and comes back, a sidecar that crashes.

The local cluster injects them through the real components (e2e/README.md,
"Faults"): the kubelet is killed and the node goes NotReady for the node
lifecycle controller; the sidecar's container is killed through containerd
and restarted by the kubelet.
"""

from __future__ import annotations

from typing import Any

import pytest

from .harness import OperatorProcess, apply, example, get, wait_for_end, wait_until
from .test_disruptions import record_of

pytestmark = pytest.mark.cluster
FIRST = "digits-random-0001"
SIDECAR = "kubetune-metrics"


def slow_trials(budget: int, epochs: int = 30) -> dict[str, Any]:
    return example("random.yaml", resourceLimits={"maxNumberOfTrainingJobs": budget, "maxParallelTrainingJobs": 1},
                   staticHyperParameters={"epochs": epochs, "batch_size": 32, "epoch_seconds": 0.5})  # fmt: skip


def reporting_pod(cluster: Any, namespace: str) -> dict[str, Any] | None:
    """Trial 1's running pod, once the operator has scraped two reports from it."""
    if len(record_of(cluster, namespace, FIRST).get("reports") or []) < 2:
        return None
    pods = get(cluster, namespace, "pods", selector=f"batch.kubernetes.io/job-name={FIRST}")["items"]
    return next((p for p in pods if p["status"].get("phase") == "Running"), None)


def strictly_increasing_steps(record: dict[str, Any]) -> list[int]:
    steps = [report[1] for report in record["reports"]]
    assert steps == sorted(steps) and len(set(steps)) == len(steps), f"one series, not two mixed: {steps}"
    return steps


def test_a_trial_on_a_node_that_drops_out_runs_again_and_spends_no_budget(
    local_cluster: Any, namespace: str, operator: OperatorProcess
) -> None:
    """Its kubelet dies: the node goes NotReady, the taint manager evicts the pod (a disruption), and
    once the kubelet is back and has killed the old pod, the Job runs the trial again."""
    cluster = local_cluster
    # Long enough to outlast the node monitor's grace period: a trial that ends meanwhile is reported
    # by its sidecar and completes, the kubelet being needed by neither.
    resource = slow_trials(1, epochs=120)  # one trial: its second attempt must not be a second trial
    pod_spec = resource["spec"]["trialTemplate"]["spec"]["template"]["spec"]
    # Evicted a second after the node is unreachable, rather than the default five minutes.
    pod_spec["tolerations"] = [
        {"key": f"node.kubernetes.io/{t}", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 1}
        for t in ("unreachable", "not-ready")
    ]
    apply(cluster, namespace, resource)
    pod = wait_until(lambda: reporting_pod(cluster, namespace), 180, "trial 1 to report twice", operator)
    node = pod["spec"]["nodeName"]
    cluster.stop_kubelet(node)
    try:

        def disrupted() -> bool:
            obj = get(cluster, namespace, "pods", pod["metadata"]["name"])
            return any(c["type"] == "DisruptionTarget" for c in obj["status"].get("conditions", []))

        wait_until(disrupted, 120, f"the taint manager to evict trial 1's pod from {node}", operator)
    finally:
        cluster.start_kubelet(node)
    status = wait_for_end(cluster, namespace, "digits-random", operator, timeout=300)
    assert status["hyperParameterTuningJobStatus"] == "Completed", status
    counters = status["trainingJobStatusCounters"]
    assert counters["completed"] == 1 and counters["nonRetryableError"] == 0 and counters["retryableError"] == 1
    assert len(get(cluster, namespace, "jobs", selector="kubetune.io/tuning-job=digits-random")["items"]) == 1
    record = record_of(cluster, namespace, FIRST)
    assert "attempts" in record, f"trial 1 was never replaced: {operator.log()[-2000:]}"
    [earlier] = record["attempts"]
    assert earlier["pod"] == pod["metadata"]["name"], earlier
    strictly_increasing_steps(record)


def test_a_crashed_metrics_sidecar_is_restarted_and_loses_no_report(
    local_cluster: Any, namespace: str, operator: OperatorProcess
) -> None:
    """The kubelet restarts a native sidecar; the new one reads the trial's files from the start, and the
    operator takes each step once."""
    cluster = local_cluster
    apply(cluster, namespace, slow_trials(1))
    pod = wait_until(lambda: reporting_pod(cluster, namespace), 180, "trial 1 to report twice", operator)
    cluster.kill_container(namespace, pod["metadata"]["name"], SIDECAR)

    def restarted() -> bool:
        obj = get(cluster, namespace, "pods", pod["metadata"]["name"])
        statuses = obj["status"].get("initContainerStatuses", [])
        return any(s["name"] == SIDECAR and s["restartCount"] >= 1 and "running" in s["state"] for s in statuses)

    wait_until(restarted, 60, "the kubelet to restart the sidecar", operator)
    status = wait_for_end(cluster, namespace, "digits-random", operator, timeout=240)
    assert status["hyperParameterTuningJobStatus"] == "Completed", status
    counters = status["trainingJobStatusCounters"]
    assert counters["completed"] == 1 and counters["retryableError"] == 0 and counters["nonRetryableError"] == 0
    record = record_of(cluster, namespace, FIRST)
    assert not record.get("attempts"), "the pod was never replaced"
    steps = strictly_increasing_steps(record)
    assert steps[-1] - steps[0] + 1 == len(steps) >= 25, f"a step went missing: {steps}"
