"""Streaming through SemanticLLMCache (cache.stream / cache.astream)."""

from __future__ import annotations

import asyncio
from typing import Any

from langchain_core.caches import InMemoryCache
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.messages import AIMessage, AIMessageChunk
from langchain_core.outputs import ChatGenerationChunk

from langchain_costopt import (
    CostCallbackHandler,
    HashingEmbeddings,
    RouterChatModel,
    SemanticLLMCache,
    cache_stream,
    set_price,
)
from langchain_costopt.cache_stream import replay_chunks
from langchain_costopt.cache_stream import stream as stream_through
from langchain_costopt.simulated import SimulatedChatModel

Q = "How do I reset my account password?"
REWORDED = "how do I reset my account password"


class CountingModel(SimulatedChatModel):
    calls: int = 0

    def _stream(self, *args: Any, **kwargs: Any):
        self.calls += 1
        yield from super()._stream(*args, **kwargs)

    async def _astream(self, *args: Any, **kwargs: Any):
        self.calls += 1
        async for chunk in super()._astream(*args, **kwargs):
            yield chunk

    def _generate(self, *args: Any, **kwargs: Any):
        self.calls += 1
        return super()._generate(*args, **kwargs)


def setup() -> tuple[SemanticLLMCache, CountingModel]:
    cache = SemanticLLMCache(HashingEmbeddings(), similarity_threshold=0.9)
    return cache, CountingModel(model_name="gpt-4o-mini")


def text(chunks: list[AIMessageChunk]) -> str:
    return "".join(str(c.content) for c in chunks)


def test_streamed_miss_is_stored_and_a_later_stream_replays_it():
    cache, model = setup()
    first = list(cache.stream(model, Q))
    assert model.calls == 1 and cache.stats["updates"] == 1
    again = list(cache.stream(model, REWORDED))
    assert model.calls == 1  # served from the cache
    assert len(again) > 2 and text(again) == text(first)
    merged = sum(again[1:], again[0])
    assert merged.response_metadata["costopt_cache"]["hit"] is True
    # The original call's usage, with the cost zeroed as invoke returns a hit.
    assert merged.usage_metadata == {**sum(first[1:], first[0]).usage_metadata, "total_cost": 0}


def test_invoke_and_stream_share_entries():
    cache, model = setup()
    model.cache = cache
    answer = model.invoke(Q)
    assert model.calls == 1
    assert text(list(cache.stream(model, Q))) == answer.content and model.calls == 1
    cache2, model2 = setup()
    list(cache2.stream(model2, Q))
    model2.cache = cache2
    assert model2.invoke(REWORDED).response_metadata["costopt_cache"]["hit"]
    assert model2.calls == 1


def test_async_stream_replays_and_stores():
    cache, model = setup()

    async def run() -> tuple[list, list]:
        first = [c async for c in cache.astream(model, Q)]
        again = [c async for c in cache.astream(model, REWORDED)]
        return first, again

    first, again = asyncio.run(run())
    assert model.calls == 1 and text(again) == text(first) and len(again) > 2


def test_abandoned_stream_is_not_stored():
    cache, model = setup()
    stream = cache.stream(model, Q)
    next(stream)
    stream.close()
    assert cache.stats["updates"] == 0


def test_cost_handler_books_a_streamed_hit_as_a_saving():
    cache, model = setup()
    list(cache.stream(model, Q))
    handler = CostCallbackHandler()
    list(cache.stream(model, REWORDED, {"callbacks": [handler]}))
    assert handler.total_saved > 0 and handler.total_cost == 0


def test_a_failing_cache_streams_from_the_model(caplog):
    cache, model = setup()

    def broken(*args: Any) -> None:
        raise RuntimeError("store down")

    cache.lookup = broken  # type: ignore[method-assign]
    assert text(list(cache.stream(model, Q)))
    assert model.calls == 1


def test_replayed_chunks_sum_to_the_message_with_tool_calls():
    message = AIMessage(
        "Calling the weather tool now.",
        tool_calls=[{"name": "weather", "args": {"city": "Paris"}, "id": "c1"}],
        usage_metadata={"input_tokens": 3, "output_tokens": 5, "total_tokens": 8},
    )
    chunks = replay_chunks(message)
    merged = sum(chunks[1:], chunks[0])
    assert merged.content == message.content
    assert merged.tool_calls[0]["args"] == {"city": "Paris"}
    assert merged.usage_metadata["total_tokens"] == 8


