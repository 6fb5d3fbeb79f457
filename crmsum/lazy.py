"""Lazy package exports: `import crmsum.x` stays cheap, a name's module loads on first use.

    __getattr__ = lazy.exports(__name__, {"Anonymizer": "anonymizer", "Vault": "vault"})

A one-shot process (`crmsum ask`) then loads only the modules its work touches.
"""

from __future__ import annotations

import importlib
from typing import Any, Callable


def exports(package: str, where: dict[str, str]) -> Callable[[str], Any]:
    """A module `__getattr__` resolving `name` from the submodule `where[name]` of `package`."""
    namespace = importlib.import_module(package).__dict__

    def __getattr__(name: str) -> Any:
        mod = where.get(name)
        if mod is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"{package}.{mod}"), name)
        namespace[name] = value
        return value

    return __getattr__
