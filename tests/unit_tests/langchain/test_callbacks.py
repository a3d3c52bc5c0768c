"""CostCallbackHandler and cost_tracker on real LangChain runs with fake models."""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
import threading
import uuid
import warnings
from types import MappingProxyType
from typing import Any

import pytest
from langchain_core.caches import InMemoryCache
from langchain_core.callbacks import CallbackManager, CallbackManagerForLLMRun
from langchain_core.globals import get_llm_cache, set_llm_cache
from langchain_core.language_models import BaseChatModel, GenericFakeChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage, HumanMessage
from langchain_core.outputs import (
    ChatGeneration,
    ChatGenerationChunk,
    ChatResult,
    Generation,
    LLMResult,
)

from costopt_core.accounting import BudgetWarning, CostHandlerBase
from costopt_core.budget_gate import DowngradeSignal
from costopt_core.decision import RouteDecision
from costopt_core.ledger import CostLedger, CostRecord
from costopt_core.metadata_keys import BATCH_KEY, COMPRESSED_TOKENS_KEY
from langchain_costopt import (
    BudgetExceededError,
    CostCallbackHandler,
    RouterChatModel,
    cost_tracker,
    set_price,
)
from langchain_costopt.simulated import SimulatedChatModel

# Made-up models with round prices (USD per token): every expected figure is exact.
set_price("cb-cheap", input_per_token=1e-6, output_per_token=2e-6)
set_price("cb-strong", input_per_token=1e-5, output_per_token=3e-5)
set_price(
    "cb-reasoner",
    input_per_token=2e-6,
    output_per_token=8e-6,
    cache_read_per_token=5e-7,
    cache_write_per_token=2.5e-6,
    reasoning_per_token=1e-5,
)

USAGE = {
    "input_tokens": 1000,
    "output_tokens": 500,
    "total_tokens": 1500,
    "input_token_details": {"cache_read": 600, "cache_creation": 100},
    "output_token_details": {"reasoning": 300},
}
# plain input 300 x 2e-6 + read 600 x 5e-7 + write 100 x 2.5e-6
# + plain output 200 x 8e-6 + reasoning 300 x 1e-5
REASONER_COST = 300 * 2e-6 + 600 * 5e-7 + 100 * 2.5e-6 + 200 * 8e-6 + 300 * 1e-5


def _fake(model: str, n: int = 1, usage: dict[str, Any] | None = None) -> GenericFakeChatModel:
    messages = [
        AIMessage(
            content=f"answer {i}",
            usage_metadata=usage or USAGE,
            response_metadata={"model_name": model},
        )
        for i in range(n)
    ]
    return GenericFakeChatModel(messages=iter(messages))


def _cost(model: str, message: BaseMessage) -> float:
    usage = message.usage_metadata
    prices = {"cb-cheap": (1e-6, 2e-6), "cb-strong": (1e-5, 3e-5)}[model]
    return usage["input_tokens"] * prices[0] + usage["output_tokens"] * prices[1]


def _router(**kwargs: Any) -> RouterChatModel:
    return RouterChatModel(
        models={
            "simple": SimulatedChatModel(model_name="cb-cheap"),
            "complex": SimulatedChatModel(model_name="cb-strong"),
        },
        **{"strategy": "rules", **kwargs},
    )


# -- usage and prices --------------------------------------------------------------------


def test_batch_and_compression_marks_are_billed_and_shown_as_their_own_savings() -> None:
    # An answer marked as returned by a batch API is billed at the batch rate (half), and
    # a prompt whose compressor marked 400 removed tokens shows that saving on its line.
    plain_usage = {"input_tokens": 1000, "output_tokens": 500, "total_tokens": 1500}
    answer = AIMessage(
        content="done",
        usage_metadata=plain_usage,  # type: ignore[arg-type]
        response_metadata={"model_name": "cb-cheap", BATCH_KEY: True},
    )
    handler = CostCallbackHandler()
    prompt = [HumanMessage("summarise", response_metadata={COMPRESSED_TOKENS_KEY: 400})]
    GenericFakeChatModel(messages=iter([answer])).invoke(prompt, config={"callbacks": [handler]})
    full = 1000 * 1e-6 + 500 * 2e-6
    assert handler.total_cost == pytest.approx(full / 2, rel=1e-12)
    data = handler.to_dict()
    assert data["saved_batch_usd"] == pytest.approx(full / 2, rel=1e-12)
    assert data["saved_compression_usd"] == pytest.approx(400 * 1e-6, rel=1e-12)
    assert data["total_saved"] == pytest.approx(full / 2 + 400e-6, rel=1e-12)
    assert "batch" in handler.report() and "compression" in handler.report()


def test_exact_dollars_with_cached_input_and_reasoning_tokens() -> None:
    handler = CostCallbackHandler()
    _fake("cb-reasoner").invoke("hi", config={"callbacks": [handler]})
    assert handler.total_cost == pytest.approx(REASONER_COST, rel=1e-12)
    totals = handler.summary().models["cb-reasoner"]
    assert (totals.calls, totals.input_tokens, totals.output_tokens) == (1, 1000, 500)
    assert (totals.cache_read_tokens, totals.cache_write_tokens, totals.reasoning_tokens) == (
        600,
        100,
        300,
    )
    # Not routed, no plugin cache: the only saving is the provider's prompt cache, 1000
    # input tokens at 2e-6 against 300 plain + 600 read + 100 written, shown on its line.
    provider_cache = 1000 * 2e-6 - (300 * 2e-6 + 600 * 5e-7 + 100 * 2.5e-6)
    assert handler.total_saved == pytest.approx(provider_cache, rel=1e-9)
    data = handler.to_dict()
    assert data["saved_provider_cache_usd"] == pytest.approx(provider_cache, rel=1e-9)
    assert data["saved_routing_usd"] == data["saved_cache_usd"] == 0.0


def test_model_name_from_invocation_params_when_the_response_has_none() -> None:
    handler = CostCallbackHandler()
    run_id = uuid.uuid4()
    handler.on_chat_model_start(
        {}, [[HumanMessage("hi")]], run_id=run_id, invocation_params={"model_name": "cb-cheap"}
    )
    message = AIMessage(
        "x", usage_metadata={"input_tokens": 100, "output_tokens": 10, "total_tokens": 110}
    )
    handler.on_llm_end(LLMResult(generations=[[ChatGeneration(message=message)]]), run_id=run_id)
    assert handler.summary().models["cb-cheap"].calls == 1
    assert handler.total_cost == pytest.approx(100e-6 + 20e-6)


def test_llm_output_token_usage_is_the_fallback() -> None:
    handler = CostCallbackHandler()
    result = LLMResult(
        generations=[[Generation(text="a")], [Generation(text="b")]],
        llm_output={
            "model_name": "cb-strong",
            "token_usage": {"prompt_tokens": 40, "completion_tokens": 10},
        },
    )
    handler.on_llm_end(result, run_id=uuid.uuid4())
    assert handler.summary().calls == 1  # the run's usage, once
    assert handler.total_cost == pytest.approx(40 * 1e-5 + 10 * 3e-5)


