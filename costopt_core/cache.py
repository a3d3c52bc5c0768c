"""Semantic cache logic, framework-free: partitions, exact-match fast path, cosine
threshold, TTL, LRU size limit, statistics with tokens and dollars saved.

Example:
    >>> from costopt_core.cache import SemanticCache
    >>> from costopt_core.hashing import HashingEmbedder
    >>> embedder = HashingEmbedder(dim=256)
    >>> cache = SemanticCache(embedder.embed_one, similarity_threshold=0.8)
    >>> part = cache.partition("gpt-4o-mini", "temperature=0")
    >>> cache.lookup(part, "How many apples are in the basket?") is None   # miss
    True
    >>> cache.update(part, "How many apples are in the basket?", "Three.",
    ...              {"model": "gpt-4o-mini", "input_tokens": 12, "output_tokens": 3})
    >>> hit = cache.lookup(part, "how many apples are in the basket")
    >>> hit.response, hit.exact, hit.similarity > 0.8
    ('Three.', False, True)
    >>> cache.lookup(cache.partition("claude-3-5-sonnet"), "How many apples are in the basket?")
    >>> cache.stats["hits"], cache.stats["misses"], cache.stats["embeddings"]
    (1, 2, 3)

The engine sees a partition key and a text, never framework objects. A face (e.g.
``langchain_costopt.SemanticLLMCache``) decides what goes into the partition (model
and parameters, tenant, system prompt, earlier turns, tools) and what text is
embedded (the latest human turn); :meth:`SemanticCache.partition` hashes the parts,
together with the embedding model's identity, into the store's partition key.

Rules:

* The text is normalized (Unicode NFKC, whitespace collapsed, trimmed; case kept,
  because case can change an answer) before the exact lookup and the embedding.
* Exact match first: the same normalized text in the same partition is a hit with
  similarity 1.0 and costs no embedding. Otherwise the text is embedded once and the
  nearest unexpired entries of the partition go to the decision
  (:class:`~costopt_core.cache_gate.CacheGate`): with ``similarity_threshold`` given,
  the seed's rule (the nearest serves when its cosine is ``>= similarity_threshold``);
  by default an error-bounded decision calibrated to the embedding, which also weighs
  lexical evidence (numbers, negation, dates, names) and, for uncertain candidates,
  asks the ``verifier`` (one verdict per lookup at most; a failed one is "no").
* One embedding per miss: the vector a missed lookup computed is handed to the
  ``update`` that follows for the same partition and text (kept in a small bounded
  map), so a miss costs one embedding, not two.
* Sync and async are one algorithm: ``lookup`` / ``alookup`` (and ``update`` /
  ``aupdate``) run the same steps, the async ones awaiting the store's and the
  embedding's coroutines instead of blocking.
* Faults never reach the caller: an embedding or store error is logged and the lookup
  is a miss (``None``), an update is skipped. A vector of the wrong size, with NaN or
  of zero length is rejected (:class:`~costopt_core.stores.base.VectorError`, logged)
  and never stored.
* Savings: ``update`` takes the original call's metadata (``model``,
  ``input_tokens``, ``output_tokens`` and optionally ``cache_read_tokens``,
  ``cache_write_tokens``, ``reasoning_tokens``: what :func:`savings_metadata` builds
  from a ``TokenUsage``); a hit is priced with :func:`costopt_core.pricing.get_price`.
  A model without a price gives ``saved_usd=None`` on the hit and counts in
  ``stats["unpriced_hits"]``: an unknown saving is never reported as $0.
"""

from __future__ import annotations

import asyncio
import contextvars
import hashlib
import json
import logging
import math
import re
import sys
import threading
import time
import unicodedata
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Generator, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast

import numpy as np

