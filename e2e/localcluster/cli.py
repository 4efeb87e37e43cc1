"""`python e2e/cluster.py up|sweep`: the local cluster from a shell.

`up` starts a cluster, prints how to use it and keeps it running until
Ctrl-C (or SIGTERM), then tears it down completely.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
from pathlib import Path

from . import sweep
from .cluster import ClusterConfig, LocalCluster
from .node import NodeSpec


def _up(args: argparse.Namespace) -> int:
    nodes = tuple(NodeSpec.from_json(json.loads(n)) for n in args.node) or ClusterConfig().nodes
    config = ClusterConfig(nodes=nodes, workdir=args.workdir, keep_workdir=args.keep)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    with LocalCluster(config) as cluster:
        if args.kueue:
            cluster.start_kueue()
        if args.jobset:
            cluster.start_jobset()
        print(f"export KUBECONFIG={cluster.kubeconfig}")
        print(f"export PATH={cluster.binaries.kubectl.parent}:{cluster.binaries.helm.parent}:$PATH")
        assert cluster.slot is not None
        print(f"# slot {cluster.slot.number}: {cluster.slot.network}, API server {cluster.server}")
        print(f"# nodes: {', '.join(cluster.nodes)}   image: {cluster.image}   logs: {cluster.logs_dir()}")
        addons = [a for a, on in (("kueue", args.kueue), ("jobset", args.jobset)) if on]
        if addons:
            print(f"# addons: {', '.join(addons)} (logs beside the others)")
        print("# cluster is up; Ctrl-C tears it down", flush=True)
        stop.wait()
        print("# tearing down", flush=True)
    return 0


def _sweep(_: argparse.Namespace) -> int:
    """Removes what killed clusters left: processes, mounts, cgroups, netns and interfaces of unheld slots."""
    removed = sweep.sweep_free_slots()
    print("\n".join(removed) if removed else "nothing to sweep")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="e2e/cluster.py", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="start a cluster and keep it up until Ctrl-C")
    up.add_argument(
        "--node",
        action="append",
        default=[],
        help='node as JSON, e.g. \'{"name": "gpu-0", "gpus": 2, "labels": {"pool": "a"}}\'',
    )
    up.add_argument("--workdir", type=Path)
    up.add_argument("--keep", action="store_true", help="keep the workdir (logs) after teardown")
    up.add_argument("--kueue", action="store_true", help="also run Kueue (Job and JobSet integrations, webhooks)")
    up.add_argument("--jobset", action="store_true", help="also run JobSet's controller (and its webhooks)")
    up.set_defaults(func=_up)
    sweeper = sub.add_parser("sweep", help="remove leftovers of killed clusters")
    sweeper.set_defaults(func=_sweep)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
