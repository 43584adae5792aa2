"""Users and registrar bindings, behind the :class:`Store` interface (floor 1).

Backends are chosen by name with :func:`open_store`; each is imported only when opened.
"""

from __future__ import annotations

from typing import Any

from .base import Binding, BindingUpdater, LocationStore, Store, User, UserStore

__all__ = [
    "BACKENDS",
    "Binding",
    "BindingUpdater",
    "LocationStore",
    "Store",
    "User",
    "UserStore",
    "open_store",
]

BACKENDS = ("memory", "sqlite")
"""The names :func:`open_store` accepts."""


def open_store(name: str, **options: Any) -> Store:
    """Open the backend called ``name`` with its keyword ``options``:

    - ``"memory"``: :class:`~sipstack.storage.memory.MemoryStore` (no options);
    - ``"sqlite"``: :class:`~sipstack.storage.sqlite.SqliteStore` (``path``, and optionally
      ``synchronous`` and ``busy_timeout``).

    Raises :class:`ValueError` for an unknown (or not yet available) backend, and
    :class:`TypeError` for options the backend does not take.
    """
    key = name.strip().lower()
    if key == "memory":
        from .memory import MemoryStore

        return MemoryStore(**options)
    if key == "sqlite":
        from .sqlite import SqliteStore

        return SqliteStore(**options)
    if key == "redis":
        raise ValueError("the 'redis' store is not available yet; use 'sqlite' or 'memory'")
    raise ValueError(f"unknown store {name!r}; choose one of: {', '.join(BACKENDS)}")