from costopt_core.cache_evidence import replaced_phrases, shared_context_parts
from costopt_core.cache_gate import (
    CANDIDATES,
    CacheGate,
    Decision,
    check_error_rate,
    number_in,
)
from costopt_core.cache_verify import aask, ask, check_timeout, check_verifier
from costopt_core.fault_log import FaultLog
from costopt_core.ledger import TokenUsage
from costopt_core.pricing import get_price
from costopt_core.stores.base import CacheEntry, CacheStore, SearchHit, normalize_vector
from costopt_core.stores.memory import MemoryStore
from costopt_core.usage import price_usage

logger = logging.getLogger(__name__)

R = TypeVar("R")

EmbedFn = Callable[[str], Sequence[float] | np.ndarray]
AsyncEmbedFn = Callable[[str], Awaitable[Sequence[float] | np.ndarray]]

_WHITESPACE = re.compile(r"\s+")

#: How many lookup vectors wait for their update (one per concurrent miss in flight).
DEFAULT_PENDING_VECTORS = 1024

# One tenant scope for every face: a user running LangChain and LlamaIndex side by side
# sets the tenant once.
_namespace: ContextVar[str | None] = ContextVar("costopt_cache_namespace", default=None)


@contextmanager
def cache_namespace(tenant: str) -> Iterator[str]:
    """Scope cache lookups and updates made inside the block to ``tenant``.

    Example:
        >>> with cache_namespace("acme") as tenant:
        ...     current_namespace()
        'acme'
        >>> current_namespace() is None
        True

    The scope is a ``contextvars.ContextVar``: concurrent threads and asyncio tasks
    each see their own tenant. asyncio tasks and LangChain's ``batch`` executors
    inherit the scope they were started in; a ``threading.Thread`` you start yourself
    does not (run it under ``contextvars.copy_context().run``). Blocks nest; the inner
    tenant applies inside. The faces (``langchain_costopt.SemanticLLMCache``,
    ``llamaindex_costopt.SemanticCacheLLM``) put it into their partition keys.
    """
    if not isinstance(tenant, str) or not tenant:
        raise ValueError(f"tenant must be a non-empty str, got {tenant!r}")
    token = _namespace.set(tenant)
    try:
        yield tenant
    finally:
        _namespace.reset(token)


def current_namespace() -> str | None:
    """The tenant set by the innermost active :func:`cache_namespace`, if any."""
    return _namespace.get()


def normalize_text(text: str) -> str:
    """The cache key form of a text: NFKC, whitespace runs collapsed, trimmed.

    Example:
        >>> normalize_text("  What   is\\n2+2? ")
        'What is 2+2?'
    """
    return _WHITESPACE.sub(" ", unicodedata.normalize("NFKC", text)).strip()


@dataclass(frozen=True)
class CacheHit:
    """A cached answer and why it matched."""

    response: str
    similarity: float
    exact: bool
    matched_text: str
    created_at: float
    model: str | None
    input_tokens: int
    output_tokens: int
    saved_usd: float | None
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def tokens_saved(self) -> int:
        return self.input_tokens + self.output_tokens

    @property
    def usage(self) -> TokenUsage:
        """The token usage of the call whose answer this is (what the hit saved)."""
        return _saved_usage(self.metadata)

    def marker(self) -> dict[str, Any]:
        """What a face attaches to a returned answer so cost handlers see a hit."""
        return {
            "hit": True,
            "similarity": round(self.similarity, 6),
            "exact": self.exact,
            "saved_usd": self.saved_usd,
            "model": self.model,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "tokens_saved": self.tokens_saved,
            "cached_at": self.created_at,
        }


def savings_metadata(
    model: str | None, usage: TokenUsage, *, estimated: bool = False
) -> dict[str, Any]:
    """The metadata :meth:`SemanticCache.update` keeps with an answer to price its later
    hits: the model that answered and the call's usage (``estimated``: counted from the
    text, the provider reported none).

    Example:
        >>> savings_metadata("gpt-4o-mini", TokenUsage(12, 3))["output_tokens"]
        3
    """
    metadata: dict[str, Any] = {
        "model": model,
        "input_tokens": usage.input_tokens,
        "output_tokens": usage.output_tokens,
        "cache_read_tokens": usage.cache_read_tokens,
        "cache_write_tokens": usage.cache_write_tokens,
        "reasoning_tokens": usage.reasoning_tokens,
    }
    if estimated:
        metadata["usage_estimated"] = True
    return metadata


