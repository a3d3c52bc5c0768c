"""CostRoutingMiddleware in a real ``create_agent`` loop over scripted tool-calling models."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import pytest
from langchain.agents import create_agent
from langchain.agents.middleware import AgentMiddleware
from langchain_core.caches import InMemoryCache
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.globals import set_llm_cache
from langchain_core.language_models import BaseChatModel
from langchain_core.language_models.fake_chat_models import FakeMessagesListChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.tools import ToolException, tool
from pydantic import PrivateAttr

from costopt_core.ledger import BudgetExceededError, CostLedger
from costopt_core.pricing import set_price
from langchain_costopt import cost_tracker
from langchain_costopt.middleware import BudgetMiddleware, CostRoutingMiddleware

PRICES = {"agent-cheap": (1e-7, 4e-7), "agent-mid": (1e-6, 4e-6), "agent-strong": (1e-5, 4e-5)}
for _model, (_inp, _out) in PRICES.items():
    set_price(_model, input_per_token=_inp, output_per_token=_out)

HARD = "请分析并比较巴黎和柏林的天气, 然后评估哪个更适合旅行"  # seed rules: complex cues
EASY = "请翻译: good morning"  # seed rules: simple


@tool
def get_weather(city: str) -> str:
    """The weather in a city."""
    if city == "Atlantis":
        raise ToolException("no such city")  # the agent sees an error ToolMessage
    return f"{city}: sunny, 21C"


get_weather.handle_tool_error = True


class PlanModel(BaseChatModel):
    """Follows one plan whichever tier it is: call the planned tools one per model call
    (the ``cities``), then answer. Counts its calls; ``fail`` makes it a provider outage."""

    model_name: str
    cities: tuple[str, ...] = ("Paris", "Berlin")
    fail: bool = False
    max_tokens: int = 50  # what a budget reserves for its output
    _calls: list[int] = PrivateAttr(default_factory=list)
    _settings: list[dict[str, Any]] = PrivateAttr(default_factory=list)

    @property
    def _llm_type(self) -> str:
        return "plan-model"

    @property
    def calls(self) -> int:
        return len(self._calls)

    def bind_tools(self, tools: Sequence[Any], **kwargs: Any) -> Any:
        self._settings.append(kwargs)
        return self.bind(tool_names=[getattr(t, "name", "") for t in tools])

    def _generate(self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None,
                  **kwargs: Any) -> ChatResult:  # fmt: skip
        self._calls.append(1)
        if self.fail:
            raise ConnectionError(f"{self.model_name} is down")
        turn = max(i for i, m in enumerate(messages) if isinstance(m, HumanMessage))
        step = sum(1 for m in messages[turn:] if isinstance(m, AIMessage) and m.tool_calls)
        calls = []
        if step < len(self.cities) and kwargs.get("tool_names"):
            args = {"city": self.cities[step]}
            calls = [{"name": "get_weather", "args": args, "id": f"call-{step}"}]
        text = "" if calls else f"Done after {step} tool calls."
        message = AIMessage(
            content=text,
            tool_calls=calls,
            usage_metadata={"input_tokens": 100, "output_tokens": 20, "total_tokens": 120},
            response_metadata={"model_name": self.model_name},
        )
        return ChatResult(generations=[ChatGeneration(message=message)])


def tiers(**options: Any) -> dict[str, PlanModel]:
    return {
        "simple": PlanModel(model_name="agent-cheap", **options.get("simple", {})),
        "medium": PlanModel(model_name="agent-mid", **options.get("medium", {})),
        "complex": PlanModel(model_name="agent-strong", **options.get("complex", {})),
    }


def run_agent(models: dict[str, PlanModel], question: str, **middleware: Any) -> list[Any]:
    agent = create_agent(
        models["complex"],
        tools=[get_weather],
        middleware=[CostRoutingMiddleware(models=models, **{"strategy": "rules", **middleware})],
    )
    return agent.invoke({"messages": [HumanMessage(question)]})["messages"]


def routing_of(messages: list[Any]) -> list[dict[str, Any]]:
    return [m.response_metadata["routing"] for m in messages if isinstance(m, AIMessage)]


def test_each_model_call_of_an_agent_is_routed_on_its_own_and_costed_once() -> None:
    models = tiers()
    with cost_tracker(baseline_model="agent-strong") as tracker:
        messages = run_agent(models, HARD)
    records = routing_of(messages)
    # The turn is hard; the two calls that only read weather reports go one tier down.
    assert [r["tier"] for r in records] == ["complex", "medium", "medium"]
    assert "reads tool results" in records[1]["reason"]
    assert [m.calls for m in models.values()] == [0, 2, 1]
    summary = tracker.summary()
    assert summary.calls == 3
    strong, mid = 100 * 1e-5 + 20 * 4e-5, 100 * 1e-6 + 20 * 4e-6
    assert tracker.total_cost == pytest.approx(strong + 2 * mid)
    # The two calls sent down a tier saved what the strongest model would have cost more.
    assert tracker.total_saved == pytest.approx(2 * (strong - mid))


async def test_the_async_loop_routes_the_same_way() -> None:
    models = tiers()
    agent = create_agent(
        models["complex"],
        tools=[get_weather],
        middleware=[CostRoutingMiddleware(models=models, strategy="rules")],
    )
    result = await agent.ainvoke({"messages": [HumanMessage(HARD)]})
    assert [r["tier"] for r in routing_of(result["messages"])] == ["complex", "medium", "medium"]


def test_zero_downgrade_keeps_the_turns_tier_and_an_easy_turn_stays_cheap() -> None:
    records = routing_of(run_agent(tiers(), HARD, tool_result_downgrade=0))
    assert [r["tier"] for r in records] == ["complex"] * 3
    records = routing_of(run_agent(tiers(), EASY, tool_result_downgrade=2))
    assert [r["tier"] for r in records] == ["simple"] * 3


def test_a_call_after_a_tool_error_is_judged_by_the_strategy_again() -> None:
    models = tiers(**{t: {"cities": ("Atlantis",)} for t in ("simple", "medium", "complex")})
    messages = run_agent(models, HARD)
    assert any(isinstance(m, ToolMessage) and m.status == "error" for m in messages)
    assert [r["tier"] for r in routing_of(messages)] == ["complex", "complex"]


def test_a_failing_tier_falls_back_to_the_next_one_up() -> None:
    models = tiers(medium={"fail": True})
    records = routing_of(run_agent(models, HARD))
    assert [r["tier"] for r in records] == ["complex", "complex", "complex"]
    assert records[1]["fallback_from"] == "medium"


class OverBudget(BaseCallbackHandler):
    """What a cost handler with on_budget="downgrade" looks like once over budget."""

    downgrade_requested = True


def test_a_budget_downgrade_sends_every_agent_call_to_the_cheapest_tier() -> None:
    models = tiers()
    agent = create_agent(
        models["complex"],
        tools=[get_weather],
        middleware=[CostRoutingMiddleware(models=models, strategy="rules")],
    )
    result = agent.invoke({"messages": [HumanMessage(HARD)]}, {"callbacks": [OverBudget()]})
    assert {r["tier"] for r in routing_of(result["messages"])} == {"simple"}


def test_bad_arguments_are_named() -> None:
    with pytest.raises(ValueError, match="tool_result_downgrade"):
        CostRoutingMiddleware(models=tiers(), tool_result_downgrade=-1)
    with pytest.raises(ValueError, match="at least 2 tiers"):
        CostRoutingMiddleware(models={"only": PlanModel(model_name="x")})


class AnthropicPlan(PlanModel):
    @property
    def _llm_type(self) -> str:
        return "anthropic-chat"


class MarkCacheable(AgentMiddleware):
    """What Anthropic's prompt-caching middleware does to every model request."""

    def wrap_model_call(self, request: Any, handler: Any) -> Any:
        settings = {**request.model_settings, "cache_control": {"type": "ephemeral"}}
        return handler(request.override(model_settings=settings))


