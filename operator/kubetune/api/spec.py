"""The spec of a HyperParameterTuningJob: SageMaker's HyperParameterTuningJobConfig in camelCase.

These models are the single source of truth for the API: the CRD's OpenAPI
schema is generated from them (`kubetune crd`), and the engine, the local
runner and the operator all parse a spec through `parse_spec`, so a spec that
one accepts the others accept too.
"""

from __future__ import annotations

import math
import re
from enum import StrEnum
from typing import Any, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic.alias_generators import to_camel

from kubetune.api.delivery import env_var_name
from kubetune.errors import SpecError

MAX_TUNABLE_PARAMETERS = 30
"""SageMaker's limit on the number of tunable hyperparameters in one job."""

MAX_CATEGORICAL_VALUES = 30
"""SageMaker's limit on the number of values of one categorical range."""

ParameterValue = str | int | float | bool
"""A categorical or static value, kept with the type the user wrote it with."""


class FieldError(ValueError):
    """A validator's complaint about one field of the model it validates (e.g. a cross-field rule)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


class Model(BaseModel):
    """Shared model settings: camelCase on the wire, snake_case in Python, no unknown fields."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        frozen=True,
        use_enum_values=False,
    )


class Strategy(StrEnum):
    GRID = "Grid"
    RANDOM = "Random"
    BAYESIAN = "Bayesian"
    HYPERBAND = "Hyperband"


class ObjectiveType(StrEnum):
    MAXIMIZE = "Maximize"
    MINIMIZE = "Minimize"


class ScalingType(StrEnum):
    AUTO = "Auto"
    LINEAR = "Linear"
    LOGARITHMIC = "Logarithmic"
    REVERSE_LOGARITHMIC = "ReverseLogarithmic"


class EarlyStoppingType(StrEnum):
    OFF = "Off"
    AUTO = "Auto"


class ConvergenceSetting(StrEnum):
    DISABLED = "Disabled"
    ENABLED = "Enabled"


class HyperbandProposer(StrEnum):
    RANDOM = "Random"
    BAYESIAN = "Bayesian"


class Objective(Model):
    """The metric the tuning job optimizes."""

    metric_name: str = Field(
        min_length=1,
        max_length=255,
        description="Name of the objective metric, as named in metricDefinitions or passed to kubetune.report().",
    )
    type: ObjectiveType = Field(description="Whether to minimize or maximize the objective metric.")


class RetryStrategy(Model):
    """Retries of a trial whose pod failed for a cause other than its training code.

    A non-zero exit of the primary container is the code's own failure and is never
    retried; evictions, preemptions and lost nodes are not failures at all and are
    always run again, without counting here (the trial Job's podFailurePolicy).
    """

    maximum_retry_attempts: int = Field(
        ge=1,
        le=30,
        description="Times a trial is run again after a failure that is not its code's own (1-30).",
    )


class TrialStoppingCondition(Model):
    """Per-trial limits beyond the template's own activeDeadlineSeconds (SageMaker's StoppingCondition)."""

    max_pending_time_in_seconds: int | None = Field(
        default=None,
        ge=1,
        description="A trial whose pod waits longer than this to run (unschedulable, pulling its image, "
        "waiting for quota or admission) is stopped and counted as a retryable error.",
    )


class ResourceLimits(Model):
    """How much the tuning job may spend."""

    max_number_of_training_jobs: int | None = Field(
        default=None,
        ge=1,
        description=(
            "Maximum number of trials the tuning job starts. Required except for Grid, where it"
            " defaults to the size of the grid and, when given, must equal it."
        ),
    )
    max_parallel_training_jobs: int = Field(
        default=1, ge=1, le=1000, description="Maximum number of trials running at the same time."
    )
    max_runtime_in_seconds: int | None = Field(
        default=None,
        ge=1,
        description="Wall-clock limit of the whole tuning job; when reached, running trials are stopped and the job completes.",
    )
    max_failed_training_jobs: int | None = Field(
        default=None,
        ge=0,
        description=(
            "The tuning job fails when more than this many trials have failed. Unset: it fails only"
            " when every trial failed."
        ),
    )


