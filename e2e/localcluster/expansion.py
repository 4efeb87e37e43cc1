"""Kubernetes' $(VAR) expansion for command, args and env values.

Follows the kubelet's rules exactly: $(NAME) is replaced when NAME is
defined and kept verbatim otherwise, $$ escapes a $, and any other $ stays.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping


def mapping_for(*contexts: Mapping[str, str]) -> Callable[[str], str]:
    """Looks a name up in each context in turn; unknown names stay as $(NAME)."""

    def lookup(name: str) -> str:
        for context in contexts:
            if name in context:
                return context[name]
        return f"$({name})"

    return lookup


def expand(text: str, mapping: Callable[[str], str]) -> str:
    """Expands every $(NAME) reference in text."""
    out: list[str] = []
    checkpoint = 0
    cursor = 0
    while cursor < len(text):
        if text[cursor] == "$" and cursor + 1 < len(text):
            out.append(text[checkpoint:cursor])
            read, is_var, advance = _read_name(text[cursor + 1 :])
            out.append(mapping(read) if is_var else read)
            cursor += advance
            checkpoint = cursor + 1
        cursor += 1
    return "".join(out) + text[checkpoint:]


def _read_name(rest: str) -> tuple[str, bool, int]:
    first = rest[0]
    if first == "$":
        return "$", False, 1
    if first == "(":
        close = rest.find(")", 1)
        if close != -1:
            return rest[1:close], True, close + 1
        return "$(", False, 1
    return "$" + first, False, 1
