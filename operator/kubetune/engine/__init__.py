"""The tuning engine: pure Python, no Kubernetes. Layers above drive it through Tuner."""

from kubetune.engine.trial import Trial, TrialResult, TrialStatus
from kubetune.engine.tuner import Tuner

__all__ = ["Trial", "TrialResult", "TrialStatus", "Tuner"]
