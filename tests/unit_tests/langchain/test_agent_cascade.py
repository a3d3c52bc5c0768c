"""A cascade strategy (cheapest tier first, escalate on a failed check) in a real
``create_agent`` loop, through ``RouterChatModel`` and through ``CostRoutingMiddleware``."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from langchain.agents import create_agent
from langchain_core.messages import AIMessage, HumanMessage
from langchain_core.tools import tool

from costopt_core.cascade import CascadeStrategy
from costopt_core.pricing import set_price
from langchain_costopt import RouterChatModel, cost_tracker
from langchain_costopt.middleware import CostRoutingMiddleware
from langchain_costopt.simulated import SimulatedChatModel

PRICES = {"cascade-cheap": (1e-6, 2e-6), "cascade-strong": (1e-5, 3e-5)}
for _name, (_input, _output) in PRICES.items():
    set_price(_name, input_per_token=_input, output_per_token=_output)
QUESTION = "Use get_weather: what is the weather in Paris?"


@tool
def get_weather(city: str) -> str:
    """The weather in a city."""
    return f"{city}: sunny, 21C"


def tiers() -> dict[str, SimulatedChatModel]:
    return {
        "cheap": SimulatedChatModel(model_name="cascade-cheap"),
        "strong": SimulatedChatModel(model_name="cascade-strong"),
    }


def agent_with(cascade: CascadeStrategy, middleware: bool) -> Any:
    if middleware:
        routing = CostRoutingMiddleware(models=tiers(), strategy=cascade, tool_result_downgrade=0)
        return create_agent(tiers()["strong"], tools=[get_weather], middleware=[routing])
    return create_agent(RouterChatModel(models=tiers(), strategy=cascade), tools=[get_weather])


def cost(message: AIMessage) -> float:
    usage = message.usage_metadata or {}
    price_in, price_out = PRICES[message.response_metadata["model_name"]]
    return usage["input_tokens"] * price_in + usage["output_tokens"] * price_out


def paid(messages: list[Any]) -> float:
    """Every call the agent paid for: its answers and the attempts a cascade rejected."""
    total = 0.0
    for message in messages:
        if not isinstance(message, AIMessage):
            continue
        total += cost(message)
        for attempt in message.response_metadata["routing"].get("attempts", ()):
            rejected = AIMessage("", response_metadata={"model_name": attempt["model"]})
            rejected.usage_metadata = attempt["usage"]
            total += cost(rejected)
    return total


@pytest.mark.parametrize("middleware", [False, True])
def test_a_cheap_tiers_tool_call_is_not_rejected_for_having_no_text(middleware: bool) -> None:
    agent = agent_with(CascadeStrategy(min_length=20), middleware)
    with cost_tracker() as tracker:
        messages = agent.invoke({"messages": [HumanMessage(QUESTION)]})["messages"]
    replies = [m for m in messages if isinstance(m, AIMessage)]
    assert replies[0].tool_calls and not replies[-1].tool_calls
    # Neither the tool call nor the answer (long enough) escalated: no strong call.
    assert [m.response_metadata["model_name"] for m in replies] == ["cascade-cheap"] * 2
    assert "escalated_from" not in replies[0].response_metadata["routing"]
    assert tracker.to_dict()["cascade_attempts"] == 0
    assert tracker.total_cost == pytest.approx(paid(messages))


@pytest.mark.parametrize("middleware", [False, True])
def test_a_rejected_answer_is_paid_for_once(middleware: bool) -> None:
    # The answer after the tool result is too short for the check: the strong tier
    # answers again; the rejected cheap answer was paid for, once.
    agent = agent_with(CascadeStrategy(min_length=60), middleware)
    with cost_tracker() as tracker:
        messages = agent.invoke({"messages": [HumanMessage(QUESTION)]})["messages"]
    last = messages[-1]
    assert last.response_metadata["routing"]["escalated_from"] == ["cheap"]
    assert last.response_metadata["model_name"] == "cascade-strong"
    assert tracker.total_cost == pytest.approx(paid(messages))


def booked(middleware: bool, asynchronous: bool = False) -> tuple[str, dict[str, Any]]:
    """The report and figures of one agent turn whose cheap answer the cascade rejects."""
    agent = agent_with(CascadeStrategy(min_length=60), middleware)
    state = {"messages": [HumanMessage(QUESTION)]}
    with cost_tracker() as tracker:
        if asynchronous:
            asyncio.run(agent.ainvoke(state))
        else:
            agent.invoke(state)
    figures = tracker.to_dict()
    for key in ("first_timestamp", "last_timestamp"):
        figures.pop(key)
    return tracker.report(), figures


@pytest.mark.parametrize("asynchronous", [False, True])
def test_a_rejected_attempt_saves_the_same_through_the_middleware_as_through_the_router(
    asynchronous: bool,
) -> None:
    (_, router), (_, middleware) = (booked(m, asynchronous) for m in (False, True))
    assert middleware["cascade_attempts"] == router["cascade_attempts"] == 1
    assert middleware["total_cost"] == pytest.approx(router["total_cost"])
    assert middleware["total_saved"] == pytest.approx(router["total_saved"])
    assert middleware == router


def test_the_reports_lever_lines_match_between_the_middleware_and_the_router() -> None:
    (router, _), (middleware, _) = (booked(m) for m in (False, True))
    lines = [
        [line for line in report.splitlines() if line.startswith(("saved:", "routed:"))]
        for report in (router, middleware)
    ]
    assert lines[0] and lines[1] == lines[0]
    assert middleware == router


class FailingModel(SimulatedChatModel):
    def _generate(self, *args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("strong tier down")


def test_a_rejected_attempt_is_paid_for_when_the_tier_above_fails() -> None:
    # No tier answers (the strong one fails after the cheap answer was rejected): the
    # cheap answer was paid for, and is booked as the cascade's attempt, not left held.
    models = {
        "cheap": SimulatedChatModel(model_name="cascade-cheap"),
        "strong": FailingModel(model_name="cascade-strong"),
    }
    routing = CostRoutingMiddleware(
        models=models, strategy=CascadeStrategy(min_length=10_000), tool_result_downgrade=0
    )
    agent = create_agent(models["cheap"], tools=[get_weather], middleware=[routing])
    with cost_tracker() as tracker, pytest.raises(RuntimeError, match="strong tier down"):
        agent.invoke({"messages": [HumanMessage("Say hello without any tool.")]})
    figures = tracker.to_dict()
    assert figures["cascade_attempts"] == 1 and figures["calls"] == 0
    assert tracker.total_cost > 0
    assert tracker.total_saved == pytest.approx(-tracker.total_cost)
