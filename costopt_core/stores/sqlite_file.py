"""What the SQLite cache store and the SQLite ledger share: opening one file for several
processes, write transactions, and the meta table that says what a file holds.

Example:
    >>> import os, tempfile
    >>> from costopt_core.stores.sqlite_file import MetaTable, connect, transaction
    >>> conn = connect(os.path.join(tempfile.mkdtemp(), "x.db"), timeout=5.0)
    >>> with transaction(conn):
    ...     meta = MetaTable(conn, "demo_meta", kind="demo").open()
    >>> meta["kind"], meta["schema_version"]
    ('demo', '1')
    >>> conn.close()

Why these settings:

* WAL journal: readers never block the writer, and a process killed mid-write leaves
  the file consistent (the half-written transaction is simply not in the log).
* ``timeout`` is SQLite's busy timeout: a writer waits that long for another process's
  transaction instead of failing at once.
* Every multi-statement write is one ``BEGIN IMMEDIATE`` transaction: it takes the
  write lock up front, so two processes queue on the busy timeout instead of both
  reading under a shared lock and deadlocking when each tries to upgrade it (which
  SQLite answers with an immediate "database is locked").
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from os import PathLike

#: Version of the tables the SQLite store and ledger write; bumped on any
#: incompatible change. A file written by a newer costopt is refused, not misread.
SCHEMA_VERSION = 1


def connect(
    path: str | PathLike[str], *, timeout: float, synchronous: str = "NORMAL"
) -> sqlite3.Connection:
    """Open ``path`` (``":memory:"`` too) for use by several threads and processes.

    ``synchronous`` is SQLite's ``PRAGMA synchronous``: ``"NORMAL"`` (a power cut may
    lose the last commits, never corrupt the file) or ``"FULL"`` (each commit is on
    disk before it returns).
    """
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not timeout > 0:
        raise ValueError(f"timeout must be a number > 0 (seconds), got {timeout!r}")
    if synchronous not in ("NORMAL", "FULL"):
        raise ValueError(f"synchronous must be 'NORMAL' or 'FULL', got {synchronous!r}")
    path = os.fspath(path)
    parent = os.path.dirname(path)
    if path != ":memory:" and parent:
        os.makedirs(parent, exist_ok=True)
    # isolation_level=None: BEGIN/COMMIT are ours, nothing is implicit.
    conn = sqlite3.connect(path, timeout=timeout, isolation_level=None, check_same_thread=False)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(f"PRAGMA synchronous={synchronous}")
    except BaseException:
        conn.close()
        raise
    return conn


def close_inherited(conn: sqlite3.Connection) -> None:
    """Close, in a child of ``os.fork()``, a connection the parent opened.

    SQLite keeps one record per process of the locks it holds on a file, and a child
    inherits it without the locks themselves (POSIX locks belong to the process that
    took them). A connection the child opens while an inherited one is still open reuses
    that record and so takes no real lock: when the parent closed its own connection
    it saw no other user, checkpointed and deleted the write-ahead log, and the child's
    later commits went into a deleted file (lost). Closing the inherited connection
    first resets the record. The close leaves the file alone: checkpointing needs an
    exclusive lock, which the parent's open connection denies.
    """
    with suppress(sqlite3.Error):  # nothing more to release than the child's own memory
        conn.close()


@contextmanager
def transaction(conn: sqlite3.Connection, *, write: bool = True) -> Iterator[None]:
    """``BEGIN IMMEDIATE`` ... ``COMMIT``, or ``ROLLBACK`` when the block raises.
    ``write=False``: a read transaction (``BEGIN``), one snapshot for every query in it."""
    conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
    try:
        yield
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


class MetaTable:
    """A ``key -> value`` table saying what the file's tables hold: ``kind``
    (``"cache"``, ``"ledger"``), ``schema_version`` and, for the cache, ``dim``.
    :meth:`open` runs inside a write transaction."""

    def __init__(self, conn: sqlite3.Connection, table: str, *, kind: str) -> None:
        self._conn = conn
        self.table = table
        self.kind = kind

    def open(self) -> dict[str, str]:
        """Create the table if needed, check ``kind`` and ``schema_version`` (writing
        them when missing: files from before they were recorded are version 1) and
        return every key."""
        self._conn.execute(
            f"CREATE TABLE IF NOT EXISTS {self.table} (key TEXT PRIMARY KEY, value TEXT NOT NULL)"
        )
        meta = self.read()
        kind = meta.get("kind")
        if kind is not None and kind != self.kind:
            raise ValueError(f"table {self.table!r} describes a costopt {kind}, not a {self.kind}")
        version = meta.get("schema_version", str(SCHEMA_VERSION))
        if not version.isdigit() or int(version) > SCHEMA_VERSION:
            raise RuntimeError(
                f"this file was written by a newer costopt (schema version {version!r}, this "
                f"one reads {SCHEMA_VERSION}): upgrade costopt-llm"
            )
        for key, value in (("kind", self.kind), ("schema_version", version)):
            if key not in meta:
                self.set_default(key, value)
                meta[key] = value
        return meta

    def read(self) -> dict[str, str]:
        rows = self._conn.execute(f"SELECT key, value FROM {self.table}").fetchall()
        return {str(key): str(value) for key, value in rows}

    def get(self, key: str) -> str | None:
        row = self._conn.execute(f"SELECT value FROM {self.table} WHERE key = ?", (key,))
        found = row.fetchone()
        return None if found is None else str(found[0])

    def set_default(self, key: str, value: str) -> str:
        """Write ``key`` unless another connection did first; return the stored value."""
        self._conn.execute(
            f"INSERT OR IGNORE INTO {self.table} (key, value) VALUES (?, ?)", (key, value)
        )
        stored = self.get(key)
        return value if stored is None else stored


__all__ = ["SCHEMA_VERSION", "MetaTable", "close_inherited", "connect", "transaction"]