def test_every_generation_of_a_result_is_counted() -> None:
    handler = CostCallbackHandler()
    gens = [
        [
            ChatGeneration(
                message=AIMessage(
                    "a",
                    usage_metadata={"input_tokens": 10, "output_tokens": 1, "total_tokens": 11},
                    response_metadata={"model_name": "cb-cheap"},
                )
            )
        ],
        [
            ChatGeneration(
                message=AIMessage(
                    "b",
                    usage_metadata={"input_tokens": 20, "output_tokens": 2, "total_tokens": 22},
                    response_metadata={"model_name": "cb-strong"},
                )
            )
        ],
    ]
    handler.on_llm_end(LLMResult(generations=gens), run_id=uuid.uuid4())
    assert handler.summary().calls == 2
    assert handler.total_cost == pytest.approx(10e-6 + 2e-6 + 20e-5 + 6e-5)


def test_n_choices_of_one_prompt_repeat_the_usage_and_count_once() -> None:
    handler = CostCallbackHandler()
    usage = {"input_tokens": 10, "output_tokens": 4, "total_tokens": 14}
    row = [
        ChatGeneration(
            message=AIMessage(t, usage_metadata=usage, response_metadata={"model_name": "cb-cheap"})
        )
        for t in ("one", "two")
    ]
    handler.on_llm_end(LLMResult(generations=[row]), run_id=uuid.uuid4())
    assert handler.summary().calls == 1


def test_unpriced_model_reads_unpriced_and_warns_once(caplog: pytest.LogCaptureFixture) -> None:
    model = f"cb-unknown-{uuid.uuid4().hex[:6]}"
    handler = CostCallbackHandler()
    with caplog.at_level(logging.WARNING):
        _fake(model, n=2).invoke("a", config={"callbacks": [handler]})
    with caplog.at_level(logging.WARNING):
        handler_b = CostCallbackHandler()
        _fake(model).invoke("b", config={"callbacks": [handler_b]})
    assert len([r for r in caplog.records if model in r.getMessage()]) == 1
    data = handler.to_dict()
    assert data["unpriced_models"] == [model]
    assert data["models"][model]["cost_usd"] is None
    assert data["models"][model]["input_tokens"] == 1000
    assert "unpriced" in handler.report()


def test_streaming_counts_usage_once() -> None:
    model = SimulatedChatModel(model_name="cb-cheap")
    expected = model.invoke("tell me about streaming")
    with cost_tracker() as tracker:
        chunks = list(model.stream("tell me about streaming"))
    assert len(chunks) > 2
    totals = tracker.summary().models["cb-cheap"]
    assert totals.calls == 1
    assert totals.input_tokens == expected.usage_metadata["input_tokens"]
    assert totals.output_tokens == expected.usage_metadata["output_tokens"]
    assert tracker.total_cost == pytest.approx(_cost("cb-cheap", expected))


async def test_async_invoke_and_astream_are_tracked() -> None:
    model = SimulatedChatModel(model_name="cb-cheap")
    with cost_tracker() as tracker:
        reply = await model.ainvoke("async question")
        chunks = [c async for c in model.astream("async question")]
    assert chunks
    assert tracker.summary().calls == 2
    assert tracker.total_cost == pytest.approx(2 * _cost("cb-cheap", reply))


async def test_concurrent_async_calls_are_all_counted() -> None:
    import asyncio

    model = SimulatedChatModel(model_name="cb-cheap")
    reply = await model.ainvoke("same question")
    with cost_tracker() as tracker:
        await asyncio.gather(*(model.ainvoke("same question") for _ in range(200)))
    assert tracker.summary().calls == 200
    assert tracker.total_cost == pytest.approx(200 * _cost("cb-cheap", reply))


def test_thread_pool_batch_is_counted_once_per_input() -> None:
    model = SimulatedChatModel(model_name="cb-cheap")
    with cost_tracker() as tracker:
        model.batch([f"question {i}" for i in range(64)], config={"max_concurrency": 8})
    assert tracker.summary().calls == 64


# -- cache hits ---------------------------------------------------------------------------


def test_model_cache_hit_is_saved_not_spent() -> None:
    model = SimulatedChatModel(model_name="cb-strong", cache=InMemoryCache())
    with cost_tracker() as tracker:
        first = model.invoke("what is a cache?")
        second = model.invoke("what is a cache?")
    assert second.content == first.content
    summary = tracker.summary()
    assert summary.calls == 1 and summary.cache_hits == 1
    assert tracker.total_cost == pytest.approx(_cost("cb-strong", first))
    assert tracker.total_saved == pytest.approx(_cost("cb-strong", first))


def test_global_llm_cache_hit_through_the_router() -> None:
    previous = get_llm_cache()
    set_llm_cache(InMemoryCache())
    try:
        router = _router()
        with cost_tracker(baseline_model="cb-strong") as tracker:
            first = router.invoke("请翻译: good morning")
            router.invoke("请翻译: good morning")
    finally:
        set_llm_cache(previous)
    summary = tracker.summary()
    cheap = summary.models["cb-cheap"]
    assert (cheap.calls, cheap.cache_hits) == (1, 1)
    cost = _cost("cb-cheap", first)
    routing_saving = _cost("cb-strong", first) - cost
    assert tracker.total_cost == pytest.approx(cost)
    assert tracker.total_saved == pytest.approx(routing_saving + cost)


def test_semantic_cache_hit_through_the_router_is_a_saving() -> None:
    from langchain_costopt import HashingEmbeddings, SemanticLLMCache

    router = _router()
    router.cache = SemanticLLMCache(HashingEmbeddings(dim=256), similarity_threshold=0.9)
    with cost_tracker() as tracker:
        first = router.invoke("请翻译: see you tomorrow")
        second = router.invoke("请翻译: see you tomorrow")
    assert second.response_metadata["costopt_cache"]["hit"] is True
    summary = tracker.summary()
    assert (summary.calls, summary.cache_hits) == (1, 1)
    cost = _cost("cb-cheap", first)
    assert tracker.total_cost == pytest.approx(cost)
    # The hit saved what the cheap tier would have charged, on top of the routing saving.
    routing_saving = _cost("cb-strong", first) - cost
    assert tracker.total_saved == pytest.approx(routing_saving + cost)


def test_semantic_cache_marker_counts_a_hit_once() -> None:
    handler = CostCallbackHandler()
    hit = {"hit": True, "similarity": 0.95, "saved_usd": 0.5, "model": "cb-strong"}
    with_usage = AIMessage(
        "cached",
        usage_metadata={
            "input_tokens": 100,
            "output_tokens": 10,
            "total_tokens": 110,
            "total_cost": 0,
        },
        response_metadata={"costopt_cache": hit},
    )
    handler.on_llm_end(
        LLMResult(generations=[[ChatGeneration(message=with_usage)]]), run_id=uuid.uuid4()
    )
    no_usage = ChatGeneration(message=AIMessage("cached"), generation_info={"costopt_cache": hit})
    handler.on_llm_end(LLMResult(generations=[[no_usage]]), run_id=uuid.uuid4())
    # A marker without the cache's figure (e.g. an unpriced hit): priced from the usage.
    unpriced_hit = {"hit": True, "similarity": 0.95, "saved_usd": None, "model": "cb-strong"}
    with_usage.response_metadata = {"costopt_cache": unpriced_hit}
    handler.on_llm_end(
        LLMResult(generations=[[ChatGeneration(message=with_usage)]]), run_id=uuid.uuid4()
    )
    summary = handler.summary()
    assert summary.cache_hits == 3 and summary.calls == 0
    assert handler.total_cost == 0.0
    # The cache's figure is the hit's saving (the same number as cache.stats); only a
    # hit without one is priced here from its usage, by the same rule.
    assert handler.total_saved == pytest.approx(0.5 + 0.5 + 100e-5 + 10 * 3e-5)


