"""The metrics collector shared by kubetune run and the sidecar."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kubetune.api.spec import MetricDefinition
from kubetune.collector.collector import (
    SUMMARY_LIMIT_BYTES,
    MetricCollector,
    MetricsFileTail,
    explain_missing_objective,
)
from kubetune.collector.report import METRICS_FILE_ENV, report

DEFS = [
    MetricDefinition(name="acc", regex=r"val_acc=([-+0-9.eE]+)"),
    MetricDefinition(name="loss", regex=r"loss: ([-+0-9.eE]+|nan)"),
]


def test_regex_metrics_are_numbered_by_occurrence() -> None:
    collector = MetricCollector(DEFS, "acc")
    collector.feed_line("epoch 1 loss: 0.9 val_acc=0.5")
    collector.feed_line("noise line")
    collector.feed_line("epoch 2 loss: nan val_acc=6.5e-1")
    assert [(p.step, p.value) for p in collector.series("acc")] == [(1.0, 0.5), (2.0, 0.65)]
    assert [p.value for p in collector.series("loss")] == [0.9]  # nan is not a value
    assert collector.final_objective() == 0.65


def test_report_writes_records_the_collector_reads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "metrics.jsonl"
    monkeypatch.setenv(METRICS_FILE_ENV, str(path))
    report(acc=0.5, step=10)
    report({"acc": 0.75, "loss": 0.2})
    tail = MetricsFileTail(str(path))
    collector = MetricCollector([], "acc")
    for record in tail.read_records():
        collector.feed_record(record)
    assert [(p.step, p.value) for p in collector.series("acc")] == [(10.0, 0.5), (11.0, 0.75)]
    assert tail.read_records() == []


def test_report_rejects_non_numbers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(METRICS_FILE_ENV, str(tmp_path / "m.jsonl"))
    with pytest.raises(TypeError, match="metric 'acc' must be a number"):
        report(acc="high")  # type: ignore[arg-type]


def test_report_without_a_trial_prints(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv(METRICS_FILE_ENV, raising=False)
    report(acc=0.5)
    assert '"acc": 0.5' in capsys.readouterr().err


def test_tail_waits_for_complete_lines(tmp_path: Path) -> None:
    path = tmp_path / "m.jsonl"
    tail = MetricsFileTail(str(path))
    assert tail.read_records() == []
    with path.open("w") as handle:
        handle.write('{"metrics": {"acc": 1}}\n{"metrics": {"ac')
    assert len(tail.read_records()) == 1
    with path.open("a") as handle:
        handle.write('c": 2}}\nnot json\n')
    assert tail.read_records() == [{"metrics": {"acc": 2}}]


def test_summary_fits_a_termination_message() -> None:
    collector = MetricCollector([], "acc")
    for step in range(5000):
        collector.feed_record({"step": step, "metrics": {f"m{i}": step * 0.001 for i in range(20)} | {"acc": step}})
    summary = collector.summary()
    assert len(json.dumps(summary, separators=(",", ":"))) <= SUMMARY_LIMIT_BYTES
    assert summary["final"] == 4999 and summary["series"][-1] == [4999.0, 4999.0]
    assert summary["metrics"]["acc"]["count"] == 5000


# -- what a trial without an objective did emit ------------------------------------------------


def test_a_record_whose_step_is_not_a_number_is_rejected_not_taken_as_the_final_value() -> None:
    collector = MetricCollector([], "acc")
    collector.feed_record({"step": 1, "metrics": {"acc": 0.5}})
    assert collector.feed_record({"step": "x", "metrics": {"acc": 0.99}}) == []
    assert collector.feed_record({"step": True, "metrics": {"acc": 0.98}}) == []
    assert collector.final_objective() == 0.5
    assert collector.diagnostics() == {"badSteps": {"count": 2, "example": "True"}}


def test_never_reported_names_what_was_reported_and_the_definitions_that_never_matched() -> None:
    definitions = [MetricDefinition(name="val_accuracy", regex="val_acc=([0-9.]+)"), *DEFS]
    collector = MetricCollector(definitions, "val_accuracy")
    for epoch in range(12):
        collector.feed_line(f"loss: 0.{epoch} val_acc=")
        collector.feed_record({"metrics": {"accuracy": 0.1 * epoch}})
    summary = json.loads(json.dumps(collector.summary()))  # as it travels
    assert explain_missing_objective(summary) == (
        "no objective: val_accuracy was never reported; reported: loss (12), accuracy (12);"
        ' metricDefinitions that never matched: val_accuracy ("val_acc=([0-9.]+)"), acc ("val_acc=([-+0-9.eE]+)")'
    )


def test_a_regex_that_matches_text_that_is_no_number_says_so() -> None:
    collector = MetricCollector([MetricDefinition(name="acc", regex="acc=(\\S+)")], "acc")
    collector.feed_line("acc=high")
    collector.feed_line("acc=higher")
    assert explain_missing_objective(collector.summary()) == (
        "no objective: acc was reported 2 times, never as a number (last: 'higher'); reported: nothing"
    )


def test_a_nan_or_infinite_objective_is_named_with_its_step() -> None:
    collector = MetricCollector(DEFS, "loss")
    collector.feed_line("loss: nan")
    assert explain_missing_objective(collector.summary()) == "the objective loss was NaN at step 1"
    inf = MetricCollector([], "acc")
    inf.feed_record({"step": 4, "metrics": {"acc": "inf"}})
    inf.feed_record({"step": 5, "metrics": {"acc": "-inf"}})
    assert explain_missing_objective(inf.summary()) == "the objective acc was infinite at step 5 (2 such values)"


def test_a_trial_with_an_objective_needs_no_explanation() -> None:
    collector = MetricCollector(DEFS, "acc")
    collector.feed_line("val_acc=0.5")
    assert explain_missing_objective(collector.summary()) is None


def test_diagnostics_stay_within_the_termination_message() -> None:
    long_regex = "x" * 400 + "=([0-9.]+)"
    definitions = [MetricDefinition(name=f"metric_{i:02d}_" + "n" * 200, regex=long_regex) for i in range(40)]
    collector = MetricCollector(definitions, "acc")
    for i in range(200):
        collector.feed_record({"step": i, "metrics": {f"m{j}_" + "k" * 100: "nan" for j in range(50)} | {"acc": "?"}})
        collector.feed_record({"step": "not a step " * 20, "metrics": {"acc": 1}})
    summary = collector.summary()
    assert len(json.dumps(summary, separators=(",", ":"))) <= SUMMARY_LIMIT_BYTES
    assert summary["diagnostics"]["notANumber"]["acc"]["count"] == 200
    assert summary["diagnostics"]["badSteps"]["count"] == 200
    assert explain_missing_objective(summary), summary
