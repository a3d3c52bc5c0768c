"""The SQL ledgers keep every record and read back whatever a file or table holds: text
that is not valid Unicode is stored escaped instead of failing every write, and rows
damaged or written by hand are skipped and counted instead of breaking every read."""

from __future__ import annotations

import hashlib
import logging
import sqlite3
import subprocess
import sys
import time
import uuid

import pytest

from costopt_core.cli import main
from costopt_core.commands.report import LedgerReport
from costopt_core.commands.report_render import to_html
from costopt_core.ledger import CostRecord
from costopt_core.stores.sqlite_ledger import SQLiteLedger

PERSISTENT = ("sqlite", "postgres")


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


def _add_sqlite_rows(path: str, rows: list[tuple[object, ...]]) -> None:
    """Rows written by hand (or by another program) into a SQLite ledger."""
    with sqlite3.connect(path) as conn:
        conn.executemany(
            "INSERT INTO costopt_ledger (id, model, kind, cost_usd, tags, ts, input_tokens)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            rows,
        )


def test_malformed_sqlite_rows_are_skipped_and_counted_by_every_read(tmp_path, caplog, capsys):
    path = str(tmp_path / "ledger.db")
    with SQLiteLedger(path) as ledger:
        ledger.record(CostRecord("m", tier="simple", cost_usd=0.5, timestamp=1000.0))
    _add_sqlite_rows(
        path,
        [
            ("x1", "m", "call", "abc", "{}", 1001.0, 0),  # a text cost
            ("x2", "m", "call", 0.1, "not json", 1002.0, 0),
            ("x3", "m", "call", 0.1, "[1, 2]", 1003.0, 0),  # JSON, not an object
            ("x4", "m", "call", 0.1, "{}", "yesterday", 0),  # a text timestamp
            ("x5", "m", "weird", 0.1, "{}", 1004.0, 0),
            ("x6", "m", "call", 0.1, "{}", 1005.0, -3),  # negative tokens
            ("x7", "m", "call", 0.1, "{}", 1006.0, 2.5),  # a fraction of a token
        ],
    )
    with SQLiteLedger(path) as ledger, caplog.at_level(logging.WARNING):
        assert [r.cost_usd for r in ledger.records()] == [0.5]
        assert ledger.malformed_rows == 7
        summary = ledger.summary()  # a text cost no longer breaks max(cost_usd)
        assert summary.total_cost == pytest.approx(0.5)
        assert summary.models["m"].calls == 1 and summary.models["m"].tiers == {"simple": 1}
        assert ledger.malformed_rows == 7  # the same rows, counted once
    assert sum("malformed row" in r.getMessage() for r in caplog.records) == 1  # logged once
    assert main(["report", path]) == 0
    out = capsys.readouterr().out
    assert "1 events" in out and "7 malformed ledger row(s) skipped" in out


def test_malformed_postgres_rows_are_skipped_and_counted(pg_server):
    psycopg = pytest.importorskip("psycopg")
    from costopt_core.stores.postgres import PostgresLedger

    table = f"l_{uuid.uuid4().hex[:12]}"
    with PostgresLedger(pg_server.dsn, table=table) as ledger:
        ledger.record(CostRecord("m", cost_usd=0.5, timestamp=1000.0))
        with psycopg.connect(pg_server.dsn, autocommit=True) as conn:
            for cost, tags, ts, tokens in [
                ("NaN", "{}", 1001.0, 0),
                ("0.1", "[1, 2]", 1002.0, 0),
                ("0.1", "{}", "Infinity", 0),
                ("0.1", "{}", 1003.0, -3),
            ]:
                conn.execute(
                    f"INSERT INTO {table} (id, model, kind, cost_usd, tags, ts, input_tokens)"
                    " VALUES (%s, 'm', 'call', %s::float8, %s::jsonb, %s::float8, %s)",
                    (uuid.uuid4(), cost, tags, ts, tokens),
                )
        assert [r.cost_usd for r in ledger.records()] == [0.5]
        assert ledger.summary().total_cost == pytest.approx(0.5)  # not NaN
        assert ledger.malformed_rows == 4


def test_a_report_reads_a_ledger_without_writing_to_it(tmp_path, capsys):
    path = tmp_path / "ledger.db"
    with SQLiteLedger(path) as ledger:
        ledger.record(CostRecord("m", cost_usd=0.5, timestamp=1000.0))
    with sqlite3.connect(path) as conn:  # as copied off a server, or a rollback-journal file
        conn.execute("PRAGMA journal_mode=DELETE")
    before = path.read_bytes()
    assert main(["report", str(path)]) == 0
    assert "1 events" in capsys.readouterr().out
    # Nothing written: a read-only disk or another user's file reads as well.
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ledger.db"]
    with SQLiteLedger(path, read_only=True) as ledger:
        assert ledger.spent_since() == 0.5
        with pytest.raises(RuntimeError, match="read_only"):
            ledger.record(CostRecord("m", cost_usd=0.1))