def test_provider_prompt_caching_reaches_only_the_tiers_that_accept_it() -> None:
    models = {
        "simple": PlanModel(model_name="agent-cheap"),
        "complex": AnthropicPlan(model_name="agent-strong"),
    }
    routing = CostRoutingMiddleware(models=models, strategy="rules")
    agent = create_agent(
        models["complex"], tools=[get_weather], middleware=[MarkCacheable(), routing]
    )
    messages = agent.invoke({"messages": [HumanMessage(HARD)]})["messages"]
    assert [r["tier"] for r in routing_of(messages)] == ["complex", "simple", "simple"]
    assert all("cache_control" in kw for kw in models["complex"]._settings)
    assert models["simple"]._settings and not any(
        "cache_control" in kw for kw in models["simple"]._settings
    )


def test_an_agent_with_routing_uses_the_llm_cache_and_the_tracker_books_hits() -> None:
    models = tiers()
    set_llm_cache(InMemoryCache())
    try:
        with cost_tracker() as tracker:
            run_agent(models, HARD)
            again = run_agent(models, HARD)
    finally:
        set_llm_cache(None)
    # The second run's first call is a hit (same prompt on the same tier); the calls after
    # it carry new message ids, which LangChain's cache keys on, so they are made again.
    assert [m.calls for m in models.values()] == [0, 4, 1]
    assert [r["tier"] for r in routing_of(again)] == ["complex", "medium", "medium"]
    summary = tracker.summary()
    assert summary.calls == 5 and summary.cache_hits == 1 and tracker.total_saved > 0


