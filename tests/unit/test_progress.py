"""`kubetune run`'s live table: drawn from a real local run, bounded, and only on a terminal."""

from __future__ import annotations

import asyncio
import fcntl
import io
import json
import os
import re
import select
import shutil
import signal
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path
from typing import Any

import yaml
from rich.console import Console

from kubetune.api.spec import parse_spec
from kubetune.engine import TrialStatus
from kubetune.runners.local import LocalRunner, LocalRunSettings, ProgressSnapshot, RunningTrial
from kubetune.runners.progress import LiveProgress, render

from .test_local_run import EXAMPLES, kubetune, small_spec, write_job

LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (info|warning) [a-z]+\.[a-z]+( [a-z_]+=\S.*)?$")


def text_of(snapshot: ProgressSnapshot, width: int = 160) -> str:
    console = Console(file=io.StringIO(), force_terminal=True, width=width, color_system=None)
    console.print(render(snapshot))
    output = console.file.getvalue()  # type: ignore[attr-defined]
    assert isinstance(output, str)
    return output


# Each trial reports score = x + step/100 for steps 1..3, then waits for its release file;
# trial 4 fails once released.
HOLDING_SCRIPT = """
    import os, pathlib, sys, time
    x = int(os.environ["HP_X"])
    number = os.environ["KUBETUNE_TRIAL_NUMBER"]
    for step in (1, 2, 3):
        print(f"score={x + step / 100:.2f}", flush=True)
    deadline = time.monotonic() + 60
    while not pathlib.Path(f"release-{number}").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    sys.exit(1 if number == "4" else 0)
"""


def test_the_table_of_a_real_run_shows_running_trials_counts_best_and_budget(tmp_path: Path) -> None:
    spec_dict = small_spec(
        resourceLimits={"maxNumberOfTrainingJobs": 4, "maxParallelTrainingJobs": 2, "maxRuntimeInSeconds": 600}
    )
    write_job(tmp_path, spec_dict, HOLDING_SCRIPT)
    spec = parse_spec(spec_dict)
    seen: dict[str, tuple[ProgressSnapshot, str]] = {}

    def release(number: int) -> None:
        (tmp_path / f"release-{number}").touch()

    def hook(runner: LocalRunner, final: bool) -> None:
        snapshot = runner.snapshot()
        steps = {t.number: t.step for t in snapshot.running}
        if final:
            seen["final"] = (snapshot, text_of(snapshot))
        elif "two running" not in seen and steps == {1: 3, 2: 3}:
            seen["two running"] = (snapshot, text_of(snapshot))
            release(1)
        elif "one done" not in seen and steps == {2: 3, 3: 3}:
            seen["one done"] = (snapshot, text_of(snapshot))
            for number in (2, 3, 4):
                release(number)

    runner = LocalRunner(spec, LocalRunSettings("job", tmp_path, tmp_path / "trials"), progress=hook)
    asyncio.run(asyncio.wait_for(runner.run(), 60))
    assert set(seen) == {"two running", "one done", "final"}, list(seen)

    snapshot, text = seen["two running"]
    x = {t.number: t.hyperparameters["x"] for t in snapshot.running}
    assert isinstance(x[1], int) and isinstance(x[2], int)
    for number in (1, 2):
        row = next(line for line in text.splitlines() if f"job-000{number}" in line)
        assert re.search(rf"job-000{number}\s.*\b3\b.*\b{x[number] + 0.03:.4g}\b.*\bx={x[number]}$", row.rstrip()), row
    assert "trials: 2 running, 0 completed, 0 stopped, 0 failed" in text
    assert "best: none yet" in text
    assert "2 of 4 trials left" in text
    assert re.search(r"elapsed 0:00:\d\d", text) and re.search(r"0:(09|10):\d\d of maxRuntimeInSeconds left", text)
    assert "Random, maximize score" in text

    snapshot, text = seen["one done"]
    assert [t.name for t in snapshot.running] == ["job-0002", "job-0003"]
    assert "job-0001" not in text.split("best:")[0]  # no longer among the running rows
    assert "trials: 2 running, 1 completed, 0 stopped, 0 failed" in text
    assert f"best: job-0001  score={x[1] + 0.03:.6g}  (x={x[1]})" in text
    assert "1 of 4 trials left" in text

    snapshot, text = seen["final"]
    assert snapshot.counts[TrialStatus.COMPLETED] == 3 and snapshot.counts[TrialStatus.FAILED] == 1
    assert "trials: 0 running, 3 completed, 0 stopped, 1 failed" in text
    assert "no trial running" in text and "0 of 4 trials left" in text
    assert "ending: MaxNumberOfTrainingJobsReached" in text
    best = runner.tuner.best
    assert best is not None and f"score={best.value:.6g}" in text