# -- routing ------------------------------------------------------------------------------


def test_routing_savings_against_the_most_expensive_tier() -> None:
    router = _router()
    with cost_tracker() as tracker:
        reply = router.invoke("请翻译: hello world")
    assert reply.response_metadata["routing"]["tier"] == "simple"
    summary = tracker.summary()
    assert summary.models["cb-cheap"].tiers == {"simple": 1}
    expected = _cost("cb-strong", reply) - _cost("cb-cheap", reply)
    assert tracker.total_saved == pytest.approx(expected)
    assert tracker.to_dict()["baseline_cost"] == pytest.approx(_cost("cb-strong", reply))


def test_router_batch_runs_are_tracked_per_input() -> None:
    router = _router()
    with cost_tracker(baseline_model="cb-strong") as tracker:
        replies = router.batch(["请翻译 one", "请分析并比较这两种架构设计", "请翻译 two"])
    summary = tracker.summary()
    assert summary.models["cb-cheap"].tiers == {"simple": 2}
    assert summary.models["cb-strong"].tiers == {"complex": 1}
    expected_cost = sum(_cost(r.response_metadata["routing"]["model"], r) for r in replies)
    assert tracker.total_cost == pytest.approx(expected_cost)


class _RejectCheapAnswers:
    """A cascade: start cheap, reject every cheap answer."""

    def route(self, text: str) -> RouteDecision:
        return RouteDecision("simple", 0.1, "cascade: cheap first")

    def accept(self, text: str, answer: str, tier: str) -> bool:
        return tier != "simple"


def test_rejected_cascade_attempts_are_spend() -> None:
    router = _router(strategy=_RejectCheapAnswers())
    cheap_reply = SimulatedChatModel(model_name="cb-cheap").invoke("a cascade question")
    with cost_tracker() as tracker:
        reply = router.invoke("a cascade question")
    assert reply.response_metadata["routing"]["escalated_from"] == ["simple"]
    summary = tracker.summary()
    assert summary.models["cb-cheap"].cascade_attempts == 1
    assert summary.models["cb-strong"].calls == 1
    attempt_cost = _cost("cb-cheap", cheap_reply)
    assert tracker.total_cost == pytest.approx(attempt_cost + _cost("cb-strong", reply))
    assert tracker.total_saved == pytest.approx(-attempt_cost)


# -- budgets ------------------------------------------------------------------------------


def test_raise_before_the_over_budget_call() -> None:
    usage = {"input_tokens": 1000, "output_tokens": 500, "total_tokens": 1500}
    model = _fake("cb-cheap", n=3, usage=usage)  # 0.002 per call
    # The fake names no model and sets no max_tokens: its calls are reserved at the given
    # estimate (else at 4,096 output tokens once its answers name cb-cheap).
    handler = CostCallbackHandler(budget_usd=0.005, call_estimate_usd=0.002)
    for _ in range(2):
        model.invoke("x", config={"callbacks": [handler]})
    with pytest.raises(BudgetExceededError):
        model.invoke("x", config={"callbacks": [handler]})
    assert handler.total_cost == pytest.approx(0.004)
    assert handler.summary().calls == 2
    # The refused call never reached the model: its third answer is still unread.
    assert model.invoke("x").content == "answer 2"


async def test_raise_in_async_calls_too() -> None:
    handler = CostCallbackHandler(budget_usd=0.0)
    with pytest.raises(BudgetExceededError):
        await SimulatedChatModel(model_name="cb-cheap").ainvoke(
            "x", config={"callbacks": [handler]}
        )
    assert handler.summary().calls == 0


def test_budget_also_guards_plain_text_llms() -> None:
    from langchain_core.language_models import FakeListLLM

    handler = CostCallbackHandler(budget_usd=0.0)
    with pytest.raises(BudgetExceededError):
        FakeListLLM(responses=["never"]).invoke("x", config={"callbacks": [handler]})
    # An answer without any usage is a call of unknown cost, never a silent $0.
    quiet = CostCallbackHandler()
    FakeListLLM(responses=["fine"]).invoke("x", config={"callbacks": [quiet]})
    data = quiet.to_dict()
    assert data["calls"] == 1 and data["unpriced_models"] == ["unknown-model"]
    assert "unpriced" in quiet.report()


def test_warn_lets_the_call_go_and_warns_once() -> None:
    handler = CostCallbackHandler(budget_usd=0.0, on_budget="warn")
    model = SimulatedChatModel(model_name="cb-cheap")
    with pytest.warns(BudgetWarning):
        model.invoke("first", config={"callbacks": [handler]})
    with warnings.catch_warnings():
        warnings.simplefilter("error", BudgetWarning)
        model.invoke("second", config={"callbacks": [handler]})
    assert handler.summary().calls == 2


def test_downgrade_admits_the_router_on_its_cheapest_tier_and_never_past_the_budget() -> None:
    # At 100 output tokens the strong tier may cost ~$0.0032, the cheap one ~$0.0002.
    router = _router(max_tokens=100)
    hard = "请分析并比较这两种架构设计的优劣"
    handler = CostCallbackHandler(budget_usd=0.001, on_budget="downgrade")
    first = router.invoke(hard, config={"callbacks": [handler]})
    assert first.response_metadata["routing"]["tier"] == "simple"
    assert first.response_metadata["routing"]["reason"] == "budget exceeded: downgraded"
    assert handler.downgrade_requested is True
    streamed = list(router.stream(hard, config={"callbacks": [handler]}))
    assert streamed[0].response_metadata["routing"]["tier"] == "simple"
    with pytest.raises(BudgetExceededError):  # once not even the cheap tier fits
        for _ in range(50):
            router.invoke(hard, config={"callbacks": [handler]})
    assert 0 < handler.total_cost <= 0.001


@pytest.mark.parametrize("path", ["invoke", "ainvoke", "stream", "astream"])
def test_a_router_reserves_the_tier_it_routes_to_not_the_dearest(path: str) -> None:
    # $0.001 holds the cheap tier's maximum (~$0.0002 at 100 output tokens), not the
    # strong one's (~$0.0032): an easy prompt is answered, a hard one refused unasked.
    router = _router(max_tokens=100)
    handler = CostCallbackHandler(budget_usd=0.001, on_budget="raise")
    config: Any = {"callbacks": [handler]}

    def ask(prompt: str) -> Any:
        if path == "invoke":
            return router.invoke(prompt, config=config)
        if path == "ainvoke":
            return asyncio.run(router.ainvoke(prompt, config=config))
        if path == "stream":
            chunks = list(router.stream(prompt, config=config))
        else:
            chunks = asyncio.run(_collect(router.astream(prompt, config=config)))
        return chunks[0]

    easy = ask("请翻译: good morning")
    assert easy.response_metadata["routing"]["tier"] == "simple"
    with pytest.raises(BudgetExceededError):
        ask("请分析并比较这两种架构设计的优劣")
    assert handler.summary().calls == 1 and 0 < handler.total_cost <= 0.001
    assert handler.ledger.reserved_usd == 0.0


