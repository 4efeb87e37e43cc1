"""The operator acts only on what the tuning job controls, by UID: labels and names are anyone's to claim."""

from __future__ import annotations

from typing import Any

from kubetune.operator.handlers import Indexes
from kubetune.operator.names import MAX_NAME, trial_job_name
from kubetune.operator.ownership import controlled_by, controller_uid


def job(name: str, owner_uid: str | None, controller: bool = True) -> dict[str, Any]:
    refs = [] if owner_uid is None else [{"kind": "HyperParameterTuningJob", "uid": owner_uid, "controller": controller}]
    return {"metadata": {"name": name, "uid": f"job-{name}", "ownerReferences": refs}}


def test_only_the_controller_reference_counts() -> None:
    assert controlled_by(job("a", "tj-1"), "tj-1")
    assert not controlled_by(job("a", "tj-2"), "tj-1")
    assert not controlled_by(job("a", None), "tj-1")
    assert not controlled_by(job("a", "tj-1", controller=False), "tj-1")  # an owner, not the controller
    assert not controlled_by(job("a", ""), "")  # no UID owns everything
    assert controller_uid({"metadata": {}}) is None


def test_indexes_hand_out_only_owned_jobs_and_pods() -> None:
    indexes = Indexes()
    ours, labelled_alike = job("train-0001", "tj-1"), job("train-0002", None)
    indexes.jobs = {("ns", "train"): [ours, labelled_alike]}  # type: ignore[assignment]
    assert indexes.jobs_of("ns", "train", "tj-1") == [ours]
    assert indexes.jobs_of("ns", "train", "tj-other") == []
    pod, planted = job("p1", "job-train-0001"), job("p2", "job-elsewhere")
    indexes.pods = {("ns", "train-0001"): [pod, planted]}  # type: ignore[assignment]
    assert indexes.pods_of("ns", "train-0001", "job-train-0001") == [pod]


def test_a_taken_name_has_a_second_that_fits_a_label() -> None:
    assert trial_job_name("train", 1) == "train-0001"
    assert trial_job_name("train", 1, "3fa2c") == "train-0001-3fa2c"
    long = "x" * 70
    second = trial_job_name(long, 12, "3fa2c")
    assert len(second) <= MAX_NAME and second.endswith("-0012-3fa2c")
    assert second != trial_job_name(long, 12)
