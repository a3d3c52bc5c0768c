"""What a strategy classifies and a cache embeds in a LlamaIndex call: the user's question.

Example:
    >>> from llama_index.core.llms import ChatMessage
    >>> from llamaindex_costopt.messages import question_of, latest_user_text
    >>> prompt = (
    ...     "Context information is below.\\n---------------------\\nParis is in France.\\n"
    ...     "---------------------\\nGiven the context information and not prior knowledge, "
    ...     "answer the query.\\nQuery: Where is Paris?\\nAnswer: "
    ... )
    >>> question_of(prompt)
    'Where is Paris?'
    >>> latest_user_text([ChatMessage(role="system", content="Be brief."),
    ...                   ChatMessage(role="user", content="hi")])
    'hi'

A query engine does not hand the LLM the user's question: it formats a prompt template
(``text_qa_template``) with the retrieved context and calls ``llm.predict(template,
query_str=..., context_str=...)``, which turns into ``chat``/``complete`` with the
filled-in prompt. Routing or caching on that prompt would judge the retrieved context,
not the question. Two mechanisms recover the question:

1. :func:`question_scope`: RouterLLM and SemanticCacheLLM override ``predict``,
   ``apredict``, ``stream`` and ``astream``; they read the question from the template
   arguments (``query_str``, ``question``, ``query``) and hold it in a context variable
   for the ``chat``/``complete`` call that follows. The hint is used only when it occurs
   verbatim in the prompt, so a stale hint never misleads an unrelated call.
2. :func:`parse_question`: for calls made straight to ``chat``/``complete`` with an
   already formatted prompt, LlamaIndex's default question-answering templates (text QA,
   tree summarize, refine, their chat versions) are parsed: the text after the last
   ``Query:``/``Question:`` line up to the ``Answer:`` line, or the refine template's
   "The original query is as follows:" line. Custom templates without these markers
   fall back to the whole prompt (documented, and the safe direction for a cache:
   the whole prompt is then the key).

Everything that is not the question (the template with the retrieved context, the
system prompt, earlier turns, tool results) is context: the cache puts it in its exact
partition key (see :func:`prompt_context`).
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator, Mapping, Sequence
from contextvars import ContextVar
from typing import Any

from llama_index.core.base.llms.types import ChatMessage, MessageRole, TextBlock

from costopt_core.rag_question import question_in

# Template argument names that carry the user's question in LlamaIndex's prompts
# (query engines: query_str; condense-question chat engine: question).
QUESTION_ARGS: tuple[str, ...] = ("query_str", "question", "query")

_QUESTION_HINT: ContextVar[str | None] = ContextVar("costopt_question_hint", default=None)

# The refine template names its question in a sentence (the others label it: question_in).
_REFINE_LINE = re.compile(
    r"The original query is as follows: (?P<q>.+?)\nWe have provided an existing answer:",
    re.DOTALL,
)


def message_text(message: ChatMessage) -> str:
    """Text of a message: its text blocks joined; images, audio and tool blocks skipped."""
    parts = [b.text for b in message.blocks if isinstance(b, TextBlock)]
    return "\n".join(parts)


def _role(message: ChatMessage) -> str:
    role = message.role
    return role.value if isinstance(role, MessageRole) else str(role)


# How a ReAct agent (llama_index.core.agent.react) words the user turns it writes itself:
# a tool's result, and its request to answer again in the format it could not parse.
AGENT_FEEDBACK_PREFIXES: tuple[str, ...] = ("Observation:", "Error while parsing the output:")


def is_agent_feedback(message: ChatMessage) -> bool:
    """Whether a user turn is a ReAct agent's own (a tool's result, a format reminder),
    not the user's: it is context, never the question routed or cached on.

    Example:
        >>> is_agent_feedback(ChatMessage(role="user", content="Observation: 42"))
        True
        >>> is_agent_feedback(ChatMessage(role="user", content="What is 6 x 7?"))
        False
    """
    return _role(message) == MessageRole.USER.value and message_text(message).lstrip().startswith(
        AGENT_FEEDBACK_PREFIXES
    )


def _react_conversation(messages: Sequence[ChatMessage]) -> bool:
    # A ReAct agent's: its system header names "Action Input:", its steps say "Thought:" /
    # "Action:". A plain chat whose user writes "Observation: ..." is not one.
    for message in messages:
        role = _role(message)
        if role == MessageRole.SYSTEM.value and "Action Input:" in message_text(message):
            return True
        if role == MessageRole.ASSISTANT.value:
            text = message_text(message).lstrip()
            if text.startswith(("Thought:", "Action:")) or "\nAction:" in text:
                return True
    return False


def _question_index(messages: Sequence[ChatMessage]) -> int | None:
    # The last user turn that is the user's own; else the last user turn; else None.
    last_user = None
    react = _react_conversation(messages)
    for index in range(len(messages) - 1, -1, -1):
        message = messages[index]
        if _role(message) == MessageRole.USER.value:
            if not react or not is_agent_feedback(message):
                return index
            if last_user is None:
                last_user = index
    return last_user


def latest_user_text(messages: Sequence[ChatMessage]) -> str:
    """Text of the user's last message (a ReAct agent's observations and format
    reminders, sent as user turns, are skipped); the last message of any kind if none
    is a user's.

    Example:
        >>> latest_user_text([ChatMessage(role="user", content="What is 6 x 7?"),
        ...                   ChatMessage(role="assistant", content="Action: multiply"),
        ...                   ChatMessage(role="user", content="Observation: 42")])
        'What is 6 x 7?'
    """
    index = _question_index(messages)
    if index is not None:
        return message_text(messages[index])
    return message_text(messages[-1]) if messages else ""


def _user_turns(messages: Sequence[ChatMessage]) -> list[ChatMessage]:
    # The user's own turns, oldest first (without an agent's feedback turns).
    react = _react_conversation(messages)
    return [
        m
        for m in messages
        if _role(m) == MessageRole.USER.value and not (react and is_agent_feedback(m))
    ]


def user_turns_text(messages: Sequence[ChatMessage]) -> str:
    """All user turns, oldest first, for strategies that should see the conversation."""
    return "\n".join(message_text(m) for m in _user_turns(messages))


def tool_call_ids(message: ChatMessage) -> list[str]:
    """Ids of the tool calls a message makes or answers, in any of LlamaIndex's shapes:
    ``ToolCallBlock`` blocks, OpenAI-style ``additional_kwargs["tool_calls"]``, and the
    ``additional_kwargs["tool_call_id"]`` of a tool result."""
    ids: list[str] = []
    for block in message.blocks:
        block_id = getattr(block, "tool_call_id", None)
        if getattr(block, "block_type", None) == "tool_call" and isinstance(block_id, str):
            ids.append(block_id)
    extra = message.additional_kwargs or {}
    for call in extra.get("tool_calls") or ():
        call_id = call.get("id") if isinstance(call, Mapping) else getattr(call, "id", None)
        if isinstance(call_id, str):
            ids.append(call_id)
    result_id = extra.get("tool_call_id")
    if isinstance(result_id, str):
        ids.append(result_id)
    return ids


def has_tool_history(messages: Sequence[ChatMessage]) -> bool:
    """True once the conversation holds tool calls or tool results."""
    return any(
        _role(m) in (MessageRole.TOOL.value, MessageRole.FUNCTION.value) or tool_call_ids(m)
        for m in messages
    )


def parse_question(text: str) -> str | None:
    """The question inside a prompt built from one of LlamaIndex's default QA templates,
    or ``None`` when the prompt does not follow one."""
    question = question_in(text)
    if question is not None:
        return question
    if "original query" not in text:
        return None  # fast path: most prompts are not refine prompts
    refine = _REFINE_LINE.search(text)
    if refine:
        return refine.group("q").strip() or None
    return None


def current_question_hint() -> str | None:
    """The question recorded by the innermost :func:`question_scope`, if any."""
    return _QUESTION_HINT.get()


@contextlib.contextmanager
def question_scope(prompt_args: Mapping[str, Any]) -> Iterator[str | None]:
    """Record the question found in a prompt template's arguments for the LLM call made
    inside the ``with`` block (``predict`` -> ``chat``/``complete``)."""
    question = None
    for name in QUESTION_ARGS:
        value = prompt_args.get(name)
        if isinstance(value, str) and value.strip():
            question = value
            break
    if question is None:
        yield None
        return
    token = _QUESTION_HINT.set(question)
    try:
        yield question
    finally:
        _QUESTION_HINT.reset(token)


def question_of(text: str, hint: str | None = None) -> str:
    """The question a prompt asks: the hint when the prompt contains it verbatim, else a
    default QA template's question, else the whole prompt."""
    if hint is None:
        hint = _QUESTION_HINT.get()
    if hint and hint in text:
        return hint
    return parse_question(text) or text


