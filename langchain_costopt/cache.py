"""``SemanticLLMCache``: a LangChain ``BaseCache`` that matches prompts by meaning,
never across models, parameters, tenants or conversations.

Example:
    .. code-block:: python

        from langchain_core.globals import set_llm_cache
        from langchain_costopt import HashingEmbeddings, SemanticLLMCache, cache_namespace
        from langchain_costopt.simulated import SimulatedChatModel

        cache = SemanticLLMCache(HashingEmbeddings(), similarity_threshold=0.9)
        set_llm_cache(cache)
        model = SimulatedChatModel(model_name="gpt-4o-mini")
        model.invoke("How do I reset my password?")     # miss: the model answers
        model.invoke("how do I reset my password")      # hit: served from the cache
        with cache_namespace("tenant-42"):
            model.invoke("How do I reset my password?")  # other tenant: a miss
        print(cache.stats)  # hits, misses, hit_rate, saved_usd, tokens_saved, ...

What is matched (LangChain calls ``lookup(prompt, llm_string)``):

* A chat model's ``prompt`` is ``langchain_core.load.dumps(messages)``. It is read as
  LangChain's ``loads`` reads it, message classes only, never arbitrary objects
  (:mod:`langchain_costopt.prompt_key`). Only the text of the latest
  human turn is embedded. Everything else that can change the answer is hashed into an
  exact-match partition: ``llm_string`` (model, parameters, and the tools bound with
  ``bind_tools``, which LangChain passes as invocation parameters), the constructor
  ``namespace``, the current :func:`cache_namespace`, every system prompt, every earlier
  or later turn (content, tool calls by name and arguments), and the non-text parts
  (images, files) of the latest human turn. Message ids and provider metadata of
  earlier turns are left out: they do not change the answer.
* A plain LLM's prompt (not message JSON) is embedded as it is.
* See :mod:`costopt_core.cache` for normalization, the exact-match fast path, TTL, LRU
  and the one-embedding-per-miss rule.

Storage: generations are serialized with LangChain's JSON ``dumps`` and revived with
``loads`` restricted to generation and message classes; never pickle. A hit returns
generations equal to those stored, plus the hit marker below on chat generations, and
without the stored message's id (a hit is a new message: a LangGraph thread appends it
rather than overwriting the earlier message of that id).

Hit marker (contract with cost handlers): on a hit, every returned ``ChatGeneration``
carries ``{"hit": True, "similarity", "exact", "saved_usd", "model", "input_tokens",
"output_tokens", "tokens_saved", "cached_at"}`` under ``"costopt_cache"`` in both
``generation_info`` and ``message.response_metadata``. ``BaseChatModel`` (langchain-core
1.8) still calls ``on_llm_end`` with cached generations, whose ``usage_metadata`` is the
original call's usage (LangChain adds ``"total_cost": 0``); the usage is kept so a cost
handler knows what was saved, and the marker tells it to book that usage as a saving,
not as spend (``langchain_costopt.CostCallbackHandler`` does). ``model`` is the
stored answer's model name, else the ``llm_string``'s, else the ``ls_model_name`` of the
chat model whose call was stored (what the cost handler reads from the run's metadata):
both price a hit on one model, so ``.stats`` and the tracker say one saving.
``saved_usd`` is ``None`` when the model has no known price. Plain ``Generation``
objects (``BaseLLM``) are returned unmarked, exactly as stored: LangChain starts no run
for a ``BaseLLM`` cache hit, so no handler could see a marker; ``.stats`` counts those
hits.

Decision: by default error-bounded and calibrated to the embedding (no threshold to
pick; ``max_error_rate`` bounds wrong answers), with an optional ``verifier`` for the
uncertain candidates; ``similarity_threshold=0.92`` is the seed's fixed rule exactly
(:mod:`costopt_core.cache_gate`).

Streaming: LangChain's ``BaseChatModel.stream`` / ``astream`` never consult an LLM cache;
``cache.stream(model, input)`` / ``cache.astream(...)`` do (a cached answer comes back
as a stream, a streamed miss is stored when complete), keyed exactly as ``invoke`` keys
(:mod:`langchain_costopt.cache_stream`).

Faults: a failing embedding model or store is logged and the call goes to the model;
a corrupt stored entry is a miss. Nothing raised inside the cache reaches the user's
call.
"""

