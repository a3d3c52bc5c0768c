"""SQLiteLedger specifics (issue 16): processes sharing one file never pass a budget,
a write that fails is kept and written later, the file says what it holds. The
contract itself (totals, reservations, restart) is in test_ledger_contract.py."""

from __future__ import annotations

import logging
import multiprocessing
import sqlite3
import threading
import time
from concurrent.futures import ProcessPoolExecutor

import pytest

from costopt_core import SQLiteLedger
from costopt_core.ledger import Budget, CostRecord
from costopt_core.stores.ledger_sql import Backlog


def _spend_until_refused(path: str, cost: float, limit: float, start: object) -> int:
    ledger = SQLiteLedger(path)
    start.wait(timeout=60)  # type: ignore[attr-defined]  # all four begin together
    calls = 0
    while True:
        check = ledger.reserve(cost, [Budget(limit, "month")])
        if not check.allowed:
            break
        time.sleep(0.002)  # the call in flight: other processes check meanwhile
        ledger.record(CostRecord(model="m", cost_usd=cost), reservation_id=check.reservation_id)
        calls += 1
    ledger.close()
    return calls


def test_four_processes_sharing_one_file_never_pass_a_budget(tmp_path):
    path = str(tmp_path / "shared.db")
    cost, limit = 0.01, 0.405
    SQLiteLedger(path).close()  # the tables exist before the race
    context = multiprocessing.get_context("spawn")
    with context.Manager() as manager, ProcessPoolExecutor(4, mp_context=context) as pool:
        start = manager.Barrier(4)
        futures = [pool.submit(_spend_until_refused, path, cost, limit, start) for _ in range(4)]
        counts = [f.result(timeout=120) for f in futures]
    with SQLiteLedger(path) as ledger:
        spent = ledger.spent_since()
        assert spent <= limit  # never over
        assert sum(counts) == 40  # exactly what fits: nothing left unspent either
        assert spent == pytest.approx(0.40)
        assert len(ledger.records()) == 40 and ledger.reserved_usd == 0.0
    assert sum(1 for c in counts if c > 0) >= 2  # the processes really competed


