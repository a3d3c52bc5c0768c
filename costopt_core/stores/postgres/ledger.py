"""The cost ledger on PostgreSQL: one row per priced event, budgets reserved atomically.

Budgets are checked inside a transaction holding ``pg_advisory_xact_lock``: expired
reservations dropped, spend plus live reservations read in one snapshot, the
reservation inserted; so replicas spending against one budget together overshoot it by
at most one call's cost. Recording a call inserts its row and settles its reservation
in one transaction.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any, TypeVar

from costopt_core.ledger import Budget, BudgetCheck, CostRecord, LedgerSummary, admits
from costopt_core.stores import ledger_sql as sql
from costopt_core.stores.postgres.connection import AnyPool, Connector, jsonb
from costopt_core.stores.postgres.schema import Schema, VersionRow
from costopt_core.stores.postgres.steps import Fetch, Sql, Steps, Transaction, statements
from costopt_core.stores.postgres.text import from_db, json_from_db, json_to_db, to_db

T = TypeVar("T")

_COLUMNS = ", ".join(sql.RECORD_COLUMNS)
# The rows that hold a record: the column types hold the rest (a NaN cost, tags that
# are a JSON list, ... can still be written by hand).
_OK = f"({sql.WELL_FORMED} AND jsonb_typeof(tags) = 'object')"


def _tags_to_db(tags: dict[str, str]) -> Any:
    return jsonb(json_to_db(tags))


def _uuid_or_none(reservation_id: str | None) -> uuid.UUID | None:
    if reservation_id is None:
        return None
    try:
        return uuid.UUID(str(reservation_id))
    except ValueError:
        return None  # not one of ours (another ledger's id): nothing to settle


def _since(since: float | None) -> tuple[str, tuple[Any, ...]]:
    """A ``WHERE`` condition on ``ts`` and its parameters (``since=None``: everything)."""
    return ("TRUE", ()) if since is None else ("ts >= %s", (since,))


class PostgresLedger(sql.SQLLedger):
    """Cost records and budget reservations in PostgreSQL, shared by every replica.

    Implements :class:`costopt_core.ledger.LedgerProtocol`; pass it as ``ledger=`` to
    ``CostCallbackHandler`` / ``CostEventHandler`` and their totals and budgets are the
    database's.

    Example:
        .. code-block:: python

            ledger = PostgresLedger("postgresql://app@db/app", tags={"app": "support"})
            handler = CostCallbackHandler(daily_budget_usd=20.0, ledger=ledger)

    Args:
        dsn / pool: as for :class:`PostgresStore` (exactly one).
        table: the records table; ``<table>_reservations`` and ``<table>_schema`` too.
        pool_size, connect_timeout, pool_timeout, retry_after: as for
            :class:`PostgresStore`.
        read_only: read an existing ledger (``costopt report``): no table is created
            (a table that holds no ledger is a ``ValueError``), nothing is recorded.

    Each record is a row (model, kind, tier, token counts, ``cost_usd``, ``saved_usd``,
    baseline, ``tags`` as JSONB, ``ts`` in epoch seconds, ``recorded_at``). Records get
    a client-side id, so the one retry after a dropped connection never books a call
    twice.
    """

    def __init__(
        self,
        dsn: str | None = None,
        *,
        pool: AnyPool | None = None,
        table: str = "costopt_ledger",
        pool_size: int = 10,
        connect_timeout: float = 5.0,
        pool_timeout: float = 5.0,
        retry_after: float = 5.0,
        read_only: bool = False,
    ) -> None:
        sql.check_table(table, "table")
        # Reading only (``costopt report``): no table is created, nothing is written.
        self.read_only = bool(read_only)
        self._db = Connector(
            dsn,
            pool,
            pool_size=pool_size,
            connect_timeout=connect_timeout,
            pool_timeout=pool_timeout,
            retry_after=retry_after,
            name="cost ledger",
        )
        self.table = table
        self._reservations = f"{table}_reservations"
        self._schema = Schema(table, "ledger", (table, self._reservations, f"{table}_ts"))
        self._ready = False
        super().__init__()
        cols = _COLUMNS
        marks = ", ".join(["%s"] * (len(sql.RECORD_COLUMNS) + 1))
        t, r = table, self._reservations
        self._sql = {
            "insert": (
                f"INSERT INTO {t} (id, {cols}) VALUES ({marks}) ON CONFLICT (id) DO NOTHING"
            ),
            "settle": f"DELETE FROM {r} WHERE id = %s",
            "expire": f"DELETE FROM {r} WHERE expires_at <= %s",
            "reserve": f"INSERT INTO {r} (id, estimate_usd, expires_at) VALUES (%s, %s, %s)",
            "spent": f"SELECT COALESCE(sum(cost_usd), 0) FROM {t} WHERE {{since}}",
            "pending": f"SELECT COALESCE(sum(estimate_usd), 0) FROM {r} WHERE expires_at > %s",
            "records": (f"SELECT id, {cols} FROM {t} WHERE {{since}} ORDER BY ts, recorded_at, id"),
            "totals": f"SELECT {sql.TOTALS} FROM {t} WHERE {{since}} AND {_OK} GROUP BY model",
            "tiers": (
                f"SELECT model, tier, count(*) FROM {t} WHERE kind <> 'cache_hit'"
                f" AND tier IS NOT NULL AND {{since}} AND {_OK} GROUP BY model, tier"
            ),
            "malformed": f"SELECT id FROM {t} WHERE {{since}} AND {_OK} IS NOT TRUE",
            "clear": f"TRUNCATE {t}, {r}",
        }

    # -- schema --------------------------------------------------------------------

    def _ddl(self, _dim: int | None) -> list[str]:
        t, r = self.table, self._reservations
        return [
            f"CREATE TABLE IF NOT EXISTS {t} ("
            " id uuid PRIMARY KEY,"
            " model text NOT NULL,"
            " kind text NOT NULL CHECK (kind IN ('call', 'cache_hit', 'cascade_attempt')),"
            " tier text,"
            " input_tokens bigint NOT NULL DEFAULT 0,"
            " output_tokens bigint NOT NULL DEFAULT 0,"
            " cache_read_tokens bigint NOT NULL DEFAULT 0,"
            " cache_write_tokens bigint NOT NULL DEFAULT 0,"
            " reasoning_tokens bigint NOT NULL DEFAULT 0,"
            " cost_usd double precision,"
            " saved_usd double precision,"
            " baseline_model text,"
            " baseline_cost_usd double precision,"
            " tags jsonb NOT NULL DEFAULT '{}'::jsonb,"
            " ts double precision NOT NULL,"
            " run_id text,"
            " estimated boolean NOT NULL DEFAULT false,"
            " recorded_at timestamptz NOT NULL DEFAULT clock_timestamp())",
            # Budgets sum cost_usd over a period: an index-only scan on (ts, cost_usd).
            f"CREATE INDEX IF NOT EXISTS {t}_ts ON {t} (ts) INCLUDE (cost_usd)",
            f"CREATE TABLE IF NOT EXISTS {r} ("
            " id uuid PRIMARY KEY,"
            " estimate_usd double precision NOT NULL,"
            " expires_at double precision NOT NULL,"
            " created_at timestamptz NOT NULL DEFAULT now())",
        ]

    def _decide(self, row: VersionRow) -> tuple[int | None, bool]:
        return self._schema.check_version(row), row is None

    def _ensure(self) -> Steps[None]:
        """Create the tables on first use (as for the store: no DDL once they exist)."""
        if self._ready:
            return
        done, _ = yield from self._schema.existing(self._decide)
        if not done and self.read_only:
            raise ValueError(
                f"table {self.table!r} holds no costopt ledger (nothing was created: "
                "check the table= name)"
            )
        if not done:
            yield Transaction(self._schema.create(self._decide, self._ddl))
        if not self.read_only:
            yield from self._add_missing_columns()
        self._ready = True

    def _add_missing_columns(self) -> Steps[None]:
        """Columns added since a table was created (``estimated``), added once: the
        catalog is read without a lock; ``ALTER TABLE`` runs only when one is missing."""
        row = yield Sql(
            "SELECT count(*) FROM pg_attribute WHERE attrelid = to_regclass(%s)"
            " AND attname = 'estimated' AND NOT attisdropped",
            (self.table,),
            "one",
        )
        if row[0]:
            return
        alter = (
            f"ALTER TABLE {self.table} ADD COLUMN IF NOT EXISTS"
            " estimated boolean NOT NULL DEFAULT false"
        )
        yield Transaction(statements(self._schema.lock(), Sql(alter)))

    def _query(self, name: str, since: float | None, fetch: Fetch = "one") -> Sql:
        """Query ``name`` with its ``{since}`` condition on the records' timestamps."""
        where, params = _since(since)
        return Sql(self._sql[name].format(since=where), params, fetch)

    def _run(self, step: Sql | Callable[[], Steps[T]]) -> Any:
        """Create the tables on first use, then run ``step``: one statement, or steps in
        one transaction (made anew for the retry after a broken connection)."""

        def steps() -> Steps[Any]:
            yield from self._ensure()
            return (yield step if isinstance(step, Sql) else Transaction(step()))

        return self._db.run(steps)

    # -- the database (SQLLedger's hooks) --------------------------------------------

    def _check_open(self) -> None:
        self._db.check_open()

    def _write(self, record_id: str, record: CostRecord, reservation_id: str | None) -> None:
        values = sql.record_values(record, tags=_tags_to_db, text=to_db)
        # The id is the client's: a retried insert of the same record is a no-op.
        write = [Sql(self._sql["insert"], (uuid.UUID(record_id), *values))]
        settle = _uuid_or_none(reservation_id)
        if settle is not None:
            write.append(Sql(self._sql["settle"], (settle,)))
        self._run(lambda: statements(*write))

    def _reserve(
        self, estimate: float, budgets: list[Budget], ttl: float, now: float
    ) -> BudgetCheck:
        # One statement, one snapshot: live reservations and spend per budget period.
        columns = [f"(SELECT COALESCE(sum(estimate_usd), 0) FROM {self._reservations})"]
        params: list[Any] = []
        for budget in budgets:
            spent = self._query("spent", budget.start(now))
            columns.append(f"({spent.query})")
            params.extend(spent.params)
        totals = Sql("SELECT " + ", ".join(columns), params, "one")
        reservation_id = uuid.uuid4()

        def check() -> Steps[BudgetCheck]:
            # Serializes check-and-reserve between processes; record() needs no lock
            # because it inserts the spend and drops the reservation atomically.
            yield self._schema.lock()
            yield Sql(self._sql["expire"], (now,))
            row = yield totals
            pending = float(row[0])
            for budget, spent in zip(budgets, row[1:], strict=True):
                unwritten = self._unwritten_since(budget.start(now))
                used = float(spent) + unwritten + pending
                if not admits(used, estimate, budget):
                    return BudgetCheck(False, None, budget, used)
            yield Sql(self._sql["reserve"], (reservation_id, estimate, now + ttl))
            return BudgetCheck(True, str(reservation_id))

        return self._run(check)

    def _release(self, reservation_id: str) -> None:
        settle = _uuid_or_none(reservation_id)
        if settle is not None:
            self._run(Sql(self._sql["settle"], (settle,)))

    def _spent(self, since: float | None) -> float:
        return float(self._run(self._query("spent", since))[0])

    def _summary(self, since: float | None) -> LedgerSummary:
        def read() -> Steps[tuple[list[Any], list[Any], list[Any]]]:
            # REPEATABLE READ: both queries see the same records.
            yield Sql("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            models = yield self._query("totals", since, "all")
            tiers = yield self._query("tiers", since, "all")
            bad = yield self._query("malformed", since, "all")
            return models, tiers, bad

        models, tiers, bad = self._run(read)
        self.skip_malformed(row[0] for row in bad)
        return sql.summary_from_rows(models, tiers, text=from_db)

    def _records(self, since: float | None) -> list[CostRecord]:
        rows = self._run(self._query("records", since, "all"))
        return sql.records_from_rows(rows, self.malformed, tags=json_from_db, text=from_db)

    @property
    def reserved_usd(self) -> float:
        """Estimates of the live reservations (calls admitted, not yet recorded)."""
        return float(self._run(Sql(self._sql["pending"], (time.time(),), "one"))[0])

    def clear(self) -> None:
        """Delete every record and reservation of this ledger's tables."""
        self._run(Sql(self._sql["clear"]))

    def _close(self) -> None:
        self._db.close()

    def __repr__(self) -> str:
        return f"PostgresLedger({self._db.where!r}, table={self.table!r})"


__all__ = ["PostgresLedger"]
