"""CostEventHandler: exact dollars from LlamaIndex usage shapes, nested calls counted
once, routing and cache savings, cascade attempts, budgets, registration, threads."""

from __future__ import annotations

import inspect
import logging
import threading
import warnings
from types import SimpleNamespace
from typing import Any, ClassVar

import pytest
from llama_index.core.base.llms.types import ChatMessage, ChatResponse, MessageRole
from llama_index.core.llms import MockLLM
from llama_index.core.llms.callbacks import llm_chat_callback

from costopt_core.accounting import BudgetWarning, CostHandlerBase
from costopt_core.budget_gate import BudgetGate
from costopt_core.decision import RouteDecision
from costopt_core.ledger import BudgetExceededError, CostLedger
from costopt_core.pricing import set_price
from llamaindex_costopt import CostEventHandler, RouterLLM, SemanticCacheLLM
from llamaindex_costopt.handlers import usage_of_response
from llamaindex_costopt.simulated import HashingEmbedding, SimulatedLLM
from tests.unit_tests.llamaindex.fakes import NestingWrapperLLM, recording

PRICES = {"li-handler-cheap": (1e-6, 2e-6), "li-handler-strong": (1e-5, 3e-5)}
for _name, (_inp, _out) in PRICES.items():
    set_price(_name, input_per_token=_inp, output_per_token=_out)


def cost(model: str, inp: int, out: int) -> float:
    price_in, price_out = PRICES[model]
    return inp * price_in + out * price_out


def user(text: str) -> list[ChatMessage]:
    return [ChatMessage(role=MessageRole.USER, content=text)]


def test_prices_a_call_exactly_from_raw_usage(make_handler):
    handler = make_handler()
    response = SimulatedLLM(model_name="li-handler-cheap").chat(user("hello there"))
    usage = response.raw["usage"]
    expected = cost("li-handler-cheap", usage["prompt_tokens"], usage["completion_tokens"])
    assert handler.total_cost == pytest.approx(expected, rel=1e-12)
    row = handler.to_dict()["models"]["li-handler-cheap"]
    assert (row["calls"], row["input_tokens"], row["output_tokens"]) == (
        1,
        usage["prompt_tokens"],
        usage["completion_tokens"],
    )
    assert "li-handler-cheap" in handler.report()


def test_usage_in_additional_kwargs_and_streams_count_once(make_handler):
    handler = make_handler()
    llm = SimulatedLLM(model_name="li-handler-cheap", usage_in="additional_kwargs")
    last = list(llm.stream_complete("count me once please"))[-1]
    extra = last.additional_kwargs
    assert handler.total_cost == pytest.approx(
        cost("li-handler-cheap", extra["prompt_tokens"], extra["completion_tokens"])
    )
    assert handler.to_dict()["calls"] == 1


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        # OpenAI object with cached-token and reasoning details
        (
            SimpleNamespace(
                usage=SimpleNamespace(
                    prompt_tokens=100,
                    completion_tokens=40,
                    total_tokens=140,
                    prompt_tokens_details={"cached_tokens": 60},
                    completion_tokens_details={"reasoning_tokens": 10},
                )
            ),
            (100, 40, 60, 0, 10),
        ),
        # Anthropic dict: input_tokens exclude cache reads / writes
        (
            {
                "usage": {
                    "input_tokens": 20,
                    "output_tokens": 5,
                    "cache_read_input_tokens": 70,
                    "cache_creation_input_tokens": 10,
                }
            },
            (100, 5, 70, 10, 0),
        ),
        # input/output tokens dict
        ({"usage": {"input_tokens": 7, "output_tokens": 3}}, (7, 3, 0, 0, 0)),
    ],
)
def test_usage_shapes(raw, expected):
    response = ChatResponse(message=ChatMessage(role="assistant", content="x"), raw=raw)
    usage = usage_of_response(response)
    assert (
        usage.input_tokens,
        usage.output_tokens,
        usage.cache_read_tokens,
        usage.cache_write_tokens,
        usage.reasoning_tokens,
    ) == expected


