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

* WAL journal, busy timeout and ``BEGIN IMMEDIATE`` write transactions
  (:mod:`.sqlite_file`): two processes writing the same file take turns instead of
  failing or corrupting it.
* The file says what it holds: ``costopt_cache_meta`` has the schema version and the
  vector size (``dim``), so the store re-opens without arguments.
* Vectors are little-endian float32 blobs. Search runs on an in-memory mirror (one
  :class:`~costopt_core.stores.index.VectorIndex` per partition), built when the file
  is opened. Before each search the store reads ``PRAGMA data_version``, which changes
  only when *another* connection committed; it then diffs the table's ids against the
  mirror and loads or drops the rows that changed. A replaced entry is deleted and
  re-inserted under a fresh id (``AUTOINCREMENT`` never reuses ids), so the id diff
  sees every change.
* Exact lookups, hit counts, TTL and LRU eviction run as SQL on the file itself, so
  they hold across processes.
* A malformed row (a vector of the wrong size or not finite, a text timestamp, metadata
  that is not a JSON object), from a damaged file or another program's write, is
  skipped and counted in ``stats["malformed_rows"]`` (the first one logged): it never
  stops the file from opening and never fails a lookup or a write of other rows.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable, Sequence
from contextlib import AbstractContextManager
from os import PathLike
from typing import Any

import numpy as np

