"""PostgresStore and PostgresLedger against a real PostgreSQL + pgvector server.

The server comes from the session fixture ``pg_server`` (tests/conftest.py); without
it these tests are skipped with the reason, never passed.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import sys
import threading
import time
import uuid
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import pytest
from langchain_tests.integration_tests.cache import AsyncCacheTestSuite, SyncCacheTestSuite

from costopt_core.cache import SemanticCache
from costopt_core.hashing import HashingEmbedder
from costopt_core.ledger import Budget, BudgetExceededError, CostRecord
from costopt_core.pricing import set_price
from costopt_core.stores.base import CacheEntry, VectorError, normalize_vector
from langchain_costopt import CostCallbackHandler, HashingEmbeddings, SemanticLLMCache
from langchain_costopt.simulated import SimulatedChatModel

psycopg = pytest.importorskip(
    "psycopg", reason='needs the [postgres] extra: pip install -e ".[dev]"'
)
from costopt_core.stores.postgres import (  # noqa: E402
    SCHEMA_VERSION,
    PostgresConnectionError,
    PostgresLedger,
    PostgresStore,
)

DIM = 16
Q = "How do I reset my account password?"
REWORDED = "How can I reset my account password?"
BAD_DSN = "postgresql://app:s3cret-pw@127.0.0.1:1/nodb"
PRICED_MODEL = "pg-test-model"  # priced in every process that uses it


def vec(seed: int, dim: int = DIM) -> np.ndarray:
    return normalize_vector(np.random.default_rng(seed).standard_normal(dim))


def near(vector: np.ndarray, noise: float, seed: int = 99) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return normalize_vector(vector + noise * rng.standard_normal(vector.shape[0]))


def entry(partition: str, text: str, vector: np.ndarray, created_at: float = 0.0, **kw):
    return CacheEntry(partition, text, vector, f"answer to {text}", created_at, **kw)


def new_table() -> str:
    return f"t_{uuid.uuid4().hex[:12]}"


@pytest.fixture
def dsn(pg_server) -> str:
    return pg_server.dsn


@pytest.fixture
def table() -> str:
    return new_table()


@pytest.fixture
def store(dsn, table):
    s = PostgresStore(dsn, table=table)
    yield s
    s.close()


@pytest.fixture
def ledger(dsn, table):
    ledger = PostgresLedger(dsn, table=table)
    yield ledger
    ledger.close()


def price_test_model() -> None:
    set_price(PRICED_MODEL, input_per_token=1e-6, output_per_token=2e-6)


def spawn_pool(n: int) -> ProcessPoolExecutor:
    return ProcessPoolExecutor(n, mp_context=multiprocessing.get_context("spawn"))


# -- the store contract on PostgreSQL --------------------------------------------------


def test_entries_are_stored_found_and_replaced(store):
    assert store.count() == 0 and store.dim is None  # nothing created yet
    store.upsert(entry("p", "q1", vec(1), metadata={"model": "m", "input_tokens": 3}))
    assert store.dim == DIM
    got = store.get_exact("p", "q1", now=1.0, ttl_seconds=None)
    assert got.response == "answer to q1" and got.metadata == {"model": "m", "input_tokens": 3}
    store.upsert(CacheEntry("p", "q1", vec(2), "newer", created_at=5.0))
    assert store.count() == 1
    assert store.get_exact("p", "q1", now=6.0, ttl_seconds=None).response == "newer"
    hit = store.search("p", near(vec(2), 0.05), now=6.0, ttl_seconds=None)[0]
    assert hit.entry.response == "newer" and 0.9 < hit.similarity <= 1.0
    assert store.search("p", vec(1), min_similarity=0.99, now=6.0, ttl_seconds=None) == []


def test_partitions_never_cross_and_long_texts_work(store):
    long_text = "why " * 5000  # far beyond a btree entry: the key is a hash plus the text
    store.upsert(entry("tenant-a", long_text, vec(1)))
    store.upsert(entry("tenant-a", long_text + "?", vec(3)))
    assert store.get_exact("tenant-a", long_text, now=0.0, ttl_seconds=None).text == long_text
    assert store.get_exact("tenant-b", long_text, now=0.0, ttl_seconds=None) is None
    assert store.search("tenant-b", vec(1), now=0.0, ttl_seconds=None) == []
    assert store.count("tenant-a") == 2 and store.count("tenant-b") == 0
    store.clear("tenant-a")
    assert store.count() == 0


def test_bad_vectors_never_enter(store):
    store.upsert(entry("p", "good", vec(1)))
    for bad in (vec(1, DIM + 1), np.full(DIM, np.nan, np.float32), np.ones(DIM, np.float32)):
        with pytest.raises(VectorError):
            store.upsert(entry("p", "bad", bad))
        with pytest.raises(VectorError):
            store.search("p", bad, now=0.0, ttl_seconds=None)
    assert store.count() == 1


def test_ttl_and_lru_limits_run_in_sql(store):
    for i, text in enumerate(["a", "b", "c"]):
        store.upsert(entry("p", text, vec(i), created_at=float(i), last_used_at=float(i)))
    store.record_hit("p", "a", now=10.0)
    store.record_hit("p", "missing", now=10.0)  # ignored
    assert store.enforce_max_entries(2) == 1  # "b" is the least recently used
    assert store.get_exact("p", "b", now=10.0, ttl_seconds=None) is None
    assert store.get_exact("p", "a", now=10.0, ttl_seconds=None).hit_count == 1
    # TTL counts from creation: "a" (created at 0) expires even though it was hit.
    assert store.get_exact("p", "a", now=5.0, ttl_seconds=4.0) is None
    assert store.search("p", vec(0), min_similarity=0.9, now=5.0, ttl_seconds=4.0) == []
    assert store.evict_expired(now=5.0, ttl_seconds=4.0) == 1
    assert store.count() == 1 and store.get_exact("p", "c", now=5.0, ttl_seconds=4.0)


def test_reopened_store_reads_dim_and_refuses_other_sizes(dsn, table, store):
    store.upsert(entry("p", "kept", vec(5)))
    with PostgresStore(dsn, table=table) as again:
        assert again.dim == DIM
        assert again.search("p", vec(5), now=0.0, ttl_seconds=None)[0].entry.text == "kept"
    with (
        PostgresStore(dsn, table=table, dim=DIM * 2) as wrong,
        pytest.raises(ValueError, match="holds 16-d vectors"),
    ):
        wrong.count()


def test_a_store_opened_on_an_empty_table_sees_entries_written_later(dsn, table):
    reader, writer = PostgresStore(dsn, table=table), PostgresStore(dsn, table=table)
    assert reader.search("p", vec(1), now=0.0, ttl_seconds=None) == []  # nothing yet
    writer.upsert(entry("p", "late", vec(1)))
    time.sleep(1.1)  # an empty cache is re-checked at most once a second
    assert reader.dim == DIM
    assert reader.search("p", vec(1), now=0.0, ttl_seconds=None)[0].entry.text == "late"
    reader.close()
    writer.close()


def test_schema_has_version_row_hnsw_index_and_partition_key(dsn, store, table):
    store.upsert(entry("p", "x", vec(1)))
    with psycopg.connect(dsn) as conn:
        kind, version, dim = conn.execute(
            f"SELECT kind, version, dim FROM {table}_schema"
        ).fetchone()
        indexes = [
            r[0]
            for r in conn.execute("SELECT indexdef FROM pg_indexes WHERE tablename = %s", (table,))
        ]
    assert (kind, version, dim) == ("cache", SCHEMA_VERSION, DIM)
    assert any("hnsw" in d and "vector_cosine_ops" in d for d in indexes)
    assert any("UNIQUE" in d and "(partition, text_hash)" in d for d in indexes)


def test_a_newer_schema_is_refused(dsn, table):
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(
            f"CREATE TABLE {table}_schema (singleton boolean PRIMARY KEY DEFAULT true,"
            " kind text NOT NULL, version integer NOT NULL, dim integer,"
            " created_at timestamptz NOT NULL DEFAULT now())"
        )
        conn.execute(
            f"INSERT INTO {table}_schema (kind, version, dim) VALUES ('cache', %s, 16)",
            (SCHEMA_VERSION + 1,),
        )
    with PostgresStore(dsn, table=table) as s, pytest.raises(RuntimeError, match="newer costopt"):
        s.count()


def test_filtered_search_finds_neighbours_in_small_and_large_partitions(store):
    # A large partition answered by the HNSW index and a tiny one whose rows the index
    # scan meets rarely: both must find their nearest entry.
    for i in range(1500):
        store.upsert(entry("big", f"b{i}", vec(i)))
    for i in range(5):
        store.upsert(entry("small", f"s{i}", vec(10_000 + i)))
    for i in (0, 777, 1499):
        hit = store.search("big", near(vec(i), 0.05), now=0.0, ttl_seconds=None)
        assert hit and hit[0].entry.text == f"b{i}"
    hit = store.search("small", near(vec(10_003), 0.05), k=3, now=0.0, ttl_seconds=None)
    assert hit[0].entry.text == "s3" and len(hit) == 3
    assert hit[0].similarity >= hit[1].similarity >= hit[2].similarity


def test_hit_counts_are_atomic_across_threads(store):
    store.upsert(entry("p", "hot", vec(1)))

    def hammer() -> None:
        for _ in range(50):
            store.record_hit("p", "hot", now=1.0)

    threads = [threading.Thread(target=hammer) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert store.get_exact("p", "hot", now=1.0, ttl_seconds=None).hit_count == 300


async def test_async_paths_are_native_and_match_sync(store):
    await store.aupsert(entry("p", "q", vec(3)))
    hits = await store.asearch("p", near(vec(3), 0.05), now=0.0, ttl_seconds=None)
    assert hits[0].entry.text == "q"
    await store.arecord_hit("p", "q", now=1.0)
    assert (await store.aget_exact("p", "q", now=1.0, ttl_seconds=None)).hit_count == 1
    assert await store.acount() == 1 == store.count()
    assert await store.aevict_expired(now=100.0, ttl_seconds=10.0) == 1
    await store.aupsert(entry("p", "r", vec(4)))
    assert await store.aenforce_max_entries(0) == 1
    await store.aupsert(entry("p", "s", vec(5)))
    await store.aclear("p")
    assert await store.acount() == 0
    await store.aclose()


def test_an_existing_pool_is_used_and_left_open(dsn, table):
    from psycopg_pool import ConnectionPool

    with ConnectionPool(dsn, min_size=1, max_size=2) as pool:
        store = PostgresStore(pool=pool, table=table)
        store.upsert(entry("p", "q", vec(1)))
        assert store.count() == 1
        # HNSW settings go per transaction on a borrowed pool, also for k > ef_search.
        assert store.search("p", vec(1), k=50, now=0.0, ttl_seconds=None)[0].entry.text == "q"
        store.close()
        assert not pool.closed
        with pool.connection() as conn:
            assert conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0] == 1


async def test_an_existing_async_pool_serves_async_and_sync_calls(dsn, table):
    from psycopg_pool import AsyncConnectionPool

    async with AsyncConnectionPool(dsn, min_size=1, max_size=2) as pool:
        store = PostgresStore(pool=pool, table=table)
        await store.aupsert(entry("p", "q", vec(1)))
        assert await store.acount() == 1
        hits = await store.asearch("p", vec(1), now=0.0, ttl_seconds=None)
        assert hits[0].entry.text == "q"
        assert await asyncio.to_thread(store.count) == 1  # sync calls get their own pool
        store.close()
        assert not pool.closed


def test_arguments_are_validated_at_construction(dsn):
    with pytest.raises(ValueError, match="exactly one of dsn"):
        PostgresStore()
    with pytest.raises(ValueError, match="not a valid PostgreSQL connection string"):
        PostgresStore("not a dsn ===")
    with pytest.raises(ValueError, match="table must be a lowercase SQL identifier"):
        PostgresStore(dsn, table="cache; DROP TABLE x")
    with pytest.raises(ValueError, match="dim must be at most 2000"):
        PostgresStore(dsn, dim=4096)
    with pytest.raises(ValueError, match="ef_search"):
        PostgresStore(dsn, ef_search=0)
    with pytest.raises(TypeError, match="pool must be"):
        PostgresStore(pool=object())
    with pytest.raises(ValueError, match="table must be"):
        PostgresLedger(dsn, table="Bad-Name")


def test_missing_driver_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "psycopg", None)
    with pytest.raises(ImportError, match=r'pip install "costopt-llm\[postgres\]"'):
        PostgresStore("postgresql://localhost/db")


# -- one cache shared by many processes ------------------------------------------------


def _ask_through_cache(dsn: str, table: str, question: str) -> dict:
    price_test_model()
    cache = SemanticLLMCache(
        HashingEmbeddings(), similarity_threshold=0.85, store=PostgresStore(dsn, table=table)
    )
    reply = SimulatedChatModel(model_name=PRICED_MODEL, cache=cache).invoke(question)
    stats = cache.stats
    cache.store.close()
    return {
        "content": reply.content,
        "hit": bool(reply.response_metadata.get("costopt_cache")),
        "hits": stats["hits"],
        "saved_usd": stats["saved_usd"],
    }


def test_an_answer_cached_by_one_process_is_served_to_another(dsn, table):
    with spawn_pool(1) as first:
        written = first.submit(_ask_through_cache, dsn, table, Q).result(timeout=120)
    with spawn_pool(1) as second:
        served = second.submit(_ask_through_cache, dsn, table, REWORDED).result(timeout=120)
    assert not written["hit"]
    assert served["hit"] and served["hits"] == 1
    assert served["content"] == written["content"]  # the first process's answer
    assert served["saved_usd"] > 0


def _hit_and_write(dsn: str, table: str, worker: int, n: int) -> None:
    store = PostgresStore(dsn, table=table)
    for i in range(n):
        store.upsert(entry("shared", f"w{worker}-{i}", vec(worker * 10_000 + i)))
        store.record_hit("shared", "hot", now=float(i))
    store.close()


def test_four_processes_write_one_cache_and_count_every_hit(dsn, table, store):
    store.upsert(entry("shared", "hot", vec(0)))
    with spawn_pool(4) as pool:
        for f in [pool.submit(_hit_and_write, dsn, table, w, 50) for w in range(4)]:
            f.result(timeout=120)
    assert store.count() == 1 + 4 * 50
    assert store.get_exact("shared", "hot", now=0.0, ttl_seconds=None).hit_count == 200
    found = store.search("shared", vec(3 * 10_000 + 49), now=0.0, ttl_seconds=None)
    assert found[0].entry.text == "w3-49"


def _ask_llamaindex(dsn: str, table: str, question: str) -> dict:
    from llamaindex_costopt import SemanticCacheLLM
    from llamaindex_costopt.simulated import HashingEmbedding, SimulatedLLM

    llm = SemanticCacheLLM(
        SimulatedLLM(model_name="gpt-4o-mini"),
        embed_model=HashingEmbedding(dim=256),
        similarity_threshold=0.9,
        store=PostgresStore(dsn, table=table),
    )
    response = llm.complete(question)
    llm.store.close()
    return {"text": response.text, "cache": response.additional_kwargs.get("cache")}


def test_llamaindex_cache_wrapper_shares_the_postgres_cache_across_processes(dsn, table):
    with spawn_pool(1) as first:
        written = first.submit(_ask_llamaindex, dsn, table, "How many moons does Mars have?")
        written = written.result(timeout=120)
    with spawn_pool(1) as second:
        served = second.submit(_ask_llamaindex, dsn, table, "how many moons does mars have")
        served = served.result(timeout=120)
    assert written["cache"] is None
    assert served["cache"] and served["cache"]["similarity"] >= 0.9
    assert served["text"] == written["text"]


# -- the engine's TTL and size limit on PostgreSQL ----------------------------------


def test_cache_ttl_and_max_entries_with_postgres(store):
    clock = [1000.0]
    cache = SemanticCache(
        HashingEmbedder(dim=64).embed_one,
        store=store,
        ttl_seconds=60,
        max_entries=3,
        clock=lambda: clock[0],
        evict_interval=0,
    )
    part = cache.partition("model")
    for text in ("alpha question", "beta question", "gamma question"):
        cache.update(part, text, f"answer {text}")
        clock[0] += 1
    assert cache.lookup(part, "alpha question").response == "answer alpha question"
    cache.update(part, "delta question", "answer delta")  # evicts "beta", the LRU entry
    assert store.count() == 3
    assert cache.lookup(part, "beta question") is None
    clock[0] += 61  # everything is now older than the TTL
    assert cache.lookup(part, "delta question") is None
    cache.update(part, "epsilon question", "answer epsilon")  # sweep runs on update
    assert store.count() == 1


# -- LangChain's standard cache suites on PostgreSQL ----------------------------------


class TestPostgresSemanticLLMCacheStandard(SyncCacheTestSuite):
    @pytest.fixture
    def cache(self, pg_server):
        store = PostgresStore(pg_server.dsn, table=new_table())
        yield SemanticLLMCache(HashingEmbeddings(), store=store)
        store.close()


class TestPostgresSemanticLLMCacheAsyncStandard(AsyncCacheTestSuite):
    @pytest.fixture
    async def cache(self, pg_server):
        store = PostgresStore(pg_server.dsn, table=new_table())
        yield SemanticLLMCache(HashingEmbeddings(), store=store)
        await store.aclose()


# -- the ledger ----------------------------------------------------------------------


# The ledger's totals against the in-memory ledger: test_ledger_contract.py (every ledger).


def test_reservations_count_until_settled_released_or_expired(ledger):
    budget = [Budget(0.010)]
    first = ledger.reserve(0.006, budget, now=100.0)
    assert first.allowed and ledger.reserve(0.006, budget, now=100.0).allowed is False
    ledger.release(first.reservation_id)
    second = ledger.reserve(0.006, budget, now=100.0, ttl_seconds=30)
    assert second.allowed
    # An abandoned reservation stops counting after its TTL.
    assert ledger.reserve(0.006, budget, now=131.0).allowed
    ledger.record(CostRecord(model="m", cost_usd=0.009, timestamp=time.time()))
    refused = ledger.reserve(0.0, budget, now=200.0)
    assert not refused.allowed and refused.used_usd == pytest.approx(0.009 + 0.006)
    ledger.clear()
    assert ledger.spent_since() == 0.0 and ledger.records() == []


def test_daily_budget_reads_only_todays_spend(ledger):
    now = time.time()
    ledger.record(CostRecord(model="m", cost_usd=5.0, timestamp=now - 3 * 86_400))
    assert ledger.reserve(0.5, [Budget(1.0, "day")], now=now).allowed
    assert not ledger.reserve(0.5, [Budget(1.0)], now=now).allowed


def _spend_until_refused(dsn: str, table: str, cost: float, limit: float, start: object) -> int:
    ledger = PostgresLedger(dsn, table=table)
    ledger.spent_since()  # connected before the race
    start.wait(timeout=60)  # type: ignore[attr-defined]  # all four begin together
    calls = 0
    while True:
        check = ledger.reserve(cost, [Budget(limit)])
        if not check.allowed:
            break
        time.sleep(0.005)  # the call in flight: other processes check meanwhile
        ledger.record(CostRecord(model="m", cost_usd=cost), reservation_id=check.reservation_id)
        calls += 1
    ledger.close()
    return calls


def test_four_processes_never_overshoot_a_shared_budget(dsn, table, ledger):
    cost, limit = 0.01, 0.405
    ledger.spent_since()  # create the tables before the race
    with multiprocessing.get_context("spawn").Manager() as manager, spawn_pool(4) as pool:
        start = manager.Barrier(4)
        jobs = [pool.submit(_spend_until_refused, dsn, table, cost, limit, start) for _ in range(4)]
        counts = [f.result(timeout=120) for f in jobs]
    assert sum(counts) == 40  # exactly what fits: no overshoot, nothing left unspent
    assert sum(1 for c in counts if c > 0) >= 2  # the processes really competed
    assert ledger.spent_since() == pytest.approx(0.40)
    assert ledger.reserved_usd == 0.0


def _invoke_until_budget(dsn: str, table: str, budget_usd: float) -> int:
    price_test_model()
    handler = CostCallbackHandler(budget_usd=budget_usd, ledger=PostgresLedger(dsn, table=table))
    # max_tokens: the answer's own size, so each call costs what it reserves.
    model = SimulatedChatModel(model_name=PRICED_MODEL, answer="Fine, thanks.", max_tokens=4)
    calls = 0
    try:
        while calls < 1000:
            model.invoke("How are you today?", config={"callbacks": [handler]})
            calls += 1
    except BudgetExceededError:
        pass
    handler.ledger.close()
    return calls


def test_cost_handlers_in_four_processes_share_one_budget(dsn, table, ledger):
    price_test_model()
    usage = (
        SimulatedChatModel(model_name=PRICED_MODEL, answer="Fine, thanks.", max_tokens=4)
        .invoke("How are you today?")
        .usage_metadata
    )
    call_cost = usage["input_tokens"] * 1e-6 + usage["output_tokens"] * 2e-6
    budget = 30.5 * call_cost
    ledger.spent_since()
    with spawn_pool(4) as pool:
        futures = [pool.submit(_invoke_until_budget, dsn, table, budget) for _ in range(4)]
        counts = [f.result(timeout=120) for f in futures]
    spent = ledger.spent_since()
    assert spent <= budget + 1e-12  # each call reserved its maximum: never over
    assert spent >= budget - 2 * call_cost  # and the budget was actually used
    assert sum(counts) == len(ledger.records())


# -- faults: bad DSN, server restart ---------------------------------------------------


def test_bad_dsn_is_a_clear_error_at_first_use():
    store = PostgresStore(BAD_DSN, connect_timeout=2)
    with pytest.raises(PostgresConnectionError) as info:
        store.count()
    message = str(info.value)
    assert "127.0.0.1" in message and "nodb" in message and "s3cret-pw" not in message
    with pytest.raises(PostgresConnectionError, match="cost ledger"):
        PostgresLedger(BAD_DSN, connect_timeout=2).spent_since()


def test_bad_dsn_never_fails_the_llm_call(caplog):
    # A budget its ledger cannot check refuses calls unless the user allows them
    # (on_ledger_error="allow"; the refusal is tested in test_ledger_errors.py).
    cache = SemanticLLMCache(HashingEmbeddings(), store=PostgresStore(BAD_DSN, connect_timeout=2))
    ledger = PostgresLedger(BAD_DSN, connect_timeout=2)
    handler = CostCallbackHandler(budget_usd=5.0, ledger=ledger, on_ledger_error="allow")
    model = SimulatedChatModel(model_name="gpt-4o-mini", cache=cache)
    with caplog.at_level(logging.ERROR):
        first = model.invoke(Q, config={"callbacks": [handler]})
        second = model.invoke(Q, config={"callbacks": [handler]})
    assert first.content and second.content == first.content  # answered by the model
    assert not second.response_metadata.get("costopt_cache")
    assert cache.stats["errors"] >= 2 and cache.stats["hits"] == 0
    assert "cannot connect to PostgreSQL" in caplog.text
    assert "s3cret-pw" not in caplog.text


async def test_bad_dsn_never_fails_the_async_llm_call(caplog):
    cache = SemanticLLMCache(HashingEmbeddings(), store=PostgresStore(BAD_DSN, connect_timeout=2))
    model = SimulatedChatModel(model_name="gpt-4o-mini", cache=cache)
    with caplog.at_level(logging.ERROR):
        reply = await model.ainvoke(Q)
    assert reply.content and cache.stats["errors"] >= 1
    assert "cannot connect to PostgreSQL" in caplog.text


def test_store_and_ledger_reconnect_after_a_server_restart(pg_server, table, caplog):
    store = PostgresStore(pg_server.dsn, table=table)
    ledger = PostgresLedger(pg_server.dsn, table=f"{table}_l")
    store.upsert(entry("p", "before", vec(1)))
    ledger.record(CostRecord(model="m", cost_usd=0.25))
    pg_server.restart()
    with caplog.at_level(logging.WARNING):
        assert store.get_exact("p", "before", now=0.0, ttl_seconds=None).text == "before"
        assert ledger.spent_since() == 0.25
    assert "retrying once" in caplog.text
    store.upsert(entry("p", "after", vec(2)))
    assert store.search("p", vec(2), now=0.0, ttl_seconds=None)[0].entry.text == "after"
    assert ledger.reserve(0.5, [Budget(1.0)]).allowed
    store.close()
    ledger.close()


async def test_async_store_reconnects_after_a_server_restart(pg_server, table):
    store = PostgresStore(pg_server.dsn, table=table)
    await store.aupsert(entry("p", "before", vec(1)))
    pg_server.restart()
    hits = await store.asearch("p", vec(1), now=0.0, ttl_seconds=None)
    assert hits[0].entry.text == "before"
    await store.aclose()


def test_an_outage_fails_fast_then_recovers(pg_server, table):
    store = PostgresStore(pg_server.dsn, table=table, pool_timeout=1, retry_after=3.0)
    cache = SemanticLLMCache(HashingEmbeddings(), similarity_threshold=0.85, store=store)
    model = SimulatedChatModel(model_name="gpt-4o-mini", cache=cache)
    model.invoke(Q)  # cached while the server is up
    pg_server.stop()
    try:
        with pytest.raises(psycopg.OperationalError):
            store.count()  # waits at most pool_timeout, then marks the server down
        started = time.perf_counter()
        with pytest.raises(PostgresConnectionError, match="next attempt in"):
            store.count()
        assert model.invoke(REWORDED).content  # answered by the model, no wait
        assert time.perf_counter() - started < 0.5
    finally:
        pg_server.start()
    time.sleep(3.1)  # retry_after: the next call tries the server again
    assert model.invoke(REWORDED).response_metadata.get("costopt_cache")  # the cache is back
    store.close()