class CachedTokensLLM(SimulatedLLM):
    """Reports OpenAI usage with cached prompt tokens."""

    USAGE: ClassVar[dict] = {
        "prompt_tokens": 1000,
        "completion_tokens": 100,
        "prompt_tokens_details": {"cached_tokens": 800},
    }

    @llm_chat_callback()
    def chat(self, messages, **kwargs):
        return ChatResponse(
            message=ChatMessage(role="assistant", content="ok"),
            raw={"model": self.model_name, "usage": self.USAGE},
        )


def test_cached_input_tokens_are_priced_at_the_cache_read_price(make_handler):
    set_price(
        "li-handler-cached", input_per_token=1e-6, output_per_token=2e-6, cache_read_per_token=1e-7
    )
    handler = make_handler()
    CachedTokensLLM(model_name="li-handler-cached").chat(user("q"))
    assert handler.total_cost == pytest.approx(200 * 1e-6 + 800 * 1e-7 + 100 * 2e-6)
    assert handler.to_dict()["cache_read_tokens"] == 800


def test_unpriced_model_is_reported_never_as_zero(make_handler, caplog):
    handler = make_handler()
    with caplog.at_level(logging.WARNING):
        SimulatedLLM(model_name="li-no-such-model-xyz").complete("hi")
    report = handler.to_dict()
    assert report["unpriced_models"] == ["li-no-such-model-xyz"]
    assert report["models"]["li-no-such-model-xyz"]["cost_usd"] is None
    assert "unpriced" in handler.report()


def test_missing_usage_is_estimated_and_tagged(make_handler):
    handler = make_handler()
    SimulatedLLM(model_name="li-handler-cheap", usage_in="none").complete("a b c d e f g h")
    record = handler.ledger.records()[-1]
    assert record.input_tokens > 0 and record.output_tokens > 0
    assert record.tags.get("usage") == "estimated" and handler.total_cost > 0
    assert record.tags.get("token_counter") == "approximate"  # no tokenizer for this family
    assert handler.to_dict()["estimated_calls"] == 1


@pytest.mark.parametrize("mode", ["chat", "stream_chat", "complete", "stream_complete"])
def test_an_answer_without_usage_is_costed_from_its_text(make_handler, mode):
    handler = make_handler()
    llm = SimulatedLLM(model_name="gpt-4o-mini", usage_in="none")
    if mode == "chat":
        answer = llm.chat(user("What is the capital of France?")).message.content
    elif mode == "stream_chat":
        answer = [r for r in llm.stream_chat(user("What is the capital of France?"))][-1].message
        answer = answer.content
    elif mode == "complete":
        answer = llm.complete("What is the capital of France?").text
    else:
        answer = [r for r in llm.stream_complete("What is the capital of France?")][-1].text
    (record,) = handler.ledger.records()
    assert record.model == "gpt-4o-mini" and record.tags["usage"] == "estimated"
    assert record.cost_usd is not None and record.cost_usd > 0
    data = handler.to_dict()
    assert (data["estimated_calls"], data["unpriced_calls"]) == (1, 0)
    assert "estimated: 1 calls" in handler.report()
    bpe_openai = pytest.importorskip("bpe_openai")
    encode = bpe_openai.get_encoding("o200k_base").encode_ordinary
    assert record.tags["token_counter"] == "o200k_base"
    assert record.output_tokens == len(encode(answer))
    chat_format = 3 + 3 if mode.endswith("chat") else 0
    assert record.input_tokens == len(encode("What is the capital of France?")) + chat_format


def test_nested_llm_events_are_counted_once(make_handler):
    handler = make_handler()
    with recording() as events:
        NestingWrapperLLM(inner=SimulatedLLM(model_name="li-handler-cheap")).chat(user("hi"))
    assert len(events.llm_names()) == 4  # two nested pairs reach the handler
    assert handler.to_dict()["calls"] == 1
    assert list(handler.to_dict()["models"]) == ["li-handler-cheap"]


