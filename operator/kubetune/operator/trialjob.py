"""A trial's batch/v1 Job (or JobSet), made from the tuning job's trialTemplate.

The template's pod spec stays as written — GPU requests, node selectors,
tolerations, volumes — except for what the trial needs: its hyperparameters
in the primary container's environment (the same variables `kubetune run`
sets), a shared emptyDir, and the metrics sidecar as a native sidecar (an init
container with restartPolicy Always), so the Job completes when training ends
and the sidecar's last word still arrives.

A JobSet trial's every replicated Job gets the same: each of its pods has the
hyperparameters (in the container named like the primary container, else its
first), the volume and the sidecar, so that every rank runs alike and any of
them may call kubetune.report(); only the primary pod's are read (podstate.py).
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from typing import Any

from kubetune.api.delivery import TrialIdentity, trial_environment
from kubetune.api.resource import API_VERSION, KIND
from kubetune.api.spec import HyperParameterTuningJobSpec
from kubetune.api.template import trial_container
from kubetune.collector.sidecar import METRICS_FILE, SHARED_DIR
from kubetune.engine import Trial, TrialStatus
from kubetune.operator import jobset
from kubetune.operator.kueue import queue_name
from kubetune.operator.names import (
    HYPERPARAMETERS_ANNOTATION,
    SHARED_VOLUME,
    SIDECAR_NAME,
    TRIAL_LABEL,
    TRIAL_RECORD_ANNOTATION,
    TRIAL_STATUS_LABEL,
    TUNING_JOB_LABEL,
    trial_job_name,
)

# POSIX sh: run the original command with stdout and stderr copied to the shared
# volume, forward SIGTERM/SIGINT to it, and exit with its exit code. If the fifos
# cannot be made, the command still runs, uncaptured: capture must never break a trial.
OUTPUT_WRAPPER = r"""d="${KUBETUNE_DIR:-/kubetune}"; o="$d/.out.$$"; e="$d/.err.$$"; t1=; t2=
if mkfifo "$o" "$e" 2>/dev/null; then
  tee -a "$d/stdout.log" <"$o" & t1=$!
  tee -a "$d/stderr.log" <"$e" >&2 & t2=$!
  "$@" >"$o" 2>"$e" &
else
  "$@" &
fi
child=$!
trap 'kill -TERM "$child" 2>/dev/null' TERM
trap 'kill -INT "$child" 2>/dev/null' INT
code=
while [ -z "$code" ]; do
  wait "$child"; status=$?
  kill -0 "$child" 2>/dev/null || code=$status
done
if [ -n "$t1" ]; then
  (sleep 5; kill "$t1" "$t2" 2>/dev/null) & k=$!
  wait "$t1" "$t2" 2>/dev/null
  kill "$k" 2>/dev/null
  rm -f "$o" "$e"
