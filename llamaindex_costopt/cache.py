"""SemanticCacheLLM: answer a LlamaIndex LLM call from a semantic cache when the same
question (or a close paraphrase) was answered before in the same context.

Example:
    .. code-block:: python

        from llamaindex_costopt import SemanticCacheLLM
        from llamaindex_costopt.simulated import HashingEmbedding, SimulatedLLM

        llm = SemanticCacheLLM(SimulatedLLM(model_name="gpt-4o-mini"),
                               embed_model=HashingEmbedding(), similarity_threshold=0.9)
        llm.complete("How many moons does Mars have?")   # miss: the model answers
        llm.complete("how many moons does Mars have")    # hit: no model call
        llm.stats["hits"], llm.stats["saved_usd"]

The cache logic (partitions, exact-match fast path, cosine threshold, TTL, LRU limit,
statistics, stores such as ``SQLiteStore`` or ``PostgresStore``) is the engine's
``costopt_core.cache.SemanticCache``; this class only decides what is embedded and what
must match exactly:

* Embedded: the user's question: the latest user turn, or for a RAG prompt the
  template's ``query_str`` (see :mod:`llamaindex_costopt.messages`).
* Exact partition key: the wrapped LLM's identity (class, metadata and scalar
  parameters such as model and temperature, never credentials), the endpoint (chat or
  completion), the call's keyword arguments, the system prompt, earlier turns (tool
  calls and results included), the rest of the prompt around the question (for a RAG
  prompt: the template and the retrieved context), tool definitions, and the
  namespace (tenant). A hit never crosses any of them.

A hit returns the stored answer with ``additional_kwargs["cache"]`` describing the match,
dispatches a :class:`CacheHitEvent` (a ``CostEventHandler`` records it as saved dollars)
and emits no LLM events: no model is called. Answers are stored as JSON, never pickled.
If the embedding model or the store fails, the call goes to the model as on a miss.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from typing import Any

from llama_index.core.base.embeddings.base import BaseEmbedding
from llama_index.core.base.llms.generic_utils import (
    messages_to_prompt as generic_messages_to_prompt,
)
from llama_index.core.base.llms.types import (
    ChatMessage,
    ChatResponse,
    CompletionResponse,
    LLMMetadata,
)
from llama_index.core.instrumentation import get_dispatcher
from llama_index.core.instrumentation.events import BaseEvent
from llama_index.core.llms.function_calling import FunctionCallingLLM
from llama_index.core.llms.llm import LLM, ToolSelection, default_completion_to_prompt
from pydantic import ConfigDict, Field, model_validator

from costopt_core.arguments import refuse_unknown_arguments
from costopt_core.budget_gate import Reservation, open_budget, release_budget
from costopt_core.cache import (
    CacheHit,
    SemanticCache,
    cache_namespace,
    current_namespace,
    savings_metadata,
)
from costopt_core.engine import ROUTING_KEY
from costopt_core.fingerprint import callable_fingerprint
from costopt_core.metadata_keys import CACHE_HIT_KEY
from costopt_core.stores.base import CacheStore
from llamaindex_costopt.handlers import (
    exchange_text,
    model_of_response,
    usage_as_mapping,
    usage_of_response,
)
from llamaindex_costopt.messages import (
    message_text,
    prompt_context,
    question_of,
    split_chat,
)
from llamaindex_costopt.responses import whole_answer
from llamaindex_costopt.wrapper import (
    ASTREAM,
    ASYNC,
    STREAM,
    SYNC,
    CompleteRequest,
    Request,
    ToolsRequest,
    WrapperLLM,
    areplay,
    budget_gates,
    llm_model_name,
    replay,
    request_quotes,
    send,
    tool_schemas,
)

logger = logging.getLogger(__name__)
dispatcher = get_dispatcher(__name__)

#: What a request sent: a completion's prompt, or the chat messages.
Prompt = str | Sequence[ChatMessage]

# Credentials are named by a word of the setting's name (api_key, x-api-key, hf_token,
# access_token, use_auth_token, Authorization, default_headers...). Token *counts*
# (max_tokens, max_new_tokens, num_tokens) and token ids (stop_token_ids) change the
# answer and must stay in the key: "token" is a credential only as the name's last word.
_SECRET_WORDS = frozenset({"key", "apikey"})
_SECRET_PARTS = ("auth", "header", "secret", "password", "passwd", "credential", "cookie")
_NAME_WORD = re.compile(r"[^a-z0-9]+")
_USAGE_KEYS = ("prompt_tokens", "completion_tokens", "total_tokens", "usage")


class CacheHitEvent(BaseEvent):
    """A call answered from the semantic cache (no model was called)."""

    model: str | None = None
    question: str = ""
    matched_question: str = ""
    similarity: float = 1.0
    exact: bool = True
    saved_usd: float | None = None
    #: The original call's usage in LangChain's ``usage_metadata`` shape (cache-read and
    #: reasoning tokens under ``input_token_details`` / ``output_token_details``).
    usage: dict[str, Any] = Field(default_factory=dict)
    #: The original call reported no usage: ``usage`` was counted from its text.
    usage_estimated: bool = False
    tier: str | None = None
    namespace: str | None = None

    @classmethod
    def class_name(cls) -> str:
        return "CacheHitEvent"


def _scalar_params(llm: Any) -> dict[str, Any]:
    """The LLM's settings that are plain data (model, temperature, max_tokens, stop
    words, ``additional_kwargs`` such as ``response_format`` or ``seed``...), without
    anything that looks like a credential, at any depth."""
    params: dict[str, Any] = {}
    fields = getattr(type(llm), "model_fields", {})
    for name in sorted(fields):
        if fields[name].exclude or _secret(name):
            continue  # excluded fields are runtime state, not settings
        value = _plain_data(getattr(llm, name, None))
        if value is not _NOT_DATA:
            params[name] = value
    return params


_NOT_DATA = object()  # a client, a callback manager...: runtime objects, not settings


def _secret(name: str) -> bool:
    """Whether a setting's name says it holds a credential."""
    words = [w for w in _NAME_WORD.split(name.lower()) if w]
    if not words:
        return False
    if words[-1] == "token" or any(w in _SECRET_WORDS for w in words):
        return True
    return any(part in w for w in words for part in _SECRET_PARTS)


