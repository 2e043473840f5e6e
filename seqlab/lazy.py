"""Package ``__init__`` files that name their public objects without importing them (PEP 562).

``seqlab.models`` and ``seqlab.train`` re-export classes from modules that import torch; their torch-free
config modules must load without it, so the package resolves a name only when it is first used.

Example (in a package's ``__init__.py``)::

    __getattr__, __dir__, __all__ = lazy_exports(__name__, {"RNNConfig": "config", "Scorer": "scorer"})
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any


def lazy_exports(
    package: str, sources: dict[str, str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]], list[str]]:
    """``(__getattr__, __dir__, __all__)`` for ``package``: name -> the submodule that defines it."""

    def __getattr__(name: str) -> Any:
        if name not in sources:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(f"{package}.{sources[name]}"), name)

    def __dir__() -> list[str]:
        return sorted(set(vars(importlib.import_module(package))) | set(sources))

    return __getattr__, __dir__, sorted(sources)
