"""The framework-free semantic cache engine (costopt_core.cache)."""

from __future__ import annotations

import logging
import threading

import numpy as np
import pytest

from costopt_core.cache import SemanticCache, normalize_text, savings_metadata
from costopt_core.hashing import HashingEmbedder
from costopt_core.ledger import TokenUsage
from costopt_core.pricing import get_price
from costopt_core.stores.base import CacheStore
from costopt_core.stores.memory import MemoryStore

EMBEDDER = HashingEmbedder(dim=256)
Q = "How do I reset my account password?"
REWORDED = "How can I reset my account password?"
OTHER = "What is the capital of France?"
META = {"model": "gpt-4o-mini", "input_tokens": 1000, "output_tokens": 500}


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


class CountingEmbed:
    def __init__(self) -> None:
        self.calls: list[str] = []
        self.lock = threading.Lock()

    def __call__(self, text: str) -> np.ndarray:
        with self.lock:
            self.calls.append(text)
        return EMBEDDER.embed_one(text)


def make(**kw) -> tuple[SemanticCache, CountingEmbed, Clock]:
    embed, clock = CountingEmbed(), Clock()
    kw.setdefault("similarity_threshold", 0.85)
    return SemanticCache(embed, clock=clock, **kw), embed, clock


@pytest.mark.parametrize("bad", [0, 0.0, -0.5, 1.01, True, "0.9", float("nan")])
def test_threshold_must_be_a_cosine_in_0_1(bad):
    with pytest.raises(ValueError, match=r"similarity_threshold must be a number in \(0, 1\]"):
        SemanticCache(EMBEDDER.embed_one, similarity_threshold=bad)


def test_other_arguments_validated():
    with pytest.raises(ValueError, match="ttl_seconds"):
        SemanticCache(EMBEDDER.embed_one, ttl_seconds=0)
    with pytest.raises(ValueError, match="max_entries"):
        SemanticCache(EMBEDDER.embed_one, max_entries=0)
    with pytest.raises(TypeError, match="store"):
        SemanticCache(EMBEDDER.embed_one, store={})
    with pytest.raises(TypeError, match="embed"):
        SemanticCache("not callable")
    SemanticCache(EMBEDDER.embed_one, similarity_threshold=1, ttl_seconds=None)


def test_exact_match_needs_no_embedding_and_scores_one():
    cache, embed, _ = make()
    part = cache.partition("model-a")
    assert cache.lookup(part, Q) is None
    cache.update(part, Q, "answer", META)
    before = len(embed.calls)
    hit = cache.lookup(part, "  How do I reset   my account password? ")
    assert hit.response == "answer" and hit.exact and hit.similarity == 1.0
    assert len(embed.calls) == before


def test_semantic_hit_above_threshold_miss_below():
    cache, _, _ = make(similarity_threshold=0.85)
    part = cache.partition("model-a")
    cache.update(part, Q, "answer", META)
    hit = cache.lookup(part, REWORDED)
    assert hit is not None and not hit.exact
    assert 0.85 <= hit.similarity < 1.0 and hit.matched_text == Q
    assert cache.lookup(part, OTHER) is None
    strict, _, _ = make(similarity_threshold=0.999)
    strict_part = strict.partition("model-a")
    strict.update(strict_part, Q, "answer", META)
    assert strict.lookup(strict_part, REWORDED) is None


def test_partitions_and_embedders_never_mix():
    cache, _, _ = make()
    cache.update(cache.partition("model-a", "tenant-1"), Q, "a1", META)
    assert cache.lookup(cache.partition("model-a", "tenant-2"), Q) is None
    assert cache.lookup(cache.partition("model-b", "tenant-1"), Q) is None
    assert cache.lookup(cache.partition("model-a", "tenant-1"), Q).response == "a1"
    other = SemanticCache(EMBEDDER.embed_one, store=cache.store, embedder_id="another-model")
    assert other.lookup(other.partition("model-a", "tenant-1"), Q) is None


def test_one_embedding_per_miss():
    cache, embed, _ = make()
    part = cache.partition("m")
    assert cache.lookup(part, Q) is None
    cache.update(part, Q, "answer", META)
    assert embed.calls == [normalize_text(Q)]
    # An update without a preceding lookup still embeds, once.
    cache.update(part, OTHER, "paris", META)
    assert len(embed.calls) == 2 and cache.stats["embeddings"] == 2


def test_ttl_expires_entries_and_sweeps_them():
    cache, _, clock = make(ttl_seconds=60, evict_interval=0)
    part = cache.partition("m")
    cache.update(part, Q, "answer", META)
    clock.now += 59
    assert cache.lookup(part, Q) is not None
    clock.now += 2
    assert cache.lookup(part, Q) is None and cache.lookup(part, REWORDED) is None
    cache.update(part, OTHER, "paris", META)  # the update sweeps expired entries
    assert cache.store.count() == 1