fi
echo "$code" >"$d/exit-code"
exit "$code"
"""
WRAPPER_ARGV0 = "kubetune-wrap"


@dataclass(frozen=True)
class SidecarConfig:
    """How the operator injects the metrics sidecar (set once from the operator's settings)."""

    image: str
    port: int = 9465
    image_pull_policy: str | None = None
    resources: dict[str, Any] = field(default_factory=dict)
    security_context: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class TrialJob:
    manifest: dict[str, Any]
    output_captured: bool
    """False when metricDefinitions cannot see the output (the container has no command to wrap)."""


def build_trial_job(
    spec: HyperParameterTuningJobSpec,
    owner: dict[str, Any],
    trial: Trial,
    record: dict[str, Any],
    sidecar: SidecarConfig,
    name_variant: str = "",
) -> TrialJob:
    """The Job for one trial; `owner` is the tuning job's metadata (name, namespace, uid).

    `name_variant` names the Job differently when its usual name is taken (names.trial_job_name).
    """
    tuning_job = owner["name"]
    name = trial_job_name(tuning_job, trial.number, name_variant)
    template = spec.trial_template
    body = copy.deepcopy(template.spec)
    metadata = copy.deepcopy(template.metadata)
    ours = {TUNING_JOB_LABEL: tuning_job, TRIAL_LABEL: str(trial.number)}
    labels = {**metadata.get("labels", {}), **ours, TRIAL_STATUS_LABEL: TrialStatus.RUNNING.value}
    annotations = {
        **metadata.get("annotations", {}),
        TRIAL_RECORD_ANNOTATION: json.dumps(record, separators=(",", ":")),
        HYPERPARAMETERS_ANNOTATION: json.dumps(dict(trial.hyperparameters), sort_keys=True),
    }
    queued = queue_name(labels) is not None
    identity = TrialIdentity(tuning_job, name, trial.number, f"{SHARED_DIR}/{METRICS_FILE}")
    if template.jobset:
        # Every replicated Job's pods get what a Job trial's pods get; the primary's says whether output is captured.
        captured = True
        for position, replicated in enumerate(body.get("replicatedJobs") or []):
            job_spec = replicated.setdefault("template", {}).setdefault("spec", {})
            prepared = _prepare_job(spec, job_spec, ours, trial, identity, sidecar, queued)
            captured = prepared if position == template.primary_position else captured
        api_version, kind = jobset.API_VERSION, jobset.KIND
    else:
        captured = _prepare_job(spec, body, ours, trial, identity, sidecar, queued)
        api_version, kind = "batch/v1", "Job"
    if queued:
        # Kueue admits a Job (or JobSet) by unsuspending it: created running, it would start before its
        # quota was granted (Kueue's webhook suspends it too, where that webhook is installed).
        body["suspend"] = True
    manifest = {
        "apiVersion": api_version,
        "kind": kind,
        "metadata": {
            "name": name,
            "namespace": owner["namespace"],
            "labels": labels,
            "annotations": annotations,
            "ownerReferences": [
                {
                    "apiVersion": API_VERSION,
                    "kind": KIND,
                    "name": tuning_job,
                    "uid": owner["uid"],
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "spec": body,
    }
    return TrialJob(manifest, captured)


def _prepare_job(
    spec: HyperParameterTuningJobSpec,
    job_spec: dict[str, Any],
    ours: dict[str, str],
    trial: Trial,
    identity: TrialIdentity,
    sidecar: SidecarConfig,
    queued: bool,
) -> bool:
    """Give one Job's pods what a trial needs; returns whether metricDefinitions can read their output."""
    pod_template = job_spec.setdefault("template", {})
    pod_meta = pod_template.setdefault("metadata", {})
    pod_meta["labels"] = {**pod_meta.get("labels", {}), **ours}
    pod = pod_template.setdefault("spec", {})
    pod.setdefault("restartPolicy", "Never")
    # The pod's sandbox process becomes PID 1, not the training script: a PID 1
    # gets no default signal actions, so a Python trainer as PID 1 ignores the
    # SIGTERM of a stop or an eviction and holds its GPU for the whole grace
    # period. A template that sets the field itself keeps its choice, and one with
    # hostPID gets none (the API server refuses the two together).
    if not pod.get("hostPID"):
        pod.setdefault("shareProcessNamespace", True)
    container = trial_container(pod, spec.primary_container["name"])
    if container is None:  # the spec's rules refuse a pod without containers; the API server would too
        return False
    _set_failure_policy(spec, job_spec, pod, str(container.get("name")), queued=queued)
    pod["volumes"] = [*pod.get("volumes", []), {"name": SHARED_VOLUME, "emptyDir": {}}]
    captured = _prepare_primary(spec, container, trial, identity)
    pod["initContainers"] = [*pod.get("initContainers", []), _sidecar_container(spec, sidecar)]
    return captured


SIGTERM_EXIT = 143
"""What a container killed by SIGTERM exits with (128 + 15): Python's default on SIGTERM."""


def _set_failure_policy(
    spec: HyperParameterTuningJobSpec, job_spec: dict[str, Any], pod: dict[str, Any], primary: str, queued: bool = False
) -> None:
    """Which pod failures count, unless the template says so itself.

    An evicted, preempted or node-lost pod carries the DisruptionTarget condition:
    it is ignored (not counted against backoffLimit) and the Job runs the trial
    again. A non-zero exit of the primary container is the training code's own
    failure and fails the Job at once. Any other failure is retried up to
    retryStrategy.maximumRetryAttempts times (default none), as in SageMaker. A
    template with its own podFailurePolicy or backoffLimit keeps it, and so does an
    Indexed one with backoffLimitPerIndex (its retries per rank); a policy needs
    restartPolicy Never, so one with OnFailure gets none.

    A trial queued through Kueue is evicted (preempted, its Workload
    deactivated) by suspending its Job: its pods are deleted and get SIGTERM,
    with no DisruptionTarget condition, and the Job controller can still count
    such a pod as failed. So for those a primary container that exits 143 (the
    SIGTERM exit) is ignored too; the Job, suspended, makes no replacement until
    Kueue admits it again.
    """
    if "podFailurePolicy" in job_spec or pod.get("restartPolicy") != "Never":
        return
    rules: list[dict[str, Any]] = [{"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget"}]}]
    if queued:
        rules.append(
            {"action": "Ignore", "onExitCodes": {"containerName": primary, "operator": "In", "values": [SIGTERM_EXIT]}}
        )
    if "backoffLimit" not in job_spec and "backoffLimitPerIndex" not in job_spec:
        job_spec["backoffLimit"] = spec.retry_strategy.maximum_retry_attempts if spec.retry_strategy else 0
        rules.append(
            {"action": "FailJob", "onExitCodes": {"containerName": primary, "operator": "NotIn", "values": [0]}}
        )
    job_spec["podFailurePolicy"] = {"rules": rules}


def _prepare_primary(
    spec: HyperParameterTuningJobSpec, container: dict[str, Any], trial: Trial, identity: TrialIdentity
) -> bool:
    """The training container: its hyperparameters, the shared volume, and its output captured if need be."""
    ours = [{"name": k, "value": v} for k, v in trial_environment(trial.hyperparameters, identity).items()]
    ours.append({"name": "KUBETUNE_DIR", "value": SHARED_DIR})
    container["env"] = [*ours, *container.get("env", [])]
    # A failed trial's event and record then carry the last lines of its output, as `kubetune run` shows them.
    container.setdefault("terminationMessagePolicy", "FallbackToLogsOnError")
    container["volumeMounts"] = [*container.get("volumeMounts", []), {"name": SHARED_VOLUME, "mountPath": SHARED_DIR}]
    if not spec.metric_definitions:
        return True  # report() and the metrics file need no capture
    command = container.get("command")
    if not command:
        return False
    container["command"] = ["/bin/sh", "-c", OUTPUT_WRAPPER, WRAPPER_ARGV0, *command]
    return True


def _sidecar_container(spec: HyperParameterTuningJobSpec, sidecar: SidecarConfig) -> dict[str, Any]:
    definitions = [d.model_dump(by_alias=True) for d in spec.metric_definitions]
    container: dict[str, Any] = {
        "name": SIDECAR_NAME,
        "image": sidecar.image,
        "command": ["kubetune", "sidecar"],
        "restartPolicy": "Always",
        "env": [
            {"name": "KUBETUNE_OBJECTIVE", "value": spec.objective.metric_name},
            {"name": "KUBETUNE_METRIC_DEFINITIONS", "value": json.dumps(definitions)},
            {"name": "KUBETUNE_DIR", "value": SHARED_DIR},
            {"name": "KUBETUNE_SIDECAR_PORT", "value": str(sidecar.port)},
        ],
        "ports": [{"name": "kt-metrics", "containerPort": sidecar.port, "protocol": "TCP"}],
        # The kubelet starts the training container only once this passes, so no output and
        # no SIGTERM can come before the sidecar is ready for them.
        "startupProbe": {
            "httpGet": {"path": "/healthz", "port": sidecar.port},
            "periodSeconds": 1,
            "failureThreshold": 60,
        },
        "volumeMounts": [{"name": SHARED_VOLUME, "mountPath": SHARED_DIR}],
        "terminationMessagePolicy": "File",
    }
    if sidecar.image_pull_policy:
        container["imagePullPolicy"] = sidecar.image_pull_policy
    if sidecar.resources:
        container["resources"] = copy.deepcopy(sidecar.resources)
    if sidecar.security_context:
        container["securityContext"] = copy.deepcopy(sidecar.security_context)
    return container
