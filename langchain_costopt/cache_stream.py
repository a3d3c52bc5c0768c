"""Streaming through a ``SemanticLLMCache``: ``cache.stream(model, input)`` yields a cached
answer as a stream, and stores a streamed miss once it is complete.

Example:
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

Why a method and not ``model.stream``: LangChain's ``BaseChatModel.stream`` /
``astream`` call the model's ``_stream`` directly and never consult the LLM cache (only
``invoke``/``generate`` go through ``_generate_with_cache``, which looks the prompt up
and, on a miss, streams internally and stores the result). A cache cannot change that
without patching every chat model class. So the cache offers the same two steps for a
stream, keyed exactly as ``_generate_with_cache`` keys an ``invoke`` (the model's
``_get_llm_string`` and its normalized messages without ids), so ``invoke`` and
``stream`` share entries:

* hit: the cached message is cut into chunks at word boundaries and yielded as
  ``AIMessageChunk`` s whose sum is the cached message (tool calls on the first chunk,
  metadata, usage and the cache-hit marker on the last). The model's callbacks see a
  normal run (start, one token per chunk, end with the marked generation), so a cost
  handler books the hit as a saving, as for ``invoke``.
* miss: ``model.stream(...)`` runs as usual (its callbacks and tracing untouched); when
  the stream ends without error the merged message is stored. A stream abandoned or
  failed part way is not stored.

A fault inside the cache is logged and the call streams from the model.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING, Any

from langchain_core.callbacks import AsyncCallbackManager, CallbackManager
from langchain_core.language_models import BaseChatModel
from langchain_core.language_models._utils import _normalize_messages
from langchain_core.load import dumps
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessageChunk
from langchain_core.messages.tool import tool_call_chunk
from langchain_core.outputs import ChatGeneration, LLMResult
from langchain_core.runnables import RunnableConfig, ensure_config

if TYPE_CHECKING:
    from langchain_costopt.cache import SemanticLLMCache

logger = logging.getLogger(__name__)

#: Words per replayed chunk: enough chunks to look like a stream, few enough to be cheap.
WORDS_PER_CHUNK = 4
_PIECE = re.compile(rf"(?:\S+\s*){{1,{WORDS_PER_CHUNK}}}|\s+")


def cache_key(
    model: BaseChatModel, input: Any, stop: list[str] | None, **kwargs: Any
) -> tuple[str, str, list[Any]]:
    """(prompt, llm_string) exactly as ``BaseChatModel._generate_with_cache`` builds them."""
    messages = _normalize_messages(model._convert_input(input).to_messages())
    normalized = [
        m.model_copy(update={"id": None}) if getattr(m, "id", None) is not None else m
        for m in messages
    ]
    return dumps(normalized), model._get_llm_string(stop=stop, **kwargs), messages


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
        first.tool_call_chunks = [
            tool_call_chunk(name=c["name"], args=json.dumps(c["args"]), id=c.get("id"), index=i)
            for i, c in enumerate(message.tool_calls)
        ]
        chunks = [first, *chunks[1:]] if chunks else [first]
    chunks.append(
        AIMessageChunk(
            content="" if isinstance(message.content, str) else [],
            id=message.id,
            additional_kwargs=message.additional_kwargs,
            response_metadata=message.response_metadata,
            usage_metadata=message.usage_metadata,
            chunk_position="last",
        )
    )
    return chunks


def _first_message(generations: Any) -> AIMessage | None:
    if not generations:
        return None
    gen = generations[0]
    if isinstance(gen, ChatGeneration) and isinstance(gen.message, AIMessage):
        return gen.message
    return AIMessage(content=gen.text)


def _merged(chunks: list[BaseMessageChunk]) -> list[ChatGeneration] | None:
    if not chunks:
        return None
    total = chunks[0]
    for chunk in chunks[1:]:
        total = total + chunk
    message = AIMessage(**total.model_dump(exclude={"type", "tool_call_chunks", "chunk_position"}))
    return [ChatGeneration(message=message)]


def _manager_args(model: BaseChatModel, config: RunnableConfig) -> tuple[Any, ...]:
    return (
        config.get("callbacks"),
        model.callbacks,
        model.verbose,
        config.get("tags"),
        model.tags,
        config.get("metadata"),
        model.metadata,
    )


def stream(
    cache: SemanticLLMCache,
    model: BaseChatModel,
    input: Any,
    config: RunnableConfig | None = None,
    *,
    stop: list[str] | None = None,
    **kwargs: Any,
) -> Iterator[AIMessageChunk]:
    """Stream ``model``'s answer to ``input`` through ``cache`` (see the module)."""
    config = ensure_config(config)
    try:
        prompt, llm_string, messages = cache_key(model, input, stop, **kwargs)
        message = _first_message(cache.lookup(prompt, llm_string))
    except Exception:
        logger.exception("semantic cache could not look up a stream; streaming from the model")
        yield from model.stream(input, config, stop=stop, **kwargs)
        return
    if message is not None:
        manager = CallbackManager.configure(*_manager_args(model, config))
        (run,) = manager.on_chat_model_start(model._serialized, [messages])
        for chunk in replay_chunks(message):
            run.on_llm_new_token(chunk.text, chunk=None)
            yield chunk
        run.on_llm_end(LLMResult(generations=[[ChatGeneration(message=message)]]))
        return
    chunks: list[BaseMessageChunk] = []
    for chunk in model.stream(input, config, stop=stop, **kwargs):
        chunks.append(chunk)
        yield chunk  # type: ignore[misc]
    generations = _merged(chunks)
    if generations is not None:
        cache.update(prompt, llm_string, generations)


async def astream(
    cache: SemanticLLMCache,
    model: BaseChatModel,
    input: Any,
    config: RunnableConfig | None = None,
    *,
    stop: list[str] | None = None,
    **kwargs: Any,
) -> AsyncIterator[AIMessageChunk]:
    """Async :func:`stream`."""
    config = ensure_config(config)
    try:
        prompt, llm_string, messages = cache_key(model, input, stop, **kwargs)
        message = _first_message(await cache.alookup(prompt, llm_string))
    except Exception:
        logger.exception("semantic cache could not look up a stream; streaming from the model")
        async for chunk in model.astream(input, config, stop=stop, **kwargs):
            yield chunk
        return
    if message is not None:
        manager = AsyncCallbackManager.configure(*_manager_args(model, config))
        (run,) = await manager.on_chat_model_start(model._serialized, [messages])
        for chunk in replay_chunks(message):
            await run.on_llm_new_token(chunk.text, chunk=None)
            yield chunk
        await run.on_llm_end(LLMResult(generations=[[ChatGeneration(message=message)]]))
        return
    chunks: list[BaseMessageChunk] = []
    async for chunk in model.astream(input, config, stop=stop, **kwargs):
        chunks.append(chunk)
        yield chunk  # type: ignore[misc]
    generations = _merged(chunks)
    if generations is not None:
        await cache.aupdate(prompt, llm_string, generations)


__all__ = ["astream", "cache_key", "replay_chunks", "stream"]
