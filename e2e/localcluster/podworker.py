"""The kubelet's pod lifecycle for one pod, with local processes as containers.

One thread per pod: sandbox (netns, volumes), init containers in order, native
sidecars (init containers with restartPolicy Always) started before the main
containers and stopped after them, restarts with back-off, activeDeadlineSeconds,
graceful deletion, and the pod status the kubelet would report at each step.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import ssl
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import images, mountpoints
from .api import ApiError, Obj
from .context import AgentContext, now_rfc3339
from .network import PodNetwork, Slot
from .podenv import ConfigError, build_env, expand_all
from .runtime import ContainerProcess, log_tail, read_termination_message
from .volumes import materialise

log = logging.getLogger(__name__)
TICK = 0.1
DEFAULT_TERMINATION_PATH = "/dev/termination-log"


@dataclass
class Container:
    """One container slot of the pod and everything observed about it."""

    spec: Obj
    kind: str  # "init", "sidecar" or "main"
    restart_count: int = 0
    proc: ContainerProcess | None = None
    state: Obj = field(default_factory=lambda: {"waiting": {"reason": "PodInitializing"}})
    last_state: Obj = field(default_factory=dict)
    started_at: str = ""
    next_start: float = 0.0
    backoff: float = 0.0
    finished: bool = False  # will not run again
    exit_code: int | None = None

    @property
    def name(self) -> str:
        return str(self.spec["name"])

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def status(self) -> Obj:
        """The containerStatuses entry; other state keys are nulled for the SMP."""
        state = {k: self.state.get(k) for k in ("waiting", "running", "terminated")}
        last = {k: self.last_state.get(k) for k in ("waiting", "running", "terminated")}
        ready = self.running if self.kind != "init" else self.exit_code == 0
        return {
            "name": self.name,
            "image": self.spec.get("image", ""),
            "imageID": f"localproc://{self.spec.get('image', '')}",
            "containerID": f"localproc://{id(self):x}-{self.restart_count}" if self.started_at else None,
            "ready": ready,
            "started": self.running,
            "restartCount": self.restart_count,
            "state": state,
            "lastState": last if self.last_state else {},
        }


class PodWorker(threading.Thread):
    """Runs one pod bound to one of the agent's nodes until it is deleted."""

    def __init__(self, ctx: AgentContext, slot: Slot, pod: Obj, node: str) -> None:
        super().__init__(name=f"pod {pod['metadata']['namespace']}/{pod['metadata']['name']}", daemon=True)
        self.ctx = ctx
        self.slot = slot
        self.node = node
        self.uid: str = pod["metadata"]["uid"]
        self._pod = pod
        self._gone = False
        self._wake = threading.Event()
        self._lock = threading.Lock()
        self.dir = ctx.workdir / "pods" / self.uid
        spec = pod["spec"]
        self.containers = [
            Container(c, "sidecar" if c.get("restartPolicy") == "Always" else "init")
            for c in spec.get("initContainers", [])
        ]
        self.containers += [Container(c, "main") for c in spec["containers"]]
        for c in self.containers:
            if c.kind == "main":
                c.state = {"waiting": {"reason": "ContainerCreating"}}
        self.network: PodNetwork | None = None
        self.pod_ip = ""
        self.mounts: dict[str, list[dict[str, Any]]] = {}
        self.claims: list[str] = []
        self.phase = "Pending"
        self.reason: str | None = None
        self.message: str | None = None
        self.start_time = now_rfc3339()
        self.started_monotonic = time.monotonic()
        self.sandbox_ready = False
        self.init_done = False
        self.terminal = False
        self.finished = threading.Event()
        self._conditions: dict[str, Obj] = {}
        self._last_status: Obj | None = None
        self._mount_error = ""

    # -- inputs from the agent -------------------------------------------------

    def update(self, pod: Obj | None) -> None:
        """A newer version of the pod (None: it is gone from the API)."""
        with self._lock:
            if pod is None:
                self._gone = True
            else:
                self._pod = pod
        self._wake.set()

    @property
    def pod(self) -> Obj:
        with self._lock:
            return self._pod

    def _deleting(self) -> bool:
        with self._lock:
            return self._gone or "deletionTimestamp" in self._pod["metadata"]

    def _stopping(self) -> bool:
        return self._deleting() or self.ctx.stopping.is_set()

    # -- the lifecycle ---------------------------------------------------------

    def run(self) -> None:
        try:
            self._lifecycle()
        except Exception:
            log.exception("pod worker %s failed", self.name)
        finally:
            for c in self.containers:
                if c.proc is not None:
                    c.proc.kill()
            self._teardown_sandbox()
            if self._deleting() and not self.ctx.stopping.is_set():
                self._final_delete()
            shutil.rmtree(self.dir, ignore_errors=True) if self._deleting() else None
            self.finished.set()

    def _lifecycle(self) -> None:
        finished_before = self.pod.get("status", {}).get("phase") in ("Succeeded", "Failed")
        if finished_before:
            self.terminal = True  # already finished before this agent saw it
        else:
            self._sync_status()
            if not self._setup_sandbox():
                return self._on_stop()
            self._sync_status()
            while not self.terminal:
                if self._stopping():
                    return self._on_stop()
                if self._deadline_exceeded():
                    self._kill_all(self._grace())
                    self.phase, self.reason = "Failed", "DeadlineExceeded"
                    self.message = "Pod was active on the node longer than the specified deadline"
                    self._finish()
                    break
                self._step()
                self._sync_status()
                self._wake.wait(TICK)
                self._wake.clear()
        while not self._stopping():
            # A no-op once the API server has the final status; resends one that an outage refused,
            # as the kubelet keeps syncing (else the pod stays Running in the API and its Job never ends).
            if not finished_before:
                self._sync_status()
            self._wake.wait(1.0)
            self._wake.clear()

    def _on_stop(self) -> None:
        """Graceful deletion (or agent shutdown): kill, report terminal phase, done."""
        if self.ctx.stopping.is_set():
            self._kill_all(self.ctx.shutdown_grace)
            return
        if not self.terminal:
            self._kill_all(self._grace())
            mains = [c for c in self.containers if c.kind == "main"]
            ok = all(c.exit_code == 0 for c in mains) and self.pod["spec"].get("restartPolicy") != "Always"
            self.phase = "Succeeded" if ok else "Failed"
            self._finish()

    def _grace(self) -> float:
        meta, spec = self.pod["metadata"], self.pod["spec"]
        value = meta.get("deletionGracePeriodSeconds", spec.get("terminationGracePeriodSeconds", 30))
        return float(value if value is not None else 30)

    def _deadline_exceeded(self) -> bool:
        deadline = self.pod["spec"].get("activeDeadlineSeconds")
        return deadline is not None and time.monotonic() - self.started_monotonic > float(deadline)

    def _finish(self) -> None:
        self.terminal = True
        self._sync_status()
        self._teardown_sandbox()

    # -- sandbox ---------------------------------------------------------------

    def _setup_sandbox(self) -> bool:
        """Network, then volumes (retried while a referenced object is missing or the API server unreachable)."""
        pod = self.pod
        self.dir.mkdir(parents=True, exist_ok=True)
        if pod["spec"].get("hostNetwork"):
            self.pod_ip = self.ctx.gateway
        else:
            self.pod_ip = self.ctx.ips.take()
            self.network = PodNetwork.create(self.slot, self.pod_ip, self.uid[:8])
        self.sandbox_ready = True
        self._sync_status()
        while True:
            try:
                self._prepare_volumes()
                return True
            # Volumes read the API (ServiceAccount tokens, ConfigMaps, Secrets): while the API server is
            # down or restarting, retry as the kubelet does, rather than lose the pod to a refused connection.
            except (ConfigError, ApiError, ConnectionError, TimeoutError, ssl.SSLError) as exc:
                if str(exc) != self._mount_error:
                    self._mount_error = str(exc)
                    self.ctx.event(self.pod, "FailedMount", str(exc), "Warning", host=self.node)
            if self._stopping():
                return False
            self._wake.wait(1.0)
            self._wake.clear()

    def _prepare_volumes(self) -> None:
        pod = self.pod
        sources: dict[str, Path] = {}
        allocatable = self.ctx.allocatable.get(self.node, {})
        for volume in pod["spec"].get("volumes", []):
            sources[volume["name"]] = materialise(
                self.ctx.api, pod, volume, self.dir / "volumes" / volume["name"], allocatable
            )
        hosts = self.dir / "etc-hosts"
        hostname = pod["spec"].get("hostname") or pod["metadata"]["name"]
        hosts.write_text(
            f"127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n{self.pod_ip}\t{hostname}\n"
        )
        for c in self.containers:
            mounts: list[dict[str, Any]] = [{"source": str(hosts), "target": "/etc/hosts", "readOnly": False}]
            term = self._termination_file(c)
            term.parent.mkdir(parents=True, exist_ok=True)
            term.touch()
            mounts.append(
                {"source": str(term), "target": c.spec.get("terminationMessagePath") or DEFAULT_TERMINATION_PATH}
            )
            for vm in c.spec.get("volumeMounts", []):
                if vm["name"] not in sources:
                    raise ConfigError(f"container {c.name}: no volume named {vm['name']!r}")
                source = sources[vm["name"]]
                if vm.get("subPath"):
                    source = source / vm["subPath"]
                    if not source.exists():
                        source.mkdir(parents=True)
                mounts.append({"source": str(source), "target": vm["mountPath"], "readOnly": bool(vm.get("readOnly"))})
            for m in mounts:
                self.claims += mountpoints.ensure(m["target"], os.path.isdir(m["source"]), self.slot.number)
            self.mounts[c.name] = mounts

    def _termination_file(self, c: Container) -> Path:
        path: Path = self.dir / "containers" / c.name / "termination-log"
        return path

    def _teardown_sandbox(self) -> None:
        if self.claims:
            mountpoints.release(self.claims, self.slot.number)
            self.claims = []
        if self.network is not None:
            self.network.delete()
            self.ctx.ips.give_back(self.network.address)
            self.network = None

    # -- containers ------------------------------------------------------------

    def _step(self) -> None:
        """One reconcile pass over the containers."""
        restart_policy = self.pod["spec"].get("restartPolicy", "Always")
        for c in self.containers:
            if c.proc is not None and c.running is False and c.exit_code is None:
                self._on_exit(c, restart_policy)
        if not self.init_done:
            for c in self.containers:
                if c.kind == "main":
                    continue
                if c.kind == "sidecar":
                    if c.proc is None:
                        self._start(c)
                    continue
                if c.exit_code == 0 and c.finished:
                    continue
                if c.finished:  # an init container failed for good
                    self.phase, self.reason = "Failed", None
                    self._stop_sidecars(self._grace())
                    self._finish()
                    return
                if c.proc is None or not c.running:
                    self._start(c)
                return  # wait for this init container
            self.init_done = True
        for c in self.containers:
            if c.kind != "init" and not c.running and not c.finished:
                self._start(c)
        if self.phase == "Pending" and any(c.kind == "main" and c.started_at for c in self.containers):
            self.phase = "Running"
        mains = [c for c in self.containers if c.kind == "main"]
        if all(c.finished for c in mains):
            self._stop_sidecars(self._grace())
            failed = any(c.exit_code != 0 for c in mains)
            self.phase = "Failed" if failed else "Succeeded"
            self._finish()

    def _on_exit(self, c: Container, restart_policy: str, may_restart: bool = True) -> None:
        """Records a container's exit and decides whether it runs again."""
        assert c.proc is not None
        code = c.proc.poll()
        assert code is not None
        start_error = c.proc.start_error()
        terminated: Obj = {
            "exitCode": code,
            "startedAt": c.started_at or now_rfc3339(),
            "finishedAt": now_rfc3339(),
            "reason": "Completed" if code == 0 else "Error",
        }
        if start_error:
            terminated.update(exitCode=128, reason="StartError", message=start_error)
            code = 128
        else:
            message = read_termination_message(self._termination_file(c))
            if not message and code != 0 and c.spec.get("terminationMessagePolicy") == "FallbackToLogsOnError":
                message = log_tail(c.proc.log_path)
            if message:
                terminated["message"] = message
        c.exit_code = code
        c.state = {"terminated": terminated}
        if not may_restart or self._stopping() or self.terminal:
            again = False
        elif c.kind == "sidecar":
            again = True
        elif c.kind == "init":
            again = code != 0 and restart_policy != "Never"
        elif restart_policy == "Always":
            again = True
        elif restart_policy == "OnFailure":
            again = code != 0
        else:
            again = False
        c.finished = not again
        if again:
            c.backoff = min(c.backoff * 2 if c.backoff else self.ctx.restart_backoff, self.ctx.restart_backoff_cap)
            c.next_start = time.monotonic() + c.backoff
            self.ctx.event(
                self.pod, "BackOff", f"Back-off restarting failed container {c.name}", "Warning", host=self.node
            )

    def _start(self, c: Container) -> None:
        """Starts (or restarts, once its back-off has passed) one container."""
        if time.monotonic() < c.next_start:
            if "terminated" in c.state:
                c.last_state, c.state = (
                    c.state,
                    {
                        "waiting": {
                            "reason": "CrashLoopBackOff",
                            "message": f"back-off {c.backoff:.0f}s restarting failed container={c.name}",
                        }
                    },
                )
            return
        if c.proc is not None:
            c.restart_count += 1
            if "terminated" in c.state:
                c.last_state = c.state
            else:
                c.last_state = c.last_state or {}
        pod = self.pod
        entry = images.lookup(images.load_map(self.ctx.image_map), c.spec.get("image", ""))
        env = {
            "PATH": self.ctx.container_path,
            "HOME": "/root",
            "HOSTNAME": pod["spec"].get("hostname") or pod["metadata"]["name"],
        }
        if entry is not None:
            env.update(entry.env)
        try:
            pod_for_env = {**pod, "status": {**pod.get("status", {}), **self._ips()}}
            env.update(
                build_env(
                    self.ctx.api, pod_for_env, c.spec, self.ctx.service_env, self.ctx.allocatable.get(self.node, {})
                )
            )
            argv = expand_all(images.argv_for(c.spec, entry), env)
        except (ConfigError, ApiError, images.NoCommand) as exc:
            c.state = {"waiting": {"reason": "CreateContainerConfigError", "message": str(exc)}}
            c.next_start = time.monotonic() + 1.0
            return  # retried on a later pass
        term = self._termination_file(c)
        term.write_bytes(b"")
        cwd = c.spec.get("workingDir") or (entry.working_dir if entry else None) or "/"
        spec = {
            "argv": argv,
            "env": env,
            "cwd": cwd,
            "mounts": self.mounts.get(c.name, []),
            "hostname": env["HOSTNAME"],
            "netns": str(self.network.netns_path) if self.network else None,
        }
        c.proc = ContainerProcess.start(self.dir / "containers" / c.name, c.restart_count, spec)
        c.exit_code = None
        c.started_at = now_rfc3339()
        c.state = {"running": {"startedAt": c.started_at}}
        self.ctx.event(pod, "Started", f"Started container {c.name}", host=self.node)

    def _stop_sidecars(self, grace: float) -> None:
        """After the main containers: SIGTERM each sidecar, last started first."""
        deadline = time.monotonic() + grace
        for c in reversed([c for c in self.containers if c.kind == "sidecar"]):
            c.finished = True
            self._terminate([c], deadline)

    def _kill_all(self, grace: float) -> None:
        """Deletion order: main (and running init) containers, then sidecars."""
        deadline = time.monotonic() + grace
        self._terminate([c for c in self.containers if c.kind != "sidecar"], deadline)
        for c in reversed([c for c in self.containers if c.kind == "sidecar"]):
            self._terminate([c], deadline)
        for c in self.containers:
            c.finished = True

    def _terminate(self, containers: list[Container], deadline: float) -> None:
        """SIGTERM, then SIGKILL at the deadline; records how each one ended."""
        running = [c for c in containers if c.running]
        for c in running:
            c.finished = True
            assert c.proc is not None
            c.proc.signal(signal.SIGTERM)
            self.ctx.event(self.pod, "Killing", f"Stopping container {c.name}", host=self.node)
        while any(c.running for c in running) and time.monotonic() < deadline:
            time.sleep(0.05)
        for c in running:
            assert c.proc is not None
            if c.running:
                c.proc.kill()
            c.proc.popen.wait()
            self._on_exit(c, "Never", may_restart=False)

    # -- status ----------------------------------------------------------------

    def _ips(self) -> Obj:
        status: Obj = {"hostIP": self.ctx.gateway, "hostIPs": [{"ip": self.ctx.gateway}]}
        if self.pod_ip:
            status.update(podIP=self.pod_ip, podIPs=[{"ip": self.pod_ip}])
        return status

    def _condition(self, kind: str, ok: bool, reason: str | None = None, message: str | None = None) -> Obj:
        value = "True" if ok else "False"
        old = self._conditions.get(kind)
        stamp = old["lastTransitionTime"] if old and old["status"] == value else now_rfc3339()
        cond = {
            "type": kind,
            "status": value,
            "lastTransitionTime": stamp,
            "lastProbeTime": None,
            "reason": None if ok else reason,
            "message": None if ok else message,
        }
        self._conditions[kind] = cond
        return cond

    def _build_status(self) -> Obj:
        inits = [c for c in self.containers if c.kind != "main"]
        mains = [c for c in self.containers if c.kind == "main"]
        pending_init = [
            c.name
            for c in inits
            if not (c.exit_code == 0 and c.finished) and not (c.kind == "sidecar" and c.started_at)
        ]
        ready_set = [c for c in mains + [c for c in inits if c.kind == "sidecar"]]
        unready = [c.name for c in ready_set if not c.running]
        containers_ready = not unready and not self.terminal
        if self.terminal and self.phase == "Succeeded":
            ready_reason, ready_message = "PodCompleted", None
        else:
            ready_reason, ready_message = "ContainersNotReady", f"containers with unready status: [{' '.join(unready)}]"
        conditions = [
            self._condition("PodReadyToStartContainers", self.sandbox_ready and not self.terminal),
            self._condition(
                "Initialized",
                self.init_done or not pending_init,
                "ContainersNotInitialized",
                f"containers with incomplete status: [{' '.join(pending_init)}]",
            ),
            self._condition("ContainersReady", containers_ready, ready_reason, ready_message),
            self._condition("Ready", containers_ready, ready_reason, ready_message),
        ]
        status: Obj = {
            "phase": self.phase,
            "conditions": conditions,
            "startTime": self.start_time,
            "reason": self.reason,
            "message": self.message,
            **self._ips(),
            "containerStatuses": [c.status() for c in mains],
        }
        if inits:
            status["initContainerStatuses"] = [c.status() for c in inits]
        return status

    def _sync_status(self) -> None:
        """Patches the pod's status when it changed (strategic merge, like the kubelet)."""
        status = self._build_status()
        if status == self._last_status:
            return
        meta = self.pod["metadata"]
        try:
            self.ctx.api.patch(
                f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}/status",
                {"metadata": {"uid": self.uid}, "status": status},
            )
            self._last_status = status
        except (ApiError, OSError) as exc:
            # Retried on the next pass: _last_status still holds what was last sent.
            log.warning("status of %s not patched: %s", self.name, exc)

    def _final_delete(self) -> None:
        """The kubelet's last word on a deleted pod: remove it with grace 0."""
        meta = self.pod["metadata"]
        try:
            self.ctx.api.delete(
                f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}",
                {"gracePeriodSeconds": 0, "preconditions": {"uid": self.uid}},
            )
        except ApiError as exc:
            if exc.status not in (404, 409):
                log.warning("final delete of %s failed: %s", self.name, exc)
