"""The semantic-cache store on PostgreSQL + pgvector (see the package docstring).

Every operation is one :data:`~costopt_core.stores.postgres.steps.Steps` conversation,
written once below and run by the sync method on a sync connection and by its
``a``-prefixed twin on an async one.
"""

from __future__ import annotations

import math
import threading
import time
from typing import Any

import numpy as np

from costopt_core.stores.base import (
    CacheEntry,
    CacheStore,
    MalformedRows,
    SearchHit,
    check_entry,
    check_vector,
    oldest_fresh,
)
from costopt_core.stores.postgres.connection import (
    AnyPool,
    Connector,
    VectorParam,
    check_positive,
    jsonb,
)
from costopt_core.stores.postgres.schema import Schema, VersionRow, check_table
from costopt_core.stores.postgres.steps import Sql, Steps, Transaction, statements
from costopt_core.stores.postgres.text import entry_from_row, json_to_db, text_hash, to_db

#: pgvector's HNSW index on ``vector`` columns holds at most this many dimensions.
MAX_HNSW_DIM = 2000


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
        check_table(table, "table")
        if dim is not None:
            check_positive("dim", dim, integer=True)
            if dim > MAX_HNSW_DIM:
                raise ValueError(
                    f"dim must be at most {MAX_HNSW_DIM} (pgvector's HNSW limit), got {dim}"
                )
        check_positive("hnsw_m", hnsw_m, integer=True)
        check_positive("hnsw_ef_construction", hnsw_ef_construction, integer=True)
        check_positive("ef_search", ef_search, integer=True)
        check_positive("max_scan_tuples", max_scan_tuples, integer=True)
        if ef_search > 1000:
            raise ValueError(f"ef_search must be at most 1000 (pgvector's limit), got {ef_search}")
        self._db = Connector(
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
        t, u = table, f"{table}_usage"
        self._schema = Schema(table, "cache", (t, u, f"{t}_key", f"{t}_hnsw", f"{u}_lru"))
        self._dim = dim
        self._hnsw = (hnsw_m, hnsw_ef_construction)
        self._ef_search = ef_search
        self._max_scan_tuples = max_scan_tuples
        self._create_extension = create_extension
        self._ready = False  # version row checked and, once dim is known, table created
        self._empty_checked = -math.inf
        self._lock = threading.Lock()
        self.malformed = MalformedRows(f"PostgresStore(table={table!r})")
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

    def _ddl(self, dim: int | None) -> list[str]:
        if dim is None:
            return []  # nothing to create until the first vector fixes the size
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

    def _decide(self, row: VersionRow, new_dim: int | None) -> tuple[int | None, bool]:
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

    def _fresh_empty(self) -> bool:
        """Whether "nothing stored yet" was seen less than a second ago: an empty
        cache is re-checked at most once a second for a size fixed by another replica."""
        return time.monotonic() - self._empty_checked < 1.0

    def _ready_for(self, new_dim: int | None = None) -> Steps[bool]:
        """Create or check the schema (with ``new_dim``, fix the vector size if unset);
        True when the table exists."""
        if self._ready and (self._dim is not None or (new_dim is None and self._fresh_empty())):
            return self._dim is not None
        dim = yield from self._setup(new_dim)
        with self._lock:
            self._dim = dim
            self._ready = True
            self._empty_checked = time.monotonic()
        return dim is not None

    def _setup(self, new_dim: int | None) -> Steps[int | None]:
        schema = self._schema

        def decide(row: VersionRow) -> tuple[int | None, bool]:
            return self._decide(row, new_dim)

        done, dim = yield from schema.existing(decide)
        if done:
            return dim
        if new_dim is None and self._dim is None:
            # Reading while nothing was ever stored: nothing to create, no lock.
            # Another replica may fix the size any time, so this is asked again.
            if not (yield from schema.version_table_exists()):
                return None
            if schema.check_version((yield from schema.version_row())) is None:
                return None
        yield from self._require_extension()
        return (yield Transaction(schema.create(decide, self._ddl)))

    def _require_extension(self) -> Steps[None]:
        if (yield Sql("SELECT 1 FROM pg_extension WHERE extname = 'vector'", (), "one")):
            return
        if not self._create_extension:
            raise self._extension_error("create_extension=False")
        psycopg = self._db.psycopg
        try:
            yield Transaction(
                statements(
                    Sql("SELECT pg_advisory_xact_lock(hashtext('costopt:create-extension'))"),
                    Sql("CREATE EXTENSION IF NOT EXISTS vector"),
                )
            )
        except psycopg.OperationalError:
            raise  # the connection, not the privilege: the connector retries or reports it
        except psycopg.Error as exc:
            raise self._extension_error(exc) from exc

    def _extension_error(self, reason: object) -> RuntimeError:
        return RuntimeError(
            f"the pgvector extension is not installed in the database ({self._db.where}) "
            f"and could not be created: {str(reason).strip()}. A database owner runs "
            "'CREATE EXTENSION vector;' once (pgvector >= 0.8)."
        )

    # -- the conversations, one per operation ----------------------------------------

    def _upsert(self, entry: CacheEntry) -> Steps[None]:
        new_dim = None
        if entry.vector is not None and self._dim is None:
            new_dim = int(np.asarray(entry.vector).shape[0])
        yield from self._ready_for(new_dim)
        check_entry(entry)  # e.g. unserializable metadata fails now, not in a transaction
        vector = check_vector(entry.vector, self._dim)  # type: ignore[arg-type]
        yield Sql(
            self._sql["upsert"],
            (
                to_db(entry.partition),
                text_hash(entry.text),
                to_db(entry.text),
                VectorParam(vector),
                to_db(entry.response),
                entry.created_at,
                jsonb(json_to_db(entry.metadata)),
                entry.last_used_at,
                entry.hit_count,
            ),
        )

    def _get_exact(
        self, partition: str, text: str, now: float, ttl: float | None
    ) -> Steps[CacheEntry | None]:
        if not (yield from self._ready_for()):
            return None  # nothing was ever stored
        params = (to_db(partition), text_hash(text), to_db(text), oldest_fresh(now, ttl))
        row = yield Sql(self._sql["exact"], params, "one")
        return None if row is None else entry_from_row(partition, row, self.malformed)

    def _search(
        self,
        partition: str,
        vector: np.ndarray,
        k: int,
        min_similarity: float,
        now: float,
        ttl: float | None,
        configured: bool,
    ) -> Steps[list[SearchHit]]:
        ready = yield from self._ready_for()
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        query = VectorParam(check_vector(vector, self._dim))
        if not ready:
            return []
        params = (query, to_db(partition), oldest_fresh(now, ttl), query, k)
        search = Sql(self._sql["search"], params, "all")
        if configured and k <= self._ef_search:  # the connection carries the HNSW settings
            rows = yield search
        else:  # set_config(..., true) lasts for this transaction
            settings = (str(max(self._ef_search, k)), str(self._max_scan_tuples))
            rows = yield Transaction(self._configured_search(settings, search))
        # relaxed_order may return neighbours slightly out of order: sort exactly here.
        hits = [
            SearchHit(entry, similarity)
            for row in rows
            if (similarity := 1.0 - float(row[6])) >= min_similarity
            and (entry := entry_from_row(partition, row, self.malformed)) is not None
        ]
        hits.sort(key=lambda h: -h.similarity)
        return hits

    def _configured_search(self, settings: tuple[str, str], search: Sql) -> Steps[list[Any]]:
        yield Sql(self._sql["search_settings"], settings)
        return (yield search)

    def _record_hit(self, partition: str, text: str, now: float) -> Steps[None]:
        if (yield from self._ready_for()):
            yield Sql(self._sql["hit"], (now, to_db(partition), text_hash(text), to_db(text)))

    def _evict_expired(self, now: float, ttl: float | None) -> Steps[int]:
        if not (yield from self._ready_for()) or ttl is None:
            return 0
        return (yield Sql(self._sql["expire"], (oldest_fresh(now, ttl),), "rowcount"))

    def _enforce_max_entries(self, max_entries: int) -> Steps[int]:
        if isinstance(max_entries, bool) or not isinstance(max_entries, int) or max_entries < 0:
            raise ValueError(f"max_entries must be an int >= 0, got {max_entries!r}")
        if not (yield from self._ready_for()):
            return 0
        return (yield Sql(self._sql["lru"], (max_entries,), "rowcount"))

    def _clear(self, partition: str | None) -> Steps[None]:
        if not (yield from self._ready_for()):
            return
        if partition is None:
            yield Sql(self._sql["clear_all"])
        else:
            yield Sql(self._sql["clear"], (to_db(partition),))

    def _count(self, partition: str | None) -> Steps[int]:
        if not (yield from self._ready_for()):
            return 0
        if partition is None:
            row = yield Sql(self._sql["count_all"], (), "one")
        else:
            row = yield Sql(self._sql["count"], (to_db(partition),), "one")
        return int(row[0])

    # -- CacheStore: sync on the sync pool, native async on the async pool -------------

    @property
    def dim(self) -> int | None:
        """Vector length of the table (read from the database on first use)."""
        if self._dim is None:
            self._db.run(self._ready_for)
        return self._dim

    def upsert(self, entry: CacheEntry) -> None:
        self._db.run(lambda: self._upsert(entry))

    async def aupsert(self, entry: CacheEntry) -> None:
        await self._db.arun(lambda: self._upsert(entry))

    def get_exact(
        self, partition: str, text: str, *, now: float, ttl_seconds: float | None
    ) -> CacheEntry | None:
        return self._db.run(lambda: self._get_exact(partition, text, now, ttl_seconds))

    async def aget_exact(
        self, partition: str, text: str, *, now: float, ttl_seconds: float | None
    ) -> CacheEntry | None:
        return await self._db.arun(lambda: self._get_exact(partition, text, now, ttl_seconds))

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
        args = (partition, vector, k, min_similarity, now, ttl_seconds)
        return self._db.run(lambda: self._search(*args, self._db.sync_configured))

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
        args = (partition, vector, k, min_similarity, now, ttl_seconds)
        return await self._db.arun(lambda: self._search(*args, self._db.async_configured))

    def record_hit(self, partition: str, text: str, *, now: float) -> None:
        self._db.run(lambda: self._record_hit(partition, text, now))

    async def arecord_hit(self, partition: str, text: str, *, now: float) -> None:
        await self._db.arun(lambda: self._record_hit(partition, text, now))

    def evict_expired(self, *, now: float, ttl_seconds: float | None) -> int:
        return self._db.run(lambda: self._evict_expired(now, ttl_seconds))

    async def aevict_expired(self, *, now: float, ttl_seconds: float | None) -> int:
        return await self._db.arun(lambda: self._evict_expired(now, ttl_seconds))

    def enforce_max_entries(self, max_entries: int) -> int:
        return self._db.run(lambda: self._enforce_max_entries(max_entries))

    async def aenforce_max_entries(self, max_entries: int) -> int:
        return await self._db.arun(lambda: self._enforce_max_entries(max_entries))

    def clear(self, partition: str | None = None) -> None:
        self._db.run(lambda: self._clear(partition))

    async def aclear(self, partition: str | None = None) -> None:
        await self._db.arun(lambda: self._clear(partition))

    def count(self, partition: str | None = None) -> int:
        return self._db.run(lambda: self._count(partition))

    async def acount(self, partition: str | None = None) -> int:
        return await self._db.arun(lambda: self._count(partition))

    def close(self) -> None:
        self._db.close()

    async def aclose(self) -> None:
        await self._db.aclose()

    def __repr__(self) -> str:
        return f"PostgresStore({self._db.where!r}, table={self.table!r}, dim={self._dim})"


__all__ = ["MAX_HNSW_DIM", "PostgresStore", "text_hash"]
