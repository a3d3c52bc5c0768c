"""PostgreSQL + pgvector: one semantic cache and one cost ledger shared by many replicas.

Example:
    .. code-block:: python

        from costopt_core.stores.postgres import PostgresLedger, PostgresStore
        from langchain_costopt import CostCallbackHandler, HashingEmbeddings, SemanticLLMCache

        dsn = "postgresql://app:secret@db.internal:5432/app"
        cache = SemanticLLMCache(HashingEmbeddings(), store=PostgresStore(dsn))
        handler = CostCallbackHandler(budget_usd=50.0, ledger=PostgresLedger(dsn))

Needs the extra ``pip install "costopt-llm[postgres]"`` (psycopg 3, psycopg-pool) and
the ``vector`` extension (pgvector >= 0.8 for filtered HNSW scans) in the database.

How it works
------------
* Connection: a DSN (the store opens its own ``psycopg_pool`` pools, sync and one per
  event loop for async) or an existing ``ConnectionPool`` / ``AsyncConnectionPool``.
  A bad DSN is a ``ValueError`` at construction; an unreachable server is a
  :class:`PostgresConnectionError` naming host and database (never the password) at
  first use, within ``connect_timeout`` seconds. When a pooled connection breaks (the
  server restarted), the pool is checked and the operation retried once. While the
  server stays unreachable, calls fail at once for ``retry_after`` seconds, so an
  outage never adds a timeout to every LLM call (the cache and cost handler log the
  error and let the call through).
* Schema: created on first use, under an advisory lock so replicas starting together
  do not race, with a ``<table>_schema`` row holding the schema version and the vector
  size. A database written by a newer costopt is refused, not silently misread.
* Cache entries: keyed by ``(partition, sha256(text))`` (unique index; the full text is
  compared too), the partition key leading that index for exact lookups, an HNSW index
  on the vectors with ``vector_cosine_ops``. Vectors travel in pgvector's binary
  format. Searches use pgvector's iterative index scan so a filter on the partition
  and the TTL still finds neighbours; a small partition is served by the partition
  index and an exact sort, as the planner sees fit. Hit counts and last-use times live
  in ``<table>_usage``: a hit is ``hit_count = hit_count + 1`` there and never rewrites
  the vector row or its HNSW entry. TTL and the LRU size limit are ``DELETE``
  statements.
* Ledger: one row per priced event; budgets are checked inside a transaction holding
  ``pg_advisory_xact_lock``: expired reservations dropped, spend plus live
  reservations read in one snapshot, the reservation inserted; so replicas spending
  against one budget together overshoot it by at most one call's cost. Recording a
  call inserts its row and settles its reservation in one transaction.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import math
import re
import struct
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

from costopt_core.ledger import (
    Budget,
    BudgetCheck,
    CostRecord,
    LedgerSummary,
    ModelTotals,
    _check_estimate,
    admits,
)
from costopt_core.stores.base import (
    CacheEntry,
    CacheStore,
    SearchHit,
    check_partition,
    check_vector,
)

if TYPE_CHECKING:
    import psycopg

logger = logging.getLogger(__name__)

T = TypeVar("T")

#: A ``psycopg_pool.ConnectionPool`` or ``AsyncConnectionPool``.
AnyPool = Any

#: Version of the tables this module writes; bumped on any incompatible change.
SCHEMA_VERSION = 1

#: pgvector's HNSW index on ``vector`` columns holds at most this many dimensions.
MAX_HNSW_DIM = 2000

_INSTALL_HINT = 'pip install "costopt-llm[postgres]"'
_TABLE_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,39}$")


class PostgresConnectionError(ConnectionError):
    """The PostgreSQL server named by the DSN could not be reached or refused us."""


class _VectorParam:
    """A vector sent in pgvector's binary format (dim, 0, big-endian float32 values):
    about 20x cheaper than its text form for 384 dimensions."""

    __slots__ = ("data",)
    dumper: Any = None  # set when psycopg is imported

    def __init__(self, vector: np.ndarray) -> None:
        self.data = struct.pack(">HH", vector.shape[0], 0) + vector.astype(">f4").tobytes()


_registered = False


def _import_psycopg() -> tuple[Any, Any]:
    global _registered
    try:
        import psycopg
        import psycopg_pool
    except ImportError as exc:  # the optional extra is not installed
        raise ImportError(
            f"PostgreSQL support needs psycopg 3 and psycopg-pool: {_INSTALL_HINT} ({exc})"
        ) from exc
    if not _registered:

        class VectorDumper(psycopg.adapt.Dumper):
            format = psycopg.pq.Format.BINARY
            # Type left unspecified: every query casts the parameter (``%s::vector``), so
            # the server reads it with vector's binary input. No per-connection type
            # lookup, and only our private class is adapted, never a user's objects.
            oid = 0

            def dump(self, obj: _VectorParam) -> bytes:
                return obj.data

        psycopg.adapters.register_dumper(_VectorParam, VectorDumper)
        _VectorParam.dumper = VectorDumper
        _registered = True
    return psycopg, psycopg_pool


def describe_dsn(dsn: str) -> str:
    """A DSN with its password left out, for messages and logs.

    Example:
        >>> describe_dsn("postgresql://app:secret@db:5432/prod")
        'host=db port=5432 dbname=prod user=app'
    """
    psycopg, _ = _import_psycopg()
    try:
        params = psycopg.conninfo.conninfo_to_dict(dsn)
    except psycopg.ProgrammingError:
        return "<invalid DSN>"
    keys = ("host", "hostaddr", "port", "dbname", "user")
    return " ".join(f"{k}={params[k]}" for k in keys if params.get(k)) or "<default libpq DSN>"


def _check_table(table: str, what: str) -> str:
    if not isinstance(table, str) or not _TABLE_NAME.match(table):
        raise ValueError(
            f"{what} must be a lowercase SQL identifier of at most 40 characters "
            f"(letters, digits, underscore; not starting with a digit), got {table!r}"
        )
    return table


def _positive(name: str, value: Any, *, integer: bool = False) -> Any:
    kind = int if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kind) or not value > 0:
        raise ValueError(
            f"{name} must be a {'positive int' if integer else 'number > 0'}, got {value!r}"
        )
    return value


def _non_negative(name: str, value: Any) -> Any:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value >= 0:
        raise ValueError(f"{name} must be a number >= 0, got {value!r}")
    return value


class _Connector:
    """Sync and async connections from a DSN or a user's pool, with one retry when a
    pooled connection turns out to be broken (e.g. after a server restart)."""

    def __init__(
        self,
        dsn: str | None,
        pool: Any,
        *,
        pool_size: int,
        connect_timeout: float,
        pool_timeout: float,
        name: str,
        retry_after: float = 5.0,
        session_sql: str | None = None,
    ) -> None:
        psycopg, psycopg_pool = _import_psycopg()
        self._psycopg = psycopg
        self._pool_mod = psycopg_pool
        if (dsn is None) == (pool is None):
            raise ValueError(
                "pass exactly one of dsn= (a PostgreSQL connection string) or pool= "
                "(a psycopg_pool.ConnectionPool or AsyncConnectionPool)"
            )
        self._sync_pool: Any = None
        self._given_async_pool: Any = None
        self._own_sync = True
        conn_kwargs: dict[str, Any] = {}
        if pool is not None:
            if isinstance(pool, psycopg_pool.ConnectionPool):
                self._sync_pool, self._own_sync = pool, False
            elif isinstance(pool, psycopg_pool.AsyncConnectionPool):
                self._given_async_pool = pool
            else:
                raise TypeError(
                    "pool must be a psycopg_pool.ConnectionPool or AsyncConnectionPool, "
                    f"got {type(pool).__name__}"
                )
            # The other flavour (sync for an async pool and vice versa) is opened on
            # the same server with the same connection arguments.
            dsn = pool.conninfo
            conn_kwargs = {k: v for k, v in (pool.kwargs or {}).items() if k != "autocommit"}
        if not isinstance(dsn, str):
            raise TypeError(f"dsn must be a str, got {type(dsn).__name__}")
        try:
            psycopg.conninfo.conninfo_to_dict(dsn)
        except psycopg.ProgrammingError as exc:
            raise ValueError(f"dsn is not a valid PostgreSQL connection string: {exc}") from exc
        self.dsn = dsn
        self.where = describe_dsn(dsn)
        self._conn_kwargs = {
            "connect_timeout": max(1, math.ceil(connect_timeout)),
            **conn_kwargs,
            "autocommit": True,
        }
        self._pool_size = pool_size
        self._connect_timeout = connect_timeout
        self._pool_timeout = pool_timeout
        self._name = name
        # Session settings for connections of pools opened here (a user's pool keeps its
        # own session state; callers then set what they need per transaction).
        self._session_sql = session_sql
        self._lock = threading.Lock()
        self._async_pools: dict[int, tuple[asyncio.AbstractEventLoop, Any]] = {}
        self._closed = False
        # While the server is unreachable, calls fail at once for ``retry_after``
        # seconds instead of each waiting out a timeout inside the user's LLM call.
        self._retry_after = retry_after
        self._down_until = 0.0
        self._down_reason = ""

    # -- errors --------------------------------------------------------------------

    def _unreachable(self, exc: BaseException) -> PostgresConnectionError:
        return PostgresConnectionError(
            f"cannot connect to PostgreSQL ({self.where}) for the costopt {self._name}: "
            f"{str(exc).strip()}"
        )

    # -- sync ----------------------------------------------------------------------

    def _pool(self) -> Any:
        if self._closed:
            raise RuntimeError(f"this costopt {self._name} is closed")
        pool = self._sync_pool
        if pool is not None:
            return pool
        with self._lock:
            if self._sync_pool is None:
                # A direct connection first: a wrong DSN fails now, with the server's
                # reason, instead of the pool retrying in the background until timeout.
                try:
                    self._psycopg.connect(self.dsn, **self._conn_kwargs).close()
                except self._psycopg.OperationalError as exc:
                    raise self._unreachable(exc) from exc
                pool = self._pool_mod.ConnectionPool(
                    self.dsn,
                    kwargs=dict(self._conn_kwargs),
                    configure=self._configure if self._session_sql else None,
                    min_size=1,
                    max_size=self._pool_size,
                    timeout=self._pool_timeout,
                    name=f"costopt-{self._name}",
                    open=False,
                )
                pool.open(wait=True, timeout=self._connect_timeout)
                self._sync_pool = pool
            return self._sync_pool

    @property
    def sync_configured(self) -> bool:
        """True when sync connections carry ``session_sql`` (the pool is ours)."""
        return self._own_sync

    @property
    def async_configured(self) -> bool:
        return self._given_async_pool is None

    def _configure(self, conn: psycopg.Connection[Any]) -> None:
        conn.execute(self._session_sql)

    async def _aconfigure(self, conn: psycopg.AsyncConnection[Any]) -> None:
        await conn.execute(self._session_sql)

    @contextmanager
    def connection(self) -> Iterator[psycopg.Connection[Any]]:
        with self._pool().connection() as conn:
            yield conn

    def _fail_fast(self) -> None:
        left = self._down_until - time.monotonic()
        if left > 0:
            raise PostgresConnectionError(
                f"PostgreSQL ({self.where}) is unreachable for the costopt {self._name}; "
                f"next attempt in {left:.1f}s. Last error: {self._down_reason}"
            )

    def _connection_lost(self, exc: BaseException) -> bool:
        """A failure of the connection itself (not of a statement): worth a retry on a
        fresh connection, and a sign the server may be down."""
        if isinstance(exc, PostgresConnectionError | self._pool_mod.PoolTimeout):
            return True
        if not isinstance(exc, self._psycopg.OperationalError):
            return False
        state = getattr(exc, "sqlstate", None)
        # No SQLSTATE: the client lost the connection; class 08: connection exception;
        # 57P01-03: the server is shutting down or starting.
        return state is None or state.startswith("08") or state in ("57P01", "57P02", "57P03")

    def _retryable(self, exc: BaseException) -> bool:
        # A pool timeout already waited; retrying would only double the wait.
        return self._connection_lost(exc) and not isinstance(exc, self._pool_mod.PoolTimeout)

    def _went_down(self, exc: BaseException) -> None:
        self._down_reason = str(exc).strip()
        self._down_until = time.monotonic() + self._retry_after

    def run(self, fn: Callable[[psycopg.Connection[Any]], T]) -> T:
        """``fn(conn)`` on a pooled connection; retried once on a broken connection."""
        self._fail_fast()
        try:
            result = self._run(fn)
        except Exception as exc:
            if self._connection_lost(exc):
                self._went_down(exc)
            raise
        self._down_until = 0.0
        return result

    def _run(self, fn: Callable[[psycopg.Connection[Any]], T]) -> T:
        for attempt in (1, 2):
            pool = self._pool()
            try:
                with pool.connection() as conn:
                    if not self._own_sync:  # a borrowed connection may predate our dumper
                        conn.adapters.register_dumper(_VectorParam, _VectorParam.dumper)
                    result = fn(conn)
                    if conn.info.transaction_status != self._psycopg.pq.TransactionStatus.IDLE:
                        conn.commit()  # a user's pool may hand out non-autocommit connections
                    return result
            except self._psycopg.OperationalError as exc:
                if attempt == 2 or not self._retryable(exc):
                    raise
                logger.warning(
                    "PostgreSQL connection failed (%s); checking the pool and retrying once: %s",
                    self.where,
                    str(exc).strip(),
                )
                pool.check()
        raise AssertionError("unreachable")

    # -- async ---------------------------------------------------------------------

    async def _apool(self) -> Any:
        if self._closed:
            raise RuntimeError(f"this costopt {self._name} is closed")
        if self._given_async_pool is not None:
            return self._given_async_pool
        # An async pool belongs to the event loop that opened it: one per loop.
        loop = asyncio.get_running_loop()
        found = self._async_pools.get(id(loop))
        if found is not None and found[0] is loop:
            return found[1]
        try:
            conn = await self._psycopg.AsyncConnection.connect(self.dsn, **self._conn_kwargs)
            await conn.close()
        except self._psycopg.OperationalError as exc:
            raise self._unreachable(exc) from exc
        pool = self._pool_mod.AsyncConnectionPool(
            self.dsn,
            kwargs=dict(self._conn_kwargs),
            configure=self._aconfigure if self._session_sql else None,
            min_size=1,
            max_size=self._pool_size,
            timeout=self._pool_timeout,
            name=f"costopt-{self._name}-async",
            open=False,
        )
        await pool.open(wait=True, timeout=self._connect_timeout)
        with self._lock:  # never held across an await
            found = self._async_pools.get(id(loop))
            if found is None or found[0] is not loop:
                # Pools of loops that have ended cannot be awaited any more: drop them.
                for key, (old_loop, _) in list(self._async_pools.items()):
                    if old_loop.is_closed():
                        del self._async_pools[key]
                self._async_pools[id(loop)] = (loop, pool)
                return pool
        await pool.close()  # another task of this loop opened one meanwhile
        return found[1]

    async def arun(self, fn: Callable[[psycopg.AsyncConnection[Any]], Awaitable[T]]) -> T:
        """Async :meth:`run`."""
        self._fail_fast()
        try:
            result = await self._arun(fn)
        except Exception as exc:
            if self._connection_lost(exc):
                self._went_down(exc)
            raise
        self._down_until = 0.0
        return result

    async def _arun(self, fn: Callable[[psycopg.AsyncConnection[Any]], Awaitable[T]]) -> T:
        for attempt in (1, 2):
            pool = await self._apool()
            try:
                async with pool.connection() as conn:
                    if not self.async_configured:
                        conn.adapters.register_dumper(_VectorParam, _VectorParam.dumper)
                    result = await fn(conn)
                    if conn.info.transaction_status != self._psycopg.pq.TransactionStatus.IDLE:
                        await conn.commit()
                    return result
            except self._psycopg.OperationalError as exc:
                if attempt == 2 or not self._retryable(exc):
                    raise
                logger.warning(
                    "PostgreSQL connection failed (%s); checking the pool and retrying once: %s",
                    self.where,
                    str(exc).strip(),
                )
                await pool.check()
        raise AssertionError("unreachable")

    # -- closing -------------------------------------------------------------------

    def close(self) -> None:
        with self._lock:
            self._closed = True
            pool, self._sync_pool = self._sync_pool, None
            async_pools = list(self._async_pools.values())
            self._async_pools.clear()
        if pool is not None and self._own_sync:
            pool.close()
        for loop, apool in async_pools:
            # Closing needs the pool's own loop; a loop that is gone took its tasks with it.
            if loop.is_closed():
                continue
            if loop.is_running():
                asyncio.run_coroutine_threadsafe(apool.close(), loop)
            else:
                loop.run_until_complete(apool.close())

    async def aclose(self) -> None:
        loop = asyncio.get_running_loop()
        with self._lock:
            mine = self._async_pools.pop(id(loop), None)
        if mine is not None:
            await mine[1].close()
        await asyncio.to_thread(self.close)


# -- SQL helpers -------------------------------------------------------------------------


def _vector_param(vector: np.ndarray) -> _VectorParam:
    return _VectorParam(vector)


def _text_hash(text: str) -> bytes:
    return hashlib.sha256(text.encode("utf-8")).digest()


def _jsonb(value: Any) -> Any:
    from psycopg.types.json import Jsonb

    return Jsonb(value)


class _Schema:
    """DDL and the version row, shared by the store and the ledger."""

    def __init__(self, table: str, kind: str) -> None:
        self.table = table
        self.kind = kind
        self.version_table = f"{table}_schema"
        self.lock_key = f"costopt:{kind}:{table}"

    def create_version_table(self) -> str:
        return (
            f"CREATE TABLE IF NOT EXISTS {self.version_table} ("
            " singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),"
            " kind text NOT NULL, version integer NOT NULL, dim integer,"
            " created_at timestamptz NOT NULL DEFAULT now())"
        )

    def present_sql(self, relations: Sequence[str]) -> str:
        """One boolean: every relation exists (``to_regclass`` takes no lock)."""
        return "SELECT " + " AND ".join(["to_regclass(%s) IS NOT NULL"] * len(relations))

    def check_version(self, row: tuple[Any, ...] | None) -> int | None:
        """Validate the version row ``(kind, version, dim)``; return the stored dim."""
        if row is None:
            return None
        kind, version, dim = row
        if kind != self.kind:
            raise ValueError(
                f"table {self.table!r} holds a costopt {kind}, not a {self.kind}: "
                f"choose another table= name"
            )
        if version > SCHEMA_VERSION:
            raise RuntimeError(
                f"table {self.table!r} was written by a newer costopt (schema version "
                f"{version}, this one reads {SCHEMA_VERSION}): upgrade costopt-llm"
            )
        return dim


# -- the cache store ---------------------------------------------------------------------


class PostgresStore(CacheStore):
    """Semantic-cache entries in PostgreSQL with a pgvector HNSW index, shared by every
    process and host that opens the same database and ``table``.

    Example:
        .. code-block:: python

            store = PostgresStore("postgresql://app@db/app", dim=384)
            cache = SemanticLLMCache(embeddings, store=store, max_entries=100_000)

    Args:
        dsn: libpq connection string or URI. Exactly one of ``dsn`` and ``pool``.
        pool: an existing ``psycopg_pool.ConnectionPool`` or ``AsyncConnectionPool``;
            the store never closes a pool it did not open.
        table: name of the entries table (``<table>_schema`` holds the version row).
        dim: vector length; otherwise taken from the table, or fixed by the first
            vector stored. At most 2,000 (pgvector's HNSW limit for ``vector``).
        hnsw_m / hnsw_ef_construction: HNSW build parameters (pgvector defaults).
        ef_search: HNSW candidate list per search (recall vs. latency; >= ``k``). The
            default 100 is above pgvector's 40: a missed neighbour costs an LLM call,
            a larger list a few milliseconds (``benchmarks/postgres_lookup.py``).
        max_scan_tuples: how far pgvector's iterative scan walks the index looking
            for entries that pass the partition and TTL filters.
        pool_size: largest number of connections per pool this store opens.
        connect_timeout: seconds to wait for the server when connecting.
        pool_timeout: seconds an operation waits for a free pooled connection.
        retry_after: after the server could not be reached, operations fail at once
            (:class:`PostgresConnectionError`) for this many seconds, so a database
            outage adds no timeout to each LLM call; then one attempt is made again.
        create_extension: run ``CREATE EXTENSION IF NOT EXISTS vector`` when missing
            (needs the privilege; otherwise a database owner runs it once).
        synchronous_commit: wait for the WAL flush on every write. Off by default on
            the pools this store opens: a crash may then lose the last few hundred
            milliseconds of cache writes and hit counts (never corrupt anything), and a
            hit costs one round trip instead of a disk flush.
    """

    def __init__(
        self,
        dsn: str | None = None,
        *,
        pool: AnyPool | None = None,
        table: str = "costopt_cache",
        dim: int | None = None,
        hnsw_m: int = 16,
        hnsw_ef_construction: int = 64,
        ef_search: int = 100,
        max_scan_tuples: int = 20_000,
        pool_size: int = 10,
        connect_timeout: float = 5.0,
        pool_timeout: float = 5.0,
        retry_after: float = 5.0,
        create_extension: bool = True,
        synchronous_commit: bool = False,
    ) -> None:
        _check_table(table, "table")
        if dim is not None:
            _positive("dim", dim, integer=True)
            if dim > MAX_HNSW_DIM:
                raise ValueError(
                    f"dim must be at most {MAX_HNSW_DIM} (pgvector's HNSW limit), got {dim}"
                )
        _positive("hnsw_m", hnsw_m, integer=True)
        _positive("hnsw_ef_construction", hnsw_ef_construction, integer=True)
        _positive("ef_search", ef_search, integer=True)
        _positive("max_scan_tuples", max_scan_tuples, integer=True)
        _positive("pool_size", pool_size, integer=True)
        _positive("connect_timeout", connect_timeout)
        _positive("pool_timeout", pool_timeout)
        _non_negative("retry_after", retry_after)
        if ef_search > 1000:
            raise ValueError(f"ef_search must be at most 1000 (pgvector's limit), got {ef_search}")
        self._db = _Connector(
            dsn,
            pool,
            pool_size=pool_size,
            connect_timeout=connect_timeout,
            pool_timeout=pool_timeout,
            retry_after=retry_after,
            name="cache store",
            # A cache entry or hit count lost in a server crash costs one LLM call, so
            # commits do not wait for the WAL flush (no risk of corruption, only of
            # losing the last few hundred ms of writes). The ledger keeps the default.
            session_sql=(
                f"SET synchronous_commit = {'on' if synchronous_commit else 'off'};"
                " SET hnsw.iterative_scan = relaxed_order;"
                f" SET hnsw.ef_search = {ef_search};"
                f" SET hnsw.max_scan_tuples = {max_scan_tuples}"
            ),
        )
        self.table = table
        self._schema = _Schema(table, "cache")
        self._dim = dim
        self._hnsw = (hnsw_m, hnsw_ef_construction)
        self._ef_search = ef_search
        self._max_scan_tuples = max_scan_tuples
        self._create_extension = create_extension
        self._ready = False  # version row checked and, once dim is known, table created
        self._empty_checked = -math.inf
        self._lock = threading.Lock()
        t, u = table, f"{table}_usage"
        self._relations = (f"{t}_schema", t, u, f"{t}_key", f"{t}_hnsw", f"{u}_lru")
        self._sql = {
            # The entry and its usage row in one statement; an existing key keeps its id.
            "upsert": (
                f"WITH e AS (INSERT INTO {t} (partition, text_hash, text, embedding, response,"
                " created_at, metadata) VALUES (%s, %s, %s, %s::vector, %s, %s, %s)"
                " ON CONFLICT (partition, text_hash) DO UPDATE SET text = EXCLUDED.text,"
                " embedding = EXCLUDED.embedding, response = EXCLUDED.response,"
                " created_at = EXCLUDED.created_at, metadata = EXCLUDED.metadata RETURNING id)"
                f" INSERT INTO {u} (id, last_used_at, hit_count) SELECT id, %s, %s FROM e"
                " ON CONFLICT (id) DO UPDATE SET last_used_at = EXCLUDED.last_used_at,"
                " hit_count = EXCLUDED.hit_count"
            ),
            "exact": (
                "SELECT e.text, e.response, e.created_at,"
                " COALESCE(u.last_used_at, e.created_at), COALESCE(u.hit_count, 0), e.metadata"
                f" FROM {t} e LEFT JOIN {u} u ON u.id = e.id WHERE e.partition = %s"
                " AND e.text_hash = %s AND e.text = %s AND e.created_at >= %s"
            ),
            "search_settings": (
                "SELECT set_config('hnsw.iterative_scan', 'relaxed_order', true),"
                " set_config('hnsw.ef_search', %s, true),"
                " set_config('hnsw.max_scan_tuples', %s, true)"
            ),
            # The inner query is the plain pgvector shape the planner serves from HNSW.
            "search": (
                "SELECT e.text, e.response, e.created_at,"
                " COALESCE(u.last_used_at, e.created_at), COALESCE(u.hit_count, 0),"
                " e.metadata, e.distance FROM (SELECT id, text, response, created_at,"
                f" metadata, embedding <=> %s::vector AS distance FROM {t}"
                " WHERE partition = %s AND created_at >= %s"
                f" ORDER BY embedding <=> %s::vector LIMIT %s) e LEFT JOIN {u} u ON u.id = e.id"
            ),
            # Hits touch only the small usage table: the vector row (and its HNSW entry)
            # is never rewritten by a hit.
            "hit": (
                f"UPDATE {u} u SET hit_count = u.hit_count + 1,"
                f" last_used_at = GREATEST(u.last_used_at, %s) FROM {t} e"
                " WHERE u.id = e.id AND e.partition = %s AND e.text_hash = %s AND e.text = %s"
            ),
            "expire": f"DELETE FROM {t} WHERE created_at < %s",
            # One statement: concurrent callers each delete the current overflow, never
            # more than it (rows another caller already deleted are simply gone).
            "lru": (
                f"DELETE FROM {t} WHERE id IN (SELECT id FROM {u} ORDER BY last_used_at, id"
                f" LIMIT GREATEST((SELECT count(*) FROM {u}) - %s, 0))"
            ),
            "clear_all": f"DELETE FROM {t}",
            "clear": f"DELETE FROM {t} WHERE partition = %s",
            "count_all": f"SELECT count(*) FROM {t}",
            "count": f"SELECT count(*) FROM {t} WHERE partition = %s",
        }

    # -- schema --------------------------------------------------------------------

    def _ddl(self, dim: int) -> list[str]:
        t = self.table
        m, efc = self._hnsw
        return [
            f"CREATE TABLE IF NOT EXISTS {t} ("
            " id bigserial PRIMARY KEY,"
            " partition text NOT NULL,"
            " text_hash bytea NOT NULL,"
            " text text NOT NULL,"
            f" embedding vector({dim}) NOT NULL,"
            " response text NOT NULL,"
            " created_at double precision NOT NULL,"
            " metadata jsonb NOT NULL DEFAULT '{}'::jsonb)",
            # The exact partition key leads the unique key: exact lookups and partition
            # filters use this index.
            f"CREATE UNIQUE INDEX IF NOT EXISTS {t}_key ON {t} (partition, text_hash)",
            f"CREATE INDEX IF NOT EXISTS {t}_created ON {t} (created_at)",
            f"CREATE TABLE IF NOT EXISTS {t}_usage ("
            f" id bigint PRIMARY KEY REFERENCES {t} (id) ON DELETE CASCADE,"
            " last_used_at double precision NOT NULL,"
            " hit_count bigint NOT NULL DEFAULT 0)",
            f"CREATE INDEX IF NOT EXISTS {t}_usage_lru ON {t}_usage (last_used_at, id)",
            f"CREATE INDEX IF NOT EXISTS {t}_hnsw ON {t} USING hnsw"
            f" (embedding vector_cosine_ops) WITH (m = {m}, ef_construction = {efc})",
        ]

    def _fresh_empty(self) -> bool:
        """Whether "nothing stored yet" was seen less than a second ago: an empty
        cache is re-checked at most once a second for a size fixed by another replica."""
        return time.monotonic() - self._empty_checked < 1.0

    def _lock_and_read_version(self) -> tuple[tuple[str, tuple[Any, ...]], ...]:
        """Run in the schema transaction; the last statement reads the version row."""
        return (
            ("SELECT pg_advisory_xact_lock(hashtext(%s))", (self._schema.lock_key,)),
            (self._schema.create_version_table(), ()),
            (f"SELECT kind, version, dim FROM {self._schema.version_table}", ()),
        )

    def _decide(self, row: tuple[Any, ...] | None, new_dim: int | None) -> tuple[int | None, bool]:
        """From the version row: the dim to use and whether to write the row."""
        stored = self._schema.check_version(row)
        wanted = self._dim if self._dim is not None else new_dim
        if stored is not None:
            if wanted is not None and wanted != stored:
                raise ValueError(
                    f"table {self.table!r} holds {stored}-d vectors, got {wanted}-d "
                    "(use another table= for another embedding model)"
                )
            return stored, False
        if wanted is not None and wanted > MAX_HNSW_DIM:
            raise ValueError(
                f"vectors of {wanted} dimensions exceed pgvector's HNSW limit of {MAX_HNSW_DIM}"
            )
        return wanted, wanted is not None

    def _ensure(self, new_dim: int | None = None) -> None:
        """Create or check the schema; with ``new_dim`` fix the vector size if unset."""
        if self._ready and (self._dim is not None or (new_dim is None and self._fresh_empty())):
            return

        present_sql, relations = self._schema.present_sql(self._relations), self._relations
        version_table = self._schema.version_table
        version_sql = f"SELECT kind, version, dim FROM {version_table}"
        version_exists = "SELECT to_regclass(%s) IS NOT NULL"

        def setup(conn: psycopg.Connection[Any]) -> int | None:
            # Fast path, no locks: an earlier run created everything. Re-running the
            # DDL would take table locks that deadlock against other replicas' writes.
            if conn.execute(present_sql, relations).fetchone()[0]:
                dim, write = self._decide(conn.execute(version_sql).fetchone(), new_dim)
                if not write and dim is not None:
                    return dim
            if new_dim is None and self._dim is None:
                # Reading while nothing was ever stored: nothing to create, no lock.
                # Another replica may fix the size any time, so this is asked again.
                if not conn.execute(version_exists, (version_table,)).fetchone()[0]:
                    return None
                if self._schema.check_version(conn.execute(version_sql).fetchone()) is None:
                    return None
            has_ext = conn.execute("SELECT 1 FROM pg_extension WHERE extname = 'vector'")
            if has_ext.fetchone() is None:
                self._require_extension(conn)
            with conn.transaction():
                for query, params in self._lock_and_read_version():
                    cur = conn.execute(query, params)
                dim, write = self._decide(cur.fetchone(), new_dim)
                if dim is not None and conn.execute(present_sql, relations).fetchone()[0]:
                    return dim  # another replica created it while we waited for the lock
                if write:
                    conn.execute(
                        f"INSERT INTO {self._schema.version_table} (kind, version, dim)"
                        " VALUES (%s, %s, %s)",
                        (self._schema.kind, SCHEMA_VERSION, dim),
                    )
                if dim is not None:
                    for statement in self._ddl(dim):
                        conn.execute(statement)
                return dim

        dim = self._db.run(setup)
        with self._lock:
            self._dim = dim
            self._ready = True
            self._empty_checked = time.monotonic()

    async def _aensure(self, new_dim: int | None = None) -> None:
        if self._ready and (self._dim is not None or (new_dim is None and self._fresh_empty())):
            return

        present_sql, relations = self._schema.present_sql(self._relations), self._relations
        version_table = self._schema.version_table
        version_sql = f"SELECT kind, version, dim FROM {version_table}"
        version_exists = "SELECT to_regclass(%s) IS NOT NULL"

        async def present(conn: psycopg.AsyncConnection[Any]) -> bool:
            cur = await conn.execute(present_sql, relations)
            return bool((await cur.fetchone())[0])

        async def setup(conn: psycopg.AsyncConnection[Any]) -> int | None:
            if await present(conn):  # fast path, no locks (see _ensure)
                cur = await conn.execute(version_sql)
                dim, write = self._decide(await cur.fetchone(), new_dim)
                if not write and dim is not None:
                    return dim
            if new_dim is None and self._dim is None:  # see _ensure
                cur = await conn.execute(version_exists, (version_table,))
                if not (await cur.fetchone())[0]:
                    return None
                cur = await conn.execute(version_sql)
                if self._schema.check_version(await cur.fetchone()) is None:
                    return None
            cur = await conn.execute("SELECT 1 FROM pg_extension WHERE extname = 'vector'")
            if await cur.fetchone() is None:
                await self._arequire_extension(conn)
            async with conn.transaction():
                for query, params in self._lock_and_read_version():
                    cur = await conn.execute(query, params)
                dim, write = self._decide(await cur.fetchone(), new_dim)
                if dim is not None and await present(conn):
                    return dim
                if write:
                    await conn.execute(
                        f"INSERT INTO {self._schema.version_table} (kind, version, dim)"
                        " VALUES (%s, %s, %s)",
                        (self._schema.kind, SCHEMA_VERSION, dim),
                    )
                if dim is not None:
                    for statement in self._ddl(dim):
                        await conn.execute(statement)
                return dim

        dim = await self._db.arun(setup)
        with self._lock:
            self._dim = dim
            self._ready = True
            self._empty_checked = time.monotonic()

    def _extension_error(self, exc: BaseException) -> RuntimeError:
        return RuntimeError(
            f"the pgvector extension is not installed in the database ({self._db.where}) "
            f"and could not be created: {str(exc).strip()}. A database owner runs "
            "'CREATE EXTENSION vector;' once (pgvector >= 0.8)."
        )

    def _require_extension(self, conn: psycopg.Connection[Any]) -> None:
        if not self._create_extension:
            raise self._extension_error(RuntimeError("create_extension=False"))
        try:
            with conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(hashtext('costopt:create-extension'))")
                conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
        except self._db._psycopg.OperationalError:
            raise
        except self._db._psycopg.Error as exc:
            raise self._extension_error(exc) from exc

    async def _arequire_extension(self, conn: psycopg.AsyncConnection[Any]) -> None:
        if not self._create_extension:
            raise self._extension_error(RuntimeError("create_extension=False"))
        try:
            async with conn.transaction():
                await conn.execute(
                    "SELECT pg_advisory_xact_lock(hashtext('costopt:create-extension'))"
                )
                await conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
        except self._db._psycopg.OperationalError:
            raise
        except self._db._psycopg.Error as exc:
            raise self._extension_error(exc) from exc

    # -- CacheStore ----------------------------------------------------------------

    @property
    def dim(self) -> int | None:
        """Vector length of the table (read from the database on first use)."""
        if self._dim is None:
            self._ensure()
        return self._dim

    @staticmethod
    def _cutoff(now: float, ttl_seconds: float | None) -> float:
        return -math.inf if ttl_seconds is None else now - ttl_seconds

    @staticmethod
    def _entry(partition: str, row: Sequence[Any]) -> CacheEntry:
        text, response, created_at, last_used_at, hit_count, metadata = row[:6]
        return CacheEntry(
            partition=partition,
            text=text,
            vector=None,
            response=response,
            created_at=created_at,
            last_used_at=last_used_at,
            hit_count=hit_count,
            metadata=metadata if isinstance(metadata, dict) else json.loads(metadata),
        )

    def _upsert_params(self, entry: CacheEntry) -> tuple[Any, ...]:
        check_partition(entry.partition)
        if entry.vector is None:
            raise ValueError("entry.vector is required to store an entry")
        vector = check_vector(entry.vector, self._dim)
        json.dumps(entry.metadata)  # TypeError now, not half-way through a transaction
        return (
            entry.partition,
            _text_hash(entry.text),
            entry.text,
            _vector_param(vector),
            entry.response,
            entry.created_at,
            _jsonb(entry.metadata),
            entry.last_used_at,
            entry.hit_count,
        )

    def _search_params(
        self, partition: str, vector: np.ndarray, k: int, now: float, ttl: float | None
    ) -> tuple[tuple[Any, ...], tuple[Any, ...]]:
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        query = _vector_param(check_vector(vector, self._dim))
        settings = (str(max(self._ef_search, k)), str(self._max_scan_tuples))
        return settings, (query, partition, self._cutoff(now, ttl), query, k)

    @staticmethod
    def _hits(partition: str, rows: list[Any], min_similarity: float) -> list[SearchHit]:
        hits = [
            SearchHit(PostgresStore._entry(partition, row), 1.0 - float(row[6])) for row in rows
        ]
        # relaxed_order may return neighbours slightly out of order: sort exactly here.
        hits = [h for h in hits if h.similarity >= min_similarity]
        hits.sort(key=lambda h: -h.similarity)
        return hits

    def upsert(self, entry: CacheEntry) -> None:
        if entry.vector is not None and self._dim is None:
            self._ensure(new_dim=int(np.asarray(entry.vector).shape[0]))
        else:
            self._ensure()
        params = self._upsert_params(entry)
        self._db.run(lambda conn: conn.execute(self._sql["upsert"], params))

    def get_exact(
        self, partition: str, text: str, *, now: float, ttl_seconds: float | None
    ) -> CacheEntry | None:
        self._ensure()
        if self._dim is None:
            return None  # nothing was ever stored
        params = (partition, _text_hash(text), text, self._cutoff(now, ttl_seconds))
        row = self._db.run(lambda conn: conn.execute(self._sql["exact"], params).fetchone())
        return None if row is None else self._entry(partition, row)

    def search(
        self,
        partition: str,
        vector: np.ndarray,
        *,
        k: int = 1,
        min_similarity: float = -1.0,
        now: float,
        ttl_seconds: float | None,
    ) -> list[SearchHit]:
        self._ensure()
        settings, params = self._search_params(partition, vector, k, now, ttl_seconds)
        if self._dim is None:
            return []

        session_ok = self._db.sync_configured and k <= self._ef_search

        def query(conn: psycopg.Connection[Any]) -> list[Any]:
            if session_ok:  # our pool's connections carry the HNSW settings
                return conn.execute(self._sql["search"], params).fetchall()
            with conn.transaction():  # set_config(..., true) lasts for this transaction
                conn.execute(self._sql["search_settings"], settings)
                return conn.execute(self._sql["search"], params).fetchall()

        return self._hits(partition, self._db.run(query), min_similarity)

    def record_hit(self, partition: str, text: str, *, now: float) -> None:
        self._ensure()
        if self._dim is None:
            return
        params = (now, partition, _text_hash(text), text)
        self._db.run(lambda conn: conn.execute(self._sql["hit"], params))

    def evict_expired(self, *, now: float, ttl_seconds: float | None) -> int:
        self._ensure()
        if ttl_seconds is None or self._dim is None:
            return 0
        cutoff = (self._cutoff(now, ttl_seconds),)
        return self._db.run(lambda conn: conn.execute(self._sql["expire"], cutoff).rowcount)

    def enforce_max_entries(self, max_entries: int) -> int:
        if isinstance(max_entries, bool) or not isinstance(max_entries, int) or max_entries < 0:
            raise ValueError(f"max_entries must be an int >= 0, got {max_entries!r}")
        self._ensure()
        if self._dim is None:
            return 0
        return self._db.run(lambda conn: conn.execute(self._sql["lru"], (max_entries,)).rowcount)

    def clear(self, partition: str | None = None) -> None:
        self._ensure()
        if self._dim is None:
            return
        if partition is None:
            self._db.run(lambda conn: conn.execute(self._sql["clear_all"]))
        else:
            self._db.run(lambda conn: conn.execute(self._sql["clear"], (partition,)))

    def count(self, partition: str | None = None) -> int:
        self._ensure()
        if self._dim is None:
            return 0
        if partition is None:
            row = self._db.run(lambda conn: conn.execute(self._sql["count_all"]).fetchone())
        else:
            row = self._db.run(
                lambda conn: conn.execute(self._sql["count"], (partition,)).fetchone()
            )
        return int(row[0])

    def close(self) -> None:
        self._db.close()

    # -- native async --------------------------------------------------------------

    async def _aexec(self, query: str, params: tuple[Any, ...] = (), *, fetch: str = "") -> Any:
        async def go(conn: psycopg.AsyncConnection[Any]) -> Any:
            cur = await conn.execute(query, params)
            if fetch == "one":
                return await cur.fetchone()
            if fetch == "all":
                return await cur.fetchall()
            return cur.rowcount

        return await self._db.arun(go)

    async def aupsert(self, entry: CacheEntry) -> None:
        if entry.vector is not None and self._dim is None:
            await self._aensure(new_dim=int(np.asarray(entry.vector).shape[0]))
        else:
            await self._aensure()
        await self._aexec(self._sql["upsert"], self._upsert_params(entry))

    async def aget_exact(
        self, partition: str, text: str, *, now: float, ttl_seconds: float | None
    ) -> CacheEntry | None:
        await self._aensure()
        if self._dim is None:
            return None
        params = (partition, _text_hash(text), text, self._cutoff(now, ttl_seconds))
        row = await self._aexec(self._sql["exact"], params, fetch="one")
        return None if row is None else self._entry(partition, row)

    async def asearch(
        self,
        partition: str,
        vector: np.ndarray,
        *,
        k: int = 1,
        min_similarity: float = -1.0,
        now: float,
        ttl_seconds: float | None,
    ) -> list[SearchHit]:
        await self._aensure()
        settings, params = self._search_params(partition, vector, k, now, ttl_seconds)
        if self._dim is None:
            return []

        session_ok = self._db.async_configured and k <= self._ef_search

        async def query(conn: psycopg.AsyncConnection[Any]) -> list[Any]:
            if session_ok:
                cur = await conn.execute(self._sql["search"], params)
                return await cur.fetchall()
            async with conn.transaction():
                await conn.execute(self._sql["search_settings"], settings)
                cur = await conn.execute(self._sql["search"], params)
                return await cur.fetchall()

        return self._hits(partition, await self._db.arun(query), min_similarity)

    async def arecord_hit(self, partition: str, text: str, *, now: float) -> None:
        await self._aensure()
        if self._dim is not None:
            await self._aexec(self._sql["hit"], (now, partition, _text_hash(text), text))

    async def aevict_expired(self, *, now: float, ttl_seconds: float | None) -> int:
        await self._aensure()
        if ttl_seconds is None or self._dim is None:
            return 0
        return await self._aexec(self._sql["expire"], (self._cutoff(now, ttl_seconds),))

    async def aenforce_max_entries(self, max_entries: int) -> int:
        if isinstance(max_entries, bool) or not isinstance(max_entries, int) or max_entries < 0:
            raise ValueError(f"max_entries must be an int >= 0, got {max_entries!r}")
        await self._aensure()
        if self._dim is None:
            return 0
        return await self._aexec(self._sql["lru"], (max_entries,))

    async def aclear(self, partition: str | None = None) -> None:
        await self._aensure()
        if self._dim is None:
            return
        if partition is None:
            await self._aexec(self._sql["clear_all"])
        else:
            await self._aexec(self._sql["clear"], (partition,))

    async def acount(self, partition: str | None = None) -> int:
        await self._aensure()
        if self._dim is None:
            return 0
        if partition is None:
            row = await self._aexec(self._sql["count_all"], fetch="one")
        else:
            row = await self._aexec(self._sql["count"], (partition,), fetch="one")
        return int(row[0])

    async def aclose(self) -> None:
        await self._db.aclose()

    def __repr__(self) -> str:
        return f"PostgresStore({self._db.where!r}, table={self.table!r}, dim={self._dim})"


# -- the cost ledger ---------------------------------------------------------------------

_RECORD_COLUMNS = (
    "model",
    "kind",
    "tier",
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
    "cost_usd",
    "saved_usd",
    "baseline_model",
    "baseline_cost_usd",
    "tags",
    "ts",
    "run_id",
)


class PostgresLedger:
    """Cost records and budget reservations in PostgreSQL, shared by every replica.

    Implements :class:`costopt_core.ledger.LedgerProtocol`; pass it as ``ledger=`` to
    ``CostCallbackHandler`` / ``CostEventHandler`` and their totals and budgets are the
    database's.

    Example:
        .. code-block:: python

            ledger = PostgresLedger("postgresql://app@db/app", tags={"app": "support"})
            handler = CostCallbackHandler(daily_budget_usd=20.0, ledger=ledger)

    Args:
        dsn / pool: as for :class:`PostgresStore` (exactly one).
        table: the records table; ``<table>_reservations`` and ``<table>_schema`` too.
        pool_size, connect_timeout, pool_timeout, retry_after: as for
            :class:`PostgresStore`.

    Each record is a row (model, kind, tier, token counts, ``cost_usd``, ``saved_usd``,
    baseline, ``tags`` as JSONB, ``ts`` in epoch seconds, ``recorded_at``). Records get
    a client-side id, so the one retry after a dropped connection never books a call
    twice.
    """

    def __init__(
        self,
        dsn: str | None = None,
        *,
        pool: AnyPool | None = None,
        table: str = "costopt_ledger",
        pool_size: int = 10,
        connect_timeout: float = 5.0,
        pool_timeout: float = 5.0,
        retry_after: float = 5.0,
    ) -> None:
        _check_table(table, "table")
        _positive("pool_size", pool_size, integer=True)
        _positive("connect_timeout", connect_timeout)
        _positive("pool_timeout", pool_timeout)
        _non_negative("retry_after", retry_after)
        self._db = _Connector(
            dsn,
            pool,
            pool_size=pool_size,
            connect_timeout=connect_timeout,
            pool_timeout=pool_timeout,
            retry_after=retry_after,
            name="cost ledger",
        )
        self.table = table
        self._schema = _Schema(table, "ledger")
        self._reservations = f"{table}_reservations"
        self._ready = False
        self._lock = threading.Lock()
        cols = ", ".join(_RECORD_COLUMNS)
        marks = ", ".join(["%s"] * (len(_RECORD_COLUMNS) + 1))
        t, r = table, self._reservations
        self._sql = {
            "insert": (
                f"INSERT INTO {t} (id, {cols}) VALUES ({marks}) ON CONFLICT (id) DO NOTHING"
            ),
            "settle": f"DELETE FROM {r} WHERE id = %s",
            "lock": "SELECT pg_advisory_xact_lock(hashtext(%s))",
            "expire": f"DELETE FROM {r} WHERE expires_at <= %s",
            "reserve": f"INSERT INTO {r} (id, estimate_usd, expires_at) VALUES (%s, %s, %s)",
            "spent_all": f"SELECT COALESCE(sum(cost_usd), 0) FROM {t}",
            "spent_since": f"SELECT COALESCE(sum(cost_usd), 0) FROM {t} WHERE ts >= %s",
            "records_all": f"SELECT {cols} FROM {t} ORDER BY ts, recorded_at, id",
            "records_since": f"SELECT {cols} FROM {t} WHERE ts >= %s ORDER BY ts, recorded_at, id",
            "pending": f"SELECT COALESCE(sum(estimate_usd), 0) FROM {r} WHERE expires_at > %s",
            "clear": f"TRUNCATE {t}, {r}",
        }
        agg = (
            "model,"
            " count(*) FILTER (WHERE kind = 'call'),"
            " count(*) FILTER (WHERE kind = 'cache_hit'),"
            " count(*) FILTER (WHERE kind = 'cascade_attempt'),"
            " COALESCE(sum(input_tokens) FILTER (WHERE kind <> 'cache_hit'), 0),"
            " COALESCE(sum(output_tokens) FILTER (WHERE kind <> 'cache_hit'), 0),"
            " COALESCE(sum(cache_read_tokens) FILTER (WHERE kind <> 'cache_hit'), 0),"
            " COALESCE(sum(cache_write_tokens) FILTER (WHERE kind <> 'cache_hit'), 0),"
            " COALESCE(sum(reasoning_tokens) FILTER (WHERE kind <> 'cache_hit'), 0),"
            " COALESCE(sum(cost_usd), 0), COALESCE(sum(saved_usd), 0),"
            " COALESCE(sum(baseline_cost_usd), 0),"
            " count(*) FILTER (WHERE cost_usd IS NULL), COALESCE(max(cost_usd), 0),"
            " min(ts), max(ts)"
        )
        self._sql["summary_all"] = f"SELECT {agg} FROM {t} GROUP BY model"
        self._sql["summary_since"] = f"SELECT {agg} FROM {t} WHERE ts >= %s GROUP BY model"
        tiers = (
            f"SELECT model, tier, count(*) FROM {t}"
            " WHERE kind <> 'cache_hit' AND tier IS NOT NULL{where} GROUP BY model, tier"
        )
        self._sql["tiers_all"] = tiers.format(where="")
        self._sql["tiers_since"] = tiers.format(where=" AND ts >= %s")

    # -- schema --------------------------------------------------------------------

    def _ddl(self) -> list[str]:
        t, r = self.table, self._reservations
        return [
            f"CREATE TABLE IF NOT EXISTS {t} ("
            " id uuid PRIMARY KEY,"
            " model text NOT NULL,"
            " kind text NOT NULL CHECK (kind IN ('call', 'cache_hit', 'cascade_attempt')),"
            " tier text,"
            " input_tokens bigint NOT NULL DEFAULT 0,"
            " output_tokens bigint NOT NULL DEFAULT 0,"
            " cache_read_tokens bigint NOT NULL DEFAULT 0,"
            " cache_write_tokens bigint NOT NULL DEFAULT 0,"
            " reasoning_tokens bigint NOT NULL DEFAULT 0,"
            " cost_usd double precision,"
            " saved_usd double precision,"
            " baseline_model text,"
            " baseline_cost_usd double precision,"
            " tags jsonb NOT NULL DEFAULT '{}'::jsonb,"
            " ts double precision NOT NULL,"
            " run_id text,"
            " recorded_at timestamptz NOT NULL DEFAULT clock_timestamp())",
            # Budgets sum cost_usd over a period: an index-only scan on (ts, cost_usd).
            f"CREATE INDEX IF NOT EXISTS {t}_ts ON {t} (ts) INCLUDE (cost_usd)",
            f"CREATE TABLE IF NOT EXISTS {r} ("
            " id uuid PRIMARY KEY,"
            " estimate_usd double precision NOT NULL,"
            " expires_at double precision NOT NULL,"
            " created_at timestamptz NOT NULL DEFAULT now())",
        ]

    def _ensure(self) -> None:
        if self._ready:
            return
        schema = self._schema

        t, r = self.table, self._reservations
        relations = (schema.version_table, t, r, f"{t}_ts")
        present_sql = schema.present_sql(relations)

        def setup(conn: psycopg.Connection[Any]) -> None:
            # As for the store: no DDL (and no table locks) once everything exists.
            if conn.execute(present_sql, relations).fetchone()[0]:
                schema.check_version(
                    conn.execute(
                        f"SELECT kind, version, dim FROM {schema.version_table}"
                    ).fetchone()
                )
                return
            with conn.transaction():
                conn.execute(self._sql["lock"], (schema.lock_key,))
                conn.execute(schema.create_version_table())
                row = conn.execute(
                    f"SELECT kind, version, dim FROM {schema.version_table}"
                ).fetchone()
                schema.check_version(row)
                if row is None:
                    conn.execute(
                        f"INSERT INTO {schema.version_table} (kind, version) VALUES (%s, %s)",
                        (schema.kind, SCHEMA_VERSION),
                    )
                for statement in self._ddl():
                    conn.execute(statement)

        self._db.run(setup)
        self._ready = True

    # -- LedgerProtocol ------------------------------------------------------------

    @staticmethod
    def _row(record: CostRecord) -> tuple[Any, ...]:
        values = []
        for name in _RECORD_COLUMNS:
            if name == "tags":
                values.append(_jsonb(dict(record.tags)))
            elif name == "ts":
                values.append(float(record.timestamp))
            else:
                values.append(getattr(record, name))
        return (uuid.uuid4(), *values)

    def record(self, record: CostRecord, reservation_id: str | None = None) -> None:
        """Store ``record`` and settle ``reservation_id`` in one transaction."""
        if not isinstance(record, CostRecord):
            raise TypeError(f"record must be a CostRecord, got {type(record).__name__}")
        self._ensure()
        row = self._row(record)
        settle = _uuid_or_none(reservation_id)

        def write(conn: psycopg.Connection[Any]) -> None:
            with conn.transaction():
                conn.execute(self._sql["insert"], row)
                if settle is not None:
                    conn.execute(self._sql["settle"], (settle,))

        self._db.run(write)

    def reserve(
        self,
        estimate_usd: float,
        budgets: Sequence[Budget],
        *,
        ttl_seconds: float = 300.0,
        now: float | None = None,
    ) -> BudgetCheck:
        """Atomic check-and-reserve across every process sharing the table."""
        estimate = _check_estimate(estimate_usd)
        _positive("ttl_seconds", ttl_seconds)
        budgets = list(budgets)
        for budget in budgets:
            if not isinstance(budget, Budget):
                raise TypeError(f"budgets must hold Budget objects, got {type(budget).__name__}")
        now = time.time() if now is None else float(now)
        self._ensure()
        starts = [budget.start(now) for budget in budgets]
        # One statement, one snapshot: live reservations and spend per budget period.
        columns = [f"(SELECT COALESCE(sum(estimate_usd), 0) FROM {self._reservations})"]
        params: list[Any] = []
        for start in starts:
            if start is None:
                columns.append(f"(SELECT COALESCE(sum(cost_usd), 0) FROM {self.table})")
            else:
                columns.append(
                    f"(SELECT COALESCE(sum(cost_usd), 0) FROM {self.table} WHERE ts >= %s)"
                )
                params.append(start)
        totals_sql = "SELECT " + ", ".join(columns)
        reservation_id = uuid.uuid4()

        def check(conn: psycopg.Connection[Any]) -> BudgetCheck:
            with conn.transaction():
                # Serializes check-and-reserve between processes; record() needs no lock
                # because it inserts the spend and drops the reservation atomically.
                conn.execute(self._sql["lock"], (self._schema.lock_key,))
                conn.execute(self._sql["expire"], (now,))
                row = conn.execute(totals_sql, params).fetchone()
                pending = float(row[0])
                for budget, spent in zip(budgets, row[1:], strict=True):
                    used = float(spent) + pending
                    if not admits(used, estimate, budget):
                        return BudgetCheck(False, None, budget, used)
                conn.execute(self._sql["reserve"], (reservation_id, estimate, now + ttl_seconds))
                return BudgetCheck(True, str(reservation_id))

        return self._db.run(check)

    def release(self, reservation_id: str) -> None:
        """Drop a reservation whose call failed (unknown ids are ignored)."""
        settle = _uuid_or_none(reservation_id)
        if settle is None:
            return
        self._ensure()
        self._db.run(lambda conn: conn.execute(self._sql["settle"], (settle,)))

    def spent_since(self, since: float | None = None) -> float:
        self._ensure()
        if since is None:
            row = self._db.run(lambda conn: conn.execute(self._sql["spent_all"]).fetchone())
        else:
            row = self._db.run(
                lambda conn: conn.execute(self._sql["spent_since"], (since,)).fetchone()
            )
        return float(row[0])

    def summary(self, since: float | None = None) -> LedgerSummary:
        """Per-model totals computed by the database."""
        self._ensure()
        params: tuple[Any, ...] = () if since is None else (since,)
        suffix = "all" if since is None else "since"

        def read(conn: psycopg.Connection[Any]) -> tuple[list[Any], list[Any]]:
            # REPEATABLE READ: both queries see the same records.
            with conn.transaction():
                conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
                models = conn.execute(self._sql[f"summary_{suffix}"], params).fetchall()
                tiers = conn.execute(self._sql[f"tiers_{suffix}"], params).fetchall()
            return models, tiers

        models, tiers = self._db.run(read)
        summary = LedgerSummary()
        for row in models:
            (model, calls, hits, attempts, tin, tout, tread, twrite, treason) = row[:9]
            cost, saved, baseline, unpriced, max_cost, first, last = row[9:]
            summary.models[model] = ModelTotals(
                model=model,
                calls=calls,
                cache_hits=hits,
                cascade_attempts=attempts,
                input_tokens=int(tin),
                output_tokens=int(tout),
                cache_read_tokens=int(tread),
                cache_write_tokens=int(twrite),
                reasoning_tokens=int(treason),
                cost_usd=float(cost),
                saved_usd=float(saved),
                baseline_cost_usd=float(baseline),
                unpriced_events=unpriced,
                max_call_cost_usd=float(max_cost),
            )
            if summary.first_timestamp is None or first < summary.first_timestamp:
                summary.first_timestamp = first
            if summary.last_timestamp is None or last > summary.last_timestamp:
                summary.last_timestamp = last
        for model, tier, n in tiers:
            summary.models[model].tiers[tier] = n
        return summary

    def records(self, since: float | None = None) -> list[CostRecord]:
        """The stored records, oldest first."""
        self._ensure()
        if since is None:
            rows = self._db.run(lambda conn: conn.execute(self._sql["records_all"]).fetchall())
        else:
            rows = self._db.run(
                lambda conn: conn.execute(self._sql["records_since"], (since,)).fetchall()
            )
        out = []
        for row in rows:
            data = dict(zip(_RECORD_COLUMNS, row, strict=True))
            data["timestamp"] = data.pop("ts")
            out.append(CostRecord.from_dict(data))
        return out

    @property
    def reserved_usd(self) -> float:
        """Estimates of the live reservations (calls admitted, not yet recorded)."""
        self._ensure()
        row = self._db.run(
            lambda conn: conn.execute(self._sql["pending"], (time.time(),)).fetchone()
        )
        return float(row[0])

    def clear(self) -> None:
        """Delete every record and reservation of this ledger's tables."""
        self._ensure()
        self._db.run(lambda conn: conn.execute(self._sql["clear"]))

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> PostgresLedger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"PostgresLedger({self._db.where!r}, table={self.table!r})"


def _uuid_or_none(reservation_id: str | None) -> uuid.UUID | None:
    if reservation_id is None:
        return None
    try:
        return uuid.UUID(str(reservation_id))
    except ValueError:
        return None  # not one of ours (another ledger's id): nothing to settle


__all__ = [
    "MAX_HNSW_DIM",
    "SCHEMA_VERSION",
    "PostgresConnectionError",
    "PostgresLedger",
    "PostgresStore",
    "describe_dsn",
]
