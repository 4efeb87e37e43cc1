"""Read the result JSON that `kubetune run` writes into TuningResults."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from kubetune.api.spec import HyperParameterTuningJobSpec, ObjectiveType, parse_spec
from kubetune.errors import ResultsError
from kubetune.results.model import TrialRow, TuningResults


def load_result_file(path: Path) -> TuningResults:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ResultsError(f"{path}: {exc.strerror}") from None
    except ValueError as exc:
        raise ResultsError(f"{path}: not JSON: {exc}") from None
    if not isinstance(document, dict) or not isinstance(document.get("trials"), list):
        raise ResultsError(f"{path}: not a kubetune result (no 'trials' list); `kubetune run` writes one")
    try:
        return _from_document(document, str(path))
    except (KeyError, TypeError, ValueError) as exc:
        raise ResultsError(f"{path}: not a valid kubetune result: {type(exc).__name__}: {exc}") from None


def _from_document(document: Mapping[str, Any], source: str) -> TuningResults:
    objective = document["objective"]
    spec: HyperParameterTuningJobSpec | None = parse_spec(document["spec"]) if document.get("spec") else None
    history = {str(t["id"]): t for t in (document.get("history") or {}).get("trials", [])}
    static = set(spec.static_hyper_parameters) if spec else set()
    rows = []
    for index, trial in enumerate(document["trials"], start=1):
        recorded = history.get(str(trial["id"]), {})
        tuned = recorded.get("tuned")
        if tuned is None:
            tuned = {k: v for k, v in trial["hyperparameters"].items() if k not in static}
        rows.append(
            TrialRow(
                number=int(recorded.get("number", index)),
                name=str(trial.get("name") or trial["id"]),
                status=str(trial["status"]),
                objective=None if trial.get("objective") is None else float(trial["objective"]),
                hyperparameters=tuned,
                reports=tuple((float(step), float(value)) for _, step, value in recorded.get("reports", [])),
                started_at=_number(trial.get("startedAt")),
                ended_at=_number(trial.get("endedAt")),
                reason=str(trial.get("reason") or ""),
            )
        )
    return TuningResults(
        name=str(document["tuningJob"]),
        source=source,
        metric=str(objective["metricName"]),
        maximize=objective["type"] == ObjectiveType.MAXIMIZE.value,
        status=str(document["status"]),
        completion_reason=str(document.get("completionReason") or ""),
        trials=tuple(rows),
        spec=spec,
        strategy=spec.strategy.value if spec else "",
    )


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None
