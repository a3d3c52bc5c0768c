"""Tables of the PostgreSQL store and ledger: names, the version row, creation.

Each store or ledger owns a main table ``<table>`` and a ``<table>_schema`` row holding
what the table is (``kind``), the schema version and, for the cache, the vector size.
Creation runs under a transaction-level advisory lock, so replicas starting together do
not race; once every relation exists, a replica only reads the version row (re-running
the DDL would take table locks that deadlock against other replicas' writes). A table
written by a newer costopt is refused, not silently misread.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from costopt_core.stores.ledger_sql import check_table
from costopt_core.stores.postgres.steps import Sql, Steps

#: Version of the tables this package writes; bumped on any incompatible change.
SCHEMA_VERSION = 1

#: A version row ``(kind, version, dim)``, or ``None`` when there is none yet.
VersionRow = tuple[Any, ...] | None

#: From the version row: the vector size to use (``None`` for none) and whether to
#: write the row (it is missing).
Decide = Callable[[VersionRow], tuple[int | None, bool]]


class Schema:
    """The version row and creation protocol shared by the store and the ledger.

    ``relations`` are the tables and indexes besides the version table that must all
    exist for the schema to count as created.
    """

    def __init__(self, table: str, kind: str, relations: Sequence[str]) -> None:
        self.table = table
        self.kind = kind
        self.version_table = f"{table}_schema"
        self.lock_key = f"costopt:{kind}:{table}"
        self.relations = (self.version_table, *relations)
        self._present_sql = "SELECT " + " AND ".join(
            ["to_regclass(%s) IS NOT NULL"] * len(self.relations)
        )

    def lock(self) -> Sql:
        """Serializes, until the transaction ends, everything done under this lock."""
        return Sql("SELECT pg_advisory_xact_lock(hashtext(%s))", (self.lock_key,))

    def present(self) -> Steps[bool]:
        """Whether every relation exists (``to_regclass`` takes no lock)."""
        row = yield Sql(self._present_sql, self.relations, "one")
        return bool(row[0])

    def version_table_exists(self) -> Steps[bool]:
        """Whether the version table exists."""
        row = yield Sql("SELECT to_regclass(%s) IS NOT NULL", (self.version_table,), "one")
        return bool(row[0])

    def version_row(self) -> Steps[VersionRow]:
        """The version row ``(kind, version, dim)``, or ``None``."""
        return (yield Sql(f"SELECT kind, version, dim FROM {self.version_table}", (), "one"))

    def check_version(self, row: VersionRow) -> int | None:
        """Validate the version row ``(kind, version, dim)``; return the stored dim."""
        if row is None:
            return None
        kind, version, dim = row
        if kind != self.kind:
            raise ValueError(
                f"table {self.table!r} holds a costopt {kind}, not a {self.kind}: "
                f"choose another table= name"
            )
        if version > SCHEMA_VERSION:
            raise RuntimeError(
                f"table {self.table!r} was written by a newer costopt (schema version "
                f"{version}, this one reads {SCHEMA_VERSION}): upgrade costopt-llm"
            )
        return dim

    def existing(self, decide: Decide) -> Steps[tuple[bool, int | None]]:
        """``(True, dim)`` when everything exists and the version row needs no write:
        the fast path, without locks."""
        if (yield from self.present()):
            dim, write = decide((yield from self.version_row()))
            if not write:
                return True, dim
        return False, None

    def create(self, decide: Decide, ddl: Callable[[int | None], list[str]]) -> Steps[int | None]:
        """Create what is missing; run inside a transaction. ``ddl(dim)`` are the
        statements (``IF NOT EXISTS``) for that vector size; returns the size."""
        yield self.lock()
        yield Sql(
            f"CREATE TABLE IF NOT EXISTS {self.version_table} ("
            " singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),"
            " kind text NOT NULL, version integer NOT NULL, dim integer,"
            " created_at timestamptz NOT NULL DEFAULT now())"
        )
        dim, write = decide((yield from self.version_row()))
        created = ddl(dim)
        if created and (yield from self.present()):
            return dim  # another replica created it while we waited for the lock
        if write:
            yield Sql(
                f"INSERT INTO {self.version_table} (kind, version, dim) VALUES (%s, %s, %s)",
                (self.kind, SCHEMA_VERSION, dim),
            )
        for statement in created:
            yield Sql(statement)
        return dim


__all__ = ["SCHEMA_VERSION", "Decide", "Schema", "VersionRow", "check_table"]
