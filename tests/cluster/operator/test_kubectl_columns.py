"""What `kubectl get` shows of a tuning job and of its trial Jobs, after a short run on the real API server."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from kubetune.operator.status import significant

from .harness import OperatorProcess, apply, example, get, wait_for_end

pytestmark = pytest.mark.cluster


def table(text: str) -> list[dict[str, str]]:
    """kubectl's table output as one dict per row, keyed by the column headers."""
    header, *rows = text.strip().splitlines()
    starts = [m.start() for m in re.finditer(r"\S+(?: \S+)*", header)]
    names = header.split()
    assert len(starts) == len(names), header
    bounds = [*starts[1:], None]
    return [
        {name: row[start:end].strip() for name, start, end in zip(names, starts, bounds, strict=True)} for row in rows
    ]


def test_kubectl_shows_metric_best_counts_and_reason(cluster: Any, namespace: str, operator: OperatorProcess) -> None:
    resource = example("random.yaml", resourceLimits={"maxNumberOfTrainingJobs": 3, "maxParallelTrainingJobs": 3})
    apply(cluster, namespace, resource)
    status = wait_for_end(cluster, namespace, "digits-random", operator)
    assert status["hyperParameterTuningJobStatus"] == "Completed", status
    best = status["bestTrainingJob"]["finalObjectiveValue"]

    (row,) = table(cluster.kubectl("-n", namespace, "get", "hptj").stdout)
    assert list(row) == ["NAME", "STRATEGY", "METRIC", "STATUS", "TRIALS", "RUNNING", "FAILED", "BEST", "AGE"]
    assert (row["METRIC"], row["STATUS"], row["TRIALS"]) == ("val_accuracy", "Completed", "3/3")
    assert (row["RUNNING"], row["FAILED"]) == ("0", "0")
    assert row["BEST"] == significant(best) == status["bestObjectiveValue"] and len(row["BEST"]) <= 6

    (wide,) = table(cluster.kubectl("-n", namespace, "get", "hptj", "-o", "wide").stdout)
    assert list(wide)[-1] == "REASON" and wide["REASON"] == "MaxNumberOfTrainingJobsReached"

    selector = "kubetune.io/tuning-job=digits-random"
    jobs = table(
        cluster.kubectl("-n", namespace, "get", "jobs", "-l", selector, "-L", "kubetune.io/trial-status").stdout
    )
    assert sorted(j["NAME"] for j in jobs) == [f"digits-random-{n:04d}" for n in range(1, 4)]
    assert {j["TRIAL-STATUS"] for j in jobs} == {"Completed"}
    completed = get(cluster, namespace, "jobs", selector=f"{selector},kubetune.io/trial-status=Completed")["items"]
    assert len(completed) == 3

    columns = "NAME:.metadata.name,OBJECTIVE:.metadata.annotations.kubetune\\.io/objective"
    shown = {
        j["NAME"]: j["OBJECTIVE"]
        for j in table(
            cluster.kubectl("-n", namespace, "get", "jobs", "-l", selector, "-o", f"custom-columns={columns}").stdout
        )
    }
    for job in completed:
        value = json.loads(job["metadata"]["annotations"]["kubetune.io/trial-record"])["value"]
        assert shown[job["metadata"]["name"]] == significant(value)
    assert significant(best) in shown.values()
