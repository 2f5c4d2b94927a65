"""Checks for the values of model parameters: a wrong value raises ``ValueError`` with the
valid form, which :func:`edgekd.models.build_model` turns into a ``ModelError``."""

from __future__ import annotations

from collections.abc import Sequence


def check_int(name: str, value: object, minimum: int = 1) -> int:
    """Return ``value`` if it is an integer >= ``minimum``, else raise ``ValueError``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return value


def check_ints(name: str, value: object, minimum: int = 1) -> tuple[int, ...]:
    """Return ``value`` as a tuple if it is a non-empty list of integers >= ``minimum``."""
    valid = (
        isinstance(value, Sequence)
        and not isinstance(value, str)
        and len(value) > 0
        and all(not isinstance(v, bool) and isinstance(v, int) and v >= minimum for v in value)
    )
    if not valid:
        raise ValueError(f"{name} must be a non-empty list of integers >= {minimum}, got {value!r}")
    return tuple(value)  # type: ignore[arg-type]


def check_positive_float(name: str, value: object) -> float:
    """Return ``value`` as a float if it is a number > 0."""
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise ValueError(f"{name} must be a number > 0, got {value!r}")
    return float(value)


def check_kernel_size(value: object) -> int:
    """Return ``value`` if it is an odd integer >= 1 (so that padding keeps the size)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1 or value % 2 == 0:
        raise ValueError(f"kernel_size must be an odd integer >= 1 (1, 3, 5, ...), got {value!r}")
    return value
