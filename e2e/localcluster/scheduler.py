"""A small scheduler: the kube-scheduler's filters that the tests rely on.

Filters: node Ready and schedulable, nodeSelector, required node affinity
(matchExpressions), taints and tolerations (NoSchedule/NoExecute), and
resource fit for cpu, memory, pods and extended resources such as
nvidia.com/gpu, with the same effective-request rule as the kube-scheduler
(init containers, native sidecars included). Among the nodes that fit, the
least allocated wins. A pod that fits nowhere gets PodScheduled=False,
reason Unschedulable, and is retried whenever pods or nodes change.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from fractions import Fraction

from .api import ApiError, Obj
from .context import AgentContext, now_rfc3339
from .informer import Informer
from .quantity import parse_quantity

log = logging.getLogger(__name__)
SCHEDULER_NAME = "default-scheduler"
Resources = dict[str, Fraction]


def _add(a: Resources, b: Resources) -> Resources:
    out = dict(a)
    for k, v in b.items():
        out[k] = out.get(k, Fraction(0)) + v
    return out


def _max(a: Resources, b: Resources) -> Resources:
    return {k: max(a.get(k, Fraction(0)), b.get(k, Fraction(0))) for k in set(a) | set(b)}


def _requests(container: Obj) -> Resources:
    res = container.get("resources", {})
    # As in the API server's defaulting: a limit without a request is the request.
    merged = {**res.get("limits", {}), **res.get("requests", {})}
    return {k: parse_quantity(v) for k, v in merged.items()}


def pod_requests(pod: Obj) -> Resources:
    """Effective requests: max(sum(main)+sidecars, each init + sidecars started before it)."""
    spec = pod["spec"]
    total: Resources = {}
    for c in spec["containers"]:
        total = _add(total, _requests(c))
    sidecars: Resources = {}
    init_peak: Resources = {}
    for c in spec.get("initContainers", []):
        if c.get("restartPolicy") == "Always":
            sidecars = _add(sidecars, _requests(c))
            init_peak = _max(init_peak, sidecars)
        else:
            init_peak = _max(init_peak, _add(sidecars, _requests(c)))
    total = _max(_add(total, sidecars), init_peak)
    for k, v in (spec.get("overhead") or {}).items():
        total[k] = total.get(k, Fraction(0)) + parse_quantity(v)
    total["pods"] = Fraction(1)
    return total


def _tolerates(tolerations: Iterable[Obj], taint: Obj) -> bool:
    for t in tolerations:
        if t.get("effect") and t["effect"] != taint["effect"]:
            continue
        if t.get("operator") == "Exists":
            if not t.get("key") or t["key"] == taint["key"]:
                return True
        elif t.get("key") == taint["key"] and t.get("value", "") == taint.get("value", ""):
            return True
    return False


def _expression_matches(expr: Obj, labels: dict[str, str]) -> bool:
    key, op, values = expr["key"], expr["operator"], expr.get("values", [])
    if op == "In":
        return labels.get(key) in values
    if op == "NotIn":
        return labels.get(key) not in values
    if op == "Exists":
        return key in labels
    if op == "DoesNotExist":
        return key not in labels
    if op in ("Gt", "Lt") and key in labels:
        a, b = int(labels[key]), int(values[0])
        return a > b if op == "Gt" else a < b
    return False


def _affinity_ok(pod: Obj, labels: dict[str, str]) -> bool:
    required = ((pod["spec"].get("affinity") or {}).get("nodeAffinity") or {}).get(
        "requiredDuringSchedulingIgnoredDuringExecution"
    )
    if not required:
        return True
    return any(
        all(_expression_matches(e, labels) for e in term.get("matchExpressions", []))
        for term in required.get("nodeSelectorTerms", [])
    )


def _node_ready(node: Obj) -> bool:
    return any(c["type"] == "Ready" and c["status"] == "True" for c in node.get("status", {}).get("conditions", []))


def why_not(pod: Obj, node: Obj, used: Resources) -> str | None:
    """None if pod fits node, else the kube-scheduler's words for why not."""
    labels = node["metadata"].get("labels", {})
    if not _node_ready(node):
        return "node(s) were not ready"
    if node["spec"].get("unschedulable"):
        return "node(s) were unschedulable"
    selector = pod["spec"].get("nodeSelector") or {}
    if any(labels.get(k) != v for k, v in selector.items()) or not _affinity_ok(pod, labels):
        return "node(s) didn't match Pod's node affinity/selector"
    tolerations = pod["spec"].get("tolerations") or []
    for taint in node["spec"].get("taints") or []:
        if taint["effect"] in ("NoSchedule", "NoExecute") and not _tolerates(tolerations, taint):
            return f"node(s) had untolerated taint {{{taint['key']}: {taint.get('value', '')}}}"
    allocatable = {k: parse_quantity(v) for k, v in node.get("status", {}).get("allocatable", {}).items()}
    for resource, amount in pod_requests(pod).items():
        if amount == 0:
            continue
        if used.get(resource, Fraction(0)) + amount > allocatable.get(resource, Fraction(0)):
            return "Too many pods" if resource == "pods" else f"Insufficient {resource}"
    return None