def running(count: int) -> list[RunningTrial]:
    return [
        RunningTrial(f"job-{n:04d}", n, {"lr": 0.000123456, "units": 64, "act": "relu", "bn": True}, 0.5, 7, 65.0)
        for n in range(1, count + 1)
    ]


def snapshot_with(trials: list[RunningTrial], **changes: Any) -> ProgressSnapshot:
    fields: dict[str, Any] = {
        "job": "job",
        "strategy": "Bayesian",
        "metric": "loss",
        "objective_type": "Minimize",
        "elapsed_seconds": 3725.0,
        "running": trials,
        "counts": {TrialStatus.RUNNING: len(trials)},
        "started": len(trials),
        "budget": None,
        "max_runtime_seconds": None,
    }
    fields.update(changes)
    return ProgressSnapshot(**fields)


def test_the_table_is_bounded_and_compact() -> None:
    text = text_of(snapshot_with(running(25)))
    rows = [line for line in text.splitlines() if line.startswith("job-")]
    assert [row.split()[0] for row in rows] == [f"job-{n:04d}" for n in range(1, 21)]
    assert "+5 more" in text
    assert "lr=0.0001235 units=64 act=relu bn=true" in rows[0] and "0:01:05" in rows[0]
    assert "elapsed 1:02:05" in text and "25 trials started, no trial budget" in text
    assert "maxRuntimeInSeconds" not in text  # not set: nothing to count down


def test_a_narrow_terminal_cuts_the_hyperparameters_not_the_names() -> None:
    text = text_of(snapshot_with(running(2), budget=10), width=60)
    rows = [line for line in text.splitlines() if line.startswith("job-")]
    assert len(rows) == 2 and all(len(row.rstrip()) <= 60 and "…" in row for row in rows)
    assert all(re.match(r"job-000\d\s.*\b7\b.*\b0\.5\b.*0:01:05", row) for row in rows)


def test_redraws_are_throttled_but_the_last_state_is_always_drawn(tmp_path: Path) -> None:
    spec_dict = small_spec(resourceLimits={"maxNumberOfTrainingJobs": 2, "maxParallelTrainingJobs": 2})
    write_job(tmp_path, spec_dict, "print('score=1')")
    runner = LocalRunner(parse_spec(spec_dict), LocalRunSettings("job", tmp_path, tmp_path / "trials"))
    out = io.StringIO()
    with LiveProgress(out, force_terminal=True, width=100, refresh_per_second=2) as live:
        for _ in range(10):
            live(runner, False)  # ten calls in a burst: one redraw
        assert live.redraws == 1
        live(runner, True)
        assert live.redraws == 2
    assert "Random, maximize score" in out.getvalue() and "2 of 2 trials left" in out.getvalue()


def test_with_stdout_not_a_terminal_the_output_is_the_log_lines_as_before(tmp_path: Path) -> None:
    path = write_job(tmp_path, small_spec(), "import os\nprint(f\"score={os.environ['HP_X']}\")\n")
    results = {
        mode: kubetune(
            "run", str(path), "-o", f"{mode}.json", *(["--progress", mode] if mode != "auto" else []), cwd=tmp_path
        )
        for mode in ("auto", "lines")
    }
    shapes = {}
    for mode, result in results.items():
        assert result.returncode == 0, result.stderr
        assert "\x1b" not in result.stdout + result.stderr
        lines = result.stderr.splitlines()
        assert lines and all(LOG_LINE.match(line) for line in lines), lines
        shapes[mode] = [re.sub(r"^\S+ ", "", line) for line in lines if "pid=" not in line]
        summary = result.stdout.splitlines()
        assert summary[0] == "tuning job job: Completed (MaxNumberOfTrainingJobsReached)"
        assert len(summary) == 5 and summary[4] == f"  result: {mode}.json"
        assert summary[2] == "  trials: 6 completed" and summary[3].startswith("  best: job-")
    events = [[line.split()[1] for line in shape] for shape in shapes.values()]
    assert events[0] == events[1] and events[0][-1] == "job.ended"


