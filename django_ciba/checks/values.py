"""Predicates shared by the system checks of settings (no check of their own)."""

from __future__ import annotations

from typing import Any


def positive_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def positive_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value > 0


def non_negative_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value >= 0


def none_or_positive_int(value: Any) -> bool:
    return value is None or positive_int(value)


def none_or_pair(value: Any) -> bool:
    """None, or ``[count, seconds]``: two positive integers."""
    return value is None or (
        isinstance(value, list | tuple) and len(value) == 2 and all(positive_int(item) for item in value)
    )


def strings(value: Any) -> bool:
    """A list (or tuple) of strings, possibly empty."""
    return isinstance(value, list | tuple) and all(isinstance(item, str) for item in value)
