"""`kubetune.Client`: tuning jobs in a cluster from Python, as SageMaker's tuner does fit, attach, wait and analytics.

    client = kubetune.Client(namespace="team-a")          # kubectl's kubeconfig and context rules
    job = client.submit("manifests/examples/random.yaml")  # a YAML file or text, a resource dict, or a spec dict + name
    status = job.wait()                                    # a line on stderr whenever the counts change
    job.best(), job.trials(), job.analytics()              # the best trial, every trial (best first), a DataFrame
    job.stop()                                             # running trials stop, the job ends as Stopped

The spec is validated here, with every problem named, before anything reaches
the API server; what only the API server can refuse (its CEL rules, RBAC, the
admission policy) comes back as a ClientError with the server's own message.
"""

from __future__ import annotations

import contextlib
import json
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TextIO, cast

import yaml
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from kubetune.api.resource import API_VERSION, GROUP, KIND, PLURAL, VERSION
from kubetune.api.spec import parse_spec
from kubetune.api.status import HyperParameterTuningJobStatus, TrialSummary, TuningJobStatus
from kubetune.results.cluster import PAGE_SIZE, load_tuning_job
from kubetune.results.connection import connect
from kubetune.results.model import TrialRow, TuningResults

ENDED = frozenset({TuningJobStatus.COMPLETED, TuningJobStatus.FAILED, TuningJobStatus.STOPPED})
Progress = Callable[[HyperParameterTuningJobStatus], None]


class ClientError(Exception):
    """A request the cluster refused or could not answer, with what it said and about which tuning job."""


class Client:
    """A namespace of a cluster, reached as kubectl would (--kubeconfig, --context, -n)."""

    def __init__(self, namespace: str | None = None, kubeconfig: str | None = None, context: str | None = None) -> None:
        connection = connect(kubeconfig, context, namespace)
        self.api = connection.api
        self.namespace = connection.namespace

    def submit(self, resource: Mapping[str, Any] | str | Path, name: str | None = None) -> TuningJob:
        """Create a tuning job from a HyperParameterTuningJob (a YAML file, YAML text or a dict) or a bare spec.

        `name` overrides metadata.name (and is required for a bare spec). Raises SpecError naming
        every bad field before anything is sent.
        """
        body = as_resource(resource, name)
        parse_spec(body["spec"])
        try:
            client.CustomObjectsApi(self.api).create_namespaced_custom_object(
                GROUP, VERSION, self.namespace, PLURAL, body
            )
        except ApiException as exc:
            job_name = body["metadata"]["name"]
            if exc.status == 409:
                raise ClientError(
                    f"tuning job {job_name} exists already in namespace {self.namespace}: attach() to it, or delete it"
                ) from None
            raise _error(exc, f"creating tuning job {job_name} in namespace {self.namespace}") from None
        return TuningJob(self, body["metadata"]["name"])

    def attach(self, name: str) -> TuningJob:
        """A tuning job that exists already (ClientError if it does not)."""
        job = TuningJob(self, name)
        job.resource()
        return job


class TuningJob:
    """One tuning job in the cluster; every call reads the cluster afresh (it holds no state of its own)."""

    def __init__(self, owner: Client, name: str) -> None:
        self.client = owner
        self.name = name
        self.namespace = owner.namespace

    def __repr__(self) -> str:
        return f"TuningJob({self.namespace}/{self.name})"

    def resource(self) -> dict[str, Any]:
        """The HyperParameterTuningJob object as the API server has it."""
        try:
            found = client.CustomObjectsApi(self.client.api).get_namespaced_custom_object(
                GROUP, VERSION, self.namespace, PLURAL, self.name
            )
        except ApiException as exc:
            raise _error(exc, f"tuning job {self.name} in namespace {self.namespace}") from None
        return cast(dict[str, Any], found)

    def status(self) -> HyperParameterTuningJobStatus:
        return HyperParameterTuningJobStatus.model_validate(self.resource().get("status") or {})

    def wait(
        self, timeout: float | None = None, poll_seconds: float = 2.0, progress: bool | TextIO | Progress = True
    ) -> HyperParameterTuningJobStatus:
        """Block until the tuning job is Completed, Failed or Stopped, and return its final status.

        progress: True writes a line to stderr whenever the counts or the best change, a stream
        writes them there, a callable gets each new status, False is silent. TimeoutError after
        `timeout` seconds (None: no limit), naming where the job stood.
        """
        report = _progress_callback(progress, self.name)
        deadline = None if timeout is None else time.monotonic() + timeout
        last: HyperParameterTuningJobStatus | None = None
        while True:
            status = self.status()
            if status != last:
                report(status)
                last = status
            if status.hyper_parameter_tuning_job_status in ENDED:
                return status
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(f"tuning job {self.name} did not end within {timeout}s: {describe(status)}")
            time.sleep(poll_seconds)

    def best(self) -> TrialSummary | None:
        """The best trial so far (status.bestTrainingJob), None before any trial yielded an objective."""
        return self.status().best_training_job

    def results(self, page_size: int = PAGE_SIZE) -> TuningResults:
        """Every trial, read from the trial Jobs a page at a time."""
        return load_tuning_job(self.client.api, self.namespace, self.name, page_size)

    def trials(self, page_size: int = PAGE_SIZE) -> list[TrialRow]:
        """Every trial, best first (trials without an objective last)."""
        return self.results(page_size).ranked()

    def analytics(self) -> Any:
        """The trials as a pandas DataFrame (kubetune.results.analytics.dataframe)."""
        from kubetune.results.analytics import dataframe

        return dataframe(self.results())

    def stop(self) -> None:
        """Ask the operator to stop every running trial and end the job as Stopped (spec.stopped: true)."""
        try:
            client.CustomObjectsApi(self.client.api).patch_namespaced_custom_object(
                GROUP, VERSION, self.namespace, PLURAL, self.name, {"spec": {"stopped": True}}
            )
        except ApiException as exc:
            raise _error(exc, f"stopping tuning job {self.name} in namespace {self.namespace}") from None

    def delete(self) -> None:
        """Delete the tuning job; its trial Jobs go with it (owner references)."""
        try:
            client.CustomObjectsApi(self.client.api).delete_namespaced_custom_object(
                GROUP, VERSION, self.namespace, PLURAL, self.name
            )
        except ApiException as exc:
            raise _error(exc, f"deleting tuning job {self.name} in namespace {self.namespace}") from None


