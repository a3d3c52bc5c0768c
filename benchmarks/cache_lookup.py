"""Semantic-cache lookup latency, embedding excluded: costopt vs the seed's pure-Python scan.

Run:
    .venv/bin/python benchmarks/cache_lookup.py            # 10k and 100k entries, 384-d
    .venv/bin/python benchmarks/cache_lookup.py --sizes 10000 --queries 200
    .venv/bin/python benchmarks/cache_lookup.py --clock cpu   # on a shared machine

For each cache size N (one partition, random unit 384-d float32 vectors) it times:

* ``seed``: the seed's ``SemanticCache.get`` (a Python loop computing cosine similarity
  entry by entry, plus its TTL list rebuild). At sizes above ``--seed-max`` the seed is
  timed on a random subsample of ``--seed-max`` entries and scaled linearly to N (its
  cost is O(N) per lookup); the table says "extrapolated" then.
* ``store exact``: ``MemoryStore.search`` with the exact numpy scan (``ann=False``).
* ``store ANN``: ``MemoryStore.search`` with the faiss IVF index (extra ``[ann]``;
  skipped when faiss is not installed), and its recall@1 against the exact scan.
* ``face lookup``: the full ``SemanticLLMCache.lookup`` a LangChain call pays (prompt
  keying, exact-match probe, search, the default error-bounded decision, hit bookkeeping,
  stats, reviving the stored generations) with the default store settings, the
  embedding replaced by a dictionary of precomputed vectors so that only the cache is
  timed; the prompt is a plain LLM's text. ``chat face``: the same for a chat model's
  prompt (LangChain's ``dumps`` of a system message and the question), which the face
  reads to key it, in its own partition holding what a chat model's call leaves (a
  ``ChatGeneration`` with usage and metadata, which a hit revives). ``engine``
  (``SemanticCache.lookup`` alone) is printed below, for each partition.

The last ``--late`` entries (128) are added after the approximate index is built, as a
live cache keeps adding: with faiss they sit in the index's exactly-scanned tail, which
every search pays for.

Where the face spent its time (cProfile and stage timings, 2 shared vCPUs):

* LangChain's ``loads(..., allowed_objects=[...])`` rebuilt its allow-list on every call
  (~1 ms); the face builds it once (``langchain_costopt.revive``), calls LangChain's
  ``Reviver`` only on ``{"lc": 1}`` dicts, and reads message fields without pydantic's
  missing-attribute exceptions: keying a two-message chat prompt ~0.13 -> ~0.05 ms.
* The exact scan was one BLAS product over all entries, which OpenBLAS splits across
  two threads; on a busy machine the wait for the second thread made a 10k search cost
  16-25 ms instead of 0.2. It now runs in one-thread pieces over a column-major matrix
  (``costopt_core.stores.index.ONE_THREAD_PRODUCT``). faiss's single-query IVF search
  already runs on one thread (``omp_set_num_threads(1)`` changed nothing measurable).
* faiss IVF lists held float16 (candidates re-scored exactly), later 4-bit fast-scan
  codes (below). The decision (``costopt_core.cache_gate``: evidence, calibration) costs
  ~0.01 ms of a lookup; the engine's other steps (normalizing, exact probe, stats,
  pricing the hit) ~0.05 ms.

The chat face (2026-12-07). Earlier runs had it ~0.25 ms behind the plain face at 100k
(0.73 against 0.47 ms). Timed back to back in one process (old and new face code over
one store, each query looked up by each at different times; load 4-6 on 2 vCPUs), its
own extra was ~0.15 ms; the rest was how it was measured:

* The plain face was timed right after the engine looked up the same vector in the
  same partition, so the IVF lists it read were in the CPU caches; the chat partition
  is another index and was read cold. At 10k (exact scans, 15 MB a partition) the plain
  partition, scanned three times a turn, stayed in the 32 MB L3 and the chat one did
  not. Now each face takes its own pass with its own engine lookups (of other queries)
  and misses (:func:`interleaved_ms`): each partition sees the same traffic.
* Keying the chat prompt: building its two pydantic messages was 2/3 of it.
  ``langchain_costopt.prompt_key`` reads the fields the key uses straight from the
  JSON of system, human, AI, tool and chat messages whose constructor would keep them
  as written (LangChain builds the others): ~58 -> ~30 us for system + question,
  ~100 -> ~59 us for four turns with an AI turn (plain prompt: 6 us).
* Reviving: LangChain's ``Reviver`` re-checks each object's class path and imports
  its class (~5 of its ~11 us); ``Revive`` resolves a path once, and walks the JSON
  through ``json.loads``'s ``object_hook`` (in C): a chat answer ~43 -> ~29 us.
* Every lookup, plain or chat: faiss's dozen candidates were re-scored by gathering
  their columns from a column-major matrix, 384 cache lines a vector; a partition with
  an ANN index now holds its vectors by rows (24 lines): ~60 -> ~12 us warm, ~180 ->
  ~60 us cold.
* In a lookup the search has just evicted the caches, so the face's Python steps cost
  2-3x their standalone timings (at load ~5: key 22 / 97 us and revive 42 / 100 us,
  plain / chat, against 6 / 30 and 10 / 29 alone): each step removed counts double.
* Checked and not the cause: both partitions are filled the same way (their ANN
  indexes were built in the background at ~50k entries, ~450 lists of ~220; tails of
  75 and 128 entries: the engine alone is within ~0.03 ms in either); the text a
  chat prompt embeds is the question alone; hashing its context into the partition
  key costs ~5 us; 8-bit IVF lists scan no faster than float16 (177 vs 179 us).

In-process A/B at 100k, median ms, best of 4 rounds (median of rounds), load ~4:

=========================  ==============  ==============
code                       plain face      chat face
=========================  ==============  ==============
before (610d899)           0.555 (0.642)   0.706 (0.794)
after                      0.484 (0.539)   0.557 (0.610)
=========================  ==============  ==============

This script, same machine, load 5-6 (``PYTHONPATH=<checkout>`` selects the code):
before 0.538 / 0.722 ms (plain / chat face at 100k); after 0.468 / 0.610 and
0.496 / 0.626. The chat face's remaining extra (~0.07-0.13 ms) is building the
answer's pydantic ``ChatGeneration`` and the prompt's key; the engine (~0.4 ms, 2/3
of it faiss's IVF scan) is most of every lookup.

The index (2026-12-07, later). The float16 IVF index scanned 12 of ~450-630 lists, and a
search with the cache's floor that found nothing looked again in 4x the lists: a miss,
the common lookup of a young cache, cost twice a hit (face 1.08 ms at 100k against
0.50 for a hit, quiet machine). faiss's 4-bit fast-scan product codes
(``IndexIVFPQFastScan``, 24 bytes a 384-d vector, 24 candidates re-scored exactly) scan
48 lists in about the time float16 scanned 12, with recall 1.000 in one look, so the
wider look is gone; the approximate index starts at 4,096 entries instead of 20,000.
Same script, before (wall clock, load ~1) / after (48 codes, wall clock, load 2-3) /
final (96 residual codes, 16-entry tail, ``--clock cpu``, load 3-4): 100k plain face
0.500 / 0.358 / 0.381 ms, chat face 0.603 / 0.420 / 0.443, a miss 1.075 / 0.284 / 0.280,
a chat miss 1.187 / 0.313 / 0.322; 10k plain face 0.701 / 0.293 / 0.288 ms (1,152x /
2,938x / 2,940x the seed). The final code on a quiet machine (load 0.1, wall clock):
100k 0.327 / 0.406 ms (plain / chat), misses 0.257 / 0.294, 10k 3,724x. Under heavier
load (valgrind on both cores) wall-clock runs read up to ~0.5 / 0.64 ms at 100k: compare
runs at the same load, or with ``--clock cpu``. ``wait_for_index`` now also adopts a
finished build and waits for the rebuild it makes due: the timed 100k partitions were
indexed at ~50k entries before, with a rebuild running in the background during the
timing.

Latencies are the median (and p90) of the best of three passes over the queries;
within a face's pass its engine, face and miss lookups are called in turn on each
query, so their ratios see the same load. The machine's load average is printed, as
other processes inflate them.
Queries are stored vectors with noise (cosine ~0.96 to their source, above the 0.92
threshold) so lookups are hits, like a reworded question. Targets from the issue:
<= 0.5 ms median at 100k entries; >= 1000x the seed's scan at 10k.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import time
from collections.abc import Callable
from datetime import datetime, timedelta

import numpy as np
from langchain_core.embeddings import Embeddings
from langchain_core.load import dumps
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage
from langchain_core.outputs import ChatGeneration, Generation

import costopt_core
from costopt_core.cache import SemanticCache
from costopt_core.stores.base import CacheEntry
from costopt_core.stores.index import ann_available
from costopt_core.stores.memory import MemoryStore
from langchain_costopt.cache import SemanticLLMCache

DIM = 384
LLM_STRING = "bench-llm"
RESPONSE = dumps([Generation(text="a cached answer")])
# What a chat model's call leaves in the cache: its message, with usage and metadata.
CHAT_RESPONSE = dumps(
    [
        ChatGeneration(
            message=AIMessage(
                "a cached answer",
                id="run-0",
                response_metadata={"model_name": "gpt-4o-mini", "finish_reason": "stop"},
                usage_metadata={"input_tokens": 24, "output_tokens": 4, "total_tokens": 28},
            ),
            generation_info={"finish_reason": "stop"},
        )
    ]
)


def name(i: int) -> str:
    """Entry ``i``'s question: words without digits (a digit would be a number the
    decision compares), e.g. ``question bac``; its query is the same with ``?``."""
    letters = ""
    while True:
        i, r = divmod(i, 26)
        letters += chr(97 + r)
        if not i:
            return "question " + letters


class VectorEmbeddings(Embeddings):
    """Precomputed vectors by text: the embedding model is not what is timed."""

    def __init__(self, vectors: dict[str, np.ndarray]) -> None:
        self.vectors = vectors

    def embed_query(self, text: str) -> list[float]:
        return self.vectors[text]  # type: ignore[return-value]

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return [self.embed_query(t) for t in texts]


SYSTEM = "You are a helpful assistant. Answer briefly."


def chat_prompt(question: str) -> str:
    """What LangChain passes a cache for a chat model's call: ``dumps`` of the messages."""
    return dumps([SystemMessage(SYSTEM), HumanMessage(question)])


