"""`kubetune run` end to end: real subprocesses, real training script, the result file."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "manifests" / "examples"


def kubetune(*args: str, cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kubetune.cli", *args], cwd=cwd, capture_output=True, text=True, timeout=timeout
    )


def write_job(tmp_path: Path, spec: dict[str, Any], script: str, name: str = "job") -> Path:
    (tmp_path / "train.py").write_text(textwrap.dedent(script))
    resource = {
        "apiVersion": "kubetune.io/v1alpha1",
        "kind": "HyperParameterTuningJob",
        "metadata": {"name": name},
        "spec": spec,
    }
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(resource))
    return path


def small_spec(**changes: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "strategy": "Random",
        "randomSeed": 3,
        "objective": {"metricName": "score", "type": "Maximize"},
        "resourceLimits": {"maxNumberOfTrainingJobs": 6, "maxParallelTrainingJobs": 3},
        "parameterRanges": {"integerParameterRanges": [{"name": "x", "minValue": 0, "maxValue": 9}]},
        "metricDefinitions": [{"name": "score", "regex": "score=([0-9.]+)"}],
        "trialTemplate": {
            "spec": {"template": {"spec": {"containers": [{"name": "main", "command": ["python", "train.py"]}]}}}
        },
    }
    spec.update(changes)
    return spec


@pytest.mark.slow
def test_grid_example_runs_to_completion(tmp_path: Path) -> None:
    result = kubetune("run", str(EXAMPLES / "grid.yaml"), "-o", "out.json", "--trial-dir", "trials", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    document = json.loads((tmp_path / "out.json").read_text())
    assert document["status"] == "Completed"
    assert len(document["trials"]) == 12 and all(t["status"] == "Completed" for t in document["trials"])
    best = max(document["trials"], key=lambda t: t["objective"])
    assert document["best"]["objective"] == best["objective"] > 0.9  # it really learns
    assert len(best["series"]) == 8  # one point per epoch, read with the regex
    assert "best: digits-grid-" in result.stdout
    assert "trial.started" in result.stderr and "job.ended" in result.stderr


@pytest.mark.slow
def test_random_example_reports_through_kubetune_report(tmp_path: Path) -> None:
    result = kubetune("run", str(EXAMPLES / "random.yaml"), "-o", "out.json", "--trial-dir", "trials", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    document = json.loads((tmp_path / "out.json").read_text())
    assert len(document["trials"]) == 12
    assert document["best"]["objective"] > 0.9
    assert set(document["trials"][0]["metrics"]) == {"val_accuracy", "train_loss"}


def test_hyperparameters_reach_the_script_every_way(tmp_path: Path) -> None:
    script = """
        import json, os, sys
        hp = json.loads(os.environ["KUBETUNE_HYPERPARAMETERS"])
        assert sys.argv[1] == f"--x={hp['x']}", sys.argv
        assert os.environ["HP_X"] == str(hp["x"]) and os.environ["HP_MODE"] == "fast"
        assert os.environ["DERIVED"] == f"x is {hp['x']}"
        print(f"score={hp['x']}")
    """
    container = {
        "name": "main",
        "command": ["python", "train.py"],
        "args": ["--x=$(HP_X)"],
        "env": [{"name": "DERIVED", "value": "x is $(HP_X)"}],
    }
    spec = small_spec(
        staticHyperParameters={"mode": "fast"},
        trialTemplate={"spec": {"template": {"spec": {"containers": [container]}}}},
    )
    result = kubetune("run", str(write_job(tmp_path, spec, script)), "-o", "out.json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    document = json.loads((tmp_path / "out.json").read_text())
    assert all(t["status"] == "Completed" for t in document["trials"])
    assert document["best"]["objective"] == max(t["hyperparameters"]["x"] for t in document["trials"])


def test_failing_and_hanging_trials_are_handled(tmp_path: Path) -> None:
    script = """
        import os, sys, time
        x = int(os.environ["HP_X"])
        print("score=0.5", flush=True)
        if x % 3 == 0:
            print("something broke", file=sys.stderr)
            sys.exit(3)
        if x % 3 == 1:
            time.sleep(600)
        print(f"score={x}")
    """
    spec = small_spec(
        resourceLimits={"maxNumberOfTrainingJobs": 8, "maxParallelTrainingJobs": 4},
        trialTemplate={
            "spec": {
                "activeDeadlineSeconds": 2,
                "template": {
                    "spec": {
                        "terminationGracePeriodSeconds": 1,
                        "containers": [{"name": "main", "command": ["python", "train.py"]}],
                    }
                },
            }
        },
    )
    started = time.monotonic()
    result = kubetune("run", str(write_job(tmp_path, spec, script)), "-o", "out.json", cwd=tmp_path)
    assert time.monotonic() - started < 60
    document = json.loads((tmp_path / "out.json").read_text())
    by_status: dict[str, list[dict[str, Any]]] = {}
    for trial in document["trials"]:
        by_status.setdefault(trial["status"], []).append(trial)
    assert len(document["trials"]) == 8
    for trial in by_status.get("Failed", []):
        x = trial["hyperparameters"]["x"]
        assert (
            ("exit code 3: something broke" in trial["reason"])
            if x % 3 == 0
            else ("DeadlineExceeded" in trial["reason"])
        )
    assert all(t["hyperparameters"]["x"] % 3 == 2 for t in by_status.get("Completed", []))
    assert result.returncode == (0 if "Completed" in by_status else 1)


def test_ctrl_c_stops_trials_and_writes_the_result(tmp_path: Path) -> None:
    script = """
        import os, time
        with open(f"pid-{os.getpid()}", "w"):
            pass
        print("score=0.25", flush=True)
        time.sleep(600)
    """
    spec = small_spec(resourceLimits={"maxNumberOfTrainingJobs": 6, "maxParallelTrainingJobs": 2})
    path = write_job(tmp_path, spec, script)
    process = subprocess.Popen(
        [sys.executable, "-m", "kubetune.cli", "run", str(path), "-o", "out.json"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 30
    while len(list(tmp_path.glob("pid-*"))) < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(0.5)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 130, err
    document = json.loads((tmp_path / "out.json").read_text())
    assert document["status"] == "Stopped" and document["completionReason"] == "StoppedByUser"
    assert document["message"] == "interrupted"
    assert [t["status"] for t in document["trials"]] == ["Stopped", "Stopped"]
    assert all(t["objective"] == 0.25 for t in document["trials"])
    for pid_file in tmp_path.glob("pid-*"):
        pid = int(pid_file.name.removeprefix("pid-"))
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def test_invalid_spec_exits_2_naming_the_field(tmp_path: Path) -> None:
    spec = small_spec(resourceLimits={"maxParallelTrainingJobs": 0})
    result = kubetune("run", str(write_job(tmp_path, spec, "")), cwd=tmp_path)
    assert result.returncode == 2
    assert "spec.resourceLimits.maxParallelTrainingJobs" in result.stderr
    assert not (tmp_path / "kubetune-result-job.json").exists()


def test_container_without_command_is_refused(tmp_path: Path) -> None:
    spec = small_spec(trialTemplate={"spec": {"template": {"spec": {"containers": [{"name": "main", "image": "x"}]}}}})
    result = kubetune("run", str(write_job(tmp_path, spec, "")), cwd=tmp_path)
    assert result.returncode == 2 and "has no command" in result.stderr


def test_validate_command(tmp_path: Path) -> None:
    result = kubetune("validate", str(EXAMPLES / "grid.yaml"), cwd=tmp_path)
    assert result.returncode == 0 and "budget 12 trials" in result.stdout


def test_validate_lists_every_problem_on_its_own_line(tmp_path: Path) -> None:
    text = (EXAMPLES / "random.yaml").read_text()
    assert "trainingJobEarlyStoppingType" not in text
    broken = tmp_path / "broken.yaml"
    # The resource's own spec comes first; a YAML key given twice would keep the last.
    broken.write_text(text.replace("spec:\n", "spec:\n  trainingJobEarlyStoppingType: Off\n  strategi: Grid\n", 1))
    result = kubetune("validate", str(broken), cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert lines[0] == "kubetune: invalid tuning job, 2 problems:"
    assert '  spec.trainingJobEarlyStoppingType: write "Off" in quotes: unquoted Off is YAML for false' in lines
    assert "  spec.strategi: unknown field; did you mean strategy?" in lines


# -- a trial without an objective, a command that cannot start ------------------------------


def test_trials_without_the_objective_say_what_they_reported_and_end_the_job_early(tmp_path: Path) -> None:
    script = """
        for epoch in range(1, 4):
            print(f"epoch {epoch} loss={1 / epoch:.3f} val_acc=0.5", flush=True)
    """
    spec = small_spec(
        metricDefinitions=[
            {"name": "score", "regex": "score=([0-9.]+)"},
            {"name": "loss", "regex": "loss=([0-9.]+)"},
        ],
        resourceLimits={"maxNumberOfTrainingJobs": 20, "maxParallelTrainingJobs": 1},
    )
    result = kubetune("run", str(write_job(tmp_path, spec, script)), "-o", "out.json", cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    document = json.loads((tmp_path / "out.json").read_text())
    said = 'no objective: score was never reported; reported: loss (3); metricDefinitions that never matched: score ("score=([0-9.]+)")'
    assert document["completionReason"] == "ObjectiveNotReported"
    assert len(document["trials"]) == 3  # not the budget of 20
    assert document["message"].endswith(said), document["message"]
    for trial in document["trials"]:
        assert trial["status"] == "Completed" and trial["objective"] is None
        assert trial["reason"] == said
        assert trial["diagnostics"]["unmatched"] == [{"name": "score", "regex": "score=([0-9.]+)"}]
    assert said in result.stdout  # the summary printed at the end says it too


def test_a_nan_objective_is_named_as_such(tmp_path: Path) -> None:
    script = """
        import kubetune
        kubetune.report(score=float("nan"), step=3)
    """
    spec = small_spec(metricDefinitions=[])
    result = kubetune("run", str(write_job(tmp_path, spec, script)), "-o", "out.json", cwd=tmp_path)
    document = json.loads((tmp_path / "out.json").read_text())
    # Three NaN trials end the job early (ObjectiveNotReported); trials still starting then are stopped,
    # how many depends on the machine's pace. Every trial that ran to its end is named for its NaN.
    ended = [t for t in document["trials"] if t["status"] == "Completed"]
    assert len(ended) >= 3, result.stderr
    assert {t["reason"] for t in ended} == {"the objective score was NaN at step 3"}, result.stderr
    assert all(t["status"] in ("Completed", "Stopped") for t in document["trials"]), result.stderr


@pytest.mark.parametrize(
    ("command", "says"),
    [
        (["./no-such-program"], "could not start './no-such-program': No such file or directory"),
        (["./not-executable.sh"], "could not start './not-executable.sh': Permission denied"),
    ],
)
def test_a_command_that_cannot_start_is_a_failed_trial_not_a_crash(
    tmp_path: Path, command: list[str], says: str
) -> None:
    (tmp_path / "not-executable.sh").write_text("#!/bin/sh\necho score=1\n")
    spec = small_spec(
        resourceLimits={"maxNumberOfTrainingJobs": 2, "maxParallelTrainingJobs": 1},
        trialTemplate={"spec": {"template": {"spec": {"containers": [{"name": "main", "command": command}]}}}},
    )
    result = kubetune("run", str(write_job(tmp_path, spec, "")), "-o", "out.json", cwd=tmp_path)
    assert "Traceback" not in result.stderr, result.stderr
    assert result.returncode == 1
    document = json.loads((tmp_path / "out.json").read_text())
    assert document["completionReason"] == "AllTrainingJobsFailed"
    assert [(t["status"], t["reason"]) for t in document["trials"]] == [("Failed", says)] * 2
    assert says in result.stderr


def test_a_missing_working_directory_is_named(tmp_path: Path) -> None:
    spec = small_spec(
        resourceLimits={"maxNumberOfTrainingJobs": 1},
        trialTemplate={
            "spec": {
                "template": {
                    "spec": {"containers": [{"name": "main", "command": ["python", "train.py"], "workingDir": "gone"}]}
                }
            }
        },
    )
    result = kubetune("run", str(write_job(tmp_path, spec, "print('score=1')")), "-o", "out.json", cwd=tmp_path)
    document = json.loads((tmp_path / "out.json").read_text())
    assert "Traceback" not in result.stderr
    reason = document["trials"][0]["reason"]
    assert reason.startswith("could not start 'python': No such file or directory") and reason.endswith("/gone")
