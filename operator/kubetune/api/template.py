"""The trial template: what each trial's Job, or JobSet, is made from.

A trial is one of two kinds of object:

- a batch/v1 Job (the default), one pod or an Indexed Job of several
  (torchrun-style: every pod a rank, told its completion index);
- a JobSet (jobset.x-k8s.io/v1alpha2, SIG Apps' API for multi-job training):
  several replicated Jobs, each of them Indexed by default.

Either way one pod is the primary, whose metrics and output count: completion
index 0 of a Job (or `primaryCompletionIndex`), and in a JobSet that index of
job 0 of the first replicated Job (or `primaryReplicatedJob`). These readings
of a template are written once here, for the spec's rules, the operator's
manifests and the local runner alike.
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Any

from pydantic import ConfigDict, Field

from kubetune.api.model import Model
from kubetune.api.rules import Rule

QUEUE_LABEL = "kueue.x-k8s.io/queue-name"
"""Kueue's label for the LocalQueue a Job is submitted to; on trialTemplate.metadata it queues every trial."""

OPAQUE_TEMPLATE = (
    "the trial template is a free-form JobSpec or JobSetSpec (x-kubernetes-preserve-unknown-fields), whose fields"
    " CEL cannot see; the operator's server-side dry run of the first trial checks the rest"
)


class TrialKind(StrEnum):
    """The kind of object each trial is."""

    JOB = "Job"
    JOBSET = "JobSet"


def _forbidden_metadata(rule_id: str, key: str, why: str) -> Rule:
    """A rule refusing `key` in any metadata of a trial template (its object's, its Jobs', its pods')."""
    return Rule(
        rule_id,
        "",
        lambda t: (
            "; ".join(f"{where}.{key} must not be set: {why}" for where, metadata in t.metadatas() if key in metadata)
            or None
        ),
        f"metadata.{key} must not be set",
        no_cel=OPAQUE_TEMPLATE + "; the chart's admission policy refuses it",
    )


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _count(job_spec: dict[str, Any], key: str) -> int:
    """parallelism, completions or replicas as written (1 when absent or not a number: the dry run names a bad one)."""
    value = job_spec.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) else 1