def _int(value: Any) -> int:
    return int(value) if isinstance(value, int | float) and value > 0 else 0


def _saved_usage(metadata: Mapping[str, Any]) -> TokenUsage:
    """The usage ``savings_metadata`` stored (a missing or bad count reads 0)."""
    return TokenUsage(
        _int(metadata.get("input_tokens")),
        _int(metadata.get("output_tokens")),
        _int(metadata.get("cache_read_tokens")),
        _int(metadata.get("cache_write_tokens")),
        _int(metadata.get("reasoning_tokens")),
    )


def _validate(
    similarity_threshold: float | None, ttl_seconds: float | None, max_entries: int | None
) -> None:
    if similarity_threshold is not None and not number_in(similarity_threshold, 0, 1):
        raise ValueError(
            f"similarity_threshold must be a number in (0, 1] (cosine similarity) or None "
            f"(error-bounded), got {similarity_threshold!r}"
        )
    if ttl_seconds is not None and not number_in(ttl_seconds, 0, sys.float_info.max):
        raise ValueError(
            f"ttl_seconds must be a finite number > 0, or None for no expiry, got {ttl_seconds!r}"
        )
    if max_entries is not None and (
        isinstance(max_entries, bool) or not isinstance(max_entries, int) or max_entries < 1
    ):
        raise ValueError(
            f"max_entries must be an int >= 1, or None for no limit, got {max_entries!r}"
        )


class EmbeddingTimeoutError(TimeoutError):
    """The embedding model did not answer within ``embedding_timeout_s``."""

    def __init__(self, limit: float | None) -> None:
        super().__init__(f"the embedding took longer than embedding_timeout_s={limit}s")


# Embedding calls bounded by a timeout run here (few: a hung model should not pile up).
_EMBED_POOL = ThreadPoolExecutor(max_workers=4, thread_name_prefix="costopt-embed")


