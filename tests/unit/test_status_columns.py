"""What `kubectl get hptj` reads from the status: the best value rounded for display, and the running count."""

from __future__ import annotations

import re
from typing import Any

import pytest

from kubetune import Tuner
from kubetune.api.spec import parse_spec
from kubetune.api.status import HyperParameterTuningJobStatus
from kubetune.operator.status import significant, tuner_status

from .conftest import make_spec

LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$")


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (0.912345678, "0.9123"),
        (0.91, "0.91"),
        (1234.5678, "1235"),
        (123456.0, "1.235e+05"),
        (-0.000012345, "-1.234e-05"),
        (3.0, "3"),
        (0.0, "0"),
    ],
)
def test_values_are_shown_to_4_significant_digits(value: float, shown: str) -> None:
    assert significant(value) == shown
    assert abs(float(shown) - value) <= abs(value) * 5e-4


def test_a_rounded_objective_does_not_always_fit_a_label_value() -> None:
    """Why the objective is an annotation, not a label (the README says so)."""
    assert not LABEL_VALUE.match(significant(-0.5)) and not LABEL_VALUE.match(significant(123456.0))


def _status(tuner: Tuner, pending: int = 0) -> dict[str, Any]:
    status = tuner_status(tuner, lambda n: f"tune-{n:04d}", HyperParameterTuningJobStatus(), 1, False, pending=pending)
    return status.to_wire()


def test_status_carries_the_rounded_best_and_the_running_count() -> None:
    tuner = Tuner(parse_spec(make_spec()))
    first, second, third, fourth = tuner.ask(4)
    wire = _status(tuner, pending=1)
    assert "bestObjectiveValue" not in wire  # nothing reported yet: kubectl shows <none>
    counters = wire["trainingJobStatusCounters"]
    assert (counters["inProgress"], counters["pending"], counters["running"]) == (4, 1, 3)

    tuner.tell(first.id, 0.123456789)
    tuner.tell(second.id, 0.0456789123)  # loss is minimized: this one is the best
    tuner.fail(third.id, "BackoffLimitExceeded")
    wire = _status(tuner)
    assert wire["bestObjectiveValue"] == "0.04568"
    assert wire["bestTrainingJob"]["finalObjectiveValue"] == 0.0456789123  # the exact value stays
    counters = wire["trainingJobStatusCounters"]
    assert (counters["running"], counters["nonRetryableError"], counters["completed"]) == (1, 1, 2)
    assert fourth.id in {t.id for t in tuner.running}
