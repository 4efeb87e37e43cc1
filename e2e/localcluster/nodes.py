"""Node objects that the agent keeps Ready, as a kubelet keeps its own node.

A node belongs to this agent when it carries the AGENT_LABEL with the agent's
name; its capacity comes from the RESOURCES_ANNOTATION (JSON), so a test can
add a node while the cluster runs just by creating such a Node object.
"""

from __future__ import annotations

import json
import logging
import platform
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

from .api import MERGE, ApiError, Obj
from .context import AgentContext, now_rfc3339
from .informer import Informer

log = logging.getLogger(__name__)
AGENT_LABEL = "e2e.kubetune.io/agent"
RESOURCES_ANNOTATION = "e2e.kubetune.io/resources"
GPU = "nvidia.com/gpu"
HEARTBEAT = 10.0
NOT_READY_TAINTS = ("node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable")


@dataclass(frozen=True)
class NodeSpec:
    """What a test asks of a node: its name, size, labels and taints."""

    name: str
    cpu: str = "8"
    memory: str = "16Gi"
    gpus: int = 0
    pods: int = 110
    labels: dict[str, str] = field(default_factory=dict)
    taints: list[Obj] = field(default_factory=list)

    def resources(self) -> dict[str, str]:
        out = {"cpu": self.cpu, "memory": self.memory, "pods": str(self.pods), "ephemeral-storage": "100Gi"}
        if self.gpus:
            out[GPU] = str(self.gpus)
        return out

    def manifest(self, agent: str) -> Obj:
        """The Node object; its status is the agent's to write."""
        labels = {
            "kubernetes.io/hostname": self.name,
            "kubernetes.io/os": "linux",
            "kubernetes.io/arch": "amd64",
            AGENT_LABEL: agent,
            **self.labels,
        }
        return {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": self.name,
                "labels": labels,
                "annotations": {RESOURCES_ANNOTATION: json.dumps(self.resources())},
            },
            "spec": {"taints": list(self.taints)} if self.taints else {},
        }

    @classmethod
    def from_json(cls, raw: Obj) -> NodeSpec:
        return cls(
            name=raw["name"],
            cpu=str(raw.get("cpu", "8")),
            memory=str(raw.get("memory", "16Gi")),
            gpus=int(raw.get("gpus", 0)),
            pods=int(raw.get("pods", 110)),
            labels=dict(raw.get("labels", {})),
            taints=list(raw.get("taints", [])),
        )


def _micro_time() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class NodeKeeper(threading.Thread):
    """Registers the agent's nodes, keeps them Ready and their leases fresh."""

    def __init__(self, ctx: AgentContext, agent: str, nodes: Informer, kubelet_port: int, version: str) -> None:
        super().__init__(name="node keeper", daemon=True)
        self.ctx = ctx
        self.agent = agent
        self.nodes = nodes
        self.kubelet_port = kubelet_port
        self.version = version
        self._beats: dict[str, float] = {}

    def register(self, spec: NodeSpec) -> None:
        try:
            self.ctx.api.create("/api/v1/nodes", spec.manifest(self.agent))
        except ApiError as exc:
            if exc.status != 409:
                raise
            self.ctx.api.patch(f"/api/v1/nodes/{spec.name}", spec.manifest(self.agent), MERGE)
        self.heartbeat(self.ctx.api.get(f"/api/v1/nodes/{spec.name}"))

    def mine(self) -> list[Obj]:
        return [n for n in self.nodes.snapshot() if n["metadata"].get("labels", {}).get(AGENT_LABEL) == self.agent]

    def run(self) -> None:
        while not self.ctx.stopping.is_set():
            for node in self.mine():
                name = node["metadata"]["name"]
                if time.monotonic() - self._beats.get(name, 0.0) > HEARTBEAT or not self._ready(node):
                    try:
                        self.heartbeat(node)
                    except (ApiError, OSError) as exc:
                        log.warning("heartbeat of node %s failed: %s", name, exc)
            self.ctx.stopping.wait(0.5)

    @staticmethod
    def _ready(node: Obj) -> bool:
        return any(c["type"] == "Ready" and c["status"] == "True" for c in node.get("status", {}).get("conditions", []))

    def heartbeat(self, node: Obj) -> None:
        """Patches Ready status and capacity, clears not-ready taints, renews the lease."""
        name = node["metadata"]["name"]
        resources = json.loads(node["metadata"].get("annotations", {}).get(RESOURCES_ANNOTATION, "{}"))
        self.ctx.allocatable[name] = resources
        stamp = now_rfc3339()
        old = {c["type"]: c for c in node.get("status", {}).get("conditions", [])}

        def condition(kind: str, value: str, reason: str, message: str) -> Obj:
            since = old[kind]["lastTransitionTime"] if kind in old and old[kind]["status"] == value else stamp
            return {
                "type": kind,
                "status": value,
                "reason": reason,
                "message": message,
                "lastHeartbeatTime": stamp,
                "lastTransitionTime": since,
            }

        status = {
            "capacity": resources,
            "allocatable": resources,
            "conditions": [
                condition(
                    "MemoryPressure", "False", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"
                ),
                condition("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
                condition("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
                condition("Ready", "True", "KubeletReady", "kubelet is posting ready status"),
            ],
            "addresses": [{"type": "InternalIP", "address": self.ctx.gateway}, {"type": "Hostname", "address": name}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": self.kubelet_port}},
            "nodeInfo": {
                "kubeletVersion": self.version,
                "kubeProxyVersion": "",
                "containerRuntimeVersion": "localproc://0.1",
                "operatingSystem": "linux",
                "architecture": "amd64",
                "osImage": platform.platform(),
                "kernelVersion": platform.release(),
                "machineID": "",
                "systemUUID": "",
                "bootID": "",
            },
        }
        self.ctx.api.patch(f"/api/v1/nodes/{name}/status", {"status": status})
        taints = node["spec"].get("taints") or []
        kept = [t for t in taints if t["key"] not in NOT_READY_TAINTS]
        if len(kept) != len(taints):
            self.ctx.api.patch(f"/api/v1/nodes/{name}", {"spec": {"taints": kept or None}}, MERGE)
        self._renew_lease(node)
        self._beats[name] = time.monotonic()

    def _renew_lease(self, node: Obj) -> None:
        name = node["metadata"]["name"]
        path = "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases"
        spec = {"holderIdentity": name, "leaseDurationSeconds": 40, "renewTime": _micro_time()}
        try:
            self.ctx.api.patch(f"{path}/{name}", {"spec": spec}, MERGE)
        except ApiError as exc:
            if exc.status != 404:
                raise
            self.ctx.api.create(
                path,
                {
                    "apiVersion": "coordination.k8s.io/v1",
                    "kind": "Lease",
                    "metadata": {
                        "name": name,
                        "namespace": "kube-node-lease",
                        "ownerReferences": [
                            {"apiVersion": "v1", "kind": "Node", "name": name, "uid": node["metadata"]["uid"]}
                        ],
                    },
                    "spec": spec,
                },
            )
