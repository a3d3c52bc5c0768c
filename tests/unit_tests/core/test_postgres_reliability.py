"""PostgreSQL store and ledger that hold (issue 16): NUL characters stored losslessly,
malformed rows skipped and counted, spend kept through an outage, older ledger tables
upgraded. Against the real server of the ``pg_server`` fixture (tests/conftest.py)."""

from __future__ import annotations

import logging
import time
import uuid

import numpy as np
import pytest

from costopt_core.ledger import CostRecord
from costopt_core.stores.base import CacheEntry, normalize_vector
from costopt_core.stores.ledger_sql import Backlog

psycopg = pytest.importorskip(
    "psycopg", reason='needs the [postgres] extra: pip install -e ".[dev]"'
)
from costopt_core.stores.postgres import PostgresLedger, PostgresStore  # noqa: E402

DIM = 8
NUL = "\x00"


def vec(seed: int) -> np.ndarray:
    return normalize_vector(np.random.default_rng(seed).standard_normal(DIM))


@pytest.fixture
def table() -> str:
    return f"r_{uuid.uuid4().hex[:12]}"


@pytest.fixture
def store(pg_server, table):
    s = PostgresStore(pg_server.dsn, table=table)
    yield s
    s.close()


def test_cache_text_with_nul_characters_is_stored_losslessly(store):
    partition = f"tenant{NUL}a"
    text = f"what is{NUL} 100%?"
    response = f'{{"answer": "a{NUL}b"}}'
    metadata = {f"model{NUL}": f"gpt{NUL}", "tokens": [1, f"x{NUL}"]}
    store.upsert(CacheEntry(partition, text, vec(1), response, 0.0, metadata=metadata))
    store.upsert(CacheEntry("tenant", text.replace(NUL, ""), vec(1), "other", 0.0))
    found = store.get_exact(partition, text, now=1.0, ttl_seconds=None)
    assert (found.text, found.response, found.metadata) == (text, response, metadata)
    hit = store.search(partition, vec(1), now=1.0, ttl_seconds=None)[0]
    assert (hit.entry.partition, hit.entry.text, hit.entry.response) == (partition, text, response)
    store.record_hit(partition, text, now=2.0)
    assert store.get_exact(partition, text, now=3.0, ttl_seconds=None).hit_count == 1
    assert store.count(partition) == 1 and store.count("tenant") == 1  # never crossed
    store.clear(partition)
    assert store.count() == 1


def test_a_malformed_row_is_skipped_and_counted(pg_server, store, table, caplog):
    for i in range(3):
        store.upsert(CacheEntry("p", f"good-{i}", vec(i), f"answer {i}", 0.0))
    with psycopg.connect(pg_server.dsn, autocommit=True) as conn:  # another program's write
        conn.execute(f"UPDATE {table} SET metadata = '[1, 2]'::jsonb WHERE text = 'good-1'")
        conn.execute(f"UPDATE {table} SET created_at = 'NaN' WHERE text = 'good-2'")
    with caplog.at_level(logging.WARNING):
        assert store.get_exact("p", "good-1", now=1.0, ttl_seconds=None) is None
        hits = store.search("p", vec(1), k=3, now=1.0, ttl_seconds=None)
    assert [h.entry.text for h in hits] == ["good-0"]  # the others are skipped, not raised
    assert store.get_exact("p", "good-0", now=1.0, ttl_seconds=None).response == "answer 0"
    assert store.stats == {"malformed_rows": 2}
    assert caplog.text.count("malformed row") == 1


def test_spend_recorded_during_an_outage_is_kept_and_written_after(
    pg_server, table, monkeypatch, caplog
):
    monkeypatch.setattr(Backlog, "retry_every", 0.0)
    ledger = PostgresLedger(pg_server.dsn, table=table, retry_after=0.0, pool_timeout=1)
    ledger.record(CostRecord("m", cost_usd=0.25))
    pg_server.stop()
    try:
        with caplog.at_level(logging.WARNING):
            ledger.record(CostRecord("m", cost_usd=0.5, run_id="during"))  # never raises
        assert ledger.unwritten == 1
        assert "kept in memory" in caplog.text
    finally:
        pg_server.start()
    for _ in range(40):  # the pool reconnects in the background: wait until it answers
        try:
            assert ledger.spent_since() == pytest.approx(0.75)  # the kept record counts
            break
        except (psycopg.Error, ConnectionError):
            time.sleep(0.25)
    ledger.record(CostRecord("m", cost_usd=0.125, run_id="after"))  # writes the kept one too
    assert ledger.unwritten == 0
    assert ledger.spent_since() == pytest.approx(0.875)
    assert sorted(r.run_id or "" for r in ledger.records()) == ["", "after", "during"]
    ledger.close()


def test_an_older_ledger_table_gets_the_estimated_column(pg_server, table):
    with PostgresLedger(pg_server.dsn, table=table) as ledger:
        ledger.record(CostRecord("m", cost_usd=0.25))
    with psycopg.connect(pg_server.dsn, autocommit=True) as conn:  # as created before it
        conn.execute(f"ALTER TABLE {table} DROP COLUMN estimated")
    with PostgresLedger(pg_server.dsn, table=table) as ledger:
        ledger.record(CostRecord("m", cost_usd=0.5, estimated=True))
        assert [r.estimated for r in ledger.records()] == [False, True]
        assert ledger.summary().models["m"].estimated_events == 1
