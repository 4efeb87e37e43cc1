"""One run of one container: the shim process and the files around it."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .procs import die_with_parent

PACKAGE_PARENT = str(Path(__file__).resolve().parent.parent)
TERMINATION_MESSAGE_LIMIT = 4096
FALLBACK_LOG_LIMIT = 2048
FALLBACK_LOG_LINES = 80


@dataclass
class ContainerProcess:
    """A running (or finished) shim; its pid is the container's handle."""

    popen: subprocess.Popen[bytes]
    start_error_file: Path
    log_path: Path

    @classmethod
    def start(cls, directory: Path, attempt: int, spec: dict[str, Any]) -> ContainerProcess:
        """Writes the shim's spec and starts it; output goes to the attempt's log."""
        directory.mkdir(parents=True, exist_ok=True)
        start_error = directory / f"start-error-{attempt}"
        start_error.unlink(missing_ok=True)
        spec = {**spec, "start_error_file": str(start_error)}
        spec_path = directory / f"spec-{attempt}.json"
        spec_path.write_text(json.dumps(spec))
        log_path = directory / f"{attempt}.log"
        with open(log_path, "ab") as log:
            popen = subprocess.Popen(
                [sys.executable, "-m", "localcluster.shim", str(spec_path)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env={"PYTHONPATH": PACKAGE_PARENT, "PATH": os.environ.get("PATH", "")},
                start_new_session=True,
                preexec_fn=die_with_parent,
            )
        return cls(popen, start_error, log_path)

    def poll(self) -> int | None:
        return self.popen.poll()

    def signal(self, sig: int) -> None:
        """Sends sig to the shim, which hands it on to the command."""
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.popen.pid, sig)

    def kill(self) -> None:
        """SIGKILL to the shim's group: PID 1 dies, and the kernel ends the rest."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(5)

    def start_error(self) -> str | None:
        try:
            return self.start_error_file.read_text()
        except OSError:
            return None


def read_termination_message(path: Path) -> str:
    """The container's termination message, capped as the kubelet caps it."""
    try:
        with open(path, "rb") as f:
            return f.read(TERMINATION_MESSAGE_LIMIT).decode(errors="replace")
    except OSError:
        return ""


def log_tail(path: Path) -> str:
    """FallbackToLogsOnError: the last 80 lines or 2 KiB of the log, whichever is less."""
    try:
        data = path.read_bytes()
    except OSError:
        return ""
    lines = data.splitlines(keepends=True)[-FALLBACK_LOG_LINES:]
    return b"".join(lines)[-FALLBACK_LOG_LIMIT:].decode(errors="replace")
