"""RouterChatModel used where a plain chat model is expected: agents, structured
output, token counting, copies, profiles and the tiers' own settings."""

from __future__ import annotations

from langchain.agents import create_agent
from langchain.agents.structured_output import ProviderStrategy
from langchain_core.messages import HumanMessage
from pydantic import BaseModel

from langchain_costopt import RouterChatModel
from langchain_costopt.simulated import SimulatedChatModel


class Weather(BaseModel):
    city: str
    summary: str


def tiers() -> dict[str, SimulatedChatModel]:
    return {
        "cheap": SimulatedChatModel(model_name="gpt-4o-mini"),
        "strong": SimulatedChatModel(model_name="gpt-4o"),
    }


def test_an_agent_without_tools_gets_the_providers_structured_answer() -> None:
    agent = create_agent(
        RouterChatModel(models=tiers()), tools=[], response_format=ProviderStrategy(Weather)
    )
    result = agent.invoke({"messages": [HumanMessage("Weather in Paris?")]})
    assert isinstance(result["structured_response"], Weather)
