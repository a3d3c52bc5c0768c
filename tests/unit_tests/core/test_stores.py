"""Cache stores (memory, SQLite), the vector indexes behind them, and the PostgreSQL
stores' conversation driver (which needs no server)."""

from __future__ import annotations

import asyncio
import multiprocessing
import sqlite3
import sys
import threading
from contextlib import asynccontextmanager, contextmanager

import numpy as np
import pytest

from costopt_core.stores.base import CacheEntry, CacheStore, VectorError, normalize_vector
from costopt_core.stores.index import ONE_THREAD_PRODUCT, ExactIndex, VectorIndex
from costopt_core.stores.indexed import PartitionIndexes
from costopt_core.stores.memory import MemoryStore
from costopt_core.stores.postgres.steps import (
    Conversation,
    Sql,
    Steps,
    Transaction,
    adrive,
    drive,
    statements,
)
from costopt_core.stores.sqlite import SQLiteStore

DIM = 16


def vec(seed: int, dim: int = DIM) -> np.ndarray:
    return normalize_vector(np.random.default_rng(seed).standard_normal(dim))


def near(vector: np.ndarray, noise: float, seed: int = 99) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return normalize_vector(vector + noise * rng.standard_normal(vector.shape[0]))


def entry(partition: str, text: str, vector: np.ndarray, created_at: float = 0.0, **kw):
    return CacheEntry(partition, text, vector, f"answer to {text}", created_at, **kw)


@pytest.fixture(params=["memory", "sqlite"])
def store(request, tmp_path) -> CacheStore:
    if request.param == "memory":
        s: CacheStore = MemoryStore()
    else:
        s = SQLiteStore(tmp_path / "cache.db")
    yield s
    s.close()


# -- index ---------------------------------------------------------------------------


def test_exact_index_ranks_filters_and_survives_removal():
    index = ExactIndex(DIM, capacity=2)  # small capacity: exercises growth
    vectors = {i: vec(i) for i in range(50)}
    for i, v in vectors.items():
        index.add(i, v, created_at=float(i))
    query = near(vectors[7], 0.05)
    top = index.search(query, k=3)
    assert top[0][0] == 7
    assert [s for _, s in top] == sorted((s for _, s in top), reverse=True)
    assert index.search(query, k=1, min_similarity=0.999) == []
    # Entries created before 10 count as expired: 7 must not come back.
    assert all(key >= 10 for key, _ in index.search(query, k=5, min_created_at=10.0))
    assert index.remove(7) and not index.remove(7)
    assert 7 not in [key for key, _ in index.search(query, k=50)]
    assert len(index) == 49
    # Rows moved by the swap-removal are still found under their own ids.
    for i in (0, 25, 49):
        assert index.search(vectors[i], k=1)[0] == (i, pytest.approx(1.0, abs=1e-5))


def test_vector_index_ann_agrees_with_exact_scan():
    pytest.importorskip("faiss")
    rng = np.random.default_rng(0)
    matrix = rng.standard_normal((600, DIM)).astype(np.float32)
    matrix /= np.linalg.norm(matrix, axis=1, keepdims=True)
    index = VectorIndex(DIM, ann=True, ann_threshold=300, nprobe=64, background_build=False)
    for i, v in enumerate(matrix):
        index.add(i, v, created_at=0.0)
    assert index.uses_ann
    for i in range(0, 600, 37):
        assert index.search(near(matrix[i], 0.02, seed=i), k=1)[0][0] == i
    index.remove(37)
    assert index.search(matrix[37], k=1)[0][0] != 37
    # All ANN candidates expired: falls back to the exact scan of fresh entries.
    index.add(10_000, matrix[74], created_at=50.0)
    assert index.search(matrix[74], k=1, min_created_at=10.0)[0][0] == 10_000


def test_ann_index_tail_lazy_removal_and_reused_keys():
    pytest.importorskip("faiss")
    rng = np.random.default_rng(2)
    matrix = rng.standard_normal((700, DIM)).astype(np.float32)
    matrix /= np.linalg.norm(matrix, axis=1, keepdims=True)
    index = VectorIndex(DIM, ann=True, ann_threshold=400, nprobe=64, background_build=False)
    for i in range(400):
        index.add(i, matrix[i], created_at=0.0)
    assert index.uses_ann
    for i in range(400, 700):  # 256 go to faiss in one batch, the rest stay in the tail
        index.add(i, matrix[i], created_at=float(i))
    assert index.search(matrix[690], k=1)[0][0] == 690  # found in the tail
    assert index.search(matrix[450], k=1)[0][0] == 450  # found after the batch add
    assert index.search(matrix[690], k=1, min_created_at=691.0)[0][0] != 690
    index.remove(690)  # from the tail
    index.remove(10)  # lazily, from faiss
    assert 690 not in [key for key, _ in index.search(matrix[690], k=3)]
    assert 10 not in [key for key, _ in index.search(matrix[10], k=3)]
    index.add(10, matrix[20], created_at=0.0)  # a reused key: old vector must be gone
    assert {key for key, _ in index.search(matrix[20], k=2)} == {10, 20}
    assert all(key != 10 or sim > 0.99 for key, sim in index.search(matrix[10], k=5))


