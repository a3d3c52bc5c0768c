"""SQLite-backed cache store: one file, survives restarts, shared safely by processes.

Example:
    >>> import tempfile, os
    >>> from costopt_core.stores.base import CacheEntry, normalize_vector
    >>> from costopt_core.stores.sqlite import SQLiteStore
    >>> path = os.path.join(tempfile.mkdtemp(), "cache.db")
    >>> with SQLiteStore(path) as store:
    ...     store.upsert(CacheEntry("p", "hi", normalize_vector([1, 0]), "hello", created_at=0.0))
    >>> with SQLiteStore(path) as store:  # re-opened: the entry is still there
    ...     store.get_exact("p", "hi", now=1.0, ttl_seconds=None).response
    'hello'

How it stays correct and fast:

* WAL journal and a busy timeout: readers never block the writer, and two processes
  writing the same file take turns instead of failing or corrupting it. Every
  multi-statement write runs in one ``BEGIN IMMEDIATE`` transaction.
* Vectors are little-endian float32 blobs. Search runs on an in-memory mirror (one
  :class:`~costopt_core.stores.index.VectorIndex` per partition), built when the file
  is opened. Before each search the store reads ``PRAGMA data_version``, which changes
  only when *another* connection committed; it then diffs the table's ids against the
  mirror and loads or drops the rows that changed. A replaced entry is deleted and
  re-inserted under a fresh id (``AUTOINCREMENT`` never reuses ids), so the id diff
  sees every change.
* Exact lookups, hit counts, TTL and LRU eviction run as SQL on the file itself, so
  they hold across processes.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterable, Sequence
from os import PathLike
from typing import Any

import numpy as np

from costopt_core.stores.base import (
    CacheEntry,
    SearchHit,
    check_entry,
    check_vector,
    oldest_fresh,
)
from costopt_core.stores.index import DEFAULT_ANN_THRESHOLD
from costopt_core.stores.indexed import IndexedStore

_SCHEMA = """
CREATE TABLE IF NOT EXISTS costopt_cache_entries (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    partition TEXT NOT NULL,
    text TEXT NOT NULL,
    vector BLOB NOT NULL,
    response TEXT NOT NULL,
    created_at REAL NOT NULL,
    last_used_at REAL NOT NULL,
    hit_count INTEGER NOT NULL DEFAULT 0,
    metadata TEXT NOT NULL DEFAULT '{}',
    UNIQUE (partition, text)
);
CREATE INDEX IF NOT EXISTS costopt_cache_entries_lru
    ON costopt_cache_entries (last_used_at, id);
CREATE INDEX IF NOT EXISTS costopt_cache_entries_created
    ON costopt_cache_entries (created_at);
CREATE TABLE IF NOT EXISTS costopt_cache_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""

_COLUMNS = "id, partition, text, response, created_at, last_used_at, hit_count, metadata"

# SQLite's default limit on bound parameters is 32766 since 3.32; stay well under it.
_CHUNK = 900


def _row_to_entry(row: Sequence[Any]) -> CacheEntry:
    return CacheEntry.from_row(*row[1:])  # after the id: the CacheEntry.from_row columns


def _chunks(values: Sequence[int]) -> Iterable[Sequence[int]]:
    for start in range(0, len(values), _CHUNK):
        yield values[start : start + _CHUNK]


