"""Kubernetes resource quantities ("500m", "2Gi", "1e3") as exact fractions.

Exact arithmetic matters for fit decisions: summing "100m" ten times must
equal "1" for a pod to fit a one-CPU node exactly.
"""

from __future__ import annotations

import re
from fractions import Fraction

_SUFFIX = {
    "": Fraction(1),
    "m": Fraction(1, 1000),
    "u": Fraction(1, 10**6),
    "n": Fraction(1, 10**9),
    "k": Fraction(10**3),
    "M": Fraction(10**6),
    "G": Fraction(10**9),
    "T": Fraction(10**12),
    "P": Fraction(10**15),
    "E": Fraction(10**18),
    "Ki": Fraction(2**10),
    "Mi": Fraction(2**20),
    "Gi": Fraction(2**30),
    "Ti": Fraction(2**40),
    "Pi": Fraction(2**50),
    "Ei": Fraction(2**60),
}
_PATTERN = re.compile(r"^([+-]?[0-9.]+)([eE][+-]?[0-9]+)?([a-zA-Z]*)$")


def parse_quantity(text: str | int | float) -> Fraction:
    """Parses a quantity string into an exact number of base units."""
    if isinstance(text, (int, float)):
        return Fraction(text)
    match = _PATTERN.match(text.strip())
    if not match or match.group(3) not in _SUFFIX:
        raise ValueError(f"not a quantity: {text!r}")
    number, exponent, suffix = match.groups()
    value = Fraction(number)
    if exponent:
        value *= Fraction(10) ** int(exponent[1:])
    return value * _SUFFIX[suffix]


def format_quantity(value: Fraction, resource: str) -> str:
    """Formats a quantity the way the API server would accept it back."""
    if resource == "cpu" and value.denominator != 1:
        return f"{int(value * 1000)}m"
    return str(int(value))