def test_mockllm_chat_nesting_its_completion_counts_once(make_handler):
    handler = make_handler()
    MockLLM(max_tokens=5).chat(user("hello"))
    assert handler.to_dict()["calls"] == 1


def test_routed_calls_record_tier_and_savings_against_the_strongest_tier(make_handler):
    handler = make_handler()
    router = RouterLLM(
        llms={
            "simple": SimulatedLLM(model_name="li-handler-cheap"),
            "complex": SimulatedLLM(model_name="li-handler-strong"),
        },
        strategy="rules",
    )
    usage = router.complete("请翻译: hello").raw["usage"]
    inp, out = usage["prompt_tokens"], usage["completion_tokens"]
    spent = cost("li-handler-cheap", inp, out)
    assert handler.total_cost == pytest.approx(spent)
    assert handler.total_saved == pytest.approx(cost("li-handler-strong", inp, out) - spent)
    record = handler.ledger.records()[-1]
    assert (record.tier, record.baseline_model) == ("simple", "li-handler-strong")


async def test_routed_streams_are_tied_to_their_decision(make_handler):
    handler = make_handler(baseline_model="li-handler-strong")
    router = RouterLLM(
        llms={
            "simple": SimulatedLLM(model_name="li-handler-cheap"),
            "complex": SimulatedLLM(model_name="li-handler-strong"),
        },
        strategy="rules",
    )
    chunks = [c async for c in await router.astream_chat(user("请翻译: hello"))]
    assert chunks[-1].additional_kwargs["routing"]["tier"] == "simple"
    record = handler.ledger.records()[-1]
    assert record.tier == "simple" and record.saved_usd > 0


class RejectCheap:
    def route(self, text):
        return RouteDecision("simple", 0.0, "cascade")

    def accept(self, text, answer, tier):
        return False


def test_cascade_attempts_are_spend_with_negative_savings(make_handler):
    handler = make_handler()
    router = RouterLLM(
        llms={
            "simple": SimulatedLLM(model_name="li-handler-cheap"),
            "complex": SimulatedLLM(model_name="li-handler-strong"),
        },
        strategy=RejectCheap(),
    )
    router.chat(user("hello"))
    kinds = sorted(r.kind for r in handler.ledger.records())
    assert kinds == ["call", "cascade_attempt"]
    attempt = next(r for r in handler.ledger.records() if r.kind == "cascade_attempt")
    assert attempt.model == "li-handler-cheap" and attempt.saved_usd == -attempt.cost_usd
    assert handler.to_dict()["cascade_attempts"] == 1


def test_cache_hits_are_savings_never_spend(make_handler):
    handler = make_handler()
    llm = SemanticCacheLLM(
        SimulatedLLM(model_name="li-handler-cheap"), embed_model=HashingEmbedding()
    )
    first = llm.complete("What is the capital of France?")
    spent = handler.total_cost
    llm.complete("What is the capital of France?")
    usage = first.raw["usage"]
    assert handler.total_cost == pytest.approx(spent)
    assert handler.total_saved == pytest.approx(
        cost("li-handler-cheap", usage["prompt_tokens"], usage["completion_tokens"])
    )
    assert handler.to_dict()["cache_hits"] == 1


@pytest.mark.parametrize("mode", ["chat", "stream_chat", "complete"])
def test_a_hit_of_an_answer_without_usage_saves_what_the_call_cost(make_handler, mode):
    handler = make_handler()
    llm = SemanticCacheLLM(
        SimulatedLLM(model_name="gpt-4o-mini", usage_in="none"), embed_model=HashingEmbedding()
    )
    for _ in range(2):
        if mode == "chat":
            llm.chat(user("What is the capital of France?"))
        elif mode == "stream_chat":
            list(llm.stream_chat(user("What is the capital of France?")))
        else:
            llm.complete("What is the capital of France?")
    call, hit = handler.ledger.records()
    assert call.tags["usage"] == "estimated" and hit.kind == "cache_hit"
    # Counted from the text the same way on both sides: the saving is the call's cost.
    assert (hit.input_tokens, hit.output_tokens) == (call.input_tokens, call.output_tokens)
    assert hit.saved_usd == pytest.approx(call.cost_usd) and hit.saved_usd > 0


