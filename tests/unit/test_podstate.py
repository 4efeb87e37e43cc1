"""A one-pod trial ends when its containers say so, before the kubelet's terminal phase (podstate.ran_to_success)."""

from __future__ import annotations

from typing import Any

from kubetune.operator.names import SIDECAR_NAME
from kubetune.operator.podstate import ran_to_success, trial_outcome

RUNNING_JOB: dict[str, Any] = {"spec": {}, "status": {"active": 1}}


def state(name: str, exit_code: int | None) -> dict[str, Any]:
    if exit_code is None:
        return {"name": name, "state": {"running": {"startedAt": "2026-01-01T00:00:00Z"}}}
    return {"name": name, "state": {"terminated": {"exitCode": exit_code, "message": '{"final": 0.9}'}}}


def trial_pod(
    main: dict[str, int | None], sidecar: int | None, restart_policy: str = "Never", phase: str = "Running"
) -> dict[str, Any]:
    """A trial pod as the kubelet reports it: regular containers `main` (name: exit code, None = running)."""
    return {
        "metadata": {"name": "t-abc", "uid": "u"},
        "spec": {
            "restartPolicy": restart_policy,
            "initContainers": [{"name": SIDECAR_NAME, "restartPolicy": "Always"}],
            "containers": [{"name": name} for name in main],
        },
        "status": {
            "phase": phase,
            "initContainerStatuses": [state(SIDECAR_NAME, sidecar)],
            "containerStatuses": [state(name, code) for name, code in main.items()],
        },
    }


def test_stopped_containers_that_exited_0_end_the_trial_before_the_phase_says_so() -> None:
    pod = trial_pod({"train": 0}, sidecar=0)
    assert ran_to_success(pod)
    assert trial_outcome(RUNNING_JOB, pod) == (True, "")


def test_a_running_sidecar_means_its_last_word_is_not_written_yet() -> None:
    pod = trial_pod({"train": 0}, sidecar=None)
    assert not ran_to_success(pod)
    assert trial_outcome(RUNNING_JOB, pod) is None


def test_every_regular_container_must_have_stopped_with_0() -> None:
    assert not ran_to_success(trial_pod({"train": 0, "helper": None}, sidecar=0))
    assert not ran_to_success(trial_pod({"train": 0, "helper": 1}, sidecar=0))
    assert trial_outcome(RUNNING_JOB, trial_pod({"train": 1}, sidecar=0)) is None  # failure stays the Job's call
    assert ran_to_success(trial_pod({"train": 0, "helper": 0}, sidecar=143))  # a sidecar's SIGTERM exit is fine


def test_containers_that_may_run_again_do_not_count() -> None:
    assert not ran_to_success(trial_pod({"train": 0}, sidecar=0, restart_policy="Always"))
    pod = trial_pod({"train": 0}, sidecar=0)
    pod["spec"]["containers"][0]["restartPolicy"] = "Always"  # a container's own restart rules
    assert not ran_to_success(pod)


def test_containers_not_reported_yet_have_not_stopped() -> None:
    pod = trial_pod({"train": 0}, sidecar=0)
    pod["status"]["containerStatuses"] = []
    assert not ran_to_success(pod)
    assert not ran_to_success(trial_pod({}, sidecar=0))  # no regular container at all: nothing ran


def test_the_succeeded_phase_still_settles_it_and_a_multi_pod_trial_waits_for_its_job() -> None:
    assert trial_outcome(RUNNING_JOB, trial_pod({"train": 0}, sidecar=None, phase="Succeeded")) == (True, "")
    assert trial_outcome(RUNNING_JOB, trial_pod({"train": 0}, sidecar=0), multi_pod=True) is None
