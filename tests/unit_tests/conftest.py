"""Fixtures the unit tests of several packages share."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from costopt_core.batch.imitation import ImitationBatchServer
from costopt_core.stores.sqlite_ledger import SQLiteLedger


@pytest.fixture
def batch_server() -> Iterator[ImitationBatchServer]:
    """A local imitation of OpenAI's and Anthropic's batch APIs (real HTTP), answering
    after 20 ms."""
    with ImitationBatchServer(processing_s=0.02) as imitation:
        yield imitation


@pytest.fixture
def locked_sqlite(tmp_path: Path) -> Iterator[tuple[Path, sqlite3.Connection]]:
    """A ledger file and a connection that takes its write lock with ``BEGIN IMMEDIATE``
    (another process's long write)."""
    path = tmp_path / "spend.db"
    SQLiteLedger(path).close()  # tables made before the lock is taken
    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    yield path, holder
    if holder.in_transaction:
        holder.execute("COMMIT")
    holder.close()