class SemanticCache:
    """Framework-free semantic cache over a :class:`~costopt_core.stores.base.CacheStore`.

    Example:
        >>> import asyncio
        >>> from costopt_core.hashing import HashingEmbedder
        >>> from costopt_core.ledger import TokenUsage
        >>> cache = SemanticCache(HashingEmbedder(dim=256).embed_one, similarity_threshold=0.8)
        >>> part = cache.partition("gpt-4o-mini")
        >>> cache.update(part, "What is the capital of France?", "Paris.",
        ...              savings_metadata("gpt-4o-mini", TokenUsage(9, 2)))
        >>> hit = cache.lookup(part, "what is the capital of France")
        >>> hit.response, hit.exact, hit.usage.output_tokens, hit.saved_usd > 0
        ('Paris.', False, 2, True)
        >>> asyncio.run(cache.alookup(part, "What is the capital of France?")).exact
        True

    Args:
        embed: ``text -> vector`` (any length; normalized here).
        aembed: async ``text -> vector``; without it async calls run ``embed`` in a
            worker thread.
        similarity_threshold: ``None`` (default): the error-bounded decision of
            :mod:`costopt_core.cache_gate`, calibrated to the embedding. A cosine in
            (0, 1]: the seed's fixed rule (the nearest stored query serves when its
            cosine reaches it).
        max_error_rate: share of lookups the error-bounded decision may answer wrongly,
            in (0, 0.5] (default 0.02).
        verifier: ``verifier(question, cached_question, cached_answer) -> bool``, asked
            only about uncertain candidates (see :mod:`costopt_core.cache_verify`); its
            verdicts teach the decision.
        verifier_timeout: seconds a verdict may take; a late or failed one is "no".
        answer_text: ``stored response -> answer text`` for the verifier (faces store
            serialized answers); the stored string itself by default.
        ttl_seconds: entry lifetime from creation (default 24 h, as the seed); ``None``
            keeps entries until evicted by ``max_entries``.
        max_entries: store-wide limit, least recently used evicted first.
        store: defaults to a new :class:`~costopt_core.stores.memory.MemoryStore`.
        embedder_id: identity of the embedding model, mixed into every partition so
            vectors of two embedding models are never compared.
        clock: seconds since the epoch (tests pass a fake).
        evict_interval: seconds between sweeps of expired entries (searches skip
            expired entries regardless; the sweep frees their space).
        embedding_timeout_s: the longest a lookup or an update waits for the embedding
            model; past it the cache steps aside (logged and counted as a fault) and the
            model answers. ``None``: no limit.
    """

    def __init__(
        self,
        embed: EmbedFn,
        *,
        aembed: AsyncEmbedFn | None = None,
        similarity_threshold: float | None = None,
        max_error_rate: float = 0.02,
        verifier: Any = None,
        verifier_timeout: float = 10.0,
        answer_text: Callable[[str], str] | None = None,
        ttl_seconds: float | None = 86400,
        max_entries: int | None = None,
        store: CacheStore | None = None,
        embedder_id: str = "",
        clock: Callable[[], float] = time.time,
        evict_interval: float = 60.0,
        pending_vectors: int = DEFAULT_PENDING_VECTORS,
        embedding_timeout_s: float | None = None,
    ) -> None:
        if not callable(embed):
            raise TypeError(f"embed must be a callable text -> vector, got {type(embed).__name__}")
        if aembed is not None and not callable(aembed):
            raise TypeError("aembed must be an async callable text -> vector, or None")
        _validate(similarity_threshold, ttl_seconds, max_entries)
        check_error_rate(max_error_rate)
        check_verifier(verifier)
        if answer_text is not None and not callable(answer_text):
            raise TypeError("answer_text must be a callable stored response -> text, or None")
        if store is not None and not isinstance(store, CacheStore):
            raise TypeError(
                f"store must be a costopt_core.stores.base.CacheStore, got {type(store).__name__}"
            )
        if isinstance(evict_interval, bool) or not isinstance(evict_interval, int | float):
            raise TypeError(
                f"evict_interval must be a number of seconds, got {type(evict_interval).__name__}"
            )
        if not evict_interval >= 0:
            raise ValueError(f"evict_interval must be >= 0 seconds, got {evict_interval!r}")
        if not callable(clock):
            raise TypeError(f"clock must be a callable returning seconds, got {clock!r}")
        if not isinstance(pending_vectors, int) or pending_vectors < 1:
            raise ValueError(f"pending_vectors must be an int >= 1, got {pending_vectors!r}")
        if embedding_timeout_s is not None and not number_in(embedding_timeout_s, 0, 1e6):
            raise ValueError(
                "embedding_timeout_s must be a number of seconds > 0, or None (no limit), "
                f"got {embedding_timeout_s!r}"
            )
        self._embed = embed
        self._aembed = aembed
        self.embedding_timeout_s = embedding_timeout_s
        self.similarity_threshold = (
            None if similarity_threshold is None else float(similarity_threshold)
        )
        self.verifier = verifier
        self.verifier_timeout = check_timeout(verifier_timeout)
        self._answer_text = answer_text or (lambda response: response)
        self.gate = CacheGate(
            self.similarity_threshold, max_error_rate, has_verifier=verifier is not None
        )
        self.ttl_seconds = None if ttl_seconds is None else float(ttl_seconds)
        self.max_entries = max_entries
        self.store: CacheStore = store if store is not None else MemoryStore()
        self.embedder_id = embedder_id
        self._clock = clock
        self._evict_interval = evict_interval
        self._last_evict = -math.inf
        self._lock = threading.Lock()
        self._pending: OrderedDict[tuple[str, str], np.ndarray] = OrderedDict()
        self._pending_limit = pending_vectors
        self._counts: dict[str, int] = dict.fromkeys(
            (
                "hits",
                "misses",
                "exact_hits",
                "semantic_hits",
                "updates",
                "embeddings",
                "errors",
                "rejected_vectors",
                "tokens_saved",
                "input_tokens_saved",
                "output_tokens_saved",
                "unpriced_hits",
                "verifier_calls",
                "verifier_yes",
                "gate_rejections",
            ),
            0,
        )
        self._saved_usd = 0.0
        self._similarity_sum = 0.0
        # Faults already logged in full: a persistent one (a wrong embedding size, a
        # store that is down) must not write a traceback on every call.
        # Counted in stats["errors"] too.
        self._faults = FaultLog(logger, "semantic cache", "; continuing without the cache")

    # -- keys -----------------------------------------------------------------------

    def partition(self, *parts: str) -> str:
        """Exact-match partition key: SHA-256 of the parts and the embedder identity."""
        payload = json.dumps([self.embedder_id, *parts], ensure_ascii=False, default=str)
        return hashlib.sha256(payload.encode("utf-8")).hexdigest()

    # -- statistics ---------------------------------------------------------------

    @property
    def stats(self) -> dict[str, Any]:
        """Counts since construction (or :meth:`reset_stats`).

        ``hits``, ``misses``, ``hit_rate`` (hits / lookups, 0.0 before any),
        ``exact_hits``, ``semantic_hits``, ``mean_hit_similarity``, ``updates``,
        ``embeddings`` (embedding calls made), ``verifier_calls`` / ``verifier_yes``
        (verdicts asked / that said yes; a failed or late verdict is a "no"),
        ``gate_rejections`` (candidates close enough to search but refused: a conflict
        such as a different number, or a score below the bar), ``gate`` (the
        decision's calibration, :meth:`CacheGate.describe`), ``errors`` (faults turned
        into misses or skipped updates), ``rejected_vectors``, ``tokens_saved`` (input + output),
        ``input_tokens_saved``, ``output_tokens_saved``, ``saved_usd`` (priced hits
        only) and ``unpriced_hits`` (hits whose model has no known price).
        """
        with self._lock:
            out: dict[str, Any] = dict(self._counts)
            lookups = out["hits"] + out["misses"]
            out["lookups"] = lookups
            out["hit_rate"] = out["hits"] / lookups if lookups else 0.0
            out["saved_usd"] = self._saved_usd
            out["mean_hit_similarity"] = self._similarity_sum / out["hits"] if out["hits"] else None
        out["gate"] = self.gate.describe()
        return out

    def reset_stats(self) -> None:
        with self._lock:
            for key in self._counts:
                self._counts[key] = 0
            self._saved_usd = 0.0
            self._similarity_sum = 0.0

    def _count(self, **deltas: int) -> None:
        with self._lock:
            for key, delta in deltas.items():
                self._counts[key] += delta

    # -- shared steps -------------------------------------------------------------

    def _vector(self, raw: Sequence[float] | np.ndarray) -> np.ndarray:
        try:
            vector = normalize_vector(raw, self.store.dim)
        except ValueError:
            self._count(rejected_vectors=1)
            raise
        self.gate.observe(vector)  # every embedded question calibrates the decision
        return vector

    def _remember(self, partition: str, text: str, vector: np.ndarray) -> None:
        with self._lock:
            self._pending[(partition, text)] = vector
            self._pending.move_to_end((partition, text))
            while len(self._pending) > self._pending_limit:
                self._pending.popitem(last=False)

    def _take(self, partition: str, text: str) -> np.ndarray | None:
        with self._lock:
            return self._pending.pop((partition, text), None)

    def _hit(
        self, entry: CacheEntry, similarity: float, exact: bool, decision: Decision | None = None
    ) -> CacheHit:
        meta = dict(entry.metadata or {})
        if decision is not None:
            meta["gate"] = {"score": round(decision.score, 6), "reason": decision.reason}
        model = meta.get("model") if isinstance(meta.get("model"), str) else None
        usage = _saved_usage(meta)
        input_tokens, output_tokens = usage.input_tokens, usage.output_tokens
        saved: float | None = None
        if model:
            try:
                price = get_price(model)
                if price is not None:
                    saved = price_usage(price, usage)
            except Exception:  # pricing must never turn a hit into a failure
                logger.exception("pricing the cache hit for model %r failed", model)
        similarity = min(1.0, max(-1.0, similarity))
        with self._lock:
            self._counts["hits"] += 1
            self._counts["exact_hits" if exact else "semantic_hits"] += 1
            self._counts["input_tokens_saved"] += input_tokens
            self._counts["output_tokens_saved"] += output_tokens
            self._counts["tokens_saved"] += input_tokens + output_tokens
            self._similarity_sum += similarity
            if saved is None:
                self._counts["unpriced_hits"] += 1
            else:
                self._saved_usd += saved
        return CacheHit(
            response=entry.response,
            similarity=similarity,
            exact=exact,
            matched_text=entry.text,
            created_at=entry.created_at,
            model=model,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            saved_usd=saved,
            metadata=meta,
        )

    def revoke_hit(self, hit: CacheHit) -> None:
        """Count a hit the caller could not use (e.g. its stored answer no longer
        decodes) as an error and a miss, and take back its savings."""
        with self._lock:
            self._counts["hits"] -= 1
            self._counts["exact_hits" if hit.exact else "semantic_hits"] -= 1
            self._counts["misses"] += 1
            self._counts["errors"] += 1
            self._counts["input_tokens_saved"] -= hit.input_tokens
            self._counts["output_tokens_saved"] -= hit.output_tokens
            self._counts["tokens_saved"] -= hit.tokens_saved
            self._similarity_sum -= hit.similarity
            if hit.saved_usd is None:
                self._counts["unpriced_hits"] -= 1
            else:
                self._saved_usd -= hit.saved_usd

    def _fault(self, action: str, exc: BaseException) -> None:
        self._count(errors=1)
        self._faults.report(action, exc)

    def _due_for_sweep(self, now: float) -> bool:
        if self.ttl_seconds is None:
            return False
        with self._lock:
            if now - self._last_evict < self._evict_interval:
                return False
            self._last_evict = now
            return True

    # -- lookup and update: each written once, run sync or async ----------------------
    #
    # A lookup or an update is a generator that yields the I/O it needs (``_IO``: a
    # blocking call, its coroutine twin and their arguments) and is sent each result, or
    # has the call's exception thrown in, so its own ``try`` handles store and embedding
    # faults. ``_run`` makes the blocking calls (the sync API), ``_arun`` awaits the
    # twins (the async API): the steps, counters and fault handling exist once.

    def _embedding(self, key: str) -> _IO:
        self._count(embeddings=1)
        if self.embedding_timeout_s is None:
            return _IO(self._embed, self._embed_async, key)
        return _IO(self._embed_bounded, self._aembed_bounded, key)

    async def _embed_async(self, text: str) -> Sequence[float] | np.ndarray:
        if self._aembed is not None:
            return await self._aembed(text)
        return await asyncio.to_thread(self._embed, text)

    # A hanging embedding model must not hold the user's call: past the limit the
    # lookup (or update) gives up as a fault, and the model answers. A blocking embed
    # runs in a worker thread for that; the thread itself cannot be stopped.

    def _embed_bounded(self, text: str) -> Sequence[float] | np.ndarray:
        future = _EMBED_POOL.submit(contextvars.copy_context().run, self._embed, text)
        try:
            return future.result(timeout=self.embedding_timeout_s)
        except FutureTimeout:
            raise EmbeddingTimeoutError(self.embedding_timeout_s) from None

    async def _aembed_bounded(self, text: str) -> Sequence[float] | np.ndarray:
        try:
            return await asyncio.wait_for(self._embed_async(text), self.embedding_timeout_s)
        except TimeoutError:
            raise EmbeddingTimeoutError(self.embedding_timeout_s) from None

    def _lookup(self, partition: str, text: str) -> Steps[CacheHit | None]:
        key = normalize_text(text)
        if not key:
            self._count(misses=1)
            return None
        now = self._clock()
        store, ttl = self.store, self.ttl_seconds
        try:
            entry = yield _IO(
                store.get_exact, store.aget_exact, partition, key, now=now, ttl_seconds=ttl
            )
            if entry is not None:
                yield _IO(store.record_hit, store.arecord_hit, partition, key, now=now)
                return self._hit(entry, 1.0, exact=True)
            vector = self._vector((yield self._embedding(key)))
            self._remember(partition, key, vector)
            gate = self.gate
            gate.begin_lookup()
            found = yield _IO(
                store.search,
                store.asearch,
                partition,
                vector,
                # The seed's fixed rule looks at the nearest entry only.
                k=1 if gate.fixed and self.verifier is None else CANDIDATES,
                min_similarity=gate.search_floor(),
                now=now,
                ttl_seconds=ttl,
            )
            chosen = yield from self._choose(partition, key, found)
            if chosen is not None:
                best, decision = chosen
                yield _IO(store.record_hit, store.arecord_hit, partition, best.entry.text, now=now)
                return self._hit(best.entry, best.similarity, exact=False, decision=decision)
        except Exception as exc:
            self._fault("lookup", exc)
        self._count(misses=1)
        return None

    def _choose(
        self, partition: str, question: str, found: list[SearchHit]
    ) -> Steps[tuple[SearchHit, Decision] | None]:
        """The candidate to serve: the nearest one the gate serves, else the first it is
        unsure of if the verifier says yes (one verdict per lookup at most)."""
        uncertain: tuple[SearchHit, Decision] | None = None
        for hit in found:
            decision = self.gate.judge(
                question, hit.entry.text, hit.similarity, (partition, hit.entry.text)
            )
            if decision.swapped and decision.action == "serve":
                decision = yield from self._judge_swap(question, hit.entry.text, decision)
            if decision.action == "serve":
                return hit, decision
            if decision.action == "ask" and uncertain is None:
                uncertain = hit, decision
            else:
                self._count(gate_rejections=1)
        if uncertain is None:
            return None
        hit, decision = uncertain
        answer = self._answer_text(hit.entry.response)
        self._count(verifier_calls=1)
        verdict = yield _IO(self._verify, self._averify, question, hit.entry.text, answer)
        self.gate.learn((partition, hit.entry.text), decision.score, bool(verdict))
        if not verdict:
            return None
        self._count(verifier_yes=1)
        return hit, Decision("serve", decision.score, f"verifier: {decision.reason}")

    def _judge_swap(
        self, question: str, cached_question: str, decision: Decision
    ) -> Steps[Decision]:
        """``decision`` for a candidate that differs by a replaced word, or only after a
        long shared context, once the differing phrases are embedded and compared (two
        short embedding calls, made only for such a candidate the score alone would
        serve). The parts after a shared context are judged as the questions they are."""
        parts = shared_context_parts(question, cached_question)
        phrases = parts or replaced_phrases(question, cached_question)
        if phrases is None:
            return decision
        dim = self.store.dim
        ours = normalize_vector((yield self._embedding(phrases[0])), dim)
        theirs = normalize_vector((yield self._embedding(phrases[1])), dim)
        if parts is not None:
            return self.gate.judge(*parts, float(ours @ theirs))
        return self.gate.judge_swap(decision, float(ours @ theirs))

    def _verify(self, question: str, cached_question: str, answer: str) -> bool:
        return ask(self.verifier, question, cached_question, answer, timeout=self.verifier_timeout)

    async def _averify(self, question: str, cached_question: str, answer: str) -> bool:
        return await aask(
            self.verifier, question, cached_question, answer, timeout=self.verifier_timeout
        )

    def _update(
        self, partition: str, text: str, response: str, metadata: Mapping[str, Any] | None
    ) -> Steps[None]:
        key = normalize_text(text)
        if not key:
            return
        if not isinstance(response, str):
            raise TypeError(f"response must be a serialized str, got {type(response).__name__}")
        now = self._clock()
        store, ttl = self.store, self.ttl_seconds
        try:
            vector = self._take(partition, key)
            if vector is None:
                vector = self._vector((yield self._embedding(key)))
            entry = CacheEntry(partition, key, vector, response, now, metadata=dict(metadata or {}))
            yield _IO(store.upsert, store.aupsert, entry)
            self._count(updates=1)
            if self._due_for_sweep(now):
                yield _IO(store.evict_expired, store.aevict_expired, now=now, ttl_seconds=ttl)
            if self.max_entries is not None:
                yield _IO(store.enforce_max_entries, store.aenforce_max_entries, self.max_entries)
        except Exception as exc:
            self._fault("update", exc)

    def _forget_pending(self) -> None:
        with self._lock:
            self._pending.clear()

    # -- sync API -----------------------------------------------------------------

    def lookup(self, partition: str, text: str) -> CacheHit | None:
        """The cached answer for ``text`` in ``partition``, or ``None`` (a miss)."""
        return _run(self._lookup(partition, text))

    def update(
        self, partition: str, text: str, response: str, metadata: Mapping[str, Any] | None = None
    ) -> None:
        """Store ``response`` for ``text`` in ``partition`` (replacing an older one)."""
        _run(self._update(partition, text, response, metadata))

    def clear(self, partition: str | None = None) -> None:
        """Delete the entries of ``partition`` (all partitions of the store by default)."""
        self._forget_pending()
        self.store.clear(partition)

    # -- async API: the same steps, the store's and the embedding's coroutines -------

    async def alookup(self, partition: str, text: str) -> CacheHit | None:
        """Async :meth:`lookup`: async embedding and store calls, no blocking I/O."""
        return await _arun(self._lookup(partition, text))

    async def aupdate(
        self, partition: str, text: str, response: str, metadata: Mapping[str, Any] | None = None
    ) -> None:
        """Async :meth:`update`."""
        await _arun(self._update(partition, text, response, metadata))

    async def aclear(self, partition: str | None = None) -> None:
        """Async :meth:`clear`."""
        self._forget_pending()
        await self.store.aclear(partition)


