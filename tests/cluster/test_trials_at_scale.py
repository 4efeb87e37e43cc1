"""`kubetune trials` on a tuning job of 10,000 trial Jobs in a real API server, read a page at a time.

No operator runs here: the trial Jobs are written as the operator writes them
(labels, the record annotation, a controller ownerReference to the tuning job),
with `spec.managedBy` set to another controller so the Job controller leaves
10,000 Jobs alone, and `suspend` so nothing would run even if it did not. One
more Job carries the label but no owner: it must not be listed.
"""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client, config

from tests.cluster.kube import install_crd

pytestmark = [pytest.mark.cluster, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
TRIALS = 10_000


def record(number: int) -> dict[str, Any]:
    value = 0.5 + (number * 7919 % TRIALS) / (2 * TRIALS)  # a permutation: every objective distinct
    reports = [[number * 10 + s, s, value * s / 4] for s in range(1, 5)]
    return {
        "id": str(number), "number": number, "hyperparameters": {"hidden_units": 8 + number % 100, "epochs": 4},
        "tuned": {"hidden_units": 8 + number % 100}, "asked": number * 10, "reports": reports,
        "status": "Completed", "value": value, "reason": "", "ended": number * 10 + 5,
    }  # fmt: skip


def job(name: str, uid: str, number: int) -> dict[str, Any]:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": f"{name}-{number:05d}",
            "labels": {"kubetune.io/tuning-job": name, "kubetune.io/trial": str(number), "kubetune.io/trial-status": "Completed"},
            "annotations": {"kubetune.io/trial-record": json.dumps(record(number), separators=(",", ":"))},
            "ownerReferences": [{"apiVersion": "kubetune.io/v1alpha1", "kind": "HyperParameterTuningJob", "name": name, "uid": uid, "controller": True}],
        },
        "spec": {
            "managedBy": "kubetune.io/scale-test",
            "suspend": True,
            "template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "main", "image": "none"}]}},
        },
    }  # fmt: skip


def create_jobs(api: client.ApiClient, namespace: str, jobs: list[dict[str, Any]]) -> None:
    """POSTs the Jobs, 8 at a time, through the client's own connection pool and credentials.

    Bodies go out as ready-made JSON: the client's per-call machinery (parameter checks, serialising,
    a response object) cost the test ~9 ms of CPU a Job, 10,000 times, on a machine whose two cores
    the rest of the suite shares.
    """
    configuration = api.configuration
    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    token = configuration.auth_settings().get("BearerToken")  # a kubeconfig with a token, not a certificate
    if token:
        headers["Authorization"] = str(token["value"])
    url = f"{configuration.host}/apis/batch/v1/namespaces/{namespace}/jobs"
    pool_manager = api.rest_client.pool_manager

    def post(body: dict[str, Any]) -> None:
        response = pool_manager.request("POST", url, body=json.dumps(body).encode(), headers=headers)
        assert response.status == 201, (response.status, response.data[:500])

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(post, jobs))


def test_ten_thousand_trials_are_listed_page_by_page(cluster: Any, namespace: str) -> None:
    install_crd(
        cluster,
        str(ROOT / "crds" / "hyperparametertuningjobs.kubetune.io.yaml"),
        "hyperparametertuningjobs.kubetune.io",
    )
    api = config.new_client_from_config(config_file=str(cluster.kubeconfig))
    resource = yaml.safe_load((ROOT / "manifests" / "examples" / "random.yaml").read_text())
    resource["metadata"] = {"name": "big"}
    resource["spec"]["resourceLimits"]["maxNumberOfTrainingJobs"] = TRIALS
    resource["spec"]["parameterRanges"] = {
        "integerParameterRanges": [{"name": "hidden_units", "minValue": 8, "maxValue": 128}]
    }
    resource["spec"]["stopped"] = True  # should an operator be watching, it starts nothing
    created = client.CustomObjectsApi(api).create_namespaced_custom_object(
        "kubetune.io", "v1alpha1", namespace, "hyperparametertuningjobs", resource
    )
    batch = client.BatchV1Api(api)
    try:
        started = time.monotonic()
        create_jobs(api, namespace, [job("big", created["metadata"]["uid"], n) for n in range(1, TRIALS + 1)])
        print(f"created {TRIALS} trial Jobs in {time.monotonic() - started:.1f}s")
        stray = job("big", "", TRIALS + 1)  # merely labelled, owned by no one: not a trial of this tuning job
        del stray["metadata"]["ownerReferences"]  # (an owner UID that does not exist would have the GC delete it)
        batch.create_namespaced_job(namespace, stray, _preload_content=False)
        first = json.loads(batch.list_namespaced_job(namespace, limit=500, _preload_content=False).data)
        assert len(first["items"]) == 500 and first["metadata"].get("continue")  # the API server pages
        assert first["metadata"].get("remainingItemCount") == TRIALS + 1 - 500

        started = time.monotonic()
        done = subprocess.run(
            [sys.executable, "-m", "kubetune.cli", "trials", "big", "-n", namespace, "--kubeconfig", str(cluster.kubeconfig), "-o", "csv"],
            capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        seconds = time.monotonic() - started
        assert done.returncode == 0, done.stderr
        print(f"kubetune trials listed {TRIALS} trials in {seconds:.1f}s")
        rows = list(csv.DictReader(io.StringIO(done.stdout)))
        assert len(rows) == TRIALS and {int(r["number"]) for r in rows} == set(range(1, TRIALS + 1))
        values = [float(r["val_accuracy"]) for r in rows]
        assert values == sorted(values, reverse=True)  # best first
        assert all(r["steps"] == "4" for r in rows)
        assert seconds < 120, f"{seconds:.1f}s to list {TRIALS} trials"
    finally:
        # One DeleteCollection before the test ends: left to the namespace's deletion, the 10,000 Jobs go
        # while the worker's next test runs, and an operator started then is slow to see its own Jobs.
        batch.delete_collection_namespaced_job(namespace, propagation_policy="Background", _preload_content=False)
