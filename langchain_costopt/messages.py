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


#: ``additional_kwargs["lc_source"]`` of the human message LangChain's
#: ``SummarizationMiddleware`` puts in place of the turns it folds into a summary.
SUMMARY_SOURCE = "summarization"
#: The fixed opening of that message's text, before the summary itself.
SUMMARY_PREAMBLE = "Here is a summary of the conversation to date:\n\n"


def is_summary(message: BaseMessage) -> bool:
    """Whether ``message`` is a summary a middleware wrote in place of earlier turns
    (LangChain's ``SummarizationMiddleware``): a human message no person wrote.

    Example:
        >>> is_summary(HumanMessage("Here is a summary of the conversation to date: ...",
        ...                         additional_kwargs={"lc_source": "summarization"}))
        True
        >>> is_summary(HumanMessage("summarise this"))
        False
    """
    extra = message.additional_kwargs
    return bool(extra) and extra.get("lc_source") == SUMMARY_SOURCE


def latest_human_index(messages: Sequence[BaseMessage]) -> int:
    """Index of the user's latest turn: the last human message that is not a summary
    (:func:`is_summary`), else the last summary (the user's question was folded into
    it), else the last message (-1 if there are no messages).

    Example:
        >>> summary = HumanMessage("Here is a summary of the conversation to date: ...",
        ...                        additional_kwargs={"lc_source": "summarization"})
        >>> latest_human_index([HumanMessage("hi"), AIMessage("hello")])
        0
        >>> latest_human_index([HumanMessage("hi"), summary, AIMessage("hello")])
        0
        >>> latest_human_index([summary, AIMessage("hello")])
        0
    """
    summary = -1
    for i in range(len(messages) - 1, -1, -1):
        message = messages[i]
        if is_human(message):
            if not is_summary(message):
                return i
            if summary < 0:
                summary = i
    return summary if summary >= 0 else len(messages) - 1


def latest_index(human: Sequence[bool]) -> int:
    """Index of the last turn flagged "a person wrote it", else of the last turn (for
    messages read from their JSON, not built; unlike :func:`latest_human_index`, a
    summary counts as a human turn here)."""
    for i in range(len(human) - 1, -1, -1):
        if human[i]:
            return i
    return len(human) - 1


def latest_human_text(messages: Sequence[BaseMessage]) -> str:
    """Text of the user's latest turn (:func:`latest_human_index`; a summary without its
    fixed preamble); the last message of any kind if none is human."""
    if not messages:
        return ""
    message = messages[latest_human_index(messages)]
    text = message_text(message)
    return text.removeprefix(SUMMARY_PREAMBLE) if is_summary(message) else text


def latest_human_question(messages: Sequence[BaseMessage]) -> str:
    """What a router judges: the user's latest turn, or the question inside it when it
    is a RAG prompt (``costopt_core.rag_question``: the retrieved context is left out).
    A middleware's summary is not the user's turn: the question before it is judged,
    or the summary's own text when the question was folded into it.

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
