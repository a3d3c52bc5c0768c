"""A ReAct agent (llama_index.core.agent.react) sends a tool's result as a user turn
("Observation: ...") and a format reminder as another: they are context, never the
question the router classifies or the cache matches by meaning (audit: a long
observation sent a translation request's follow-up to the strong tier, and under a fixed
0.92 threshold a cached answer was served for a different tool result)."""

from __future__ import annotations

import pytest
from llama_index.core.base.llms.types import ChatMessage

from llamaindex_costopt import RouterLLM, SemanticCacheLLM
from llamaindex_costopt.messages import latest_user_text, split_chat
from llamaindex_costopt.simulated import HashingEmbedding, SimulatedLLM

QUESTION = "请翻译这句话: what is the status of order A1?"
ACTION = 'Thought: I need a tool.\nAction: order_status\nAction Input: {"order_id": "A1"}'


def react_turns(observation: str) -> list[ChatMessage]:
    return [
        ChatMessage(role="system", content="You are designed to help with a variety of tasks."),
        ChatMessage(role="user", content=QUESTION),
        ChatMessage(role="assistant", content=ACTION),
        ChatMessage(role="user", content=f"Observation: {observation}"),
    ]


def record(status: str) -> str:
    return (
        "Order record: customer Jane Doe, 3 items, warehouse Berlin, carrier DHL, placed on "
        f"Monday, payment by card, current status {status}, contact support for changes."
    )


def test_the_question_is_the_users_turn_and_the_observation_is_context() -> None:
    messages = react_turns(record("shipped"))
    question, context = split_chat(messages)
    assert question == latest_user_text(messages) == QUESTION
    assert ("user", f"Observation: {record('shipped')}") in context


def test_a_follow_up_with_a_long_observation_stays_on_the_questions_tier() -> None:
    router = RouterLLM(
        llms={
            "simple": SimulatedLLM(model_name="react-cheap"),
            "complex": SimulatedLLM(model_name="react-strong"),
        },
        strategy="rules",
    )
    first = router.route([ChatMessage(role="user", content=QUESTION)])
    follow_up = router.route(react_turns("word " * 3000))  # was 'complex': a long prompt
    assert first.tier == follow_up.tier == "simple"


@pytest.mark.parametrize("threshold", [None, 0.92])
def test_a_cached_follow_up_is_never_served_for_another_tool_result(threshold) -> None:
    cache = SemanticCacheLLM(
        SimulatedLLM(model_name="react-cheap"),
        embed_model=HashingEmbedding(),
        similarity_threshold=threshold,
    )
    shipped = cache.chat(react_turns(record("shipped"))).message.content
    again = cache.chat(react_turns(record("shipped")))
    other = cache.chat(react_turns(record("cancelled")))
    assert again.additional_kwargs["cache"]["hit"] is True and again.message.content == shipped
    assert not (other.additional_kwargs.get("cache") or {}).get("hit")


def test_outside_a_react_agent_a_user_turn_starting_observation_is_the_question() -> None:
    messages = [
        ChatMessage(role="user", content="hi"),
        ChatMessage(role="assistant", content="Hello! How can I help?"),
        ChatMessage(role="user", content="Observation: the build fails; analyze the design."),
    ]
    assert latest_user_text(messages) == messages[-1].content
