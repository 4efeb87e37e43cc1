"""The operator on the local control plane: how fast a freed slot is refilled, and what a trial costs in API writes.

Usage: python bench/operator/run.py [--trials 20] [--scrape-interval 5]

Runs one Random tuning job of short trials (maxParallelTrainingJobs 1, so
trial n+1 is trial n's successor) through the operator and, as the peer, the
same spec through `kubetune run` on this machine, which has no API server in
the way. For each trial it takes the moment the training process exited (the
trial prints it, the collector keeps it as a metric) and the moment its
successor was started (operator: `trial.created`; local: `trial.started`).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT / "e2e"), str(ROOT)]

from tests.cluster.operator.harness import (  # noqa: E402
    IMAGE,
    OperatorProcess,
    install_operator_access,
    status_of,
    wait_for_end,
)

from localcluster import LocalCluster  # noqa: E402

TRIAL = (
    "import random, time\n"
    "time.sleep(0.3)\n"
    "print(f'loss={random.random():.6f}')\n"
    "print(f'exit_at={time.time():.3f}', flush=True)\n"
)
LINE = re.compile(r"^(\S+) \w+ (trial\.created|trial\.started|job\.ended) (.*)$")


def spec(trials: int) -> dict[str, Any]:
    return {
        "apiVersion": "kubetune.io/v1alpha1",
        "kind": "HyperParameterTuningJob",
        "metadata": {"name": "bench"},
        "spec": {
            "strategy": "Random",
            "randomSeed": 1,
            "objective": {"metricName": "loss", "type": "Minimize"},
            "resourceLimits": {"maxNumberOfTrainingJobs": trials, "maxParallelTrainingJobs": 1},
            "parameterRanges": {"continuousParameterRanges": [{"name": "x", "minValue": 0.0, "maxValue": 1.0}]},
            "metricDefinitions": [
                {"name": "loss", "regex": r"loss=([0-9.]+)"},
                {"name": "exit_at", "regex": r"exit_at=([0-9.]+)"},
            ],
            "trialTemplate": {
                "spec": {
                    "backoffLimit": 0,
                    "template": {
                        "spec": {
                            "restartPolicy": "Never",
                            "containers": [{"name": "t", "image": IMAGE, "command": ["python", "-c", TRIAL]}],
                        }
                    },
                }
            },
        },
    }


def log_times(text: str, event: str) -> dict[str, float]:
    """trial name -> when `event` was logged for it."""
    times = {}
    for line in text.splitlines():
        match = LINE.match(line)
        if match and match.group(2) == event:
            trial = re.search(r"trial=(\S+)", match.group(3))
            if trial:
                stamp = dt.datetime.strptime(match.group(1), "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=dt.UTC)
                times[trial.group(1)] = stamp.timestamp()
    return times


def delays(exit_at: dict[int, float], started: dict[int, float]) -> list[float]:
    return [started[n + 1] - exit_at[n] for n in sorted(exit_at) if n + 1 in started]


def summary(values: list[float]) -> str:
    values = sorted(values)
    p90 = values[int(0.9 * (len(values) - 1))]
    return f"median {statistics.median(values):.2f} s, p90 {p90:.2f} s, max {values[-1]:.2f} s (n={len(values)})"


def in_cluster(trials: int, scrape_interval: float, workdir: Path) -> tuple[list[float], int, float]:
    with LocalCluster() as cluster:
        kubeconfig = install_operator_access(cluster)
        operator = OperatorProcess(
            cluster, kubeconfig, workdir / "operator.log", ["--leader-identity", "bench", "--scrape-interval", str(scrape_interval)]
        )
        operator.start()
        try:
            cluster.kubectl("create", "namespace", "bench")
            started = time.monotonic()
            cluster.kubectl("-n", "bench", "apply", "-f", "-", input=json.dumps(spec(trials)))
            wait_for_end(cluster, "bench", "bench", operator, timeout=60 + 10 * trials)
            wall = time.monotonic() - started
            jobs = json.loads(cluster.kubectl("-n", "bench", "get", "jobs", "-o", "json").stdout)["items"]
            status_of(cluster, "bench", "bench")
        finally:
            operator.stop()
        log = operator.log()
    exit_at = {}
    for job in jobs:  # a trial whose sidecar summary never arrived has no exit time: left out of the figures
        metrics = json.loads(job["metadata"]["annotations"].get("kubetune.io/metrics", "{}"))
        if "exit_at" in metrics:
            exit_at[int(job["metadata"]["labels"]["kubetune.io/trial"])] = float(metrics["exit_at"])
    created = {int(name.rsplit("-", 1)[1]): t for name, t in log_times(log, "trial.created").items()}
    writes = int(re.search(r"api_writes=(\d+)", log).group(1))  # type: ignore[union-attr]
    return delays(exit_at, created), writes, wall


def local(trials: int, workdir: Path) -> tuple[list[float], float]:
    path = workdir / "bench.yaml"
    path.write_text(yaml.safe_dump(spec(trials)))
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "kubetune.cli", "run", str(path), "-o", str(workdir / "out.json"), "--trial-dir", str(workdir / "t")],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    wall = time.monotonic() - started
    document = json.loads((workdir / "out.json").read_text())
    exit_at = {int(t["id"]): float(t["metrics"]["exit_at"]["last"]) for t in document["trials"]}
    begun = {int(name.rsplit("-", 1)[1]): t for name, t in log_times(result.stderr, "trial.started").items()}
    return delays(exit_at, begun), wall


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--scrape-interval", type=float, default=5.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        cluster_delays, writes, cluster_wall = in_cluster(args.trials, args.scrape_interval, workdir)
        local_delays, local_wall = local(args.trials, workdir)
    print(f"machine: {platform.machine()}, {platform.python_version()}, {dt.date.today()}")
    print(f"trials: {args.trials} sequential, operator scrape interval {args.scrape_interval:g} s")
    print(f"operator (local control plane): end -> successor Job created: {summary(cluster_delays)}; job wall {cluster_wall:.1f} s")
    print(f"kubetune run (peer, no cluster): end -> successor started:     {summary(local_delays)}; job wall {local_wall:.1f} s")
    print(f"ratio of medians operator/local: {statistics.median(cluster_delays) / statistics.median(local_delays):.1f}x")
    print(f"API writes by the operator: {writes} for {args.trials} trials = {writes / args.trials:.1f} per trial (reads: watches only)")


if __name__ == "__main__":
    main()
