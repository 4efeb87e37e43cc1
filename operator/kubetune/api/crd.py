"""Generate the CustomResourceDefinition from the pydantic models (`kubetune crd`).

The API server wants a *structural* OpenAPI v3 schema: every node typed, no
$ref, nullable instead of anyOf-with-null. pydantic emits JSON Schema; this
module rewrites one into the other, so the models stay the one source of truth
and `kubectl explain` shows the same descriptions the code carries.
"""

from __future__ import annotations

from typing import Any, get_args

import yaml
from pydantic import BaseModel

from kubetune.api.resource import GROUP, KIND, PLURAL, SHORT_NAME, SINGULAR, VERSION
from kubetune.api.rules import Rule
from kubetune.api.spec import HyperParameterTuningJobSpec
from kubetune.api.status import HyperParameterTuningJobStatus

SCALAR_TYPES = {"string", "integer", "number", "boolean"}
DROPPED_KEYS = {"title", "discriminator"}

PRINTER_COLUMNS = [
    {"name": "Strategy", "type": "string", "jsonPath": ".spec.strategy"},
    {
        "name": "Metric",
        "type": "string",
        "jsonPath": ".spec.objective.metricName",
        "description": "The objective metric.",
    },
    {"name": "Status", "type": "string", "jsonPath": ".status.hyperParameterTuningJobStatus"},
    {"name": "Trials", "type": "string", "jsonPath": ".status.progress", "description": "Ended/total trials."},
    {
        "name": "Running",
        "type": "integer",
        "jsonPath": ".status.trainingJobStatusCounters.running",
        "description": "Trials running now (pending ones not counted).",
    },
    {
        "name": "Failed",
        "type": "integer",
        "jsonPath": ".status.trainingJobStatusCounters.nonRetryableError",
        "description": "Trials that failed.",
    },
    {
        "name": "Best",
        "type": "string",
        "jsonPath": ".status.bestObjectiveValue",
        "description": "Objective value of the best trial so far, to 4 significant digits.",
    },
    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
    {
        "name": "Reason",
        "type": "string",
        "jsonPath": ".status.completionReason",
        "description": "Why the tuning job completed.",
        "priority": 1,
    },
]


def structural_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The model's JSON schema rewritten as a Kubernetes structural schema, with the models' CEL rules."""
    raw = model.model_json_schema(by_alias=True, mode="validation")
    defs = raw.pop("$defs", {})
    models = {m.__name__: m for m in models_of(model)}
    defs = {name: _with_rules(d, models[name]) if name in models else d for name, d in defs.items()}
    return _convert(_with_rules(raw, model), defs)


def models_of(model: type[BaseModel]) -> list[type[BaseModel]]:
    """The model and every model its fields hold, however nested (lists, optionals, maps)."""
    found: list[type[BaseModel]] = []

    def visit(annotation: Any) -> None:
        if isinstance(annotation, type) and issubclass(annotation, BaseModel) and annotation not in found:
            found.append(annotation)
            for info in annotation.model_fields.values():
                visit(info.annotation)
        for arg in get_args(annotation):
            visit(arg)

    visit(model)
    return found


def cel_validations(model: type[BaseModel]) -> list[dict[str, Any]]:
    """The model's rules that CEL expresses, as x-kubernetes-validations entries.

    A rule on a named thing (a parameter range) says the name in its message, as
    `kubetune validate` does in its path: the API server's path only has the index.
    """
    rules: tuple[Rule, ...] = getattr(model, "RULES", ())
    named = "name" in model.model_fields
    out: list[dict[str, Any]] = []
    for rule in rules:
        if rule.cel is None:
            continue
        entry: dict[str, Any] = {"rule": rule.cel, "message": rule.message}
        if named:
            entry["messageExpression"] = f"self.name + ': ' + {_cel_string(rule.message)}"
        if rule.field:
            entry["fieldPath"] = "." + rule.field
        out.append(entry)
    return out


def _cel_string(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _with_rules(node: dict[str, Any], model: type[BaseModel]) -> dict[str, Any]:
    validations = cel_validations(model)
    return {**node, "x-kubernetes-validations": validations} if validations else node


def _convert(node: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    if "$ref" in node:
        target = defs[node["$ref"].split("/")[-1]]
        merged = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
        return _convert(merged, defs)
    options = node.get("anyOf")
    if options is not None:
        return _convert_union(node, options, defs)
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in DROPPED_KEYS:
            continue
        if key == "default" and value is None:
            continue
        if key == "properties":
            out["properties"] = {name: _convert(sub, defs) for name, sub in value.items()}
        elif key == "items":
            out["items"] = _convert(value, defs)
        elif key == "additionalProperties":
            if value is True or value == {}:
                out["x-kubernetes-preserve-unknown-fields"] = True
            elif value is not False:
                out["additionalProperties"] = _convert(value, defs)
        elif key == "required":
            out["required"] = list(value)
        else:
            out[key] = value
    if out.get("type") == "object" and "properties" not in out and "additionalProperties" not in out:
        out["x-kubernetes-preserve-unknown-fields"] = True
    if "enum" in out and "type" not in out:
        out["type"] = "string"
    return out


def _convert_union(node: dict[str, Any], options: list[dict[str, Any]], defs: dict[str, Any]) -> dict[str, Any]:
    rest = {k: v for k, v in node.items() if k not in {"anyOf", *DROPPED_KEYS}}
    if rest.get("default", 0) is None:
        rest.pop("default")
    non_null = [o for o in options if o.get("type") != "null"]
    nullable = len(non_null) < len(options)
    if len(non_null) == 1:
        converted = _convert({**non_null[0], **rest}, defs)
        if nullable:
            converted["nullable"] = True
        return converted
    if all(o.get("type") in SCALAR_TYPES for o in non_null):
        # A scalar of several types (a categorical value): structural schemas cannot say
        # "string or number", so the node is left open and the operator validates it.
        described = {k: v for k, v in rest.items() if k == "description"}
        return {**described, "x-kubernetes-preserve-unknown-fields": True}
    raise ValueError(f"cannot express union {options!r} in a structural schema")


def crd() -> dict[str, Any]:
    spec_schema = structural_schema(HyperParameterTuningJobSpec)
    status_schema = structural_schema(HyperParameterTuningJobStatus)
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{PLURAL}.{GROUP}"},
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": KIND,
                "listKind": f"{KIND}List",
                "plural": PLURAL,
                "singular": SINGULAR,
                "shortNames": [SHORT_NAME],
                "categories": ["all", "kubetune"],
            },
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": PRINTER_COLUMNS,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "description": "A hyperparameter tuning job: SageMaker Automatic Model Tuning on Kubernetes.",
                            "required": ["spec"],
                            "properties": {
                                "apiVersion": {
                                    "type": "string",
                                    "description": "Versioned schema of this object: kubetune.io/v1alpha1.",
                                },
                                "kind": {"type": "string", "description": "HyperParameterTuningJob."},
                                "metadata": {"type": "object"},  # the API server allows nothing more here
                                "spec": spec_schema,
                                "status": status_schema,
                            },
                        }
                    },
                }
            ],
        },
    }


def crd_yaml() -> str:
    header = "# Generated by `kubetune crd` from operator/kubetune/api; do not edit by hand.\n"
    return header + yaml.safe_dump(crd(), sort_keys=False, width=100)
