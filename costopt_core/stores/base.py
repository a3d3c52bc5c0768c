"""The contract every semantic-cache store implements (memory, SQLite, PostgreSQL).

Example:
    >>> import numpy as np
    >>> from costopt_core.stores.base import CacheEntry, normalize_vector
    >>> from costopt_core.stores.memory import MemoryStore
    >>> store = MemoryStore()
    >>> v = normalize_vector([1.0, 2.0, 2.0])
    >>> store.upsert(CacheEntry("p1", "what is 2+2?", v, '"4"', created_at=0.0))
    >>> hit = store.search("p1", v, now=1.0, ttl_seconds=None)[0]
    >>> (hit.entry.text, round(hit.similarity, 3))
    ('what is 2+2?', 1.0)

Vocabulary of the contract
--------------------------
partition
    An opaque string (a hex digest, at most 128 characters) computed by the cache from
    everything that must match *exactly* for an answer to be reusable: the model and
    its parameters (LangChain's ``llm_string``), the tenant/namespace, the system
    prompt, earlier turns, tool definitions and the embedding model. A store never
    returns an entry of one partition for a query in another: search and exact lookup
    are always scoped to a single partition.
text
    The *normalized* query text the cache embedded (the latest human turn). Entries are
    keyed by ``(partition, text)``; ``upsert`` of an existing key replaces it. Texts
    can be long: a store may index a hash of it, but must compare the full text.
vector
    A 1-D ``numpy.float32`` array of length ``dim`` with L2 norm 1 (within 1e-3) and
    only finite values, so cosine similarity is a plain dot product. The cache
    normalizes; stores *check* with :func:`check_vector` and raise
    :class:`VectorError` (a ``ValueError``) for a wrong size, NaN/inf or a zero or
    unnormalized vector, so a bad vector never enters an index. ``dim`` is fixed per
    store: by the ``dim=`` constructor argument, or by the first vector added (a
    persistent store remembers it across re-opens).
response
    The serialized answer (LangChain's JSON ``dumps`` of the generations): a ``str``
    the store keeps verbatim. Stores never unpickle anything.
metadata
    A JSON-serializable ``dict`` with string keys (model, token counts, cost in USD of
    the original call) the cache uses to compute savings on a hit.
time
    Seconds since the epoch (``time.time()``), always passed in by the caller as
    ``now`` so tests can control the clock. An entry is *expired* when
    ``now - created_at > ttl_seconds``; ``ttl_seconds=None`` means entries never
    expire. Hits do not extend the TTL (as in the seed); they refresh the LRU order.
last_used_at
    ``created_at`` at insertion, then the time of the latest hit. ``enforce_max_entries``
    evicts the entries with the oldest ``last_used_at`` (least recently used) across
    the whole store.

Sync and async
--------------
Every operation has a sync method and an ``a``-prefixed coroutine. The defaults here
run the sync method in a worker thread (``asyncio.to_thread``) so an in-process store
never blocks the event loop; a store with a native async driver (PostgreSQL)
overrides the coroutines. A store must be safe to call from several threads at once.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import threading
from abc import ABC, abstractmethod
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

#: How far from 1 a vector's L2 norm may be and still count as normalized.
NORM_TOLERANCE = 1e-3

#: Longest partition key a store must accept.
MAX_PARTITION_LENGTH = 128


class VectorError(ValueError):
    """A vector is the wrong size, not finite, zero, or not normalized."""


def normalize_vector(vector: Sequence[float] | np.ndarray, dim: int | None = None) -> np.ndarray:
    """Return ``vector`` as a unit-norm float32 array, or raise :class:`VectorError`.

    Example:
        >>> normalize_vector([3.0, 4.0]).tolist()
        [0.6000000238418579, 0.800000011920929]
    """
    try:
        arr = np.asarray(vector, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise VectorError(f"vector must be a sequence of numbers: {exc}") from exc
    if arr.ndim != 1 or arr.size == 0:
        raise VectorError(f"vector must be 1-D and non-empty, got shape {arr.shape}")
    if dim is not None and arr.shape[0] != dim:
        raise VectorError(f"vector has {arr.shape[0]} dimensions, this store holds {dim}")
    # One dot product checks finiteness too (NaN or inf make it non-finite); the
    # element-wise test runs only then, to say which: every lookup normalizes.
    squared = float(arr @ arr)
    if not math.isfinite(squared) and not np.isfinite(arr).all():
        raise VectorError("vector contains NaN or infinite values")
    norm = math.sqrt(squared)
    if norm == 0.0 or not math.isfinite(norm):
        raise VectorError("vector has zero length; it cannot be compared by cosine")
    return (arr / norm).astype(np.float32)


def check_vector(vector: np.ndarray, dim: int | None) -> np.ndarray:
    """Validate a vector handed to a store (see the module docstring); return it as a
    contiguous float32 array. ``dim=None`` accepts any length (first vector of a store).
    """
    if not isinstance(vector, np.ndarray):
        raise VectorError(f"vector must be a numpy array, got {type(vector).__name__}")
    if vector.ndim != 1 or vector.size == 0:
        raise VectorError(f"vector must be 1-D and non-empty, got shape {vector.shape}")
    if dim is not None and vector.shape[0] != dim:
        raise VectorError(f"vector has {vector.shape[0]} dimensions, this store holds {dim}")
    arr = np.ascontiguousarray(vector, dtype=np.float32)
    squared = float(arr @ arr)  # non-finite when an element is (see normalize_vector)
    if not math.isfinite(squared) and not np.isfinite(arr).all():
        raise VectorError("vector contains NaN or infinite values")
    norm = math.sqrt(squared)
    if abs(norm - 1.0) > NORM_TOLERANCE:
        raise VectorError(f"vector must be L2-normalized, its norm is {norm:.6g}")
    return arr


def check_partition(partition: str) -> str:
    """Validate a partition key: a non-empty ``str`` of at most 128 characters."""
    if not isinstance(partition, str) or not partition:
        raise ValueError(f"partition must be a non-empty str, got {partition!r}")
    if len(partition) > MAX_PARTITION_LENGTH:
        raise ValueError(f"partition must be at most {MAX_PARTITION_LENGTH} characters")
    return partition


def is_expired(created_at: float, now: float, ttl_seconds: float | None) -> bool:
    """The one expiry rule every store applies (see "time" in the module docstring)."""
    return ttl_seconds is not None and now - created_at > ttl_seconds


def oldest_fresh(now: float, ttl_seconds: float | None) -> float:
    """:func:`is_expired` as a bound for a query: entries created before it are expired."""
    return -math.inf if ttl_seconds is None else now - ttl_seconds


@dataclass
class CacheEntry:
    """One cached answer.

    ``vector`` is required on :meth:`CacheStore.upsert`; entries *returned* by a store
    may carry ``vector=None`` (a remote store need not ship vectors back).
    """

    partition: str
    text: str
    vector: np.ndarray | None
    response: str
    created_at: float
    last_used_at: float | None = None
    hit_count: int = 0
    metadata: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.last_used_at is None:
            self.last_used_at = self.created_at

    @classmethod
    def from_row(
        cls,
        partition: str,
        text: str,
        response: str,
        created_at: float,
        last_used_at: float,
        hit_count: int,
        metadata: str | dict[str, Any],
    ) -> CacheEntry:
        """An entry read back from a database, without its vector; ``metadata`` as JSON
        text or already decoded. A row that does not hold an entry (a text timestamp,
        metadata that is not a JSON object, ...) raises :class:`MalformedRow`.

        Example:
            >>> CacheEntry.from_row("p", "hi", "hello", 1.0, 2.0, 0, '{"model": "m"}').metadata
            {'model': 'm'}
            >>> CacheEntry.from_row("p", "hi", "hello", "yesterday", 2.0, 0, "{}")
            Traceback (most recent call last):
            ...
            costopt_core.stores.base.MalformedRow: created_at is not a finite number: 'yesterday'
        """
        if type(text) is not str or type(response) is not str:
            raise MalformedRow(
                f"text and response must be text, got {type(text).__name__} "
                f"and {type(response).__name__}"
            )
        for name, value in (("created_at", created_at), ("last_used_at", last_used_at)):
            if not is_finite_number(value):
                raise MalformedRow(f"{name} is not a finite number: {value!r}")
        if type(hit_count) is not int:
            raise MalformedRow(f"hit_count is not an integer: {hit_count!r}")
        if not isinstance(metadata, dict):
            try:
                metadata = json.loads(metadata)
            except (TypeError, ValueError) as exc:
                raise MalformedRow(f"metadata is not JSON: {exc}") from None
            if not isinstance(metadata, dict):
                raise MalformedRow(f"metadata is not a JSON object: {metadata!r:.60}")
        return cls(partition, text, None, response, created_at, last_used_at, hit_count, metadata)


class MalformedRow(ValueError):
    """A stored row that does not read back as a cache entry (damaged file, a write by
    hand or by another program). Stores skip such rows and count them."""


def is_finite_number(value: object) -> bool:
    """True for a finite int or float (not a bool): a timestamp or an amount read back."""
    kind = type(value)
    if kind is float:
        return math.isfinite(value)  # type: ignore[arg-type]
    if kind is int:
        return True
    return (
        isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)  # type: ignore[arg-type]
    )


class MalformedRows:
    """The malformed rows a store skipped: each counted once (by its key) and the first
    logged as a warning, so damage is seen without flooding the log or failing a call.

    Example:
        >>> rows = MalformedRows("SQLiteStore('cache.db')")
        >>> rows.skip(7, "vector has 3 dimensions, this store holds 4")
        >>> rows.skip(7, "vector has 3 dimensions, this store holds 4")  # same row again
        >>> rows.count
        1
    """

    #: Keys remembered for counting each row once; past that every skip counts.
    MAX_KEYS = 100_000

    def __init__(self, where: str) -> None:
        self.where = where
        self.count = 0
        self._keys: set[Hashable] = set()
        self._lock = threading.Lock()

    def skip(self, key: Hashable, reason: object) -> None:
        """Note that the row ``key`` was skipped because of ``reason``."""
        with self._lock:
            if key in self._keys:
                return
            if len(self._keys) < self.MAX_KEYS:
                self._keys.add(key)
            self.count += 1
            first = self.count == 1
        if first:
            logger.warning(
                "%s: skipped a malformed row (%s); it is never returned, other rows are "
                "served as usual. Later ones are counted in the store's stats.",
                self.where,
                reason,
            )

    def forget(self, key: Hashable) -> None:
        """The row ``key`` is gone (deleted): if it comes back, it is checked anew."""
        with self._lock:
            self._keys.discard(key)

    def __contains__(self, key: Hashable) -> bool:
        return key in self._keys


def check_entry(entry: CacheEntry) -> str:
    """Validate an entry handed to ``upsert``, all but its vector (which the store checks
    against its ``dim``): the partition, a vector present, JSON-serializable metadata.
    Returns the metadata as JSON."""
    check_partition(entry.partition)
    if entry.vector is None:
        raise ValueError("entry.vector is required to store an entry")
    return json.dumps(entry.metadata)


@dataclass(frozen=True)
class SearchHit:
    """An entry and its cosine similarity to the query vector, in [-1, 1]."""

    entry: CacheEntry
    similarity: float


class CacheStore(ABC):
    """Persistence and nearest-neighbour search for :class:`costopt_core.cache.SemanticCache`.

    Subclasses implement the sync methods; the async ones default to
    ``asyncio.to_thread`` and may be overridden by natively async stores.
    """

    @property
    @abstractmethod
    def dim(self) -> int | None:
        """Vector length this store holds; ``None`` until fixed by the first vector."""

    @abstractmethod
    def upsert(self, entry: CacheEntry) -> None:
        """Insert ``entry``, replacing any entry with the same ``(partition, text)``.

        Raises :class:`VectorError` if ``entry.vector`` breaks the vector contract and
        ``ValueError`` for a bad partition; nothing is written then.
        """

    @abstractmethod
    def get_exact(
        self, partition: str, text: str, *, now: float, ttl_seconds: float | None
    ) -> CacheEntry | None:
        """The unexpired entry keyed ``(partition, text)``, or ``None``. No hit recorded."""

    @abstractmethod
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
        """Up to ``k`` unexpired entries of ``partition`` with cosine similarity
        ``>= min_similarity`` to ``vector``, most similar first. No hit recorded.

        ``vector`` follows the vector contract (raises :class:`VectorError` otherwise).
        An approximate index may miss a neighbour; similarities it reports are exact.
        """

    @abstractmethod
    def record_hit(self, partition: str, text: str, *, now: float) -> None:
        """Add one to the entry's ``hit_count`` and set its ``last_used_at`` to ``now``.
        A missing entry (evicted meanwhile) is ignored."""

    @abstractmethod
    def evict_expired(self, *, now: float, ttl_seconds: float | None) -> int:
        """Delete every expired entry (all partitions); return how many were deleted."""

    @abstractmethod
    def enforce_max_entries(self, max_entries: int) -> int:
        """Delete least-recently-used entries until at most ``max_entries`` remain in the
        store (all partitions together); return how many were deleted."""

    @abstractmethod
    def clear(self, partition: str | None = None) -> None:
        """Delete the entries of ``partition``, or of every partition when ``None``."""

    @abstractmethod
    def count(self, partition: str | None = None) -> int:
        """Number of stored entries (expired ones included until evicted)."""

    #: Rows skipped as malformed; stores that read rows back set their own.
    malformed: MalformedRows | None = None

    @property
    def stats(self) -> dict[str, int]:
        """``{"malformed_rows": n}``: rows found malformed and skipped (each counted once).

        Example:
            >>> from costopt_core.stores.memory import MemoryStore
            >>> MemoryStore().stats
            {'malformed_rows': 0}
        """
        return {"malformed_rows": 0 if self.malformed is None else self.malformed.count}

    def close(self) -> None:  # noqa: B027 - optional hook; in-memory stores hold nothing
        """Release connections and files. The store is unusable afterwards."""

    # Async defaults: a worker thread keeps the event loop free; native stores override.
    async def aupsert(self, entry: CacheEntry) -> None:
        await asyncio.to_thread(self.upsert, entry)

    async def aget_exact(
        self, partition: str, text: str, *, now: float, ttl_seconds: float | None
    ) -> CacheEntry | None:
        return await asyncio.to_thread(
            self.get_exact, partition, text, now=now, ttl_seconds=ttl_seconds
        )

    async def asearch(
        self,
        partition: str,
        vector: np.ndarray,
        *,
        k: int = 1,
        min_similarity: float = -1.0,
        now: float,
        ttl_seconds: float | None,
    ) -> list[SearchHit]:
        return await asyncio.to_thread(
            self.search,
            partition,
            vector,
            k=k,
            min_similarity=min_similarity,
            now=now,
            ttl_seconds=ttl_seconds,
        )

    async def arecord_hit(self, partition: str, text: str, *, now: float) -> None:
        await asyncio.to_thread(self.record_hit, partition, text, now=now)

    async def aevict_expired(self, *, now: float, ttl_seconds: float | None) -> int:
        return await asyncio.to_thread(self.evict_expired, now=now, ttl_seconds=ttl_seconds)

    async def aenforce_max_entries(self, max_entries: int) -> int:
        return await asyncio.to_thread(self.enforce_max_entries, max_entries)

    async def aclear(self, partition: str | None = None) -> None:
        await asyncio.to_thread(self.clear, partition)

    async def acount(self, partition: str | None = None) -> int:
        return await asyncio.to_thread(self.count, partition)

    async def aclose(self) -> None:
        await asyncio.to_thread(self.close)

    def __enter__(self) -> CacheStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
