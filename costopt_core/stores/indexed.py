"""Base of the stores that search in this process: one vector index per partition.

``MemoryStore`` keeps its entries in dicts; ``SQLiteStore`` keeps them in a file and
mirrors their vectors here. Both search the same way (:class:`PartitionIndexes`, under
one re-entrant lock) and differ only in how found ids become entries.

Example:
    >>> from costopt_core.stores.base import normalize_vector
    >>> from costopt_core.stores.indexed import PartitionIndexes
    >>> indexes = PartitionIndexes(dim=2)
    >>> indexes.add("p", 1, normalize_vector([1, 0]), created_at=0.0)
    >>> [(key, round(sim, 4)) for key, sim in indexes.search(
    ...     "p", normalize_vector([1, 0.1]), 1, 0.9, now=1.0, ttl_seconds=None)]
    [(1, 0.995)]
    >>> indexes.search("q", normalize_vector([1, 0]), 1, 0.9, now=1.0, ttl_seconds=None)
    []
"""

from __future__ import annotations

import threading
from abc import abstractmethod
from collections.abc import KeysView
from typing import Any

import numpy as np

from costopt_core.stores.base import CacheStore, SearchHit, check_vector
from costopt_core.stores.index import VectorIndex


class PartitionIndexes:
    """One :class:`~costopt_core.stores.index.VectorIndex` per partition. Keys are
    unique across partitions. ``dim`` is fixed up front or set by the store before the
    first add; ``index_options`` (``ann``, ``ann_threshold``, ``nprobe``) go to every
    ``VectorIndex``.

    Not thread-safe, like ``VectorIndex``: the stores lock around every call.
    """

    def __init__(self, dim: int | None = None, **index_options: Any) -> None:
        if dim is not None and (not isinstance(dim, int) or dim < 1):
            raise ValueError(f"dim must be a positive int or None, got {dim!r}")
        self.dim = dim
        self._options = index_options
        VectorIndex(1, **index_options)  # validate the options now, not on first add
        self._indexes: dict[str, VectorIndex] = {}
        self._partition_of: dict[int, str] = {}

    def __len__(self) -> int:
        return len(self._partition_of)

    def ids(self) -> KeysView[int]:
        """Every key held, all partitions."""
        return self._partition_of.keys()

    def count(self, partition: str) -> int:
        """Number of keys in ``partition``."""
        index = self._indexes.get(partition)
        return 0 if index is None else len(index)

    def add(self, partition: str, key: int, vector: np.ndarray, created_at: float) -> None:
        """Add ``key`` (new in every partition) to ``partition``'s index."""
        index = self._indexes.get(partition)
        if index is None:
            if self.dim is None:
                raise ValueError("dim must be set before the first vector is added")
            index = self._indexes[partition] = VectorIndex(self.dim, **self._options)
        index.add(key, vector, created_at)
        self._partition_of[key] = partition

    def remove(self, key: int) -> bool:
        """Remove ``key``; False when it was not held. An emptied partition is dropped."""
        partition = self._partition_of.pop(key, None)
        if partition is None:
            return False
        index = self._indexes[partition]
        index.remove(key)
        if not len(index):
            del self._indexes[partition]
        return True

    def search(
        self,
        partition: str,
        vector: np.ndarray,
        k: int,
        min_similarity: float,
        now: float,
        ttl_seconds: float | None,
    ) -> list[tuple[int, float]]:
        """The store contract's search, on keys: up to ``k`` unexpired (key, cosine) of
        ``partition`` with cosine >= ``min_similarity``, most similar first."""
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        vector = check_vector(vector, self.dim)
        index = self._indexes.get(partition)
        if index is None:
            return []
        min_created = None if ttl_seconds is None else now - ttl_seconds
        return index.search(vector, k, min_similarity, min_created)

    def clear(self) -> None:
        """Drop every index."""
        self._indexes.clear()
        self._partition_of.clear()

    def building(self) -> list[VectorIndex]:
        """The indexes, for :meth:`VectorIndex.wait_for_build` outside the store's lock."""
        return list(self._indexes.values())


class IndexedStore(CacheStore):
    """A store searched through :class:`PartitionIndexes`: the re-entrant lock every
    operation holds, the indexes, ``dim`` and ``search``. A subclass turns the ids
    found into entries (:meth:`_hits`) and may bring the indexes up to date first
    (:meth:`_before_search`).

    ``dim`` fixes the vector length up front (otherwise the first vector does);
    ``index_options`` (``ann``, ``ann_threshold``, ``nprobe``) configure each
    partition's :class:`~costopt_core.stores.index.VectorIndex`.
    """

    def __init__(self, dim: int | None = None, **index_options: Any) -> None:
        self._indexes = PartitionIndexes(dim, **index_options)
        self._lock = threading.RLock()

    @property
    def dim(self) -> int | None:
        return self._indexes.dim

    def wait_for_index(self, timeout: float | None = None) -> None:
        """Wait for background approximate-index builds to finish (benchmarks, tests);
        searches never need this: they use the previous index or the exact scan."""
        while True:
            with self._lock:
                # A finished build is adopted, and the next one started if the partition
                # doubled meanwhile: after this wait the indexes fit the entries held.
                busy = [index for index in self._indexes.building() if index.settle()]
            if not busy:
                return
            for index in busy:
                index.wait_for_build(timeout)
            if timeout is not None:
                return

    def search(
        self,
        partition: str,
        vector: np.ndarray,
        *,
        k: int = 1,
        min_similarity: float = -1.0,
        now: float,
        ttl_seconds: float | None,
    ) -> list[SearchHit]:
        with self._lock:
            self._before_search()
            found = self._indexes.search(partition, vector, k, min_similarity, now, ttl_seconds)
            return self._hits(found) if found else []

    def _before_search(self) -> None:
        """Called under the lock before each search."""

    @abstractmethod
    def _hits(self, found: list[tuple[int, float]]) -> list[SearchHit]:
        """The entries of ``found`` (id, similarity), in order, as hits. Called under the lock."""


__all__ = ["IndexedStore", "PartitionIndexes"]
