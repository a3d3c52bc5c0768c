"""What the SQL ledgers (SQLite and PostgreSQL) share: the record columns, a record as
row values and back, the per-model totals query and its rows as a ``LedgerSummary``.

Example:
    >>> from costopt_core.ledger import CostRecord
    >>> from costopt_core.stores.ledger_sql import RECORD_COLUMNS, record_from_row, record_values
    >>> record = CostRecord("m", cost_usd=0.25, tags={"app": "a"}, timestamp=1.0)
    >>> row = record_values(record, tags=dict)
    >>> dict(zip(RECORD_COLUMNS, row))["tags"]
    {'app': 'a'}
    >>> record_from_row(row) == record
    True

Text is stored as the application gave it; PostgreSQL ``text`` cannot hold a NUL
character, so each SQL ledger passes its own encoder for text columns (``tags`` are
JSON and escape it themselves). Text that is not valid Unicode (a lone surrogate, as
``os.fsdecode`` makes of undecodable bytes) cannot be sent to either database at all:
it is stored with that character backslash-escaped (:func:`storable`), so the record
and its spend are written instead of failing at every retry.
"""

from __future__ import annotations

import logging
import re
import threading
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Self

from costopt_core.ledger import (
    Budget,
    BudgetCheck,
    CostRecord,
    LedgerSummary,
    ModelTotals,
    check_estimate,
)
from costopt_core.pricing import check_amount
from costopt_core.stores.base import MalformedRow, MalformedRows

logger = logging.getLogger(__name__)

_TABLE_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,39}$")

#: The columns of a record row, in order (``ts`` holds ``CostRecord.timestamp``).
RECORD_COLUMNS = (
    "model",
    "kind",
    "tier",
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
    "cost_usd",
    "saved_usd",
    "baseline_model",
    "baseline_cost_usd",
    "tags",
    "ts",
    "run_id",
    "estimated",
)

#: Text columns: stored through the ledger's text encoder (NUL characters, see above).
TEXT_COLUMNS = frozenset({"model", "tier", "baseline_model", "run_id"})

# Per model, in ModelTotals' field order from ``calls`` to ``max_call_cost_usd``, then
# the estimated records and the first and last timestamps. Cache hits count only as
# hits and savings. ``FILTER`` works in PostgreSQL and in SQLite >= 3.30.
TOTALS = (
    "model,"
    " count(*) FILTER (WHERE kind = 'call'),"
    " count(*) FILTER (WHERE kind = 'cache_hit'),"
    " count(*) FILTER (WHERE kind = 'cascade_attempt'),"
    " COALESCE(sum(input_tokens) FILTER (WHERE kind <> 'cache_hit'), 0),"
    " COALESCE(sum(output_tokens) FILTER (WHERE kind <> 'cache_hit'), 0),"
    " COALESCE(sum(cache_read_tokens) FILTER (WHERE kind <> 'cache_hit'), 0),"
    " COALESCE(sum(cache_write_tokens) FILTER (WHERE kind <> 'cache_hit'), 0),"
    " COALESCE(sum(reasoning_tokens) FILTER (WHERE kind <> 'cache_hit'), 0),"
    " COALESCE(sum(cost_usd), 0), COALESCE(sum(saved_usd), 0),"
    " COALESCE(sum(baseline_cost_usd), 0),"
    " count(*) FILTER (WHERE cost_usd IS NULL), COALESCE(max(cost_usd), 0),"
    " count(*) FILTER (WHERE estimated),"
    " min(ts), max(ts)"
)


_MAX = "1.7976931348623157e308"  # the largest finite double: excludes inf (and NaN)

#: The figures of a row that holds a :class:`~costopt_core.ledger.CostRecord` (the
#: ranges ``CostRecord`` checks), in SQL both databases run. Each ledger adds the
#: checks of its own types (SQLite's columns hold any type; ``tags`` a JSON object).
#: Reads skip and count rows failing it, so one damaged or hand-written row never
#: breaks a summary, a report or a budget.
WELL_FORMED = (
    f"input_tokens >= 0 AND output_tokens >= 0 AND cache_read_tokens >= 0"
    f" AND cache_write_tokens >= 0 AND reasoning_tokens >= 0"
    f" AND (cost_usd IS NULL OR cost_usd BETWEEN 0 AND {_MAX})"
    f" AND (saved_usd IS NULL OR saved_usd BETWEEN -{_MAX} AND {_MAX})"
    f" AND (baseline_cost_usd IS NULL OR baseline_cost_usd BETWEEN 0 AND {_MAX})"
    f" AND ts BETWEEN -{_MAX} AND {_MAX}"
    " AND kind IN ('call', 'cache_hit', 'cascade_attempt')"
)