class TrialTemplate(Model):
    """What each trial is made from: shaped like a CronJob's jobTemplate, or a JobSet's."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    kind: TrialKind = Field(
        default=TrialKind.JOB,
        description="What each trial is: a batch/v1 Job (default), or a JobSet (jobset.x-k8s.io/v1alpha2,"
        " which needs JobSet's controller in the cluster).",
    )
    metadata: dict[str, Any] = Field(
        default_factory=dict, description="Labels and annotations copied onto each trial's Job or JobSet."
    )
    spec: dict[str, Any] = Field(
        description="A batch/v1 JobSpec (the training container sits at spec.template.spec.containers), or with"
        " kind JobSet a JobSetSpec (at spec.replicatedJobs[].template.spec.template.spec.containers)."
    )
    primary_replicated_job: str | None = Field(
        default=None,
        description="With kind JobSet, the replicated Job whose job 0 holds the primary pod. Default: the first.",
    )
    primary_completion_index: int | None = Field(
        default=None,
        ge=0,
        description="In a trial of several pods (an Indexed Job, completionMode: Indexed, or a JobSet's"
        " replicated Job), the completion index of the primary pod, whose metrics and output count."
        " Default 0 (rank 0).",
    )

    # -- what the template says ---------------------------------------------------------------

    @property
    def jobset(self) -> bool:
        return self.kind is TrialKind.JOBSET

    def replicated_jobs(self) -> list[dict[str, Any]]:
        """A JobSet template's replicated Jobs as written, one per position ({} for one that is not a mapping:
        the shape rule names it), so a position here is the position in the spec; none for a Job."""
        found = self.spec.get("replicatedJobs") if self.jobset else None
        return [_mapping(r) for r in found] if isinstance(found, list) else []

    def job_specs(self) -> list[tuple[str, dict[str, Any]]]:
        """(where, JobSpec) of each Job a trial runs: the template's own, or each replicated Job's."""
        if not self.jobset:
            return [("spec", self.spec)]
        return [
            (f"spec.replicatedJobs[{i}].template.spec", _mapping(r.get("template")).get("spec") or {})
            for i, r in enumerate(self.replicated_jobs())
        ]

    @property
    def primary_position(self) -> int:
        """Which replicated Job holds the primary pod (0 for a Job)."""
        if self.primary_replicated_job is None:
            return 0
        names = [r.get("name") for r in self.replicated_jobs()]
        return names.index(self.primary_replicated_job) if self.primary_replicated_job in names else 0

    @property
    def primary_replicated_job_name(self) -> str | None:
        """The name of the replicated Job that holds the primary pod: None for a Job."""
        jobs = self.replicated_jobs()
        if not jobs:
            return None
        name = jobs[min(self.primary_position, len(jobs) - 1)].get("name")
        return name if isinstance(name, str) else None

    def primary_job_spec(self) -> tuple[str, dict[str, Any]]:
        """(where, JobSpec) of the Job that runs the primary pod."""
        specs = self.job_specs()
        if not specs:
            return "spec.replicatedJobs[0].template.spec", {}
        return specs[min(self.primary_position, len(specs) - 1)]

    def containers(self) -> list[dict[str, Any]]:
        """The primary pod's containers as written."""
        return _containers(self.primary_job_spec()[1])

    def count(self, key: str) -> int:
        """The primary Job's parallelism or completions as written."""
        return _count(self.primary_job_spec()[1], key)

    @property
    def indexed(self) -> bool:
        """Whether the primary pod's Job is Indexed (JobSet makes a replicated Job Indexed unless told not to)."""
        mode = self.primary_job_spec()[1].get("completionMode")
        return mode == "Indexed" or (self.jobset and mode is None)

    @property
    def multi_pod(self) -> bool:
        """Whether a trial runs several pods (a Job's parallelism or completions above 1, or a JobSet's)."""
        return self.pods_per_trial > 1

    @property
    def pods_per_trial(self) -> int:
        if not self.jobset:
            return max(self.count("parallelism"), self.count("completions"))
        return sum(
            _count(r, "replicas") * max(_count(js, "parallelism"), _count(js, "completions"))
            for r, (_, js) in zip(self.replicated_jobs(), self.job_specs(), strict=True)
        )

    @property
    def queue(self) -> str | None:
        """The Kueue LocalQueue the trials are submitted to (the kueue.x-k8s.io/queue-name label), if any."""
        labels = self.metadata.get("labels")
        value = labels.get(QUEUE_LABEL) if isinstance(labels, dict) else None
        return str(value) if value else None

    @property
    def primary_index(self) -> int | None:
        """The completion index of the primary pod: None unless its Job is Indexed."""
        if not self.indexed:
            return None
        return self.primary_completion_index or 0

    def metadatas(self) -> list[tuple[str, dict[str, Any]]]:
        """Every metadata of the template (its object's, each Job's, each pod's), with where it sits."""
        found: list[tuple[str, Any]] = [("metadata", self.metadata)]
        for i, rj in enumerate(self.spec.get("replicatedJobs") or [] if self.jobset else []):
            found.append(
                (f"spec.replicatedJobs[{i}].template.metadata", _mapping(_mapping(rj).get("template")).get("metadata"))
            )
        for where, job_spec in self.job_specs():
            found.append((f"{where}.template.metadata", _mapping(job_spec.get("template")).get("metadata")))
        return [(where, m) for where, m in found if isinstance(m, dict)]

    RULES = (
        Rule(
            "jobset-shape",
            "spec",
            lambda t: _shape_problem(t),
            "must be a JobSpec for kind Job, a JobSetSpec (replicatedJobs) for kind JobSet",
            no_cel=OPAQUE_TEMPLATE,
        ),
        Rule(
            "containers-listed",
            "",
            lambda t: (
                "; ".join(
                    f"{where}.template.spec.containers must list at least one container"
                    for where, job_spec in t.job_specs()
                    if not _containers(job_spec)
                )
                or None
            ),
            "spec.template.spec.containers must list at least one container",
            no_cel=OPAQUE_TEMPLATE,
        ),
        Rule(
            "containers-named",
            "",
            lambda t: next(
                (
                    f"{where}.template.spec.containers[{i}] needs a name"
                    for where, job_spec in t.job_specs()
                    for i, c in enumerate(_containers(job_spec))
                    if not isinstance(c, dict) or not isinstance(c.get("name"), str)
                ),
                None,
            ),
            "every container needs a name",
            no_cel=OPAQUE_TEMPLATE,
        ),
        Rule(
            "quantities",
            "",
            lambda t: (
                "; ".join(
                    f"{path}: {value!r} is not a Kubernetes quantity (a number with an optional suffix: 500m, 2Gi, 1e3)"
                    for where, job_spec in t.job_specs()
                    for path, value in _bad_quantities(job_spec, where)
                )
                or None
            ),
            "container resources must be Kubernetes quantities",
            no_cel=OPAQUE_TEMPLATE,
        ),
        # Trials live in the tuning job's namespace and belong to it alone: a template that
        # names another namespace or owner would make the operator act where its user cannot.
        _forbidden_metadata("no-namespace", "namespace", "trials always run in the tuning job's namespace"),
        _forbidden_metadata("no-owner-references", "ownerReferences", "the tuning job owns its trials"),
        # Several pods per trial: kubetune reads the metrics of one of them, the primary,
        # and only an Indexed Job says which pod is which (its completion index).
        Rule(
            "multi-pod-indexed",
            "",
            lambda t: _indexed_problem(t),
            "spec.completionMode must be Indexed when parallelism or completions is above 1",
            no_cel=OPAQUE_TEMPLATE,
        ),
        Rule(
            "indexed-completions",
            "",
            lambda t: (
                (
                    f"{t.primary_job_spec()[0]}.completions",
                    "is required with completionMode Indexed: it is the number of pods (ranks) of each trial",
                )
                if t.indexed and "completions" not in t.primary_job_spec()[1] and not t.jobset
                else None
            ),
            "spec.completions is required with completionMode Indexed",
            no_cel=OPAQUE_TEMPLATE,
        ),
        Rule(
            "primary-replicated-job",
            "primaryReplicatedJob",
            lambda t: _primary_replicated_job_problem(t),
            "must name one of the JobSet's replicatedJobs, and only with kind JobSet",
            cel="!has(self.primaryReplicatedJob) || (has(self.kind) && self.kind == 'JobSet')",
        ),
        Rule(
            "primary-index-in-range",
            "primaryCompletionIndex",
            lambda t: _primary_index_problem(t),
            "must be a completion index of the trial's Indexed Job (0 to completions - 1)",
            no_cel=OPAQUE_TEMPLATE,
        ),
    )