@pytest.mark.parametrize("budget", [0.001, 0.01])
def test_a_fallback_reserves_the_dearer_tier_before_asking_it(budget: float) -> None:
    # The cheap tier is down. $0.001 held its maximum, not the strong tier's (~$0.0032):
    # the fallback is refused by the budget before the strong tier is asked; $0.01 holds
    # both and the strong tier answers. Nothing stays reserved either way.
    strong = SimulatedChatModel(model_name="cb-strong")
    router = RouterChatModel(
        models={"simple": SimulatedChatModel(model_name="cb-cheap", fail=True), "complex": strong},
        strategy="rules",
        max_tokens=100,
    )
    handler = CostCallbackHandler(budget_usd=budget, on_budget="raise")
    prompt = "请翻译: good morning"
    if budget < 0.002:
        with pytest.raises(BudgetExceededError):
            router.invoke(prompt, config={"callbacks": [handler]})
        assert handler.total_cost == 0.0
    else:
        reply = router.invoke(prompt, config={"callbacks": [handler]})
        assert reply.response_metadata["routing"]["fallback_from"] == "simple"
        assert 0 < handler.total_cost <= budget
    assert handler.ledger.reserved_usd == 0.0


def test_downgrade_reaches_streams_and_batches_under_cost_tracker() -> None:
    router = _router(max_tokens=100)
    hard = "请分析并比较这两种架构设计的优劣"
    with cost_tracker(budget_usd=0.002, on_budget="downgrade") as tracker:
        streamed = [list(router.stream(hard)), asyncio.run(_collect(router.astream(hard)))]
        replies = router.batch([hard, hard])
        areplies = asyncio.run(router.abatch([hard, hard]))
    assert [chunks[0].response_metadata["routing"]["tier"] for chunks in streamed] == ["simple"] * 2
    assert [r.response_metadata["routing"]["tier"] for r in replies + areplies] == ["simple"] * 4
    assert tracker.summary().calls == 6 and tracker.total_cost <= 0.002


async def _collect(stream: Any) -> list[Any]:
    return [chunk async for chunk in stream]


def test_even_the_first_call_is_checked_against_its_estimated_cost() -> None:
    # No history yet: the call is estimated from its prompt and its model's price.
    handler = CostCallbackHandler(budget_usd=0.0015, on_budget="raise")
    model = SimulatedChatModel(model_name="claude-3-5-sonnet")
    with pytest.raises(BudgetExceededError, match=r"would be exceeded.*next call is estimated"):
        model.invoke("请分析并比较这两种架构设计的优劣", config={"callbacks": [handler]})
    assert handler.total_cost == 0.0
    # The most a call may write is part of its maximum: a capped cheap model fits.
    cheap = SimulatedChatModel(model_name="gpt-4o-mini", max_tokens=200)
    cheap.invoke("请分析并比较这两种架构设计的优劣", config={"callbacks": [handler]})
    assert 0 < handler.total_cost < 0.0015


def test_a_failed_call_releases_its_budget_reservation() -> None:
    handler = CostCallbackHandler(budget_usd=1.0, call_estimate_usd=0.25)
    with pytest.raises(RuntimeError):
        SimulatedChatModel(model_name="cb-cheap", fail=True).invoke(
            "x", config={"callbacks": [handler]}
        )
    assert handler.ledger.reserved_usd == 0.0  # type: ignore[attr-defined]
    assert handler.summary().calls == 0
    assert (handler.budget_usd, handler.on_budget, handler.baseline_model) == (1.0, "raise", None)


def test_daily_budget_ignores_earlier_days_and_shared_ledgers_share_it() -> None:
    ledger = CostLedger()
    for _ in range(10):  # yesterday's spend would exhaust today's limit if it counted
        ledger.record(CostRecord(model="cb-strong", cost_usd=0.002, timestamp=86_400.0))
    one = CostCallbackHandler(ledger=ledger, daily_budget_usd=0.01)
    two = CostCallbackHandler(ledger=ledger, daily_budget_usd=0.01)
    model = SimulatedChatModel(model_name="cb-strong", max_tokens=40)
    model.invoke("first today", config={"callbacks": [one]})
    assert one.total_cost == two.total_cost > 0.02  # totals are the shared ledger's
    calls = 1
    with pytest.raises(BudgetExceededError):
        for _ in range(20):
            model.invoke("again", config={"callbacks": [two]})
            calls += 1
    assert one.summary().calls == 10 + calls
    # Each call reserved the most it could cost: the day's limit held.
    assert 0.007 < one.total_cost - 0.02 <= 0.01


# -- robustness ---------------------------------------------------------------------------


def test_eight_threads_of_a_thousand_events_lose_nothing() -> None:
    handler = CostCallbackHandler()
    usage = {"input_tokens": 4, "output_tokens": 2, "total_tokens": 6}

    def work() -> None:
        for _ in range(1000):
            run_id = uuid.uuid4()
            handler.on_chat_model_start(
                {}, [[HumanMessage("q")]], run_id=run_id, invocation_params={"model": "cb-cheap"}
            )
            message = AIMessage("a", usage_metadata=usage)
            handler.on_llm_end(
                LLMResult(generations=[[ChatGeneration(message=message)]]), run_id=run_id
            )

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    totals = handler.summary().models["cb-cheap"]
    assert (totals.calls, totals.input_tokens, totals.output_tokens) == (8000, 32_000, 16_000)
    assert handler.total_cost == pytest.approx(8000 * (4e-6 + 4e-6), rel=1e-9)


def test_the_same_run_is_never_counted_twice() -> None:
    handler = CostCallbackHandler()
    run_id = uuid.uuid4()
    result = LLMResult(
        generations=[
            [
                ChatGeneration(
                    message=AIMessage(
                        "a",
                        usage_metadata={"input_tokens": 1, "output_tokens": 1, "total_tokens": 2},
                        response_metadata={"model_name": "cb-cheap"},
                    )
                )
            ]
        ]
    )
    handler.on_llm_end(result, run_id=run_id)
    handler.on_llm_end(result, run_id=run_id)
    assert handler.summary().calls == 1


