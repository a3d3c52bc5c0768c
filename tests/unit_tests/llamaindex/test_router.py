"""RouterLLM: routing of every endpoint, decision visibility, one LLM event pair per
call, fallback, cascade, tools, budgets, metadata."""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

import pytest
from llama_index.core.base.llms.types import ChatMessage, MessageRole
from llama_index.core.callbacks import CallbackManager, CBEventType, LlamaDebugHandler
from llama_index.core.llms.callbacks import llm_completion_callback
from llama_index.core.prompts import PromptTemplate
from llama_index.core.prompts.default_prompts import DEFAULT_TEXT_QA_PROMPT
from llama_index.core.tools import FunctionTool

from costopt_core.decision import RouteDecision
from costopt_core.ledger import BudgetExceededError
from llamaindex_costopt import CostEventHandler, RouterLLM
from llamaindex_costopt.simulated import SimulatedLLM, SimulatedProviderError
from tests.unit_tests.llamaindex.fakes import recording, tiers

SIMPLE = "请翻译这句话: good morning"  # seed rules: simple cue, no complex cue
COMPLEX = "请分析并比较这两种架构的优劣"  # seed rules: 3 complex cues


def user(text: str) -> list[ChatMessage]:
    return [ChatMessage(role=MessageRole.USER, content=text)]


@pytest.fixture
def router() -> RouterLLM:
    return RouterLLM(llms=tiers("cheap-model", "strong-model"), strategy="rules")


@pytest.fixture
def events():
    with recording() as recorder:
        yield recorder


def multiply(a: int, b: int) -> int:
    """Multiply two integers."""
    return a * b


MULTIPLY = FunctionTool.from_defaults(fn=multiply)


# -- routing on every endpoint -----------------------------------------------------------------


def _call_sync(router: RouterLLM, endpoint: str, text: str):
    if endpoint == "chat":
        return router.chat(user(text))
    if endpoint == "complete":
        return router.complete(text)
    if endpoint == "stream_chat":
        return list(router.stream_chat(user(text)))[-1]
    return list(router.stream_complete(text))[-1]


async def _call_async(router: RouterLLM, endpoint: str, text: str):
    if endpoint == "achat":
        return await router.achat(user(text))
    if endpoint == "acomplete":
        return await router.acomplete(text)
    if endpoint == "astream_chat":
        return [c async for c in await router.astream_chat(user(text))][-1]
    return [c async for c in await router.astream_complete(text)][-1]


@pytest.mark.parametrize("endpoint", ["chat", "complete", "stream_chat", "stream_complete"])
@pytest.mark.parametrize(("text", "tier"), [(SIMPLE, "simple"), (COMPLEX, "complex")])
def test_sync_endpoints_route_and_show_the_decision(router, events, endpoint, text, tier):
    response = _call_sync(router, endpoint, text)
    routing = response.additional_kwargs["routing"]
    assert routing["tier"] == tier
    assert routing["model"] == router.llms[tier].metadata.model_name
    assert 0.0 <= routing["score"] <= 1.0 and routing["reason"]
    other = "complex" if tier == "simple" else "simple"
    assert (router.llms[tier].calls, router.llms[other].calls) == (1, 0)
    # One LLM event pair, from the model that answered; the router adds none.
    starts = [
        e
        for e in events.events
        if e.class_name().endswith("StartEvent") and e.class_name().startswith("LLM")
    ]
    assert len(starts) == 1 and starts[0].model_dict["model_name"] == routing["model"]
    assert len([n for n in events.llm_names() if n.endswith("EndEvent")]) == 1
    decision = events.of("RoutingDecisionEvent")
    assert len(decision) == 1 and decision[0].tier == tier and decision[0].model == routing["model"]


@pytest.mark.parametrize("endpoint", ["achat", "acomplete", "astream_chat", "astream_complete"])
@pytest.mark.parametrize(("text", "tier"), [(SIMPLE, "simple"), (COMPLEX, "complex")])
async def test_async_endpoints_route_and_emit_one_event_pair(router, events, endpoint, text, tier):
    response = await _call_async(router, endpoint, text)
    assert response.additional_kwargs["routing"]["tier"] == tier
    assert router.llms[tier].calls == 1
    names = events.llm_names()
    assert len(names) == 2 and names[0].endswith("StartEvent") and names[1].endswith("EndEvent")


def test_stream_chunks_all_carry_the_decision_and_the_text_streams(router):
    chunks = list(router.stream_chat(user(COMPLEX)))
    assert len(chunks) > 3
    assert {c.additional_kwargs["routing"]["tier"] for c in chunks} == {"complex"}
    assert "".join(c.delta for c in chunks) == chunks[-1].message.content