from __future__ import annotations

import inspect
import logging
import re
import sys
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any

from langchain_core.caches import RETURN_VAL_TYPE, BaseCache
from langchain_core.embeddings import Embeddings
from langchain_core.language_models import BaseChatModel
from langchain_core.load import dumps
from langchain_core.messages import AIMessage, AIMessageChunk
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, Generation, GenerationChunk

from costopt_core.accounting import CallText, usage_from_mapping
from costopt_core.cache import (
    CacheHit,
    SemanticCache,
    cache_namespace,
    current_namespace,
    savings_metadata,
)
from costopt_core.ledger import TokenUsage
from costopt_core.metadata_keys import CACHE_MARKER_KEY, MODEL_NAME_KEYS, model_name_in
from costopt_core.stores.base import CacheStore
from langchain_costopt import cache_stream
from langchain_costopt.messages import message_text
from langchain_costopt.prompt_key import (
    MESSAGE_CLASSES,
    parse_messages,
    split_messages,
    split_prompt,
)
from langchain_costopt.revive import Revive
from langchain_costopt.served_answer import as_new_answer

logger = logging.getLogger(__name__)

# ``loads`` may revive only these: a stored entry must never build arbitrary objects.
_GENERATION_CLASSES: list[Any] = [
    Generation,
    GenerationChunk,
    ChatGeneration,
    ChatGenerationChunk,
    *MESSAGE_CLASSES,
]

# Built once: LangChain's loads() resolves the allow-list anew on every call (~1 ms).
_revive_generations = Revive(_GENERATION_CLASSES)

# A model named in LangChain's llm_string (its repr of the model's parameters).
_MODEL_IN_LLM_STRING = re.compile(
    rf"""["'](?:{"|".join(MODEL_NAME_KEYS)})["']\s*[:,]\s*["']([^"']+)["']"""
)


def _answer_usage(
    return_val: Sequence[Generation], llm_string: str
) -> tuple[str | None, TokenUsage | None]:
    """The model and token usage of the call being cached (usage ``None``: not reported)."""
    model = None
    for gen in return_val:
        meta = getattr(getattr(gen, "message", None), "response_metadata", None)
        model = model_name_in(meta) or model_name_in(gen.generation_info)
        if model:
            break
    if model is None:
        found = _MODEL_IN_LLM_STRING.search(llm_string)
        model = found.group(1) if found else None
    if model is None:
        model = _caching_model_name()
    # n > 1 choices of one call carry the same usage: take it once, not per choice.
    for gen in return_val:
        usage = usage_from_mapping(getattr(getattr(gen, "message", None), "usage_metadata", None))
        if usage is None and gen.generation_info:
            info = gen.generation_info
            usage = usage_from_mapping(info.get("token_usage") or info.get("usage"))
        if usage is not None:
            return model, usage
    return model, None


# Where LangChain (and cache_stream) cache a chat model's call, and the local holding
# that model there. ``lookup``/``update`` are given no model, only the llm_string, which
# lacks LangChain's ``ls_model_name`` (a ``_get_ls_params`` override is the only place
# some models name themselves): read from the caller, as the cost handler reads it from
# the run's metadata, so a hit's saving is priced on the same model by both.
_CACHING_FRAMES: dict[Any, str] = {
    BaseChatModel._generate_with_cache.__code__: "self",
    BaseChatModel._agenerate_with_cache.__code__: "self",
    cache_stream.stream.__code__: "model",
    cache_stream.astream.__code__: "model",
}