def test_a_run_ended_by_several_threads_at_once_is_counted_once() -> None:
    handler = CostCallbackHandler(budget_usd=1e6)
    message = AIMessage(
        "a",
        usage_metadata={"input_tokens": 1, "output_tokens": 1, "total_tokens": 2},
        response_metadata={"model_name": "cb-cheap"},
    )
    result = LLMResult(generations=[[ChatGeneration(message=message)]])
    run_ids = [uuid.uuid4() for _ in range(200)]
    for run_id in run_ids:
        handler.on_chat_model_start(
            {}, [[HumanMessage("q")]], run_id=run_id, invocation_params={"model": "cb-cheap"}
        )
    start = threading.Barrier(4)

    def end_all() -> None:
        start.wait()
        for run_id in run_ids:
            handler.on_llm_end(result, run_id=run_id)

    threads = [threading.Thread(target=end_all) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert handler.summary().calls == 200
    assert handler.ledger.reserved_usd == 0.0  # every reservation settled


class _Wrapper(BaseChatModel):
    """A wrapper that delegates through a child run (as some integrations do)."""

    inner: BaseChatModel

    @property
    def _llm_type(self) -> str:
        return "wrapper"

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        child = CallbackManager(
            handlers=run_manager.handlers if run_manager else [],
            inheritable_handlers=run_manager.inheritable_handlers if run_manager else [],
            parent_run_id=run_manager.run_id if run_manager else None,
        )
        reply = self.inner.invoke(messages, config={"callbacks": child})
        return ChatResult(generations=[ChatGeneration(message=reply)])


def test_nested_llm_runs_count_once() -> None:
    wrapper = _Wrapper(inner=SimulatedChatModel(model_name="cb-cheap"))
    with cost_tracker() as tracker:
        reply = wrapper.invoke("nested")
    assert tracker.summary().calls == 1
    assert tracker.total_cost == pytest.approx(_cost("cb-cheap", reply))


def test_a_failing_ledger_never_breaks_the_call(caplog: pytest.LogCaptureFixture) -> None:
    class BrokenLedger(CostLedger):
        def record(self, *args: Any, **kwargs: Any) -> None:
            raise ConnectionError("ledger down")

    handler = CostCallbackHandler(ledger=BrokenLedger())
    with caplog.at_level(logging.ERROR):
        reply = SimulatedChatModel(model_name="cb-cheap").invoke(
            "still answered", config={"callbacks": [handler]}
        )
    assert reply.content
    assert "failed to account" in caplog.text


def test_cost_tracker_unregisters_even_when_the_body_raises() -> None:
    model = SimulatedChatModel(model_name="cb-cheap")
    with pytest.raises(KeyError), cost_tracker() as tracker:
        model.invoke("inside")
        raise KeyError("boom")
    model.invoke("outside")
    assert tracker.summary().calls == 1


def test_nested_trackers_each_see_their_calls() -> None:
    model = SimulatedChatModel(model_name="cb-cheap")
    with cost_tracker() as outer:
        model.invoke("one")
        with cost_tracker() as inner:
            model.invoke("two")
        model.invoke("three")
    assert inner.summary().calls == 1
    assert outer.summary().calls == 3


def test_report_json_and_csv(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with cost_tracker(budget_usd=1.0) as tracker:
        reply = _router().invoke("请翻译: report")
    text = tracker.report()
    assert "cb-cheap" in text and "TOTAL" in text and "budget (total)" in text
    assert "routed: simple cb-cheap x1" in text
    data = tracker.to_dict()
    assert data["total_cost"] == pytest.approx(_cost("cb-cheap", reply))
    tracker.to_json(tmp_path / "r.json")
    assert (tmp_path / "r.json").read_text().startswith("{")
    assert tracker.to_csv().splitlines()[-1].startswith("TOTAL")
    assert "CostCallbackHandler(total_cost=" in repr(tracker)


def test_bad_arguments_fail_at_construction() -> None:
    with pytest.raises(ValueError, match="on_budget"):
        CostCallbackHandler(on_budget="explode")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="budget_usd"):
        CostCallbackHandler(budget_usd=-5)
    with pytest.raises(TypeError, match="ledger"):
        CostCallbackHandler(ledger="postgres://")  # type: ignore[arg-type]


def test_a_model_name_doubled_by_stream_merging_is_repaired() -> None:
    handler = CostCallbackHandler()
    message = AIMessage(
        "a",
        usage_metadata={"input_tokens": 100, "output_tokens": 10, "total_tokens": 110},
        response_metadata={"model_name": "cb-cheapcb-cheap"},
    )
    for _ in range(2):  # the second time the name is not in the handler's priced set
        result = LLMResult(generations=[[ChatGeneration(message=message)]])
        handler.on_llm_end(result, run_id=uuid.uuid4())
    assert set(handler.summary().models) == {"cb-cheap"}
    assert handler.total_cost == pytest.approx(2 * (100 * 1e-6 + 10 * 2e-6))


def test_a_nested_llm_run_is_budget_checked_once() -> None:
    class CountingLedger(CostLedger):
        reserves = 0

        def reserve(self, *args: Any, **kwargs: Any) -> Any:
            CountingLedger.reserves += 1
            return super().reserve(*args, **kwargs)

    ledger = CountingLedger()
    wrapper = _Wrapper(inner=SimulatedChatModel(model_name="cb-cheap"))
    with cost_tracker(budget_usd=1.0, ledger=ledger) as tracker:
        wrapper.invoke("nested")
    assert CountingLedger.reserves == 1
    assert tracker.summary().calls == 1
    assert ledger.reserved_usd == 0.0  # the one reservation was settled or released


def test_plain_text_llm_runs_are_tracked_through_on_llm_start() -> None:
    handler = CostCallbackHandler(budget_usd=1.0)
    run_id = uuid.uuid4()
    handler.on_llm_start({}, ["hi"], run_id=run_id, invocation_params={"model_name": "cb-cheap"})
    result = LLMResult(
        generations=[[Generation(text="hello")]],
        llm_output={"token_usage": {"prompt_tokens": 100, "completion_tokens": 10}},
    )
    handler.on_llm_end(result, run_id=run_id)
    assert set(handler.summary().models) == {"cb-cheap"}
    assert handler.total_cost == pytest.approx(100 * 1e-6 + 10 * 2e-6)


def test_handler_takes_the_engine_handler_arguments_and_signals_downgrades() -> None:
    # One argument list for both faces: CostHandlerBase's (CostEventHandler has it too).
    assert (
        inspect.signature(CostCallbackHandler).parameters
        == inspect.signature(CostHandlerBase).parameters
    )
    handler = CostCallbackHandler("cb-strong", 1.0, "downgrade", daily_budget_usd=0.5)
    assert isinstance(handler, DowngradeSignal) and handler.downgrade_requested is False
    assert (handler.baseline_model, handler.budget_usd, handler.on_budget) == (
        "cb-strong",
        1.0,
        "downgrade",
    )
    assert [b.period for b in handler.budgets] == [None, "day"]


# -- calls without usage: costed from their text, marked estimated ---------------------------


class _NoUsageFake(GenericFakeChatModel):
    """A provider that reports no usage (an OpenAI stream without ``stream_usage``)."""

    model_name: str = "gpt-4o-mini"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"model_name": self.model_name}


ANSWER = "The capital of France is Paris, which is also its largest city."


def _no_usage(model: str = "gpt-4o-mini") -> _NoUsageFake:
    return _NoUsageFake(messages=iter([AIMessage(ANSWER)] * 4), model_name=model)


@pytest.mark.parametrize("mode", ["invoke", "stream", "astream"])
def test_a_call_without_usage_is_costed_from_its_text_and_marked_estimated(mode: str) -> None:
    model = _no_usage()
    prompt = [HumanMessage("What is the capital of France?")]
    with cost_tracker() as tracker:
        if mode == "invoke":
            model.invoke(prompt)
        elif mode == "stream":
            assert "".join(str(c.content) for c in model.stream(prompt)) == ANSWER
        else:

            async def consume() -> None:
                async for _ in model.astream(prompt):
                    pass

            asyncio.run(consume())
    (record,) = tracker.ledger.records()
    assert record.model == "gpt-4o-mini" and record.kind == "call"
    assert record.input_tokens > 0 and record.output_tokens > 0
    assert record.cost_usd is not None and record.cost_usd > 0
    assert tracker.total_cost == pytest.approx(record.cost_usd) and tracker.total_cost > 0
    assert record.tags["usage"] == "estimated"
    data = tracker.to_dict()
    assert data["estimated_calls"] == 1 and data["unpriced_calls"] == 0
    assert data["models"]["gpt-4o-mini"]["estimated_calls"] == 1
    assert "estimated: 1 calls" in tracker.report()