def test_route_previews_the_decision_without_calling_a_model(router):
    assert router.route(SIMPLE).tier == "simple"
    assert router.route(user(COMPLEX)).tier == "complex"
    assert router.llms["simple"].calls == router.llms["complex"].calls == 0


def test_n_tiers_and_custom_strategies():
    llms = tiers("a-model", "b-model", "c-model")
    router = RouterLLM(llms=llms, strategy=lambda text: "medium" if "b" in text else "complex")
    assert router.complete("b please").additional_kwargs["routing"]["model"] == "b-model"
    assert router.complete("other").additional_kwargs["routing"]["model"] == "c-model"
    assert router.tiers == ("simple", "medium", "complex")


def test_latest_user_turn_is_classified_not_the_system_prompt(router):
    messages = [
        ChatMessage(role=MessageRole.SYSTEM, content="分析 比较 评估 设计 架构 推理"),
        ChatMessage(role=MessageRole.USER, content=COMPLEX),
        ChatMessage(role=MessageRole.ASSISTANT, content="..."),
        ChatMessage(role=MessageRole.USER, content=SIMPLE),
    ]
    assert router.chat(messages).additional_kwargs["routing"]["tier"] == "simple"


# -- RAG prompts: the question decides, not the retrieved context --------------------------------


CONTEXT = "本文分析并比较了三种架构，评估其设计与推理的权衡。" * 3


def test_predict_routes_on_query_str_not_on_context(router):
    out = router.predict(DEFAULT_TEXT_QA_PROMPT, context_str=CONTEXT, query_str=SIMPLE)
    assert out.startswith("cheap-model")
    out = router.predict(DEFAULT_TEXT_QA_PROMPT, context_str="plain text", query_str=COMPLEX)
    assert out.startswith("strong-model")


async def test_apredict_and_stream_route_on_query_str(router):
    out = await router.apredict(DEFAULT_TEXT_QA_PROMPT, context_str=CONTEXT, query_str=SIMPLE)
    assert out.startswith("cheap-model")
    tokens = list(router.stream(DEFAULT_TEXT_QA_PROMPT, context_str=CONTEXT, query_str=SIMPLE))
    assert "".join(tokens).startswith("cheap-model")


def test_a_formatted_default_qa_prompt_is_parsed_for_its_question(router):
    prompt = DEFAULT_TEXT_QA_PROMPT.format(context_str=CONTEXT, query_str=SIMPLE)
    assert router.complete(prompt).additional_kwargs["routing"]["tier"] == "simple"
    custom = PromptTemplate("Docs: {context_str}\nQ: {query_str}").format(
        context_str=CONTEXT, query_str=SIMPLE
    )
    # A custom template without the default markers is judged whole (context included).
    assert router.complete(custom).additional_kwargs["routing"]["tier"] == "complex"


# -- fallback ----------------------------------------------------------------------------------


def test_failed_tier_falls_back_to_the_next_one_up():
    llms = {
        "simple": SimulatedLLM(model_name="down", fail=True),
        "complex": SimulatedLLM(model_name="up"),
    }
    router = RouterLLM(llms=llms, strategy="rules")
    routing = router.chat(user(SIMPLE)).additional_kwargs["routing"]
    assert (routing["tier"], routing["model"], routing["fallback_from"]) == (
        "complex",
        "up",
        "simple",
    )


def test_fallback_before_the_first_stream_chunk():
    llms = {
        "simple": SimulatedLLM(model_name="down", fail=True),
        "complex": SimulatedLLM(model_name="up"),
    }
    chunks = list(RouterLLM(llms=llms, strategy="rules").stream_chat(user(SIMPLE)))
    assert chunks[-1].additional_kwargs["routing"]["fallback_from"] == "simple"
    assert chunks[-1].message.content.startswith("up on")


async def test_every_tier_failing_raises_the_first_error(events):
    llms = {
        "simple": SimulatedLLM(model_name="a", fail=True),
        "complex": SimulatedLLM(model_name="b", fail=True),
    }
    with pytest.raises(SimulatedProviderError, match="a: simulated"):
        await RouterLLM(llms=llms, strategy="rules").achat(user(SIMPLE))
    assert events.of("RoutingDecisionEvent")[-1].error


def test_fallback_disabled_raises_at_once():
    llms = {"simple": SimulatedLLM(model_name="a", fail=True), "complex": SimulatedLLM()}
    with pytest.raises(SimulatedProviderError):
        RouterLLM(llms=llms, fallback=False, strategy="rules").complete(SIMPLE)
    assert llms["complex"].calls == 0


