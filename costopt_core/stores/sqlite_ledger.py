"""The embedded cost ledger: one SQLite file, restart-safe, shared by the processes of
one machine, budgets reserved atomically (the same contract as ``CostLedger`` and
``PostgresLedger``, see :mod:`costopt_core.ledger`).

Example:
    >>> import os, tempfile
    >>> from costopt_core.ledger import Budget, CostRecord
    >>> from costopt_core.stores.sqlite_ledger import SQLiteLedger
    >>> path = os.path.join(tempfile.mkdtemp(), "spend.db")
    >>> with SQLiteLedger(path) as ledger:
    ...     check = ledger.reserve(0.02, [Budget(0.05, "month")])
    ...     ledger.record(CostRecord("gpt-4o-mini", cost_usd=0.02),
    ...                   reservation_id=check.reservation_id)
    >>> with SQLiteLedger(path) as ledger:  # a restart: the month's spend is still there
    ...     ledger.spent_since(None), ledger.reserve(0.04, [Budget(0.05, "month")]).allowed
    (0.02, False)

How it holds:

* Every write is one ``BEGIN IMMEDIATE`` transaction on a WAL file
  (:mod:`.sqlite_file`): a check-and-reserve takes the file's write lock, so processes
  queue for it and two of them never both see the same below-budget spend. A record and
  the settling of its reservation are one transaction.
* ``durable=True`` (the default) commits with ``synchronous=FULL``: a record is on disk
  before ``record`` returns, so a power cut never loses spend. ``durable=False`` keeps
  ``NORMAL``: a killed process still loses nothing, a power cut may lose the last
  commits.
* Spend per UTC day lives in ``<table>_days``, updated with each record, so a daily or
  monthly budget check sums at most 31 rows however long the ledger has run.
* A reservation whose process died expires after its ``ttl_seconds``.
* A write that fails (the file locked past ``timeout``, the disk full) is kept in memory,
  counted in spend and budgets, and written at a later write
  (:class:`~costopt_core.stores.ledger_sql.Backlog`): spend is never dropped.
"""

from __future__ import annotations

import json
import math
import os
import pathlib
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator
from os import PathLike

from costopt_core.ledger import Budget, BudgetCheck, CostRecord, LedgerSummary, admits
from costopt_core.stores.fork_safety import watch_forks
from costopt_core.stores.ledger_sql import (
    RECORD_COLUMNS,
    TOTALS,
    WELL_FORMED,
    SQLLedger,
    check_table,
    record_values,
    records_from_rows,
    summary_from_rows,
)
from costopt_core.stores.sqlite_file import MetaTable, close_inherited, connect, transaction

_DAY = 86_400.0

_TYPES = {
    "model": "TEXT NOT NULL",
    "kind": "TEXT NOT NULL",
    "tier": "TEXT",
    "input_tokens": "INTEGER NOT NULL DEFAULT 0",
    "output_tokens": "INTEGER NOT NULL DEFAULT 0",
    "cache_read_tokens": "INTEGER NOT NULL DEFAULT 0",
    "cache_write_tokens": "INTEGER NOT NULL DEFAULT 0",
    "reasoning_tokens": "INTEGER NOT NULL DEFAULT 0",
    "cost_usd": "REAL",
    "saved_usd": "REAL",
    "baseline_model": "TEXT",
    "baseline_cost_usd": "REAL",
    "tags": "TEXT NOT NULL DEFAULT '{}'",
    "ts": "REAL NOT NULL",
    "run_id": "TEXT",
    "estimated": "INTEGER NOT NULL DEFAULT 0",
}


# SQLite columns hold any type: a row written by hand or by another program may hold
# text where a number belongs. With WELL_FORMED: the rows that hold a record.
_TYPES_OK = (
    "typeof(model) = 'text'"
    + "".join(f" AND typeof({c}) IN ('text', 'null')" for c in ("tier", "baseline_model", "run_id"))
    + "".join(f" AND typeof({c}) = 'integer'" for c in RECORD_COLUMNS if c.endswith("_tokens"))
    + "".join(
        f" AND typeof({c}) IN ('real', 'integer', 'null')"
        for c in ("cost_usd", "saved_usd", "baseline_cost_usd")
    )
    + " AND typeof(ts) IN ('real', 'integer')"
    # CASE: json_type() raises on text that is not JSON, so it runs only on valid JSON.
    + " AND CASE WHEN typeof(tags) = 'text' AND json_valid(tags)"
    " THEN json_type(tags) = 'object' ELSE 0 END"
)
_OK = f"({_TYPES_OK} AND {WELL_FORMED})"


