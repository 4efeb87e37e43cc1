"""What is running on this machine, for tests that check the harness kills processes."""

from __future__ import annotations

import os
import uuid


def token() -> str:
    """A unique word to put on a container's command line and look for later."""
    return f"kt-{uuid.uuid4().hex[:10]}"


def processes_with(word: str) -> list[int]:
    """Pids whose command line contains word (containers run in host-visible PID namespaces)."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if word.encode() in f.read() and int(pid) != os.getpid():
                    found.append(int(pid))
        except OSError:
            continue
    return found
