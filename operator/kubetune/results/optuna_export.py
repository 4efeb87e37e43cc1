"""A tuning job as an Optuna study, so optuna-dashboard and Optuna's own plots open it unchanged.

The mapping, one trial at a time:

| kubetune | Optuna |
|---|---|
| Completed with an objective | COMPLETE, value = the objective |
| Stopped (Hyperband rung, Auto early stopping, the user) | PRUNED, value = its last report |
| Failed, or Completed without an objective | FAIL |
| Running | RUNNING |
| each report (step, value) | intermediate_values[step] |
| Linear / Logarithmic continuous range | FloatDistribution(log=False / True) |
| ReverseLogarithmic continuous range | FloatDistribution (Optuna has no such scale; the user attribute says so) |
| integer range | IntDistribution(log=...) |
| categorical range | CategoricalDistribution |

Auto scaling is resolved the way the engine resolves it. Optuna's steps are
integers: a trial whose steps are not whole numbers gets its reports numbered
0, 1, 2, … and keeps the real steps in the user attribute `kubetune_steps`.
Names, reasons and the tuning job's spec go into user attributes.
"""

from __future__ import annotations

import datetime as dt
import math
import warnings
from typing import TYPE_CHECKING, Any

from kubetune.api.spec import ScalingType
from kubetune.engine.space import Kind, Parameter
from kubetune.errors import ResultsError
from kubetune.results.model import TrialRow, TuningResults

if TYPE_CHECKING:
    from optuna.distributions import BaseDistribution
    from optuna.study import Study

INSTALL_HINT = "the Optuna export needs optuna: pip install 'kubetune[optuna]'"


def export_optuna(results: TuningResults, storage: str, study_name: str | None = None) -> Study:
    """Write every trial into a new study `study_name` (default: the tuning job's name) in `storage`."""
    try:
        import optuna
    except ImportError:
        raise ResultsError(INSTALL_HINT) from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # not a line per study created: we say what was written
    name = study_name or results.name
    try:
        existing = optuna.get_all_study_names(storage)
    except Exception as exc:  # optuna raises what the storage backend raises: say which URL
        raise ResultsError(f"--optuna {storage}: cannot open the storage: {exc}") from None
    if name in existing:
        raise ResultsError(f"--optuna {storage}: a study named {name!r} exists already; pass --study-name")
    study = optuna.create_study(
        storage=storage, study_name=name, direction="maximize" if results.maximize else "minimize"
    )
    with warnings.catch_warnings():  # experimental since 3.2, and what optuna-dashboard labels the axis with
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study.set_metric_names([results.metric])
    study.set_user_attr("kubetune_source", results.source)
    study.set_user_attr("kubetune_strategy", results.strategy)
    study.set_user_attr("kubetune_status", results.status)
    if results.spec is not None:
        study.set_user_attr("kubetune_spec", results.spec.to_wire())
    distributions = {p.name: distribution(p) for p in results.parameters}
    study.add_trials([_frozen(row, distributions, results) for row in results.trials])
    return study


def distribution(parameter: Parameter) -> BaseDistribution:
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    log = parameter.scaling is ScalingType.LOGARITHMIC
    if parameter.kind is Kind.INTEGER:
        return IntDistribution(int(parameter.low), int(parameter.high), log=log)
    if parameter.kind is Kind.CONTINUOUS:
        return FloatDistribution(parameter.low, parameter.high, log=log)
    return CategoricalDistribution(list(parameter.choices))


def _frozen(row: TrialRow, distributions: dict[str, BaseDistribution], results: TuningResults) -> Any:
    from optuna.trial import FrozenTrial, TrialState

    value = row.objective if row.objective is not None and math.isfinite(row.objective) else None
    if row.status == "Running":
        state, value = TrialState.RUNNING, None
    elif row.status == "Stopped":
        state = TrialState.PRUNED
    elif row.status == "Completed" and value is not None:
        state = TrialState.COMPLETE
    else:
        state, value = TrialState.FAIL, None
    attrs: dict[str, Any] = {"kubetune_name": row.name, "kubetune_status": row.status}
    if row.reason:
        attrs["kubetune_reason"] = row.reason
    whole = all(float(step).is_integer() for step, _ in row.reports)
    if whole:
        intermediate = {int(step): v for step, v in row.reports if math.isfinite(v)}
    else:
        intermediate = {i: v for i, (_, v) in enumerate(row.reports) if math.isfinite(v)}
        attrs["kubetune_steps"] = [step for step, _ in row.reports]
    reverse = [p.name for p in results.parameters if p.scaling is ScalingType.REVERSE_LOGARITHMIC]
    if reverse:
        attrs["kubetune_reverse_logarithmic"] = reverse
    params = {k: v for k, v in row.hyperparameters.items() if k in distributions}
    return FrozenTrial(
        number=row.number - 1,
        state=state,
        value=value,
        datetime_start=_when(row.started_at),
        datetime_complete=None if state is TrialState.RUNNING else _when(row.ended_at),
        params=params,
        distributions={k: distributions[k] for k in params},
        user_attrs=attrs,
        system_attrs={},
        intermediate_values=intermediate,
        trial_id=row.number - 1,
    )


def _when(stamp: float | None) -> dt.datetime | None:
    # Optuna keeps naive local times (datetime.now()); a UTC-aware one would show shifted in the dashboard.
    return None if stamp is None else dt.datetime.fromtimestamp(stamp)