# The face's partitions under LLM_STRING for a plain prompt and for a chat prompt (a
# system message, then the question): the default store is filled under both.
PARTITION = SemanticLLMCache(VectorEmbeddings({}))._key("q", LLM_STRING)[0]
CHAT_PARTITION = SemanticLLMCache(VectorEmbeddings({}))._key(chat_prompt("q"), LLM_STRING)[0]


# -- the seed's cache, as the seed writes it (pure Python, O(n) per lookup) ----------
class SeedEntry:
    def __init__(self, query: str, query_vector: list[float], response: str) -> None:
        self.query = query
        self.query_vector = query_vector
        self.response = response
        self.created_at = datetime.now()
        self.hit_count = 0


class SeedSemanticCache:
    def __init__(self, similarity_threshold: float = 0.92, ttl_hours: int = 24) -> None:
        self.entries: list[SeedEntry] = []
        self.threshold = similarity_threshold
        self.ttl = timedelta(hours=ttl_hours)
        self.stats = {"hits": 0, "misses": 0}

    def get(self, query_vector: list[float]) -> str | None:
        self._evict_expired()
        best_match, best_sim = None, 0.0
        for entry in self.entries:
            sim = self._cosine_sim(query_vector, entry.query_vector)
            if sim > best_sim:
                best_sim, best_match = sim, entry
        if best_match and best_sim >= self.threshold:
            best_match.hit_count += 1
            self.stats["hits"] += 1
            return best_match.response
        self.stats["misses"] += 1
        return None

    def put(self, query: str, query_vector: list[float], response: str) -> None:
        self.entries.append(SeedEntry(query, query_vector, response))

    def _evict_expired(self) -> None:
        now = datetime.now()
        self.entries = [e for e in self.entries if now - e.created_at < self.ttl]

    @staticmethod
    def _cosine_sim(a: list[float], b: list[float]) -> float:
        dot = sum(x * y for x, y in zip(a, b, strict=False))
        ma = math.sqrt(sum(x**2 for x in a))
        mb = math.sqrt(sum(x**2 for x in b))
        return dot / (ma * mb) if ma and mb else 0.0


