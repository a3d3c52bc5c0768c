"""One saving per cache hit: a chat model named only by LangChain's ``_get_ls_params``
(``ls_model_name``) has its hit priced on that model by ``cache.stats`` and by the cost
handler alike (issue 16, "one truth for savings")."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult

from costopt_core.pricing import set_price
from langchain_costopt import CostCallbackHandler, HashingEmbeddings, SemanticLLMCache

# $1 per 1k input tokens, $2 per 1k output: one call of 1,000 + 500 tokens costs $2.
MODEL = "ls-only-priced-model"
set_price(MODEL, input_per_token=1e-3, output_per_token=2e-3)
USAGE = {"input_tokens": 1000, "output_tokens": 500, "total_tokens": 1500}
ONE_CALL_USD = 2.0
QUESTION = "How do I reset my password?"


class LsOnlyChatModel(BaseChatModel):
    """Names its model only to LangSmith: no model field, no model in its answers'
    metadata or its invocation params."""

    @property
    def _llm_type(self) -> str:
        return "ls-only-chat"

    def _get_ls_params(self, stop: list[str] | None = None, **kwargs: Any) -> Any:
        return {"ls_provider": "acme", "ls_model_type": "chat", "ls_model_name": MODEL}

    def _generate(
        self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None, **kw: Any
    ) -> ChatResult:
        answer = AIMessage("Open the settings page and click reset.", usage_metadata=USAGE)
        return ChatResult(generations=[ChatGeneration(message=answer)])

    def _stream(
        self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None, **kw: Any
    ) -> Any:
        yield ChatGenerationChunk(message=AIMessageChunk("Open the settings page "))
        yield ChatGenerationChunk(message=AIMessageChunk("and click reset.", usage_metadata=USAGE))


def _cache() -> SemanticLLMCache:
    return SemanticLLMCache(HashingEmbeddings(), similarity_threshold=0.9)


@pytest.mark.parametrize("path", ["invoke", "ainvoke", "stream", "astream"])
def test_a_hit_saves_one_figure_in_cache_stats_and_the_tracker(path: str) -> None:
    cache = _cache()
    model = LsOnlyChatModel(cache=cache)
    handler = CostCallbackHandler()
    config: Any = {"callbacks": [handler]}

    def ask() -> Any:
        if path == "invoke":
            return model.invoke(QUESTION, config=config)
        if path == "ainvoke":
            return asyncio.run(model.ainvoke(QUESTION, config=config))
        if path == "stream":
            return list(cache.stream(model, QUESTION, config))[-1]

        async def collect() -> Any:
            return [chunk async for chunk in cache.astream(model, QUESTION, config)][-1]

        return asyncio.run(collect())

    ask()  # a miss: the model answers, paid
    assert handler.total_cost == pytest.approx(ONE_CALL_USD)
    hit = ask()
    assert hit.response_metadata["costopt_cache"]["hit"] is True
    stats = cache.stats
    assert (stats["hits"], stats["unpriced_hits"]) == (1, 0)
    assert stats["saved_usd"] == pytest.approx(ONE_CALL_USD)  # was $0 (unpriced)
    assert handler.total_saved == pytest.approx(stats["saved_usd"])
    assert handler.total_cost == pytest.approx(ONE_CALL_USD)  # the hit spent nothing


def test_a_cache_consulted_outside_a_models_call_still_stores_unnamed() -> None:
    # No chat model is caching (a direct update): nothing to read, the hit is unpriced.
    cache = _cache()
    cache.update("a plain prompt", "[('_type', 'x')]", [ChatGeneration(message=AIMessage("a"))])
    assert cache.lookup("a plain prompt", "[('_type', 'x')]") is not None
    assert cache.stats["unpriced_hits"] == 1 and cache.stats["saved_usd"] == 0.0


@pytest.mark.parametrize("asynchronous", [False, True])
def test_a_plain_llm_cached_inside_a_chat_models_call_is_not_priced_as_that_model(
    asynchronous: bool,
) -> None:
    from langchain_core.language_models.fake import FakeListLLM

    cache = _cache()
    inner = FakeListLLM(responses=["Open the settings page and click reset."] * 4, cache=cache)

    class Outer(LsOnlyChatModel):
        def _generate(
            self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None, **kw: Any
        ) -> ChatResult:
            text = inner.generate([str(messages[-1].content)]).generations[0][0].text
            return ChatResult(
                generations=[ChatGeneration(message=AIMessage(text, usage_metadata=USAGE))]
            )

        async def _agenerate(
            self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None, **kw: Any
        ) -> ChatResult:
            result = await inner.agenerate([str(messages[-1].content)])
            text = result.generations[0][0].text
            return ChatResult(
                generations=[ChatGeneration(message=AIMessage(text, usage_metadata=USAGE))]
            )

    outer = Outer(cache=cache)
    if asynchronous:
        asyncio.run(outer.ainvoke(QUESTION))
        asyncio.run(inner.ainvoke(QUESTION))  # the inner LLM's own answer, from the cache
    else:
        outer.invoke(QUESTION)
        inner.invoke(QUESTION)
    stats = cache.stats
    # The LLM names no model: its hit is unpriced, not the $2 of the chat model around it.
    assert (stats["hits"], stats["unpriced_hits"], stats["saved_usd"]) == (1, 1, 0.0)
    outer.invoke(QUESTION)  # the chat model's own hit is still priced on its model
    assert cache.stats["saved_usd"] == pytest.approx(ONE_CALL_USD)
