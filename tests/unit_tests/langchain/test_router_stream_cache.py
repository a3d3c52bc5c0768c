"""RouterChatModel.stream / astream consult the LLM cache (LangChain's own streams do not):
a cached answer streams back without a model call, a complete streamed answer is stored
under invoke's key, an abandoned or failed one is not."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from langchain_core.caches import InMemoryCache
from langchain_core.callbacks import AsyncCallbackHandler, BaseCallbackHandler
from langchain_core.globals import set_llm_cache
from langchain_core.outputs import LLMResult
from pydantic import PrivateAttr

from langchain_costopt import (
    CostCallbackHandler,
    HashingEmbeddings,
    RouterChatModel,
    SemanticLLMCache,
)
from langchain_costopt.simulated import SimulatedChatModel

pytestmark = pytest.mark.allow_hosts([])

Q = "How do I reset my account password?"
REWORDED = "how do I reset my account password"


class Counted(SimulatedChatModel):
    """Counts the calls that reached the model; ``break_after`` chunks then fails."""

    break_after: int | None = None
    _calls: list[str] = PrivateAttr(default_factory=list)

    def _generate(self, *args: Any, **kwargs: Any) -> Any:
        self._calls.append("generate")
        return super()._generate(*args, **kwargs)

    def _stream(self, *args: Any, **kwargs: Any) -> Iterator[Any]:
        self._calls.append("stream")
        for i, chunk in enumerate(super()._stream(*args, **kwargs)):
            if self.break_after is not None and i >= self.break_after:
                raise ConnectionError("connection reset mid-stream")
            yield chunk

    async def _astream(self, *args: Any, **kwargs: Any) -> Any:
        self._calls.append("astream")
        async for chunk in super()._astream(*args, **kwargs):
            yield chunk


class Tokens(BaseCallbackHandler):
    def __init__(self) -> None:
        self.starts, self.tokens, self.chunks, self.ends = 0, 0, [], []

    def on_chat_model_start(self, serialized: Any, messages: Any, **kwargs: Any) -> None:
        self.starts += 1

    def on_llm_new_token(self, token: str, *, chunk: Any = None, **kwargs: Any) -> None:
        self.tokens += 1
        self.chunks.append(chunk)

    def on_llm_end(self, response: LLMResult, **kwargs: Any) -> None:
        self.ends.append(response)


class AsyncTokens(AsyncCallbackHandler):
    def __init__(self) -> None:
        self.tokens = 0

    async def on_llm_new_token(self, token: str, **kwargs: Any) -> None:
        self.tokens += 1


def router(**kwargs: Any) -> RouterChatModel:
    models = {"cheap": Counted(model_name="gpt-4o-mini"), "strong": Counted(model_name="gpt-4o")}
    return RouterChatModel(models=models, strategy=lambda text: "cheap", **kwargs)


def semantic() -> SemanticLLMCache:
    return SemanticLLMCache(HashingEmbeddings(), similarity_threshold=0.9)


def calls(model: RouterChatModel) -> int:
    return sum(len(m._calls) for m in model.models.values())


def merged(chunks: list[Any]) -> Any:
    return sum(chunks[1:], chunks[0])


@pytest.fixture
def global_cache() -> Iterator[InMemoryCache]:
    cache = InMemoryCache()
    set_llm_cache(cache)
    yield cache
    set_llm_cache(None)


def test_a_streamed_answer_is_stored_and_a_later_stream_is_served_from_the_cache() -> None:
    model = router(cache=semantic())
    first = list(model.stream(Q))
    assert calls(model) == 1 and model.cache.stats["updates"] == 1
    tokens = Tokens()
    again = list(model.stream(REWORDED, {"callbacks": [tokens]}))
    assert calls(model) == 1  # no model was called for the reworded question
    assert len(again) > 2 and merged(again).content == merged(first).content
    # What the user sees on a hit: the routing record up front, the hit marker, the model
    # name and the usage of the original call once the stream is done.
    assert again[0].response_metadata["routing"]["tier"] == "cheap"
    full = merged(again)
    assert full.response_metadata["costopt_cache"]["hit"] is True
    assert full.response_metadata["model_name"] == "gpt-4o-mini"
    assert full.usage_metadata["output_tokens"] == merged(first).usage_metadata["output_tokens"]
    # Streaming users watch the tokens: one per chunk, each with its chunk, one run.
    assert tokens.starts == 1 and tokens.tokens == len(again) and len(tokens.ends) == 1
    assert "".join(c.text for c in tokens.chunks) == full.content


async def test_astream_serves_and_stores_through_the_cache() -> None:
    model = router(cache=semantic())
    first = [c async for c in model.astream(Q)]
    tokens = AsyncTokens()
    again = [c async for c in model.astream(REWORDED, {"callbacks": [tokens]})]
    assert calls(model) == 1 and len(again) > 2
    assert merged(again).content == merged(first).content
    assert merged(again).response_metadata["costopt_cache"]["hit"] is True
    assert tokens.tokens == len(again)


def test_stream_and_invoke_share_entries_under_the_global_cache(
    global_cache: InMemoryCache,
) -> None:
    model = router()
    streamed = merged(list(model.stream(Q)))
    assert len(global_cache._cache) == 1
    assert model.invoke(Q).content == streamed.content and calls(model) == 1
    other = "Which plan includes priority support?"
    answered = model.invoke(other)
    assert merged(list(model.stream(other))).content == answered.content
    assert calls(model) == 2 and len(global_cache._cache) == 2


async def test_astream_and_ainvoke_share_entries() -> None:
    model = router(cache=semantic())
    answered = await model.ainvoke(Q)
    streamed = [c async for c in model.astream(Q)]
    assert merged(streamed).content == answered.content and calls(model) == 1


def test_cache_false_opts_the_stream_out(global_cache: InMemoryCache) -> None:
    model = router(cache=False)
    list(model.stream(Q))
    list(model.stream(Q))
    assert calls(model) == 2 and not global_cache._cache


def test_no_cache_anywhere_streams_as_before() -> None:
    model = router()
    assert merged(list(model.stream(Q))).content and calls(model) == 1


def test_cache_true_without_a_cache_fails_as_invoke_does() -> None:
    model = router(cache=True)
    with pytest.raises(ValueError, match="no cache found"):
        model.invoke(Q)
    with pytest.raises(ValueError, match="no cache found"):
        list(model.stream(Q))


def test_an_abandoned_stream_is_not_stored() -> None:
    model = router(cache=semantic())
    stream = model.stream(Q)
    next(stream)
    stream.close()
    assert model.cache.stats["updates"] == 0
    list(model.stream(Q))
    assert calls(model) == 2  # nothing half-done was served


def test_a_stream_failing_part_way_is_not_stored() -> None:
    cache = semantic()
    model = RouterChatModel(
        models={
            "cheap": Counted(model_name="gpt-4o-mini", break_after=2),
            "strong": Counted(model_name="gpt-4o"),
        },
        strategy=lambda text: "cheap",
        cache=cache,
    )
    with pytest.raises(ConnectionError):
        list(model.stream(Q))
    assert cache.stats["updates"] == 0


def test_one_lookup_and_one_entry_per_streamed_call() -> None:
    cache = semantic()
    model = router(cache=cache)
    list(model.stream(Q))
    assert (cache.stats["misses"], cache.stats["updates"]) == (1, 1)
    # The cache's helper hands the router its own stream: no second lookup or store.
    list(cache.stream(model, "What does the premium plan cost?"))
    assert (cache.stats["misses"], cache.stats["updates"]) == (2, 2)


def test_a_router_inside_a_router_is_cached_once() -> None:
    cache = semantic()
    inner = router()
    outer = RouterChatModel(
        models={"inner": inner, "other": Counted(model_name="gpt-4o")},
        strategy=lambda text: "inner",
        cache=cache,
    )
    list(outer.stream(Q))
    assert (cache.stats["misses"], cache.stats["updates"]) == (1, 1)
    list(outer.stream(Q))
    assert calls(inner) == 1


def test_an_invoke_between_a_streams_chunks_is_its_own_call() -> None:
    cache = semantic()
    model = router(cache=cache)
    other = "What does the premium plan cost?"
    for _ in model.stream(Q):
        model.invoke(other)
    # The stream stored its answer and the invokes (one miss, then hits) theirs: two entries.
    assert cache.stats["updates"] == 2
    assert merged(list(model.stream(other))).content == model.invoke(other).content


def test_a_failing_cache_streams_from_the_models() -> None:
    cache = semantic()

    def broken(*args: Any) -> None:
        raise RuntimeError("store down")

    cache.lookup = broken  # type: ignore[method-assign]
    cache.update = broken  # type: ignore[method-assign]
    model = router(cache=cache)
    assert merged(list(model.stream(Q))).content and calls(model) == 1


def test_the_cost_handler_books_a_streamed_hit_as_a_saving() -> None:
    model = router(cache=semantic())
    handler = CostCallbackHandler()
    list(model.stream(Q, {"callbacks": [handler]}))
    spent = handler.total_cost
    list(model.stream(REWORDED, {"callbacks": [handler]}))
    assert handler.total_cost == spent > 0
    call, hit = handler.accountant.ledger.records()
    assert (call.kind, hit.kind) == ("call", "cache_hit")
    assert hit.cost_usd == 0 and hit.saved_usd == pytest.approx(call.cost_usd)
