"""Stores and ledgers made before ``os.fork()`` (gunicorn --preload, Celery prefork)
work in every child: no shared sockets, no hang, nothing lost. PostgreSQL against the
real server of the ``pg_server`` fixture (tests/conftest.py)."""

from __future__ import annotations

import logging
import os
import signal
import time
import traceback
import uuid
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from costopt_core.ledger import Budget, CostRecord
from costopt_core.stores.base import CacheEntry, normalize_vector
from costopt_core.stores.sqlite import SQLiteStore
from costopt_core.stores.sqlite_ledger import SQLiteLedger

CHILDREN = 3
CALLS = 5


class _Complaints(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def _fork(work: Callable[[int], None], reports: Path) -> list[int]:
    """Run ``work(k)`` in ``CHILDREN`` forked children; each writes what went wrong
    (an exception or a warning logged by costopt) to ``reports/<k>``."""
    pids = []
    for k in range(CHILDREN):
        pid = os.fork()
        if pid == 0:  # the child: never return into pytest
            status = 1
            try:
                complaints = _Complaints()
                logging.getLogger("costopt_core").addHandler(complaints)
                try:
                    work(k)
                    problems = complaints.messages
                except BaseException:
                    problems = [traceback.format_exc(), *complaints.messages]
                (reports / str(k)).write_text("\n".join(problems))
                status = 0
            finally:
                os._exit(status)
        pids.append(pid)
    return pids


def _wait(pids: list[int], reports: Path, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    left = set(pids)
    codes = {}
    while left and time.monotonic() < deadline:
        for pid in list(left):
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                codes[pid] = os.waitstatus_to_exitcode(status)
                left.discard(pid)
        time.sleep(0.01)
    for pid in left:  # hung: the test fails, the child does not outlive it
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    assert not left, f"{len(left)} of {len(pids)} children hung"
    assert all(code == 0 for code in codes.values()), codes
    problems = {p.name: p.read_text() for p in sorted(reports.iterdir())}
    assert len(problems) == len(pids)
    assert all(text == "" for text in problems.values()), problems


def _vector(seed: int) -> np.ndarray:
    return normalize_vector(np.random.default_rng(seed).normal(size=8))


def _use_ledger(ledger, cost: float) -> None:
    for _ in range(CALLS):
        check = ledger.reserve(cost, [Budget(100.0)])
        assert check.allowed
        ledger.record(CostRecord("m", cost_usd=cost), check.reservation_id)
    assert ledger.spent_since() >= CALLS * cost


def _use_store(store, who: str, seed: int) -> None:
    for i in range(CALLS):
        text = f"{who} question {i}"
        store.upsert(CacheEntry("p", text, _vector(seed + i), f"{who} answer {i}", time.time()))
        found = store.get_exact("p", text, now=time.time(), ttl_seconds=None)
        assert found is not None and found.response == f"{who} answer {i}"
    hits = store.search("p", _vector(0), now=time.time(), ttl_seconds=None)
    assert hits and hits[0].entry.response == "parent answer"  # the entry from before the fork


def _check_shared_use(ledger, store, reopen_ledger, reopen_store, tmp_path: Path) -> None:
    """Parent and children spend and cache at the same time; every figure adds up."""
    ledger.record(CostRecord("m", cost_usd=1.0))
    store.upsert(CacheEntry("p", "before fork", _vector(0), "parent answer", time.time()))
    reports = tmp_path / "reports"
    reports.mkdir()

    def child(k: int) -> None:
        _use_ledger(ledger, 0.01 * (k + 1))
        _use_store(store, f"child {k}", 1000 * (k + 1))

    pids = _fork(child, reports)
    _use_ledger(ledger, 0.5)  # the parent keeps working meanwhile
    _use_store(store, "parent", 50_000)
    _wait(pids, reports)
    ledger.close()
    store.close()
    expected = 1.0 + CALLS * (0.5 + sum(0.01 * (k + 1) for k in range(CHILDREN)))
    with reopen_ledger() as again:
        summary = again.summary()
        assert summary.total_cost == pytest.approx(expected)
        assert summary.calls == 1 + CALLS * (CHILDREN + 1)
        assert again.reserved_usd == 0.0
    with reopen_store() as again:
        assert again.count() == 1 + CALLS * (CHILDREN + 1)


def test_postgres_store_and_ledger_made_before_a_fork_work_in_every_child(
    pg_server, tmp_path
) -> None:
    pytest.importorskip("psycopg", reason='needs the [postgres] extra: pip install -e ".[dev]"')
    from costopt_core.stores.postgres import PostgresLedger, PostgresStore

    dsn, suffix = pg_server.dsn, uuid.uuid4().hex[:10]
    _check_shared_use(
        PostgresLedger(dsn, table=f"l_{suffix}"),
        PostgresStore(dsn, table=f"c_{suffix}"),
        lambda: PostgresLedger(dsn, table=f"l_{suffix}"),
        lambda: PostgresStore(dsn, table=f"c_{suffix}"),
        tmp_path,
    )


def test_sqlite_store_and_ledger_made_before_a_fork_work_in_every_child(tmp_path) -> None:
    ledger_path, cache_path = tmp_path / "ledger.db", tmp_path / "cache.db"
    _check_shared_use(
        SQLiteLedger(ledger_path),
        SQLiteStore(cache_path),
        lambda: SQLiteLedger(ledger_path),
        lambda: SQLiteStore(cache_path),
        tmp_path,
    )


def test_a_childs_sqlite_records_outlive_the_parent_closing_its_ledger(tmp_path) -> None:
    # The child took no real file lock through the inherited connection: the parent's
    # close saw no other user and deleted the write-ahead log, and the child's records
    # went into the deleted file.
    path = tmp_path / "ledger.db"
    ledger = SQLiteLedger(path)
    ledger.record(CostRecord("m", cost_usd=1.0))
    parent_closed_r, parent_closed_w = os.pipe()
    reports = tmp_path / "reports"
    reports.mkdir()

    def child(k: int) -> None:
        os.read(parent_closed_r, 1)
        for _ in range(CALLS):
            ledger.record(CostRecord("m", cost_usd=1.0))
        assert ledger.unwritten == 0

    pids = _fork(child, reports)
    ledger.close()
    os.write(parent_closed_w, b"x" * CHILDREN)
    _wait(pids, reports)
    with SQLiteLedger(path) as again:
        assert again.summary().total_cost == pytest.approx(1.0 + CHILDREN * CALLS)
