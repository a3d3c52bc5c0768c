"""What strategies and caches judge in a conversation: the latest human turn."""

from __future__ import annotations

from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage

from langchain_costopt.messages import (
    has_tool_history,
    human_turns_text,
    latest_human_text,
    message_text,
)


def test_latest_human_text_skips_system_prompt_and_earlier_turns() -> None:
    messages = [
        SystemMessage("You analyse and compare architectures."),
        HumanMessage("first question"),
        AIMessage("an answer"),
        HumanMessage("请翻译这句话"),
    ]
    assert latest_human_text(messages) == "请翻译这句话"


def test_latest_human_text_after_a_tool_turn_is_still_the_question() -> None:
    call = AIMessage("", tool_calls=[{"name": "f", "args": {}, "id": "1", "type": "tool_call"}])
    messages = [HumanMessage("what is f?"), call, ToolMessage("42", tool_call_id="1")]
    assert latest_human_text(messages) == "what is f?"


def test_without_a_human_turn_the_last_message_is_judged() -> None:
    assert latest_human_text([SystemMessage("only a system prompt")]) == "only a system prompt"
    assert latest_human_text([]) == ""


def test_message_text_keeps_text_blocks_and_drops_images() -> None:
    message = HumanMessage(
        content=[
            {"type": "text", "text": "describe"},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
            "this picture",
        ]
    )
    assert message_text(message) == "describe\nthis picture"
    assert "base64" not in latest_human_text([message])


def test_human_turns_text_joins_human_turns_oldest_first() -> None:
    messages = [SystemMessage("sys"), HumanMessage("one"), AIMessage("x"), HumanMessage("two")]
    assert human_turns_text(messages) == "one\ntwo"


def test_has_tool_history() -> None:
    call = AIMessage("", tool_calls=[{"name": "f", "args": {}, "id": "1", "type": "tool_call"}])
    assert not has_tool_history([HumanMessage("hi"), AIMessage("hello")])
    assert has_tool_history([HumanMessage("hi"), call])
    assert has_tool_history([ToolMessage("42", tool_call_id="1")])