def check_table(table: str, what: str) -> str:
    """``table`` if it is a safe lowercase SQL identifier (it is put into SQL text)."""
    if not isinstance(table, str) or not _TABLE_NAME.match(table):
        raise ValueError(
            f"{what} must be a lowercase SQL identifier of at most 40 characters "
            f"(letters, digits, underscore; not starting with a digit), got {table!r}"
        )
    return table


def _same(text: str) -> str:
    return text


def storable(text: str) -> str:
    """``text`` as UTF-8 can hold it: a lone surrogate (from ``os.fsdecode`` or
    ``surrogateescape``) written as its backslash escape, any other text unchanged.

    Example:
        >>> storable("model\\udcff"), storable("mödel 🚀")
        ('model\\\\udcff', 'mödel 🚀')
    """
    if text.isascii():
        return text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text


def _storable_tags(tags: Mapping[str, str]) -> dict[str, str]:
    return {
        storable(k) if isinstance(k, str) else k: storable(v) if isinstance(v, str) else v
        for k, v in tags.items()
    }


def record_values(
    record: CostRecord,
    *,
    tags: Callable[[dict[str, str]], Any],
    text: Callable[[str], Any] = _same,
) -> list[Any]:
    """``record``'s values in :data:`RECORD_COLUMNS` order; ``tags`` adapts the tags
    dict for the driver, ``text`` encodes the text columns (after :func:`storable`)."""
    if not isinstance(record, CostRecord):
        raise TypeError(f"record must be a CostRecord, got {type(record).__name__}")
    values: list[Any] = []
    for name in RECORD_COLUMNS:
        if name == "tags":
            values.append(tags(_storable_tags(record.tags)))
        elif name == "ts":
            values.append(float(record.timestamp))
        elif name == "estimated":
            values.append(bool(record.estimated))
        else:
            value = getattr(record, name)
            if name in TEXT_COLUMNS and isinstance(value, str):
                value = text(storable(value))
            values.append(value)
    return values


def record_from_row(
    row: Sequence[Any],
    *,
    tags: Callable[[Any], Any] = dict,
    text: Callable[[Any], str] = _same,
) -> CostRecord:
    """The record of a row selected as :data:`RECORD_COLUMNS`; ``tags`` decodes the
    stored tags, ``text`` the text columns. A row that holds no record (a text cost,
    tags that are not a JSON object, ...) raises :class:`MalformedRow`."""
    data = dict(zip(RECORD_COLUMNS, row, strict=True))
    for name in TEXT_COLUMNS:
        value = data[name]
        if value is not None:
            if type(value) is not str:
                raise MalformedRow(f"{name} is not text: {value!r:.60}")
            data[name] = text(value)
    try:
        data["tags"] = tags(data["tags"])
    except (TypeError, ValueError) as exc:
        raise MalformedRow(f"tags are not JSON: {exc}") from None
    if not isinstance(data["tags"], dict):
        raise MalformedRow(f"tags are not a JSON object: {data['tags']!r:.60}")
    data["timestamp"] = data.pop("ts")
    data["estimated"] = bool(data["estimated"])
    try:
        return CostRecord.from_dict(data)
    except (TypeError, ValueError) as exc:  # CostRecord's own checks name the field
        raise MalformedRow(str(exc)) from None


def records_from_rows(
    rows: Iterable[Sequence[Any]],
    malformed: MalformedRows,
    *,
    tags: Callable[[Any], Any] = dict,
    text: Callable[[Any], str] = _same,
) -> list[CostRecord]:
    """The records of ``id, <RECORD_COLUMNS>`` rows; a malformed row is skipped and
    counted in ``malformed`` (by its id), never fatal.

    Example:
        >>> rows = MalformedRows("demo ledger")
        >>> good = ("a", *record_values(CostRecord("m", cost_usd=0.5), tags=dict))
        >>> bad = ("b", *good[1:9], "abc", *good[10:])  # a text cost
        >>> [r.cost_usd for r in records_from_rows([good, bad], rows)], rows.count
        ([0.5], 1)
    """
    records = []
    for record_id, *values in rows:
        try:
            records.append(record_from_row(values, tags=tags, text=text))
        except MalformedRow as exc:
            malformed.skip(record_id, f"row id {record_id!r}: {exc}")
    return records