class ReasoningLLM(CachedTokensLLM):
    """Reports OpenAI usage with cached prompt tokens and reasoning tokens."""

    USAGE: ClassVar[dict] = {
        **CachedTokensLLM.USAGE,
        "completion_tokens_details": {"reasoning_tokens": 40},
    }


def test_a_hit_keeps_the_cache_read_and_reasoning_tokens_of_the_call(make_handler):
    set_price(
        "li-handler-cached", input_per_token=1e-6, output_per_token=2e-6, cache_read_per_token=1e-7
    )
    handler = make_handler()
    llm = SemanticCacheLLM(
        ReasoningLLM(model_name="li-handler-cached"), embed_model=HashingEmbedding()
    )
    with recording() as events:
        llm.chat(user("q"))
        llm.chat(user("q"))
    (event,) = events.of("CacheHitEvent")
    assert event.usage["input_token_details"]["cache_read"] == 800
    call, hit = handler.ledger.records()
    assert (hit.cache_read_tokens, hit.reasoning_tokens) == (800, 40)
    assert (call.cache_read_tokens, call.reasoning_tokens) == (800, 40)
    assert hit.saved_usd == pytest.approx(call.cost_usd)


def test_register_is_idempotent_and_unregister_stops_counting(make_handler):
    handler = make_handler()
    handler.register()
    llm = SimulatedLLM(model_name="li-handler-cheap")
    llm.complete("one")
    assert handler.to_dict()["calls"] == 1
    handler.unregister()
    llm.complete("two")
    assert handler.to_dict()["calls"] == 1
    with CostEventHandler() as scoped:
        llm.complete("three")
    llm.complete("four")
    assert scoped.to_dict()["calls"] == 1


def test_handlers_sharing_a_ledger_share_totals_and_budget(make_handler):
    ledger = CostLedger()
    a = make_handler(ledger=ledger)
    b = CostEventHandler(ledger=ledger, budget_usd=1.0)
    SimulatedLLM(model_name="li-handler-cheap").complete("hello")
    assert b.total_cost == a.total_cost > 0


# -- budgets -------------------------------------------------------------------------------------


def _router(**options: Any) -> RouterLLM:
    return RouterLLM(
        llms={
            "simple": SimulatedLLM(model_name="li-handler-cheap", **options),
            "complex": SimulatedLLM(model_name="li-handler-strong", **options),
        },
        strategy="rules",
    )


def test_budget_raise_stops_the_call_that_would_overspend(make_handler):
    # Each call reserves the most it can cost (30 output tokens on the strong tier).
    handler = make_handler(budget_usd=0.005, on_budget="raise")
    router = _router(max_tokens=30)
    calls = 0
    with pytest.raises(BudgetExceededError):
        for _ in range(100):
            router.complete("请分析并比较两种架构")
            calls += 1
    assert 0 < calls < 100
    assert 0.004 < handler.total_cost <= 0.005


def test_a_call_estimate_stops_even_the_first_call_that_would_overspend(make_handler):
    # Same argument as CostCallbackHandler: the reservation the next call must fit in.
    handler = make_handler(budget_usd=0.0005, on_budget="raise", call_estimate_usd=0.001)
    with pytest.raises(BudgetExceededError):
        _router().complete("请分析并比较两种架构")
    assert handler.total_cost == 0.0


def test_budget_warn_lets_the_call_go(make_handler):
    make_handler(budget_usd=0.0, on_budget="warn")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        response = _router().complete("hello")
    assert response.text
    assert any(issubclass(w.category, BudgetWarning) for w in caught)


