"""The sidecar, as a real process: it reads the shared volume, serves the series, writes its last word."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from kubetune.api.spec import MetricDefinition
from kubetune.collector.collector import explain_missing_objective
from kubetune.collector.sidecar import SidecarSettings, TrialWatcher
from kubetune.operator.trialjob import OUTPUT_WRAPPER


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def get(port: int, path: str) -> dict[str, Any]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
        return dict(json.loads(response.read()))


def wait_for(predicate: Any, timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = predicate()
            if value:
                return value
        except OSError:
            pass
        time.sleep(0.1)
    raise AssertionError("timed out")


def test_sidecar_collects_wrapped_output_and_reports(tmp_path: Path) -> None:
    port = free_port()
    termination = tmp_path / "termination-log"
    env = {
        **os.environ,
        "KUBETUNE_DIR": str(tmp_path),
        "KUBETUNE_OBJECTIVE": "acc",
        "KUBETUNE_METRIC_DEFINITIONS": json.dumps([{"name": "acc", "regex": "acc=([0-9.]+)"}]),
        "KUBETUNE_SIDECAR_PORT": str(port),
        "KUBETUNE_TERMINATION_LOG": str(termination),
    }
    sidecar = subprocess.Popen(
        [sys.executable, "-m", "kubetune.cli", "sidecar"], env=env, stderr=subprocess.PIPE, text=True
    )
    try:
        wait_for(lambda: get(port, "/healthz")["ok"])
        script = (
            "import time\n"
            "from kubetune import report\n"
            "for i in range(1, 4):\n"
            "    print(f'epoch {i} acc=0.{i}', flush=True)\n"
            "    time.sleep(0.2)\n"
            "report(loss=0.5, step=3)\n"
            "print('acc=0.9', end='')\n"  # a last line without newline still counts
        )
        trial_env = {**env, "KUBETUNE_METRICS_FILE": str(tmp_path / "metrics.jsonl")}
        result = subprocess.run(
            ["/bin/sh", "-c", OUTPUT_WRAPPER, "w", sys.executable, "-c", script],
            env=trial_env,
            capture_output=True,
            text=True,
        )
        assert result.returncode == 0 and "epoch 3 acc=0.3" in result.stdout  # output still reaches the container log
        series = wait_for(lambda: (s := get(port, "/series?since=1"))["ended"] and s)
        assert series["count"] == 4 and [p[1] for p in series["points"]] == [0.2, 0.3, 0.9]
        assert series["exitCode"] == 0
        summary = wait_for(lambda: termination.exists() and json.loads(termination.read_text()))
        assert summary["final"] == 0.9 and summary["metrics"]["loss"]["last"] == 0.5
    finally:
        sidecar.send_signal(signal.SIGTERM)
        sidecar.wait(timeout=10)
    assert sidecar.returncode == 0
    assert json.loads(termination.read_text())["final"] == 0.9


def test_the_termination_message_carries_what_a_trial_without_objective_emitted(tmp_path: Path) -> None:
    (tmp_path / "stdout.log").write_text("loss=0.5\nloss=0.4\n")
    (tmp_path / "metrics.jsonl").write_text('{"step": "x", "metrics": {"val_accuracy": 0.9}}\n')
    (tmp_path / "exit-code").write_text("0\n")
    settings = SidecarSettings(
        shared_dir=tmp_path,
        objective="val_accuracy",
        definitions=(
            MetricDefinition(name="loss", regex="loss=([0-9.]+)"),
            MetricDefinition(name="val_accuracy", regex="val_acc=([0-9.]+)"),
        ),
        port=0,
        termination_log=tmp_path / "termination-log",
    )
    watcher = TrialWatcher(settings)
    watcher.poll(final=True)
    watcher.write_termination_message()
    summary = json.loads((tmp_path / "termination-log").read_text())
    assert summary["final"] is None and summary["exitCode"] == 0
    assert explain_missing_objective(summary) == (
        "no objective: val_accuracy was never reported; reported: loss (2);"
        ' metricDefinitions that never matched: val_accuracy ("val_acc=([0-9.]+)");'
        " 1 metrics-file record(s) rejected: step 'x' is not a number"
    )


def test_the_sidecar_starts_without_pydantic_or_numpy() -> None:
    # One start per trial pod: importing the spec's models cost a third of a second of CPU each.
    code = "import sys, kubetune.cli, kubetune.collector.sidecar; print(sorted({'pydantic', 'numpy'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_bad_metric_definitions_in_the_environment_say_which_and_why() -> None:
    base = {"KUBETUNE_OBJECTIVE": "acc"}
    settings = SidecarSettings.from_env({**base, "KUBETUNE_METRIC_DEFINITIONS": '[{"name": "acc", "regex": "acc=(\\\\S+)"}]'})
    assert [(d.name, d.regex) for d in settings.definitions] == [("acc", "acc=(\\S+)")]
    for raw, message in [
        ('[{"name": "acc", "regex": "acc=("}]', "metric 'acc': regex does not compile"),
        ('[{"name": "acc", "regex": "acc=\\\\S+"}]', "metric 'acc': regex has no capture group"),
        ('[{"name": 3, "regex": "x(1)"}]', "must have a string name and regex"),
        ('["acc"]', "must have a string name and regex"),
    ]:
        with pytest.raises(ValueError, match=message):
            SidecarSettings.from_env({**base, "KUBETUNE_METRIC_DEFINITIONS": raw})
