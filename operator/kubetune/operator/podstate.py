"""What a trial's Job and pods say about it, read from their status: pure functions, no API calls.

Outcome, waiting, why a pod ended, and the sidecar's last word are all in
the objects the watch delivers; reading them in one place keeps the loop in
reconcile.py about decisions, and makes each reading testable on its own.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from typing import Any

from kubetune.api.spec import HyperParameterTuningJobSpec
from kubetune.operator.names import SIDECAR_NAME
from kubetune.operator.status import parse_rfc3339


def newest(pods: Sequence[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    return max(pods, key=lambda p: p["metadata"].get("creationTimestamp") or "", default=None)


def trial_outcome(job: Mapping[str, Any], pod: Mapping[str, Any] | None) -> tuple[bool, str] | None:
    """(succeeded, reason) once the trial has finished, else None.

    A pod that succeeded settles it at once — the Job controller marks the Job
    Complete a moment later, and a freed slot should not wait for that. A failed
    pod does not: the Job may retry it (backoffLimit), so failure is the Job's call.
    """
    if (pod or {}).get("status", {}).get("phase") == "Succeeded":
        return True, ""
    return job_outcome(job)


def job_outcome(job: Mapping[str, Any]) -> tuple[bool, str] | None:
    """(succeeded, reason) once the Job has finished, else None."""
    for condition in job.get("status", {}).get("conditions") or []:
        if condition.get("status") != "True":
            continue
        if condition.get("type") == "Complete":
            return True, ""
        if condition.get("type") == "Failed":
            return False, f"{condition.get('reason', 'Failed')}: {condition.get('message', '')}".rstrip(": ")
    return None


def sidecar_state(pod: Mapping[str, Any] | None) -> Mapping[str, Any]:
    for status in (pod or {}).get("status", {}).get("initContainerStatuses") or []:
        if status.get("name") == SIDECAR_NAME:
            return dict(status)
    return {}


def sidecar_running(pod: Mapping[str, Any] | None) -> bool:
    return "running" in (sidecar_state(pod).get("state") or {})


def sidecar_summary(pod: Mapping[str, Any] | None) -> dict[str, Any] | None:
    status = sidecar_state(pod)
    for key in ("state", "lastState"):
        message = ((status.get(key) or {}).get("terminated") or {}).get("message")
        if message:
            try:
                summary = json.loads(message)
            except ValueError:
                continue
            if isinstance(summary, dict):
                return summary
    return None


def trial_failure(job_reason: str, pod: Mapping[str, Any] | None, spec: HyperParameterTuningJobSpec) -> str:
    primary = spec.primary_container["name"]
    for status in (pod or {}).get("status", {}).get("containerStatuses") or []:
        if status.get("name") != primary:
            continue
        terminated = (status.get("state") or {}).get("terminated") or (status.get("lastState") or {}).get("terminated")
        if terminated:
            detail = f"container {primary} exited with code {terminated.get('exitCode')}"
            if terminated.get("reason"):
                detail += f" ({terminated['reason']})"
            if terminated.get("message"):  # with FallbackToLogsOnError: the end of its output
                detail += f"; last output:\n{tail(str(terminated['message']))}"
            if spec.metric_definitions and "/bin/sh" in str(terminated.get("message", "")):
                detail += (
                    "; metricDefinitions need /bin/sh in the image to capture output: use kubetune.report() instead"
                )
            return f"{job_reason}; {detail}" if job_reason else detail
    return job_reason or "the Job failed"


def waiting_for(job: Mapping[str, Any], pod: Mapping[str, Any] | None) -> str | None:
    """What keeps a trial from running, in the cluster's words; None once its pod runs."""
    if pod is None:
        if (job.get("spec") or {}).get("suspend"):
            return "its Job is suspended (waiting for admission)"
        return "no pod yet"
    status = pod.get("status") or {}
    if status.get("phase") != "Pending":
        return None
    for condition in status.get("conditions") or []:
        if condition.get("type") == "PodScheduled" and condition.get("status") == "False":
            return f"{condition.get('reason', 'Unschedulable')}: {condition.get('message', '')}".rstrip(": ")
    for key in ("initContainerStatuses", "containerStatuses"):
        for container in status.get(key) or []:
            waiting = (container.get("state") or {}).get("waiting")
            if waiting and waiting.get("reason") not in (None, "PodInitializing"):
                return (
                    f"container {container.get('name')}: {waiting.get('reason')}: {waiting.get('message', '')}".rstrip(
                        ": "
                    )
                )
    return "its pod is starting"


def created_at(obj: Mapping[str, Any]) -> float:
    try:
        return parse_rfc3339(str((obj.get("metadata") or {}).get("creationTimestamp")))
    except ValueError:
        return time.time()


def attempt_end(pod: Mapping[str, Any] | None) -> str:
    """Why a trial's pod was replaced, in the cluster's words: its DisruptionTarget, else how it failed."""
    status = (pod or {}).get("status") or {}
    for condition in status.get("conditions") or []:
        if condition.get("type") == "DisruptionTarget" and condition.get("status") == "True":
            return f"{condition.get('reason', 'DisruptionTarget')}: {condition.get('message', '')}".rstrip(": ")
    if not pod:
        return "its pod is gone"
    if status.get("reason") or status.get("message"):
        return f"{status.get('reason', 'Failed')}: {status.get('message', '')}".rstrip(": ")
    if (pod.get("metadata") or {}).get("deletionTimestamp"):
        return "its pod was deleted"
    return f"its pod ended in phase {status.get('phase', 'unknown')}"


def tail(text: str, lines: int = 10, chars: int = 700) -> str:
    """The end of a container's output, where the error usually is: whole lines, bounded for an event."""
    kept = "\n".join(text.rstrip().splitlines()[-lines:])
    return kept if len(kept) <= chars else "…" + kept[-chars:]