def test_budget_downgrade_admits_the_cheapest_tier_only_while_it_fits(make_handler):
    # The strong tier may cost ~$0.001 at 30 output tokens, the cheap one ~$0.00007.
    handler = make_handler(budget_usd=0.0005, on_budget="downgrade")
    router = _router(max_tokens=30)
    routing = router.complete("请分析并比较两种架构").additional_kwargs["routing"]
    assert handler.downgrade_requested and routing["tier"] == "simple"
    with pytest.raises(BudgetExceededError):
        for _ in range(100):
            router.complete("请分析并比较两种架构")
    assert handler.total_cost <= 0.0005


def test_a_plain_llm_over_budget_is_logged_since_llamaindex_swallows_handler_errors(
    make_handler, caplog
):
    make_handler(budget_usd=0.0, on_budget="raise")
    with caplog.at_level(logging.ERROR, logger="llamaindex_costopt.handlers"):
        assert SimulatedLLM(model_name="li-handler-cheap").complete("hello").text
    assert "wrap the LLM in RouterLLM" in caplog.text


def test_cache_wrapper_enforces_the_budget_on_a_miss_only(make_handler):
    llm = SemanticCacheLLM(
        SimulatedLLM(model_name="li-handler-cheap"), embed_model=HashingEmbedding()
    )
    llm.complete("What is 2 + 2?")
    make_handler(budget_usd=0.0, on_budget="raise")
    assert llm.complete("What is 2 + 2?").additional_kwargs["cache"]["hit"]
    with pytest.raises(BudgetExceededError):
        llm.complete("Something never asked before")


def test_a_cache_miss_reserves_the_wrapped_models_maximum_before_calling_it(make_handler):
    # 8 prompt tokens + 64 output tokens at li-handler-strong's prices: $0.00200 at most.
    strong = SimulatedLLM(model_name="li-handler-strong", max_tokens=64)
    llm = SemanticCacheLLM(strong, embed_model=HashingEmbedding())
    handler = make_handler(budget_usd=0.0015, on_budget="raise")
    with pytest.raises(BudgetExceededError, match="estimated at"):
        llm.complete("Something never asked before, and long enough")
    assert strong.calls == 0 and handler.total_cost == 0.0
    assert handler.ledger.reserved_usd == 0.0


def test_a_cache_over_a_router_leaves_the_reservation_to_the_router(make_handler):
    # The router reserves the maximum of the tier it routes to; the cache must not stand
    # in for it with a guess of its own. $0.0015 holds the cheap tier's maximum, not the
    # strong one's ($0.002).
    cheap = SimulatedLLM(model_name="li-handler-cheap", max_tokens=64)
    strong = SimulatedLLM(model_name="li-handler-strong", max_tokens=64)
    router = RouterLLM(llms={"simple": cheap, "complex": strong}, strategy="rules")
    llm = SemanticCacheLLM(router, embed_model=HashingEmbedding())
    handler = make_handler(budget_usd=0.0015, on_budget="raise")
    with pytest.raises(BudgetExceededError):
        llm.complete("请分析并设计一个分布式系统的架构方案")
    assert cheap.calls == strong.calls == 0
    assert llm.complete("请翻译: a").text
    assert (cheap.calls, strong.calls) == (1, 0)
    assert 0 < handler.total_cost <= 0.0015 and handler.ledger.reserved_usd == 0.0


