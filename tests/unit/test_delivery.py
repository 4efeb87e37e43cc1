"""How hyperparameters reach training code: env names, values, Kubernetes' $(VAR) expansion."""

from __future__ import annotations

import json

from kubetune.api.delivery import TrialIdentity, env_var_name, expand, format_value, trial_environment


def test_env_var_names() -> None:
    assert env_var_name("learning-rate") == "HP_LEARNING_RATE"
    assert env_var_name("model.depth") == "HP_MODEL_DEPTH"
    assert env_var_name("lr") == "HP_LR"


def test_values_as_text() -> None:
    assert [format_value(v) for v in (True, False, 3, 0.1, 1e-7, "adam")] == [
        "true",
        "false",
        "3",
        "0.1",
        "1e-07",
        "adam",
    ]


def test_trial_environment() -> None:
    env = trial_environment({"lr": 0.01, "opt": "adam", "deep": True}, TrialIdentity("job", "job-0003", 3, "/m.jsonl"))
    assert env["HP_LR"] == "0.01" and env["HP_OPT"] == "adam" and env["HP_DEEP"] == "true"
    assert json.loads(env["KUBETUNE_HYPERPARAMETERS"]) == {"lr": 0.01, "opt": "adam", "deep": True}
    assert env["KUBETUNE_TRIAL_NAME"] == "job-0003" and env["KUBETUNE_TRIAL_NUMBER"] == "3"
    assert env["KUBETUNE_METRICS_FILE"] == "/m.jsonl" and env["KUBETUNE_TUNING_JOB"] == "job"


def test_expansion_follows_kubernetes() -> None:
    env = {"HP_LR": "0.1", "A": "x"}
    assert expand("--lr=$(HP_LR)", env) == "--lr=0.1"
    assert expand("$(MISSING) stays", env) == "$(MISSING) stays"
    assert expand("$$(HP_LR) is escaped", env) == "$(HP_LR) is escaped"
    assert expand("cost $$5 and $(A)$(A)", env) == "cost $5 and xx"
    assert expand("$HP_LR is not expanded", env) == "$HP_LR is not expanded"