def test_background_ann_build_replays_changes_made_meanwhile():
    pytest.importorskip("faiss")
    rng = np.random.default_rng(1)
    matrix = rng.standard_normal((900, DIM)).astype(np.float32)
    matrix /= np.linalg.norm(matrix, axis=1, keepdims=True)
    index = VectorIndex(DIM, ann=True, ann_threshold=400, nprobe=64)
    for i in range(400):
        index.add(i, matrix[i], created_at=0.0)
    # Changes while the build may still run: more adds, a removal, a replaced vector.
    for i in range(400, 900):
        index.add(i, matrix[i], created_at=0.0)
    index.remove(5)
    index.add(6, matrix[899], created_at=0.0)
    index.wait_for_build(timeout=60)
    assert index.uses_ann
    assert index.search(matrix[850], k=1)[0][0] == 850
    assert 5 not in [key for key, _ in index.search(matrix[5], k=3)]
    assert {key for key, _ in index.search(matrix[899], k=2)} == {6, 899}
    for i in range(850):  # shrinking below half the threshold drops the ANN index
        index.remove(i)
    assert not index.uses_ann and len(index) == 50


def test_ann_requested_without_the_extra_names_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "faiss", None)
    with pytest.raises(ImportError, match=r"costopt-llm\[ann\]"):
        VectorIndex(DIM, ann=True)
    # Auto mode without the extra quietly stays exact.
    index = VectorIndex(DIM, ann=None, ann_threshold=1)
    index.add(1, vec(1), created_at=0.0)
    assert not index.uses_ann and index.search(vec(1))[0][0] == 1


def test_partition_indexes_keep_keys_apart_and_drop_empty_partitions():
    indexes = PartitionIndexes(dim=DIM)
    indexes.add("a", 1, vec(1), created_at=0.0)
    indexes.add("b", 2, vec(2), created_at=5.0)
    assert len(indexes) == 2 and set(indexes.ids()) == {1, 2}
    assert indexes.search("a", vec(2), 5, -1.0, now=0.0, ttl_seconds=None) == [
        (1, pytest.approx(float(vec(1) @ vec(2)), abs=1e-5))
    ]
    # TTL: at now=8 with ttl 4, only what was created at 4 or later is fresh.
    assert indexes.search("a", vec(1), 1, -1.0, now=8.0, ttl_seconds=4.0) == []
    assert [k for k, _ in indexes.search("b", vec(2), 1, -1.0, now=8.0, ttl_seconds=4.0)] == [2]
    assert indexes.remove(1) and not indexes.remove(1)
    assert indexes.count("a") == 0 and len(indexes.building()) == 1  # "a" was dropped
    with pytest.raises(ValueError, match="k must be"):
        indexes.search("b", vec(2), 0, -1.0, now=0.0, ttl_seconds=None)
    with pytest.raises(ValueError, match="dim must be set"):
        PartitionIndexes().add("a", 1, vec(1), created_at=0.0)


# -- the store contract, for every store ----------------------------------------------


def test_upsert_get_exact_and_replace(store):
    store.upsert(entry("p", "q1", vec(1), metadata={"model": "m", "input_tokens": 3}))
    got = store.get_exact("p", "q1", now=1.0, ttl_seconds=None)
    assert got.response == "answer to q1" and got.metadata == {"model": "m", "input_tokens": 3}
    store.upsert(CacheEntry("p", "q1", vec(2), "newer", created_at=5.0))
    assert store.get_exact("p", "q1", now=6.0, ttl_seconds=None).response == "newer"
    assert store.count() == 1
    # The replaced vector is gone from the index, the new one is there.
    assert store.search("p", vec(2), now=6.0, ttl_seconds=None)[0].entry.response == "newer"
    assert store.search("p", vec(1), min_similarity=0.99, now=6.0, ttl_seconds=None) == []