def _open_read_only(path: str, table: str, timeout: float) -> sqlite3.Connection:
    """A read-only connection to the ledger file ``path`` (a ``ValueError`` when it is
    not a SQLite file or holds no ledger ``table``; nothing is created or written)."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no ledger file at {path!r}")
    uri = pathlib.Path(path).resolve().as_uri() + "?mode=ro"

    def open_uri(uri: str) -> sqlite3.Connection:
        return sqlite3.connect(uri, uri=True, timeout=timeout, check_same_thread=False)

    try:
        return _check_ledger(open_uri(uri), path, table)
    except sqlite3.OperationalError as exc:
        # A WAL file in a directory we cannot write: SQLite cannot make its shared
        # memory file. With no write-ahead log beside it the file holds every commit,
        # so it is read as immutable (no locks, no shared memory).
        if "unable to open" not in str(exc) or os.path.exists(path + "-wal"):
            raise ValueError(f"cannot read {path}: {exc}") from None
        return _check_ledger(open_uri(uri + "&immutable=1"), path, table)


class LedgerTableNotFound(ValueError):
    """A SQLite file holds no ledger under ``table``; ``tables`` names the ledger tables
    it does hold (maybe none), so the message can say which one to open.

    Example:
        >>> error = LedgerTableNotFound("tb.db", "costopt_ledger", ("team_a",))
        >>> str(error).split("; ")[0]
        "tb.db holds no costopt ledger (no table 'costopt_ledger')"
        >>> str(error).split("; ")[1]
        "it holds the ledger table 'team_a' (pass table='team_a')"
        >>> error.explain("--table").split("; ")[1]
        "it holds the ledger table 'team_a' (pass --table team_a)"
    """

    def __init__(self, path: str, table: str, tables: tuple[str, ...]) -> None:
        self.path, self.table, self.tables = path, table, tables
        super().__init__(self.explain())

    def explain(self, option: str | None = None) -> str:
        """The message, suggesting each ledger table as ``option NAME`` (a command
        line's flag) or, without ``option``, as the ``table=`` argument."""
        text = f"{self.path} holds no costopt ledger (no table {self.table!r})"
        if not self.tables:
            return text
        plural = "s" if len(self.tables) > 1 else ""
        held = f"the ledger table{plural} " + ", ".join(repr(t) for t in self.tables)
        ways = " or ".join(
            f"table={t!r}" if option is None else f"{option} {t}" for t in self.tables
        )
        return f"{text}; it holds {held} (pass {ways})"


def ledger_tables(conn: sqlite3.Connection) -> tuple[str, ...]:
    """The ledgers a SQLite file holds: tables whose ``<table>_meta`` says ``kind``
    ``ledger`` (one file may hold several, ``SQLiteLedger(path, table=...)``), sorted.

    Example:
        >>> import os, tempfile
        >>> path = os.path.join(tempfile.mkdtemp(), "spend.db")
        >>> for table in ("team_b", "team_a"):
        ...     SQLiteLedger(path, table=table).close()
        >>> conn = sqlite3.connect(path)
        >>> ledger_tables(conn)
        ('team_a', 'team_b')
        >>> conn.close()
    """
    names = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    found = []
    for name in sorted(names):
        base = name.removesuffix("_meta")
        if base == name or base not in names:
            continue
        try:
            # Only names a ledger may have: they go into SQL text, and into the suggestion.
            check_table(base, "table")
            kind = MetaTable(conn, name, kind="ledger").get("kind")
        except (ValueError, sqlite3.DatabaseError):  # or a table of that name, not a meta
            continue
        if kind == "ledger":
            found.append(base)
    return tuple(found)


def _check_ledger(conn: sqlite3.Connection, path: str, table: str) -> sqlite3.Connection:
    """``conn`` if its file holds the ledger ``table`` (closed and refused otherwise)."""
    conn.isolation_level = None  # BEGIN/COMMIT are ours, as in connect()
    try:
        found = conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name IN (?, ?)",
            (table, f"{table}_meta"),
        ).fetchall()
        if (table,) not in found:
            raise LedgerTableNotFound(path, table, ledger_tables(conn))
        if (f"{table}_meta",) in found:
            kind = MetaTable(conn, f"{table}_meta", kind="ledger").get("kind")
            if kind not in (None, "ledger"):
                raise ValueError(f"{path}: table {table!r} holds a costopt {kind}")
    except sqlite3.OperationalError:
        conn.close()
        raise
    except sqlite3.DatabaseError as exc:
        conn.close()
        raise ValueError(f"{path} is not a SQLite file: {exc}") from None
    except BaseException:
        conn.close()
        raise
    return conn