def summary_from_rows(
    models: Iterable[Sequence[Any]],
    tiers: Iterable[Sequence[Any]],
    text: Callable[[Any], str] = _same,
) -> LedgerSummary:
    """A ``LedgerSummary`` from the rows of the :data:`TOTALS` query (grouped by model)
    and of ``model, tier, count`` rows of billed events."""
    summary = LedgerSummary()
    for row in models:
        model, calls, hits, attempts, *tokens, cost, saved, baseline, unpriced, top = row[:-3]
        estimated, first, last = row[-3:]
        name = text(model)
        summary.models[name] = ModelTotals(
            name,
            int(calls),
            int(hits),
            int(attempts),
            *(int(n) for n in tokens),  # PostgreSQL's sum(bigint) is numeric: a Decimal
            float(cost),
            float(saved),
            float(baseline),
            int(unpriced),
            float(top),
            estimated_events=int(estimated),
        )
        if summary.first_timestamp is None or first < summary.first_timestamp:
            summary.first_timestamp = first
        if summary.last_timestamp is None or last > summary.last_timestamp:
            summary.last_timestamp = last
    for model, tier, n in tiers:
        summary.models[text(model)].tiers[text(tier)] = int(n)
    return summary


class Backlog:
    """Records a SQL ledger could not write (the database locked past its timeout, the
    server down): kept in memory in order, counted in the ledger's spend and budgets,
    and written again at the next write once :attr:`retry_every` seconds have passed.
    Spend is never dropped because a write failed, and the user's call never fails.

    Example:
        >>> from costopt_core.ledger import CostRecord
        >>> backlog = Backlog("demo ledger")
        >>> record = CostRecord("m", cost_usd=0.5, timestamp=10.0)
        >>> backlog.add("id-1", record, None, OSError("database is locked"))
        >>> backlog.spent_since(5.0), len(backlog)
        (0.5, 1)
        >>> backlog.flush(lambda record_id, record, reservation_id: None, force=True)
        >>> len(backlog)
        0
    """

    retry_every = 1.0

    def __init__(self, where: str) -> None:
        self.where = where
        self._items: list[tuple[str, CostRecord, str | None]] = []
        # Taken off _items by a flush and not yet all written: still counted in the
        # spend (a budget check meanwhile must not see them nowhere; one written and
        # not yet dropped from here is counted twice, which only makes a check stricter).
        self._flushing: list[tuple[str, CostRecord, str | None]] = []
        self._lock = threading.Lock()
        self._next_try = 0.0
        self._logged = 0.0

    def __len__(self) -> int:
        return len(self._items)

    def add(
        self, record_id: str, record: CostRecord, reservation_id: str | None, exc: BaseException
    ) -> None:
        """Keep a record whose write failed with ``exc``."""
        with self._lock:
            self._items.append((record_id, record, reservation_id))
            held = len(self._items)
            self._next_try = time.monotonic() + self.retry_every
            log = time.monotonic() - self._logged > 60.0  # a warning a minute, not a flood
            if log:
                self._logged = time.monotonic()
        if log:
            logger.warning(
                "%s: writing a cost record failed (%s: %s); %d record(s) kept in memory, "
                "counted in spend and budgets, and written when the database answers",
                self.where,
                type(exc).__name__,
                str(exc).strip(),
                held,
            )

    def flush(
        self, write: Callable[[str, CostRecord, str | None], None], *, force: bool = False
    ) -> None:
        """Write the kept records with ``write`` (oldest first; stop at the first failure).
        Without ``force``, at most once per :attr:`retry_every` seconds."""
        if not self._items or (not force and time.monotonic() < self._next_try):
            return
        with self._lock:
            items, self._items = self._items, []
            self._flushing = self._flushing + items
        written = 0
        try:
            for item in items:
                write(*item)
                written += 1
        except Exception:
            with self._lock:
                self._items[:0] = items[written:]
                self._next_try = time.monotonic() + self.retry_every
            return
        finally:
            done = {id(item) for item in items}
            with self._lock:
                self._flushing = [item for item in self._flushing if id(item) not in done]
        logger.warning("%s: %d kept cost record(s) written", self.where, len(items))

    def records(self, since: float | None = None) -> list[CostRecord]:
        with self._lock:
            items = list(self._items)
        return [r for _, r, _ in items if since is None or r.timestamp >= since]

    def spent_since(self, since: float | None = None) -> float:
        """Spend of the kept records since ``since``, with those a flush is writing."""
        with self._lock:
            items = self._items + self._flushing
        return sum(
            (r.cost_usd or 0.0 for _, r, _ in items if since is None or r.timestamp >= since), 0.0
        )


