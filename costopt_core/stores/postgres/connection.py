"""Connections for the PostgreSQL store and ledger: the optional driver, pools, outages.

A :class:`Connector` opens its own ``psycopg_pool`` pools from a DSN (one sync pool,
one async pool per event loop) or uses a pool the application already has. It runs a
:data:`~costopt_core.stores.postgres.steps.Steps` conversation on a pooled connection,
retried once on a fresh one when the connection itself broke (a server restart), and
fails at once for ``retry_after`` seconds while the server stays unreachable. A pool
that times out while this connector's other operations hold its connections and make
progress (one ended within the last ``pool_timeout``, or the oldest began within it: a
slow server, a queue) is busy, not down: each waiting operation fails with its own
``PoolTimeout``, and the next one is tried. When the operations holding them have made
none for that long (a server that stopped answering, a lock held on the table past it),
the server counts as down for ``retry_after`` seconds as well.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import math
import os
import struct
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

from costopt_core.stores.fork_safety import keep_inherited, watch_forks
from costopt_core.stores.postgres.steps import Conversation, Steps, adrive, drive

if TYPE_CHECKING:
    import psycopg

logger = logging.getLogger(__name__)

T = TypeVar("T")

#: A ``psycopg_pool.ConnectionPool`` or ``AsyncConnectionPool``.
AnyPool = Any

INSTALL_HINT = 'pip install "costopt-llm[postgres]"'


class PostgresConnectionError(ConnectionError):
    """The PostgreSQL server named by the DSN could not be reached or refused us."""


class VectorParam:
    """A vector sent in pgvector's binary format (dim, 0, big-endian float32 values):
    about 20x cheaper than its text form for 384 dimensions."""

    __slots__ = ("data",)
    dumper: Any = None  # set when psycopg is imported

    def __init__(self, vector: np.ndarray) -> None:
        self.data = struct.pack(">HH", vector.shape[0], 0) + vector.astype(">f4").tobytes()


def jsonb(value: Any) -> Any:
    """``value`` adapted as a ``jsonb`` parameter."""
    from psycopg.types.json import Jsonb

    return Jsonb(value)


_registered = False


def import_psycopg() -> tuple[Any, Any]:
    """``(psycopg, psycopg_pool)``, or an ImportError naming the ``[postgres]`` extra."""
    global _registered
    try:
        import psycopg
        import psycopg_pool
    except ImportError as exc:  # the optional extra is not installed
        raise ImportError(
            f"PostgreSQL support needs psycopg 3 and psycopg-pool: {INSTALL_HINT} ({exc})"
        ) from exc
    if not _registered:

        class VectorDumper(psycopg.adapt.Dumper):
            format = psycopg.pq.Format.BINARY
            # Type left unspecified: every query casts the parameter (``%s::vector``), so
            # the server reads it with vector's binary input. No per-connection type
            # lookup, and only our own class is adapted, never a user's objects.
            oid = 0

            def dump(self, obj: VectorParam) -> bytes:
                return obj.data

        psycopg.adapters.register_dumper(VectorParam, VectorDumper)
        VectorParam.dumper = VectorDumper
        _registered = True
    return psycopg, psycopg_pool


def describe_dsn(dsn: str) -> str:
    """A DSN with its password left out, for messages and logs.

    Example:
        >>> describe_dsn("postgresql://app:secret@db:5432/prod")
        'host=db port=5432 dbname=prod user=app'
    """
    psycopg, _ = import_psycopg()
    try:
        params = psycopg.conninfo.conninfo_to_dict(dsn)
    except psycopg.ProgrammingError:
        return "<invalid DSN>"
    keys = ("host", "hostaddr", "port", "dbname", "user")
    return " ".join(f"{k}={params[k]}" for k in keys if params.get(k)) or "<default libpq DSN>"


def check_positive(name: str, value: Any, *, integer: bool = False) -> Any:
    """``value`` if it is a number > 0 (an int when ``integer``), else ValueError."""
    kind = int if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kind) or not value > 0:
        raise ValueError(
            f"{name} must be a {'positive int' if integer else 'number > 0'}, got {value!r}"
        )
    return value


def check_non_negative(name: str, value: Any) -> Any:
    """``value`` if it is a number >= 0, else ValueError."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not value >= 0:
        raise ValueError(f"{name} must be a number >= 0, got {value!r}")
    return value


