"""Kubernetes resource quantities (``500m``, ``16Gi``, ``2``, ``1e3``) as exact fractions."""

from __future__ import annotations

import re
from fractions import Fraction

_SUFFIXES: dict[str, Fraction] = {
    "": Fraction(1),
    "n": Fraction(1, 10**9),
    "u": Fraction(1, 10**6),
    "m": Fraction(1, 1000),
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
_QUANTITY = re.compile(
    r"^([+-]?[0-9]*\.?[0-9]+)(?:[eE]([+-]?[0-9]+)|(Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE])?)$"
)


def parse_quantity(value: str | int | float) -> Fraction:
    """Parse a quantity; raises ValueError for a malformed one.

    >>> parse_quantity("500m"), parse_quantity("1Gi"), parse_quantity(2)
    (Fraction(1, 2), Fraction(1073741824, 1), Fraction(2, 1))
    """
    if isinstance(value, bool):
        raise ValueError(f"quantity {value!r} is a boolean")
    if isinstance(value, int | float):
        return Fraction(str(value))
    match = _QUANTITY.match(value.strip())
    if not match:
        raise ValueError(f"quantities must match the regular expression: {value!r}")
    number, exponent, suffix = match.groups()
    base = Fraction(number)
    if exponent is not None:
        return base * Fraction(10) ** int(exponent)
    return base * _SUFFIXES[suffix or ""]


def is_extended(resource: str) -> bool:
    """True for extended resources such as ``nvidia.com/gpu`` (they must be whole numbers)."""
    return "/" in resource and not resource.startswith(("kubernetes.io/", "requests."))