# -- the two drivers -------------------------------------------------------------------


class _IO:
    """One I/O step of a lookup or update: a blocking call, its coroutine twin, and the
    arguments both take."""

    __slots__ = ("acall", "args", "call", "kwargs")

    def __init__(
        self,
        call: Callable[..., Any],
        acall: Callable[..., Awaitable[Any]],
        /,
        *args: Any,
        **kwargs: Any,
    ) -> None:
        self.call = call
        self.acall = acall
        self.args = args
        self.kwargs = kwargs

    def outcome(self) -> tuple[Any, Exception | None]:
        """Make the blocking call: its result, or the exception it raised."""
        try:
            return self.call(*self.args, **self.kwargs), None
        except Exception as exc:
            return None, exc

    async def aoutcome(self) -> tuple[Any, Exception | None]:
        """Await the coroutine twin: its result, or the exception it raised."""
        try:
            return await self.acall(*self.args, **self.kwargs), None
        except Exception as exc:
            return None, exc


Steps = Generator[_IO, Any, R]


def _run(steps: Steps[R]) -> R:
    """Run ``steps`` with blocking calls (the sync API)."""
    try:
        io = steps.send(None)
        while True:
            result, error = io.outcome()
            io = steps.send(result) if error is None else steps.throw(error)
    except StopIteration as done:
        return cast(R, done.value)


async def _arun(steps: Steps[R]) -> R:
    """Run ``steps`` awaiting the coroutine twins (the async API: no blocking call)."""
    try:
        io = steps.send(None)
        while True:
            result, error = await io.aoutcome()
            io = steps.send(result) if error is None else steps.throw(error)
    except StopIteration as done:
        return cast(R, done.value)
