"""In-process cache store (the default): dicts plus one vector index per partition.

Example:
    >>> from costopt_core.stores.base import CacheEntry, normalize_vector
    >>> from costopt_core.stores.memory import MemoryStore
    >>> store = MemoryStore(dim=2)
    >>> store.upsert(CacheEntry("p", "hello", normalize_vector([1, 0]), "hi!", created_at=0.0))
    >>> store.get_exact("p", "hello", now=10.0, ttl_seconds=5.0) is None  # expired
    True
    >>> store.count()
    1
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from dataclasses import replace

import numpy as np

from costopt_core.stores.base import (
    CacheEntry,
    CacheStore,
    SearchHit,
    check_partition,
    check_vector,
    is_expired,
)
from costopt_core.stores.index import DEFAULT_ANN_THRESHOLD, VectorIndex


class MemoryStore(CacheStore):
    """Entries live in this process only and vanish with it.

    ``dim`` fixes the vector length up front (otherwise the first vector does).
    ``ann`` / ``ann_threshold`` / ``nprobe`` configure each partition's
    :class:`~costopt_core.stores.index.VectorIndex`.
    """

    def __init__(
        self,
        dim: int | None = None,
        *,
        ann: bool | None = None,
        ann_threshold: int = DEFAULT_ANN_THRESHOLD,
        nprobe: int = 16,
    ) -> None:
        if dim is not None and (not isinstance(dim, int) or dim < 1):
            raise ValueError(f"dim must be a positive int or None, got {dim!r}")
        self._dim = dim
        self._index_options = {"ann": ann, "ann_threshold": ann_threshold, "nprobe": nprobe}
        VectorIndex(1, **self._index_options)  # validate the options now, not on first add
        self._lock = threading.RLock()
        self._next_id = 0
        # (partition, text) -> entry id; insertion/hit order is the LRU order.
        self._lru: OrderedDict[tuple[str, str], int] = OrderedDict()
        self._entries: dict[int, CacheEntry] = {}
        self._metadata: dict[int, str] = {}
        self._indexes: dict[str, VectorIndex] = {}

    def wait_for_index(self, timeout: float | None = None) -> None:
        """Wait for background approximate-index builds to finish (benchmarks, tests);
        searches never need this: they use the previous index or the exact scan."""
        with self._lock:
            indexes = list(self._indexes.values())
        for index in indexes:
            index.wait_for_build(timeout)

    @property
    def dim(self) -> int | None:
        return self._dim

    def upsert(self, entry: CacheEntry) -> None:
        check_partition(entry.partition)
        if entry.vector is None:
            raise ValueError("entry.vector is required to store an entry")
        # Metadata is kept as JSON, like the other stores: the contract is checked here,
        # and every reader gets its own copy cheaply.
        metadata = json.dumps(entry.metadata)
        with self._lock:
            vector = check_vector(entry.vector, self._dim)
            if self._dim is None:
                self._dim = int(vector.shape[0])
            key = (entry.partition, entry.text)
            self._delete_key(key)
            stored = replace(entry, vector=vector, metadata={})
            entry_id = self._next_id
            self._next_id += 1
            self._entries[entry_id] = stored
            self._metadata[entry_id] = metadata
            self._lru[key] = entry_id
            index = self._indexes.get(entry.partition)
            if index is None:
                index = VectorIndex(self._dim, **self._index_options)
                self._indexes[entry.partition] = index
            index.add(entry_id, vector, entry.created_at)

    def _delete_key(self, key: tuple[str, str]) -> bool:
        entry_id = self._lru.pop(key, None)
        if entry_id is None:
            return False
        del self._entries[entry_id]
        del self._metadata[entry_id]
        index = self._indexes[key[0]]
        index.remove(entry_id)
        if not len(index):
            del self._indexes[key[0]]
        return True

    def _copy(self, entry_id: int) -> CacheEntry:
        # Callers get a snapshot: later hits or evictions must not mutate what they hold.
        return replace(self._entries[entry_id], metadata=json.loads(self._metadata[entry_id]))

    def get_exact(
        self, partition: str, text: str, *, now: float, ttl_seconds: float | None
    ) -> CacheEntry | None:
        with self._lock:
            entry_id = self._lru.get((partition, text))
            if entry_id is None:
                return None
            if is_expired(self._entries[entry_id].created_at, now, ttl_seconds):
                return None
            return self._copy(entry_id)

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
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        with self._lock:
            vector = check_vector(vector, self._dim)
            index = self._indexes.get(partition)
            if index is None:
                return []
            min_created = None if ttl_seconds is None else now - ttl_seconds
            found = index.search(vector, k, min_similarity, min_created)
            return [SearchHit(self._copy(i), sim) for i, sim in found]

    def record_hit(self, partition: str, text: str, *, now: float) -> None:
        with self._lock:
            key = (partition, text)
            entry_id = self._lru.get(key)
            if entry_id is None:
                return
            entry = self._entries[entry_id]
            entry.hit_count += 1
            entry.last_used_at = now
            self._lru.move_to_end(key)

    def evict_expired(self, *, now: float, ttl_seconds: float | None) -> int:
        if ttl_seconds is None:
            return 0
        with self._lock:
            stale = [
                key
                for key, entry_id in self._lru.items()
                if is_expired(self._entries[entry_id].created_at, now, ttl_seconds)
            ]
            for key in stale:
                self._delete_key(key)
            return len(stale)

    def enforce_max_entries(self, max_entries: int) -> int:
        if max_entries < 0:
            raise ValueError(f"max_entries must be >= 0, got {max_entries}")
        with self._lock:
            removed = 0
            while len(self._lru) > max_entries:
                key = next(iter(self._lru))
                self._delete_key(key)
                removed += 1
            return removed

    def clear(self, partition: str | None = None) -> None:
        with self._lock:
            if partition is None:
                self._lru.clear()
                self._entries.clear()
                self._metadata.clear()
                self._indexes.clear()
                return
            for key in [k for k in self._lru if k[0] == partition]:
                self._delete_key(key)

    def count(self, partition: str | None = None) -> int:
        with self._lock:
            if partition is None:
                return len(self._lru)
            index = self._indexes.get(partition)
            return 0 if index is None else len(index)
