"""Routing after LangChain's ``SummarizationMiddleware`` folded the turn's question into
its summary (a human message marked ``lc_source="summarization"``): the summary is not the
user's question, in a real ``create_agent`` loop."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from langchain.agents import create_agent
from langchain.agents.middleware import SummarizationMiddleware
from langchain_core.language_models.fake_chat_models import FakeListChatModel
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langchain_core.tools import tool

from langchain_costopt.messages import (
    SUMMARY_PREAMBLE,
    is_summary,
    latest_human_index,
    latest_human_question,
    latest_human_text,
)
from langchain_costopt.middleware import CostRoutingMiddleware
from langchain_costopt.simulated import SimulatedChatModel

# Seed rules: complex cues (the summary below has none).
QUESTION = "Use get_weather: 请分析并比较巴黎的天气, 然后评估风险, 一步一步推理"
SUMMARY_TEXT = "The user asked about the weather; a tool was called."


def summary(text: str = SUMMARY_TEXT) -> HumanMessage:
    # What SummarizationMiddleware puts in place of the turns it summarised.
    return HumanMessage(SUMMARY_PREAMBLE + text, additional_kwargs={"lc_source": "summarization"})


def test_the_question_before_a_summary_is_the_users_turn() -> None:
    messages = [summary(), HumanMessage("请翻译: good morning"), AIMessage("ok")]
    assert latest_human_index(messages) == 1
    assert latest_human_question(messages) == "请翻译: good morning"
    assert is_summary(messages[0]) and not is_summary(messages[1])


def test_a_summary_alone_is_judged_without_its_preamble() -> None:
    call = AIMessage("", tool_calls=[{"name": "get_weather", "args": {}, "id": "c1"}])
    messages = [summary(), call, ToolMessage("sunny", tool_call_id="c1")]
    assert latest_human_index(messages) == 0
    assert latest_human_text(messages) == latest_human_question(messages) == SUMMARY_TEXT


@tool
def get_weather(city: str) -> str:
    """The weather in a city."""
    return f"{city}: sunny, 21C"


def tiers() -> dict[str, SimulatedChatModel]:
    return {
        "simple": SimulatedChatModel(model_name="gpt-4o-mini"),
        "medium": SimulatedChatModel(model_name="gpt-4o"),
        "complex": SimulatedChatModel(model_name="claude-3.5-sonnet"),
    }


def records(asynchronous: bool, summarise: bool) -> list[dict[str, Any]]:
    models = tiers()
    middleware: list[Any] = [CostRoutingMiddleware(models=models, strategy="rules")]
    if summarise:
        # After the tool call: [question, tool call, result] -> [summary, tool call, result].
        summariser = FakeListChatModel(responses=[SUMMARY_TEXT] * 5)
        middleware.insert(
            0, SummarizationMiddleware(summariser, trigger=("messages", 3), keep=("messages", 2))
        )
    agent = create_agent(models["complex"], tools=[get_weather], middleware=middleware)
    question = {"messages": [HumanMessage(QUESTION)]}
    if asynchronous:
        messages = asyncio.run(agent.ainvoke(question))["messages"]
    else:
        messages = agent.invoke(question)["messages"]
    assert any(is_summary(m) for m in messages) is summarise
    return [m.response_metadata["routing"] for m in messages if isinstance(m, AIMessage)]


@pytest.mark.parametrize("asynchronous", [False, True])
def test_the_call_after_a_summary_keeps_the_turns_tier(asynchronous: bool) -> None:
    plain = records(asynchronous, summarise=False)
    summarised = records(asynchronous, summarise=True)
    assert [r["tier"] for r in plain] == ["complex", "medium"]
    # The call reading the tool result is placed from the turn's tier, not from the
    # summary's text (which the strategy judges below the turn's tier).
    assert [r["tier"] for r in summarised] == ["complex", "medium"]
    judge = CostRoutingMiddleware(models=tiers(), strategy="rules").engine
    assert judge.decide(SUMMARY_TEXT).tier != "complex"
    assert summarised[1]["turn_tier"] == "complex"
    assert "reads tool results" in summarised[1]["reason"]
