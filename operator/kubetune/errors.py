"""The exception types for bad input, so callers can report it without guessing."""

from __future__ import annotations

from collections.abc import Sequence

PROBLEM_SEPARATOR = "; "
"""How str() joins several problems: a Kubernetes condition message and an event are one line."""


class SpecError(ValueError):
    """A tuning job spec that cannot run, with the path of every field at fault.

    The operator turns it into a condition and an event, the CLI into a message
    and exit code 2; in both the user must see *which* fields are wrong, all of
    them at once, so that fixing one does not merely reveal the next.

    `problems` lists each (path, message); `field` and `message` are the first
    path and the rest of the text, so that `f"{field}: {message}"` is always
    `str()` whether there is one problem or several.
    """

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        self.message = message
        self.problems: list[tuple[str, str]] = [(field, message)]
        super().__init__(_join(self.problems))

    @classmethod
    def of(cls, problems: Sequence[tuple[str, str]]) -> SpecError:
        """One error for several problems, in the order given (at least one)."""
        if not problems:
            raise ValueError("a SpecError needs at least one problem")
        field, message = problems[0]
        rest = _join(problems[1:])
        error = cls(field, message + (PROBLEM_SEPARATOR + rest if rest else ""))
        error.problems = list(problems)
        return error


class ResultsError(Exception):
    """A source of trials (a result file, a tuning job in a cluster) or an option on it that cannot be used;
    the message names the file, object or option and what is wrong, in one line for the CLI."""


def _join(problems: Sequence[tuple[str, str]]) -> str:
    return PROBLEM_SEPARATOR.join(f"{field}: {message}" if field else message for field, message in problems)