# -- cascade -----------------------------------------------------------------------------------


class RejectCheapAnswers:
    """A cascade: start cheap, reject the cheap tier's answers."""

    def route(self, text: str) -> RouteDecision:
        return RouteDecision("simple", 0.1, "cascade starts cheap")

    def accept(self, text: str, answer: str, tier: str) -> bool:
        return tier != "simple"


def test_cascade_escalates_and_records_the_rejected_attempt(events):
    router = RouterLLM(llms=tiers("cheap-model", "strong-model"), strategy=RejectCheapAnswers())
    routing = router.chat(user("anything")).additional_kwargs["routing"]
    assert routing["tier"] == "complex" and routing["escalated_from"] == ["simple"]
    attempt = routing["attempts"][0]
    assert attempt["model"] == "cheap-model" and attempt["usage"]["input_tokens"] > 0
    # Both calls are real model calls: two event pairs, one decision.
    assert len(events.llm_names()) == 4 and len(events.of("RoutingDecisionEvent")) == 1


def test_cascade_stream_shows_only_the_accepted_answer():
    router = RouterLLM(llms=tiers("cheap-model", "strong-model"), strategy=RejectCheapAnswers())
    chunks = list(router.stream_complete("anything"))
    assert len(chunks) == 1 and chunks[0].text.startswith("strong-model")


class BrokenCheck:
    """A cascade whose answer check itself fails, and whose route can fail too."""

    def __init__(self, route_fails: bool = False) -> None:
        self.route_fails = route_fails

    def route(self, text: str) -> RouteDecision:
        if self.route_fails:
            raise RuntimeError("router model unavailable")
        return RouteDecision("simple", 0.1, "cascade starts cheap")

    def accept(self, text: str, answer: str, tier: str) -> bool:
        raise RuntimeError("checker crashed")


async def test_a_failing_cascade_check_is_logged_and_the_answer_kept(events, caplog):
    # Same behaviour as RouterChatModel: a broken check never fails the user's call.
    router = RouterLLM(llms=tiers("cheap-model", "strong-model"), strategy=BrokenCheck())
    with caplog.at_level("ERROR"):
        answers = [router.chat(user("anything")), await router.achat(user("anything"))]
        answers += list(router.stream_chat(user("anything")))
    for answer in answers:
        assert answer.additional_kwargs["routing"]["tier"] == "simple"
        assert "escalated_from" not in answer.additional_kwargs["routing"]
    assert len(events.llm_names()) == 6  # three calls, one model each: nothing escalated
    assert "answer check failed" in caplog.text


def test_a_failing_route_fails_the_call_before_any_model_is_called(events):
    router = RouterLLM(llms=tiers("cheap-model", "strong-model"), strategy=BrokenCheck(True))
    with pytest.raises(RuntimeError, match="router model unavailable"):
        router.chat(user("anything"))
    assert events.llm_names() == []


# -- tools -------------------------------------------------------------------------------------


def test_chat_with_tools_routes_and_the_answering_model_parses_tool_calls(router, events):
    response = router.chat_with_tools([MULTIPLY], user_msg="please multiply 6 by 7")
    calls = router.get_tool_calls_from_response(response)
    assert [(c.tool_name, c.tool_kwargs) for c in calls] == [("multiply", {"a": 6, "b": 7})]
    assert len(events.llm_names()) == 2


async def test_routing_stays_on_one_model_once_the_history_holds_tool_calls():
    flip = itertools.cycle(["simple", "complex"])
    router = RouterLLM(llms=tiers("cheap-model", "strong-model"), strategy=lambda t: next(flip))
    history = [ChatMessage(role=MessageRole.USER, content="multiply 6 by 7")]
    first = await router.achat_with_tools([MULTIPLY], chat_history=history)
    assert first.additional_kwargs["routing"]["tier"] == "simple"
    call = router.get_tool_calls_from_response(first)[0]
    history += [
        first.message,
        ChatMessage(
            role=MessageRole.TOOL, content="42", additional_kwargs={"tool_call_id": call.tool_id}
        ),
    ]
    second = await router.achat_with_tools([MULTIPLY], chat_history=history)
    routing = second.additional_kwargs["routing"]
    assert routing["tier"] == "simple" and "tool calls" in routing["reason"]
    assert second.message.content == "The tool returned 42."