def test_estimated_tokens_use_the_model_familys_tokenizer_when_installed() -> None:
    bpe_openai = pytest.importorskip("bpe_openai")
    encode = bpe_openai.get_encoding("o200k_base").encode_ordinary
    with cost_tracker() as tracker:
        _no_usage().invoke([HumanMessage("What is the capital of France?")])
    (record,) = tracker.ledger.records()
    assert record.tags["token_counter"] == "o200k_base"
    assert record.output_tokens == len(encode(ANSWER))
    # The chat format: 3 tokens per message and 3 to prime the reply.
    assert record.input_tokens == len(encode("What is the capital of France?")) + 3 + 3


def test_a_family_without_a_tokenizer_is_estimated_from_its_text() -> None:
    set_price("cb-local-model", input_per_token=1e-6, output_per_token=2e-6)
    with cost_tracker() as tracker:
        _no_usage("cb-local-model").invoke("hello there")
    (record,) = tracker.ledger.records()
    assert record.tags == {"usage": "estimated", "token_counter": "approximate"}
    assert record.cost_usd == pytest.approx(
        record.input_tokens * 1e-6 + record.output_tokens * 2e-6
    )
    assert record.output_tokens > 0


def test_an_unpriced_model_without_usage_is_counted_estimated_and_unpriced() -> None:
    with cost_tracker() as tracker:
        _no_usage("cb-no-such-model-xyz").invoke("hello there")
    data = tracker.to_dict()
    assert (data["estimated_calls"], data["unpriced_calls"]) == (1, 1)
    assert data["unpriced_models"] == ["cb-no-such-model-xyz"]
    report = tracker.report()
    assert "estimated: 1 calls" in report and "unpriced: 1 calls" in report


def test_a_completion_model_without_usage_is_estimated() -> None:
    from langchain_core.language_models import FakeListLLM

    set_price("cb-completion", input_per_token=1e-6, output_per_token=2e-6)
    llm = FakeListLLM(responses=[ANSWER], metadata={"ls_model_name": "cb-completion"})
    with cost_tracker() as tracker:
        llm.invoke("Say something about Paris.")
    (record,) = tracker.ledger.records()
    assert record.model == "cb-completion" and record.tags["usage"] == "estimated"
    assert record.cost_usd is not None and record.cost_usd > 0


def test_a_routed_cache_hit_has_one_saving_in_cache_stats_tracker_and_report() -> None:
    from langchain_costopt import HashingEmbeddings, SemanticLLMCache

    router = _router()
    cache = SemanticLLMCache(HashingEmbeddings(dim=256), similarity_threshold=0.9)
    router.cache = cache
    with cost_tracker() as tracker:
        first = router.invoke("请翻译: see you tomorrow")
        second = router.invoke("请翻译: see you tomorrow")
    marker = second.response_metadata["costopt_cache"]
    (hit,) = [r for r in tracker.ledger.records() if r.kind == "cache_hit"]
    cheap = _cost("cb-cheap", first)
    # The hit saved the call the cheap tier would have made: the same figure everywhere.
    assert hit.saved_usd == pytest.approx(cheap)
    assert cache.stats["saved_usd"] == pytest.approx(hit.saved_usd)
    assert marker["saved_usd"] == pytest.approx(hit.saved_usd)
    data = tracker.to_dict()
    assert data["saved_cache_usd"] == pytest.approx(cache.stats["saved_usd"])
    # Routing saved on the one call actually made, never again on the hit.
    assert data["saved_routing_usd"] == pytest.approx(_cost("cb-strong", first) - cheap)
    assert tracker.total_saved == pytest.approx(data["saved_routing_usd"] + data["saved_cache_usd"])
    assert f"cache {cache.stats['saved_usd']:.6f} USD (1 hits" in tracker.report()


# -- document compression in a RAG chain: the custom event's tokens --------------------

_DOCS = [
    "Paris is the capital of France. It lies on the Seine.",
    "Paris is the capital  of France. It lies on the Seine.",
    "Lyon is known for its food and its silk.",
    "Paris is the capital of France.  It lies on the Seine river.",
]


def _rag_chain(compressor: Any, mark_prompt: bool = False) -> Any:
    from langchain_core.documents import Document
    from langchain_core.prompts import ChatPromptTemplate
    from langchain_core.runnables import RunnableLambda, RunnablePassthrough

    from langchain_costopt.compression import documents_compressed_tokens, marked

    docs = [Document(text) for text in _DOCS]

    def fmt(kept: Any) -> Any:
        return "\n".join(d.page_content for d in kept)

    prompt = ChatPromptTemplate.from_messages([("human", "{context}\n\nQuestion: {question}")])
    context = RunnableLambda(lambda q: compressor.compress_documents(docs, q))
    if mark_prompt:
        # The documented way to carry the saving on the prompt itself, as well.
        def build(inputs: dict[str, Any]) -> Any:
            messages = prompt.invoke(
                {"context": fmt(inputs["kept"]), "question": inputs["question"]}
            ).to_messages()
            return marked(messages, documents_compressed_tokens(inputs["kept"]))

        step: Any = {"kept": context, "question": RunnablePassthrough()} | RunnableLambda(build)
    else:
        step = {"context": context | fmt, "question": RunnablePassthrough()} | prompt
    return step | SimulatedChatModel(model_name="cb-strong")


def _removed(compressor: Any, question: str) -> int:
    from langchain_core.documents import Document

    kept = compressor.compress_documents([Document(t) for t in _DOCS], question)
    return kept[0].metadata[COMPRESSED_TOKENS_KEY]


def test_document_compression_in_a_rag_chain_is_booked_on_its_model_call() -> None:
    from langchain_costopt.compression import ChunkDocumentCompressor

    compressor = ChunkDocumentCompressor()
    removed = _removed(compressor, "capital of France?")
    assert removed > 0
    handler = CostCallbackHandler()
    chain = _rag_chain(compressor)
    chain.invoke("capital of France?", config={"callbacks": [handler]})
    assert handler.to_dict()["saved_compression_usd"] == pytest.approx(removed * 1e-5)
    # Each request books its own removal once; a model call outside them books nothing.
    chain.batch(["capital of France?"] * 3, config={"callbacks": [handler]})
    SimulatedChatModel(model_name="cb-strong").invoke("hi", config={"callbacks": [handler]})
    assert handler.to_dict()["saved_compression_usd"] == pytest.approx(4 * removed * 1e-5)
    assert not handler.summary().calls - 5


async def test_document_compression_in_an_async_rag_chain_is_booked() -> None:
    from langchain_costopt.compression import ChunkDocumentCompressor

    compressor = ChunkDocumentCompressor()
    removed = _removed(compressor, "capital of France?")
    handler = CostCallbackHandler()
    await _rag_chain(compressor).ainvoke("capital of France?", config={"callbacks": [handler]})
    assert handler.to_dict()["saved_compression_usd"] == pytest.approx(removed * 1e-5)


def test_a_prompt_marked_with_the_documents_saving_is_not_counted_twice() -> None:
    from langchain_costopt.compression import ChunkDocumentCompressor

    compressor = ChunkDocumentCompressor()
    removed = _removed(compressor, "capital of France?")
    handler = CostCallbackHandler()
    _rag_chain(compressor, mark_prompt=True).invoke(
        "capital of France?", config={"callbacks": [handler]}
    )
    assert handler.to_dict()["saved_compression_usd"] == pytest.approx(removed * 1e-5)