def test_a_write_that_fails_is_kept_counted_and_written_later(tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(Backlog, "retry_every", 0.0)
    path = tmp_path / "spend.db"
    ledger = SQLiteLedger(path, timeout=0.05)
    ledger.record(CostRecord("m", cost_usd=0.25))
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")  # another process holds the write lock too long
    with caplog.at_level(logging.WARNING):
        ledger.record(CostRecord("m", cost_usd=0.5, tags={"n": "kept"}))  # never raises
    assert "kept in memory" in caplog.text
    assert ledger.unwritten == 1
    assert ledger.spent_since() == pytest.approx(0.75)  # counted all the same
    assert [r.tags for r in ledger.records()] == [{}, {"n": "kept"}]
    assert ledger.summary().total_cost == pytest.approx(0.75)
    blocker.execute("ROLLBACK")
    assert not ledger.reserve(0.3, [Budget(1.0)]).allowed  # 0.75 + 0.3 > 1.0
    ledger.record(CostRecord("m", cost_usd=0.125))  # the kept one is written first
    assert ledger.unwritten == 0
    ledger.close()
    with SQLiteLedger(path) as reopened:  # on disk, each once
        assert reopened.spent_since() == pytest.approx(0.875)
        assert len(reopened.records()) == 3


def test_a_budget_check_during_a_flush_counts_the_records_being_written(tmp_path, monkeypatch):
    monkeypatch.setattr(Backlog, "retry_every", 0.0)
    path = tmp_path / "spend.db"
    ledger = SQLiteLedger(path, timeout=0.05)
    ledger.record(CostRecord("m", cost_usd=0.25))
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    ledger.record(CostRecord("m", cost_usd=0.5))  # kept in memory
    blocker.execute("ROLLBACK")
    writing, go = threading.Event(), threading.Event()
    write = ledger._write

    def slow_write(*args):  # the kept record's retry, held between backlog and file
        writing.set()
        go.wait(5)
        write(*args)

    monkeypatch.setattr(ledger, "_write", slow_write)
    flusher = threading.Thread(target=ledger.record, args=(CostRecord("m", cost_usd=0.0),))
    flusher.start()
    assert writing.wait(5)
    try:
        assert not ledger.reserve(0.3, [Budget(1.0)]).allowed  # 0.25 + 0.5 + 0.3 > 1.0
    finally:
        go.set()
        flusher.join(5)
    assert ledger.spent_since() == pytest.approx(0.75)
    ledger.close()


def test_close_writes_what_was_kept(tmp_path, monkeypatch):
    monkeypatch.setattr(Backlog, "retry_every", 3600.0)  # no retry before close
    path = tmp_path / "spend.db"
    ledger = SQLiteLedger(path, timeout=0.05)
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    ledger.record(CostRecord("m", cost_usd=0.5))
    blocker.execute("ROLLBACK")
    ledger.close()
    with SQLiteLedger(path) as reopened:
        assert reopened.spent_since() == 0.5


def test_the_file_says_what_it_holds(tmp_path):
    path = tmp_path / "spend.db"
    SQLiteLedger(path).close()
    with sqlite3.connect(path) as conn:
        meta = dict(conn.execute("SELECT key, value FROM costopt_ledger_meta"))
        assert meta == {"kind": "ledger", "schema_version": "1"}
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        conn.execute("UPDATE costopt_ledger_meta SET value = '7' WHERE key = 'schema_version'")
    with pytest.raises(RuntimeError, match="newer costopt"):
        SQLiteLedger(path)
    with SQLiteLedger(path, table="other_ledger") as other:  # one file, several ledgers
        other.record(CostRecord("m", cost_usd=1.0))


def test_arguments_are_checked(tmp_path):
    with pytest.raises(ValueError, match="path must be a file"):
        SQLiteLedger(":memory:")
    with pytest.raises(ValueError, match="table must be a lowercase SQL identifier"):
        SQLiteLedger(tmp_path / "x.db", table="spend; DROP TABLE x")
    with pytest.raises(ValueError, match="timeout must be a number > 0"):
        SQLiteLedger(tmp_path / "x.db", timeout=0)
    ledger = SQLiteLedger(tmp_path / "x.db")
    with pytest.raises(ValueError, match="ttl_seconds must be a finite number >= 0"):
        ledger.reserve(0.1, [Budget(1.0)], ttl_seconds=float("inf"))
    with pytest.raises(TypeError, match="Budget objects"):
        ledger.reserve(0.1, [1.0])  # type: ignore[list-item]
    ledger.close()
    with pytest.raises(RuntimeError, match="closed"):
        ledger.spent_since()


def test_a_cost_handlers_monthly_budget_survives_a_restart(tmp_path):
    from costopt_core.ledger import BudgetExceededError
    from costopt_core.pricing import set_price
    from langchain_costopt import CostCallbackHandler
    from langchain_costopt.simulated import SimulatedChatModel

    set_price("sqlite-ledger-test-model", input_per_token=1e-6, output_per_token=2e-6)
    model = SimulatedChatModel(
        model_name="sqlite-ledger-test-model", answer="Fine, thanks.", max_tokens=4
    )
    path = tmp_path / "spend.db"

    def run_process() -> int:
        """One process life: calls until the month's budget refuses one."""
        ledger = SQLiteLedger(path)
        handler = CostCallbackHandler(monthly_budget_usd=budget, ledger=ledger)
        calls = 0
        try:
            while calls < 100:
                model.invoke("How are you today?", config={"callbacks": [handler]})
                calls += 1
                if calls == 3:
                    break  # the process stops (a deploy) before the budget is spent
        except BudgetExceededError:
            pass
        ledger.close()
        return calls

    usage = model.invoke("How are you today?").usage_metadata
    call_cost = usage["input_tokens"] * 1e-6 + usage["output_tokens"] * 2e-6
    budget = 5.5 * call_cost
    assert run_process() == 3
    assert run_process() == 2  # the restarted process knows 3 calls were spent
    with SQLiteLedger(path) as ledger:
        assert ledger.spent_since() == pytest.approx(5 * call_cost)
        assert ledger.spent_since() <= budget


def test_iter_records_streams_what_records_returns_in_chunks(tmp_path):
    path = tmp_path / "spend.db"
    ledger = SQLiteLedger(path)
    for i in range(10):
        ledger.record(CostRecord("m", cost_usd=0.1 * i, timestamp=1000.0 + i))
    with sqlite3.connect(path) as conn:  # a row written by hand: no cost record
        conn.execute(
            "INSERT INTO costopt_ledger (id, model, kind, cost_usd, ts) VALUES (?, ?, ?, ?, ?)",
            ("bad", "m", "call", "abc", 1003.5),
        )
    assert list(ledger.iter_records(chunk_rows=3)) == ledger.records()
    assert ledger.malformed_rows == 1
    later = [r.timestamp for r in ledger.iter_records(1005.0, chunk_rows=4)]
    assert later == [1005.0, 1006.0, 1007.0, 1008.0, 1009.0]
    with pytest.raises(ValueError, match="chunk_rows must be a positive int"):
        ledger.iter_records(chunk_rows=0)
    ledger.close()
    with pytest.raises(RuntimeError, match="closed"):
        ledger.iter_records()


def test_the_ledger_records_while_its_records_are_walked(tmp_path):
    ledger = SQLiteLedger(tmp_path / "spend.db")
    for i in range(5):
        ledger.record(CostRecord("m", cost_usd=1.0, timestamp=1000.0 + i))
    walk = ledger.iter_records(chunk_rows=2)
    first = next(walk)
    ledger.record(CostRecord("m", cost_usd=7.0, timestamp=2000.0))  # no deadlock, no error
    assert ledger.summary().total_cost == 12.0
    assert [first, *walk][-1].timestamp == 1004.0  # one snapshot: the walk began before
    assert len(ledger.records()) == 6
    ledger.close()


def _ledger_with_a_kept_record(path, monkeypatch):
    """A ledger holding 3 records in its file and one ('late') kept in memory."""
    monkeypatch.setattr(Backlog, "retry_every", 0.0)  # the next record retries it
    ledger = SQLiteLedger(path, timeout=0.05)
    for i in range(3):
        ledger.record(CostRecord("m", cost_usd=1.0, timestamp=1000.0 + i))
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")  # another process holds the write lock
    ledger.record(CostRecord("late", cost_usd=0.5, timestamp=2000.0))
    blocker.execute("ROLLBACK")
    blocker.close()
    assert ledger.unwritten == 1
    return ledger


def test_a_kept_record_written_during_a_walk_is_walked_once(tmp_path, monkeypatch):
    ledger = _ledger_with_a_kept_record(tmp_path / "spend.db", monkeypatch)
    assert [r.model for r in ledger.iter_records()] == ["m", "m", "m", "late"]
    walk = ledger.iter_records(chunk_rows=1)
    first = next(walk)  # the walk began: 'late' was kept in memory, not in the file
    ledger.record(CostRecord("next", cost_usd=0.25, timestamp=3000.0))  # writes 'late'
    assert ledger.unwritten == 0
    assert [r.model for r in [first, *walk]] == ["m", "m", "m", "late"]
    assert [r.model for r in ledger.iter_records()] == ["m", "m", "m", "late", "next"]
    assert list(ledger.iter_records()) == ledger.records()
    ledger.close()


def test_a_walk_begun_while_a_kept_record_is_being_written_walks_it(tmp_path, monkeypatch):
    # The backlog lets go of a record before its retry commits: a walk that begins in
    # between finds it neither kept nor in the file, unless the ledger still holds it.
    ledger = _ledger_with_a_kept_record(tmp_path / "spend.db", monkeypatch)
    taken, go = threading.Event(), threading.Event()
    write = ledger._write

    def slow_write(*args):
        taken.set()
        assert go.wait(10)
        write(*args)

    monkeypatch.setattr(ledger, "_write", slow_write)
    writer = threading.Thread(target=ledger.record, args=(CostRecord("next", timestamp=3000.0),))
    writer.start()
    assert taken.wait(10)  # 'late' left the backlog, its write not yet begun
    walk = ledger.iter_records()
    first = next(walk)
    go.set()
    writer.join(10)
    assert [r.model for r in [first, *walk]] == ["m", "m", "m", "late"]
    ledger.close()


def test_opening_a_table_the_file_lacks_names_the_ledgers_it_holds(tmp_path):
    from costopt_core.stores.sqlite_ledger import LedgerTableNotFound

    path = tmp_path / "tb.db"
    SQLiteLedger(path, table="team_a").close()
    with pytest.raises(LedgerTableNotFound, match=r"ledger table 'team_a' \(pass table='team_a'\)"):
        SQLiteLedger(path, read_only=True)
    empty = tmp_path / "empty.db"
    sqlite3.connect(empty).close()
    with pytest.raises(ValueError, match=r"no table 'costopt_ledger'\)$") as caught:
        SQLiteLedger(empty, read_only=True)
    assert caught.value.tables == ()  # type: ignore[attr-defined]