def test_search_never_crosses_partitions(store):
    store.upsert(entry("tenant-a", "q", vec(1)))
    assert store.search("tenant-b", vec(1), now=0.0, ttl_seconds=None) == []
    assert store.get_exact("tenant-b", "q", now=0.0, ttl_seconds=None) is None
    hit = store.search("tenant-a", near(vec(1), 0.05), now=0.0, ttl_seconds=None)[0]
    assert hit.entry.text == "q" and 0.9 < hit.similarity <= 1.0


def test_ttl_hides_then_evicts(store):
    store.upsert(entry("p", "old", vec(1), created_at=0.0))
    store.upsert(entry("p", "new", vec(2), created_at=100.0))
    assert store.get_exact("p", "old", now=50.0, ttl_seconds=60) is not None
    assert store.get_exact("p", "old", now=61.0, ttl_seconds=60) is None
    assert store.search("p", vec(1), min_similarity=0.9, now=61.0, ttl_seconds=60) == []
    assert store.evict_expired(now=61.0, ttl_seconds=60) == 1
    assert store.count() == 1 and store.get_exact("p", "new", now=61.0, ttl_seconds=60)


def test_hits_counted_and_lru_eviction(store):
    for i, text in enumerate(["a", "b", "c"]):
        store.upsert(entry("p", text, vec(i), created_at=float(i), last_used_at=float(i)))
    store.record_hit("p", "a", now=10.0)
    store.record_hit("p", "a", now=11.0)
    store.record_hit("p", "missing", now=11.0)  # ignored
    assert store.get_exact("p", "a", now=12.0, ttl_seconds=None).hit_count == 2
    assert store.enforce_max_entries(2) == 1  # "b" is least recently used
    assert store.get_exact("p", "b", now=12.0, ttl_seconds=None) is None
    assert store.search("p", vec(1), min_similarity=0.99, now=12.0, ttl_seconds=None) == []
    assert {e for e in ("a", "c") if store.get_exact("p", e, now=12.0, ttl_seconds=None)} == {
        "a",
        "c",
    }
    assert store.enforce_max_entries(5) == 0


def test_clear_one_partition_or_all(store):
    store.upsert(entry("p1", "x", vec(1)))
    store.upsert(entry("p2", "x", vec(1)))
    store.clear("p1")
    assert store.count("p1") == 0 and store.count("p2") == 1
    store.clear()
    assert store.count() == 0
    assert store.search("p2", vec(1), now=0.0, ttl_seconds=None) == []


@pytest.mark.parametrize(
    "bad",
    [
        np.ones(DIM + 1, dtype=np.float32) / np.sqrt(DIM + 1),
        np.full(DIM, np.nan, dtype=np.float32),
        np.ones(DIM, dtype=np.float32),  # not normalized
    ],
    ids=["wrong-size", "nan", "unnormalized"],
)
def test_bad_vectors_never_enter(store, bad):
    store.upsert(entry("p", "good", vec(1)))
    with pytest.raises(VectorError):
        store.upsert(entry("p", "bad", bad))
    with pytest.raises(VectorError):
        store.search("p", bad, now=0.0, ttl_seconds=None)
    assert store.count() == 1 and store.dim == DIM


async def test_async_methods_match_sync(store):
    await store.aupsert(entry("p", "q", vec(3)))
    hits = await store.asearch("p", vec(3), now=0.0, ttl_seconds=None)
    assert hits[0].entry.text == "q"
    await store.arecord_hit("p", "q", now=1.0)
    got = await store.aget_exact("p", "q", now=1.0, ttl_seconds=None)
    assert got.hit_count == 1
    assert await store.acount() == 1
    assert await store.aenforce_max_entries(0) == 1
    assert await store.aevict_expired(now=0.0, ttl_seconds=1.0) == 0
    await store.aclear()


def test_concurrent_threads_keep_store_consistent(store):
    errors: list[BaseException] = []

    def work(worker: int) -> None:
        try:
            for i in range(40):
                v = vec(worker * 1000 + i)
                store.upsert(entry(f"p{worker % 2}", f"w{worker}-{i}", v))
                found = store.search(f"p{worker % 2}", v, now=0.0, ttl_seconds=None)
                assert found[0].entry.text == f"w{worker}-{i}"
                store.record_hit(f"p{worker % 2}", f"w{worker}-{i}", now=1.0)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(w,)) for w in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert store.count() == 240


# -- SQLite specifics -----------------------------------------------------------------