# -- helpers ----------------------------------------------------------------------------
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


#: The clock lookups are timed with (``--clock``): wall time, or this thread's CPU time.
CLOCK: list[Callable[[], float]] = [time.perf_counter]


def median_ms(fn: Callable[[int], object], n: int) -> float:
    times = []
    for i in range(n):
        t = CLOCK[0]()
        fn(i)
        times.append(CLOCK[0]() - t)
    return statistics.median(times) * 1e3


def median_p90_ms(fn: Callable[[int], object], n: int, rounds: int = 3) -> tuple[float, float]:
    """(median, p90) in ms of the best of ``rounds`` passes over the ``n`` queries: on a
    shared machine the best pass is the closest to the code's own cost."""
    best: tuple[float, float] | None = None
    for _ in range(rounds):
        times = []
        for i in range(n):
            t = CLOCK[0]()
            fn(i)
            times.append(CLOCK[0]() - t)
        result = (statistics.median(times) * 1e3, float(np.percentile(times, 90)) * 1e3)
        if best is None or result[0] < best[0]:
            best = result
    assert best is not None
    return best


def interleaved_ms(
    groups: list[dict[str, Callable[[int], object]]], n: int, rounds: int = 3
) -> dict[str, tuple[float, float]]:
    """:func:`median_p90_ms` of several functions. Within a group they are called in
    turn on each query (their ratios see the same load); the groups take turns, one
    pass over the queries each, so that each group's partition sees only its own
    traffic, as one application's cache would."""
    passes: dict[str, list[list[float]]] = {name: [] for fns in groups for name in fns}
    for _ in range(rounds):
        for fns in groups:
            times: dict[str, list[float]] = {name: [] for name in fns}
            for i in range(n):
                for name, fn in fns.items():
                    t = CLOCK[0]()
                    fn(i)
                    times[name].append(CLOCK[0]() - t)
            for name, pass_times in times.items():
                passes[name].append(pass_times)
    out = {}
    for name, runs in passes.items():
        best = min(runs, key=statistics.median)
        out[name] = (statistics.median(best) * 1e3, float(np.percentile(best, 90)) * 1e3)
    return out


