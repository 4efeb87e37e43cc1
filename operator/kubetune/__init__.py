"""kubetune: hyperparameter tuning on Kubernetes, the way SageMaker Automatic Model Tuning does it.

The public surface is small on purpose: the Tuner (ask/report/tell), the report()
helper that training code calls, the one error type for bad specs, the Client
for tuning jobs in a cluster, and analytics() for a DataFrame of the trials.

Names are loaded on first use, so `from kubetune import report` in a training
script and the in-pod sidecar start without importing numpy and the engine.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from kubetune._version import __version__
from kubetune.collector.report import report
from kubetune.errors import SpecError

if TYPE_CHECKING:
    from kubetune.client import Client
    from kubetune.engine import Trial, TrialResult, TrialStatus, Tuner
    from kubetune.results.analytics import analytics


_LAZY = {
    "Client": "kubetune.client",
    "analytics": "kubetune.results.analytics",
    "Trial": "kubetune.engine",
    "TrialResult": "kubetune.engine",
    "TrialStatus": "kubetune.engine",
    "Tuner": "kubetune.engine",
}

__all__ = ["Client", "SpecError", "Trial", "TrialResult", "TrialStatus", "Tuner", "__version__", "analytics", "report"]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'kubetune' has no attribute {name!r}")