def _check_name(name: str) -> str:
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.\-]*", name):
        raise ValueError(
            f"{name!r} is not a valid hyperparameter name: use letters, digits, '_', '.', '-', starting with a letter or '_'"
        )
    return name


class IntegerParameterRange(Model):
    """An integer hyperparameter searched between two bounds, both included."""

    name: str = Field(min_length=1, max_length=256, description="Hyperparameter name.")
    min_value: int = Field(description="Smallest value, included.")
    max_value: int = Field(description="Largest value, included.")
    scaling_type: ScalingType = Field(
        default=ScalingType.AUTO,
        description=(
            "How values are spread: Linear (every integer equally likely), Logarithmic (log-uniform;"
            " needs minValue > 0), ReverseLogarithmic (not valid for integers), or Auto (Logarithmic"
            " when minValue > 0 and maxValue/minValue >= 100, else Linear)."
        ),
    )

    @model_validator(mode="after")
    def _check(self) -> Self:
        _check_name(self.name)
        if self.min_value >= self.max_value:
            raise ValueError(f"minValue ({self.min_value}) must be less than maxValue ({self.max_value})")
        if self.scaling_type is ScalingType.LOGARITHMIC and self.min_value <= 0:
            raise ValueError("Logarithmic scaling needs minValue > 0")
        if self.scaling_type is ScalingType.REVERSE_LOGARITHMIC:
            raise ValueError("ReverseLogarithmic scaling is only valid for continuous ranges within [0, 1)")
        return self


class ContinuousParameterRange(Model):
    """A real-valued hyperparameter searched between two bounds."""

    name: str = Field(min_length=1, max_length=256, description="Hyperparameter name.")
    min_value: float = Field(description="Smallest value.")
    max_value: float = Field(description="Largest value.")
    scaling_type: ScalingType = Field(
        default=ScalingType.AUTO,
        description=(
            "How values are spread: Linear (uniform), Logarithmic (log-uniform; needs minValue > 0),"
            " ReverseLogarithmic (1 - x log-uniform, crowding toward 1; needs 0 <= minValue and"
            " maxValue < 1), or Auto (Logarithmic when minValue > 0 and maxValue/minValue >= 100,"
            " else Linear)."
        ),
    )

    @model_validator(mode="after")
    def _check(self) -> Self:
        _check_name(self.name)
        if not (math.isfinite(self.min_value) and math.isfinite(self.max_value)):
            raise ValueError("minValue and maxValue must be finite numbers")
        if self.min_value >= self.max_value:
            raise ValueError(f"minValue ({self.min_value}) must be less than maxValue ({self.max_value})")
        if self.scaling_type is ScalingType.LOGARITHMIC and self.min_value <= 0:
            raise ValueError("Logarithmic scaling needs minValue > 0")
        if self.scaling_type is ScalingType.REVERSE_LOGARITHMIC and not (self.min_value >= 0 and self.max_value < 1):
            raise ValueError("ReverseLogarithmic scaling needs 0 <= minValue and maxValue < 1")
        return self


class CategoricalParameterRange(Model):
    """A hyperparameter that takes one of a list of values."""

    name: str = Field(min_length=1, max_length=256, description="Hyperparameter name.")
    values: list[ParameterValue] = Field(
        min_length=1,
        max_length=MAX_CATEGORICAL_VALUES,
        description="The values to choose from; each is passed to the trial with the type it is written with.",
    )

    @model_validator(mode="after")
    def _check(self) -> Self:
        _check_name(self.name)
        keys = [(type(v).__name__, v) for v in self.values]
        if len(set(keys)) != len(keys):
            raise ValueError("values must be distinct")
        return self


