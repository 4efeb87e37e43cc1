"""The spec of a HyperParameterTuningJob: SageMaker's HyperParameterTuningJobConfig in camelCase.

These models are the single source of truth for the API: the CRD's OpenAPI
schema is generated from them (`kubetune crd`), and the engine, the local
runner and the operator all parse a spec through `parse_spec`, so a spec that
one accepts the others accept too.
"""

from __future__ import annotations

import difflib
import math
import re
from enum import StrEnum
from typing import Any, Union, get_args, get_origin

from pydantic import BaseModel, Field, ValidationError
from pydantic.alias_generators import to_camel

from kubetune.api.delivery import env_var_name
from kubetune.api.model import Model
from kubetune.api.rules import Rule, RuleViolations
from kubetune.api.template import OPAQUE_TEMPLATE, TrialTemplate
from kubetune.errors import SpecError

MAX_TUNABLE_PARAMETERS = 30
"""SageMaker's limit on the number of tunable hyperparameters in one job."""

MAX_CATEGORICAL_VALUES = 30
"""SageMaker's limit on the number of values of one categorical range."""

MAX_METRIC_DEFINITIONS = 40
"""SageMaker's limit on metric definitions; like the others it also bounds the CEL rules' cost."""

NAME_PATTERN = r"[A-Za-z_][A-Za-z0-9_.-]*"
"""What a hyperparameter name may be: it becomes part of an environment variable's name."""

ParameterValue = str | int | float | bool
"""A categorical or static value, kept with the type the user wrote it with."""


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


def _bad_name(r: Any) -> str | None:
    if re.fullmatch(NAME_PATTERN, r.name):
        return None
    return f"{r.name!r} is not a valid hyperparameter name: use letters, digits, '_', '.', '-', starting with a letter or '_'"


NAME_RULE = Rule(
    "name-pattern",
    "name",
    _bad_name,
    "is not a valid hyperparameter name: use letters, digits, _, . and -, starting with a letter or _",
    cel=f"self.name.matches('^{NAME_PATTERN}$')",
)


def _min_below_max(r: Any) -> str | None:
    if r.min_value < r.max_value:
        return None
    return f"minValue ({r.min_value}) must be less than maxValue ({r.max_value})"


MIN_BELOW_MAX = Rule(
    "min-below-max", "", _min_below_max, "minValue must be less than maxValue", cel="self.minValue < self.maxValue"
)


def _logarithmic_needs_positive(r: Any) -> str | None:
    if r.scaling_type is ScalingType.LOGARITHMIC and r.min_value <= 0:
        return "Logarithmic scaling needs minValue > 0"
    return None


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

    RULES = (
        NAME_RULE,
        MIN_BELOW_MAX,
        Rule(
            "logarithmic-positive",
            "",
            _logarithmic_needs_positive,
            "Logarithmic scaling needs minValue > 0",
            cel="self.scalingType != 'Logarithmic' || self.minValue > 0",
        ),
        Rule(
            "integer-not-reverse-logarithmic",
            "scalingType",
            lambda r: (
                "ReverseLogarithmic scaling is only valid for continuous ranges within [0, 1)"
                if r.scaling_type is ScalingType.REVERSE_LOGARITHMIC
                else None
            ),
            "ReverseLogarithmic scaling is only valid for continuous ranges within [0, 1)",
            cel="self.scalingType != 'ReverseLogarithmic'",
        ),
    )


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

    RULES = (
        NAME_RULE,
        Rule(
            "finite-bounds",
            "",
            lambda r: (
                None
                if math.isfinite(r.min_value) and math.isfinite(r.max_value)
                else "minValue and maxValue must be finite numbers"
            ),
            "minValue and maxValue must be finite numbers",
            no_cel="JSON has no infinite or NaN numbers and the schema's type: number refuses the strings"
            " 'inf' and 'nan' that only pydantic would parse",
        ),
        MIN_BELOW_MAX,
        Rule(
            "logarithmic-positive",
            "",
            _logarithmic_needs_positive,
            "Logarithmic scaling needs minValue > 0",
            cel="self.scalingType != 'Logarithmic' || self.minValue > 0.0",
        ),
        Rule(
            "reverse-logarithmic-bounds",
            "",
            lambda r: (
                "ReverseLogarithmic scaling needs 0 <= minValue and maxValue < 1"
                if r.scaling_type is ScalingType.REVERSE_LOGARITHMIC and not (r.min_value >= 0 and r.max_value < 1)
                else None
            ),
            "ReverseLogarithmic scaling needs 0 <= minValue and maxValue < 1",
            cel="self.scalingType != 'ReverseLogarithmic' || (self.minValue >= 0.0 && self.maxValue < 1.0)",
        ),
    )


