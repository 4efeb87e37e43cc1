"""The base of every spec model: camelCase on the wire, no unknown fields, rules checked together.

Its own module so that the spec (spec.py) and the trial template
(template.py) share it without importing each other.
"""

from __future__ import annotations

from typing import ClassVar, Self

from pydantic import BaseModel, ConfigDict, model_validator
from pydantic.alias_generators import to_camel

from kubetune.api.rules import Rule, check_rules


class Model(BaseModel):
    """Shared model settings: camelCase on the wire, snake_case in Python, no unknown fields.

    A model's rules across its fields are data (`RULES`, see kubetune.api.rules), not
    validators of its own, so the CRD can carry the same rules and all of them are
    reported at once.
    """

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        frozen=True,
        use_enum_values=False,
    )

    RULES: ClassVar[tuple[Rule, ...]] = ()

    @model_validator(mode="after")
    def _check_rules(self) -> Self:
        check_rules(self, type(self).RULES)
        return self