# -- BudgetMiddleware ----------------------------------------------------------------------


def budget_agent(model: PlanModel, **budget: Any) -> Any:
    return create_agent(model, tools=[get_weather], middleware=[BudgetMiddleware(**budget)])


def test_a_budget_smaller_than_the_second_call_ends_the_agent_before_that_call() -> None:
    # agent-strong: each call may cost ~$0.0022 (50 output tokens) and costs $0.0018.
    model = PlanModel(model_name="agent-strong")
    result = budget_agent(model, budget_usd=0.003).invoke({"messages": [HumanMessage(EASY)]})
    last = result["messages"][-1]
    assert model.calls == 1  # the second call never reached the model
    assert isinstance(last, AIMessage) and not last.tool_calls
    assert last.content.startswith("I stopped here") and "budget" in last.content
    assert last.response_metadata["costopt_budget"]["stopped"] is True


async def test_the_async_loop_stops_the_same_way_and_raise_mode_raises() -> None:
    model = PlanModel(model_name="agent-strong")
    result = await budget_agent(model, budget_usd=0.003).ainvoke({"messages": [("user", EASY)]})
    assert model.calls == 1 and result["messages"][-1].response_metadata["costopt_budget"]
    with pytest.raises(BudgetExceededError):
        budget_agent(model, budget_usd=0.003, on_budget="raise").invoke(
            {"messages": [("user", EASY)]}
        )


def test_agents_sharing_a_ledger_share_the_budget_and_calls_are_counted_once() -> None:
    ledger = CostLedger()
    models = [PlanModel(model_name="agent-strong") for _ in range(3)]
    with cost_tracker() as tracker:
        for model in models:
            budget_agent(model, budget_usd=0.005, ledger=ledger).invoke(
                {"messages": [("user", EASY)]}
            )
    assert ledger.spent_since() <= 0.005
    assert sum(m.calls for m in models) == tracker.summary().calls == len(ledger.records())


def test_downgrade_sends_the_calls_that_do_not_fit_to_the_cheapest_tier() -> None:
    models = tiers()
    agent = create_agent(
        models["complex"],
        tools=[get_weather],
        middleware=[
            BudgetMiddleware(budget_usd=0.0025, on_budget="downgrade"),
            CostRoutingMiddleware(models=models, strategy="rules", tool_result_downgrade=0),
        ],
    )
    messages = agent.invoke({"messages": [HumanMessage(HARD)]})["messages"]
    records = routing_of([m for m in messages if "routing" in m.response_metadata])
    # The first call fits on the strong tier; the next ones only on the cheap one.
    assert records[0]["tier"] == "complex"
    assert {r["tier"] for r in records[1:]} == {"simple"}
    assert records[1]["reason"] == "budget exceeded: downgraded"
    assert models["complex"].calls == 1 and models["simple"].calls == len(records) - 1