def build_store(
    matrix: np.ndarray, ann: bool, nprobe: int | None, late: int, partitions: tuple[str, ...]
) -> MemoryStore:
    """A store holding ``matrix`` under each partition; the last ``late`` rows are added
    after the index builds have finished (searches time the finished index, not a
    rebuild, plus the tail a live cache has)."""
    options = {} if nprobe is None else {"nprobe": nprobe}
    store = MemoryStore(dim=DIM, ann=ann, **options)
    early = len(matrix) - late
    for partition in partitions:
        response = CHAT_RESPONSE if partition == CHAT_PARTITION else RESPONSE
        for i, v in enumerate(matrix[:early]):
            store.upsert(CacheEntry(partition, name(i), v, response, created_at=0.0))
    store.wait_for_index()
    for partition in partitions:
        response = CHAT_RESPONSE if partition == CHAT_PARTITION else RESPONSE
        for i, v in enumerate(matrix[early:], start=early):
            store.upsert(CacheEntry(partition, name(i), v, response, created_at=0.0))
    return store


def measure(n: int, rng: np.random.Generator, args: argparse.Namespace) -> dict:
    matrix = unit_rows(rng, n)
    queries, sources = near_queries(rng, matrix, args.queries)
    now, ttl = 1.0, 86400.0
    row: dict = {"n": n}

    # Seed: full size up to --seed-max, else a subsample scaled linearly (O(n) scan).
    seed_n = min(n, args.seed_max)
    seed = SeedSemanticCache()
    pick = rng.choice(n, size=seed_n, replace=False) if seed_n < n else np.arange(n)
    for i in pick:
        seed.put(f"q{i}", matrix[i].tolist(), f"a{i}")
    seed_q = [q.tolist() for q in queries[: args.seed_queries]]
    seed_ms = median_ms(lambda i: seed.get(seed_q[i]), len(seed_q))
    row.update(seed=seed_ms * n / seed_n, seed_n=seed_n)
    seed.entries.clear()  # free the seed's Python lists before the next builds

    t = time.perf_counter()
    exact = build_store(matrix, False, args.nprobe, args.late, (PARTITION,))
    row["build_exact"] = time.perf_counter() - t
    row["exact"], row["exact_p90"] = median_p90_ms(
        lambda i: exact.search(PARTITION, queries[i], now=now, ttl_seconds=ttl), len(queries)
    )
    exact_top = [exact.search(PARTITION, q, now=now, ttl_seconds=ttl)[0] for q in queries]
    row["exact_ok"] = np.mean(
        [h.entry.text == name(int(s)) for h, s in zip(exact_top, sources, strict=True)]
    )

    row["ann"] = row["ann_p90"] = row["recall"] = row["build_ann"] = None
    default_store = exact
    if ann_available():
        t = time.perf_counter()
        ann_store = build_store(matrix, True, args.nprobe, args.late, (PARTITION, CHAT_PARTITION))
        row["build_ann"] = time.perf_counter() - t
        row["ann"], row["ann_p90"] = median_p90_ms(
            lambda i: ann_store.search(PARTITION, queries[i], now=now, ttl_seconds=ttl),
            len(queries),
        )
        ann_top = [ann_store.search(PARTITION, q, now=now, ttl_seconds=ttl) for q in queries]
        row["recall"] = np.mean(
            [
                bool(a) and a[0].entry.text == e.entry.text
                for a, e in zip(ann_top, exact_top, strict=True)
            ]
        )
        default_store = ann_store  # what a user with the [ann] extra gets
    else:
        for i, v in enumerate(matrix):  # the chat face's entries
            exact.upsert(CacheEntry(CHAT_PARTITION, name(i), v, CHAT_RESPONSE, created_at=0.0))

    # Full lookups; the "embedding" is a dict lookup of a precomputed vector.
    vectors = {name(int(s)) + "?": q for s, q in zip(sources, queries, strict=True)}
    keys = list(vectors)
    # Questions with no stored neighbour (random directions): lookups that miss.
    far = unit_rows(np.random.default_rng(n + 1), len(keys))  # own generator: data unchanged
    strangers = {f"stranger {name(i)}": v for i, v in enumerate(far)}
    stranger_keys = list(strangers)
    vectors.update(strangers)
    engine = SemanticCache(vectors.__getitem__, store=default_store, clock=lambda: now)
    chat_engine = SemanticCache(vectors.__getitem__, store=default_store, clock=lambda: now)
    face = SemanticLLMCache(VectorEmbeddings(vectors), store=default_store, clock=lambda: now)
    chat = SemanticLLMCache(VectorEmbeddings(vectors), store=default_store, clock=lambda: now)
    prompts = [chat_prompt(key) for key in keys]
    stranger_prompts = [chat_prompt(key) for key in stranger_keys]
    # The engine alone looks up another query than the face does in the same turn: a
    # search of the same vector in the same partition just before leaves the probed
    # lists in the CPU caches for the face. The plain and the chat face each take a
    # pass in turn with their own engine and misses, each partition seeing the same
    # traffic. (Until 2026-12-07 one pass ran engine, face, chat face and a plain miss
    # on each query: the plain face read lists the engine had just read, and at 10k the
    # plain partition, scanned three times a turn, stayed in L3 while the chat one did
    # not; that, not the chat face's code, was most of the chat face's extra.)
    other = len(keys) // 2
    timed = interleaved_ms(
        [
            {
                "engine_only": lambda i: engine.lookup(PARTITION, keys[(i + other) % len(keys)]),
                "engine": lambda i: face.lookup(keys[i], LLM_STRING),
                "miss": lambda i: face.lookup(stranger_keys[i], LLM_STRING),
            },
            {
                "chat_engine": lambda i: chat_engine.lookup(
                    CHAT_PARTITION, keys[(i + other) % len(keys)]
                ),
                "chat": lambda i: chat.lookup(prompts[i], LLM_STRING),
                "chat_miss": lambda i: chat.lookup(stranger_prompts[i], LLM_STRING),
            },
        ],
        len(keys),
    )
    row["miss"], row["miss_p90"] = timed["miss"]
    row["chat_miss"], row["chat_miss_p90"] = timed["chat_miss"]
    row["recall_floor"] = None
    if row["recall"] is not None:
        # What the cache asks: nearest above its floor (a search finding nothing above
        # it looks wider). The exact nearest of every query is above the floor.
        floor = face.engine.gate.search_floor()
        row["floor"] = floor
        assert all(e.similarity >= floor for e in exact_top)
        row["recall_floor"] = np.mean(
            [
                bool(a) and a[0].entry.text == e.entry.text
                for a, e in zip(
                    (
                        default_store.search(
                            PARTITION, q, min_similarity=floor, now=now, ttl_seconds=ttl
                        )
                        for q in queries
                    ),
                    exact_top,
                    strict=True,
                )
            ]
        )
    row["engine_only"] = timed["engine_only"][0]
    row["chat_engine_only"] = timed["chat_engine"][0]
    row["engine"], row["engine_p90"] = timed["engine"]
    row["chat"], row["chat_p90"] = timed["chat"]
    row["engine_hit_rate"] = face.stats["hits"] / (3 * len(keys))  # of the near queries
    row["chat_hit_rate"] = chat.stats["hits"] / (3 * len(keys))
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--queries", type=int, default=300, help="timed queries per store")
    parser.add_argument("--seed-queries", type=int, default=5, help="timed seed lookups")
    parser.add_argument("--seed-max", type=int, default=10_000, help="largest seed size timed")
    parser.add_argument(
        "--nprobe",
        type=int,
        default=None,
        help="IVF lists a search scans (MemoryStore(nprobe=...)); the store's default if not given",
    )
    parser.add_argument(
        "--late", type=int, default=128, help="entries added after the index is built (128)"
    )
    parser.add_argument(
        "--clock",
        choices=("wall", "cpu"),
        default="wall",
        help="wall (default): latency as a caller sees it; cpu: this thread's CPU time, "
        "which leaves out the time other processes hold the CPU on a shared machine",
    )
    args = parser.parse_args()
    CLOCK[0] = time.thread_time if args.clock == "cpu" else time.perf_counter

    rng = np.random.default_rng(0)
    load_before = os.getloadavg()[0]
    rows = [measure(n, rng, args) for n in args.sizes]

    print(f"\ncostopt measured: {os.path.dirname(costopt_core.__file__)}")
    clock = "this thread's CPU time" if args.clock == "cpu" else "wall clock"
    print(f"Lookup latency, {DIM}-d float32, median (p90) ms, embedding excluded, {clock}")
    print(
        f"{'entries':>8} | {'seed scan':>17} | {'store exact':>15} | {'store ANN':>15} | "
        f"{'face lookup':>15} | {'chat face':>15} | {'seed/face':>9} | {'seed/chat':>9} | "
        f"{'face/engine':>11} | {'recall 1 look':>13}"
    )
    for r in rows:
        seed_label = f"{r['seed']:.1f}" + (" (extrap.)" if r["seed_n"] < r["n"] else "")
        ann = f"{r['ann']:.3f} ({r['ann_p90']:.2f})" if r["ann"] is not None else "n/a"
        recall = f"{r['recall']:.3f}" if r["recall"] is not None else "n/a"
        print(
            f"{r['n']:>8} | {seed_label:>17} | {r['exact']:>6.3f} ({r['exact_p90']:>6.2f}) | "
            f"{ann:>15} | {r['engine']:>6.3f} ({r['engine_p90']:>6.2f}) | "
            f"{r['chat']:>6.3f} ({r['chat_p90']:>6.2f}) | {r['seed'] / r['engine']:>8.0f}x | "
            f"{r['seed'] / r['chat']:>8.0f}x | {r['engine'] / r['engine_only']:>10.2f}x | "
            f"{recall:>13}"
        )
    print()
    for r in rows:
        extra = (
            f"; seed timed on {r['seed_n']} entries and scaled x{r['n'] / r['seed_n']:.0f} (O(n))"
            if r["seed_n"] < r["n"]
            else ""
        )
        ann = (
            f"ANN store build {r['build_ann']:.1f}s, recall@1 one look {r['recall']:.3f}, "
            f"at the cache's floor ({r['floor']:.3f}) {r['recall_floor']:.3f}"
            if r["ann"] is not None
            else "ANN not installed (pip install 'costopt-llm[ann]')"
        )
        print(
            f"N={r['n']}: exact top-1 = source {r['exact_ok']:.3f}; {ann}; exact store build "
            f"{r['build_exact']:.1f}s; hit rate face {r['engine_hit_rate']:.3f}, chat "
            f"{r['chat_hit_rate']:.3f}; engine alone {r['engine_only']:.3f} ms; "
            f"face lookup that misses {r['miss']:.3f} ({r['miss_p90']:.2f}) ms, chat face "
            f"{r['chat_miss']:.3f} ({r['chat_miss_p90']:.2f}) ms; engine alone in the chat "
            f"partition {r['chat_engine_only']:.3f} ms; "
            f"seed/exact {r['seed'] / r['exact']:.0f}x{extra}"
        )
    print(
        f"Machine: {os.cpu_count()} CPUs, 1-min load average {load_before:.2f} before, "
        f"{os.getloadavg()[0]:.2f} after (other processes' load inflates every figure)."
    )
    print("\nTargets (face lookup = what a user's call pays, embedding excluded):")
    for r in rows:
        if r["n"] == 100_000:
            for label, ms in (("face", r["engine"]), ("chat face", r["chat"])):
                verdict = "met" if ms <= 0.5 else "NOT met"
                print(f"  100k median <= 0.5 ms, {label}: {ms:.3f} ms ({verdict})")
            if r["recall_floor"] is not None:
                recall = r["recall_floor"]
                verdict = "met" if recall >= 0.99 else "NOT met"
                print(
                    f"  100k recall@1 of the exact nearest >= 0.99, as the cache searches "
                    f"(above its floor): {recall:.3f} ({verdict}); one look, no floor: "
                    f"{r['recall']:.3f}"
                )
        if r["n"] == 10_000:
            for label, ms in (("face", r["engine"]), ("chat face", r["chat"])):
                ratio = r["seed"] / ms
                verdict = "met" if ratio >= 1000 else "NOT met"
                print(f"  10k >= 1000x the seed's scan, {label}: {ratio:.0f}x ({verdict})")


if __name__ == "__main__":
    main()