def _plain_data(value: Any, depth: int = 0) -> Any:
    """``value`` if it is JSON-like data (credentials left out), else ``_NOT_DATA``."""
    if value is None or isinstance(value, str | int | float | bool):
        return value
    if depth >= 4:
        return _NOT_DATA
    if isinstance(value, Mapping):
        data = {}
        for key, item in value.items():
            if not isinstance(key, str) or _secret(key):
                continue
            plain = _plain_data(item, depth + 1)
            if plain is _NOT_DATA:
                return _NOT_DATA
            data[key] = plain
        return data
    if isinstance(value, list | tuple):
        items = [_plain_data(item, depth + 1) for item in value]
        return _NOT_DATA if any(item is _NOT_DATA for item in items) else items
    return _NOT_DATA


def llm_identity(llm: LLM) -> str:
    """What identifies an LLM's answers: class, metadata, scalar parameters, and how it
    formats the prompts of ``predict`` when not LlamaIndex's default (applied to the
    calls it answers behind a wrapper: see :func:`llamaindex_costopt.wrapper.send`)."""
    try:
        payload = llm.to_payload()
    except Exception:
        payload = {"class_name": type(llm).__name__}
    identity: dict[str, Any] = {
        "class": f"{type(llm).__module__}.{type(llm).__qualname__}",
        "payload": payload,
        "params": _scalar_params(llm),
    }
    formatting = _prompt_formatting(llm)
    if formatting:  # only when set: the keys of LLMs that format by default are unchanged
        identity["formatting"] = formatting
    return json.dumps(identity, sort_keys=True, default=str)


def _prompt_formatting(llm: Any) -> dict[str, str]:
    formatting: dict[str, str] = {}
    wrapper = getattr(llm, "query_wrapper_prompt", None)
    if wrapper is not None:
        try:
            formatting["query_wrapper_prompt"] = wrapper.get_template()
        except Exception:  # a template that cannot show itself still differs by type
            formatting["query_wrapper_prompt"] = type(wrapper).__qualname__
    for name, default in (
        ("completion_to_prompt", default_completion_to_prompt),
        ("messages_to_prompt", generic_messages_to_prompt),
    ):
        func = getattr(llm, name, None)
        if callable(func) and func is not default:
            formatting[name] = callable_fingerprint(func)
    return formatting