def test_max_entries_evicts_least_recently_used():
    cache, _, clock = make(max_entries=2, similarity_threshold=0.99)
    part = cache.partition("m")
    for text in ("first question here", "second question there", "third one"):
        cache.update(part, text, text.upper(), META)
        clock.now += 1
        if text.startswith("second"):
            assert cache.lookup(part, "first question here") is not None  # refresh "first"
    assert cache.store.count() == 2
    assert cache.lookup(part, "first question here") is not None
    assert cache.lookup(part, "second question there") is None


def test_stats_count_hits_tokens_and_dollars():
    cache, _, _ = make()
    part = cache.partition("m")
    cache.lookup(part, Q)
    cache.update(part, Q, "answer", META)
    exact = cache.lookup(part, Q)
    semantic = cache.lookup(part, REWORDED)
    cache.lookup(part, OTHER)
    expected = get_price("gpt-4o-mini").cost(input_tokens=1000, output_tokens=500)
    stats = cache.stats
    assert (stats["hits"], stats["misses"], stats["lookups"]) == (2, 2, 4)
    assert stats["hit_rate"] == 0.5
    assert (stats["exact_hits"], stats["semantic_hits"]) == (1, 1)
    assert stats["tokens_saved"] == 3000 and stats["output_tokens_saved"] == 1000
    assert stats["saved_usd"] == pytest.approx(2 * expected) and expected > 0
    assert exact.saved_usd == pytest.approx(expected)
    assert stats["mean_hit_similarity"] == pytest.approx((1.0 + semantic.similarity) / 2)
    assert exact.marker()["hit"] is True and exact.marker()["tokens_saved"] == 1500
    cache.reset_stats()
    assert cache.stats["hits"] == 0 and cache.stats["hit_rate"] == 0.0


def test_unknown_model_saving_is_unknown_not_zero():
    cache, _, _ = make()
    part = cache.partition("m")
    cache.update(part, Q, "answer", {"model": "no-such-model-xyz", "input_tokens": 10})
    hit = cache.lookup(part, Q)
    assert hit.saved_usd is None
    assert cache.stats["unpriced_hits"] == 1 and cache.stats["saved_usd"] == 0.0


def test_failing_embeddings_behave_as_a_miss(caplog):
    def broken(text: str) -> list[float]:
        raise ConnectionError("embedding service down")

    cache = SemanticCache(broken)
    part = cache.partition("m")
    with caplog.at_level(logging.ERROR, logger="costopt_core.cache"):
        assert cache.lookup(part, Q) is None
        cache.update(part, Q, "answer", META)  # skipped, not raised
    assert "embedding service down" in caplog.text
    assert cache.stats["errors"] == 2 and cache.stats["misses"] == 1
    assert cache.store.count() == 0


def test_a_persistent_fault_is_logged_in_full_once_and_counted_every_time(caplog):
    cache = SemanticCache(lambda text: [0.1] * 255, store=MemoryStore(dim=256))
    part = cache.partition("m")
    with caplog.at_level(logging.ERROR, logger="costopt_core.cache"):
        for _ in range(5):
            assert cache.lookup(part, Q) is None
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and "255 dimensions" in errors[0].getMessage()
    assert cache.stats["misses"] == 5


class BrokenStore(MemoryStore):
    def get_exact(self, *a, **kw):
        raise OSError("disk gone")

    def upsert(self, entry):
        raise OSError("disk gone")


def test_failing_store_behaves_as_a_miss():
    cache = SemanticCache(EMBEDDER.embed_one, store=BrokenStore())
    part = cache.partition("m")
    assert cache.lookup(part, Q) is None
    cache.update(part, Q, "answer", META)
    assert cache.stats["errors"] == 2


@pytest.mark.parametrize(
    ("vector", "message"),
    [([0.1] * 255, "255 dimensions"), ([float("nan")] * 256, "NaN"), ([0.0] * 256, "zero")],
)
def test_bad_vectors_rejected_and_never_stored(vector, message, caplog):
    store = MemoryStore(dim=256)
    cache = SemanticCache(lambda text: vector, store=store)
    part = cache.partition("m")
    with caplog.at_level(logging.ERROR, logger="costopt_core.cache"):
        assert cache.lookup(part, Q) is None
        cache.update(part, Q, "answer", META)
    assert message in caplog.text
    assert store.count() == 0 and cache.stats["rejected_vectors"] == 2


def test_clear_empties_the_store():
    cache, _, _ = make()
    cache.update(cache.partition("m"), Q, "answer", META)
    cache.clear()
    assert cache.lookup(cache.partition("m"), Q) is None


async def test_async_path_uses_async_embedding_and_store():
    sync_calls: list[str] = []
    async_calls: list[str] = []

    def sync_embed(text: str) -> np.ndarray:
        sync_calls.append(text)
        return EMBEDDER.embed_one(text)

    async def async_embed(text: str) -> np.ndarray:
        async_calls.append(text)
        return EMBEDDER.embed_one(text)

    class RecordingStore(MemoryStore):
        async_used = 0

        async def asearch(self, *a, **kw):
            RecordingStore.async_used += 1
            return self.search(*a, **kw)

    cache = SemanticCache(
        sync_embed, aembed=async_embed, similarity_threshold=0.85, store=RecordingStore()
    )
    part = cache.partition("m")
    assert await cache.alookup(part, Q) is None
    await cache.aupdate(part, Q, "answer", META)
    hit = await cache.alookup(part, REWORDED)
    assert hit.response == "answer"
    assert sync_calls == [] and len(async_calls) == 2 and RecordingStore.async_used == 2
    await cache.aclear()
    assert await cache.alookup(part, Q) is None


