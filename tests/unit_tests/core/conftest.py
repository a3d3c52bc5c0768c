"""Fixtures shared by the engine's tests."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator

import pytest

from costopt_core.ledger import CostLedger, LedgerProtocol
from costopt_core.stores.sqlite_ledger import SQLiteLedger


@pytest.fixture
def open_ledger(request, tmp_path) -> Iterator[Callable[[], LedgerProtocol]]:
    """A function opening (and re-opening: a restart) the same ledger."""
    kind = request.param
    opened: list = []
    if kind == "memory":
        ledger = CostLedger()

        def make() -> LedgerProtocol:
            return ledger
    elif kind == "sqlite":

        def make() -> LedgerProtocol:
            opened.append(SQLiteLedger(tmp_path / "ledger.db"))
            return opened[-1]
    else:
        pytest.importorskip("psycopg", reason='needs the [postgres] extra: pip install -e ".[dev]"')
        from costopt_core.stores.postgres import PostgresLedger

        dsn = request.getfixturevalue("pg_server").dsn
        table = f"l_{uuid.uuid4().hex[:12]}"

        def make() -> LedgerProtocol:
            opened.append(PostgresLedger(dsn, table=table))
            return opened[-1]

    yield make
    for ledger in opened:
        ledger.close()
