"""The machine and package lines that every RESULTS.md of the Bayesian benchmarks opens with.

One place, so the plain and the batch benchmarks describe their machine the same way.
"""

from __future__ import annotations

import datetime
import os
import platform
from collections.abc import Iterable
from importlib import metadata
from pathlib import Path


def machine_lines(packages: Iterable[str]) -> list[str]:
    """CPU, cores, OS, Python and the versions of `packages`, as Markdown list items."""
    cpu = platform.processor() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions = []
    for name in packages:
        try:
            versions.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            versions.append(f"{name} (not installed)")
    return [
        f"- machine: {cpu}, {os.cpu_count()} cores, {platform.system()} {platform.release()}",
        f"- python {platform.python_version()}; {', '.join(versions)}",
        f"- tables rebuilt: {datetime.date.today().isoformat()}",
    ]