async def test_concurrent_cache_misses_never_pass_the_budget(make_handler):
    import asyncio

    cheap = SimulatedLLM(model_name="li-handler-cheap", max_tokens=64)
    strong = SimulatedLLM(model_name="li-handler-strong", max_tokens=64)
    router = RouterLLM(llms={"simple": cheap, "complex": strong}, strategy="rules")
    llm = SemanticCacheLLM(router, embed_model=HashingEmbedding())
    handler = make_handler(budget_usd=0.005, on_budget="raise")

    async def one(i: int) -> bool:
        try:
            await llm.acomplete(f"请分析并比较第 {i} 种架构")
        except BudgetExceededError:
            return False
        return True

    answered = await asyncio.gather(*(one(i) for i in range(20)))
    assert 0 < sum(answered) < 20
    assert handler.total_cost <= 0.005
    assert handler.ledger.reserved_usd == 0.0


def test_bad_arguments_are_clear_errors():
    with pytest.raises(ValueError, match="on_budget"):
        CostEventHandler(on_budget="explode")
    with pytest.raises(ValueError, match="budget_usd"):
        CostEventHandler(budget_usd=-1)


def test_threads_lose_no_counts(make_handler):
    handler = make_handler()
    router = _router()

    def work() -> None:
        for i in range(50):
            router.complete(f"请翻译第 {i} 句")

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    report = handler.to_dict()
    assert report["calls"] == 400
    assert report["models"]["li-handler-cheap"]["tiers"] == {"simple": 400}


def test_budget_reservations_are_all_settled_whatever_the_path(make_handler):
    handler = make_handler(budget_usd=10.0)
    cheap = SimulatedLLM(model_name="li-handler-cheap")
    strong = SimulatedLLM(model_name="li-handler-strong")
    router = RouterLLM(llms={"simple": cheap, "complex": strong}, strategy="rules")
    cache_over_router = SemanticCacheLLM(router, embed_model=HashingEmbedding())
    router_over_cache = RouterLLM(
        llms={"simple": SemanticCacheLLM(cheap, embed_model=HashingEmbedding()), "complex": strong},
        strategy="rules",
    )
    failing = RouterLLM(
        llms={
            "simple": SimulatedLLM(model_name="li-handler-cheap", fail=True),
            "complex": SimulatedLLM(model_name="li-handler-cheap", fail=True),
        },
        strategy="rules",
    )
    router.complete("请翻译: a")
    list(router.stream_chat(user("请翻译: b")))
    cache_over_router.complete("请翻译: c")
    cache_over_router.complete("请翻译: c")  # hit
    router_over_cache.complete("请翻译: d")
    router_over_cache.complete("请翻译: d")  # hit inside the router
    RouterLLM(llms={"simple": cheap, "complex": strong}, strategy=RejectCheap()).complete("e")
    with pytest.raises(RuntimeError):
        failing.complete("f")
    assert handler.ledger.reserved_usd == 0.0
    report = handler.to_dict()
    assert (report["calls"], report["cache_hits"], report["cascade_attempts"]) == (5, 2, 1)
    hit_inside_router = [r for r in handler.ledger.records() if r.kind == "cache_hit"]
    assert all(r.saved_usd > 0 for r in hit_inside_router)


async def test_concurrent_async_calls_are_each_tied_to_their_own_decision(make_handler):
    import asyncio

    handler = make_handler(budget_usd=10.0)
    router = _router()
    prompts = ["请翻译: hi", "请分析并比较两种架构"] * 10
    responses = await asyncio.gather(*(router.achat(user(p)) for p in prompts))
    assert [r.additional_kwargs["routing"]["tier"] for r in responses] == ["simple", "complex"] * 10
    records = handler.ledger.records()
    assert sorted((r.model, r.tier) for r in records) == sorted(
        [("li-handler-cheap", "simple")] * 10 + [("li-handler-strong", "complex")] * 10
    )
    assert handler.ledger.reserved_usd == 0.0


def test_handler_takes_the_engine_handler_arguments_and_is_a_budget_gate() -> None:
    # One argument list for both faces: CostHandlerBase's (CostCallbackHandler has it too).
    assert (
        inspect.signature(CostEventHandler).parameters
        == inspect.signature(CostHandlerBase).parameters
    )
    handler = CostEventHandler("li-handler-strong", 1.0, "downgrade", daily_budget_usd=0.5)
    assert isinstance(handler, BudgetGate) and handler.downgrade_requested is False
    assert (handler.baseline_model, handler.budget_usd, handler.on_budget) == (
        "li-handler-strong",
        1.0,
        "downgrade",
    )
    reservation = handler.reserve_call()
    handler.release_call(reservation)
    assert handler.total_cost == 0.0


