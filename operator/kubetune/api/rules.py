"""Rules across the fields of one model: checked by pydantic and, where CEL can say it, by the API server.

A model lists its rules in `RULES`; `Model`'s one validator runs them all and
reports every broken one, and `kubetune crd` writes those with a CEL expression
into the CRD as `x-kubernetes-validations` on the same model's schema, so
`kubectl apply` refuses the same specs that `kubetune validate` refuses, with
the same field named. A rule that CEL cannot express says why in `no_cel`; a
unit test holds every rule to having one or the other, and a cluster test
breaks each CEL rule against a real API server.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Rule:
    """One rule of one model.

    `check` returns what is wrong with a model instance, or None; or, where the
    field at fault depends on the instance (which of a JobSet's replicated Jobs),
    that (field, message) pair. `field` is the
    camelCase path, relative to the model, of the field at fault ("" for the object
    itself); it is the path in the Python error and the CEL rule's fieldPath alike.
    `cel` holds when the rule is kept, with `self` the model's object as stored
    (defaults applied, absent optional fields absent); `message` is what the API
    server says when it does not.
    """

    id: str
    field: str
    check: Callable[[Any], str | tuple[str, str] | None]
    message: str
    cel: str | None = None
    no_cel: str | None = None

    def __post_init__(self) -> None:
        if (self.cel is None) == (self.no_cel is None):
            raise ValueError(f"rule {self.id}: give exactly one of a CEL expression and the reason there is none")


class RuleViolations(ValueError):
    """Every rule of one model instance that failed, as (field relative to the model, message)."""

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        super().__init__("; ".join(message for _, message in problems))
        self.problems = problems


def check_rules(instance: Any, rules: tuple[Rule, ...]) -> None:
    """Run every rule and raise one RuleViolations with all that failed, so none hides another."""
    problems = [
        found if isinstance(found, tuple) else (rule.field, found)
        for rule in rules
        if (found := rule.check(instance)) is not None
    ]
    if problems:
        raise RuleViolations(problems)