class ParameterRanges(Model):
    """The hyperparameters to tune and the ranges to search."""

    integer_parameter_ranges: list[IntegerParameterRange] = Field(
        default_factory=list, description="Integer hyperparameters."
    )
    continuous_parameter_ranges: list[ContinuousParameterRange] = Field(
        default_factory=list, description="Real-valued hyperparameters."
    )
    categorical_parameter_ranges: list[CategoricalParameterRange] = Field(
        default_factory=list, description="Hyperparameters with a list of values."
    )

    def names(self) -> list[str]:
        return [
            *(r.name for r in self.integer_parameter_ranges),
            *(r.name for r in self.continuous_parameter_ranges),
            *(r.name for r in self.categorical_parameter_ranges),
        ]

    @model_validator(mode="after")
    def _check(self) -> Self:
        names = self.names()
        if not names:
            raise ValueError("at least one parameter range is required")
        if len(names) > MAX_TUNABLE_PARAMETERS:
            raise ValueError(f"at most {MAX_TUNABLE_PARAMETERS} tunable hyperparameters are allowed, got {len(names)}")
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"hyperparameter names must be unique; repeated: {', '.join(duplicates)}")
        return self


class HyperbandStrategyConfig(Model):
    """Settings of the Hyperband strategy (asynchronous successive halving)."""

    min_resource: int | None = Field(
        default=None,
        ge=1,
        description="Resource (e.g. epochs) a trial gets before its first rung. Default: maxResource / eta^(number of brackets - 1), at least 1.",
    )
    max_resource: int | None = Field(
        default=None,
        ge=1,
        description=(
            "Resource a trial that is never stopped gets. When absent, taken from a static"
            " hyperparameter named epochs, numepochs, n-epochs, n_epochs or num_epochs."
        ),
    )
    eta: int = Field(default=3, ge=2, le=10, description="Halving rate: at each rung the top 1/eta continue.")
    resource_name: str | None = Field(
        default=None,
        description=(
            "Hyperparameter that tells a trial its resource budget (maxResource). Default: the static"
            " hyperparameter maxResource was inferred from, else 'epochs'."
        ),
    )
    proposer: HyperbandProposer = Field(
        default=HyperbandProposer.RANDOM,
        description="How new configurations are proposed: Random, or Bayesian (model-based, fitted on the highest rung with enough results).",
    )

    @model_validator(mode="after")
    def _check(self) -> Self:
        if self.min_resource is not None and self.max_resource is not None and self.min_resource >= self.max_resource:
            raise ValueError(f"minResource ({self.min_resource}) must be less than maxResource ({self.max_resource})")
        return self


class StrategyConfig(Model):
    """Settings specific to one strategy."""

    hyperband_strategy_config: HyperbandStrategyConfig | None = Field(
        default=None, description="Settings of the Hyperband strategy."
    )


class BestObjectiveNotImproving(Model):
    """Stop when the best objective stops improving."""

    max_number_of_training_jobs_not_improving: int = Field(
        ge=3,
        description="Complete the tuning job after this many consecutive finished trials that did not improve the best objective by at least 1%.",
    )


class ConvergenceDetected(Model):
    """Stop when the search has converged."""

    complete_on_convergence: ConvergenceSetting = Field(
        default=ConvergenceSetting.DISABLED,
        description="Enabled: complete the tuning job when the best objective has converged (see the README).",
    )


class TuningJobCompletionCriteria(Model):
    """Conditions that end the tuning job before its budget is spent."""

    target_objective_metric_value: float | None = Field(
        default=None, description="Complete as soon as a trial's objective reaches this value."
    )
    best_objective_not_improving: BestObjectiveNotImproving | None = Field(
        default=None, description="Complete when the best objective stops improving."
    )
    convergence_detected: ConvergenceDetected | None = Field(
        default=None, description="Complete when the search has converged."
    )


class MetricDefinition(Model):
    """A metric read from the training container's output with a regular expression."""

    name: str = Field(min_length=1, max_length=255, description="Metric name.")
    regex: str = Field(
        min_length=1,
        max_length=500,
        description="Regular expression whose first capture group is the metric's value, matched against each output line.",
    )

    @model_validator(mode="after")
    def _check(self) -> Self:
        try:
            compiled = re.compile(self.regex)
        except re.error as exc:
            raise ValueError(f"regex {self.regex!r} does not compile: {exc}") from None
        if compiled.groups < 1:
            raise ValueError(f"regex {self.regex!r} needs a capture group around the value")
        return self


