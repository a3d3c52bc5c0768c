"""Streaming through an LLM cache: a cached answer comes back as a stream, and a streamed
miss is stored once it is complete, keyed exactly as ``invoke`` keys it (so ``invoke`` and
``stream`` share entries).

Example (any chat model, through the cache's helper):
    >>> from langchain_costopt import HashingEmbeddings, SemanticLLMCache
    >>> from langchain_costopt.simulated import SimulatedChatModel
    >>> cache = SemanticLLMCache(HashingEmbeddings(), similarity_threshold=0.9)
    >>> model = SimulatedChatModel(model_name="gpt-4o-mini")
    >>> first = "".join(c.content for c in cache.stream(model, "Why is the sky blue?"))
    >>> chunks = list(cache.stream(model, "why is the sky blue"))  # hit: no model call
    >>> "".join(c.content for c in chunks) == first, len(chunks) > 1
    (True, True)
    >>> chunks[-1].response_metadata["costopt_cache"]["hit"]
    True

Why this is needed: LangChain's ``BaseChatModel.stream`` / ``astream`` call the model's
``_stream`` directly and never consult the LLM cache (only ``invoke``/``generate`` go
through ``_generate_with_cache``, which looks the prompt up and, on a miss, stores the
result). A cache cannot change that for LangChain's own classes (it would mean patching
every chat model class), so there are two ways in, sharing this module's one definition:

* ``RouterChatModel.stream`` / ``astream`` consult the router's cache themselves (its
  ``cache=`` or the global ``set_llm_cache`` one; ``cache=False`` opts out), inside
  LangChain's own streaming run: callbacks, tracing, chunk ids and ``output_version``
  behave as for any stream.
* any other chat model: ``cache.stream(model, input)`` / ``cache.astream(...)`` of
  ``SemanticLLMCache``, or :func:`stream` / :func:`astream` here with any LangChain
  ``BaseCache`` (``InMemoryCache``, ...).

What both do (:class:`CachedStream`):

* key: the model's ``_get_llm_string(stop, **kwargs)`` and its normalized messages
  without ids, as ``_generate_with_cache`` builds them.
* hit: the cached message (as ``invoke`` returns it: ``usage_metadata`` carries
  ``"total_cost": 0``; the stored id replaced by the stream's run id, as a live
  stream's chunks have it) is cut into chunks at word boundaries whose sum is the message:
  tool calls and the routing record on the first chunk (where a live routed stream
  has it), the rest of the metadata, usage and the cache-hit marker on the last. The
  run sees one ``on_llm_new_token`` per chunk and ends with the whole message, so a cost
  handler books the hit as a saving, as for ``invoke``.
* miss: the model streams as usual; when the stream ends without error the merged
  message is stored. A stream the consumer abandons, or that fails part way, is not.

A fault inside the cache is logged and the call streams from the model. A router with a
``rate_limiter`` still waits for it on a streamed hit (LangChain's ``stream`` takes the
limiter before the router's stream starts).
"""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar, runtime_checkable
from uuid import UUID

from langchain_core.caches import BaseCache
from langchain_core.callbacks import AsyncCallbackManager, CallbackManager
from langchain_core.globals import get_llm_cache
from langchain_core.language_models import BaseChatModel
from langchain_core.language_models._utils import _normalize_messages
from langchain_core.load import dumps
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    BaseMessageChunk,
    message_chunk_to_message,
)
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, LLMResult
from langchain_core.runnables import RunnableConfig, ensure_config
from langchain_core.utils.utils import LC_ID_PREFIX

from costopt_core.engine import ROUTING_KEY
from costopt_core.metadata_keys import CACHE_MARKER_KEY
from langchain_costopt.chat_run import callback_manager_args
from langchain_costopt.routed_output import tool_call_chunks_of
from langchain_costopt.served_answer import as_new_answer

logger = logging.getLogger(__name__)

#: Words per replayed chunk: enough chunks to look like a stream, few enough to be cheap.
WORDS_PER_CHUNK = 4
_PIECE = re.compile(rf"(?:\S+\s*){{1,{WORDS_PER_CHUNK}}}|\s+")
#: Response metadata a replay puts on its first chunk, where a live routed stream has it.
HEAD_METADATA_KEYS: tuple[str, ...] = (ROUTING_KEY,)

Chunk = TypeVar("Chunk", AIMessageChunk, ChatGenerationChunk)


