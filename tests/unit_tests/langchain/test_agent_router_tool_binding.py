"""A ``RouterChatModel`` over tier models whose ``bind_tools`` returns the model itself
(how many scripted test models are written), as an agent's model in ``create_agent``."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from langchain.agents import create_agent
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langchain_core.tools import tool

from costopt_core.pricing import set_price
from langchain_costopt import RouterChatModel, cost_tracker

set_price("binding-cheap", input_per_token=1e-6, output_per_token=2e-6)
set_price("binding-strong", input_per_token=1e-5, output_per_token=3e-5)
HARD = "Use get_weather: 请分析并比较巴黎的天气, 然后评估风险"  # seed rules: complex


@tool
def get_weather(city: str) -> str:
    """The weather in a city."""
    return f"{city}: sunny, 21C"


class ScriptedModel(GenericFakeChatModel):
    """A scripted model that knows its tools: ``bind_tools`` returns the model."""

    model_name: str

    def bind_tools(self, tools: Any, **kwargs: Any) -> Any:
        return self


def script() -> Iterator[AIMessage]:
    call = {"name": "get_weather", "args": {"city": "Paris"}, "id": "call-1"}
    usage = {"input_tokens": 100, "output_tokens": 10, "total_tokens": 110}
    yield AIMessage("", tool_calls=[call], usage_metadata=usage)
    usage = {"input_tokens": 200, "output_tokens": 20, "total_tokens": 220}
    yield AIMessage("Sunny, 21C in Paris.", usage_metadata=usage)


@pytest.mark.parametrize("asynchronous", [False, True])
async def test_an_agent_runs_through_a_router_whose_tiers_bind_tools_to_themselves(
    asynchronous: bool,
) -> None:
    router = RouterChatModel(
        models={
            "cheap": ScriptedModel(model_name="binding-cheap", messages=script()),
            "strong": ScriptedModel(model_name="binding-strong", messages=script()),
        },
        strategy="rules",
    )
    agent = create_agent(router, tools=[get_weather])
    question = {"messages": [HumanMessage(HARD)]}
    with cost_tracker() as tracker:
        if asynchronous:
            result = await agent.ainvoke(question)
        else:
            result = agent.invoke(question)
    messages = result["messages"]
    assert [type(m) for m in messages] == [HumanMessage, AIMessage, ToolMessage, AIMessage]
    assert messages[2].content == "Paris: sunny, 21C"
    assert messages[-1].response_metadata["routing"]["tier"] == "strong"
    # Both calls priced from the scripted usage on the strong tier's model.
    assert tracker.summary().calls == 2
    assert tracker.total_cost == pytest.approx(100e-5 + 10 * 3e-5 + 200e-5 + 20 * 3e-5)