def test_sqlite_reopen_keeps_entries_and_dim(tmp_path):
    path = tmp_path / "new-dir" / "c.db"  # a missing directory is created
    with SQLiteStore(path) as s:
        s.upsert(entry("p", "kept", vec(5), metadata={"model": "gpt-4o-mini"}))
        assert s.path.endswith("c.db")
    with SQLiteStore(path) as s:
        assert s.dim == DIM
        hit = s.search("p", near(vec(5), 0.05), now=1.0, ttl_seconds=None)[0]
        assert hit.entry.text == "kept" and hit.entry.metadata == {"model": "gpt-4o-mini"}
    with pytest.raises(ValueError, match="holds 16-d vectors"):
        SQLiteStore(path, dim=DIM * 2)
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()


def test_sqlite_mirror_follows_other_connections(tmp_path):
    path = tmp_path / "shared.db"
    reader, writer = SQLiteStore(path), SQLiteStore(path)
    writer.upsert(entry("p", "from-writer", vec(8)))
    assert reader.search("p", vec(8), now=0.0, ttl_seconds=None)[0].entry.text == "from-writer"
    writer.upsert(CacheEntry("p", "from-writer", vec(9), "replaced", created_at=1.0))
    found = reader.search("p", vec(9), now=2.0, ttl_seconds=None)
    assert found[0].entry.response == "replaced" and found[0].similarity > 0.999
    writer.clear()
    assert reader.search("p", vec(9), now=2.0, ttl_seconds=None) == []
    reader.close()
    writer.close()
    with pytest.raises(RuntimeError, match="closed"):
        reader.count()


def _write_many(path: str, worker: int, n: int) -> None:
    store = SQLiteStore(path, timeout=60)
    for i in range(n):
        store.upsert(entry("shared", f"w{worker}-{i}", vec(worker * 10_000 + i)))
        # Same key from both processes: the last writer wins, never a duplicate row.
        # (Its own seeds: worker 0's vec(i) would be an exact tie, decided by rounding.)
        store.upsert(entry("shared", f"common-{i % 10}", vec(100_000 + i)))
        store.record_hit("shared", f"common-{i % 10}", now=float(i))
    store.close()


def test_sqlite_two_processes_on_one_file(tmp_path):
    path = str(tmp_path / "multi.db")
    SQLiteStore(path, dim=DIM).close()
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_write_many, args=(path, w, 60)) for w in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0, 0]
    with SQLiteStore(path) as s:
        assert s.count() == 2 * 60 + 10
        for w in range(2):
            got = s.search("shared", vec(w * 10_000 + 59), now=0.0, ttl_seconds=None)
            assert got[0].entry.text == f"w{w}-59"
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    conn.close()


def test_store_arguments_validated():
    with pytest.raises(ValueError, match="dim"):
        MemoryStore(dim=0)
    with pytest.raises(ValueError, match="ann_threshold"):
        MemoryStore(ann_threshold=0)
    with pytest.raises(ValueError, match="timeout"):
        SQLiteStore(":memory:", timeout=0)
    with pytest.raises(ValueError, match="partition"):
        MemoryStore().upsert(entry("", "q", vec(1)))


# -- the PostgreSQL stores' conversations, on a fake connection --------------------------


class FakeCursor:
    def __init__(self, rows: list[tuple]) -> None:
        self.rows, self.rowcount = rows, len(rows)

    def fetchone(self) -> tuple | None:
        return self.rows[0] if self.rows else None

    def fetchall(self) -> list[tuple]:
        return self.rows


class FakeConnection:
    """Answers each query with the rows ``answers`` holds for it; a query whose answer
    is an exception raises it. Records what ran, with BEGIN / COMMIT / ROLLBACK."""

    def __init__(self, answers: dict) -> None:
        self.answers, self.log = answers, []

    def execute(self, query: str, params=()) -> FakeCursor:
        self.log.append(query)
        answer = self.answers.get(query, [])
        if isinstance(answer, Exception):
            raise answer
        return FakeCursor(answer)

    @contextmanager
    def transaction(self):
        self.log.append("BEGIN")
        try:
            yield
        except Exception:
            self.log.append("ROLLBACK")
            raise
        self.log.append("COMMIT")


class AsyncFakeConnection(FakeConnection):
    async def execute(self, query: str, params=()) -> AsyncFakeCursor:
        return AsyncFakeCursor(super().execute(query, params).rows)

    @asynccontextmanager
    async def transaction(self):
        with super().transaction():
            yield


class AsyncFakeCursor(FakeCursor):
    async def fetchone(self) -> tuple | None:
        return super().fetchone()

    async def fetchall(self) -> list[tuple]:
        return super().fetchall()