def test_a_ledger_path_that_cannot_be_opened_is_named(tmp_path):
    with pytest.raises(sqlite3.OperationalError, match=f"unable to open.*{tmp_path}"):
        SQLiteLedger(tmp_path)  # a directory, as a read-only one fails: SQLite names no path


def test_a_report_on_an_unreachable_server_is_one_error_line(tmp_path, capsys):
    pytest.importorskip("psycopg", reason='needs the [postgres] extra: pip install -e ".[dev]"')
    dsn = f"postgresql://postgres@/postgres?host={tmp_path}&connect_timeout=1"  # no server
    assert main(["report", dsn]) == 2
    err = capsys.readouterr().err
    assert err.startswith("costopt report: error: cannot connect to PostgreSQL")
    assert err.count("\n") == 1


def test_since_past_the_last_record_says_so(tmp_path, capsys):
    path = tmp_path / "ledger.db"
    with SQLiteLedger(path) as ledger:
        ledger.record(CostRecord("m", cost_usd=0.5, timestamp=1000.0))
    assert main(["report", str(path), "--since", "2030-01-01"]) == 0
    assert capsys.readouterr().out == "costopt report: no records since 2030-01-01\n"


def test_a_report_piped_into_a_reader_that_leaves_ends_quietly(tmp_path):
    path = tmp_path / "ledger.db"
    with SQLiteLedger(path) as ledger:
        ledger.record(CostRecord("m", cost_usd=0.5, timestamp=1000.0))
    code = f"from costopt_core.cli import main; raise SystemExit(main(['report', {str(path)!r}]))"
    child = subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    child.stdout.close()  # `| head -0`: the reader is gone before the report is printed
    err = child.stderr.read().decode()
    child.wait(timeout=60)
    assert "Traceback" not in err and "BrokenPipeError" not in err, err


def test_html_says_unknown_for_a_model_with_only_unpriced_calls():
    report = LedgerReport.from_records([CostRecord("mystery", cost_usd=None, timestamp=0.0)])
    page = to_html(report)
    assert "spend unknown" in page
    assert "spend $0.000000" not in page and "$0.0000 spent" not in page


def test_postgres_cache_metadata_that_is_json_but_not_an_object_is_named_so(pg_server, caplog):
    psycopg = pytest.importorskip("psycopg")
    from costopt_core.stores.base import CacheEntry, normalize_vector
    from costopt_core.stores.postgres import PostgresStore

    table = f"c_{uuid.uuid4().hex[:12]}"
    store = PostgresStore(pg_server.dsn, dim=4, table=table)
    try:
        vector = normalize_vector([1, 2, 3, 4])
        store.upsert(CacheEntry("P", "good", vector, "GOOD", created_at=time.time()))
        with psycopg.connect(pg_server.dsn, autocommit=True) as conn:
            conn.execute(
                f"INSERT INTO {table} (partition, text_hash, text, embedding, response,"
                " created_at, metadata) VALUES ('P', %s, 'bad', '[1,2,3,4]', 'BAD',"
                " extract(epoch from now()), '[1, 2]'::jsonb)",
                (hashlib.sha256(b"bad").digest(),),
            )
        with caplog.at_level(logging.WARNING):
            assert store.get_exact("P", "bad", now=time.time(), ttl_seconds=None) is None
    finally:
        store.close()
    assert "metadata is not a JSON object: [1, 2]" in caplog.text


def test_a_report_never_creates_a_postgres_ledger(pg_server, capsys):
    # A mistyped --table made an empty ledger table on the server.
    pytest.importorskip("psycopg", reason='needs the [postgres] extra: pip install -e ".[dev]"')
    import psycopg

    from costopt_core.stores.postgres import PostgresLedger

    table = f"typo_{uuid.uuid4().hex[:10]}"
    assert main(["report", pg_server.dsn, "--table", table]) == 2
    assert "holds no costopt ledger" in capsys.readouterr().err
    with psycopg.connect(pg_server.dsn) as conn:
        (exists,) = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (table,)).fetchone()
    assert not exists
    real = f"real_{uuid.uuid4().hex[:10]}"
    with PostgresLedger(pg_server.dsn, table=real) as ledger:
        ledger.record(CostRecord("m", cost_usd=0.5, timestamp=1000.0))
    reader = PostgresLedger(pg_server.dsn, table=real, read_only=True)
    try:
        assert reader.summary().total_cost == 0.5
        with pytest.raises(RuntimeError, match="read_only=True"):
            reader.record(CostRecord("m", cost_usd=0.5))
    finally:
        reader.close()