@runtime_checkable
class CacheStreamingModel(Protocol):
    """A chat model whose own ``stream`` / ``astream`` consult its cache through this
    module (``RouterChatModel``): :func:`stream` hands such a model its own cache's
    calls rather than looking up (and storing) twice."""

    streams_through_cache: bool


def cache_of(model: BaseChatModel) -> BaseCache | None:
    """The cache ``model.invoke`` consults: its own ``cache``, else the global one
    (``set_llm_cache``); ``None`` with ``cache=False`` or when there is none.

    Example:
        >>> from langchain_core.caches import InMemoryCache
        >>> from langchain_costopt.simulated import SimulatedChatModel
        >>> own = InMemoryCache()
        >>> cache_of(SimulatedChatModel(cache=own)) is own
        True
        >>> cache_of(SimulatedChatModel(cache=False)) is None
        True

    Raises ``ValueError`` for ``cache=True`` with no global cache, as ``invoke`` does.
    """
    own = model.cache
    if isinstance(own, BaseCache):
        return own
    if own is False:
        return None
    found = get_llm_cache()
    if found is None and own is True:
        raise ValueError("Asked to cache, but no cache found at `langchain.cache`.")
    return found


def cache_key(
    model: BaseChatModel, messages: Sequence[BaseMessage], stop: list[str] | None, **kwargs: Any
) -> tuple[str, str]:
    """``(prompt, llm_string)`` exactly as ``BaseChatModel._generate_with_cache`` builds
    them from the (normalized) messages the model is called with."""
    normalized = [
        m.model_copy(update={"id": None}) if getattr(m, "id", None) is not None else m
        for m in messages
    ]
    return dumps(normalized), model._get_llm_string(stop=stop, **kwargs)


def replay_chunks(message: AIMessage) -> list[AIMessageChunk]:
    """``message`` as a list of chunks whose sum is ``message``.

    Example:
        >>> chunks = replay_chunks(AIMessage("one two three four five six"))
        >>> [c.content for c in chunks]
        ['one two three four ', 'five six', '']
        >>> sum(chunks[1:], chunks[0]).content
        'one two three four five six'
    """
    text = message.content if isinstance(message.content, str) else ""
    pieces = _PIECE.findall(text) if text else []
    chunks = [AIMessageChunk(content=piece, id=message.id) for piece in pieces]
    if not isinstance(message.content, str):  # content blocks: one chunk carries them
        chunks = [AIMessageChunk(content=message.content, id=message.id)]
    if message.tool_calls:
        first = chunks[0] if chunks else AIMessageChunk(content="", id=message.id)
        first.tool_call_chunks = tool_call_chunks_of(message)
        chunks = [first, *chunks[1:]] if chunks else [first]
    metadata = dict(message.response_metadata)
    if chunks:
        # Dict metadata is merged when chunks are added, but strings inside it would be
        # concatenated: each key goes on exactly one chunk.
        head = {k: metadata.pop(k) for k in HEAD_METADATA_KEYS if k in metadata}
        chunks[0].response_metadata = {**chunks[0].response_metadata, **head}
    usage = message.usage_metadata
    if usage is not None and "input_tokens" not in usage:
        # LangChain marks a cached answer that reported no usage with {"total_cost": 0}:
        # no token counts, which a chunk refuses. Say "a hit" the way costopt's caches
        # do instead, so the cost handler books a saving, not a call.
        metadata.setdefault(CACHE_MARKER_KEY, {"hit": True})
        usage = None
    chunks.append(
        AIMessageChunk(
            content="" if isinstance(message.content, str) else [],
            id=message.id,
            # Not the raw tool calls: the first chunk carries them as tool_call_chunks,
            # and raw ones here would become a second, unmergeable copy of each call.
            additional_kwargs={
                k: v for k, v in message.additional_kwargs.items() if k != "tool_calls"
            },
            response_metadata=metadata,
            usage_metadata=usage,
            chunk_position="last",
        )
    )
    return chunks


def replay_generation_chunks(message: AIMessage) -> list[ChatGenerationChunk]:
    """:func:`replay_chunks` as a model's ``_stream`` yields them."""
    return [ChatGenerationChunk(message=chunk) for chunk in replay_chunks(message)]