def describe(status: HyperParameterTuningJobStatus) -> str:
    """One line: state, progress, running and failed trials, the best."""
    counters = status.training_job_status_counters
    state = status.hyper_parameter_tuning_job_status.value if status.hyper_parameter_tuning_job_status else "Pending"
    parts = [state, f"{status.progress or '0/?'} trials", f"{counters.running} running"]
    if counters.non_retryable_error:
        parts.append(f"{counters.non_retryable_error} failed")
    if status.best_training_job is not None:
        parts.append(f"best {status.best_training_job.final_objective_value:g} ({status.best_training_job.name})")
    reason = status.completion_reason or status.failure_reason
    if reason:
        parts.append(reason)
    return ", ".join(parts)


def _progress_callback(progress: bool | TextIO | Progress, name: str) -> Progress:
    if progress is False:
        return lambda status: None
    if callable(progress):
        return progress
    stream = sys.stderr if progress is True else progress

    def write(status: HyperParameterTuningJobStatus) -> None:
        print(f"{name}: {describe(status)}", file=stream, flush=True)

    return write


def as_resource(resource: Mapping[str, Any] | str | Path, name: str | None) -> dict[str, Any]:
    """A whole HyperParameterTuningJob from what submit() takes: a YAML file's path, YAML text, a resource
    dict or a bare spec dict; `name` overrides metadata.name, and metadata.namespace is dropped (the client's
    namespace is where it goes). ClientError says what is missing or wrong, and in which file."""
    where = "the resource"
    if isinstance(resource, Path) or (
        isinstance(resource, str) and "\n" not in resource and resource.endswith((".yaml", ".yml", ".json"))
    ):
        where = str(resource)
        try:
            resource = Path(resource).read_text(encoding="utf-8")
        except OSError as exc:
            raise ClientError(f"{where}: {exc.strerror}") from None
    if isinstance(resource, str):
        try:
            documents = [d for d in yaml.safe_load_all(resource) if d is not None]
        except yaml.YAMLError as exc:
            raise ClientError(f"{where}: not valid YAML: {exc}") from None
        found = [d for d in documents if isinstance(d, dict) and d.get("kind") == KIND]
        if not found:
            raise ClientError(f"{where}: no {KIND} document found")
        resource = found[0]
    body = dict(resource)
    if "spec" not in body or "kind" not in body:
        body = {"spec": body}  # a bare spec
    if body.get("kind", KIND) != KIND or body.get("apiVersion", API_VERSION) != API_VERSION:
        raise ClientError(f"{where}: must be apiVersion {API_VERSION}, kind {KIND}")
    metadata = dict(body.get("metadata") or {})
    metadata.pop("namespace", None)  # the client's namespace is where it goes
    if name:
        metadata["name"] = name
    if not metadata.get("name"):
        raise ClientError(f"{where}: metadata.name is missing; give submit() a name=")
    return {"apiVersion": API_VERSION, "kind": KIND, "metadata": metadata, "spec": body["spec"]}


def _error(exc: ApiException, doing: str) -> ClientError:
    message = exc.reason or ""
    with contextlib.suppress(ValueError):
        message = json.loads(exc.body or "{}").get("message", message)
    return ClientError(f"{doing}: {exc.status} {message}")
