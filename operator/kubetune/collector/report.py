"""`kubetune.report()`: how training code hands metrics to kubetune without printing them.

It appends one JSON line to the file named by $KUBETUNE_METRICS_FILE, which the
local runner and the pod's sidecar both read. The format is public, so code in
any language can write it:

    {"step": 3, "metrics": {"accuracy": 0.91, "loss": 0.27}, "time": 1764230400.0}
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from collections.abc import Mapping

METRICS_FILE_ENV = "KUBETUNE_METRICS_FILE"

_warned = False


def report(metrics: Mapping[str, float] | None = None, /, *, step: float | None = None, **named: float) -> None:
    """Report metric values, e.g. `kubetune.report(accuracy=0.91, step=epoch)`.

    Outside a kubetune trial (no $KUBETUNE_METRICS_FILE) the values are printed
    to stderr once-warned, so a training script runs unchanged on its own.
    """
    values = {**(metrics or {}), **named}
    for name, value in values.items():
        if not isinstance(value, int | float) or isinstance(value, bool):
            raise TypeError(f"metric {name!r} must be a number, got {type(value).__name__}")
    record: dict[str, object] = {
        "metrics": {k: (float(v) if math.isfinite(float(v)) else str(float(v))) for k, v in values.items()},
        "time": time.time(),
    }
    if step is not None:
        record["step"] = step
    path = os.environ.get(METRICS_FILE_ENV)
    if not path:
        global _warned
        if not _warned:
            print(f"kubetune.report: ${METRICS_FILE_ENV} is not set; printing metrics instead", file=sys.stderr)
            _warned = True
        print(f"kubetune.report: {json.dumps(record)}", file=sys.stderr)
        return
    line = (json.dumps(record, separators=(",", ":")) + "\n").encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)  # one write of one line: readers never see half a record
    finally:
        os.close(fd)
