"""A PostgreSQL store keeps to its pool size, however many calls start at once. Against
the real server of the ``pg_server`` fixture (tests/conftest.py)."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid

import numpy as np
import pytest

from costopt_core.stores.base import normalize_vector

psycopg = pytest.importorskip(
    "psycopg", reason='needs the [postgres] extra: pip install -e ".[dev]"'
)
from costopt_core.stores.postgres import PostgresStore  # noqa: E402


def _client_connections(dsn: str) -> int:
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute(
            "select count(*) from pg_stat_activity where backend_type = 'client backend'"
        ).fetchone()
    return int(row[0])


def test_concurrent_first_async_lookups_open_one_pool(pg_server) -> None:
    # Each of 100 concurrent first lookups opened its own pool (all but one closed again
    # after): together they took every connection the server allows, and other clients
    # got "too many clients".
    before = _client_connections(pg_server.dsn)
    store = PostgresStore(pg_server.dsn, dim=4, table=f"t_{uuid.uuid4().hex[:10]}", pool_size=2)
    store.clear()  # the table exists and the sync pool is open: only the async pool is new
    vector = normalize_vector(np.ones(4))
    peak = [0]
    done = threading.Event()

    def watch() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], _client_connections(pg_server.dsn))
            time.sleep(0.005)

    watcher = threading.Thread(target=watch)
    watcher.start()

    async def lookups() -> None:
        found = await asyncio.gather(
            *(store.asearch("p", vector, now=time.time(), ttl_seconds=None) for _ in range(60)),
            return_exceptions=True,  # every task ends: none is left to cancel
        )
        assert found == [[]] * 60

    try:
        asyncio.run(lookups())
    finally:
        done.set()
        watcher.join()
        store.close()
    # The sync pool and one async pool (2 each at most), and the watcher's connection.
    assert peak[0] - before <= 2 * 2 + 1
