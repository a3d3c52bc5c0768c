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

Where things are
----------------
* :mod:`.connection`: the driver, pools, one retry after a broken connection, failing
  fast during an outage. A DSN (the store opens its own ``psycopg_pool`` pools, sync
  and one per event loop for async) or an existing ``ConnectionPool`` /
  ``AsyncConnectionPool``. A bad DSN is a ``ValueError`` at construction; an
  unreachable server is a :class:`PostgresConnectionError` naming host and database
  (never the password) at first use, within ``connect_timeout`` seconds. While the
  server stays unreachable, calls fail at once for ``retry_after`` seconds, so an
  outage never adds a timeout to every LLM call (the cache and cost handler log the
  error and let the call through).
* :mod:`.steps`: each database conversation written once, run by a sync or an async
  connection.
* :mod:`.schema`: tables created on first use under an advisory lock, with a
  ``<table>_schema`` row holding the schema version and the vector size.
* :mod:`.store`: :class:`PostgresStore`. Cache entries keyed by
  ``(partition, sha256(text))`` (unique index; the full text is compared too), the
  partition key leading that index for exact lookups, an HNSW index on the vectors
  with ``vector_cosine_ops``. Vectors travel in pgvector's binary format. Searches use
  pgvector's iterative index scan so a filter on the partition and the TTL still finds
  neighbours; a small partition is served by the partition index and an exact sort, as
  the planner sees fit. Hit counts and last-use times live in ``<table>_usage``: a hit
  is ``hit_count = hit_count + 1`` there and never rewrites the vector row or its HNSW
  entry. TTL and the LRU size limit are ``DELETE`` statements.
* :mod:`.ledger`: :class:`PostgresLedger`, one row per priced event; budgets checked
  and reserved atomically under an advisory lock.
"""

from costopt_core.stores.postgres.connection import PostgresConnectionError, describe_dsn
from costopt_core.stores.postgres.ledger import PostgresLedger
from costopt_core.stores.postgres.schema import SCHEMA_VERSION
from costopt_core.stores.postgres.store import MAX_HNSW_DIM, PostgresStore

__all__ = [
    "MAX_HNSW_DIM",
    "SCHEMA_VERSION",
    "PostgresConnectionError",
    "PostgresLedger",
    "PostgresStore",
    "describe_dsn",
]
