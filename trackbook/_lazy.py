"""Names a package exports but loads on first use, so ``import trackbook`` stays fast.

Training pulls in torch and stable-baselines3, figures plotly, panels ipywidgets: each
package lists such names once, and :func:`lazy_exports` gives it the module
``__getattr__`` and ``__dir__`` that load them (tab completion lists them too).
``__all__`` keeps only the names loaded eagerly, so ``from trackbook import *`` imports
nothing heavy.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def lazy_exports(
    package: str, names: Mapping[str, str], namespace: dict[str, Any]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``(__getattr__, __dir__)`` for ``package``.

    Args:
        package: the package's ``__name__``.
        names: exported name -> ``"module"`` (the module itself) or ``"module:attr"``.
        namespace: the package's ``globals()``; a loaded name is cached there.
    """

    def __getattr__(name: str) -> Any:
        target = names.get(name)
        if target is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        module_name, _, attr = target.partition(":")
        value = importlib.import_module(module_name)
        if attr:
            value = getattr(value, attr)
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted(set(namespace) | set(names))

    return __getattr__, __dir__