def _containers(job_spec: dict[str, Any]) -> list[dict[str, Any]]:
    pod = _mapping(_mapping(job_spec.get("template")).get("spec"))
    containers = pod.get("containers")
    return containers if isinstance(containers, list) else []


def trial_container(pod: dict[str, Any], primary_name: str) -> dict[str, Any] | None:
    """The container of a pod that runs the training: the one named like the primary container, else the first.

    In a JobSet each replicated Job has its own pod template, whose containers
    may be named differently from the primary pod's; each still gets the
    hyperparameters.
    """
    containers = [c for c in pod.get("containers") or [] if isinstance(c, dict)]
    return next((c for c in containers if c.get("name") == primary_name), containers[0] if containers else None)


def _shape_problem(template: TrialTemplate) -> str | None:
    """A JobSet's spec in a Job template or the other way round: the careless copy-paste, named at once."""
    if not template.jobset:
        if "replicatedJobs" in template.spec:
            return "has replicatedJobs, a JobSetSpec's field: set spec.trialTemplate.kind to JobSet"
        return None
    jobs = template.spec.get("replicatedJobs")
    if not isinstance(jobs, list) or not jobs:
        return (
            "replicatedJobs must list at least one replicated Job: with kind JobSet, spec is a JobSetSpec,"
            " and job 0 of the first replicated Job holds the primary pod"
        )
    problems = []
    for i, rj in enumerate(jobs):
        if not isinstance(rj, dict) or not isinstance(rj.get("name"), str) or not rj.get("name"):
            problems.append(f"replicatedJobs[{i}] needs a name (the primary pod is found by it)")
        elif not isinstance(_mapping(rj.get("template")).get("spec"), dict):
            problems.append(f"replicatedJobs[{i}].template.spec must be a JobSpec")
    names = [rj.get("name") for rj in jobs if isinstance(rj, dict)]
    repeated = sorted({n for n in names if isinstance(n, str) and names.count(n) > 1})
    if repeated:
        problems.append(f"replicatedJobs names must be unique; repeated: {', '.join(repeated)}")
    if "template" in template.spec:
        problems.append("has template, a JobSpec's field: with kind JobSet the pods are in replicatedJobs[].template")
    return "; ".join(problems) or None