class TrialTemplate(Model):
    """What each trial's Job is made from: shaped like a CronJob's jobTemplate."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    metadata: dict[str, Any] = Field(
        default_factory=dict, description="Labels and annotations copied onto each trial's Job."
    )
    spec: dict[str, Any] = Field(
        description="A batch/v1 JobSpec; the training container sits at spec.template.spec.containers."
    )

    def containers(self) -> list[dict[str, Any]]:
        pod = self.spec.get("template", {}).get("spec", {})
        containers = pod.get("containers") if isinstance(pod, dict) else None
        return containers if isinstance(containers, list) else []

    @model_validator(mode="after")
    def _check(self) -> Self:
        containers = self.containers()
        if not containers:
            raise ValueError("spec.template.spec.containers must list at least one container")
        for i, container in enumerate(containers):
            if not isinstance(container, dict) or not isinstance(container.get("name"), str):
                raise ValueError(f"spec.template.spec.containers[{i}] needs a name")
        bad = _bad_quantities(self.spec)
        if bad:
            raise ValueError(
                f"{bad[0][0]}: {bad[0][1]!r} is not a Kubernetes quantity (a number with an optional suffix: 500m, 2Gi, 1e3)"
            )
        pod_metadata = self.spec.get("template", {}).get("metadata")
        for where, metadata in (("metadata", self.metadata), ("spec.template.metadata", pod_metadata)):
            if not isinstance(metadata, dict):
                continue
            # Trials live in the tuning job's namespace and belong to it alone: a template that
            # names another namespace or owner would make the operator act where its user cannot.
            if "namespace" in metadata:
                raise ValueError(f"{where}.namespace must not be set: trials always run in the tuning job's namespace")
            if "ownerReferences" in metadata:
                raise ValueError(f"{where}.ownerReferences must not be set: the tuning job owns its trials")
        return self


QUANTITY = re.compile(r"^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$")
"""The API server's own pattern for resource.Quantity: its refusal does not say which field broke it."""


def _bad_quantities(job_spec: dict[str, Any]) -> list[tuple[str, Any]]:
    """(path, value) of every container resource that the API server would refuse to decode."""
    pod = job_spec.get("template", {}).get("spec", {})
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
                        found.append((f"spec.template.spec.{kind}[{i}].resources.{part}.{name}", value))
    return found