def test_budget_middleware_arguments_are_checked() -> None:
    with pytest.raises(ValueError, match="on_budget"):
        BudgetMiddleware(budget_usd=1.0, on_budget="warn")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="needs a budget"):
        BudgetMiddleware()
    with pytest.raises(TypeError, match="handler"):
        BudgetMiddleware(handler=object())  # type: ignore[arg-type]


class _Scripted(FakeMessagesListChatModel):
    """LangChain's scripted fake (answers its responses in turn), with tools bound."""

    def bind_tools(self, tools: Sequence[Any], **kwargs: Any) -> _Scripted:
        return self


@pytest.mark.parametrize("asynchronous", [False, True])
def test_the_tier_model_itself_answers_so_a_scripted_tier_goes_on(asynchronous: bool) -> None:
    # A per-call copy of the tier restarted the script at every call: the agent asked
    # for the weather forever (GraphRecursionError).
    def script() -> list[BaseMessage]:
        call = {"name": "get_weather", "args": {"city": "Paris"}, "id": "c1"}
        return [AIMessage("", tool_calls=[call]), AIMessage("Paris is sunny.")]

    tiers = {"cheap": _Scripted(responses=script()), "strong": _Scripted(responses=script())}
    agent = create_agent(
        tiers["strong"],
        tools=[get_weather],
        middleware=[
            CostRoutingMiddleware(models=tiers, strategy=lambda t: "cheap", tool_result_downgrade=0)
        ],
    )
    state = {"messages": [("user", "weather?")]}
    with cost_tracker() as tracker:
        if asynchronous:
            out = asyncio.run(agent.ainvoke(state, {"recursion_limit": 10}))
        else:
            out = agent.invoke(state, {"recursion_limit": 10})
    last = out["messages"][-1]
    assert (
        last.content == "Paris is sunny." and last.response_metadata["routing"]["tier"] == "cheap"
    )
    assert tracker.summary().calls == 2
    assert [r.tier for r in tracker.ledger.records()] == ["cheap", "cheap"]


@pytest.mark.parametrize("budget", [0.01, 1.0])
def test_a_tools_own_model_call_is_held_to_the_agents_budget(budget: float) -> None:
    # The tool asks a strong model (up to $0.08 at 2,000 output tokens). $0.01 holds the
    # agent's own cheap calls but not that: each tool call fails with a budget message
    # the model reads and the agent goes on; $1 holds it, and it is recorded.
    strong = PlanModel(model_name="agent-strong", max_tokens=2000)

    @tool("get_weather")
    def weather_from_a_model(city: str) -> str:
        """The weather in a city, asked of a model."""
        return str(strong.invoke(f"The weather in {city}?").content)

    budget_mw = BudgetMiddleware(budget_usd=budget)
    agent = create_agent(
        PlanModel(model_name="agent-cheap"), tools=[weather_from_a_model], middleware=[budget_mw]
    )
    messages = agent.invoke({"messages": [HumanMessage("weather?")]})["messages"]
    results = [m for m in messages if isinstance(m, ToolMessage)]
    assert messages[-1].content == "Done after 2 tool calls." and len(results) == 2
    models = [r.model for r in budget_mw.handler.ledger.records()]
    if budget < 0.08:
        assert strong.calls == 0 and all(r.status == "error" for r in results)
        assert all(r.response_metadata["costopt_budget"]["stopped"] for r in results)
        assert models == ["agent-cheap"] * 3
    else:
        assert strong.calls == 2 and sorted(models) == ["agent-cheap"] * 3 + ["agent-strong"] * 2
    assert 0 < budget_mw.handler.total_cost <= budget