def tally(limit: int) -> Steps[str]:
    """Count rows, add one in a transaction if under ``limit``, recover from a refusal."""
    (n,) = yield Sql("count", (), "one")
    if n >= limit:
        return "full"
    try:
        yield Transaction(statements(Sql("lock"), Sql("insert")))
    except PermissionError:
        return "refused"
    return "added"


def run_both(steps, answers: dict) -> tuple[object, list[str]]:
    """Drive the steps on the sync and the async fake; both must agree."""
    sync_conn, async_conn = FakeConnection(answers), AsyncFakeConnection(answers)
    result = drive(sync_conn, Conversation(steps()))
    assert asyncio.run(adrive(async_conn, Conversation(steps()))) == result
    assert async_conn.log == sync_conn.log
    return result, sync_conn.log


def test_a_conversation_runs_the_same_on_sync_and_async_connections():
    result, log = run_both(lambda: tally(3), {"count": [(1,)]})
    assert result == "added"
    assert log == ["count", "BEGIN", "lock", "insert", "COMMIT"]
    result, log = run_both(lambda: tally(1), {"count": [(1,)]})
    assert (result, log) == ("full", ["count"])


def test_a_failed_statement_is_raised_inside_the_steps_and_rolls_back():
    answers = {"count": [(0,)], "insert": PermissionError("no")}
    result, log = run_both(lambda: tally(3), answers)
    assert result == "refused"
    assert log == ["count", "BEGIN", "lock", "insert", "ROLLBACK"]
    # Unhandled, the error leaves the driver as it was raised.
    answers = {"count": ValueError("bad")}
    with pytest.raises(ValueError, match="bad"):
        drive(FakeConnection(answers), Conversation(tally(3)))


def test_steps_that_answer_before_any_statement_need_no_connection():
    def empty() -> Steps[int]:
        return 0
        yield  # unreachable: makes this a generator, as every conversation is

    talk = Conversation(empty())
    assert talk.finished and talk.result == 0
    assert not Conversation(tally(1)).finished


def test_exact_index_scans_in_one_thread_pieces_without_changing_results():
    # 4096-d: a piece is ~112 columns, so 300 vectors take three products.
    dim = 4096
    index = ExactIndex(dim)
    assert 2 * ONE_THREAD_PRODUCT // dim < 300
    vectors = {i: vec(i, dim=dim) for i in range(300)}
    for i, v in vectors.items():
        index.add(i, v, created_at=0.0)
    for i in (0, 111, 112, 150, 299):  # either side of the pieces' edges
        top = index.search(near(vectors[i], 0.01, seed=10_000 + i), k=2)
        assert top[0][0] == i and top[0][1] > top[1][1]


@pytest.mark.parametrize("shape", ["random", "sentence-like"])
def test_ann_search_finds_near_duplicates_with_exact_similarities(shape):
    pytest.importorskip("faiss")
    rng = np.random.default_rng(3)
    matrix = rng.standard_normal((6000, 64)).astype(np.float32)
    matrix /= np.linalg.norm(matrix, axis=1, keepdims=True)
    if shape == "sentence-like":
        # Sentence embeddings share a common direction: unrelated entries sit at cosine
        # ~0.8, so the codes must rank a near duplicate within a crowd of close ones.
        common = normalize_vector(rng.standard_normal(64))
        matrix = matrix + 1.8 * common
        matrix /= np.linalg.norm(matrix, axis=1, keepdims=True)
    index = VectorIndex(64, ann=True, ann_threshold=1000, background_build=False)
    for i, v in enumerate(matrix):
        index.add(i, v, created_at=0.0)
    assert index.uses_ann
    picks = range(0, 6000, 20)
    noise, floor = (0.08, 0.5) if shape == "random" else (0.03, 0.9)
    queries = {i: near(matrix[i], noise, seed=i) for i in picks}
    found = {i: index.search(q, k=1, min_similarity=floor) for i, q in queries.items()}
    # Each query's stored twin is found, with its exact cosine (faiss's 4-bit codes only
    # choose the candidates).
    assert sum(bool(hits) and hits[0][0] == i for i, hits in found.items()) >= 0.99 * len(picks)
    for i, hits in found.items():
        if hits:
            assert hits[0][1] == pytest.approx(float(matrix[hits[0][0]] @ queries[i]), abs=1e-6)
    if shape == "random":  # a query with no near neighbour finds nothing above the floor
        stranger = near(np.ones(64, np.float32) / 8, 0.0, seed=1)
        assert index.search(stranger, k=1, min_similarity=0.65) == []