def test_stream_chat_with_tools_delegates_parsing_per_chunk(router):
    chunks = list(router.stream_chat_with_tools([MULTIPLY], user_msg="multiply 3 by 4"))
    assert router.get_tool_calls_from_response(chunks[-1])[0].tool_kwargs == {"a": 3, "b": 4}
    assert len({c.additional_kwargs["routing"]["model"] for c in chunks}) == 1
    plain = list(router.stream_chat_with_tools([MULTIPLY], user_msg="say hello"))
    assert router.get_tool_calls_from_response(plain[0], error_on_no_tool_call=False) == []


def test_tools_need_function_calling_tiers():
    llms = {"simple": SimulatedLLM(function_calling=False), "complex": SimulatedLLM()}
    router = RouterLLM(llms=llms, strategy="rules")
    assert router.metadata.is_function_calling_model is False
    with pytest.raises(TypeError, match="does not support tool calling"):
        router.chat_with_tools([MULTIPLY], user_msg="multiply 1 by 2")


# -- metadata, identity, callback manager ------------------------------------------------------


def test_metadata_is_what_holds_for_every_tier():
    llms = {
        "simple": SimulatedLLM(model_name="a", context_window=8000),
        "complex": SimulatedLLM(model_name="b", context_window=200_000),
    }
    router = RouterLLM(llms=llms, strategy="rules")
    meta = router.metadata
    assert meta.context_window == 8000
    assert meta.is_chat_model and meta.is_function_calling_model
    assert meta.model_name == "router:a|b" and router.class_name() == "RouterLLM"


def test_router_callback_manager_reaches_the_inner_models():
    debug = LlamaDebugHandler()
    manager = CallbackManager([debug])
    router = RouterLLM(
        llms=tiers("cheap-model", "strong-model"), callback_manager=manager, strategy="rules"
    )
    assert all(llm.callback_manager is manager for llm in router.llms.values())
    router.complete(SIMPLE)
    assert len(debug.get_event_pairs(CBEventType.LLM)) == 1
    later = CallbackManager([])
    router.callback_manager = later  # what Settings / query engines do
    assert all(llm.callback_manager is later for llm in router.llms.values())


@pytest.mark.parametrize(
    ("llms", "error"),
    [
        ({"only": SimulatedLLM()}, ValueError),
        ({"a": SimulatedLLM(), "b": "not an llm"}, TypeError),
        ([SimulatedLLM(), SimulatedLLM()], TypeError),
    ],
)
def test_bad_configuration_is_a_clear_error(llms, error):
    with pytest.raises(error, match="llms"):
        RouterLLM(llms=llms, strategy="rules")


def test_strategy_routing_to_unknown_tiers_is_rejected_or_mapped_by_place():
    from costopt_core.strategies import get_strategy

    trained = get_strategy("length", threshold=0.5, tiers=("weak", "strong"))
    with pytest.raises(ValueError, match="not in llms"):
        RouterLLM(llms=tiers("a", "b", "c"), strategy=trained)
    # As many tiers, named otherwise: the trained router's tiers map on them by place.
    router = RouterLLM(llms=tiers("a", "b"), strategy=trained)
    assert router.complete("hi").additional_kwargs["routing"]["tier"] == "simple"


# -- budgets -----------------------------------------------------------------------------------


def test_budget_raise_stops_the_call_before_any_model_is_called(router, make_handler):
    make_handler(budget_usd=0.0, on_budget="raise")
    with pytest.raises(BudgetExceededError):
        router.chat(user(COMPLEX))
    assert router.llms["simple"].calls == router.llms["complex"].calls == 0


async def test_budget_raise_also_applies_to_async_streams(router, make_handler):
    make_handler(budget_usd=0.0, on_budget="raise")
    with pytest.raises(BudgetExceededError):
        await router.astream_chat(user(COMPLEX))


def test_budget_downgrade_answers_with_the_cheapest_tier(make_handler):
    # At 50 output tokens the strong tier may cost ~$0.0008, the cheap one ~$0.00006.
    router = RouterLLM(llms=tiers("deepseek-chat", "claude-3-5-sonnet", max_tokens=50))
    make_handler(budget_usd=0.0003, on_budget="downgrade")
    routing = router.complete(COMPLEX).additional_kwargs["routing"]
    assert routing["tier"] == "simple" and routing["reason"] == "budget exceeded: downgraded"


def test_an_explicit_cost_handler_is_consulted_without_registration():
    handler = CostEventHandler(budget_usd=0.0)
    # Consulted, but it sees no answer: the router says so when it is built.
    with pytest.warns(UserWarning, match="no dispatcher has"):
        router = RouterLLM(
            llms=tiers("cheap-model", "strong-model"), cost_handler=handler, strategy="rules"
        )
    with pytest.raises(BudgetExceededError):
        router.complete(SIMPLE)
    with pytest.raises(TypeError, match="cost_handler"):
        RouterLLM(llms=tiers("a", "b"), cost_handler=object(), strategy="rules")


