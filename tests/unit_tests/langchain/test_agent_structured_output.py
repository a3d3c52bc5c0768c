"""An agent's structured output (``create_agent(response_format=...)``) through a
``RouterChatModel`` and ``CostRoutingMiddleware``, in a real agent loop."""

from __future__ import annotations

from typing import Any

import pytest
from langchain.agents import create_agent
from langchain.agents.structured_output import ProviderStrategy, ToolStrategy
from langchain_core.messages import AIMessage, HumanMessage

from langchain_costopt import RouterChatModel, cost_tracker
from langchain_costopt.middleware import CostRoutingMiddleware
from langchain_costopt.simulated import SimulatedChatModel
from tests.unit_tests.langchain.agent_fixtures import Weather, get_weather

QUESTION = "Use get_weather: 请分析巴黎的天气, 评估出行风险"  # seed rules: complex


def tiers() -> dict[str, SimulatedChatModel]:
    return {
        "cheap": SimulatedChatModel(model_name="gpt-4o-mini"),
        "strong": SimulatedChatModel(model_name="gpt-4o"),
    }


@pytest.mark.parametrize(
    "response_format", [Weather, ToolStrategy(Weather), ProviderStrategy(Weather)]
)
@pytest.mark.parametrize("middleware", [False, True])
def test_an_agents_structured_answer_comes_back_through_the_router(
    response_format: Any, middleware: bool
) -> None:
    agent = create_agent(
        RouterChatModel(models=tiers(), strategy="rules"),
        tools=[get_weather],
        response_format=response_format,
        middleware=[CostRoutingMiddleware(models=tiers(), strategy="rules")] if middleware else [],
    )
    with cost_tracker() as tracker:
        result = agent.invoke({"messages": [HumanMessage(QUESTION)]})
    assert isinstance(result.get("structured_response"), Weather)
    replies = [m for m in result["messages"] if isinstance(m, AIMessage)]
    if isinstance(response_format, ToolStrategy):  # the answer is a forced tool call
        assert [[c["name"] for c in m.tool_calls] for m in replies] == [
            ["get_weather"],
            ["Weather"],
        ]
    # The middleware reads the weather report one tier down; the router alone judges
    # the question again.
    tiers_used = [m.response_metadata["routing"]["tier"] for m in replies]
    assert tiers_used == (["strong", "cheap"] if middleware else ["strong", "strong"])
    assert tracker.summary().calls == 2