# -- on a real terminal: a pseudo-terminal --------------------------------------------------


def run_on_a_terminal(argv: list[str], cwd: Path, interrupt_when: str | None = None) -> tuple[int, str]:
    """Run `kubetune` with stdin, stdout and stderr on a 120-column pseudo-terminal; its exit code and output."""
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    env = {**os.environ, "TERM": "xterm-256color", "COLUMNS": "120", "LINES": "40"}
    process = subprocess.Popen(
        [sys.executable, "-m", "kubetune.cli", *argv], cwd=cwd, stdin=slave, stdout=slave, stderr=slave, env=env
    )
    os.close(slave)
    chunks: list[bytes] = []
    deadline = time.monotonic() + 120
    interrupted = False
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.1)
            if ready:
                try:
                    data = os.read(master, 65536)
                except OSError:  # EIO: every writer closed the terminal
                    break
                if not data:
                    break
                chunks.append(data)
            if interrupt_when and not interrupted and interrupt_when in b"".join(chunks).decode(errors="replace"):
                process.send_signal(signal.SIGINT)
                interrupted = True
        code = process.wait(timeout=30)
    finally:
        os.close(master)
        if process.poll() is None:
            process.kill()
    return code, b"".join(chunks).decode("utf-8", errors="replace")


def test_kubetune_run_on_a_terminal_draws_the_table_in_place(tmp_path: Path) -> None:
    for name in ("train_digits.py", "digits.npz"):
        shutil.copy(EXAMPLES / name, tmp_path / name)
    resource = yaml.safe_load((EXAMPLES / "random.yaml").read_text())
    resource["spec"]["resourceLimits"].update(
        maxNumberOfTrainingJobs=3, maxParallelTrainingJobs=2, maxRuntimeInSeconds=900
    )
    # Paced epochs: on an idle machine a trial otherwise ends before any redraw shows it running.
    resource["spec"]["staticHyperParameters"]["epoch_seconds"] = 0.3
    (tmp_path / "random.yaml").write_text(yaml.safe_dump(resource))
    code, output = run_on_a_terminal(["run", "random.yaml", "-o", "out.json", "--trial-dir", "trials"], tmp_path)
    assert code == 0, output
    assert "\x1b[1A" in output and "\x1b[2K" in output  # the cursor goes back up: redrawn in place
    output = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", output)  # styles and cursor moves off, for the text
    assert "digits-random" in output and "val_accuracy" in output and "hyperparameters" in output
    assert re.search(r"digits-random-000[12] +│ +\d+ │ +0\.\d+ │", output)  # a running row with step and value
    assert re.search(r"elapsed 0:00:\d\d  [0-2] of 3 trials left  0:1[45]:\d\d of maxRuntimeInSeconds left", output)
    assert "trials: 0 running, 3 completed, 0 stopped, 0 failed" in output
    assert "best: digits-random-000" in output
    # The log lines are printed above the table, whole, and the summary follows it.
    assert re.search(r"Z info trial\.started trial=digits-random-0001 pid=\d+", output)
    assert "tuning job digits-random: Completed (MaxNumberOfTrainingJobsReached)" in output
    assert json.loads((tmp_path / "out.json").read_text())["status"] == "Completed"


def test_ctrl_c_on_a_terminal_stops_cleanly_and_writes_the_result(tmp_path: Path) -> None:
    script = """
        print("score=0.25", flush=True)
        import time
        time.sleep(600)
    """
    spec = small_spec(resourceLimits={"maxNumberOfTrainingJobs": 6, "maxParallelTrainingJobs": 2})
    path = write_job(tmp_path, spec, script)
    code, output = run_on_a_terminal(["run", str(path), "-o", "out.json"], tmp_path, interrupt_when="trials: 2 running")
    assert code == 130, output
    assert "job.interrupted" in output and "Traceback" not in output
    document = json.loads((tmp_path / "out.json").read_text())
    assert document["status"] == "Stopped" and [t["status"] for t in document["trials"]] == ["Stopped", "Stopped"]