from costopt_core.stores.base import (
    NORM_TOLERANCE,
    CacheEntry,
    MalformedRow,
    MalformedRows,
    SearchHit,
    check_entry,
    check_vector,
    is_finite_number,
    oldest_fresh,
)
from costopt_core.stores.fork_safety import watch_forks
from costopt_core.stores.index import DEFAULT_ANN_THRESHOLD, DEFAULT_NPROBE
from costopt_core.stores.indexed import IndexedStore
from costopt_core.stores.sqlite_file import MetaTable, close_inherited, connect, transaction

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
"""

_COLUMNS = "id, partition, text, response, created_at, last_used_at, hit_count, metadata"

# Rows whose vectors are checked together when the mirror loads.
_BATCH = 4096

# SQLite's default limit on bound parameters is 32766 since 3.32; stay well under it.
_CHUNK = 900


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
        nprobe: int = DEFAULT_NPROBE,
    ) -> None:
        super().__init__(dim, ann=ann, ann_threshold=ann_threshold, nprobe=nprobe)
        self.path = os.fspath(path)
        self._timeout = timeout
        self._conn = connect(self.path, timeout=timeout)
        self._closed = False
        self.malformed = MalformedRows(f"SQLiteStore({self.path!r})")
        self._bad_ids: set[int] = set()  # malformed rows: not re-read at every sync
        self._meta = MetaTable(self._conn, "costopt_cache_meta", kind="cache")
        try:
            with self._transaction():
                for statement in _SCHEMA.split(";"):
                    if statement.strip():
                        self._conn.execute(statement)
                self._meta.open()
                self._indexes.dim = self._open_dim(dim)
            self._data_version = -1
            self._sync()
        except BaseException:
            self._conn.close()
            raise
        if self.path != ":memory:":  # a private in-memory database is the child's copy
            watch_forks(self)

    def forget_inherited(self) -> None:
        """In a forked child: a connection of the child's own (SQLite's rule), the
        mirror brought up to date on the next call."""
        self._lock = threading.RLock()  # a parent thread may have held it at the fork
        if self._closed:
            return
        close_inherited(self._conn)
        self._conn = connect(self.path, timeout=self._timeout)
        self._meta = MetaTable(self._conn, "costopt_cache_meta", kind="cache")
        self._data_version = -1  # another connection's counter: compare nothing with it

    # -- plumbing ---------------------------------------------------------------

    def _transaction(self) -> AbstractContextManager[None]:
        return transaction(self._conn)

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError(f"SQLiteStore({self.path!r}) is closed")

    def _open_dim(self, dim: int | None) -> int | None:
        """The file's vector size, recorded in it when first known: from ``dim``, or
        (a file written before the size was recorded) the size most rows have."""
        stored = self._stored_dim()
        if stored is None:
            found = dim if dim is not None else self._common_row_dim()
            if found is not None:
                stored = int(self._meta.set_default("dim", str(found)))
        if dim is not None and stored is not None and dim != stored:
            raise ValueError(f"{self.path} holds {stored}-d vectors, dim={dim} was given")
        return stored

    def _stored_dim(self) -> int | None:
        value = self._meta.get("dim")
        if value is None or not value.isdigit() or int(value) < 1:
            return None  # a damaged value: re-learned from the rows
        return int(value)

    def _common_row_dim(self) -> int | None:
        row = self._conn.execute(
            "SELECT length(vector) / 4 FROM costopt_cache_entries WHERE typeof(vector) = 'blob'"
            " AND length(vector) % 4 = 0 AND length(vector) > 0"
            " GROUP BY 1 ORDER BY count(*) DESC LIMIT 1"
        ).fetchone()
        return None if row is None else int(row[0])

    def _fix_dim(self, dim: int) -> None:
        """Record the store's dim in the file (first writer wins) and adopt it."""
        self._indexes.dim = int(self._meta.set_default("dim", str(dim)))

    def _mirror_rows(self, rows: Iterable[Sequence[Any]]) -> None:
        """Add rows ``(id, partition, vector, created_at)`` read from the file to the
        mirror; skip and count the malformed ones. Vectors are checked a batch at a time
        (one ``check_vector`` per row was half the time of opening a large file)."""
        dim = self._indexes.dim
        batch: list[tuple[int, str, float]] = []
        blobs: list[bytes] = []
        for entry_id, partition, blob, created_at in rows:
            if type(partition) is not str or not partition:
                self._skip_row(entry_id, f"partition is not text: {partition!r:.40}")
            elif dim is None or type(blob) is not bytes or len(blob) != 4 * dim:
                got = f"{len(blob)} bytes" if isinstance(blob, bytes) else type(blob).__name__
                self._skip_row(entry_id, f"vector of {got}, this store holds {dim}-d vectors")
            elif not is_finite_number(created_at):
                self._skip_row(entry_id, f"created_at is not a finite number: {created_at!r:.40}")
            else:
                batch.append((entry_id, partition, created_at))
                blobs.append(blob)
                if len(batch) == _BATCH:
                    self._mirror_batch(batch, blobs, dim)
                    batch, blobs = [], []
        if batch:
            self._mirror_batch(batch, blobs, dim)

    def _mirror_batch(
        self, batch: list[tuple[int, str, float]], blobs: list[bytes], dim: int
    ) -> None:
        matrix = np.frombuffer(b"".join(blobs), dtype="<f4").reshape(len(blobs), dim)
        matrix = matrix.astype(np.float32)
        finite = np.isfinite(matrix).all(axis=1)
        norms = np.linalg.norm(np.where(finite[:, None], matrix, 0.0), axis=1)
        good = finite & (np.abs(norms - 1.0) <= NORM_TOLERANCE)
        for row, (entry_id, partition, created_at) in enumerate(batch):
            if good[row]:
                self._indexes.add(partition, entry_id, matrix[row], created_at)
            else:
                what = (
                    "not finite" if not finite[row] else f"not normalized (norm {norms[row]:.4g})"
                )
                self._skip_row(entry_id, f"vector {what}")

    def _skip_row(self, entry_id: int, reason: str) -> None:
        self._bad_ids.add(entry_id)
        self.malformed.skip(entry_id, f"row {entry_id}: {reason}")

    def _entry(self, row: Sequence[Any]) -> CacheEntry | None:
        """The entry of a ``_COLUMNS`` row, or ``None`` (counted) when it is malformed."""
        try:
            return CacheEntry.from_row(*row[1:])  # after the id: from_row's columns
        except MalformedRow as exc:
            self.malformed.skip(row[0], f"row {row[0]}: {exc}")
            return None

    def _mirror_remove(self, rows: Iterable[Sequence[int]]) -> int:
        """Drop the ids of ``rows`` (``RETURNING id`` rows) from the mirror; count them."""
        removed = 0
        for (entry_id,) in rows:
            self._indexes.remove(entry_id)
            self._bad_ids.discard(entry_id)
            removed += 1
        return removed

    def _sync(self) -> None:
        """Bring the in-memory mirror up to date with commits by other connections."""
        version = self._conn.execute("PRAGMA data_version").fetchone()[0]
        if version == self._data_version:
            return
        if self._indexes.dim is None:
            self._indexes.dim = self._stored_dim() or self._common_row_dim()
        if not len(self._indexes) and not self._bad_ids:
            # Empty mirror (just opened): load everything at once.
            self._mirror_rows(
                self._conn.execute(
                    "SELECT id, partition, vector, created_at FROM costopt_cache_entries"
                )
            )
            self._data_version = version
            return
        present = {row[0] for row in self._conn.execute("SELECT id FROM costopt_cache_entries")}
        for entry_id in [i for i in self._indexes.ids() if i not in present]:
            self._indexes.remove(entry_id)
        for entry_id in [i for i in self._bad_ids if i not in present]:
            self._bad_ids.discard(entry_id)
        new_ids = sorted(present.difference(self._indexes.ids(), self._bad_ids))
        for chunk in _chunks(new_ids):
            marks = ",".join("?" * len(chunk))
            self._mirror_rows(
                self._conn.execute(
                    "SELECT id, partition, vector, created_at FROM costopt_cache_entries "
                    f"WHERE id IN ({marks})",
                    tuple(chunk),
                )
            )
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
            if new_id is not None:  # always, for an INSERT into a rowid table
                self._indexes.add(entry.partition, new_id, vector, entry.created_at)

    def get_exact(
        self, partition: str, text: str, *, now: float, ttl_seconds: float | None
    ) -> CacheEntry | None:
        with self._lock:
            self._check_open()
            # The vector's size is checked here too: a row the index skipped as
            # malformed is skipped by every lookup.
            row = self._conn.execute(
                f"SELECT {_COLUMNS} FROM costopt_cache_entries "
                "WHERE partition = ? AND text = ? AND created_at >= ?"
                " AND typeof(vector) = 'blob' AND length(vector) = ?",
                (partition, text, oldest_fresh(now, ttl_seconds), 4 * (self.dim or 0)),
            ).fetchone()
            if row is None or row[0] in self._bad_ids:
                return None
        return self._entry(row)

    def _before_search(self) -> None:
        self._check_open()
        self._sync()

    def _hits(self, found: list[tuple[int, float]]) -> list[SearchHit]:
        marks = ",".join("?" * len(found))
        rows = self._conn.execute(
            f"SELECT {_COLUMNS} FROM costopt_cache_entries WHERE id IN ({marks})",
            tuple(i for i, _ in found),
        ).fetchall()
        entries = {row[0]: self._entry(row) for row in rows}
        # A row deleted by another process since the last sync is simply not a hit.
        return [SearchHit(e, sim) for i, sim in found if (e := entries.get(i)) is not None]

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