class CategoricalParameterRange(Model):
    """A hyperparameter that takes one of a list of values."""

    name: str = Field(min_length=1, max_length=256, description="Hyperparameter name.")
    values: list[ParameterValue] = Field(
        min_length=1,
        max_length=MAX_CATEGORICAL_VALUES,
        description="The values to choose from; each is passed to the trial with the type it is written with.",
    )

    RULES = (
        NAME_RULE,
        Rule(
            "distinct-values",
            "values",
            lambda r: (
                None if len({(type(v).__name__, v) for v in r.values}) == len(r.values) else "values must be distinct"
            ),
            "values must be distinct",
            no_cel="the values may be strings, numbers or booleans, which a structural schema can only leave"
            " untyped, and CEL cannot see an untyped field",
        ),
    )


def _repeated(names: list[str]) -> list[str]:
    return sorted({n for n in names if names.count(n) > 1})


_RANGE_KINDS = ("integerParameterRanges", "continuousParameterRanges", "categoricalParameterRanges")
_CEL_NAMES = "(" + " + ".join(f"(has(self.{k}) ? self.{k}.map(r, r.name) : [])" for k in _RANGE_KINDS) + ")"
_CEL_RANGE_COUNT = "(" + " + ".join(f"(has(self.{k}) ? self.{k}.size() : 0)" for k in _RANGE_KINDS) + ")"


class ParameterRanges(Model):
    """The hyperparameters to tune and the ranges to search."""

    integer_parameter_ranges: list[IntegerParameterRange] = Field(
        default_factory=list, max_length=MAX_TUNABLE_PARAMETERS, description="Integer hyperparameters."
    )
    continuous_parameter_ranges: list[ContinuousParameterRange] = Field(
        default_factory=list, max_length=MAX_TUNABLE_PARAMETERS, description="Real-valued hyperparameters."
    )
    categorical_parameter_ranges: list[CategoricalParameterRange] = Field(
        default_factory=list, max_length=MAX_TUNABLE_PARAMETERS, description="Hyperparameters with a list of values."
    )

    def names(self) -> list[str]:
        return [
            *(r.name for r in self.integer_parameter_ranges),
            *(r.name for r in self.continuous_parameter_ranges),
            *(r.name for r in self.categorical_parameter_ranges),
        ]

    RULES = (
        Rule(
            "at-least-one-range",
            "",
            lambda r: None if r.names() else "at least one parameter range is required",
            "at least one parameter range is required",
            cel=f"{_CEL_RANGE_COUNT} > 0",
        ),
        Rule(
            "at-most-30-parameters",
            "",
            lambda r: (
                None
                if len(r.names()) <= MAX_TUNABLE_PARAMETERS
                else f"at most {MAX_TUNABLE_PARAMETERS} tunable hyperparameters are allowed, got {len(r.names())}"
            ),
            f"at most {MAX_TUNABLE_PARAMETERS} tunable hyperparameters are allowed",
            cel=f"{_CEL_RANGE_COUNT} <= {MAX_TUNABLE_PARAMETERS}",
        ),
        Rule(
            "unique-parameter-names",
            "",
            lambda r: (
                None
                if not (repeated := _repeated(r.names()))
                else f"hyperparameter names must be unique; repeated: {', '.join(repeated)}"
            ),
            "hyperparameter names must be unique",
            cel=f"{_CEL_NAMES}.all(n, {_CEL_NAMES}.exists_one(m, m == n))",
        ),
    )


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

    RULES = (
        Rule(
            "min-resource-below-max",
            "minResource",
            lambda c: (
                f"({c.min_resource}) must be less than maxResource ({c.max_resource})"
                if c.min_resource is not None and c.max_resource is not None and c.min_resource >= c.max_resource
                else None
            ),
            "must be less than maxResource",
            cel="!has(self.minResource) || !has(self.maxResource) || self.minResource < self.maxResource",
        ),
    )


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


def _regex_problem(regex: str) -> str | None:
    try:
        compiled = re.compile(regex)
    except re.error as exc:
        return f"regex {regex!r} does not compile: {exc}"
    return None if compiled.groups >= 1 else f"regex {regex!r} needs a capture group around the value"