def prompt_context(text: str, question: str) -> str:
    """What a prompt holds besides its question: the prompt with the (last occurrence
    of the) question replaced by a marker. Empty when the prompt is the question."""
    if not question or text == question:
        return ""
    head, sep, tail = text.rpartition(question)
    if not sep:
        return text
    return head + "\x00{question}\x00" + tail


def chat_question(messages: Sequence[ChatMessage], *, include_history: bool = False) -> str:
    """What a strategy should classify for a chat call: the latest user turn's question
    (or every user turn's, with ``include_history``)."""
    if include_history:
        turns = [question_of(message_text(m)) for m in _user_turns(messages)]
        return "\n".join(turns) if turns else latest_user_text(messages)
    return question_of(latest_user_text(messages))


def split_chat(messages: Sequence[ChatMessage]) -> tuple[str, list[tuple[str, str]]]:
    """Split a chat call into (question, context): the question of the latest user turn,
    and every other part of the conversation as ``(role, text)`` pairs, the latest user
    turn contributing its text with the question masked out (e.g. a RAG template) and
    its non-text blocks (images, audio, documents)."""
    last_user = _question_index(messages)
    if last_user is None:
        last_user = len(messages) - 1
    context: list[tuple[str, str]] = []
    question = ""
    for index, message in enumerate(messages):
        text = message_text(message)
        # The question's own images, audio or documents change the answer as much as
        # any other turn's: the same words about another picture must not hit.
        extra = _stable_extra(message)
        suffix = f"\x00{extra}" if extra else ""
        if index == last_user:
            question = question_of(text)
            context.append((_role(message) + ":question", prompt_context(text, question) + suffix))
            continue
        context.append((_role(message), text + suffix))
    return question, context