def _caching_model_name() -> str | None:
    """``ls_model_name`` of the chat model whose call is being stored: the caller of the
    cache's own frames (``_STORING_FRAMES``) when it is one caching a chat model's call,
    else ``None`` (a plain LLM's answer stored inside a chat model's ``_generate`` is not
    that chat model's), or when the model names none."""
    frame = sys._getframe(1)
    try:
        while frame is not None and frame.f_code in _STORING_FRAMES:
            frame = frame.f_back
        holder = None if frame is None else _CACHING_FRAMES.get(frame.f_code)
        if frame is None or holder is None:
            return None
        found = frame.f_locals
        model, stop, kwargs = found.get(holder), found.get("stop"), found.get("kwargs")
        if not isinstance(model, BaseChatModel):
            return None
        params = model._get_ls_params(stop=stop, **(kwargs or {}))
        name = params.get("ls_model_name")
        return name if isinstance(name, str) and name else None
    except Exception:
        logger.exception("semantic cache could not read the caching model's name")
    finally:
        del frame  # a frame reference would keep every caller's locals alive
    return None


def _answer_text(response: str) -> str:
    """The text of a stored answer (what a verifier reads)."""
    generations = _revive_generations(response)
    return "\n".join(g.text for g in generations if isinstance(g, Generation))


def _embedder_id(embeddings: Embeddings) -> str:
    cls = type(embeddings)
    parts = [f"{cls.__module__}.{cls.__qualname__}"]
    for attr in ("model", "model_name", "model_id", "deployment", "dimensions", "dim"):
        value = getattr(embeddings, attr, None)
        if isinstance(value, str | int) and not isinstance(value, bool):
            parts.append(f"{attr}={value}")
    return ";".join(parts)


#: The engine's options a SemanticLLMCache passes on (``**engine_options``).
_ENGINE_OPTIONS = frozenset(inspect.signature(SemanticCache.__init__).parameters) - {
    "self",
    "embed",
    "aembed",
    "answer_text",
    "embedder_id",
}


