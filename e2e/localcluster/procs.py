"""Child processes that cannot outlive the harness.

Every long-running child is started in its own session (so a signal reaches
the whole process group) and with PR_SET_PDEATHSIG, so that the kernel kills
it if the harness dies without running its cleanup (SIGKILL, a crash). That
is the backstop behind "nothing is left running" when teardown code cannot run.

The kernel sends PDEATHSIG when the *thread* that forked the child exits, not
the process. Nodes start in worker threads, so every child is forked by one
spawner thread that lives as long as the harness's process.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from pathlib import Path
from queue import SimpleQueue

_PR_SET_PDEATHSIG = 1
_libc = ctypes.CDLL(None, use_errno=True)

GOGC = "400"
"""The Go garbage collector's target for the cluster's processes (etcd, the control plane, containerd and,
through it, the shims and runc; kubelets; kube-proxy; the add-ons' controllers), unless GOGC is set
already. At Go's default of 100, collection was a seventh of a loaded API server's CPU profile, two
thirds of it mark work on cores that Go took for idle while the suite's other clusters were using them.
bench/cluster_cpu compares it with Go's defaults in one run: the API server's CPU 0.76x and 0.89x on two
test files, the machine's 0.82x and 0.98x; the API server then holds about 0.85 GB."""
GOMEMLIMIT = "1536MiB"
"""And a soft cap per process, unless set already: near it the collector works harder instead of the heap
growing further, so four clusters and their tests stay well within this machine's memory."""


def child_env(env: Mapping[str, str] | None) -> dict[str, str]:
    """`env` (this process's environment if None) with GOGC and GOMEMLIMIT defaulted for a cluster component."""
    result = dict(os.environ if env is None else env)
    result.setdefault("GOGC", GOGC)
    result.setdefault("GOMEMLIMIT", GOMEMLIMIT)
    return result


class CliFailed(subprocess.CalledProcessError):
    """A failed kubectl or helm call whose message carries what it said: a test failure must show why."""

    def __str__(self) -> str:
        said = (self.stderr or self.stdout or "").strip()[-2000:]
        return f"{super().__str__()}\n{said}" if said else super().__str__()


def run_cli(
    argv: Sequence[str], env: Mapping[str, str], input: str | None = None, check: bool = True, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Runs kubectl or helm and captures its output; a failure raises with that output attached."""
    result = subprocess.run(list(argv), input=input, text=True, capture_output=True, env=dict(env), timeout=timeout)
    if check and result.returncode != 0:
        raise CliFailed(result.returncode, result.args, result.stdout, result.stderr)
    return result


def die_with_parent() -> None:
    """preexec_fn: SIGKILL this child when the thread that forked it exits."""
    _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


_spawn_queue: SimpleQueue[tuple[Callable[[], subprocess.Popen[bytes]], Future[subprocess.Popen[bytes]]]] = SimpleQueue()
_spawner_lock = threading.Lock()
_spawner: threading.Thread | None = None


def _spawn_forever() -> None:
    while True:
        start, result = _spawn_queue.get()
        try:
            result.set_result(start())
        except BaseException as exc:  # handed to the caller's thread
            result.set_exception(exc)


def spawn(start: Callable[[], subprocess.Popen[bytes]]) -> subprocess.Popen[bytes]:
    """Runs `start` (which calls Popen) on the spawner thread and returns its process."""
    global _spawner
    with _spawner_lock:
        if _spawner is None or not _spawner.is_alive():
            _spawner = threading.Thread(target=_spawn_forever, name="localcluster spawner", daemon=True)
            _spawner.start()
    result: Future[subprocess.Popen[bytes]] = Future()
    _spawn_queue.put((start, result))
    return result.result()


class ManagedProcess:
    """A named child process whose output goes to a log file."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        log_path: Path,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.log_path = log_path
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(log_path, "ab")  # noqa: SIM115 - open for the process lifetime, closed in stop()
        self.popen = spawn(
            lambda: subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=self._log,
                stderr=subprocess.STDOUT,
                env=child_env(env),
                cwd=cwd,
                start_new_session=True,
                preexec_fn=die_with_parent,
            )
        )

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def tail(self, lines: int = 30) -> str:
        """The end of the log, for error messages that say why a start failed."""
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def kill(self) -> None:
        """SIGKILL the group at once and reap: a crash, not a shutdown (stop() may still be called after)."""
        _signal_group(self.popen.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(5)
        self._log.close()

    def stop(self, grace: float = 10.0) -> None:
        """SIGTERM to the group, SIGKILL after `grace` seconds, then reap."""
        if self.popen.poll() is None:
            _signal_group(self.popen.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.popen.wait(grace)
        # The group may hold children even after the leader exited.
        _signal_group(self.popen.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(5)
        self._log.close()


def _signal_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def wait_until(predicate, timeout: float, interval: float = 0.2, what: str = "condition"):  # type: ignore[no-untyped-def]
    """Polls predicate() until it returns a truthy value; raises TimeoutError otherwise."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while True:
        try:
            value = predicate()
            if value:
                return value
        except Exception as exc:
            last_error = exc
        if time.monotonic() > deadline:
            detail = f" (last error: {last_error})" if last_error else ""
            raise TimeoutError(f"timed out after {timeout}s waiting for {what}{detail}")
        time.sleep(interval)
