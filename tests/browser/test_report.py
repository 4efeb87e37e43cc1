"""`kubetune report` in a real browser: headless Chromium renders every chart, logs no error, fetches nothing."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from .chromium import Chromium, Page

pytestmark = pytest.mark.browser

SCREENSHOT_DIR = Path(__file__).resolve().parents[2] / ".kubetune" / "report-screenshots"

PAINTED = """
Array.from(document.querySelectorAll('[data-chart]')).map(function (div) {
  var canvas = div.querySelector('canvas');
  if (!canvas || !canvas.width || !canvas.height) return [div.id, 0];
  var pixels = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data, painted = 0;
  for (var i = 3; i < pixels.length; i += 4) if (pixels[i] > 0) painted++;
  return [div.id, painted];
})
"""
OPTIONS = """
(function (id) {
  var option = echarts.getInstanceByDom(document.getElementById(id)).getOption();
  return {series: option.series.map(function (s) { return [s.type, s.name || '', (s.data || []).length]; }),
          xAxis: (option.xAxis || []).map(function (a) { return a.type; }),
          parallelAxis: (option.parallelAxis || []).map(function (a) { return [a.name, a.type]; })};
})
"""


def write_report(source: Path, output: Path) -> Path:
    done = subprocess.run(
        [sys.executable, "-m", "kubetune.cli", "report", str(source), "-o", str(output)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return output


def load(page_file: Path, profile: Path, screenshot: Path, kept: list[Path]) -> tuple[Page, dict[str, Any]]:
    with Chromium(profile) as browser:
        page = browser.open(page_file.as_uri())
        state = poll_state(page)
        screenshot.parent.mkdir(parents=True, exist_ok=True)
        kept.append(page.screenshot(screenshot))
        painted = dict(page.evaluate(PAINTED))
        options = {div: page.evaluate(f"{OPTIONS}({json.dumps(div)})") for div in state["rendered"] if div != "trials"}
        rows = page.evaluate("document.querySelectorAll('#trials tbody tr').length")
        method = page.evaluate("document.getElementById('importance-method').textContent")
        return page, {"state": state, "painted": painted, "options": options, "rows": rows, "method": method}


def poll_state(page: Page, timeout: float = 300.0) -> dict[str, Any]:
    """The report's state once every chart is drawn. The timeout catches a page that never finishes; how
    fast it draws is no test's business (the suite shares two cores with several clusters)."""
    state = None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = page.evaluate("window.kubetuneReport && JSON.parse(JSON.stringify(window.kubetuneReport))")
        # Every chart drawn (echarts' "finished"), not only set up.
        if state and state["done"] and set(state["finished"]) >= set(state["rendered"]) - {"trials"}:
            return dict(state)
        time.sleep(0.1)
    raise AssertionError(f"the report's charts had not all finished after {timeout:.0f}s: {state}")


def check_page(page: Page, seen: dict[str, Any], parameters: list[str], trials: int) -> None:
    state = seen["state"]
    assert state["errors"] == [], state["errors"]
    assert page.errors() == []
    expected = {"history-number", "history-time", "parallel", "curves", "importance", "trials"}
    expected |= {f"vs-{i}" for i in range(len(parameters))}
    assert set(state["rendered"]) == expected
    assert set(seen["painted"]) == expected - {"trials"}
    blank = [div for div, count in seen["painted"].items() if count < 500]
    assert not blank, f"charts with (almost) nothing drawn: {blank}"
    assert seen["rows"] == trials
    outside = [url for url in page.requests() if not url.startswith(("file:", "data:", "about:"))]
    assert outside == [], f"the page fetched {outside}"
    axes = seen["options"]["parallel"]["parallelAxis"]
    assert [name for name, _ in axes][:-1] == parameters


def test_hyperband_report_renders_every_chart(
    hyperband_result: Path, tmp_path: Path, keep_screenshot: list[Path]
) -> None:
    report = write_report(hyperband_result, tmp_path / "report.html")
    html = report.read_text()
    assert "<script src" not in html and "<link" not in html and "http://" not in html.split("<script>")[0]
    page, seen = load(report, tmp_path / "profile", SCREENSHOT_DIR / "hyperband.png", keep_screenshot)
    document = json.loads(hyperband_result.read_text())
    trials = document["trials"]
    reported = {t["id"] for t in document["history"]["trials"] if t["reports"]}
    check_page(page, seen, ["width", "lr", "act"], len(trials))
    options = seen["options"]
    assert options["vs-1"]["xAxis"] == ["log"] and options["vs-0"]["xAxis"] == ["value"]  # lr is Logarithmic
    assert options["vs-2"]["xAxis"] == ["category"]
    assert dict(options["parallel"]["parallelAxis"])["lr"] == "log"
    marks = {name: count for kind, name, count in options["curves"]["series"] if kind == "scatter"}
    stopped = sum(1 for t in trials if t["status"] == "Stopped")
    assert marks["stopped at a Hyperband rung"] == stopped > 0
    assert marks.get("failed", 0) == sum(1 for t in trials if t["status"] == "Failed" and t["id"] in reported)
    assert "fANOVA" in seen["method"] and "random forest" in seen["method"]
    importance = options["importance"]["series"][0]
    assert importance[0] == "bar" and importance[2] == 3


def test_auto_stopping_report_marks_the_median_rule(
    auto_stopping_result: Path, tmp_path: Path, keep_screenshot: list[Path]
) -> None:
    report = write_report(auto_stopping_result, tmp_path / "report.html")
    page, seen = load(report, tmp_path / "profile", SCREENSHOT_DIR / "auto-stopping.png", keep_screenshot)
    check_page(page, seen, ["width", "lr", "act"], 300)
    marks = {name: count for kind, name, count in seen["options"]["curves"]["series"] if kind == "scatter"}
    assert marks["stopped by the median rule (Auto)"] > 0
    assert "stopped at a Hyperband rung" not in marks


def test_ten_thousand_trials_render_in_full(tmp_path: Path, keep_screenshot: list[Path]) -> None:
    from tests.unit.results_data import many_trials

    source = many_trials(10_000, tmp_path / "many.json")
    report = write_report(source, tmp_path / "report.html")
    page, seen = load(report, tmp_path / "profile", SCREENSHOT_DIR / "ten-thousand.png", keep_screenshot)
    check_page(page, seen, ["width", "lr", "act"], 10_000)
    scored = sum(1 for t in json.loads(source.read_text())["trials"] if t["objective"] is not None)
    points = sum(count for kind, _, count in seen["options"]["history-number"]["series"] if kind == "scatter")
    assert points == scored
    curves = [s for s in seen["options"]["curves"]["series"] if s[0] == "line"]
    assert len(curves) == 400  # capped, as the page says