def merged_generations(
    chunks: Sequence[BaseMessageChunk | ChatGenerationChunk],
) -> list[ChatGeneration]:
    """A finished stream's chunks as the generations ``invoke`` would have cached
    (empty when there was no chunk).

    Example:
        >>> (generation,) = merged_generations([AIMessageChunk("Hel"), AIMessageChunk("lo")])
        >>> type(generation.message).__name__, generation.message.content
        ('AIMessage', 'Hello')
    """
    messages = [c.message if isinstance(c, ChatGenerationChunk) else c for c in chunks]
    if not messages:
        return []
    total = messages[0]
    for message in messages[1:]:
        total = total + message
    return [ChatGeneration(message=message_chunk_to_message(total))]


@dataclass(frozen=True)
class CachedStream:
    """Where one stream's answer is looked up and, once complete, stored."""

    cache: BaseCache
    prompt: str
    llm_string: str

    @classmethod
    def open(
        cls,
        cache: BaseCache,
        model: BaseChatModel,
        messages: Sequence[BaseMessage],
        stop: list[str] | None,
        kwargs: dict[str, Any],
    ) -> CachedStream | None:
        """The entry of a call, or ``None`` when the call cannot be keyed (logged)."""
        try:
            return cls(cache, *cache_key(model, messages, stop, **kwargs))
        except Exception:
            logger.exception("the LLM cache could not key a stream; streaming from the model")
            return None

    def lookup(self, model: BaseChatModel) -> AIMessage | None:
        """The cached message for this call, as ``invoke`` would return it, or ``None``."""
        try:
            return _first_message(model, self.cache.lookup(self.prompt, self.llm_string))
        except Exception:
            logger.exception("the LLM cache could not look up a stream; streaming from the model")
            return None

    async def alookup(self, model: BaseChatModel) -> AIMessage | None:
        """Async :meth:`lookup`."""
        try:
            found = await self.cache.alookup(self.prompt, self.llm_string)
            return _first_message(model, found)
        except Exception:
            logger.exception("the LLM cache could not look up a stream; streaming from the model")
            return None

    def store(self, chunks: Sequence[BaseMessageChunk | ChatGenerationChunk]) -> None:
        """Store a complete stream's merged message (a fault is logged)."""
        try:
            generations = merged_generations(chunks)
            if generations:
                self.cache.update(self.prompt, self.llm_string, generations)
        except Exception:
            logger.exception("the LLM cache could not store a streamed answer")

    async def astore(self, chunks: Sequence[BaseMessageChunk | ChatGenerationChunk]) -> None:
        """Async :meth:`store`."""
        try:
            generations = merged_generations(chunks)
            if generations:
                await self.cache.aupdate(self.prompt, self.llm_string, generations)
        except Exception:
            logger.exception("the LLM cache could not store a streamed answer")

    def stored_when_complete(self, chunks: Iterator[Chunk]) -> Iterator[Chunk]:
        """``chunks`` passed on; stored once the stream ends without error (not when
        the consumer stops early: the generator is closed at a ``yield``)."""
        seen: list[Chunk] = []
        for chunk in chunks:
            seen.append(chunk)
            yield chunk
        self.store(seen)

    async def astored_when_complete(self, chunks: AsyncIterator[Chunk]) -> AsyncIterator[Chunk]:
        """Async :meth:`stored_when_complete`."""
        seen: list[Chunk] = []
        async for chunk in chunks:
            seen.append(chunk)
            yield chunk
        await self.astore(seen)


def _first_message(model: BaseChatModel, generations: Any) -> AIMessage | None:
    if not isinstance(generations, list) or not generations:
        return None
    # As invoke returns a hit (a plain Generation becomes a message; cost zeroed).
    generation = model._convert_cached_generations(generations)[0]
    message = getattr(generation, "message", None)
    if not isinstance(message, AIMessage):
        return AIMessage(content=generation.text)
    # Any cache (InMemoryCache too) returns the stored message's ids: the replay is a new
    # message, which takes its stream's run id as a live stream's chunks do.
    return as_new_answer(message)


# -- the helper for any chat model ------------------------------------------------------


def _delegates(cache: BaseCache, model: BaseChatModel) -> bool:
    """Whether ``model``'s own stream already goes through ``cache``."""
    if not isinstance(model, CacheStreamingModel) or not model.streams_through_cache:
        return False
    try:
        return cache_of(model) is cache
    except ValueError:
        return False


