"""Names a package exports but imports on first use (PEP 562).

The package root and :mod:`cs457p2p.checker` re-export names from their modules
without importing those modules up front: a client process, or the command line
printing its help, must not pay for the checker, the tracker and asyncio at start-up.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def lazy_exports(
    package: str, home_of: Mapping[str, str], namespace: dict[str, Any]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """A package's ``__getattr__`` and ``__dir__``: ``home_of`` maps each exported name
    to the module (relative to ``package``) that defines it; a name, once imported, is
    kept in the package's ``namespace`` so that the next look-up is a plain one."""

    def __getattr__(name: str) -> Any:
        home = home_of.get(name)
        if home is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"{package}.{home}"), name)
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted(set(namespace) | set(home_of))

    return __getattr__, __dir__
