"""Old public names kept for one release, resolved with a DeprecationWarning."""

from __future__ import annotations

import sys
import warnings
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["deprecated_aliases"]


def deprecated_aliases(module: str, aliases: Mapping[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` that resolves each old name to its new one, warning once per use.

    Args:
        module: the ``__name__`` of the module that holds the new names.
        aliases: old name -> new name.
    """

    def __getattr__(name: str) -> Any:
        new = aliases.get(name)
        if new is None:
            raise AttributeError(f"module {module!r} has no attribute {name!r}")
        warnings.warn(
            f"{module}.{name} is deprecated and will be removed in the next release; "
            f"use {module}.{new}",
            DeprecationWarning,
            stacklevel=2,
        )
        return getattr(sys.modules[module], new)

    return __getattr__
