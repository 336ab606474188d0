"""Public names imported on first use (PEP 562): ``probe`` and ``feature_cache`` list each public name with the
module that defines it, and a name's module is imported when the name is first read, so that the torch-free
parts (configs, reports, data set readers) load without torch."""
from __future__ import annotations

import importlib
from typing import Any, Callable

__all__ = ["lazy_names"]


def lazy_names(package: str, exports: dict[str, str],
               namespace: dict[str, Any]) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``(__getattr__, __dir__)`` for the package named ``package`` whose ``namespace`` (its ``globals()``) gets each
    of ``exports`` (public name → module, relative to the package) on first use."""

    def __getattr__(name: str) -> Any:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f".{module}", package), name)
        namespace[name] = value  # later look-ups skip this function
        return value

    def __dir__() -> list[str]:
        return sorted(set(namespace) | set(exports))

    return __getattr__, __dir__