class MetricDefinition(Model):
    """A metric read from the training container's output with a regular expression."""

    name: str = Field(min_length=1, max_length=255, description="Metric name.")
    regex: str = Field(
        min_length=1,
        max_length=500,
        description="Regular expression whose first capture group is the metric's value, matched against each output line.",
    )

    RULES = (
        Rule(
            "regex-with-group",
            "regex",
            lambda m: _regex_problem(m.regex),
            "must compile and have a capture group around the value",
            no_cel="CEL can match a regex but not say whether a string is one (nor would RE2 agree with"
            " Python's re, which the collector uses)",
        ),
    )


_OPAQUE_STATIC = (
    "staticHyperParameters' values may be strings, numbers or booleans, so the map is untyped in the schema"
    " and CEL cannot see it"
)


def _env_clash(spec: HyperParameterTuningJobSpec) -> str | None:
    by_env: dict[str, list[str]] = {}
    for name in [*spec.parameter_ranges.names(), *spec.static_hyper_parameters]:
        by_env.setdefault(env_var_name(name), []).append(name)
    clashes = [names for names in by_env.values() if len(names) > 1]
    if not clashes:
        return None
    return (
        f"hyperparameters {' and '.join(repr(n) for n in clashes[0])} would share the environment variable"
        f" {env_var_name(clashes[0][0])}; rename one"
    )


def grid_size(ranges: ParameterRanges) -> int | None:
    """How many points the Grid strategy enumerates; None when a continuous range makes it infinite."""
    if ranges.continuous_parameter_ranges:
        return None
    return math.prod(
        [r.max_value - r.min_value + 1 for r in ranges.integer_parameter_ranges]
        + [len(r.values) for r in ranges.categorical_parameter_ranges]
    )


