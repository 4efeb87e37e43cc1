"""How hyperparameters reach training code — the same locally and in the cluster.

A trial's primary container gets, before its own env entries:
  HP_<NAME>                  one variable per hyperparameter (tuned and static); NAME is the
                             hyperparameter's name upper-cased, with every other character than
                             A-Z and 0-9 turned into '_' (learning-rate -> HP_LEARNING_RATE)
  KUBETUNE_HYPERPARAMETERS   a JSON object of all of them, with their types
  KUBETUNE_TRIAL_NAME        the trial's name (its Job's name in the cluster)
  KUBETUNE_TRIAL_NUMBER      1, 2, ...
  KUBETUNE_TUNING_JOB        the tuning job's name
  KUBETUNE_METRICS_FILE      where kubetune.report() appends metrics
so command and args can use Kubernetes' own `$(HP_LEARNING_RATE)` expansion.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass

ENV_PREFIX = "HP_"
HYPERPARAMETERS_ENV = "KUBETUNE_HYPERPARAMETERS"
TRIAL_NAME_ENV = "KUBETUNE_TRIAL_NAME"
TRIAL_NUMBER_ENV = "KUBETUNE_TRIAL_NUMBER"
TUNING_JOB_ENV = "KUBETUNE_TUNING_JOB"

_VAR = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.\-]*)\)")


def env_var_name(hyperparameter: str) -> str:
    return ENV_PREFIX + re.sub(r"[^A-Z0-9]", "_", hyperparameter.upper())


def format_value(value: str | int | float | bool) -> str:
    """A value as text: booleans as true/false, floats in their shortest exact form."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value) if not isinstance(value, float) else repr(value)


@dataclass(frozen=True)
class TrialIdentity:
    tuning_job: str
    trial_name: str
    number: int
    metrics_file: str


def trial_environment(
    hyperparameters: Mapping[str, str | int | float | bool], identity: TrialIdentity
) -> dict[str, str]:
    """The variables a trial's primary container receives, in the order they are set."""
    env = {env_var_name(k): format_value(v) for k, v in hyperparameters.items()}
    env[HYPERPARAMETERS_ENV] = json.dumps(dict(hyperparameters), sort_keys=True)
    env[TRIAL_NAME_ENV] = identity.trial_name
    env[TRIAL_NUMBER_ENV] = str(identity.number)
    env[TUNING_JOB_ENV] = identity.tuning_job
    env["KUBETUNE_METRICS_FILE"] = identity.metrics_file
    return env


def expand(text: str, env: Mapping[str, str]) -> str:
    """Kubernetes' $(VAR) expansion: defined variables are replaced, $$ escapes, the rest stays as written."""

    def substitute(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name = match.group(1)
        return env[name] if name in env else match.group(0)

    return _VAR.sub(substitute, text)
