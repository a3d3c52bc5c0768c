"""Stores for the semantic cache: the contract (:mod:`.base`) and its implementations.

Example:
    >>> from costopt_core.stores import MemoryStore
    >>> MemoryStore().count()
    0

``MemoryStore`` is the default; ``SQLiteStore(path)`` persists in one file;
``PostgresStore(dsn)`` (extra ``[postgres]``) shares a cache between hosts. The cost
ledgers that persist live here too: ``SQLiteLedger(path)`` and ``PostgresLedger(dsn)``.
"""

from __future__ import annotations

import importlib
from typing import Any

from costopt_core.stores.base import (
    CacheEntry,
    CacheStore,
    SearchHit,
    VectorError,
    check_vector,
    normalize_vector,
)

_LAZY: dict[str, str] = {
    "MemoryStore": "costopt_core.stores.memory",
    "SQLiteStore": "costopt_core.stores.sqlite",
    "PostgresStore": "costopt_core.stores.postgres",
    "SQLiteLedger": "costopt_core.stores.sqlite_ledger",
    "ExactIndex": "costopt_core.stores.index",
    "ANNIndex": "costopt_core.stores.index",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'costopt_core.stores' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


__all__ = [
    "CacheEntry",
    "CacheStore",
    "SearchHit",
    "VectorError",
    "check_vector",
    "normalize_vector",
    *_LAZY,
]