def _grid_budget_problem(spec: HyperParameterTuningJobSpec) -> str | None:
    budget = spec.resource_limits.max_number_of_training_jobs
    size = grid_size(spec.parameter_ranges)
    if spec.strategy is not Strategy.GRID or budget is None or size is None or budget == size:
        return None
    return f"must equal the number of grid points ({size}) with the Grid strategy, or be left out"


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
        default_factory=list,
        max_length=MAX_METRIC_DEFINITIONS,
        description="Metrics read from the training container's output.",
    )
    static_hyper_parameters: dict[str, ParameterValue] = Field(
        default_factory=dict, description="Hyperparameters passed unchanged to every trial."
    )
    trial_template: TrialTemplate = Field(
        description="Template of each trial's Job (a CronJob's jobTemplate), or of its JobSet (kind: JobSet)."
    )
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

    RULES = (
        Rule(
            "static-not-tuned",
            "staticHyperParameters",
            lambda s: (
                f"repeats tuned hyperparameters: {', '.join(clash)}"
                if (clash := sorted(set(s.parameter_ranges.names()) & set(s.static_hyper_parameters)))
                else None
            ),
            "repeats a tuned hyperparameter",
            no_cel=_OPAQUE_STATIC,
        ),
        Rule(
            "distinct-environment-variables",
            "staticHyperParameters",
            lambda s: _env_clash(s),
            "two hyperparameters would share an environment variable",
            no_cel="needs a regex replacement to map names to variables, which Kubernetes CEL lacks; " + _OPAQUE_STATIC,
        ),
        Rule(
            "primary-container-exists",
            "primaryContainerName",
            lambda s: (
                None
                if s.primary_container_name is None
                or s.primary_container_name in (names := [c["name"] for c in s.trial_template.containers()])
                else f"{s.primary_container_name!r} is not a container of the trial template ({', '.join(names)})"
            ),
            "is not a container of the trial template",
            no_cel=OPAQUE_TEMPLATE,
        ),
        Rule(
            "multi-pod-output-captured",
            "trialTemplate.spec.template.spec.containers",
            lambda s: _uncaptured_multi_pod(s),
            "metricDefinitions need the primary container's command in a trial of several pods",
            no_cel=OPAQUE_TEMPLATE,
        ),
        Rule(
            "unique-metric-names",
            "metricDefinitions",
            lambda s: (
                None
                if not (repeated := _repeated([m.name for m in s.metric_definitions]))
                else f"names must be unique; repeated: {', '.join(repeated)}"
            ),
            "names must be unique",
            cel="!has(self.metricDefinitions) || self.metricDefinitions.all(m,"
            " self.metricDefinitions.exists_one(n, n.name == m.name))",
        ),
        Rule(
            "hyperband-without-auto",
            "trainingJobEarlyStoppingType",
            lambda s: (
                "must be Off with the Hyperband strategy, which stops trials itself"
                if s.strategy is Strategy.HYPERBAND and s.training_job_early_stopping_type is EarlyStoppingType.AUTO
                else None
            ),
            "must be Off with the Hyperband strategy, which stops trials itself",
            cel="!(self.strategy == 'Hyperband' && self.trainingJobEarlyStoppingType == 'Auto')",
        ),
        Rule(
            "hyperband-config-only-with-hyperband",
            "strategyConfig.hyperbandStrategyConfig",
            lambda s: (
                "is only valid with the Hyperband strategy"
                if s.strategy is not Strategy.HYPERBAND
                and s.strategy_config
                and s.strategy_config.hyperband_strategy_config
                else None
            ),
            "is only valid with the Hyperband strategy",
            cel="self.strategy == 'Hyperband' || !has(self.strategyConfig)"
            " || !has(self.strategyConfig.hyperbandStrategyConfig)",
        ),
        Rule(
            "grid-without-continuous",
            "parameterRanges.continuousParameterRanges",
            lambda s: (
                "the Grid strategy cannot enumerate continuous hyperparameters ("
                + ", ".join(r.name for r in s.parameter_ranges.continuous_parameter_ranges)
                + "); use integer or categorical ranges"
                if s.strategy is Strategy.GRID and s.parameter_ranges.continuous_parameter_ranges
                else None
            ),
            "the Grid strategy cannot enumerate continuous hyperparameters; use integer or categorical ranges",
            cel="self.strategy != 'Grid' || !has(self.parameterRanges.continuousParameterRanges)"
            " || self.parameterRanges.continuousParameterRanges.size() == 0",
        ),
        Rule(
            "budget-required",
            "resourceLimits.maxNumberOfTrainingJobs",
            lambda s: (
                f"is required with the {s.strategy.value} strategy"
                if s.strategy is not Strategy.GRID and s.resource_limits.max_number_of_training_jobs is None
                else None
            ),
            "is required with every strategy but Grid",
            cel="self.strategy == 'Grid' || (has(self.resourceLimits)"
            " && has(self.resourceLimits.maxNumberOfTrainingJobs))",
        ),
        Rule(
            "grid-budget",
            "resourceLimits.maxNumberOfTrainingJobs",
            lambda s: _grid_budget_problem(s),
            "must equal the number of grid points with the Grid strategy, or be left out",
            no_cel="the grid's size is a product over the ranges, and Kubernetes CEL has no fold or product",
        ),
    )

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


def _uncaptured_multi_pod(spec: HyperParameterTuningJobSpec) -> tuple[str, str] | None:
    """A trial of several pods whose primary output metricDefinitions could not read.

    With one pod, a container without a command still runs (the operator warns
    OutputNotCaptured: the trial may report through kubetune.report()). A trial
    of several pods holds several nodes, so the same gap is refused before any
    of them is taken: the output is captured by wrapping the command, and an
    image's ENTRYPOINT cannot be wrapped.
    """
    template = spec.trial_template
    if not (spec.metric_definitions and template.multi_pod) or not template.containers():
        return None
    primary = spec.primary_container
    if primary.get("command"):
        return None
    position = next(i for i, c in enumerate(template.containers()) if c is primary)
    return (
        f"trialTemplate.{template.primary_job_spec()[0]}.template.spec.containers",
        f"[{position}] ({primary.get('name')}) has no command: metricDefinitions read the primary pod's output,"
        " which kubetune captures by wrapping the command (an image's ENTRYPOINT cannot be wrapped), and a trial"
        f" of {template.pods_per_trial} pods must not hold its nodes"
        " without metrics; set command, or report with kubetune.report() and drop metricDefinitions",
    )


UNION_MEMBERS = {"str", "int", "float", "bool"}
"""Location parts pydantic adds for each member of ParameterValue: the user never wrote them."""