class SQLiteStore(IndexedStore):
    """Cache entries in a SQLite file (``":memory:"`` works too, unshared).

    ``timeout`` is how long a write waits for another process's transaction, in
    seconds. ``dim``, ``ann``, ``ann_threshold`` and ``nprobe`` are as for
    :class:`~costopt_core.stores.indexed.IndexedStore`; a file remembers its ``dim``.

    Example:
        >>> import os, tempfile
        >>> from costopt_core.stores import CacheEntry, SQLiteStore, normalize_vector
        >>> path = os.path.join(tempfile.mkdtemp(), "cache.db")
        >>> writer, reader = SQLiteStore(path), SQLiteStore(path)  # e.g. two processes
        >>> writer.upsert(CacheEntry("p", "hi", normalize_vector([3, 4]), "hello", 0.0))
        >>> [hit.entry.response for hit in reader.search(
        ...     "p", normalize_vector([3, 4]), now=1.0, ttl_seconds=None)]
        ['hello']
        >>> reader.dim, writer.evict_expired(now=100.0, ttl_seconds=10.0), reader.count()
        (2, 1, 0)
        >>> writer.close(); reader.close()
    """

    def __init__(
        self,
        path: str | PathLike[str],
        *,
        dim: int | None = None,
        timeout: float = 30.0,
        ann: bool | None = None,
        ann_threshold: int = DEFAULT_ANN_THRESHOLD,
        nprobe: int = 16,
    ) -> None:
        super().__init__(dim, ann=ann, ann_threshold=ann_threshold, nprobe=nprobe)
        if timeout <= 0:
            raise ValueError(f"timeout must be > 0 seconds, got {timeout!r}")
        self.path = os.fspath(path)
        parent = os.path.dirname(self.path)
        if self.path != ":memory:" and parent:
            os.makedirs(parent, exist_ok=True)
        # isolation_level=None: we issue BEGIN/COMMIT ourselves, so nothing is implicit.
        self._conn = sqlite3.connect(
            self.path, timeout=timeout, isolation_level=None, check_same_thread=False
        )
        self._closed = False
        try:
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=NORMAL")
            with self._transaction():
                for statement in _SCHEMA.split(";"):
                    if statement.strip():
                        self._conn.execute(statement)
            stored_dim = self._stored_dim()
            if dim is not None and stored_dim is not None and dim != stored_dim:
                raise ValueError(f"{self.path} holds {stored_dim}-d vectors, dim={dim} was given")
            if stored_dim is not None:
                self._indexes.dim = stored_dim
            self._data_version = -1
            self._sync()
        except BaseException:
            self._conn.close()
            raise

    # -- plumbing ---------------------------------------------------------------

    def _transaction(self) -> _Transaction:
        return _Transaction(self._conn)

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError(f"SQLiteStore({self.path!r}) is closed")

    def _stored_dim(self) -> int | None:
        row = self._conn.execute(
            "SELECT value FROM costopt_cache_meta WHERE key = 'dim'"
        ).fetchone()
        return None if row is None else int(row[0])

    def _fix_dim(self, dim: int) -> None:
        """Record the store's dim in the file (first writer wins) and adopt it."""
        self._conn.execute(
            "INSERT OR IGNORE INTO costopt_cache_meta (key, value) VALUES ('dim', ?)", (str(dim),)
        )
        self._indexes.dim = self._stored_dim()

    def _mirror_add(self, entry_id: int, partition: str, blob: bytes, created_at: float) -> None:
        vector = np.frombuffer(blob, dtype="<f4").astype(np.float32)
        self._indexes.add(partition, entry_id, vector, created_at)

    def _mirror_remove(self, rows: Iterable[Sequence[int]]) -> int:
        """Drop the ids of ``rows`` (``RETURNING id`` rows) from the mirror; count them."""
        removed = 0
        for (entry_id,) in rows:
            self._indexes.remove(entry_id)
            removed += 1
        return removed

    def _sync(self) -> None:
        """Bring the in-memory mirror up to date with commits by other connections."""
        version = self._conn.execute("PRAGMA data_version").fetchone()[0]
        if version == self._data_version:
            return
        if self._indexes.dim is None:
            self._indexes.dim = self._stored_dim()
        if not len(self._indexes):  # empty mirror (just opened): load everything at once
            rows = self._conn.execute(
                "SELECT id, partition, vector, created_at FROM costopt_cache_entries"
            )
            for entry_id, partition, blob, created_at in rows:
                self._mirror_add(entry_id, partition, blob, created_at)
            self._data_version = version
            return
        present = {row[0] for row in self._conn.execute("SELECT id FROM costopt_cache_entries")}
        for entry_id in [i for i in self._indexes.ids() if i not in present]:
            self._indexes.remove(entry_id)
        new_ids = sorted(present.difference(self._indexes.ids()))
        for chunk in _chunks(new_ids):
            marks = ",".join("?" * len(chunk))
            rows = self._conn.execute(
                "SELECT id, partition, vector, created_at FROM costopt_cache_entries "
                f"WHERE id IN ({marks})",
                tuple(chunk),
            )
            for entry_id, partition, blob, created_at in rows:
                self._mirror_add(entry_id, partition, blob, created_at)
        self._data_version = version

    # -- the contract -------------------------------------------------------------

    def upsert(self, entry: CacheEntry) -> None:
        metadata = check_entry(entry)
        with self._lock:
            self._check_open()
            self._sync()
            vector = check_vector(entry.vector, self.dim)  # type: ignore[arg-type]
            blob = vector.astype("<f4").tobytes()
            with self._transaction():
                if self.dim is None:
                    self._fix_dim(int(vector.shape[0]))
                    check_vector(vector, self.dim)  # another process may have won
                old = self._conn.execute(
                    "DELETE FROM costopt_cache_entries WHERE partition = ? AND text = ? "
                    "RETURNING id",
                    (entry.partition, entry.text),
                ).fetchall()
                cursor = self._conn.execute(
                    "INSERT INTO costopt_cache_entries (partition, text, vector, response, "
                    "created_at, last_used_at, hit_count, metadata) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        entry.partition,
                        entry.text,
                        blob,
                        entry.response,
                        entry.created_at,
                        entry.last_used_at,
                        entry.hit_count,
                        metadata,
                    ),
                )
                new_id = cursor.lastrowid
            self._mirror_remove(old)
            assert new_id is not None
            self._mirror_add(new_id, entry.partition, blob, entry.created_at)

    def get_exact(
        self, partition: str, text: str, *, now: float, ttl_seconds: float | None
    ) -> CacheEntry | None:
        with self._lock:
            self._check_open()
            row = self._conn.execute(
                f"SELECT {_COLUMNS} FROM costopt_cache_entries "
                "WHERE partition = ? AND text = ? AND created_at >= ?",
                (partition, text, oldest_fresh(now, ttl_seconds)),
            ).fetchone()
        return None if row is None else _row_to_entry(row)

    def _before_search(self) -> None:
        self._check_open()
        self._sync()

    def _hits(self, found: list[tuple[int, float]]) -> list[SearchHit]:
        marks = ",".join("?" * len(found))
        rows = self._conn.execute(
            f"SELECT {_COLUMNS} FROM costopt_cache_entries WHERE id IN ({marks})",
            tuple(i for i, _ in found),
        ).fetchall()
        by_id = {row[0]: row for row in rows}
        # A row deleted by another process since the last sync is simply not a hit.
        return [SearchHit(_row_to_entry(by_id[i]), sim) for i, sim in found if i in by_id]

    def record_hit(self, partition: str, text: str, *, now: float) -> None:
        with self._lock:
            self._check_open()
            self._conn.execute(
                "UPDATE costopt_cache_entries SET hit_count = hit_count + 1, "
                "last_used_at = MAX(last_used_at, ?) WHERE partition = ? AND text = ?",
                (now, partition, text),
            )

    def evict_expired(self, *, now: float, ttl_seconds: float | None) -> int:
        if ttl_seconds is None:
            return 0
        with self._lock:
            self._check_open()
            with self._transaction():
                gone = self._conn.execute(
                    "DELETE FROM costopt_cache_entries WHERE created_at < ? RETURNING id",
                    (now - ttl_seconds,),
                ).fetchall()
            return self._mirror_remove(gone)

    def enforce_max_entries(self, max_entries: int) -> int:
        if max_entries < 0:
            raise ValueError(f"max_entries must be >= 0, got {max_entries}")
        with self._lock:
            self._check_open()
            with self._transaction():
                total = self._conn.execute("SELECT count(*) FROM costopt_cache_entries").fetchone()[
                    0
                ]
                excess = total - max_entries
                if excess <= 0:
                    return 0
                gone = self._conn.execute(
                    "DELETE FROM costopt_cache_entries WHERE id IN (SELECT id FROM "
                    "costopt_cache_entries ORDER BY last_used_at, id LIMIT ?) RETURNING id",
                    (excess,),
                ).fetchall()
            return self._mirror_remove(gone)

    def clear(self, partition: str | None = None) -> None:
        with self._lock:
            self._check_open()
            with self._transaction():
                if partition is None:
                    gone = self._conn.execute(
                        "DELETE FROM costopt_cache_entries RETURNING id"
                    ).fetchall()
                else:
                    gone = self._conn.execute(
                        "DELETE FROM costopt_cache_entries WHERE partition = ? RETURNING id",
                        (partition,),
                    ).fetchall()
            self._mirror_remove(gone)

    def count(self, partition: str | None = None) -> int:
        with self._lock:
            self._check_open()
            if partition is None:
                row = self._conn.execute("SELECT count(*) FROM costopt_cache_entries")
            else:
                row = self._conn.execute(
                    "SELECT count(*) FROM costopt_cache_entries WHERE partition = ?",
                    (partition,),
                )
            return int(row.fetchone()[0])

    def close(self) -> None:
        with self._lock:
            if not self._closed:
                self._closed = True
                self._conn.close()
                self._indexes.clear()


class _Transaction:
    """``BEGIN IMMEDIATE`` ... ``COMMIT``: takes the write lock up front, so two
    processes queue on the busy timeout instead of deadlocking on lock upgrade."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def __enter__(self) -> None:
        self._conn.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, *_: object) -> None:
        if exc_type is None:
            self._conn.execute("COMMIT")
        else:
            self._conn.execute("ROLLBACK")