class SQLLedger(ABC):
    """The ledger contract (:class:`~costopt_core.ledger.LedgerProtocol`) around a SQL
    database, written once for SQLite and PostgreSQL: argument checks, record ids, the
    :class:`Backlog` of records not yet written. A subclass talks to its database through
    the ``_``-prefixed hooks, and counts :meth:`_unwritten_since` in its budget checks.
    """

    table: str

    #: Opened only to be read (``costopt report``): nothing is created or written.
    read_only: bool = False

    def __init__(self) -> None:
        self._backlog = Backlog(repr(self))
        #: Rows skipped because they hold no cost record (damaged, written by hand).
        self.malformed = MalformedRows(repr(self))

    # -- hooks ------------------------------------------------------------------------

    @abstractmethod
    def _write(self, record_id: str, record: CostRecord, reservation_id: str | None) -> None:
        """Insert the record under ``record_id`` (a retry is a no-op) and settle the
        reservation, in one transaction."""

    @abstractmethod
    def _reserve(
        self, estimate: float, budgets: list[Budget], ttl: float, now: float
    ) -> BudgetCheck:
        """The atomic check-and-reserve, arguments checked."""

    @abstractmethod
    def _release(self, reservation_id: str) -> None: ...

    @abstractmethod
    def _spent(self, since: float | None) -> float:
        """Spend written to the database since ``since``."""

    @abstractmethod
    def _summary(self, since: float | None) -> LedgerSummary: ...

    @abstractmethod
    def _records(self, since: float | None) -> list[CostRecord]: ...

    @abstractmethod
    def _close(self) -> None: ...

    @abstractmethod
    def _check_open(self) -> None:
        """Raise RuntimeError once closed."""

    def _check_writable(self) -> None:
        """Raise RuntimeError when the ledger was opened only to be read."""
        if self.read_only:
            raise RuntimeError(f"{self!r} was opened read_only=True: it records nothing")

    def _unwritten_since(self, since: float | None) -> float:
        return self._backlog.spent_since(since)

    # -- LedgerProtocol -----------------------------------------------------------------

    def record(self, record: CostRecord, reservation_id: str | None = None) -> None:
        """Store ``record`` and settle ``reservation_id`` in one transaction. A write
        that fails is kept and written later (never raised, never dropped)."""
        if not isinstance(record, CostRecord):
            raise TypeError(f"record must be a CostRecord, got {type(record).__name__}")
        self._check_open()  # a closed ledger is an error, not a fault to keep records through
        self._check_writable()
        self._backlog.flush(self._write)
        record_id = str(uuid.uuid4())
        try:
            self._write(record_id, record, reservation_id)
        except Exception as exc:
            self._backlog.add(record_id, record, reservation_id, exc)

    def reserve(
        self,
        estimate_usd: float,
        budgets: Sequence[Budget],
        *,
        ttl_seconds: float = 300.0,
        now: float | None = None,
    ) -> BudgetCheck:
        """Atomic check-and-reserve across every process sharing the database."""
        estimate = check_estimate(estimate_usd)
        ttl = check_amount("ttl_seconds", ttl_seconds, "seconds")
        budgets = list(budgets)
        for budget in budgets:
            if not isinstance(budget, Budget):
                raise TypeError(f"budgets must hold Budget objects, got {type(budget).__name__}")
        self._check_writable()
        self._backlog.flush(self._write)
        return self._reserve(estimate, budgets, ttl, time.time() if now is None else float(now))

    def release(self, reservation_id: str) -> None:
        """Drop a reservation whose call failed (unknown ids are ignored)."""
        self._check_writable()
        self._release(reservation_id)

    def spent_since(self, since: float | None = None) -> float:
        return self._spent(since) + self._backlog.spent_since(since)

    def summary(self, since: float | None = None) -> LedgerSummary:
        """Per-model totals computed by the database (and any records not yet written)."""
        summary = self._summary(since)
        for record in self._backlog.records(since):
            summary.add(record)
        return summary

    def records(self, since: float | None = None) -> list[CostRecord]:
        """The stored records, oldest first (then any not yet written)."""
        return self._records(since) + self._backlog.records(since)

    def skip_malformed(self, record_ids: Iterable[Any]) -> None:
        """Count the rows ``record_ids`` a summary skipped (they hold no record)."""
        for record_id in record_ids:
            self.malformed.skip(record_id, f"row id {record_id!r} does not hold a cost record")

    @property
    def malformed_rows(self) -> int:
        """Rows skipped by reads because they hold no cost record (a text cost, tags
        that are not JSON, ...; the first one is logged). 0 when all is well."""
        return self.malformed.count

    @property
    def unwritten(self) -> int:
        """Records kept in memory because their write failed (0 when all is well)."""
        return len(self._backlog)

    def close(self) -> None:
        """Write what is kept in memory if possible, then close the connections."""
        self._backlog.flush(self._write, force=True)
        if self._backlog:
            logger.error(
                "%r closed with %d cost record(s) ($%.6f) it could not write",
                self,
                len(self._backlog),
                self._backlog.spent_since(None),
            )
        self._close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


__all__ = [
    "RECORD_COLUMNS",
    "TEXT_COLUMNS",
    "TOTALS",
    "WELL_FORMED",
    "Backlog",
    "SQLLedger",
    "check_table",
    "record_from_row",
    "record_values",
    "records_from_rows",
    "storable",
    "summary_from_rows",
]