def parse_spec(spec: HyperParameterTuningJobSpec | dict[str, Any]) -> HyperParameterTuningJobSpec:
    """Validate a spec, raising one SpecError that names every offending field.

    All problems at once, because a user who fixes the first only to meet the
    next (or the typo hidden behind "and 1 more problem") gives up; each path is
    the one the user wrote, with the parameter's name where it sits in a list.
    """
    if isinstance(spec, HyperParameterTuningJobSpec):
        return spec
    if not isinstance(spec, dict):
        raise SpecError("spec", f"must be a mapping, got {type(spec).__name__}")
    try:
        return HyperParameterTuningJobSpec.model_validate(spec)
    except ValidationError as exc:
        problems: list[tuple[str, str]] = []
        for error in exc.errors():
            for problem in _problems(spec, error):
                if problem not in problems:
                    problems.append(problem)
        raise SpecError.of(problems) from None


def _problems(spec: dict[str, Any], error: Any) -> list[tuple[str, str]]:
    """The (path, message) pairs one pydantic error stands for (a rule error holds several)."""
    loc = tuple(error["loc"])
    cause = error.get("ctx", {}).get("error")
    if isinstance(cause, RuleViolations):
        return [(_field_path(spec, loc, field), message) for field, message in cause.problems]
    message = error["msg"].removeprefix("Value error, ")
    if any(isinstance(part, str) and part in UNION_MEMBERS for part in loc):
        message = "must be a string, a number or a boolean"
    elif error["type"] == "enum" and isinstance(error.get("input"), bool):
        message = _boolean_hint(error["input"], error.get("ctx", {}).get("expected", ""))
    elif error["type"] == "extra_forbidden":
        message = _unknown_field(loc)
    return [(_field_path(spec, loc), message)]


def _boolean_hint(value: bool, expected: str) -> str:
    """YAML reads unquoted Off, No, On and Yes as booleans: say so, since the user typed a word, not false."""
    choices = re.findall(r"'([^']*)'", expected)
    for choice in choices:
        if choice.lower() in (("off", "no", "false") if not value else ("on", "yes", "true")):
            return f'write "{choice}" in quotes: unquoted {choice} is YAML for {str(value).lower()}'
    quoted = " or ".join(f'"{c}"' for c in choices)
    return (
        f"got the boolean {str(value).lower()}, which is what YAML makes of an unquoted yes, no, on or off;"
        f" write {quoted} in quotes"
    )


def _unknown_field(loc: tuple[int | str, ...]) -> str:
    """An unknown field is most often a typo: name the field that was probably meant."""
    model = _model_at(loc[:-1])
    if model is None:
        return "unknown field"
    known = [info.alias or name for name, info in model.model_fields.items()]
    close = difflib.get_close_matches(str(loc[-1]), known, n=1)
    return "unknown field; " + (f"did you mean {close[0]}?" if close else "known fields here: " + ", ".join(known))


def _model_at(loc: tuple[int | str, ...]) -> type[BaseModel] | None:
    """The model class that validates the object at this location of a spec."""
    model: type[BaseModel] = HyperParameterTuningJobSpec
    for part in loc:
        if isinstance(part, int):
            continue
        info = next((i for n, i in model.model_fields.items() if part in (n, i.alias)), None)
        found = _model_in(info.annotation) if info is not None else None
        if found is None:
            return None
        model = found
    return model


def _model_in(annotation: Any) -> type[BaseModel] | None:
    """The model inside an annotation such as `list[X]` or `X | None`."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if get_origin(annotation) in (list, Union) or type(annotation).__name__ == "UnionType":
        for arg in get_args(annotation):
            found = _model_in(arg)
            if found is not None:
                return found
    return None


def _field_path(spec: Any, loc: tuple[int | str, ...], relative: str = "") -> str:
    """The path a user wrote, e.g. spec.parameterRanges.continuousParameterRanges[1] (weight_decay).minValue.

    An index into a list of named things (ranges, metric definitions) is followed by the
    item's name: "[1]" alone sends the user counting.
    """
    path = "spec"
    node = spec
    for part in loc:
        if isinstance(part, int):
            node = node[part] if isinstance(node, list) and 0 <= part < len(node) else None
            name = node.get("name") if isinstance(node, dict) else None
            path += f"[{part}]" + (f" ({name})" if isinstance(name, str) and name else "")
        elif part in UNION_MEMBERS or part.startswith("function-"):
            continue
        else:
            # pydantic names fields by alias here, but map keys (a static hyperparameter) as written
            key = part if isinstance(node, dict) and part in node else to_camel(part) if "_" in part else part
            node = node.get(key) if isinstance(node, dict) else None
            path += f".{key}"
    return f"{path}.{relative}" if relative else path
