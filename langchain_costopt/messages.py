"""What a strategy or cache judges in a LangChain conversation: the latest human turn.

Example:
    >>> from langchain_core.messages import AIMessage, HumanMessage, SystemMessage
    >>> from langchain_costopt.messages import latest_human_text
    >>> latest_human_text([SystemMessage("You analyse architectures."),
    ...                    HumanMessage("hi"), AIMessage("hello"), HumanMessage("请翻译")])
    '请翻译'

System prompts repeat on every call and earlier turns are context, so neither is
classified or embedded; the cache puts them in its exact-match partition key instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage

from costopt_core.rag_question import question_in

# The argument types of BaseChatModel's ``_generate`` / ``_stream`` hooks.
Messages = list[BaseMessage]
Stop = list[str] | None


def message_text(message: BaseMessage) -> str:
    """Plain text of a message; non-text content blocks (images, files) are skipped."""
    return content_text(message.content)


def content_text(content: Any) -> str:
    """Plain text of a message's ``content`` (a str, or content blocks of which the text
    ones are kept).

    Example:
        >>> content_text(["a", {"type": "text", "text": "b"}, {"type": "image_url"}])
        'a\\nb'
    """
    if isinstance(content, str):
        return content
    parts: list[str] = []
    for block in content or ():
        if isinstance(block, str):
            parts.append(block)
        elif isinstance(block, dict) and block.get("type") == "text":
            parts.append(str(block.get("text", "")))
    return "\n".join(parts)


def is_human(message: BaseMessage) -> bool:
    """Whether a person wrote ``message`` (a human turn, chunks and "user" roles too)."""
    return isinstance(message, HumanMessage) or message.type in ("human", "user")


def latest_human_index(messages: Sequence[BaseMessage]) -> int:
    """Index of the last human message; of the last message if none is human (-1 if
    there are no messages).

    Example:
        >>> latest_human_index([HumanMessage("hi"), AIMessage("hello")])
        0
    """
    return latest_index([is_human(m) for m in messages])


def latest_index(human: Sequence[bool]) -> int:
    """:func:`latest_human_index` of turns given as "a person wrote it" flags (for
    messages read from their JSON, not built)."""
    for i in range(len(human) - 1, -1, -1):
        if human[i]:
            return i
    return len(human) - 1


def latest_human_text(messages: Sequence[BaseMessage]) -> str:
    """Text of the last human message; the last message of any kind if none is human."""
    return message_text(messages[latest_human_index(messages)]) if messages else ""


def latest_human_question(messages: Sequence[BaseMessage]) -> str:
    """What a router judges: the latest human turn, or the question inside it when it is
    a RAG prompt (``costopt_core.rag_question``: the retrieved context is left out).

    Example:
        >>> context = "Acme makes pumps and valves in Springfield. " * 20
        >>> latest_human_question([HumanMessage(context + "\\nQuestion: Who founded Acme?")])
        'Who founded Acme?'
    """
    text = latest_human_text(messages)
    return question_in(text) or text


def human_turns_text(messages: Sequence[BaseMessage]) -> str:
    """All human turns, oldest first, for strategies that should see the conversation."""
    return "\n".join(message_text(m) for m in messages if is_human(m))


def trailing_tool_results(messages: Sequence[BaseMessage]) -> list[ToolMessage]:
    """The tool results after the last AI message (empty when a human spoke last)."""
    results: list[ToolMessage] = []
    for message in reversed(messages):
        if not isinstance(message, ToolMessage):
            break
        results.append(message)
    return results[::-1]


def has_tool_history(messages: Sequence[BaseMessage]) -> bool:
    """True once the conversation holds tool calls or tool results."""
    # Only AI messages carry tool calls; reading a missing attribute off a pydantic
    # message is slow, and this runs on every routed call.
    return any(
        m.type == "tool" or (isinstance(m, AIMessage) and bool(m.tool_calls)) for m in messages
    )
