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

import itertools
import json
from collections import OrderedDict
from dataclasses import replace

from costopt_core.stores.base import CacheEntry, SearchHit, check_entry, check_vector, is_expired
from costopt_core.stores.index import DEFAULT_ANN_THRESHOLD, DEFAULT_NPROBE
from costopt_core.stores.indexed import IndexedStore


class MemoryStore(IndexedStore):
    """Entries live in this process only and vanish with it.

    ``dim``, ``ann``, ``ann_threshold`` and ``nprobe`` are as for
    :class:`~costopt_core.stores.indexed.IndexedStore`.

    Example:
        >>> from costopt_core.stores import MemoryStore, CacheEntry, normalize_vector
        >>> store = MemoryStore()
        >>> store.upsert(CacheEntry("tenant-a", "hi", normalize_vector([1, 2]), "hello!", 0.0))
        >>> query = normalize_vector([1, 2.1])  # a close paraphrase's embedding
        >>> hit = store.search("tenant-a", query, now=5.0, ttl_seconds=60)[0]
        >>> hit.entry.response, round(hit.similarity, 4)
        ('hello!', 0.9998)
        >>> store.search("tenant-b", query, now=5.0, ttl_seconds=60)  # partitions never cross
        []
    """

    def __init__(
        self,
        dim: int | None = None,
        *,
        ann: bool | None = None,
        ann_threshold: int = DEFAULT_ANN_THRESHOLD,
        nprobe: int = DEFAULT_NPROBE,
    ) -> None:
        super().__init__(dim, ann=ann, ann_threshold=ann_threshold, nprobe=nprobe)
        self._ids = itertools.count()
        # (partition, text) -> entry id; insertion/hit order is the LRU order.
        self._lru: OrderedDict[tuple[str, str], int] = OrderedDict()
        self._entries: dict[int, CacheEntry] = {}
        self._metadata: dict[int, str] = {}

    def upsert(self, entry: CacheEntry) -> None:
        # Metadata is kept as JSON, like the other stores: the contract is checked here,
        # and every reader gets its own copy cheaply.
        metadata = check_entry(entry)
        with self._lock:
            indexes = self._indexes
            vector = check_vector(entry.vector, indexes.dim)  # type: ignore[arg-type]
            if indexes.dim is None:
                indexes.dim = int(vector.shape[0])
            key = (entry.partition, entry.text)
            self._delete_key(key)
            entry_id = next(self._ids)
            self._entries[entry_id] = replace(entry, vector=vector, metadata={})
            self._metadata[entry_id] = metadata
            self._lru[key] = entry_id
            indexes.add(entry.partition, entry_id, vector, entry.created_at)

    def _delete_key(self, key: tuple[str, str]) -> None:
        entry_id = self._lru.pop(key, None)
        if entry_id is not None:
            del self._entries[entry_id]
            del self._metadata[entry_id]
            self._indexes.remove(entry_id)

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

    def _hits(self, found: list[tuple[int, float]]) -> list[SearchHit]:
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
            return len(self._lru) if partition is None else self._indexes.count(partition)