def test_compressions_without_a_model_call_do_not_pile_up() -> None:
    from langchain_core.documents import Document
    from langchain_core.runnables import RunnableLambda

    from costopt_core.compression_marks import MARKS_MEMORY
    from langchain_costopt.compression import ChunkDocumentCompressor

    compressor = ChunkDocumentCompressor()
    docs = [Document(t) for t in _DOCS]
    handler = CostCallbackHandler()
    retrieve = RunnableLambda(lambda q: compressor.compress_documents(docs, q))
    for _ in range(MARKS_MEMORY + 50):
        retrieve.invoke("capital of France?", config={"callbacks": [handler]})
    # Each run was one request that never called a model: its mark waits, bounded.
    assert 0 < len(handler._compression) <= MARKS_MEMORY
    assert not handler._roots  # every run ended: nothing of their tree is kept


def test_a_routed_answer_without_usage_is_costed_under_the_tier_model_that_answered() -> None:
    # Tiers that report no usage: the call is costed from its text under the model that
    # answered, with its routing saving (it was booked, unpriced, as "router:a|b").
    class Named(GenericFakeChatModel):
        model_name: str = "cb-cheap"

    from itertools import cycle

    router = RouterChatModel(
        models={
            "simple": Named(model_name="cb-cheap", messages=cycle([AIMessage("Bonjour")])),
            "complex": Named(model_name="cb-strong", messages=cycle([AIMessage("long answer")])),
        },
        strategy="rules",
    )
    with cost_tracker() as tracker:
        router.invoke("请翻译: hello")
    data = tracker.to_dict()
    assert list(data["models"]) == ["cb-cheap"]
    assert data["models"]["cb-cheap"]["status"] == "priced"
    assert data["estimated_calls"] == 1 and data["saved_routing_usd"] > 0


def test_the_usual_call_is_recorded_as_the_general_path_records_it() -> None:
    class EagerLedger(CostLedger):  # changes record(): every record is built at once
        def record(self, record: CostRecord, reservation_id: str | None = None) -> None:
            super().record(record, reservation_id)

    answer = AIMessage(
        "ok",
        usage_metadata={
            "input_tokens": 120,
            "output_tokens": 40,
            "total_tokens": 160,
            "input_token_details": {"cache_read": 60},
        },
        response_metadata={"model_name": "cb-cheap"},
    )
    ledgers = (CostLedger(), EagerLedger())
    handlers = [CostCallbackHandler(budget_usd=1.0, ledger=ledger) for ledger in ledgers]
    for handler in handlers:
        model = GenericFakeChatModel(messages=iter([answer] * 3))
        for _ in range(3):
            model.invoke("hi", config={"callbacks": [handler]})
    fast, general = (handler.ledger.records() for handler in handlers)
    assert len(fast) == len(general) == 3
    for a, b in zip(fast, general, strict=True):
        a_data, b_data = a.to_dict(), b.to_dict()
        for key in ("timestamp", "run_id"):
            del a_data[key], b_data[key]
        assert a_data == b_data
        assert str(uuid.UUID(a.run_id)) == a.run_id
    assert handlers[0].report() == handlers[1].report()
    assert handlers[0].budget_status() == handlers[1].budget_status()


@pytest.mark.parametrize("mode", ["stream", "astream"])
def test_an_abandoned_routed_stream_is_priced_on_the_tier_that_answered(mode: str) -> None:
    # The router's run is named after the router ("router:a|b", which has no price): the
    # part streamed before the consumer left is costed on the tier model that streamed it.
    router = _router()
    firsts: list[Any] = []
    with cost_tracker() as tracker:
        if mode == "stream":
            for chunk in router.stream("hi there"):
                firsts.append(chunk)
                break
        else:

            async def first_chunk() -> None:
                async for chunk in router.astream("hi there"):
                    firsts.append(chunk)
                    break

            asyncio.run(first_chunk())
    routing = firsts[0].response_metadata["routing"]
    (record,) = tracker.ledger.records()
    assert record.model == routing["model"] and record.tier == routing["tier"]
    assert record.model in ("cb-cheap", "cb-strong")
    assert record.cost_usd is not None and record.cost_usd > 0
    assert record.tags["usage"] == "estimated"
    assert tracker.total_cost == pytest.approx(record.cost_usd)
    assert tracker.to_dict()["unpriced_calls"] == 0


class _SlowChat(BaseChatModel):
    """Answers after ``delay`` seconds (async), with usage and a model name."""

    model_name: str = "cb-cheap"
    delay: float = 5.0
    max_tokens: int = 100

    @property
    def _llm_type(self) -> str:
        return "slow-chat"

    def _generate(self, messages: list[BaseMessage], stop: Any = None, **kwargs: Any) -> Any:
        usage = {"input_tokens": 10, "output_tokens": 5, "total_tokens": 15}
        metadata = {"model_name": self.model_name}
        message = AIMessage("done", usage_metadata=usage, response_metadata=metadata)
        return ChatResult(generations=[ChatGeneration(message=message)])

    async def _agenerate(self, messages: list[BaseMessage], stop: Any = None, **kwargs: Any) -> Any:
        await asyncio.sleep(self.delay)
        return self._generate(messages, stop)


@pytest.mark.parametrize("routed", [False, True])
def test_a_cancelled_async_call_gives_its_budget_reservation_back(routed: bool) -> None:
    # LangChain ends no run when asyncio.wait_for cancels ainvoke: the reservation was
    # held until it expired, and three such timeouts refused every later call.
    model: Any = _SlowChat()
    if routed:
        model = RouterChatModel(models={"simple": _SlowChat(), "complex": _SlowChat()})
    handler = CostCallbackHandler(budget_usd=0.0015, on_budget="raise")
    config = {"callbacks": [handler]}

    async def calls() -> None:
        for _ in range(6):
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(model.ainvoke("hello", config=config), 0.02)
        assert handler.ledger.reserved_usd == 0.0
        model_now = _SlowChat(delay=0.0)
        await model_now.ainvoke("hello", config=config)  # admitted: nothing is held

    asyncio.run(calls())
    assert handler.summary().calls == 1 and handler.ledger.reserved_usd == 0.0


def test_a_database_ledger_is_written_off_the_event_loop(tmp_path) -> None:
    # A SQLite write lock held by another process stalled the whole event loop for as
    # long (2 s in an audit): a database ledger's events run in LangChain's executor.
    from costopt_core import SQLiteLedger

    loop_thread: list[int] = []
    written_in: list[int] = []

    class WatchedLedger(SQLiteLedger):
        def reserve(self, *args: Any, **kwargs: Any) -> Any:
            written_in.append(threading.get_ident())
            return super().reserve(*args, **kwargs)

    handler = CostCallbackHandler(ledger=WatchedLedger(str(tmp_path / "l.db")), budget_usd=1.0)
    assert handler.run_inline is False
    assert CostCallbackHandler().run_inline is True  # in memory: stays on the loop

    async def call() -> None:
        loop_thread.append(threading.get_ident())
        await _fake("cb-cheap").ainvoke("hello", config={"callbacks": [handler]})

    asyncio.run(call())
    assert written_in and written_in[0] != loop_thread[0]
    assert handler.summary().calls == 1