class SemanticLLMCache(BaseCache):
    """LangChain cache that answers a reworded question from a stored answer.

    Example:
        >>> from langchain_costopt import HashingEmbeddings, SemanticLLMCache
        >>> from langchain_costopt.simulated import SimulatedChatModel
        >>> cache = SemanticLLMCache(HashingEmbeddings(), similarity_threshold=0.9)
        >>> model = SimulatedChatModel(model_name="gpt-4o-mini", cache=cache)
        >>> first = model.invoke("How do I reset my password?")  # miss: the model answers
        >>> again = model.invoke("how do I reset my password")  # hit: no model call
        >>> again.content == first.content, again.response_metadata["costopt_cache"]["hit"]
        (True, True)
        >>> cache.stats["hits"], cache.stats["misses"]
        (1, 1)

    Args:
        embeddings: any LangChain ``Embeddings`` (``HashingEmbeddings`` offline for
            tests; ``langchain_costopt.embeddings.LocalEmbeddings``, extra
            ``[embeddings]``, is the recommended offline neural one).
        similarity_threshold: ``None`` (default): keep wrong answers at or below
            ``max_error_rate`` for whatever embedding this is (the decision calibrates
            itself, see :mod:`costopt_core.cache_gate`). A cosine in (0, 1]: the seed's
            fixed threshold, exactly (``0.92`` is the seed's).
        max_error_rate: share of lookups that may get a wrong cached answer (0.02).
        verifier: ``verifier(question, cached_question, cached_answer) -> bool``, asked
            only about uncertain candidates; its verdicts teach the cache. Ready ones:
            :class:`langchain_costopt.verifiers.ChatModelVerifier` (a cheap chat model).
            A verifier that fails or times out (``verifier_timeout``, 10 s) is a "no".
        ttl_seconds: entry lifetime (default 24 h); ``None`` for no expiry.
        max_entries: store-wide size limit with least-recently-used eviction.
        store: a :class:`~costopt_core.stores.base.CacheStore` (``MemoryStore()`` by
            default; ``SQLiteStore(path)`` persists, ``PostgresStore(dsn)`` shares).
        namespace: fixed tenant of this cache instance; combined with
            :func:`cache_namespace` when both are set.
        **engine_options: passed to :class:`costopt_core.cache.SemanticCache`
            (``clock``, ``evict_interval``, ``pending_vectors``, ``verifier_timeout``,
            ``embedding_timeout_s``: the longest a call waits for the embeddings; past
            it the cache steps aside, logged, and the model answers).

    ``.stats`` is the engine's statistics dict (hits, misses, hit_rate, saved_usd,
    tokens_saved, ...). ``.engine`` is the underlying :class:`SemanticCache`.
    """

    def __init__(
        self,
        embeddings: Embeddings,
        similarity_threshold: float | None = None,
        max_error_rate: float = 0.02,
        verifier: Any = None,
        ttl_seconds: float | None = 86400,
        max_entries: int | None = None,
        store: CacheStore | None = None,
        namespace: str | None = None,
        **engine_options: Any,
    ) -> None:
        if not isinstance(embeddings, Embeddings):
            raise TypeError(
                "embeddings must be a langchain_core.embeddings.Embeddings, "
                f"got {type(embeddings).__name__}"
            )
        if namespace is not None and (not isinstance(namespace, str) or not namespace):
            raise ValueError(f"namespace must be a non-empty str or None, got {namespace!r}")
        unknown = sorted(set(engine_options) - _ENGINE_OPTIONS)
        if unknown:  # named after the class the user called, not the engine's
            raise TypeError(
                f"SemanticLLMCache got unexpected arguments {unknown}; it also takes "
                f"{sorted(_ENGINE_OPTIONS)}"
            )
        self.embeddings = embeddings
        self.namespace = namespace
        self.engine = SemanticCache(
            embeddings.embed_query,
            aembed=embeddings.aembed_query,
            similarity_threshold=similarity_threshold,
            max_error_rate=max_error_rate,
            verifier=verifier,
            answer_text=_answer_text,
            ttl_seconds=ttl_seconds,
            max_entries=max_entries,
            store=store,
            embedder_id=_embedder_id(embeddings),
            **engine_options,
        )

    @property
    def stats(self) -> dict[str, Any]:
        return self.engine.stats

    @property
    def store(self) -> CacheStore:
        return self.engine.store

    def _key(self, prompt: str, llm_string: str) -> tuple[str, str]:
        text, context = split_prompt(prompt)
        partition = self.engine.partition(
            llm_string, self.namespace or "", current_namespace() or "", context
        )
        return partition, text

    def _revive(self, hit: CacheHit | None) -> RETURN_VAL_TYPE | None:
        if hit is None:
            return None
        try:
            generations = _revive_generations(hit.response)
        except Exception:
            logger.exception("a cached answer could not be read back; treating it as a miss")
            self.engine.revoke_hit(hit)
            return None
        if (
            not isinstance(generations, list)
            or not generations
            or not all(isinstance(g, Generation) for g in generations)
        ):
            logger.error("a cached answer is not a list of generations; treating it as a miss")
            self.engine.revoke_hit(hit)
            return None
        marker = hit.marker()
        for gen in generations:
            if isinstance(gen, ChatGeneration):
                gen.generation_info = {**(gen.generation_info or {}), CACHE_MARKER_KEY: marker}
                gen.message.response_metadata = {
                    **gen.message.response_metadata,
                    CACHE_MARKER_KEY: dict(marker),
                }
                if isinstance(gen.message, AIMessage):
                    gen.message = as_new_answer(gen.message)
                else:
                    gen.message.id = None  # a new message all the same
        return generations

    def _prepare_update(
        self, prompt: str, llm_string: str, return_val: RETURN_VAL_TYPE
    ) -> tuple[str, str, str, dict[str, Any]] | None:
        """(partition, text, serialized generations, savings metadata), or None on a
        fault (logged: the answer is then simply not cached)."""
        if not return_val:  # nothing to replay: an empty hit would break the model
            return None
        try:
            partition, text = self._key(prompt, llm_string)
            payload = dumps(list(return_val))
            model, usage = _answer_usage(return_val, llm_string)
            if usage is None:
                # No usage reported: count it from the text as the cost handler counts
                # the call, so a hit saves what the call cost; and say so.
                messages = parse_messages(prompt)
                said = (
                    CallText([message_text(m) for m in messages], return_val[0].text)
                    if messages is not None
                    else CallText([prompt], return_val[0].text, chat=False)
                )
                counted, _ = said.usage(model)
                metadata = savings_metadata(model, counted, estimated=True)
            else:
                metadata = savings_metadata(model, usage)
        except Exception:
            logger.exception("semantic cache could not store an answer; continuing without it")
            return None
        return partition, text, payload, metadata

    def _lookup_key(self, prompt: str, llm_string: str) -> tuple[str, str] | None:
        """(partition, text) to look up, or None on a fault (logged: a miss)."""
        try:
            return self._key(prompt, llm_string)
        except Exception:
            logger.exception("semantic cache could not key the prompt; treating it as a miss")
            return None

    def lookup(self, prompt: str, llm_string: str) -> RETURN_VAL_TYPE | None:
        """Cached generations for ``prompt`` under ``llm_string``, or ``None``."""
        key = self._lookup_key(prompt, llm_string)
        return None if key is None else self._revive(self.engine.lookup(*key))

    def update(self, prompt: str, llm_string: str, return_val: RETURN_VAL_TYPE) -> None:
        """Store the generations the model returned for ``prompt``."""
        prepared = self._prepare_update(prompt, llm_string, return_val)
        if prepared is not None:
            self.engine.update(*prepared)

    def clear(self, **kwargs: Any) -> None:
        """Delete every entry of the store (all partitions and tenants)."""
        self.engine.clear()

    async def alookup(self, prompt: str, llm_string: str) -> RETURN_VAL_TYPE | None:
        """Async :meth:`lookup`: the embeddings' ``aembed_query`` and async store calls."""
        key = self._lookup_key(prompt, llm_string)
        return None if key is None else self._revive(await self.engine.alookup(*key))

    async def aupdate(self, prompt: str, llm_string: str, return_val: RETURN_VAL_TYPE) -> None:
        """Async :meth:`update`."""
        prepared = self._prepare_update(prompt, llm_string, return_val)
        if prepared is not None:
            await self.engine.aupdate(*prepared)

    async def aclear(self, **kwargs: Any) -> None:
        """Async :meth:`clear`."""
        await self.engine.aclear()

    # -- streaming (LangChain's stream/astream never consult an LLM cache) ------------

    def stream(
        self, model: Any, input: Any, config: Any = None, **kwargs: Any
    ) -> Iterator[AIMessageChunk]:
        """``model.stream(input, config, **kwargs)`` through this cache: a cached answer
        is yielded as a stream, a streamed miss stored when complete
        (:mod:`langchain_costopt.cache_stream`)."""
        return cache_stream.stream(self, model, input, config, **kwargs)

    def astream(
        self, model: Any, input: Any, config: Any = None, **kwargs: Any
    ) -> AsyncIterator[AIMessageChunk]:
        """Async :meth:`stream`."""
        return cache_stream.astream(self, model, input, config, **kwargs)


# The cache's own frames between a caller storing an answer and _caching_model_name: the
# walk passes these only, so the caller is the frame that called the cache.
_STORING_FRAMES: frozenset[Any] = frozenset(
    {
        _answer_usage.__code__,
        SemanticLLMCache._prepare_update.__code__,
        SemanticLLMCache.update.__code__,
        SemanticLLMCache.aupdate.__code__,
        cache_stream.CachedStream.store.__code__,
        cache_stream.CachedStream.astore.__code__,
        cache_stream.CachedStream.stored_when_complete.__code__,
        cache_stream.CachedStream.astored_when_complete.__code__,
    }
)

__all__ = [
    "SemanticLLMCache",
    "cache_namespace",
    "current_namespace",
    "split_messages",
    "split_prompt",
]
