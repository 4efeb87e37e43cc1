"""Rebuild a tuning job's Tuner from its trial Jobs: the cluster is the database.

Each trial Job carries its trial's history document in an annotation; the
tuning job's status carries the seed and the start time. Together they are a
complete history(), so a restarted operator continues exactly where the last
one stopped, with no trial lost or run twice.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping
from typing import Any

from kubetune.engine.tuner import make_history
from kubetune.logs import decision
from kubetune.operator.names import TRIAL_LABEL, TRIAL_RECORD_ANNOTATION

log = logging.getLogger("kubetune.operator")

MAX_REPORTS_PER_TRIAL = 1000
"""Reports kept on a Job; beyond this the oldest are thinned (the annotation must stay well under 256 KiB)."""


def trial_number(job: Mapping[str, Any]) -> int | None:
    try:
        return int(job["metadata"]["labels"][TRIAL_LABEL])
    except (KeyError, TypeError, ValueError):
        return None


def read_record(job: Mapping[str, Any]) -> dict[str, Any] | None:
    """The trial document on a Job, or None if it is missing or unreadable."""
    raw = (job.get("metadata", {}).get("annotations") or {}).get(TRIAL_RECORD_ANNOTATION)
    if not raw:
        return None
    try:
        record = json.loads(raw)
    except ValueError:
        return None
    return record if isinstance(record, dict) and "number" in record else None


def compact_record(record: dict[str, Any]) -> dict[str, Any]:
    """Bound the number of reports kept, always keeping the first and the most recent ones."""
    reports = record.get("reports", [])
    if len(reports) <= MAX_REPORTS_PER_TRIAL:
        return record
    head = MAX_REPORTS_PER_TRIAL // 10
    tail = MAX_REPORTS_PER_TRIAL - head
    return {**record, "reports": reports[:head] + reports[-tail:]}


def history_from_jobs(
    jobs: Iterable[Mapping[str, Any]], seed: int, started_at: float, tuning_job: str
) -> dict[str, Any]:
    """A Tuner history from the trial Jobs; a trial whose Job is gone counts as failed."""
    records: dict[int, dict[str, Any]] = {}
    for job in jobs:
        record = read_record(job)
        number = trial_number(job)
        if record is None or number is None or int(record["number"]) != number:
            decision(log, "trial.unreadable", logging.WARNING, tuning_job=tuning_job, job=job["metadata"]["name"])
            continue
        records[number] = record
    top = max(records, default=0)
    seq = max((_last_seq(r) for r in records.values()), default=0)
    for number in range(top, 0, -1):
        if number not in records:
            # Asked at the same sequence number as its successor: replay keeps number order on ties.
            asked = int(records[number + 1]["asked"])
            seq += 1
            records[number] = _lost_trial(number, asked, seq)
            decision(
                log, "trial.lost", logging.WARNING, tuning_job=tuning_job, trial=number, reason="its Job was deleted"
            )
    return make_history(seed, started_at, list(records.values()))


def _last_seq(record: Mapping[str, Any]) -> int:
    seqs = [int(record.get("asked", 0)), int(record.get("ended") or 0)]
    seqs += [int(r[0]) for r in record.get("reports", [])]
    return max(seqs)


def _lost_trial(number: int, asked: int, ended: int) -> dict[str, Any]:
    return {
        "id": str(number),
        "number": number,
        "hyperparameters": {},
        "tuned": {},
        "asked": asked,
        "reports": [],
        "status": "Failed",
        "value": None,
        "reason": "its Job was deleted",
        "ended": ended,
    }