def _open(
    cache: BaseCache, model: BaseChatModel, input: Any, stop: list[str] | None, kwargs: dict
) -> tuple[CachedStream, list[BaseMessage]] | None:
    try:
        messages = _normalize_messages(model._convert_input(input).to_messages())
    except Exception:
        logger.exception("the LLM cache could not read a stream's input; streaming from the model")
        return None
    entry = CachedStream.open(cache, model, messages, stop, kwargs)
    return None if entry is None else (entry, messages)


def _with_run_id(message: AIMessage, run_id: UUID) -> AIMessage:
    """``message`` (a hit: no id, see :func:`_first_message`) with the id
    ``BaseChatModel.stream`` gives the chunks of run ``run_id``."""
    return message.model_copy(update={"id": f"{LC_ID_PREFIX}-{run_id}"})


def _run_start(
    model: BaseChatModel, config: RunnableConfig, stop: list[str] | None, kwargs: dict
) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """The callback manager arguments and ``on_chat_model_start`` keywords of a replayed
    hit's run, as ``model.stream`` would make them."""
    params = model._get_invocation_params(stop=stop, **kwargs)
    manager_args = callback_manager_args(model, config, model._get_ls_params(stop=stop, **kwargs))
    start = {
        "invocation_params": params,
        "options": {"stop": stop},
        "name": config.get("run_name"),
        "run_id": config.get("run_id"),
        "batch_size": 1,
    }
    return manager_args, start


def stream(
    cache: BaseCache,
    model: BaseChatModel,
    input: Any,
    config: RunnableConfig | None = None,
    *,
    stop: list[str] | None = None,
    **kwargs: Any,
) -> Iterator[AIMessageChunk]:
    """Stream ``model``'s answer to ``input`` through ``cache`` (see the module)."""
    opened = None if _delegates(cache, model) else _open(cache, model, input, stop, kwargs)
    message = None if opened is None else opened[0].lookup(model)
    if opened is None or message is None:
        chunks = model.stream(input, config, stop=stop, **kwargs)
        yield from chunks if opened is None else opened[0].stored_when_complete(chunks)
        return
    manager_args, start = _run_start(model, ensure_config(config), stop, kwargs)
    manager = CallbackManager.configure(*manager_args)
    (run,) = manager.on_chat_model_start(model._serialized, [opened[1]], **start)
    message = _with_run_id(message, run.run_id)
    try:
        for chunk in replay_generation_chunks(message):
            run.on_llm_new_token(chunk.text, chunk=chunk)
            yield chunk.message  # type: ignore[misc]
    except BaseException as exc:  # the consumer stopped early, or failed
        run.on_llm_error(exc)
        raise
    run.on_llm_end(LLMResult(generations=[[ChatGeneration(message=message)]]))


async def astream(
    cache: BaseCache,
    model: BaseChatModel,
    input: Any,
    config: RunnableConfig | None = None,
    *,
    stop: list[str] | None = None,
    **kwargs: Any,
) -> AsyncIterator[AIMessageChunk]:
    """Async :func:`stream`."""
    opened = None if _delegates(cache, model) else _open(cache, model, input, stop, kwargs)
    message = None if opened is None else await opened[0].alookup(model)
    if opened is None or message is None:
        chunks = model.astream(input, config, stop=stop, **kwargs)
        if opened is not None:
            chunks = opened[0].astored_when_complete(chunks)
        async for chunk in chunks:
            yield chunk
        return
    manager_args, start = _run_start(model, ensure_config(config), stop, kwargs)
    manager = AsyncCallbackManager.configure(*manager_args)
    (run,) = await manager.on_chat_model_start(model._serialized, [opened[1]], **start)
    message = _with_run_id(message, run.run_id)
    try:
        for chunk in replay_generation_chunks(message):
            await run.on_llm_new_token(chunk.text, chunk=chunk)
            yield chunk.message  # type: ignore[misc]
    except BaseException as exc:
        await run.on_llm_error(exc)
        raise
    await run.on_llm_end(LLMResult(generations=[[ChatGeneration(message=message)]]))


__all__ = [
    "HEAD_METADATA_KEYS",
    "CacheStreamingModel",
    "CachedStream",
    "astream",
    "cache_key",
    "cache_of",
    "merged_generations",
    "replay_chunks",
    "replay_generation_chunks",
    "stream",
]
