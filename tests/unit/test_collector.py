"""The metrics collector shared by kubetune run and the sidecar."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kubetune.api.spec import MetricDefinition
from kubetune.collector.collector import SUMMARY_LIMIT_BYTES, MetricCollector, MetricsFileTail
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
