"""Read a tuning job and its trial Jobs (or JobSets) from the cluster into TuningResults.

The cluster is the database: each trial Job carries its record (hyperparameters,
reports, outcome) in an annotation. Jobs are listed a page at a time (the list
call's `limit` and `continue`), so a job of 10,000 trials neither asks the API
server for one huge response nor holds more than a page of raw JSON at once,
and each page is parsed as plain JSON: the client's model classes cost
milliseconds per Job, which at 10,000 trials is most of a minute.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator, Mapping
from typing import Any, cast

from kubernetes import client
from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import HTTPError

from kubetune.api.resource import GROUP, PLURAL, VERSION
from kubetune.api.spec import ObjectiveType, parse_spec
from kubetune.errors import ResultsError, SpecError
from kubetune.operator import jobset
from kubetune.operator.names import TUNING_JOB_LABEL
from kubetune.operator.ownership import controlled_by
from kubetune.operator.records import read_record, trial_number
from kubetune.results.model import TrialRow, TuningResults

PAGE_SIZE = 500
"""Jobs per list call: kubectl's own chunk size."""


def load_tuning_job(api: client.ApiClient, namespace: str, name: str, page_size: int = PAGE_SIZE) -> TuningResults:
    where = f"tuning job {name} in namespace {namespace}"
    try:
        custom = client.CustomObjectsApi(api)
        resource = cast(dict[str, Any], custom.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name))
    except ApiException as exc:
        if exc.status == 404:
            raise ResultsError(f"{where}: not found (kubectl get hptj -n {namespace} lists them)") from None
        raise ResultsError(f"{where}: the API server said {exc.status} {exc.reason}") from None
    except HTTPError as exc:
        raise ResultsError(f"{where}: the API server cannot be reached: {exc}") from None
    try:
        spec = parse_spec(resource.get("spec") or {})
    except SpecError as exc:
        raise ResultsError(f"{where}: its spec is invalid: {exc}") from None
    status = resource.get("status") or {}
    uid = resource["metadata"]["uid"]
    kind = spec.trial_template.kind.value
    rows = [row for job in trial_jobs(api, namespace, name, page_size, kind) if (row := _row(job, uid)) is not None]
    rows.sort(key=lambda r: r.number)
    return TuningResults(
        name=name,
        source=f"{namespace}/{name}",
        metric=spec.objective.metric_name,
        maximize=spec.objective.type is ObjectiveType.MAXIMIZE,
        status=str(status.get("hyperParameterTuningJobStatus") or "InProgress"),
        completion_reason=str(status.get("completionReason") or status.get("failureReason") or ""),
        trials=tuple(rows),
        spec=spec,
        strategy=spec.strategy.value,
    )


def trial_jobs(
    api: client.ApiClient, namespace: str, name: str, page_size: int = PAGE_SIZE, kind: str = "Job"
) -> Iterator[dict[str, Any]]:
    """Every trial object (Job, or JobSet for a JobSet template) labelled with the tuning job's name, page by page."""
    batch, custom = client.BatchV1Api(api), client.CustomObjectsApi(api)
    token: str | None = None
    while True:
        try:
            selector = f"{TUNING_JOB_LABEL}={name}"
            if kind == jobset.KIND:
                response = custom.list_namespaced_custom_object(
                    jobset.GROUP, jobset.VERSION, namespace, jobset.PLURAL,
                    label_selector=selector, limit=page_size, _continue=token, _preload_content=False,
                )  # fmt: skip
            else:
                response = batch.list_namespaced_job(
                    namespace, label_selector=selector, limit=page_size, _continue=token, _preload_content=False
                )
        except ApiException as exc:
            raise ResultsError(
                f"trial {kind}s of {name} in {namespace}: the API server said {exc.status} {exc.reason}"
            ) from None
        page = json.loads(cast(Any, response).data)  # the raw urllib3 response (_preload_content=False)
        yield from page.get("items", [])
        token = (page.get("metadata") or {}).get("continue")
        if not token:
            return


def _row(job: Mapping[str, Any], uid: str) -> TrialRow | None:
    """The trial a Job holds, or None for a Job that merely carries the label (not owned by this tuning job)."""
    if not controlled_by(job, uid):
        return None
    metadata = job.get("metadata") or {}
    record = read_record(job)
    number = trial_number(job)
    if record is None or number is None:
        return None
    status = job.get("status") or {}
    value = record.get("value")
    return TrialRow(
        number=number,
        name=str(metadata.get("name", "")),
        status=str(record.get("status") or "Running"),
        objective=None if value is None else float(value),
        hyperparameters=dict(record.get("tuned") or {}),
        reports=tuple((float(step), float(v)) for _, step, v in record.get("reports", [])),
        started_at=_time(status.get("startTime") or metadata.get("creationTimestamp")),
        ended_at=_ended(status) if record.get("ended") is not None else None,
        reason=str(record.get("reason") or ""),
    )


def _ended(status: Mapping[str, Any]) -> float | None:
    if status.get("completionTime"):
        return _time(status["completionTime"])
    ends = [
        c.get("lastTransitionTime")
        for c in status.get("conditions") or []
        # a Job's, or a JobSet's (Completed)
        if c.get("type") in ("Complete", "Completed", "Failed", "Suspended", "FailureTarget")
        and c.get("status") == "True"
    ]
    return _time(ends[0]) if ends else None


def _time(stamp: Any) -> float | None:
    if not isinstance(stamp, str):
        return None
    try:
        return dt.datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None