@pytest.mark.parametrize("cache_at", ["around the router", "around each tier"])
def test_a_routed_cache_hit_has_one_saving_in_cache_stats_tracker_and_report(
    make_handler, cache_at
):
    caches: list[SemanticCacheLLM] = []

    def cached(llm):
        caches.append(
            SemanticCacheLLM(llm, embed_model=HashingEmbedding(), similarity_threshold=0.9)
        )
        return caches[-1]

    tiers = {
        "simple": SimulatedLLM(model_name="li-handler-cheap"),
        "complex": SimulatedLLM(model_name="li-handler-strong"),
    }
    if cache_at == "around the router":
        llm = cached(RouterLLM(llms=tiers, strategy="rules"))
    else:
        llm = RouterLLM(llms={tier: cached(m) for tier, m in tiers.items()}, strategy="rules")
    handler = make_handler()
    llm.chat(user("请翻译: see you tomorrow"))
    llm.chat(user("请翻译: see you tomorrow"))
    call, hit = handler.ledger.records()
    assert (call.kind, call.tier, hit.kind) == ("call", "simple", "cache_hit")
    cheap = cost("li-handler-cheap", call.input_tokens, call.output_tokens)
    strong = cost("li-handler-strong", call.input_tokens, call.output_tokens)
    stats_saved = sum(c.stats["saved_usd"] for c in caches)
    # The hit saved the call the cheap tier would have made: one figure everywhere.
    assert hit.saved_usd == pytest.approx(cheap) and stats_saved == pytest.approx(cheap)
    data = handler.to_dict()
    assert data["saved_cache_usd"] == pytest.approx(stats_saved)
    # Routing saved on the call actually made (wherever the cache sits), not on the hit.
    assert call.saved_usd == pytest.approx(strong - cheap)
    assert data["saved_routing_usd"] == pytest.approx(strong - cheap)
    assert handler.total_saved == pytest.approx(strong)


# -- CustomLLM's async streams: relayed by its sync stream, counted once ----------------------


async def _drain(stream: Any) -> None:
    async for _ in await stream:
        pass


@pytest.mark.parametrize("method", ["astream_complete", "astream_chat"])
async def test_a_custom_llms_async_stream_is_counted_once(make_handler, method):
    # CustomLLM.astream_* returns a generator that calls the (also instrumented) sync
    # stream_* only when iterated, after the async call's span has closed.
    handler = make_handler()
    llm = MockLLM(max_tokens=8)
    if method == "astream_complete":
        await _drain(llm.astream_complete("hello there"))
    else:
        await _drain(llm.astream_chat(user("hello there")))
    assert handler.to_dict()["calls"] == 1
    assert len(handler.ledger.records()) == 1


async def test_concurrent_identical_async_streams_are_each_counted_once(make_handler):
    import asyncio

    handler = make_handler()
    llm = MockLLM(max_tokens=8)
    await asyncio.gather(*(_drain(llm.astream_complete("same prompt")) for _ in range(3)))
    assert handler.to_dict()["calls"] == 3


async def test_a_routed_custom_llm_async_stream_is_one_call_on_its_tier(make_handler):
    handler = make_handler(budget_usd=10.0)
    router = RouterLLM(
        llms={"simple": MockLLM(max_tokens=8), "complex": MockLLM(max_tokens=16)},
        strategy="rules",
    )
    await _drain(router.astream_complete("请翻译: hello"))
    (record,) = handler.ledger.records()
    assert record.tier == "simple"
    assert handler.ledger.reserved_usd == 0.0


