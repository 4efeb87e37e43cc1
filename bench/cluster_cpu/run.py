"""CPU a cluster test file costs on the local cluster, with the harness's Go runtime settings and Go's defaults.

Usage: python bench/cluster_cpu/run.py [--rounds 1] [FILE ...]
       (default: tests/cluster/operator/test_strategies.py tests/cluster/install/test_install.py)

What the suite's time on two cores is made of is CPU, and most of that is the
cluster's: its Go processes and its pods. For each round and each variant this
starts a fresh two-node cluster (LocalCluster's defaults), runs each file
against it as an external cluster (KUBETUNE_E2E_KUBECONFIG) and reads, around
each file, the CPU time of

- each control-plane and node process (utime + stime, and what they reaped);
- the pods (the nodes' cgroups, cpuacct);
- the test process and what it ran (the operator, kubectl, helm);
- the whole machine (/proc/stat).

The peer, in the same run, is the same cluster with GOGC=100 and
GOMEMLIMIT=off: Go's defaults, which procs.child_env would otherwise replace.
Variants alternate within each round so that a change in the machine's load
falls on both. Run it on a quiet machine; it prints a table and writes
bench/cluster_cpu/results.json.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT / "e2e"), str(ROOT)]

from localcluster import LocalCluster  # noqa: E402
from localcluster.cgroups import hierarchies  # noqa: E402

DEFAULT_FILES = ["tests/cluster/operator/test_strategies.py", "tests/cluster/install/test_install.py"]
VARIANTS = {
    "go-defaults": {"GOGC": "100", "GOMEMLIMIT": "off"},
    "harness": {},  # procs.child_env's GOGC and GOMEMLIMIT
}
TICK = os.sysconf("SC_CLK_TCK")


def _process_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return sum(int(f) for f in fields[11:15]) / TICK  # utime, stime, cutime, cstime


def _machine_seconds() -> float:
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(f) for f in fields[:8])
    return (user + nice + system + irq + softirq + steal) / TICK


def _cpuacct(relative: str) -> float:
    for root in hierarchies():
        usage = root / relative / "cpuacct.usage"
        if usage.exists():
            return int(usage.read_text()) / 1e9
    return 0.0


def snapshot(cluster: LocalCluster) -> dict[str, float]:
    """CPU seconds so far, per component of this cluster; processes restarted meanwhile count from zero."""
    seen: dict[str, float] = {}
    assert cluster.control_plane is not None and cluster.slot is not None
    for proc in cluster.control_plane.processes:
        seen[proc.name] = seen.get(proc.name, 0.0) + _process_seconds(proc.pid)
    for node in cluster.nodes.values():
        for name, proc in (("kubelet", node.kubelet), ("containerd", node.containerd), ("kube-proxy", node.kube_proxy)):
            if proc is not None:
                seen[name] = seen.get(name, 0.0) + _process_seconds(proc.pid)
    seen["pods"] = _cpuacct(cluster.slot.cgroup)
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    seen["tests"] = usage.ru_utime + usage.ru_stime
    seen["machine"] = _machine_seconds()
    return seen


@contextmanager
def environment(values: dict[str, str]) -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def run_file(cluster: LocalCluster, path: str) -> dict[str, Any]:
    env = {**os.environ, **cluster.env(), "KUBETUNE_E2E_KUBECONFIG": str(cluster.kubeconfig)}
    before, started = snapshot(cluster), time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", path],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=1800,
    )  # fmt: skip
    wall, after = time.monotonic() - started, snapshot(cluster)
    summary = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else done.stderr[-300:]
    if done.returncode != 0:
        raise SystemExit(f"{path} failed under this cluster:\n{done.stdout[-3000:]}")
    cpu = {k: round(after[k] - before.get(k, 0.0), 1) for k in after}
    return {"file": path, "wall": round(wall, 1), "cpu": cpu, "pytest": summary}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("files", nargs="*", default=DEFAULT_FILES)
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args()
    runs: list[dict[str, Any]] = []
    for round_ in range(args.rounds):
        for variant, values in VARIANTS.items():
            with environment(values), LocalCluster() as cluster:
                for path in args.files:
                    result = {"round": round_, "variant": variant, **run_file(cluster, path)}
                    runs.append(result)
                    cpu = result["cpu"]
                    print(
                        f"{variant:12} {path:48} wall {result['wall']:6.1f} s  machine {cpu['machine']:6.1f} CPU-s  "
                        f"kube-apiserver {cpu.get('kube-apiserver', 0):5.1f}  etcd {cpu.get('etcd', 0):5.1f}  "
                        f"kubelets {cpu.get('kubelet', 0):5.1f}  pods {cpu['pods']:5.1f}  tests {cpu['tests']:5.1f}",
                        flush=True,
                    )
    table = []
    for path in args.files:
        row: dict[str, Any] = {"file": path}
        for variant in VARIANTS:
            mine = [r for r in runs if r["file"] == path and r["variant"] == variant]
            row[variant] = {
                "machine_cpu": statistics.median(r["cpu"]["machine"] for r in mine),
                "apiserver_cpu": statistics.median(r["cpu"].get("kube-apiserver", 0.0) for r in mine),
                "wall": statistics.median(r["wall"] for r in mine),
            }
        row["ratio_machine_cpu"] = round(row["harness"]["machine_cpu"] / row["go-defaults"]["machine_cpu"], 2)
        row["ratio_apiserver_cpu"] = round(row["harness"]["apiserver_cpu"] / row["go-defaults"]["apiserver_cpu"], 2)
        table.append(row)
        print(
            f"{path}: machine CPU {row['go-defaults']['machine_cpu']} -> {row['harness']['machine_cpu']} CPU-s "
            f"({row['ratio_machine_cpu']}x), kube-apiserver {row['go-defaults']['apiserver_cpu']} -> "
            f"{row['harness']['apiserver_cpu']} ({row['ratio_apiserver_cpu']}x)"
        )
    out = {
        "date": dt.date.today().isoformat(),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
        "rounds": args.rounds,
        "table": table,
        "runs": runs,
    }
    (Path(__file__).parent / "results.json").write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