async def test_async_faults_are_misses():
    async def broken(text: str) -> list[float]:
        raise TimeoutError("slow")

    cache = SemanticCache(EMBEDDER.embed_one, aembed=broken)
    part = cache.partition("m")
    assert await cache.alookup(part, Q) is None
    await cache.aupdate(part, Q, "answer", META)
    assert cache.stats["errors"] == 2 and cache.store.count() == 0


def test_concurrent_lookups_and_updates_keep_counts_exact():
    cache, _, _ = make(max_entries=50)
    part = cache.partition("m")
    errors: list[BaseException] = []

    def work(worker: int) -> None:
        try:
            for i in range(30):
                text = f"question {i % 12} about topic {worker % 3}"
                if cache.lookup(part, text) is None:
                    cache.update(part, text, f"answer {i}", META)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(w,)) for w in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    stats = cache.stats
    assert errors == [] and stats["errors"] == 0
    assert stats["hits"] + stats["misses"] == 8 * 30
    assert stats["hits"] > 0 and cache.store.count() <= 50


def test_store_is_a_cache_store():
    cache, _, _ = make()
    assert isinstance(cache.store, CacheStore)


async def test_sync_and_async_run_the_same_steps():
    # One algorithm, two drivers: the same calls give the same answers and statistics.
    def run_sync(cache: SemanticCache, part: str) -> list[object]:
        out: list[object] = [cache.lookup(part, Q)]
        cache.update(part, Q, "answer", META)
        out += [cache.lookup(part, Q), cache.lookup(part, REWORDED), cache.lookup(part, OTHER)]
        return out

    async def run_async(cache: SemanticCache, part: str) -> list[object]:
        out: list[object] = [await cache.alookup(part, Q)]
        await cache.aupdate(part, Q, "answer", META)
        out += [
            await cache.alookup(part, Q),
            await cache.alookup(part, REWORDED),
            await cache.alookup(part, OTHER),
        ]
        return out

    sync_cache = SemanticCache(EMBEDDER.embed_one, similarity_threshold=0.85, clock=Clock())
    async_cache = SemanticCache(EMBEDDER.embed_one, similarity_threshold=0.85, clock=Clock())
    sync_out = run_sync(sync_cache, sync_cache.partition("m"))
    async_out = await run_async(async_cache, async_cache.partition("m"))
    assert sync_out == async_out
    assert [hit is not None and hit.exact for hit in sync_out] == [False, True, False, False]
    assert sync_cache.stats == async_cache.stats


async def test_async_store_faults_are_thrown_into_the_steps():
    class AsyncBrokenStore(MemoryStore):
        async def aget_exact(self, *a, **kw):
            raise OSError("disk gone")

    cache = SemanticCache(EMBEDDER.embed_one, store=AsyncBrokenStore())
    part = cache.partition("m")
    assert await cache.alookup(part, Q) is None
    assert cache.lookup(part, Q) is None  # the sync path reads the working get_exact
    stats = cache.stats
    assert (stats["errors"], stats["misses"]) == (1, 2)


async def test_a_response_that_is_not_a_str_is_refused_by_both_apis():
    cache = SemanticCache(EMBEDDER.embed_one)
    part = cache.partition("m")
    with pytest.raises(TypeError, match="serialized str"):
        cache.update(part, Q, {"not": "serialized"}, META)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="serialized str"):
        await cache.aupdate(part, Q, 42, META)  # type: ignore[arg-type]


def test_savings_metadata_round_trips_to_the_hit_usage_and_price():
    cache = SemanticCache(EMBEDDER.embed_one)
    part = cache.partition("m")
    usage = TokenUsage(1000, 500, cache_read_tokens=800, reasoning_tokens=100)
    cache.update(part, Q, "answer", savings_metadata("gpt-4o-mini", usage))
    hit = cache.lookup(part, Q)
    assert hit is not None and hit.usage == usage and hit.model == "gpt-4o-mini"
    price = get_price("gpt-4o-mini")
    assert hit.saved_usd == pytest.approx(price.cost(1000, 500, 800, 0, 100))
    estimated = savings_metadata(None, TokenUsage(3, 4), estimated=True)
    assert estimated["usage_estimated"] is True and estimated["model"] is None


@pytest.mark.parametrize(
    ("options", "error", "named"),
    [
        ({"evict_interval": "x"}, TypeError, "evict_interval"),
        ({"evict_interval": -1}, ValueError, "evict_interval"),
        ({"clock": 5}, TypeError, "clock"),  # accepted, then every lookup failed
    ],
)
def test_bad_cache_options_are_refused_naming_the_argument(options, error, named):
    with pytest.raises(error, match=named):
        SemanticCache(HashingEmbedder(), **options)