# -- a stream stopped early: what it streamed is billed, its reservation released -------------


@pytest.mark.parametrize("wrap", ["plain", "router", "cache", "cache over router"])
def test_a_stream_closed_early_is_billed_for_what_it_streamed(make_handler, wrap):
    def cheap() -> SimulatedLLM:
        return SimulatedLLM(model_name="li-handler-cheap", answer_words=40)

    llm = {
        "plain": lambda: cheap(),
        "router": lambda: _router(),
        "cache": lambda: SemanticCacheLLM(cheap(), embed_model=HashingEmbedding()),
        "cache over router": lambda: SemanticCacheLLM(_router(), embed_model=HashingEmbedding()),
    }[wrap]()
    handler = make_handler(budget_usd=10.0)
    stream = llm.stream_complete("请翻译: a long answer, please")
    for i, _ in enumerate(stream):
        if i == 2:
            break
    stream.close()
    (record,) = handler.ledger.records()
    assert record.model == "li-handler-cheap"
    assert record.cost_usd is not None and record.cost_usd > 0
    assert handler.total_cost == pytest.approx(record.cost_usd)
    assert handler.ledger.reserved_usd == 0.0


async def test_a_custom_llms_async_stream_closed_early_is_counted_once(make_handler):
    import asyncio
    import gc

    handler = make_handler(budget_usd=10.0)
    llm = MockLLM(max_tokens=30)
    stream = await llm.astream_complete("hello there my friend")
    chunks = 0
    async for _ in stream:
        chunks += 1
        if chunks == 3:
            break
    await stream.aclose()
    del stream
    gc.collect()  # the generators inside are closed when collected, by the event loop
    for _ in range(20):
        await asyncio.sleep(0)
    (record,) = handler.ledger.records()
    assert record.output_tokens > 0
    assert handler.ledger.reserved_usd == 0.0


def test_a_call_without_usage_is_costed_with_its_tools_and_its_tool_calls() -> None:
    # A FunctionAgent over llama-index's OpenAI streams without usage: its calls were
    # costed from their message text alone, ~2 % of the input the provider billed
    # (1,100 tokens of tool schemas) and 0 output for an answer that was a tool call.
    from llama_index.core.base.llms.types import ToolCallBlock
    from llama_index.core.instrumentation.events.llm import LLMChatStartEvent
    from llama_index.core.llms import ChatMessage, ChatResponse

    from llamaindex_costopt.handlers import call_text

    schema = {"type": "function", "function": {"name": "lookup", "description": "x " * 400}}
    start = LLMChatStartEvent(
        messages=[ChatMessage(role="user", content="Find the order")],
        additional_kwargs={"tools": [schema]},
        model_dict={},
    )
    call = ToolCallBlock(tool_call_id="c1", tool_name="lookup", tool_kwargs={"order": 42})
    answer = ChatResponse(message=ChatMessage(role="assistant", blocks=[call]))
    usage, _ = call_text(start, answer).usage("gpt-4o")
    assert usage.input_tokens > 400 and usage.output_tokens > 5


def test_a_plain_calls_record_names_its_span_model_and_exact_cost(make_handler):
    # The usual call's record is built when the ledger is read (record_call_later).
    handler = make_handler()
    response = SimulatedLLM(model_name="li-handler-cheap").chat(user("hello there"))
    usage = response.raw["usage"]
    [record] = handler.ledger.records()
    assert (record.model, record.kind, record.tier) == ("li-handler-cheap", "call", None)
    assert (record.input_tokens, record.output_tokens) == (
        usage["prompt_tokens"],
        usage["completion_tokens"],
    )
    assert record.cost_usd == pytest.approx(
        cost("li-handler-cheap", usage["prompt_tokens"], usage["completion_tokens"]), rel=1e-12
    )
    assert record.run_id is not None and record.run_id.startswith("SimulatedLLM.chat-")
    assert handler.summary().calls == 1 and handler.total_cost == record.cost_usd
