"""`kubetune trials` on result files: every trial, best first, filters, formats, and 10,000 trials."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from pathlib import Path

from kubetune.results.resultfile import load_result_file

from .results_data import many_trials


def kubetune(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "kubetune.cli", *args], capture_output=True, text=True, timeout=120)


def test_table_lists_every_trial_best_first(hyperband_result: Path) -> None:
    document = json.loads(hyperband_result.read_text())
    done = kubetune("trials", str(hyperband_result))
    assert done.returncode == 0, done.stderr
    header, *lines = done.stdout.splitlines()
    assert header.split() == ["TRIAL", "STATUS", "SCORE", "STEPS", "DURATION", "HYPERPARAMETERS", "REASON"]
    assert len(lines) == len(document["trials"])
    numbers = [int(line.split()[0]) for line in lines]
    scored = [t for t in document["trials"] if t["objective"] is not None]
    best = max(scored, key=lambda t: t["objective"])
    assert numbers[0] == int(best["id"])
    shown = [float(line.split()[2]) for line in lines if line.split()[2] != "-"]
    assert shown == sorted(shown, reverse=True) and len(shown) == len(scored)
    assert all(line.split()[2] == "-" for line in lines[len(shown) :])  # no objective: last
    stopped = [line for line in lines if line.split()[1] == "Stopped"]
    assert stopped and all("Hyperband rung" in line for line in stopped)


def test_json_carries_steps_duration_and_whole_reason(hyperband_result: Path) -> None:
    done = kubetune("trials", str(hyperband_result), "-o", "json", "--sort-by", "number")
    rows = json.loads(done.stdout)
    assert [r["number"] for r in rows] == list(range(1, len(rows) + 1))
    for row in rows:
        assert set(row["hyperparameters"]) == {"lr", "width", "act"}  # tuned only, not the static epochs
        assert row["durationSeconds"] > 0 and row["startTime"].endswith("Z")
        if row["status"] == "Completed":
            assert row["steps"] == 9 and row["lastStep"] == 9
        if row["status"] == "Stopped":
            assert (
                row["steps"] < 9 and row["reason"].startswith("Hyperband rung") and row["reason"].endswith("continue")
            )
        if row["status"] == "Failed":
            assert row["score"] is None and "exit code 3" in row["reason"]


def test_status_filter_and_sort_by_hyperparameter(hyperband_result: Path) -> None:
    done = kubetune("trials", str(hyperband_result), "-o", "json", "--status", "stopped,completed", "--sort-by", "lr")
    rows = json.loads(done.stdout)
    assert rows and {r["status"] for r in rows} <= {"Stopped", "Completed"}
    rates = [r["hyperparameters"]["lr"] for r in rows]
    assert rates == sorted(rates)
    wide = kubetune("trials", str(hyperband_result), "-o", "wide", "--status", "Stopped").stdout.splitlines()
    assert wide[0].split()[:7] == ["TRIAL", "NAME", "STATUS", "SCORE", "WIDTH", "LR", "ACT"]
    assert len(wide) - 1 == sum(1 for r in rows if r["status"] == "Stopped")


def test_bad_input_says_what_and_where(hyperband_result: Path, tmp_path: Path) -> None:
    bad = kubetune("trials", str(hyperband_result), "--status", "Done")
    assert bad.returncode == 2 and "--status 'Done': not a trial status; one of: Running, Completed" in bad.stderr
    bad = kubetune("trials", str(hyperband_result), "--sort-by", "depth")
    assert bad.returncode == 2 and "--sort-by 'depth': not a column of hb; one of:" in bad.stderr and "lr" in bad.stderr
    other = tmp_path / "other.json"
    other.write_text('{"hello": 1}')
    bad = kubetune("trials", str(other))
    assert bad.returncode == 2 and f"{other}: not a kubetune result" in bad.stderr
    bad = kubetune("trials", str(tmp_path / "missing.json"))
    assert bad.returncode == 2 and "missing.json: No such file" in bad.stderr
    bad = kubetune("trials", "some-job", "--kubeconfig", str(tmp_path / "nokubeconfig"))
    assert bad.returncode == 2 and "kubeconfig" in bad.stderr and "nokubeconfig" in bad.stderr


def test_ten_thousand_trials(tmp_path: Path) -> None:
    path = many_trials(10_000, tmp_path / "many.json")
    done = kubetune("trials", str(path), "-o", "csv")  # within kubetune()'s timeout: no hang, no quadratic blow-up
    assert done.returncode == 0, done.stderr
    rows = list(csv.DictReader(io.StringIO(done.stdout)))
    assert len(rows) == 10_000 and len({r["number"] for r in rows}) == 10_000
    assert {r["status"] for r in rows} == {"Completed", "Stopped", "Failed"}
    results = load_result_file(path)
    assert results.best is not None and rows[0]["number"] == str(results.best.number)
    assert "Auto early stopping" in next(r["reason"] for r in rows if r["status"] == "Stopped")
    table = kubetune("trials", str(path), "--status", "Failed").stdout.splitlines()
    assert len(table) - 1 == sum(1 for r in rows if r["status"] == "Failed")
