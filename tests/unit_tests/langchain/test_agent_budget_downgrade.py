"""A budget with ``on_budget="downgrade"`` that refuses an agent's very first model call
on the routed tier: the call goes to the cheapest tier, in a real ``create_agent`` loop."""

from __future__ import annotations

from typing import Any

import pytest
from langchain.agents import create_agent
from langchain_core.messages import AIMessage, HumanMessage
from langchain_core.tools import tool

from costopt_core.pricing import set_price
from langchain_costopt import cost_tracker
from langchain_costopt.middleware import BudgetMiddleware, CostRoutingMiddleware
from langchain_costopt.simulated import SimulatedChatModel

set_price("downgrade-cheap", input_per_token=1e-6, output_per_token=2e-6)
set_price("downgrade-strong", input_per_token=1e-5, output_per_token=3e-5)
# Seed rules: complex cues, so the strategy picks the strong tier.
HARD = "Use get_weather: 请分析并比较巴黎的天气, 然后评估风险"


@tool
def get_weather(city: str) -> str:
    """The weather in a city."""
    return f"{city}: sunny, 21C"


def tiers() -> dict[str, SimulatedChatModel]:
    # max_tokens=50: a strong call reserves ~$0.0024, a cheap one ~$0.0002.
    return {
        "cheap": SimulatedChatModel(model_name="downgrade-cheap", max_tokens=50),
        "strong": SimulatedChatModel(model_name="downgrade-strong", max_tokens=50),
    }


def answers(messages: list[Any]) -> list[AIMessage]:
    return [m for m in messages if isinstance(m, AIMessage)]


@pytest.mark.parametrize("asynchronous", [False, True])
async def test_a_tracker_that_downgrades_sends_the_refused_first_call_to_the_cheapest_tier(
    asynchronous: bool,
) -> None:
    models = tiers()
    agent = create_agent(
        models["strong"],
        tools=[get_weather],
        middleware=[CostRoutingMiddleware(models=models, strategy="rules")],
    )
    question = {"messages": [HumanMessage(HARD)]}
    with cost_tracker(budget_usd=0.0015, on_budget="downgrade") as tracker:
        if asynchronous:
            result = await agent.ainvoke(question)
        else:
            result = agent.invoke(question)
    replies = answers(result["messages"])
    # It finished (a tool call, then an answer) on the cheap tier, within the budget.
    assert replies[0].tool_calls and not replies[-1].tool_calls
    assert {m.response_metadata["model_name"] for m in replies} == {"downgrade-cheap"}
    assert replies[0].response_metadata["routing"]["downgraded_from"] == "strong"
    assert tracker.summary().calls == len(replies)
    assert 0 < tracker.total_cost <= 0.0015


def test_budget_middleware_downgrading_does_not_end_the_agent_on_its_first_call() -> None:
    models = tiers()
    agent = create_agent(
        models["strong"],
        tools=[get_weather],
        middleware=[
            BudgetMiddleware(budget_usd=0.0015, on_budget="downgrade"),
            CostRoutingMiddleware(models=models, strategy="rules"),
        ],
    )
    replies = answers(agent.invoke({"messages": [HumanMessage(HARD)]})["messages"])
    assert not any("costopt_budget" in m.response_metadata for m in replies)
    assert replies[0].tool_calls and replies[-1].content.startswith("The tool returned")
    assert {m.response_metadata["routing"]["tier"] for m in replies} == {"cheap"}
