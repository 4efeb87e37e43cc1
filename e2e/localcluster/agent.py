"""The node agent: scheduler plus kubelet for the nodes of one local cluster.

Run as its own process (`python -m localcluster.agent ...`, started by
LocalCluster), so that a crash in the harness's kubelet never takes the test
process down and SIGTERM is a clean, complete shutdown: every container is
killed, every pod's netns deleted, every mount target released.
"""

from __future__ import annotations

import argparse
import contextlib
import ipaddress
import json
import logging
import os
import signal
import socket
import threading
from collections.abc import Callable
from pathlib import Path

from .api import Api, Obj
from .context import AgentContext
from .informer import Informer
from .logserver import LogServer
from .network import Slot, sweep
from .nodes import NodeKeeper, NodeSpec
from .podworker import PodWorker
from .scheduler import Scheduler

log = logging.getLogger("localcluster.agent")


class ApiForwarder(threading.Thread):
    """Makes the API server (on 127.0.0.1 only) reachable from pods at the bridge address.

    Pods get KUBERNETES_SERVICE_HOST/PORT pointing here, so in-cluster clients
    (the operator in a pod) work as in a real cluster, without kube-proxy.
    """

    def __init__(self, listen: tuple[str, int], target: tuple[str, int]) -> None:
        super().__init__(name="api forwarder", daemon=True)
        self.target = target
        self.server = socket.create_server(listen, reuse_port=False)
        self.server.settimeout(0.5)
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.is_set():
            try:
                client, _ = self.server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        try:
            upstream = socket.create_connection(self.target)
        except OSError:
            client.close()
            return
        for a, b in ((client, upstream), (upstream, client)):
            threading.Thread(target=_pipe, args=(a, b), daemon=True).start()

    def stop(self) -> None:
        self.stopping.set()
        self.server.close()


def _pipe(src: socket.socket, dst: socket.socket) -> None:
    try:
        while data := src.recv(65536):
            dst.sendall(data)
    except OSError:
        pass
    finally:
        for s in (src, dst):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)


class Kubelet:
    """Starts one PodWorker per pod bound to one of this agent's nodes."""

    def __init__(self, ctx: AgentContext, slot: Slot, keeper: NodeKeeper) -> None:
        self.ctx = ctx
        self.slot = slot
        self.keeper = keeper
        self.workers: dict[str, PodWorker] = {}
        self.lock = threading.Lock()

    def on_pod(self, kind: str, pod: Obj) -> None:
        uid = pod["metadata"]["uid"]
        with self.lock:
            worker = self.workers.get(uid)
            if kind == "DELETED":
                if worker is not None:
                    worker.update(None)
                return
            if worker is not None:
                worker.update(pod)
                return
            node = pod["spec"].get("nodeName")
            if not node or self.ctx.stopping.is_set():
                return
            if node not in {n["metadata"]["name"] for n in self.keeper.mine()}:
                return
            worker = PodWorker(self.ctx, self.slot, pod, node)
            self.workers[uid] = worker
            worker.start()

    def find_log(
        self, namespace: str, name: str, container: str, previous: bool
    ) -> tuple[Path, Callable[[], bool]] | None:
        """The log file of a container's current (or previous) run, for the log server."""
        with self.lock:
            workers = [
                w
                for w in self.workers.values()
                if w.pod["metadata"]["namespace"] == namespace and w.pod["metadata"]["name"] == name
            ]
        for w in workers:
            for c in w.containers:
                if c.name == container:
                    attempt = c.restart_count - 1 if previous else c.restart_count
                    if attempt < 0:
                        return None
                    path = w.dir / "containers" / c.name / f"{attempt}.log"
                    return path, (lambda c=c: c.running and not previous)
        return None

    def shutdown(self, timeout: float = 30.0) -> None:
        with self.lock:
            workers = list(self.workers.values())
        for w in workers:
            w.update(w.pod)  # wake it up to see ctx.stopping
        for w in workers:
            w.join(timeout)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--name", required=True, help="agent name, the value of its nodes' label")
    parser.add_argument("--server", required=True, help="host:port of the API server")
    parser.add_argument("--ca", required=True, type=Path)
    parser.add_argument("--cert", required=True, type=Path)
    parser.add_argument("--key", required=True, type=Path)
    parser.add_argument("--serving-cert", required=True, type=Path, help="for the log endpoint")
    parser.add_argument("--serving-key", required=True, type=Path)
    parser.add_argument("--slot", required=True, type=int)
    parser.add_argument("--workdir", required=True, type=Path)
    parser.add_argument("--node", action="append", default=[], help="node spec as JSON")
    parser.add_argument("--image-map", type=Path)
    parser.add_argument("--container-path", default=os.environ.get("PATH", ""))
    parser.add_argument("--restart-backoff", type=float, default=2.0)
    parser.add_argument("--kubernetes-version", default="v0.0.0")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(threadName)s %(levelname)s %(message)s")

    host, port = args.server.rsplit(":", 1)
    api = Api(host, int(port), args.ca, args.cert, args.key)
    slot = Slot(args.slot, -1)
    service_env = {
        "KUBERNETES_SERVICE_HOST": slot.gateway,
        "KUBERNETES_SERVICE_PORT": port,
        "KUBERNETES_SERVICE_PORT_HTTPS": port,
        "KUBERNETES_PORT": f"tcp://{slot.gateway}:{port}",
    }
    ctx = AgentContext(
        api=api,
        workdir=args.workdir,
        slot_number=slot.number,
        subnet=ipaddress.IPv4Network(slot.subnet),
        gateway=slot.gateway,
        image_map=args.image_map,
        container_path=args.container_path,
        service_env=service_env,
        restart_backoff=args.restart_backoff,
    )
    forwarder = ApiForwarder((slot.gateway, int(port)), (host, int(port)))
    forwarder.start()

    stop = ctx.stopping
    nodes = Informer(api, "/api/v1/nodes", stop=stop)
    nodes.start()
    nodes.synced.wait(30)
    logs = LogServer(ctx, (slot.gateway, 0), args.serving_cert, args.serving_key)
    logs.start()
    keeper = NodeKeeper(ctx, args.name, nodes, logs.port, args.kubernetes_version)
    for raw in args.node:
        keeper.register(NodeSpec.from_json(json.loads(raw)))
    keeper.start()
    kubelet = Kubelet(ctx, slot, keeper)
    logs.lookup = kubelet.find_log
    pods = Informer(api, "/api/v1/pods", handler=kubelet.on_pod, stop=stop)
    pods.start()
    scheduler = Scheduler(ctx, pods, nodes)
    scheduler.start()

    done = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: done.set())
    print("agent ready", flush=True)
    done.wait()
    log.info("shutting down")
    stop.set()
    kubelet.shutdown()
    forwarder.stop()
    logs.stop()
    sweep(slot, bridge=False)


if __name__ == "__main__":
    main()