def test_structured_output_goes_through_the_router_and_its_tools_path(router, events):
    from pydantic import BaseModel

    class Product(BaseModel):
        name: str
        price: float

    product = router.structured_predict(
        Product, PromptTemplate("Extract the product from: {text}"), text="a lamp costs 12.5"
    )
    assert product.price == 12.5
    assert len(events.of("RoutingDecisionEvent")) == 1 and len(events.llm_names()) == 2


@pytest.mark.filterwarnings("ignore:RouterLLM\\(cost_handler")
def test_a_budget_refusal_inside_a_tier_is_not_a_provider_failure():
    guarded = RouterLLM(
        llms=tiers("cheap-a", "cheap-b"),
        cost_handler=CostEventHandler(budget_usd=0),
        strategy="rules",
    )
    strong = SimulatedLLM(model_name="strong-model")
    outer = RouterLLM(llms={"simple": guarded, "complex": strong}, strategy="rules")
    with pytest.raises(BudgetExceededError):
        outer.complete(SIMPLE)
    assert strong.calls == 0  # no fallback to a dearer tier past the budget


def test_the_engine_cascade_strategy_escalates_on_a_failed_check():
    from costopt_core.cascade import CascadeStrategy

    llms = {
        "simple": SimulatedLLM(model_name="cheap-model"),  # answers in prose
        "complex": SimulatedLLM(model_name="strong-model", answer='{"total": 4}'),
    }
    router = RouterLLM(llms=llms, strategy=CascadeStrategy(require_json=True))
    response = router.complete("Give me the totals as JSON")
    assert response.text == '{"total": 4}'
    assert response.additional_kwargs["routing"]["escalated_from"] == ["simple"]


def test_an_unknown_router_argument_is_refused_by_name() -> None:
    llms = {"cheap": SimulatedLLM(model_name="a"), "strong": SimulatedLLM(model_name="b")}
    with pytest.raises(TypeError, match=r"\['threshold'\].*get_strategy"):
        RouterLLM(llms=llms, threshold=0.1)
    RouterLLM(llms=llms, timeout=30)  # a connection setting: left to the tiers


def test_a_stream_stopped_early_gives_its_budget_reservation_back() -> None:
    # Each reservation is a call's maximum: a few leaked ones exhausted the budget.
    def router() -> RouterLLM:
        return RouterLLM(
            llms={
                "simple": SimulatedLLM(model_name="gpt-4o-mini", max_tokens=100, answer_words=80),
                "complex": SimulatedLLM(model_name="gpt-4o", max_tokens=100),
            }
        )

    with CostEventHandler(budget_usd=0.0015, on_budget="raise"):
        r = router()
        for i in range(5):
            stream = r.stream_complete(f"tell me about cats {i}")
            next(stream)
            stream.close()
        for i in range(5):
            r.complete(f"tell me about dogs {i}")  # raised BudgetExceededError before

    async def stop_async_streams(r: RouterLLM) -> None:
        for i in range(5):
            stream = await r.astream_complete(f"tell me about owls {i}")
            await stream.__anext__()
            await stream.aclose()
        for i in range(5):
            await r.acomplete(f"tell me about bats {i}")

    with CostEventHandler(budget_usd=0.0015, on_budget="raise"):
        asyncio.run(stop_async_streams(router()))


def test_a_cancelled_async_call_gives_its_budget_reservation_back() -> None:
    # asyncio.wait_for cancels the call mid-flight: no model answered, nothing to hold.
    class _Slow(SimulatedLLM):
        @llm_completion_callback()
        async def acomplete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> Any:
            await asyncio.sleep(5)
            return self.complete(prompt, formatted=formatted, **kwargs)

    router = RouterLLM(
        llms={
            "simple": _Slow(model_name="gpt-4o-mini", max_tokens=100),
            "complex": _Slow(model_name="gpt-4o", max_tokens=100),
        }
    )

    async def time_out() -> None:
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(router.acomplete("tell me about cats"), 0.05)

    with CostEventHandler(budget_usd=1.0, on_budget="raise") as handler:
        asyncio.run(time_out())
        assert handler.ledger.reserved_usd == 0.0
        assert handler.total_cost == 0.0


def test_a_registered_cost_handler_given_to_the_router_raises_no_warning(recwarn):
    with CostEventHandler(budget_usd=1.0) as handler:
        RouterLLM(llms=tiers("cheap-model", "strong-model"), cost_handler=handler)
    assert not [w for w in recwarn if "no dispatcher has" in str(w.message)]
