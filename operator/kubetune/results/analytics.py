"""A tuning job's trials as a pandas DataFrame, shaped like SageMaker's HyperparameterTuningJobAnalytics."""

from __future__ import annotations

import time
from typing import Any

from kubetune.errors import ResultsError
from kubetune.results.model import TuningResults

INSTALL_HINT = "kubetune.analytics needs pandas: pip install 'kubetune[analytics]'"


def dataframe(results: TuningResults) -> Any:
    """One row per trial in number order: a column per tuned hyperparameter, then SageMaker's columns
    (TrainingJobName, TrainingJobStatus, FinalObjectiveValue, TrainingStartTime, TrainingEndTime,
    TrainingElapsedTimeSeconds), then kubetune's (TrialNumber, Steps, LastStep, Reason).

    Times are timezone-aware UTC Timestamps (NaT where unknown); objective None is NaN.
    """
    try:
        import pandas as pd
    except ImportError:
        raise ResultsError(INSTALL_HINT) from None
    now = time.time()
    names = [p.name for p in results.parameters]
    rows = []
    for trial in sorted(results.trials, key=lambda t: t.number):
        row: dict[str, Any] = {name: trial.hyperparameters.get(name) for name in names}
        row.update(
            TrainingJobName=trial.name,
            TrainingJobStatus=trial.status,
            FinalObjectiveValue=trial.objective,
            TrainingStartTime=trial.started_at,
            TrainingEndTime=trial.ended_at,
            TrainingElapsedTimeSeconds=trial.duration(now),
            TrialNumber=trial.number,
            Steps=trial.steps,
            LastStep=trial.last_step,
            Reason=trial.reason or None,
        )
        rows.append(row)
    columns = [*names, "TrainingJobName", "TrainingJobStatus", "FinalObjectiveValue", "TrainingStartTime"]
    columns += ["TrainingEndTime", "TrainingElapsedTimeSeconds", "TrialNumber", "Steps", "LastStep", "Reason"]
    frame = pd.DataFrame(rows, columns=columns)
    frame["FinalObjectiveValue"] = frame["FinalObjectiveValue"].astype("float64")
    for column in ("TrainingStartTime", "TrainingEndTime"):
        frame[column] = pd.to_datetime(frame[column].astype("float64"), unit="s", utc=True)
    frame.attrs.update(tuning_job=results.name, metric=results.metric, maximize=results.maximize)
    return frame


def analytics(
    source: str, namespace: str | None = None, kubeconfig: str | None = None, context: str | None = None
) -> Any:
    """`kubetune.analytics("digits-random", namespace="team-a")` or `kubetune.analytics("kubetune-result-x.json")`:
    the trials as a DataFrame (see dataframe()); the cluster is reached as kubectl would."""
    from kubetune.results.source import open_results

    return dataframe(open_results(source, namespace, kubeconfig, context))
