"""A ledger that cannot check a budget (locked, busy, down) refuses the call by default
(issue 16: a SQLite write lock held past the ledger's timeout let calls through at
124-390 % of the budget; a PostgreSQL pool timeout taken for an outage, 3429 %), and
spend recorded after a call is never lost to a ledger error."""

from __future__ import annotations

import contextlib
import logging
import threading
import time
import uuid
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest

from costopt_core import set_price
from costopt_core.accounting import CostAccountant, CostHandlerBase
from costopt_core.budget_gate import CallQuote
from costopt_core.ledger import Budget, BudgetExceededError, CostLedger, TokenUsage
from costopt_core.stores.sqlite_ledger import SQLiteLedger

set_price("lederr-cheap", input_per_token=1e-6, output_per_token=4e-6)
set_price("lederr-strong", input_per_token=1e-5, output_per_token=3e-5)


class DownLedger(CostLedger):
    """A ledger whose budget checks fail (its records are kept as usual)."""

    def reserve(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        raise ConnectionError("database down")


def test_a_budget_the_ledger_cannot_check_refuses_the_call(caplog) -> None:
    acct = CostAccountant(budget_usd=1.0, ledger=DownLedger())
    with caplog.at_level(logging.ERROR):
        for _ in range(20):
            with pytest.raises(BudgetExceededError) as refused:
                acct.admit_call("lederr-cheap", 100, 10)
            with pytest.raises(BudgetExceededError):
                acct.admit([CallQuote("lederr-cheap", 100, 10)])
            with pytest.raises(BudgetExceededError):
                acct.before_call()
    message = str(refused.value)
    assert message.startswith("cost budget not checked: the cost ledger failed")
    assert "ConnectionError: database down" in message
    assert "on_ledger_error='allow'" in message  # the way out is named
    assert isinstance(refused.value.ledger_error, ConnectionError)
    assert refused.value.budget is None
    # Logged in full once, not a traceback per refused call.
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and "the call is refused" in errors[0].getMessage()


def test_downgrade_refuses_too_when_the_ledger_cannot_check() -> None:
    acct = CostAccountant(budget_usd=1.0, on_budget="downgrade", ledger=DownLedger())
    tiers = [CallQuote("lederr-cheap", 100, 10), CallQuote("lederr-strong", 100, 10)]
    with pytest.raises(BudgetExceededError, match="not checked"):
        acct.admit(tiers, routed=True)


class CheapOnlyDown(CostLedger):
    """Refuses the strong tier's maximum, then fails on the cheap tier's check."""

    def reserve(self, estimate_usd, budgets, **kwargs):  # type: ignore[no-untyped-def]
        if estimate_usd < 0.001:
            raise TimeoutError("database is locked")
        return super().reserve(estimate_usd, budgets, **kwargs)


def test_a_downgrade_whose_cheap_check_fails_is_refused() -> None:
    acct = CostAccountant(budget_usd=0.001, on_budget="downgrade", ledger=CheapOnlyDown())
    tiers = [CallQuote("lederr-cheap", 100, 10), CallQuote("lederr-strong", 100, 100)]
    with pytest.raises(BudgetExceededError, match="database is locked"):
        acct.admit(tiers, routed=True)


@pytest.mark.parametrize(
    ("options", "fault"),
    [({"on_ledger_error": "allow"}, "the call goes ahead"), ({"on_budget": "warn"}, "goes ahead")],
)
def test_allow_and_warn_let_the_call_go_with_the_fault_logged(options, fault, caplog) -> None:
    acct = CostAccountant(budget_usd=1.0, ledger=DownLedger(), **options)
    with caplog.at_level(logging.ERROR):
        assert acct.admit_call("lederr-cheap", 100, 10) is None
        assert acct.admit([CallQuote("lederr-cheap", 100, 10)]) == (None, False)
    assert fault in caplog.text and "database down" in caplog.text


def test_on_ledger_error_is_checked_and_reaches_both_faces() -> None:
    with pytest.raises(ValueError, match="on_ledger_error must be one of"):
        CostAccountant(on_ledger_error="ignore")  # type: ignore[arg-type]

    class Handler(CostHandlerBase):
        pass

    assert Handler(budget_usd=1.0).accountant.on_ledger_error == "refuse"
    assert Handler(on_ledger_error="allow").accountant.on_ledger_error == "allow"


def test_a_locked_sqlite_ledger_refuses_until_it_answers(locked_sqlite) -> None:
    path, holder = locked_sqlite
    ledger = SQLiteLedger(path, timeout=0.1)
    acct = CostAccountant(budget_usd=0.0105, ledger=ledger)  # room for 10 calls of $0.001
    holder.execute("BEGIN IMMEDIATE")
    with pytest.raises(BudgetExceededError, match="database is locked"):
        acct.admit_call("lederr-cheap", 200, 200)  # $0.001 at most
    holder.execute("COMMIT")
    admitted = 0
    for _ in range(15):
        try:
            reservation = acct.admit_call("lederr-cheap", 200, 200)
        except BudgetExceededError:
            continue
        acct.record_call("lederr-cheap", TokenUsage(200, 200), reservation_id=reservation)
        admitted += 1
    assert admitted == 10 and acct.total_cost == pytest.approx(0.01)
    ledger.close()


def test_spend_recorded_while_the_ledger_is_locked_is_kept(locked_sqlite) -> None:
    path, holder = locked_sqlite
    ledger = SQLiteLedger(path, timeout=0.1)
    acct = CostAccountant(budget_usd=1.0, ledger=ledger)
    reservation = acct.admit_call("lederr-strong", 1000, 500)
    holder.execute("BEGIN IMMEDIATE")  # taken while the call runs
    acct.record_call("lederr-strong", TokenUsage(1000, 500), reservation_id=reservation)
    assert ledger.unwritten == 1  # kept in memory, never raised into the call
    assert acct.total_cost == pytest.approx(0.025)  # and counted against the budget
    assert acct.budget_status()[0]["spent_usd"] == pytest.approx(0.025)
    holder.execute("COMMIT")
    ledger.close()
    with SQLiteLedger(path) as reopened:
        assert reopened.spent_since(None) == pytest.approx(0.025)


# -- PostgreSQL: a busy pool is not an outage, a pool that makes no progress is ------------


class GatedPool:
    """Builds a ``psycopg_pool.ConnectionPool`` of ``slots`` fake connections whose
    statements wait while ``answering`` is clear (a server that stopped answering), and
    whose callers wait ``timeout`` seconds for a free one."""

    @staticmethod
    def make(slots: int, timeout: float) -> Any:
        psycopg = pytest.importorskip("psycopg")
        psycopg_pool = pytest.importorskip("psycopg_pool")
        idle = SimpleNamespace(transaction_status=psycopg.pq.TransactionStatus.IDLE)

        class Conn:
            info = idle
            adapters = SimpleNamespace(register_dumper=lambda *args: None)

            def __init__(self, pool: Any) -> None:
                self.pool = pool

            def execute(self, query: str, params: Any = ()) -> Any:
                self.pool.answering.wait()
                time.sleep(self.pool.hold)
                return SimpleNamespace(fetchone=lambda: (1,), rowcount=1)

        class Pool(psycopg_pool.ConnectionPool):
            def __init__(self) -> None:
                super().__init__("dbname=fake", open=False)
                self.free = threading.Semaphore(slots)
                self.answering = threading.Event()
                self.answering.set()
                self.hold = 0.0

            @contextlib.contextmanager
            def connection(self, timeout: float | None = None) -> Iterator[Any]:
                if not self.free.acquire(timeout=timeout_s):
                    raise psycopg_pool.PoolTimeout(f"couldn't get a connection after {timeout_s}")
                try:
                    yield Conn(self)
                finally:
                    self.free.release()

        timeout_s = timeout
        return Pool()


def _connector(pool: Any, pool_timeout: float) -> Any:
    from costopt_core.stores.postgres.connection import Connector

    return Connector(
        None, pool, pool_size=1, connect_timeout=1.0, pool_timeout=pool_timeout, name="test"
    )


def _select_one() -> Any:
    from costopt_core.stores.postgres.steps import Sql

    row = yield Sql("SELECT 1", fetch="one")
    return row


def _run_in_thread(connector: Any) -> threading.Thread:
    thread = threading.Thread(target=lambda: connector.run(_select_one), daemon=True)
    thread.start()
    return thread


def test_a_pool_held_by_a_server_that_stopped_answering_marks_it_down() -> None:
    from psycopg_pool import PoolTimeout

    from costopt_core.stores.postgres.connection import PostgresConnectionError

    pool = GatedPool.make(slots=1, timeout=0.5)
    connector = _connector(pool, 0.5)
    assert connector.run(_select_one) == (1,)
    pool.answering.clear()  # the server freezes (SIGSTOP, a partition without a reset)
    hung = _run_in_thread(connector)
    time.sleep(0.3)
    with pytest.raises(PoolTimeout):
        connector.run(_select_one)  # waits pool_timeout: the hung call holds the pool
    # Nothing held made progress for pool_timeout: the server is down for retry_after,
    # and the next operation fails at once. Before, each one waited out pool_timeout
    # and failed, for as long as the server stayed frozen (every budgeted call 1.00 s).
    started = time.monotonic()
    with pytest.raises(PostgresConnectionError, match="next attempt in"):
        connector.run(_select_one)
    assert time.monotonic() - started < 0.2
    pool.answering.set()
    hung.join(timeout=5)


def test_a_pool_timeout_while_held_operations_end_is_busy_not_down() -> None:
    from psycopg_pool import PoolTimeout

    pool = GatedPool.make(slots=1, timeout=1.0)
    pool.hold = 0.6  # each operation takes 0.6 s: a slow server, still answering
    connector = _connector(pool, 1.0)
    first, second = _run_in_thread(connector), None
    time.sleep(0.05)
    second = _run_in_thread(connector)  # gets the connection at ~0.6 s, ends ~1.2 s
    time.sleep(0.05)
    with pytest.raises(PoolTimeout):
        connector.run(_select_one)  # waits from 0.1 s to 1.1 s: one ended at 0.6 s
    # Busy, not down: the next operation is tried and answered.
    assert connector.run(_select_one) == (1,)
    first.join(timeout=5)
    second.join(timeout=5)


def test_a_pool_held_past_pool_timeout_by_a_lock_marks_the_server_down(pg_server) -> None:
    psycopg = pytest.importorskip("psycopg")
    from psycopg_pool import PoolTimeout

    from costopt_core.stores.postgres import PostgresLedger

    table = f"le_{uuid.uuid4().hex[:12]}"
    # One pooled connection: a check waiting on the table lock holds it, the next one
    # times out waiting for the pool.
    ledger = PostgresLedger(
        pg_server.dsn, table=table, pool_size=1, pool_timeout=0.5, retry_after=0.5
    )
    acct = CostAccountant(budget_usd=1.0, ledger=ledger)
    budgets = [Budget(1.0)]
    assert ledger.reserve(0.01, budgets).allowed  # tables made, pool open
    locker = psycopg.connect(pg_server.dsn, autocommit=True)
    try:
        locker.execute("BEGIN")
        locker.execute(f"LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE")
        waiting = threading.Thread(target=ledger.reserve, args=(0.01, budgets))
        waiting.start()
        time.sleep(0.3)  # it holds the pool's only connection, waiting for the lock
        with pytest.raises(PoolTimeout):
            ledger.reserve(0.01, budgets)
        # Held for pool_timeout without an answer, as by a server that stopped
        # answering: down for retry_after, a budgeted call refused at once.
        started = time.monotonic()
        with pytest.raises(BudgetExceededError, match="next attempt in"):
            acct.admit_call("lederr-cheap", 100, 10)
        assert time.monotonic() - started < 0.2
        locker.execute("COMMIT")
        waiting.join()
        time.sleep(0.6)  # retry_after
        assert ledger.reserve(0.01, budgets).allowed
    finally:
        locker.close()
        ledger.close()
