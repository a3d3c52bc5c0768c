"""A cascade strategy (cheapest tier first, escalate on a failed check) in a real
``create_agent`` loop, through ``RouterChatModel`` and through ``CostRoutingMiddleware``."""

from __future__ import annotations

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


@pytest.mark.xfail(
    strict=True,
    reason="the middleware's rejected attempt is a run of its own, counted as a routed call "
    "with a positive routing saving before the cascade rejects it; the cost handler needs a "
    "way to re-book it as an attempt (reported to the owner of callbacks/accounting)",
)
def test_a_rejected_attempt_saves_the_same_through_the_middleware_as_through_the_router() -> None:
    saved = []
    for middleware in (False, True):
        with cost_tracker() as tracker:
            agent_with(CascadeStrategy(min_length=60), middleware).invoke(
                {"messages": [HumanMessage(QUESTION)]}
            )
        saved.append(tracker.total_saved)
    assert saved[1] == pytest.approx(saved[0])
