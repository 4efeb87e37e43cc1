"""The one exception type for bad input, so callers can report it without guessing."""

from __future__ import annotations


class SpecError(ValueError):
    """A tuning job spec that cannot run, with the path of the field at fault.

    The operator turns it into a condition and an event, the CLI into a message
    and exit code 2; in both the user must see *which* field is wrong.
    """

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        self.message = message
        super().__init__(f"{field}: {message}" if field else message)