class Tokens(BaseCallbackHandler):
    def __init__(self) -> None:
        self.chunks: list[Any] = []
        self.params: list[Any] = []
        self.errors = 0

    def on_chat_model_start(self, serialized: Any, messages: Any, **kwargs: Any) -> None:
        self.params.append(kwargs.get("invocation_params"))

    def on_llm_new_token(self, token: str, *, chunk: Any = None, **kwargs: Any) -> None:
        self.chunks.append(chunk)

    def on_llm_error(self, error: BaseException, **kwargs: Any) -> None:
        self.errors += 1


def test_a_replayed_hit_reports_each_chunk_to_streaming_callbacks():
    cache, model = setup()
    list(cache.stream(model, Q))
    tokens = Tokens()
    again = list(cache.stream(model, Q, {"callbacks": [tokens], "run_name": "answer"}))
    assert len(tokens.chunks) == len(again)
    assert all(isinstance(c, ChatGenerationChunk) for c in tokens.chunks)
    assert [c.message.content for c in tokens.chunks] == [c.content for c in again]
    assert tokens.params[0]["model_name"] == "gpt-4o-mini"  # as model.stream reports it


def test_a_hit_abandoned_by_the_consumer_ends_its_run():
    cache, model = setup()
    list(cache.stream(model, Q))
    tokens = Tokens()
    stream = cache.stream(model, Q, {"callbacks": [tokens]})
    next(stream)
    stream.close()
    assert tokens.errors == 1  # the run is closed, as LangChain closes an abandoned stream


def test_any_langchain_cache_serves_streams():
    cache = InMemoryCache()
    model = CountingModel(model_name="gpt-4o-mini")
    first = text(list(cache_stream.stream(cache, model, Q)))
    assert text(list(cache_stream.stream(cache, model, Q))) == first and model.calls == 1


def test_the_helper_leaves_a_router_to_its_own_cache():
    cache = SemanticLLMCache(HashingEmbeddings(), similarity_threshold=0.9)
    router = RouterChatModel(
        models={"a": CountingModel(model_name="gpt-4o-mini"), "b": CountingModel(model_name="o3")},
        strategy=lambda text: "a",
        cache=cache,
    )
    list(cache.stream(router, Q))
    assert (cache.stats["misses"], cache.stats["updates"]) == (1, 1)
    assert text(list(cache.stream(router, REWORDED))) and router.models["a"].calls == 1
    # A router caching elsewhere: this cache looks up and stores around it.
    other = SemanticLLMCache(HashingEmbeddings(), similarity_threshold=0.9)
    list(other.stream(router, "Another question entirely, please"))
    assert other.stats["updates"] == 1 and cache.stats["updates"] == 2


def _usage_less(text: str) -> Any:
    from itertools import cycle

    from langchain_core.language_models import GenericFakeChatModel

    class Named(GenericFakeChatModel):
        model_name: str = "cs-usage-less"

    return Named(messages=cycle([AIMessage(content=text)]))


def test_a_hit_of_an_answer_without_usage_streams_back_and_is_booked_as_a_hit() -> None:
    # LangChain marks such a hit {"total_cost": 0}, which a chunk refuses: the stream
    # must still come back (it raised a ValidationError), for any cache and the router.
    set_price("cs-usage-less", input_per_token=1e-6, output_per_token=2e-6)
    for cache in (InMemoryCache(), SemanticLLMCache(HashingEmbeddings(dim=256))):
        model = _usage_less("Paris is the capital of France.")
        model.invoke("capital of France?", config={"callbacks": []})
        handler = CostCallbackHandler()
        streamed = list(
            stream_through(cache, model, "capital of France?", {"callbacks": [handler]})
        )
        assert "".join(str(c.content) for c in streamed) == "Paris is the capital of France."
    router = RouterChatModel(
        models={"cheap": _usage_less("Bonjour"), "strong": _usage_less("Bonjour")},
        cache=InMemoryCache(),
    )
    router.invoke("Say hi")
    handler = CostCallbackHandler()
    assert "".join(str(c.content) for c in router.stream("Say hi", {"callbacks": [handler]})) == (
        "Bonjour"
    )
    totals = handler.summary()
    assert totals.calls == 0 and sum(m.cache_hits for m in totals.models.values()) == 1

    async def astream() -> str:
        return "".join([str(c.content) async for c in router.astream("Say hi")])

    assert asyncio.run(astream()) == "Bonjour"