def _active(pod: Obj) -> bool:
    return pod.get("status", {}).get("phase") not in ("Succeeded", "Failed")


class Scheduler(threading.Thread):
    """Binds pending pods whenever the pod or node caches change."""

    def __init__(self, ctx: AgentContext, pods: Informer, nodes: Informer) -> None:
        super().__init__(name="scheduler", daemon=True)
        self.ctx = ctx
        self.pods = pods
        self.nodes = nodes
        self._assumed: dict[str, str] = {}  # pod uid -> node, until the cache shows it
        self._reported: dict[str, str] = {}  # pod uid -> last Unschedulable message

    def run(self) -> None:
        while not self.ctx.stopping.is_set():
            try:
                self.schedule_once()
            except Exception:
                log.exception("scheduling pass failed")
            with self.pods.changed:
                self.pods.changed.wait(1.0)

    def schedule_once(self) -> None:
        pods = self.pods.snapshot()
        nodes = sorted(self.nodes.snapshot(), key=lambda n: n["metadata"]["name"])
        used: dict[str, Resources] = {n["metadata"]["name"]: {} for n in nodes}
        pending = []
        for pod in pods:
            uid = pod["metadata"]["uid"]
            node_name = pod["spec"].get("nodeName") or self._assumed.get(uid)
            if pod["spec"].get("nodeName"):
                self._assumed.pop(uid, None)
            if node_name:
                if _active(pod) and node_name in used:
                    used[node_name] = _add(used[node_name], pod_requests(pod))
            elif (
                _active(pod)
                and "deletionTimestamp" not in pod["metadata"]
                and pod["spec"].get("schedulerName", SCHEDULER_NAME) == SCHEDULER_NAME
            ):
                pending.append(pod)
        pending.sort(key=lambda p: (-(p["spec"].get("priority") or 0), p["metadata"]["creationTimestamp"]))
        for pod in pending:
            self._schedule(pod, nodes, used)

    def _schedule(self, pod: Obj, nodes: list[Obj], used: dict[str, Resources]) -> None:
        reasons: dict[str, int] = {}
        fits = []
        for node in nodes:
            reason = why_not(pod, node, used[node["metadata"]["name"]])
            if reason is None:
                fits.append(node)
            else:
                reasons[reason] = reasons.get(reason, 0) + 1
        if not fits:
            detail = ", ".join(f"{n} {r}" for r, n in sorted(reasons.items()))
            self._unschedulable(pod, f"0/{len(nodes)} nodes are available: {detail}.")
            return
        node = min(fits, key=lambda n: (self._load(n, used), n["metadata"]["name"]))
        self._bind(pod, node["metadata"]["name"])
        used[node["metadata"]["name"]] = _add(used[node["metadata"]["name"]], pod_requests(pod))

    @staticmethod
    def _load(node: Obj, used: dict[str, Resources]) -> Fraction:
        allocatable = node["status"].get("allocatable", {})
        mine = used[node["metadata"]["name"]]
        shares = [
            mine.get(r, Fraction(0)) / parse_quantity(allocatable[r])
            for r in ("cpu", "memory")
            if r in allocatable and parse_quantity(allocatable[r])
        ]
        return max(shares, default=Fraction(0))

    def _bind(self, pod: Obj, node: str) -> None:
        meta = pod["metadata"]
        try:
            self.ctx.api.create(
                f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}/binding",
                {
                    "apiVersion": "v1",
                    "kind": "Binding",
                    "metadata": {"name": meta["name"], "namespace": meta["namespace"], "uid": meta["uid"]},
                    "target": {"apiVersion": "v1", "kind": "Node", "name": node},
                },
            )
        except ApiError as exc:
            log.debug("binding %s failed: %s", meta["name"], exc)
            return
        self._assumed[meta["uid"]] = node
        self._reported.pop(meta["uid"], None)
        self.ctx.event(
            pod,
            "Scheduled",
            f"Successfully assigned {meta['namespace']}/{meta['name']} to {node}",
            component=SCHEDULER_NAME,
        )

    def _unschedulable(self, pod: Obj, message: str) -> None:
        uid = pod["metadata"]["uid"]
        if self._reported.get(uid) == message:
            return
        meta = pod["metadata"]
        condition = {
            "type": "PodScheduled",
            "status": "False",
            "reason": "Unschedulable",
            "message": message,
            "lastTransitionTime": now_rfc3339(),
            "lastProbeTime": None,
        }
        try:
            self.ctx.api.patch(
                f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}/status",
                {"status": {"conditions": [condition]}},
            )
            self._reported[uid] = message
            self.ctx.event(pod, "FailedScheduling", message, "Warning", component=SCHEDULER_NAME)
        except ApiError as exc:
            log.debug("could not mark %s unschedulable: %s", meta["name"], exc)