def _stable_extra(message: ChatMessage) -> str:
    """Tool calls and non-text blocks change the answer: fold them into the context."""
    parts: list[str] = []
    for block in message.blocks:
        if not isinstance(block, TextBlock):
            try:
                parts.append(block.model_dump_json())
            except Exception:  # a block that cannot serialise still differs by type
                parts.append(type(block).__name__)
    calls = (message.additional_kwargs or {}).get("tool_calls")
    if calls:
        parts.append(repr(calls))
    result_id = (message.additional_kwargs or {}).get("tool_call_id")
    if result_id:
        parts.append(f"tool_call_id={result_id}")
    return "\x01".join(parts)


def as_messages(
    user_msg: str | ChatMessage | None, chat_history: Sequence[ChatMessage] | None
) -> list[ChatMessage]:
    """The conversation ``*_chat_with_tools`` will send: history plus the new user turn."""
    messages = list(chat_history or [])
    if isinstance(user_msg, str):
        messages.append(ChatMessage(role=MessageRole.USER, content=user_msg))
    elif user_msg is not None:
        messages.append(user_msg)
    return messages


__all__ = [
    "AGENT_FEEDBACK_PREFIXES",
    "QUESTION_ARGS",
    "as_messages",
    "chat_question",
    "current_question_hint",
    "has_tool_history",
    "is_agent_feedback",
    "latest_user_text",
    "message_text",
    "parse_question",
    "prompt_context",
    "question_of",
    "question_scope",
    "split_chat",
    "tool_call_ids",
    "user_turns_text",
]
