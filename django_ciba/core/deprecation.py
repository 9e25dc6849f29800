"""Deprecated aliases of modules that moved, kept for one release.

An alias module holds nothing but ``__getattr__ = moved_module(__name__, "new.path")``: each name
read through it comes from the new module and raises a :class:`DeprecationWarning` naming that path.
"""

from __future__ import annotations

import importlib
import warnings
from collections.abc import Callable
from typing import Any


def moved_module(old: str, new: str) -> Callable[[str], Any]:
    """A module ``__getattr__`` that forwards every name of ``old`` to ``new``, with a warning."""

    def __getattr__(name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        target = importlib.import_module(new)
        value = getattr(target, name)  # AttributeError names the new module, which is the truth
        warnings.warn(
            f"{old}.{name} moved to {new}.{name}; the old path goes away in the next release.",
            DeprecationWarning,
            stacklevel=2,
        )
        return value

    return __getattr__
