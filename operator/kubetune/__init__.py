"""kubetune: hyperparameter tuning on Kubernetes, the way SageMaker Automatic Model Tuning does it.

The public surface is small on purpose: the Tuner (ask/report/tell), the report()
helper that training code calls, and the one error type for bad specs.
"""

from importlib.metadata import PackageNotFoundError, version

from kubetune.collector.report import report
from kubetune.engine import Trial, TrialResult, TrialStatus, Tuner
from kubetune.errors import SpecError

try:
    __version__ = version("kubetune")
except PackageNotFoundError:  # running from a source tree
    __version__ = "0.0.0+source"

__all__ = ["SpecError", "Trial", "TrialResult", "TrialStatus", "Tuner", "__version__", "report"]
