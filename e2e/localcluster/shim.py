"""The per-container shim: what a container runtime does, for a local process.

Run as `python -m localcluster.shim SPEC.json` by the node agent. It joins the
pod's network namespace, enters new mount, PID and UTS namespaces, bind-mounts
the pod's volumes at their mount paths, and runs the container's command as
PID 2 under a tiny init (PID 1) that forwards signals and reaps orphans. When
the command exits, PID 1 exits and the kernel kills whatever the command left
behind, so a container can never leak a process; its mounts vanish with its
mount namespace, so it can never leak a mount either.

Exit status: the command's exit code, 128+N if a signal N killed it, and
EXEC_FAILED (with the reason in SPEC's start_error_file) if it could not start.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import signal
import sys
from typing import Any

CLONE_NEWNS = 0x00020000
CLONE_NEWUTS = 0x04000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_REMOUNT = 32
MS_BIND = 4096
MS_REC = 16384
MS_PRIVATE = 1 << 18
PR_SET_PDEATHSIG = 1
EXEC_FAILED = 128
FORWARDED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2)

_libc = ctypes.CDLL(None, use_errno=True)


def _check(result: int, what: str) -> None:
    if result != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def _mount(source: str | None, target: str, fstype: str | None, flags: int) -> None:
    _check(
        _libc.mount(
            source.encode() if source else None, target.encode(), fstype.encode() if fstype else None, flags, None
        ),
        f"mount {target}",
    )


def _enter_namespaces(spec: dict[str, Any]) -> None:
    if spec.get("netns"):
        fd = os.open(spec["netns"], os.O_RDONLY)
        _check(_libc.setns(fd, CLONE_NEWNET), "setns net")
        os.close(fd)
    _check(_libc.unshare(CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWUTS), "unshare")
    # Private, so that nothing mounted here propagates back to the host.
    _mount(None, "/", None, MS_REC | MS_PRIVATE)
    for m in spec["mounts"]:
        _mount(m["source"], m["target"], None, MS_BIND | MS_REC)
        if m.get("readOnly"):
            _mount(None, m["target"], None, MS_BIND | MS_REMOUNT | MS_RDONLY)
    hostname = spec.get("hostname", "")[:63].encode()
    if hostname:
        _check(_libc.sethostname(hostname, len(hostname)), "sethostname")


def _status_code(status: int) -> int:
    if os.WIFSIGNALED(status):
        return 128 + os.WTERMSIG(status)
    return os.WEXITSTATUS(status)


def _forward_to(pid_box: list[int]) -> None:
    def forward(signum: int, _frame: object) -> None:
        if pid_box[0] > 0:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid_box[0], signum)

    for sig in FORWARDED:
        signal.signal(sig, forward)


def _exec_command(spec: dict[str, Any]) -> None:
    """In PID 2: become the container's command (never returns)."""
    for sig in FORWARDED:
        signal.signal(sig, signal.SIG_DFL)
    try:
        os.chdir(spec["cwd"])
        os.execvpe(spec["argv"][0], spec["argv"], spec["env"])
    except OSError as exc:
        with open(spec["start_error_file"], "w") as f:
            f.write(f"failed to start {spec['argv'][0]!r}: {exc.strerror}")
    os._exit(EXEC_FAILED)


def _init(spec: dict[str, Any]) -> None:
    """PID 1 of the container: start the command, forward signals, reap, exit with it."""
    _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    _mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    child = [0]
    _forward_to(child)
    pid = os.fork()
    if pid == 0:
        _exec_command(spec)
    child[0] = pid
    while True:
        try:
            reaped, status = os.waitpid(-1, 0)
        except InterruptedError:
            continue
        except ChildProcessError:
            os._exit(EXEC_FAILED)
        if reaped == pid:
            os._exit(_status_code(status))


def main() -> None:
    with open(sys.argv[1]) as f:
        spec = json.load(f)
    try:
        _enter_namespaces(spec)
    except OSError as exc:
        with open(spec["start_error_file"], "w") as f:
            f.write(f"container setup failed: {exc}")
        sys.exit(EXEC_FAILED)
    init = [0]
    _forward_to(init)
    pid = os.fork()
    if pid == 0:
        try:
            _init(spec)
        finally:
            os._exit(EXEC_FAILED)
    init[0] = pid
    while True:
        try:
            _, status = os.waitpid(pid, 0)
            break
        except InterruptedError:
            continue
    sys.exit(_status_code(status))


if __name__ == "__main__":
    main()