class Connector:
    """Sync and async connections from a DSN or a user's pool, with one retry when a
    pooled connection turns out to be broken (e.g. after a server restart).

    ``session_sql`` runs on every connection of the pools opened here (a user's pool
    keeps its own session state: callers then set what they need per transaction).

    A process forked from this one (gunicorn ``--preload``, Celery prefork) opens its
    own pools on first use: the parent's sockets stay the parent's.
    """

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
        check_positive("pool_size", pool_size, integer=True)
        check_positive("connect_timeout", connect_timeout)
        check_positive("pool_timeout", pool_timeout)
        check_non_negative("retry_after", retry_after)
        psycopg, psycopg_pool = import_psycopg()
        self.psycopg = psycopg
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
        self._session_sql = session_sql
        self._lock = threading.Lock()
        self._async_pools: dict[int, tuple[asyncio.AbstractEventLoop, Any]] = {}
        self._opening: dict[int, tuple[asyncio.AbstractEventLoop, asyncio.Lock]] = {}
        self._closed = False
        # While the server is unreachable, calls fail at once for ``retry_after``
        # seconds instead of each waiting out a timeout inside the user's LLM call.
        self._retry_after = retry_after
        self._down_until = 0.0
        self._down_reason = ""
        # When each operation holding a connection of its pools began, and when one last
        # ended: a pool timeout while they make progress means busy, not down (_busy).
        self._held: dict[int, float] = {}
        self._last_done = -math.inf
        self._out_lock = threading.Lock()
        self._op_ids = itertools.count()
        self._pid = os.getpid()
        watch_forks(self)

    @property
    def sync_configured(self) -> bool:
        """True when sync connections carry ``session_sql`` (the pool is ours)."""
        return self._own_sync

    @property
    def async_configured(self) -> bool:
        """True when async connections carry ``session_sql`` (the pool is ours)."""
        return self._given_async_pool is None

    # -- pools -----------------------------------------------------------------------

    def check_open(self) -> None:
        """Raise RuntimeError once closed."""
        if self._closed:
            raise RuntimeError(f"this costopt {self._name} is closed")

    def _unreachable(self, exc: BaseException) -> PostgresConnectionError:
        return PostgresConnectionError(
            f"cannot connect to PostgreSQL ({self.where}) for the costopt {self._name}: "
            f"{str(exc).strip()}"
        )

    def _pool_options(self, configure: Callable[[Any], Any], flavour: str) -> dict[str, Any]:
        return {
            "kwargs": dict(self._conn_kwargs),
            "configure": configure if self._session_sql else None,
            "min_size": 1,
            "max_size": self._pool_size,
            "timeout": self._pool_timeout,
            "name": f"costopt-{self._name}{flavour}",
            "open": False,
        }

    def _configure(self, conn: psycopg.Connection[Any]) -> None:
        conn.execute(self._session_sql)

    async def _aconfigure(self, conn: psycopg.AsyncConnection[Any]) -> None:
        await conn.execute(self._session_sql)

    def forget_inherited(self) -> None:
        """In a forked child: drop the parent's pools, unclosed (closing one would end
        the parent's sessions on the shared sockets); new ones open on first use."""
        self._lock = threading.Lock()  # a parent thread may have held it at the fork
        if self._own_sync:
            keep_inherited(self._sync_pool)
            self._sync_pool = None
        keep_inherited(*(pool for _, pool in self._async_pools.values()))
        self._async_pools = {}
        self._opening = {}
        self._down_until = 0.0
        self._held = {}  # the parent's operations are not this process's
        self._last_done = -math.inf
        self._out_lock = threading.Lock()
        self._pid = os.getpid()

    def _check_process(self) -> None:
        # The fork hook already did this after os.fork(); a fork it did not see (a C
        # library calling fork()) is caught here, at the cost of one getpid per call.
        if self._pid != os.getpid():
            self.forget_inherited()

    def _pool(self) -> Any:
        self.check_open()
        self._check_process()
        pool = self._sync_pool
        if pool is not None:
            return pool
        with self._lock:
            if self._sync_pool is None:
                # A direct connection first: a wrong DSN fails now, with the server's
                # reason, instead of the pool retrying in the background until timeout.
                try:
                    self.psycopg.connect(self.dsn, **self._conn_kwargs).close()
                except self.psycopg.OperationalError as exc:
                    raise self._unreachable(exc) from exc
                pool = self._pool_mod.ConnectionPool(
                    self.dsn, **self._pool_options(self._configure, "")
                )
                pool.open(wait=True, timeout=self._connect_timeout)
                self._sync_pool = pool
            return self._sync_pool

    async def _apool(self) -> Any:
        self.check_open()
        self._check_process()
        if self._given_async_pool is not None:
            return self._given_async_pool
        # An async pool belongs to the event loop that opened it: one per loop.
        loop = asyncio.get_running_loop()
        found = self._async_pools.get(id(loop))
        if found is not None and found[0] is loop:
            return found[1]
        # One task of this loop opens the pool; the others wait for it (100 concurrent
        # first lookups each opened a pool and took every connection the server allows).
        async with self._opening_lock(loop):
            found = self._async_pools.get(id(loop))
            if found is not None and found[0] is loop:
                return found[1]
            # The task before this one found the server down: fail as fast as it would
            # have after (each waiting task trying again would wait out its timeout).
            self._fail_if_down()
            try:
                conn = await self.psycopg.AsyncConnection.connect(self.dsn, **self._conn_kwargs)
                await conn.close()
            except self.psycopg.OperationalError as exc:
                raise self._unreachable(exc) from exc
            pool = self._pool_mod.AsyncConnectionPool(
                self.dsn, **self._pool_options(self._aconfigure, "-async")
            )
            await pool.open(wait=True, timeout=self._connect_timeout)
            with self._lock:  # never held across an await
                # Pools of loops that have ended cannot be awaited any more: drop them.
                for key, (old_loop, _) in list(self._async_pools.items()):
                    if old_loop.is_closed():
                        del self._async_pools[key]
                        self._opening.pop(key, None)
                self._async_pools[id(loop)] = (loop, pool)
            return pool

    def _opening_lock(self, loop: asyncio.AbstractEventLoop) -> asyncio.Lock:
        with self._lock:
            held = self._opening.get(id(loop))
            if held is None or held[0] is not loop:
                held = (loop, asyncio.Lock())
                self._opening[id(loop)] = held
            return held[1]

    # -- outages and retries -----------------------------------------------------------

    def _connection_lost(self, exc: BaseException) -> bool:
        """A failure of the connection itself (not of a statement): worth a retry on a
        fresh connection, and a sign the server may be down."""
        if isinstance(exc, PostgresConnectionError | self._pool_mod.PoolTimeout):
            return True
        if not isinstance(exc, self.psycopg.OperationalError):
            return False
        state = getattr(exc, "sqlstate", None)
        # No SQLSTATE: the client lost the connection; class 08: connection exception;
        # 57P01-03: the server is shutting down or starting.
        return state is None or state.startswith("08") or state in ("57P01", "57P02", "57P03")

    def _busy(self, exc: BaseException) -> bool:
        """A pool timeout while this connector's other operations hold connections and
        make progress (one ended within the last ``pool_timeout``, or the oldest began
        within it): the pool is busy (the server answers them, slowly), not unreachable;
        marking it down would fail every operation at once for ``retry_after`` seconds.
        Held connections that made no progress that long belong to a server that stopped
        answering (frozen, partitioned without a reset): taken for busy, every later
        operation waited out ``pool_timeout`` and failed, for as long as it lasted."""
        if not isinstance(exc, self._pool_mod.PoolTimeout):
            return False
        now = time.monotonic()
        with self._out_lock:
            if not self._held:
                return False
            oldest = min(self._held.values())
            last_done = self._last_done
        return now - last_done < self._pool_timeout or now - oldest < self._pool_timeout

    @contextmanager
    def _watch_outage(self) -> Iterator[None]:
        """Fail at once while the server is known to be down; note when it goes down."""
        self._fail_if_down()
        try:
            yield
        except Exception as exc:
            if self._connection_lost(exc) and not self._busy(exc):
                self._down_reason = str(exc).strip()
                self._down_until = time.monotonic() + self._retry_after
            raise
        self._down_until = 0.0

    @contextmanager
    def _holding(self) -> Iterator[None]:
        """Note a connection out of a pool for as long as it is used (see :meth:`_busy`)."""
        op = next(self._op_ids)
        with self._out_lock:
            self._held[op] = time.monotonic()
        try:
            yield
        finally:
            with self._out_lock:
                del self._held[op]
                self._last_done = time.monotonic()

    def _fail_if_down(self) -> None:
        left = self._down_until - time.monotonic()
        if left > 0:
            raise PostgresConnectionError(
                f"PostgreSQL ({self.where}) is unreachable for the costopt {self._name}; "
                f"next attempt in {left:.1f}s. Last error: {self._down_reason}"
            )

    def _retry_or_raise(self, attempt: int, exc: Exception) -> None:
        # A pool timeout already waited; retrying would only double the wait.
        retryable = self._connection_lost(exc) and not isinstance(exc, self._pool_mod.PoolTimeout)
        if attempt == 2 or not retryable:
            raise exc
        logger.warning(
            "PostgreSQL connection failed (%s); checking the pool and retrying once: %s",
            self.where,
            str(exc).strip(),
        )

    @staticmethod
    def _adapt(conn: psycopg.BaseConnection[Any], borrowed: bool) -> None:
        if borrowed:  # a user's connection may predate our vector dumper
            conn.adapters.register_dumper(VectorParam, VectorParam.dumper)

    def _idle(self, conn: psycopg.BaseConnection[Any]) -> bool:
        return conn.info.transaction_status == self.psycopg.pq.TransactionStatus.IDLE

    # -- running conversations -------------------------------------------------------

    def run(self, make: Callable[[], Steps[T]]) -> T:
        """Run the steps ``make()`` returns on a pooled sync connection; ``make`` is
        called again for the one retry after a broken connection."""
        talk = Conversation(make())
        if talk.finished:  # answered without the database
            return talk.result
        with self._watch_outage():
            for attempt in (1, 2):
                pool = self._pool()
                try:
                    with pool.connection() as conn, self._holding():
                        self._adapt(conn, borrowed=not self._own_sync)
                        result = drive(conn, talk)
                        if not self._idle(conn):  # a user's pool may not autocommit
                            conn.commit()
                        return result
                except self.psycopg.OperationalError as exc:
                    self._retry_or_raise(attempt, exc)
                    pool.check()
                    talk = Conversation(make())
        raise AssertionError("unreachable")

    async def arun(self, make: Callable[[], Steps[T]]) -> T:
        """Async :meth:`run`, on a pooled async connection."""
        talk = Conversation(make())
        if talk.finished:
            return talk.result
        with self._watch_outage():
            for attempt in (1, 2):
                pool = await self._apool()
                try:
                    async with pool.connection() as conn:
                        with self._holding():
                            self._adapt(conn, borrowed=not self.async_configured)
                            result = await adrive(conn, talk)
                            if not self._idle(conn):
                                await conn.commit()
                            return result
                except self.psycopg.OperationalError as exc:
                    self._retry_or_raise(attempt, exc)
                    await pool.check()
                    talk = Conversation(make())
        raise AssertionError("unreachable")

    # -- closing -----------------------------------------------------------------------

    def close(self) -> None:
        """Close the pools opened here (never a pool the application passed in)."""
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
        """:meth:`close`, closing this event loop's pool on the loop itself."""
        loop = asyncio.get_running_loop()
        with self._lock:
            mine = self._async_pools.pop(id(loop), None)
        if mine is not None:
            await mine[1].close()
        await asyncio.to_thread(self.close)


__all__ = [
    "INSTALL_HINT",
    "AnyPool",
    "Connector",
    "PostgresConnectionError",
    "VectorParam",
    "check_non_negative",
    "check_positive",
    "describe_dsn",
    "import_psycopg",
    "jsonb",
]