def _tools_identity(tools: Sequence[Any]) -> str:
    return json.dumps(tool_schemas(tools), sort_keys=True, default=str)


def _kwargs_identity(kwargs: Mapping[str, Any]) -> str:
    return json.dumps(dict(kwargs), sort_keys=True, default=str)


def _json_safe(mapping: Mapping[str, Any]) -> dict[str, Any]:
    """The JSON-serializable part of ``additional_kwargs`` (usage counts dropped: a
    cached answer costs no tokens)."""
    safe: dict[str, Any] = {}
    for key, value in mapping.items():
        if key in _USAGE_KEYS or key == CACHE_HIT_KEY:
            continue
        try:
            json.dumps(value)
        except (TypeError, ValueError):
            continue
        safe[key] = value
    return safe


class SemanticCacheLLM(WrapperLLM):
    """A semantic cache in front of any LlamaIndex LLM (a ``RouterLLM`` included).

    Example:
        >>> from llamaindex_costopt import SemanticCacheLLM
        >>> from llamaindex_costopt.simulated import HashingEmbedding, SimulatedLLM
        >>> llm = SemanticCacheLLM(SimulatedLLM(model_name="gpt-4o-mini"),
        ...                        embed_model=HashingEmbedding(), similarity_threshold=0.9)
        >>> _ = llm.complete("How many moons does Mars have?")
        >>> llm.complete("how many moons does Mars have").additional_kwargs["cache"]["hit"]
        True
        >>> llm.stats["hits"], llm.stats["misses"]
        (1, 1)

    Args:
        llm: the LlamaIndex LLM to cache.
        embed_model: a LlamaIndex embedding model. Recommended:
            :class:`llamaindex_costopt.embeddings.LocalEmbedding` (offline neural
            multilingual-e5-small, extra ``[embeddings]``); ``HashingEmbedding`` is the
            lexical, zero-dependency one for tests.
        similarity_threshold: ``None`` (default): keep wrong answers at or below
            ``max_error_rate`` for whatever embedding this is (the decision calibrates
            itself, see :mod:`costopt_core.cache_gate`); a cosine in (0, 1]: the seed's
            fixed threshold, exactly.
        max_error_rate: share of lookups that may get a wrong cached answer (0.02).
        verifier: ``verifier(question, cached_question, cached_answer) -> bool``, asked
            only about uncertain candidates; its verdicts teach the cache. Ready one:
            :class:`llamaindex_costopt.verifiers.LLMVerifier` (a cheap LlamaIndex LLM).
            A verifier that fails or outlasts ``verifier_timeout`` (10 s) is a "no".
        embedding_timeout_s: the longest a call waits for ``embed_model``; past it the
            cache steps aside (logged) and the LLM answers. ``None``: no limit.
        ttl_seconds: entry lifetime (default 24 h, as the seed); ``None``: no expiry.
        max_entries: store-wide size limit, least recently used evicted first.
        store: a ``costopt_core`` cache store (``MemoryStore`` default, ``SQLiteStore``,
            ``PostgresStore``) for persistence or sharing between processes.
        namespace: tenant for every call (``cache_namespace`` scopes single calls).
        clock: ``() -> seconds since the epoch`` for TTL (tests pass a fake one).
    """

    llm: Any
    embed_model: Any = Field(exclude=True)
    similarity_threshold: float | None = None
    max_error_rate: float = 0.02
    verifier: Any = Field(default=None, exclude=True)
    verifier_timeout: float = 10.0
    embedding_timeout_s: float | None = None
    ttl_seconds: float | None = 86400
    max_entries: int | None = None
    store: Any = Field(default=None, exclude=True)
    namespace: str | None = None
    clock: Any = Field(default=None, exclude=True)

    model_config = ConfigDict(arbitrary_types_allowed=True)

    __slots__ = ("_cache",)  # set by _build

    # A copy reads and fills the same cache (the engine: store, calibration, figures).
    _SHARED_ON_COPY = frozenset({"embed_model", "verifier", "store", "clock"})
    _OBJECT_FIELDS = ("llm", "embed_model")

    def __init__(self, llm: Any = None, embed_model: Any = None, **kwargs: Any) -> None:
        super().__init__(llm=llm, embed_model=embed_model, **kwargs)

    @model_validator(mode="before")
    @classmethod
    def _check(cls, data: Any) -> Any:
        refuse_unknown_arguments(data, cls.model_fields, "SemanticCacheLLM")
        if isinstance(data, dict):
            llm = data.get("llm")
            if not isinstance(llm, LLM):
                raise TypeError(
                    f"llm must be a LlamaIndex LLM (llama_index.core.llms.LLM), got "
                    f"{type(llm).__name__}"
                )
            embed = data.get("embed_model")
            if not isinstance(embed, BaseEmbedding):
                raise TypeError(
                    "embed_model must be a LlamaIndex embedding model (BaseEmbedding), got "
                    f"{type(embed).__name__}"
                )
            store = data.get("store")
            if store is not None and not isinstance(store, CacheStore):
                raise TypeError(
                    "store must be a costopt cache store (MemoryStore, SQLiteStore, "
                    f"PostgresStore), got {type(store).__name__}"
                )
            namespace = data.get("namespace")
            if namespace is not None and (not isinstance(namespace, str) or not namespace):
                raise ValueError(f"namespace must be None or a non-empty str, got {namespace!r}")
        return data

    @model_validator(mode="after")
    def _build(self) -> SemanticCacheLLM:
        embed: BaseEmbedding = self.embed_model
        self._cache = SemanticCache(
            embed.get_query_embedding,
            aembed=embed.aget_query_embedding,
            similarity_threshold=self.similarity_threshold,
            max_error_rate=self.max_error_rate,
            verifier=self.verifier,
            verifier_timeout=self.verifier_timeout,
            embedding_timeout_s=self.embedding_timeout_s,
            answer_text=_answer_text,
            ttl_seconds=self.ttl_seconds,
            max_entries=self.max_entries,
            store=self.store,
            embedder_id=f"{embed.class_name()}:{embed.model_name}",
            **({"clock": self.clock} if self.clock is not None else {}),
        )
        return self

    def _wrapped_llms(self) -> list[LLM]:
        return [self.llm]

    # -- identity and figures --------------------------------------------------------------

    @classmethod
    def class_name(cls) -> str:
        return "SemanticCacheLLM"

    @property
    def metadata(self) -> LLMMetadata:
        return self.llm.metadata

    @property
    def cache(self) -> SemanticCache:
        """The engine cache (store, threshold, TTL, statistics)."""
        return self._cache

    @property
    def stats(self) -> dict[str, Any]:
        """``hits``, ``misses``, ``hit_rate``, ``saved_usd``, tokens saved, ... (engine)."""
        return self._cache.stats

    def clear(self) -> None:
        """Forget every cached answer (of every partition in the store)."""
        self._cache.clear()

    def to_payload(self) -> dict[str, Any]:
        return {**self.llm.to_payload(), "cache": "SemanticCacheLLM"}

    # -- keys ------------------------------------------------------------------------------

    def _partition(
        self, endpoint: str, context: Any, kwargs: Mapping[str, Any], tools: str = ""
    ) -> str:
        namespace = current_namespace() or self.namespace or ""
        return self._cache.partition(
            # Per call: a model or temperature changed on the wrapped LLM is a new key.
            llm_identity(self.llm),
            endpoint,
            namespace,
            json.dumps(context, ensure_ascii=False, default=str),
            _kwargs_identity(kwargs),
            tools,
        )

    def _key(self, request: Request) -> tuple[str, str]:
        """The partition and the question (what is embedded) of a request."""
        if isinstance(request, CompleteRequest):
            question = question_of(request.prompt)
            context = [prompt_context(request.prompt, question), request.formatted]
            return self._partition("complete", context, request.kwargs), question
        if isinstance(request, ToolsRequest):
            endpoint, options = "chat_with_tools", request.options()
            tools = _tools_identity(request.tools)
        else:
            endpoint, options, tools = "chat", request.kwargs, ""
        question, context = split_chat(request.messages)
        return self._partition(endpoint, context, options, tools), question

    # -- (de)serialising answers -------------------------------------------------------------

    @staticmethod
    def _dump(response: ChatResponse | CompletionResponse) -> str:
        if isinstance(response, ChatResponse):
            return json.dumps(
                {
                    "kind": "chat",
                    "message": response.message.model_dump(mode="json"),
                    "additional_kwargs": _json_safe(response.additional_kwargs or {}),
                }
            )
        return json.dumps(
            {
                "kind": "completion",
                "text": response.text,
                "additional_kwargs": _json_safe(response.additional_kwargs or {}),
            }
        )

    @staticmethod
    def _load(hit: CacheHit, kind: str) -> ChatResponse | CompletionResponse | None:
        try:
            data = json.loads(hit.response)
            if data.get("kind") != kind:
                return None
            extra = dict(data.get("additional_kwargs") or {})
            extra[CACHE_HIT_KEY] = hit.marker()
            if kind == "chat":
                return ChatResponse(
                    message=ChatMessage.model_validate(data["message"]), additional_kwargs=extra
                )
            return CompletionResponse(text=data["text"], additional_kwargs=extra)
        except Exception:
            logger.exception("a cached answer could not be read; treated as a miss")
            return None

    def _entry(self, response: Any, prompt: Prompt) -> tuple[str, dict[str, Any]] | None:
        """What is stored for an answer: the serialized answer and its metadata."""
        try:
            return self._dump(response), self._metadata(response, prompt)
        except Exception:
            logger.exception("the answer could not be cached")
            return None

    def _metadata(self, response: Any, prompt: Prompt) -> dict[str, Any]:
        """What the engine needs to price a later hit: the model and the call's usage
        (counted from the text as the cost handler counts the call, when it has none)."""
        routing = (response.additional_kwargs or {}).get(ROUTING_KEY) or {}
        model = (
            model_of_response(response)
            or (routing.get("model") if isinstance(routing.get("model"), str) else None)
            or llm_model_name(self.llm)
        )
        usage = usage_of_response(response)
        if usage is None:
            counted, _ = exchange_text(prompt, response).usage(model)
            meta = savings_metadata(model, counted, estimated=True)
        else:
            meta = savings_metadata(model, usage)
        if isinstance(routing.get("tier"), str):
            meta["tier"] = routing["tier"]
        return meta

    def _on_hit(self, hit: CacheHit, question: str) -> None:
        usage = usage_as_mapping(hit.usage)
        tier = hit.metadata.get("tier")
        try:
            dispatcher.event(
                CacheHitEvent(
                    model=hit.model,
                    question=question,
                    matched_question=hit.matched_text,
                    similarity=hit.similarity,
                    exact=hit.exact,
                    saved_usd=hit.saved_usd,
                    usage=usage,
                    usage_estimated=hit.metadata.get("usage_estimated") is True,
                    tier=tier if isinstance(tier, str) else None,
                    namespace=current_namespace() or self.namespace,
                )
            )
        except Exception:  # observability must never fail the user's call
            logger.exception("dispatching CacheHitEvent failed")

    def _from_hit(self, hit: CacheHit | None, question: str, kind: str) -> Any:
        if hit is None:
            return None
        response = self._load(hit, kind)
        if response is not None:
            self._on_hit(hit, question)
        return response

    def _serve(self, key: tuple[str, str], kind: str) -> Any:
        return self._from_hit(self._cache.lookup(*key), key[1], kind)

    async def _aserve(self, key: tuple[str, str], kind: str) -> Any:
        return self._from_hit(await self._cache.alookup(*key), key[1], kind)

    def _save(self, key: tuple[str, str], response: Any, prompt: Prompt) -> None:
        entry = self._entry(response, prompt)
        if entry is not None:
            self._cache.update(*key, *entry)

    async def _asave(self, key: tuple[str, str], response: Any, prompt: Prompt) -> None:
        entry = self._entry(response, prompt)
        if entry is not None:
            await self._cache.aupdate(*key, *entry)

    def _miss_budget(self, request: Request) -> list[Reservation]:
        """Reserve the most a miss can cost on the wrapped LLM (``BudgetExceededError``
        before calling it). A wrapped RouterLLM or cache reserves for itself, with the
        quotes of the models it may call: reserving here too would hold the call twice,
        or on the wrong model."""
        if isinstance(self.llm, WrapperLLM):
            return []
        quotes = request_quotes(request, [(llm_model_name(self.llm), self.llm)])
        return open_budget(budget_gates(dispatcher), routed=False, quotes=quotes)

    def _miss_call(self, request: Request, call: Any) -> Any:
        reservations = self._miss_budget(request)
        try:
            return call()
        except BaseException:
            release_budget(reservations)
            raise

    async def _amiss_call(self, request: Request, call: Any) -> Any:
        reservations = self._miss_budget(request)
        try:
            return await call()
        except BaseException:
            release_budget(reservations)
            raise

    # -- requests: served from the cache, or sent to the wrapped LLM and stored --------------

    def _send(self, request: Request, mode: str) -> Any:
        llm = self._tool_llm() if isinstance(request, ToolsRequest) else self.llm
        return send(request, llm, mode)

    def _answer(self, request: Request) -> Any:
        key = self._key(request)
        cached = self._serve(key, _kind(request))
        if cached is not None:
            return cached
        response = self._miss_call(request, lambda: self._send(request, SYNC))
        self._save(key, response, _prompt(request))
        return response

    async def _aanswer(self, request: Request) -> Any:
        key = self._key(request)
        cached = await self._aserve(key, _kind(request))
        if cached is not None:
            return cached
        response = await self._amiss_call(request, lambda: self._send(request, ASYNC))
        await self._asave(key, response, _prompt(request))
        return response

    def _stream(self, request: Request) -> Iterator[Any]:
        key = self._key(request)
        cached = self._serve(key, _kind(request))
        if cached is not None:
            return replay(cached)
        stream = self._miss_call(request, lambda: self._send(request, STREAM))
        return self._record_stream(key, stream, _prompt(request))

    async def _astream(self, request: Request) -> AsyncIterator[Any]:
        key = self._key(request)
        cached = await self._aserve(key, _kind(request))
        if cached is not None:
            return areplay(cached)
        stream = await self._amiss_call(request, lambda: self._send(request, ASTREAM))
        return self._arecord_stream(key, stream, _prompt(request))

    def _record_stream(
        self, key: tuple[str, str], stream: Iterator[Any], prompt: Prompt
    ) -> Iterator[Any]:
        # LlamaIndex stream chunks carry the text so far: the last one is the answer.
        last = None
        for chunk in stream:
            last = chunk
            yield chunk
        if last is not None:
            self._save(key, whole_answer(last), prompt)

    async def _arecord_stream(
        self, key: tuple[str, str], stream: AsyncIterator[Any], prompt: Prompt
    ) -> AsyncIterator[Any]:
        last = None
        async for chunk in stream:
            last = chunk
            yield chunk
        if last is not None:
            await self._asave(key, whole_answer(last), prompt)

    # -- tools ------------------------------------------------------------------------------

    def _tool_llm(self) -> FunctionCallingLLM:
        if not isinstance(self.llm, FunctionCallingLLM):
            raise TypeError(
                f"{type(self.llm).__name__} does not support tool calling; "
                "SemanticCacheLLM forwards *_chat_with_tools to a function-calling LLM"
            )
        return self.llm

    def _tools_llm_for(self, request: ToolsRequest) -> FunctionCallingLLM:
        return self._tool_llm()

    def get_tool_calls_from_response(
        self,
        response: ChatResponse,
        error_on_no_tool_call: bool = True,
        **kwargs: Any,
    ) -> list[ToolSelection]:
        """Parsed by the wrapped LLM (cached answers keep the wrapped LLM's format)."""
        return self._tool_llm().get_tool_calls_from_response(
            response, error_on_no_tool_call=error_on_no_tool_call, **kwargs
        )


# -- helpers ---------------------------------------------------------------------------------


def _kind(request: Request) -> str:
    """What kind of stored answer serves a request."""
    return "completion" if isinstance(request, CompleteRequest) else "chat"


def _prompt(request: Request) -> Prompt:
    """What a request sends: a completion's prompt or the chat messages, and the schemas
    of the tools it binds (to count the tokens of an answer that came without usage, as
    the cost handler counts the call: ``handlers.call_text``)."""
    if isinstance(request, CompleteRequest):
        return request.prompt
    if isinstance(request, ToolsRequest) and request.tools:
        schemas = json.dumps(tool_schemas(request.tools), default=str)
        return [*request.messages, ChatMessage(role="system", content=schemas)]
    return request.messages


def _answer_text(stored: str) -> str:
    """The text of a stored answer (what a verifier reads)."""
    data = json.loads(stored)
    if data.get("kind") == "chat":
        return message_text(ChatMessage.model_validate(data["message"]))
    return str(data.get("text", ""))


__all__ = ["CacheHitEvent", "SemanticCacheLLM", "cache_namespace", "llm_identity"]