class _BrokenStream(BaseChatModel):
    """Streams ``chunks`` pieces of text, then fails (``hang``: waits forever instead)."""

    model_name: str = "cb-strong"
    chunks: int = 20
    hang: bool = False

    @property
    def _llm_type(self) -> str:
        return "broken-stream"

    def _generate(self, messages: Any, stop: Any = None, run_manager: Any = None, **kw: Any) -> Any:
        raise AssertionError("only streamed")

    def _stream(self, messages: Any, stop: Any = None, run_manager: Any = None, **kw: Any) -> Any:
        for i in range(self.chunks):
            yield ChatGenerationChunk(message=AIMessageChunk(content=f"token{i} "))
        raise ConnectionError("connection reset")

    async def _astream(
        self, messages: Any, stop: Any = None, run_manager: Any = None, **kw: Any
    ) -> Any:
        for i in range(self.chunks):
            yield ChatGenerationChunk(message=AIMessageChunk(content=f"token{i} "))
        if self.hang:
            await asyncio.sleep(3600)
        raise ConnectionError("connection reset")


def test_a_stream_broken_on_invokes_streaming_path_is_billed_for_what_it_sent() -> None:
    # The path an agent's model call takes: LangChain reports the error without chunks.
    handler = CostCallbackHandler()
    with pytest.raises(ConnectionError):
        _BrokenStream().invoke("summarise " * 50, config={"callbacks": [handler]}, stream=True)
    (record,) = handler.ledger.records()
    assert record.model == "cb-strong" and record.usage.output_tokens > 0
    assert handler.total_cost > 0 and handler.to_dict()["estimated_calls"] == 1


def test_a_stream_cancelled_mid_way_is_billed_for_what_it_sent() -> None:
    handler = CostCallbackHandler()  # no budget: nothing reserved, still counted

    async def cut_short() -> None:
        model = _BrokenStream(hang=True)
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(
                model.ainvoke("summarise", config={"callbacks": [handler]}, stream=True), 0.2
            )

    asyncio.run(cut_short())
    assert handler.summary().calls == 1 and handler.total_cost > 0


def test_a_routers_broken_stream_is_priced_on_the_tier_it_was_routed_to() -> None:
    router = RouterChatModel(
        models={
            "simple": _BrokenStream(model_name="cb-cheap"),
            "complex": _router().models["complex"],
        },
        strategy=lambda text: "simple",
    )
    handler = CostCallbackHandler()
    with pytest.raises(ConnectionError):  # an agent's call: invoke, streaming
        router.invoke("summarise " * 50, config={"callbacks": [handler]}, stream=True)
    (record,) = handler.ledger.records()
    assert record.model == "cb-cheap" and record.cost_usd and record.cost_usd > 0


def test_a_budget_reserves_an_image_as_an_image_not_as_its_url() -> None:
    from costopt_core.tokens import IMAGE_TOKENS_BOUND
    from langchain_costopt.run_quotes import call_quote

    picture = {"type": "image_url", "image_url": {"url": "https://x.test/cat.png"}}
    message = HumanMessage(content=[{"type": "text", "text": "What is this?"}, picture])
    _, tokens, _ = call_quote([[message]], {"model": "gpt-4o"})
    assert IMAGE_TOKENS_BOUND < tokens < IMAGE_TOKENS_BOUND + 40


def test_a_call_refused_by_a_second_budget_leaves_nothing_held_by_the_first() -> None:
    # LangChain stops at the handler that refuses: the one before it never hears of the
    # run again. Its reservation held its budget for 5 minutes, its run stayed open.
    team = CostCallbackHandler(budget_usd=0.01)
    request = CostCallbackHandler(budget_usd=1e-9)
    model = SimulatedChatModel(model_name="cb-cheap")
    for _ in range(50):
        with pytest.raises(BudgetExceededError):
            model.invoke("hello", config={"callbacks": [team, request]})
    assert team.ledger.reserved_usd == 0.0
    model.invoke("hello", config={"callbacks": [team]})
    assert team.summary().calls == 1


class _Streams(BaseChatModel):
    """Streams ten words, the last chunk with the provider's usage (10 in, 10 out)."""

    model_name: str = "cb-strong"

    @property
    def _llm_type(self) -> str:
        return "streams"

    def _generate(self, messages: Any, stop: Any = None, run_manager: Any = None, **kw: Any) -> Any:
        raise AssertionError("only streamed")

    async def _astream(
        self, messages: Any, stop: Any = None, run_manager: Any = None, **kw: Any
    ) -> Any:
        for i in range(10):
            await asyncio.sleep(0)
            usage = (
                {"input_tokens": 10, "output_tokens": 10, "total_tokens": 20} if i == 9 else None
            )
            yield ChatGenerationChunk(
                message=AIMessageChunk(content=f"w{i} ", usage_metadata=usage)  # type: ignore[arg-type]
            )


def test_a_stream_whose_first_chunk_is_awaited_under_a_timeout_is_billed_its_usage() -> None:
    # asyncio.wait_for runs the first __anext__ in a task of its own (Python 3.11): its
    # end is not the stream's. It was booked as the first chunk alone, estimated.
    handler = CostCallbackHandler(budget_usd=1.0)

    async def read() -> int:
        chunks = _Streams().astream("hello", config={"callbacks": [handler]}).__aiter__()
        await asyncio.wait_for(chunks.__anext__(), timeout=5)
        return 1 + len([c async for c in chunks])

    assert asyncio.run(read()) >= 10
    (record,) = handler.ledger.records()
    assert (record.input_tokens, record.output_tokens, record.estimated) == (10, 10, False)
    assert handler.ledger.reserved_usd == 0.0


def test_a_request_the_provider_refused_with_an_http_error_costs_nothing() -> None:
    # LangChain hands the error's HTTP response (status, body) to on_llm_error as an
    # empty message: a rate-limited call was booked as its prompt's cost.
    class Response:
        status_code = 429
        headers = MappingProxyType({"retry-after": "1"})

        def json(self) -> dict[str, Any]:
            return {"error": {"message": "Rate limit reached"}}

    class RateLimitError(Exception):
        response = Response()

    class Limited(SimulatedChatModel):
        def _generate(self, *args: Any, **kwargs: Any) -> Any:
            raise RateLimitError("429")

    handler = CostCallbackHandler(budget_usd=1.0)
    with pytest.raises(RateLimitError):
        Limited(model_name="cb-strong").invoke("summarise " * 500, config={"callbacks": [handler]})
    assert handler.summary().calls == 0 and handler.ledger.reserved_usd == 0.0


def test_a_prompt_with_a_lone_surrogate_is_budgeted_not_failed() -> None:
    handler = CostCallbackHandler(budget_usd=1.0)
    prompt = json.loads('"caf\\udce9 menu"')  # what JSON from a broken client can hold

    class Named(GenericFakeChatModel):
        model_name: str = "cb-cheap"

    Named(messages=iter([AIMessage("ok")])).invoke(prompt, config={"callbacks": [handler]})
    assert handler.summary().calls == 1


def test_a_router_under_cost_tracker_reserves_the_tier_it_routes_to() -> None:
    # The budget comes from the tracker's configure hook, not the call's config.
    router = _router(max_tokens=100)
    with cost_tracker(budget_usd=0.001) as tracker:
        easy = router.invoke("请翻译: good morning")
    assert easy.response_metadata["routing"]["tier"] == "simple"
    assert tracker.summary().calls == 1 and tracker.ledger.reserved_usd == 0.0
