"""The SQL ledgers keep every record and read back whatever a file or table holds: text
that is not valid Unicode is stored escaped instead of failing every write, and rows
damaged or written by hand are skipped and counted instead of breaking every read."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator

import pytest

from costopt_core.ledger import CostRecord
from costopt_core.stores.ledger_sql import SQLLedger
from costopt_core.stores.sqlite_ledger import SQLiteLedger

PERSISTENT = ("sqlite", "postgres")


@pytest.fixture
def open_ledger(request, tmp_path) -> Iterator[Callable[[], SQLLedger]]:
    """A function opening (and re-opening: a restart) the same SQL ledger."""
    opened: list[SQLLedger] = []
    if request.param == "sqlite":

        def make() -> SQLLedger:
            opened.append(SQLiteLedger(tmp_path / "ledger.db"))
            return opened[-1]
    else:
        pytest.importorskip("psycopg", reason='needs the [postgres] extra: pip install -e ".[dev]"')
        from costopt_core.stores.postgres import PostgresLedger

        dsn = request.getfixturevalue("pg_server").dsn
        table = f"l_{uuid.uuid4().hex[:12]}"

        def make() -> SQLLedger:
            opened.append(PostgresLedger(dsn, table=table))
            return opened[-1]

    yield make
    for ledger in opened:
        ledger.close()


@pytest.mark.parametrize("open_ledger", PERSISTENT, indirect=True)
def test_a_lone_surrogate_in_a_record_is_stored_escaped_and_its_spend_survives_a_restart(
    open_ledger,
):
    ledger = open_ledger()
    odd = "model\udcff"  # what os.fsdecode makes of an undecodable byte
    ledger.record(CostRecord(odd, tier=odd, cost_usd=1.0, tags={odd: odd}, timestamp=10.0))
    ledger.record(CostRecord("good", cost_usd=0.5, timestamp=11.0))
    assert ledger.unwritten == 0  # written, not kept in memory to fail at every retry
    ledger.close()
    ledger = open_ledger()  # a restart: the $1 call is still there
    assert ledger.spent_since() == pytest.approx(1.5)
    first = ledger.records()[0]
    escaped = "model\\udcff"
    assert (first.model, first.tier, dict(first.tags)) == (escaped, escaped, {escaped: escaped})
    assert sorted(ledger.summary().models) == ["good", escaped]
