"""The structured-output strategy ``create_agent`` picks for a ``RouterChatModel``: the
one it would pick for the least capable tier."""

from __future__ import annotations

from typing import Any

import pytest
from langchain.agents import create_agent
from langchain_core.messages import AIMessage, HumanMessage
from pydantic import PrivateAttr

from langchain_costopt import RouterChatModel
from langchain_costopt.simulated import SimulatedChatModel
from tests.unit_tests.langchain.agent_fixtures import Weather, get_weather

CAPABLE = {"structured_output": True, "tool_calling": True}
QUESTION = "Use get_weather for Paris"  # seed rules: the cheap tier


class Recorded(SimulatedChatModel):
    """Records the request options of each call."""

    _requests: list[set[str]] = PrivateAttr(default_factory=list)

    def _generate(
        self, messages: Any, stop: Any = None, run_manager: Any = None, **kwargs: Any
    ) -> Any:
        self._requests.append(set(kwargs))
        return super()._generate(messages, stop, run_manager, **kwargs)


def router(cheap: str) -> RouterChatModel:
    return RouterChatModel(
        models={
            "cheap": Recorded(model_name=cheap, profile=CAPABLE),
            "strong": Recorded(model_name="gpt-4o", profile=CAPABLE),
        }
    )


def run_agent(model: Any) -> dict[str, Any]:
    agent = create_agent(model, tools=[get_weather], response_format=Weather)
    return agent.invoke({"messages": [HumanMessage(QUESTION)]})


@pytest.mark.parametrize("gemini", ["gemini-2.5-flash", "models/gemini-2.0-flash-001"])
def test_a_gemini_2_tier_is_not_asked_for_tools_and_a_response_format_at_once(
    gemini: str,
) -> None:
    # LangChain does not combine them for such a model alone: the router's tier must not
    # get them combined either (the API rejects it); the answer comes as a tool call.
    routed = router(gemini)
    alone = Recorded(model_name=gemini, profile=CAPABLE)
    result = run_agent(routed)
    run_agent(alone)
    tier = routed.models["cheap"]
    assert isinstance(result["structured_response"], Weather)
    assert tier._requests and all("response_format" not in r for r in tier._requests)
    assert [sorted(r) for r in tier._requests] == [sorted(r) for r in alone._requests]
    replies = [m for m in result["messages"] if isinstance(m, AIMessage)]
    assert [m.response_metadata["routing"]["tier"] for m in replies] == ["cheap", "cheap"]
    assert [[c["name"] for c in m.tool_calls] for m in replies] == [["get_weather"], ["Weather"]]


@pytest.mark.parametrize("cheap", ["gemini-3-pro-preview", "gpt-4o-mini"])
def test_tiers_that_answer_both_at_once_keep_their_own_structured_output(cheap: str) -> None:
    routed = router(cheap)
    result = run_agent(routed)
    assert isinstance(result["structured_response"], Weather)
    assert routed.profile == CAPABLE
    assert any({"tools", "response_format"} <= r for r in routed.models["cheap"]._requests)


def test_the_routers_profile_says_no_structured_output_over_a_gemini_2_tier() -> None:
    assert router("gemini-2.5-pro").profile == {"structured_output": False, "tool_calling": True}
    # The tier's own profile is left as it is.
    assert router("gemini-2.5-pro").models["cheap"].profile == CAPABLE