class SQLiteLedger(SQLLedger):
    """Cost records and budget reservations in a SQLite file; implements
    :class:`costopt_core.ledger.LedgerProtocol`. Pass it as ``ledger=`` to
    ``CostCallbackHandler`` / ``CostEventHandler``: their totals and budgets are then
    the file's, across restarts and across the processes that open it.

    Example:
        >>> import os, tempfile
        >>> from costopt_core.ledger import CostRecord
        >>> ledger = SQLiteLedger(os.path.join(tempfile.mkdtemp(), "spend.db"))
        >>> ledger.record(CostRecord("m", cost_usd=0.5, saved_usd=0.25, tier="simple"))
        >>> totals = ledger.summary().models["m"]
        >>> totals.cost_usd, totals.saved_usd, totals.tiers
        (0.5, 0.25, {'simple': 1})
        >>> ledger.close()

    Args:
        path: the file (created with its directory); several processes may open it.
            Not on a network file system: SQLite's locks need a local disk.
        table: the records table; ``<table>_reservations``, ``<table>_days`` and
            ``<table>_meta`` too, so one file may hold several ledgers.
        timeout: seconds a write waits for another process's transaction.
        durable: commit with ``synchronous=FULL`` (see the module docstring).
        read_only: open an existing ledger file to read it (``costopt report``): no
            table is created, nothing is written, so a file on a read-only disk or
            owned by another user can be read. ``record``/``reserve`` then raise.
    """

    def __init__(
        self,
        path: str | PathLike[str],
        *,
        table: str = "costopt_ledger",
        timeout: float = 30.0,
        durable: bool = True,
        read_only: bool = False,
    ) -> None:
        check_table(table, "table")
        self.path = os.fspath(path)
        if self.path == ":memory:":
            raise ValueError(
                "path must be a file: an in-memory SQLite ledger is neither restart-safe "
                "nor shared (use costopt_core.ledger.CostLedger for an in-process ledger)"
            )
        self.table = table
        self.read_only = bool(read_only)
        self._timeout = timeout
        self._synchronous = "FULL" if durable else "NORMAL"
        self._conn = self._open()
        self._lock = threading.Lock()  # one connection: one transaction at a time
        # Rows up to this rowid were checked for malformed ones: the check costs as much
        # as the totals, so each row is checked once, and the totals filter rows only
        # once a malformed one was seen.
        self._checked_rowid = 0
        self._filter = ""
        self._closed = False
        # Records whose write failed, by id, until a write of theirs commits (changed
        # under _lock with the commit). The backlog lets go of a record before its retry
        # commits; iter_records needs each record in exactly one of the file and here.
        self._kept: dict[str, CostRecord] = {}
        super().__init__()
        t, r, d = table, f"{table}_reservations", f"{table}_days"
        columns = ", ".join(RECORD_COLUMNS)
        self._sql = {
            "insert": (
                f"INSERT OR IGNORE INTO {t} (id, {columns}) "
                f"VALUES (?, {', '.join('?' * len(RECORD_COLUMNS))})"
            ),
            "add_day": (
                f"INSERT INTO {d} (day, spent_usd) VALUES (?, ?) "
                "ON CONFLICT (day) DO UPDATE SET spent_usd = spent_usd + excluded.spent_usd"
            ),
            "settle": f"DELETE FROM {r} WHERE id = ?",
            "expire": f"DELETE FROM {r} WHERE expires_at <= ?",
            "pending": f"SELECT COALESCE(sum(estimate_usd), 0) FROM {r}",
            "live": f"SELECT COALESCE(sum(estimate_usd), 0) FROM {r} WHERE expires_at > ?",
            "reserve": f"INSERT INTO {r} (id, estimate_usd, expires_at) VALUES (?, ?, ?)",
            "spent_days": f"SELECT COALESCE(sum(spent_usd), 0) FROM {d} WHERE day >= ?",
            "spent_records": f"SELECT COALESCE(sum(cost_usd), 0) FROM {t} WHERE ts >= ?",
            "records": f"SELECT id, {columns} FROM {t} WHERE ts >= ? ORDER BY ts, rowid",
            "totals": f"SELECT {TOTALS} FROM {t} WHERE ts >= ? {{ok}} GROUP BY model",
            "tiers": (
                f"SELECT model, tier, count(*) FROM {t} WHERE kind <> 'cache_hit'"
                " AND tier IS NOT NULL AND ts >= ? {ok} GROUP BY model, tier"
            ),
            "last_rowid": f"SELECT COALESCE(max(rowid), 0) FROM {t}",
            "malformed": (
                f"SELECT id FROM {t} WHERE rowid > ? AND rowid <= ? AND {_OK} IS NOT TRUE"
            ),
        }
        if not self.read_only:
            try:
                with transaction(self._conn):
                    self._create(t, r, d)
            except sqlite3.OperationalError as exc:
                self._conn.close()
                raise sqlite3.OperationalError(f"{exc}: {self.path}") from exc
            except BaseException:
                self._conn.close()
                raise
        watch_forks(self)

    def _open(self) -> sqlite3.Connection:
        if self.read_only:
            return _open_read_only(self.path, self.table, self._timeout)
        try:
            return connect(self.path, timeout=self._timeout, synchronous=self._synchronous)
        except sqlite3.OperationalError as exc:  # SQLite's message never names the file
            raise sqlite3.OperationalError(f"{exc}: {self.path}") from exc

    def forget_inherited(self) -> None:
        """In a forked child: a connection of the child's own (SQLite's rule)."""
        self._lock = threading.Lock()  # a parent thread may have held it at the fork
        if not self._closed:
            close_inherited(self._conn)
            self._conn = self._open()

    def _create(self, t: str, r: str, d: str) -> None:
        MetaTable(self._conn, f"{t}_meta", kind="ledger").open()
        columns = ", ".join(f"{name} {_TYPES[name]}" for name in RECORD_COLUMNS)
        for statement in (
            # The id is the writer's: a record written again (a retry) is not counted twice.
            f"CREATE TABLE IF NOT EXISTS {t} (id TEXT NOT NULL UNIQUE, {columns})",
            f"CREATE INDEX IF NOT EXISTS {t}_ts ON {t} (ts, cost_usd)",
            f"CREATE TABLE IF NOT EXISTS {r} (id TEXT PRIMARY KEY,"
            " estimate_usd REAL NOT NULL, expires_at REAL NOT NULL)",
            f"CREATE TABLE IF NOT EXISTS {d} (day REAL PRIMARY KEY, spent_usd REAL NOT NULL)",
        ):
            self._conn.execute(statement)

    # -- the database ------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError(f"{self!r} is closed")

    def _write(self, record_id: str, record: CostRecord, reservation_id: str | None) -> None:
        with self._lock:
            self._check_open()
            try:
                self._insert(record_id, record, reservation_id)
            except Exception:  # the backlog keeps it (SQLLedger.record)
                self._kept[record_id] = record
                raise
            if self._kept:
                self._kept.pop(record_id, None)

    def _insert(self, record_id: str, record: CostRecord, reservation_id: str | None) -> None:
        values = record_values(record, tags=json.dumps)
        with transaction(self._conn):
            added = self._conn.execute(self._sql["insert"], (record_id, *values)).rowcount
            if added and record.cost_usd:
                day = (record.timestamp // _DAY) * _DAY
                self._conn.execute(self._sql["add_day"], (day, record.cost_usd))
            if reservation_id is not None:
                self._conn.execute(self._sql["settle"], (reservation_id,))

    def _reserve(
        self, estimate: float, budgets: list[Budget], ttl: float, now: float
    ) -> BudgetCheck:
        reservation_id = uuid.uuid4().hex
        with self._lock:
            self._check_open()
            with transaction(self._conn):  # the file's write lock: one check at a time
                self._conn.execute(self._sql["expire"], (now,))
                pending = float(self._conn.execute(self._sql["pending"]).fetchone()[0])
                for budget in budgets:
                    since = budget.start(now)
                    used = self._spent_locked(since) + self._unwritten_since(since) + pending
                    if not admits(used, estimate, budget):
                        return BudgetCheck(False, None, budget, used)
                self._conn.execute(self._sql["reserve"], (reservation_id, estimate, now + ttl))
        return BudgetCheck(True, reservation_id)

    def _release(self, reservation_id: str) -> None:
        with self._lock:
            self._check_open()
            self._conn.execute(self._sql["settle"], (reservation_id,))

    def _spent(self, since: float | None) -> float:
        with self._lock:
            self._check_open()
            return self._spent_locked(since)

    def _spent_locked(self, since: float | None) -> float:
        """Spend written to the file since ``since``: from the day buckets when
        ``since`` starts a UTC day (every budget period does), else from the records."""
        if since is None or since % _DAY == 0:
            start = -math.inf if since is None else since
            row = self._conn.execute(self._sql["spent_days"], (start,))
        else:
            row = self._conn.execute(self._sql["spent_records"], (since,))
        return float(row.fetchone()[0])

    def _summary(self, since: float | None) -> LedgerSummary:
        start = -math.inf if since is None else since
        with self._lock:
            self._check_open()
            with transaction(self._conn, write=False):  # both queries: one snapshot
                last = self._conn.execute(self._sql["last_rowid"]).fetchone()[0]
                if last != self._checked_rowid:
                    bounds = (self._checked_rowid, last)
                    bad = self._conn.execute(self._sql["malformed"], bounds).fetchall()
                    self.skip_malformed(row[0] for row in bad)
                    self._filter = self._filter or (f"AND {_OK}" if bad else "")
                    self._checked_rowid = last
                ok = self._filter
                models = self._conn.execute(self._sql["totals"].format(ok=ok), (start,)).fetchall()
                tiers = self._conn.execute(self._sql["tiers"].format(ok=ok), (start,)).fetchall()
        return summary_from_rows(models, tiers)

    def _records(self, since: float | None) -> list[CostRecord]:
        start = -math.inf if since is None else since
        with self._lock:
            self._check_open()
            rows = self._conn.execute(self._sql["records"], (start,)).fetchall()
        return records_from_rows(rows, self.malformed, tags=json.loads)

    def iter_records(
        self, since: float | None = None, *, chunk_rows: int = 2_000
    ) -> Iterator[CostRecord]:
        """The records :meth:`records` returns, in the same order, read ``chunk_rows``
        rows at a time: memory stays flat however many rows the file holds (``costopt
        report`` folds each record into its totals as it comes).

        Example:
            >>> import os, tempfile
            >>> path = os.path.join(tempfile.mkdtemp(), "spend.db")
            >>> with SQLiteLedger(path) as ledger:
            ...     for cost in (0.25, 0.5, 0.125):
            ...         ledger.record(CostRecord("m", cost_usd=cost))
            ...     [r.cost_usd for r in ledger.iter_records(chunk_rows=2)]
            [0.25, 0.5, 0.125]

        The rows are read on a read-only connection of their own, as one snapshot taken
        when the first record is asked for, together with the records this ledger keeps
        in memory at that moment (writes that failed, :attr:`unwritten`): the ledger
        records and reserves as usual while a caller walks them, a record written
        meanwhile is not seen, and a kept record written to the file meanwhile is
        yielded once, after the file's. Stop early and the connection is closed with
        the iterator.
        """
        if type(chunk_rows) is not int or chunk_rows < 1:
            raise ValueError(f"chunk_rows must be a positive int, got {chunk_rows!r}")
        self._check_open()
        start = -math.inf if since is None else float(since)
        conn = _open_read_only(self.path, self.table, self._timeout)
        return self._stream(conn, start, chunk_rows)

    def _stream(
        self, conn: sqlite3.Connection, start: float, chunk_rows: int
    ) -> Iterator[CostRecord]:
        try:
            kept = self._snapshot(conn)
            cursor = conn.execute(self._sql["records"], (start,))
            while rows := cursor.fetchmany(chunk_rows):
                if kept:  # a kept record the file already holds is not yielded twice
                    for row in rows:
                        kept.pop(row[0], None)
                yield from records_from_rows(rows, self.malformed, tags=json.loads)
        finally:
            conn.close()
        yield from (record for record in kept.values() if record.timestamp >= start)

    def _snapshot(self, conn: sqlite3.Connection) -> dict[str, CostRecord]:
        """Begin ``conn``'s read snapshot and copy the kept records as one step: a
        record's write commits under the same lock, so it is in exactly one of them."""
        with self._lock:
            conn.execute("BEGIN")
            conn.execute(self._sql["last_rowid"]).fetchone()  # its first read fixes it
            return dict(self._kept)

    @property
    def reserved_usd(self) -> float:
        """Estimates of the live reservations (calls admitted, not yet recorded)."""
        with self._lock:
            self._check_open()
            return float(self._conn.execute(self._sql["live"], (time.time(),)).fetchone()[0])

    def clear(self) -> None:
        """Delete every record and reservation of this ledger."""
        self._check_writable()
        with self._lock:
            self._check_open()
            with transaction(self._conn):
                for table in (self.table, f"{self.table}_reservations", f"{self.table}_days"):
                    self._conn.execute(f"DELETE FROM {table}")
                self._checked_rowid, self._filter = 0, ""

    def close(self) -> None:
        """Write what is kept in memory if possible, then close the file."""
        if not self._closed:
            super().close()

    def _close(self) -> None:
        with self._lock:
            self._closed = True
            self._conn.close()

    def __repr__(self) -> str:
        return f"SQLiteLedger({self.path!r}, table={self.table!r})"


__all__ = ["LedgerTableNotFound", "SQLiteLedger", "ledger_tables"]