def _indexed_problem(template: TrialTemplate) -> tuple[str, str] | None:
    """The primary's Job runs several pods but no completion index tells which one is the primary."""
    where, job_spec = template.primary_job_spec()
    pods = max(_count(job_spec, "parallelism"), _count(job_spec, "completions"))
    if pods <= 1 or template.indexed:
        return None
    return (
        f"{where}.completionMode",
        f"must be Indexed when parallelism or completions is above 1 (parallelism={_count(job_spec, 'parallelism')},"
        f" completions={_count(job_spec, 'completions')}): a trial's metrics come from its primary pod, which only"
        " a completion index identifies",
    )


def _primary_replicated_job_problem(template: TrialTemplate) -> str | None:
    name = template.primary_replicated_job
    if name is None:
        return None
    if not template.jobset:
        return "only applies with kind JobSet: set spec.trialTemplate.kind to JobSet"
    names = [r.get("name") for r in template.replicated_jobs() if isinstance(r.get("name"), str)]
    if name not in names:
        return f"{name!r} is not one of the JobSet's replicatedJobs ({', '.join(map(str, names)) or 'none'})"
    return None


def _primary_index_problem(template: TrialTemplate) -> str | None:
    index = template.primary_completion_index
    if index is None:
        return None
    where, _ = template.primary_job_spec()
    if not template.indexed:
        return f"only applies to an Indexed Job: set spec.trialTemplate.{where}.completionMode to Indexed"
    completions = template.count("completions")
    if index >= completions:
        return f"is {index}, outside the completion indexes 0 to {completions - 1} of spec.trialTemplate.{where}.completions"
    return None


QUANTITY = re.compile(r"^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$")
"""The API server's own pattern for resource.Quantity: its refusal does not say which field broke it."""


def _bad_quantities(job_spec: dict[str, Any], where: str = "spec") -> list[tuple[str, Any]]:
    """(path, value) of every container resource that the API server would refuse to decode."""
    pod = _mapping(job_spec.get("template")).get("spec", {})
    found: list[tuple[str, Any]] = []
    if not isinstance(pod, dict):
        return found
    for kind in ("initContainers", "containers"):
        containers = pod.get(kind)
        for i, container in enumerate(containers if isinstance(containers, list) else []):
            resources = container.get("resources") if isinstance(container, dict) else None
            for part in ("requests", "limits"):
                values = resources.get(part) if isinstance(resources, dict) else None
                for name, value in (values or {}).items() if isinstance(values, dict) else ():
                    ok = (isinstance(value, int | float) and not isinstance(value, bool)) or (
                        isinstance(value, str) and QUANTITY.match(value)
                    )
                    if not ok:
                        found.append((f"{where}.template.spec.{kind}[{i}].resources.{part}.{name}", value))
    return found