class HyperParameterTuningJobSpec(Model):
    """A hyperparameter tuning job: what to tune, how to search, and how each trial runs."""

    strategy: Strategy = Field(
        default=Strategy.BAYESIAN,
        description="Search strategy: Grid, Random, Bayesian or Hyperband.",
    )
    strategy_config: StrategyConfig | None = Field(default=None, description="Strategy-specific settings.")
    objective: Objective = Field(alias="objective", description="The metric to optimize and its direction.")
    resource_limits: ResourceLimits = Field(
        default_factory=ResourceLimits, description="Budget and parallelism limits."
    )
    parameter_ranges: ParameterRanges = Field(description="The hyperparameters to tune.")
    training_job_early_stopping_type: EarlyStoppingType = Field(
        default=EarlyStoppingType.OFF,
        description="Auto stops trials whose objective is worse than the median of earlier trials at the same step; not allowed with Hyperband.",
    )
    tuning_job_completion_criteria: TuningJobCompletionCriteria | None = Field(
        default=None, description="Conditions that end the job before its budget is spent."
    )
    random_seed: int | None = Field(
        default=None,
        ge=0,
        le=2**31 - 1,
        description="Seed that makes suggestions reproducible: the same spec and results give the same trials.",
    )
    metric_definitions: list[MetricDefinition] = Field(
        default_factory=list, description="Metrics read from the training container's output."
    )
    static_hyper_parameters: dict[str, ParameterValue] = Field(
        default_factory=dict, description="Hyperparameters passed unchanged to every trial."
    )
    trial_template: TrialTemplate = Field(description="Template of each trial's Job (a CronJob's jobTemplate).")
    primary_container_name: str | None = Field(
        default=None,
        description="The training container's name, when the pod has several. Default: the first container.",
    )
    retry_strategy: RetryStrategy | None = Field(
        default=None,
        description="How often a trial is run again after a failure that is not its training code's own (SageMaker's RetryStrategy).",
    )
    trial_stopping_condition: TrialStoppingCondition | None = Field(
        default=None, description="Per-trial limits: maxPendingTimeInSeconds."
    )
    stopped: bool = Field(
        default=False, description="Set to true to stop the running trials and end the tuning job as Stopped."
    )

    @model_validator(mode="after")
    def _check(self) -> Self:
        tuned = set(self.parameter_ranges.names())
        clash = sorted(tuned & set(self.static_hyper_parameters))
        if clash:
            raise FieldError("staticHyperParameters", f"repeats tuned hyperparameters: {', '.join(clash)}")
        by_env: dict[str, list[str]] = {}
        for name in [*self.parameter_ranges.names(), *self.static_hyper_parameters]:
            by_env.setdefault(env_var_name(name), []).append(name)
        clashes = [names for names in by_env.values() if len(names) > 1]
        if clashes:
            raise FieldError(
                "staticHyperParameters",
                f"hyperparameters {' and '.join(repr(n) for n in clashes[0])} would share the environment variable"
                f" {env_var_name(clashes[0][0])}; rename one",
            )
        names = [c["name"] for c in self.trial_template.containers()]
        if self.primary_container_name is not None and self.primary_container_name not in names:
            raise FieldError(
                "primaryContainerName",
                f"{self.primary_container_name!r} is not a container of the trial template ({', '.join(names)})",
            )
        metric_names = [m.name for m in self.metric_definitions]
        if len(set(metric_names)) != len(metric_names):
            raise FieldError("metricDefinitions", "names must be unique")
        if self.strategy is Strategy.HYPERBAND and self.training_job_early_stopping_type is EarlyStoppingType.AUTO:
            raise FieldError(
                "trainingJobEarlyStoppingType", "must be Off with the Hyperband strategy, which stops trials itself"
            )
        if (
            self.strategy is not Strategy.HYPERBAND
            and self.strategy_config
            and self.strategy_config.hyperband_strategy_config
        ):
            raise FieldError("strategyConfig.hyperbandStrategyConfig", "is only valid with the Hyperband strategy")
        return self

    @property
    def primary_container(self) -> dict[str, Any]:
        containers = self.trial_template.containers()
        for container in containers:
            if container["name"] == self.primary_container_name:
                return container
        return containers[0]

    def to_wire(self) -> dict[str, Any]:
        """The spec as the API server stores it (camelCase, no unset optional fields)."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


def _field_path(model: type[BaseModel], loc: tuple[int | str, ...]) -> str:
    """Turn a pydantic error location into the path a user wrote, e.g. spec.parameterRanges.integerParameterRanges[0].minValue."""
    parts: list[str] = []
    for item in loc:
        if isinstance(item, int):
            parts.append(f"[{item}]")
        elif item.startswith("function-") or item in {"str", "int", "float", "bool"}:
            continue
        else:
            parts.append(("." if parts else "") + to_camel(item) if "_" in item else ("." if parts else "") + item)
    return "spec." + "".join(parts) if parts else "spec"


def parse_spec(spec: HyperParameterTuningJobSpec | dict[str, Any]) -> HyperParameterTuningJobSpec:
    """Validate a spec, raising SpecError naming the first offending field."""
    if isinstance(spec, HyperParameterTuningJobSpec):
        return spec
    if not isinstance(spec, dict):
        raise SpecError("spec", f"must be a mapping, got {type(spec).__name__}")
    try:
        return HyperParameterTuningJobSpec.model_validate(spec)
    except ValidationError as exc:
        errors = exc.errors()
        first = errors[0]
        path = _field_path(HyperParameterTuningJobSpec, tuple(first["loc"]))
        cause = first.get("ctx", {}).get("error")
        if isinstance(cause, FieldError):
            path = f"{path}.{cause.field}"
        message = first["msg"].removeprefix("Value error, ")
        more = f" (and {len(errors) - 1} more problem{'s' if len(errors) > 2 else ''})" if len(errors) > 1 else ""
        raise SpecError(path, message + more) from None
