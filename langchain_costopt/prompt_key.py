"""What of a LangChain cache prompt is matched: the text embedded and the exact context.

Example:
    >>> from langchain_core.load import dumps
    >>> from langchain_core.messages import HumanMessage, SystemMessage
    >>> text, context = split_prompt(dumps([SystemMessage("Be brief."), HumanMessage("Hi!")]))
    >>> text, "Be brief." in context, "Hi!" in context
    ('Hi!', True, False)
    >>> split_prompt("Tell me a joke")
    ('Tell me a joke', 'text')

A chat model's prompt is ``langchain_core.load.dumps(messages)``: only the text of the
latest human turn is embedded; every system prompt, every other turn (content, tool
calls by name and arguments, a failed tool's status) and the non-text parts (images,
files) of the latest human turn make up the exact context. Message ids and provider
metadata are left out: they do not change the answer. A plain LLM's prompt (not message
JSON) is embedded as it is, its context ``"text"``.

Reading a prompt as LangChain's ``loads`` would, without building its messages: a
prompt is read back with ``loads``'s allow-list (message classes only, never arbitrary
objects). The key needs a few fields of each message, and for the common message
classes (system, human, AI, tool, chat) the constructor keeps those fields as they are
written whenever they are of the types it expects; such a message is read straight from
its JSON (:func:`_written_turn`), the others are built (LangChain's validation decides).
Building two pydantic messages was ~2/3 of keying a two-message prompt.
``tests/unit_tests/langchain/test_cache_prompt_keys.py`` holds both paths to ``loads``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from langchain_core import messages as lc_messages
from langchain_core.messages import BaseMessage

from langchain_costopt.messages import content_text, is_human, latest_index
from langchain_costopt.revive import Revive, flat_objects

#: The message classes a prompt may hold: a prompt must never build arbitrary objects.
MESSAGE_CLASSES: list[Any] = [
    lc_messages.AIMessage,
    lc_messages.AIMessageChunk,
    lc_messages.ChatMessage,
    lc_messages.ChatMessageChunk,
    lc_messages.FunctionMessage,
    lc_messages.FunctionMessageChunk,
    lc_messages.HumanMessage,
    lc_messages.HumanMessageChunk,
    lc_messages.SystemMessage,
    lc_messages.SystemMessageChunk,
    lc_messages.ToolMessage,
    lc_messages.ToolMessageChunk,
]

# Built once: LangChain's loads() resolves the allow-list anew on every call (~1 ms).
_revive_messages = Revive(MESSAGE_CLASSES)

#: A message: the field values the key reads, and whether a person wrote it.
Turn = tuple[Mapping[str, Any], bool]

_STR_OR_NONE = (str, type(None))
_BLOCK = (str, dict)


def _tool_call_as_written(call: Any) -> bool:
    # AIMessage rebuilds each call from name, args and id (other keys fail).
    return (
        isinstance(call, dict)
        and call.keys() <= {"name", "args", "id", "type"}
        and isinstance(call.get("name"), str)
        and isinstance(call.get("args"), dict)
        and "id" in call
        and isinstance(call["id"], _STR_OR_NONE)
        and call.get("type", "tool_call") == "tool_call"
    )


def _ai_as_written(kwargs: dict[str, Any]) -> bool:
    calls = kwargs.get("tool_calls", [])
    return (
        # Without tool_calls, AIMessage parses them from additional_kwargs.
        "tool_calls" not in (kwargs.get("additional_kwargs") or {})
        and kwargs.get("invalid_tool_calls", []) == []
        and kwargs.get("usage_metadata") is None  # validated: left to LangChain
        and isinstance(calls, list)
        and all(_tool_call_as_written(call) for call in calls)
    )


def _tool_as_written(kwargs: dict[str, Any]) -> bool:
    # ToolMessage turns a number id into a str and odd content into text.
    return isinstance(kwargs.get("tool_call_id"), str) and kwargs.get("status", "success") in (
        "success",
        "error",
    )


def _chat_as_written(kwargs: dict[str, Any]) -> bool:
    return isinstance(kwargs.get("role"), str)


# Class path -> (its type, whether a person writes it, its fields, its own check of
# the kwargs). "A person" by the one rule, asked of an unvalidated blank message.
_AS_WRITTEN: dict[tuple[str, ...], tuple[str, bool, frozenset[str], Any]] = {
    tuple(cls.lc_id()): (
        cls.model_fields["type"].default,
        is_human(cls.model_construct(content="")),
        frozenset(cls.model_fields),
        check,
    )
    for cls, check in (
        (lc_messages.SystemMessage, None),
        (lc_messages.HumanMessage, None),
        (lc_messages.AIMessage, _ai_as_written),
        (lc_messages.ToolMessage, _tool_as_written),
        (lc_messages.ChatMessage, _chat_as_written),
    )
}


def _written_turn(item: dict[str, Any]) -> Turn | None:
    """The turn of one ``{"lc": 1, ...}`` message of a flat prompt, read from its kwargs
    when its class would keep every field the key reads as written; else None."""
    ident, kwargs = item.get("id"), item.get("kwargs")
    if item.get("type") != "constructor" or not isinstance(ident, list):
        return None
    if not all(isinstance(part, str) for part in ident) or not isinstance(kwargs, dict):
        return None
    known = _AS_WRITTEN.get(tuple(ident))
    if known is None:
        return None
    kind, human, fields, check = known
    content = kwargs.get("content")
    if not (
        kwargs.keys() <= fields  # an extra field: left to LangChain
        and kwargs.get("type", kind) == kind
        and (
            isinstance(content, str)
            or (isinstance(content, list) and all(isinstance(b, _BLOCK) for b in content))
        )
        and isinstance(kwargs.get("name"), _STR_OR_NONE)
        and isinstance(kwargs.get("id"), _STR_OR_NONE)
        and isinstance(kwargs.get("additional_kwargs", {}), dict)
        and isinstance(kwargs.get("response_metadata", {}), dict)
        and (check is None or check(kwargs))
    ):
        return None
    return (kwargs if "type" in kwargs else {**kwargs, "type": kind}), human


def _turn(message: BaseMessage) -> Turn:
    return vars(message), is_human(message)


def parse_messages(prompt: str) -> list[BaseMessage] | None:
    """The messages of a chat model's prompt (``dumps(messages)``), or None for a plain
    prompt (anything else, including JSON that is not a list of messages)."""
    if not prompt.startswith("["):
        return None
    try:
        value = _revive_messages(prompt)
    except Exception:  # any plain prompt that merely looks like JSON
        return None
    if isinstance(value, list) and value and all(isinstance(m, BaseMessage) for m in value):
        return value
    return None


def _prompt_turns(prompt: str) -> list[Turn] | None:
    """:func:`parse_messages` as turns, messages read from their JSON where they can be."""
    if not prompt.startswith("["):
        return None
    try:
        items = json.loads(prompt)
    except ValueError:
        return None
    if not (items and flat_objects(prompt, items)):
        messages = parse_messages(prompt)
        return None if messages is None else [_turn(m) for m in messages]
    turns = []
    for item in items:
        turn = _written_turn(item)
        if turn is None:
            try:
                message = _revive_messages.revive_object(item)
            except Exception:  # not a message LangChain accepts: a plain prompt
                return None
            if not isinstance(message, BaseMessage):
                return None
            turn = _turn(message)
        turns.append(turn)
    return turns


def _non_text_content(content: Any) -> Any:
    if isinstance(content, str):
        return ""
    return [
        block
        for block in content or ()
        if not isinstance(block, str)
        and not (isinstance(block, dict) and block.get("type") == "text")
    ]


def _message_key(fields: Mapping[str, Any], *, strip_text: bool) -> dict[str, Any]:
    """What of a message (its field values) can change the answer."""
    content = fields["content"]
    key: dict[str, Any] = {
        "type": fields["type"],
        "content": _non_text_content(content) if strip_text else content,
    }
    name = fields.get("name")
    if name:
        key["name"] = name
    # Fields of some message classes only (role: chat; tool_calls: AI; status: tool).
    role = fields.get("role")
    if role:
        key["role"] = role
    tool_calls = fields.get("tool_calls")
    if tool_calls:
        key["tool_calls"] = [[call.get("name"), call.get("args")] for call in tool_calls]
    function_call = (fields.get("additional_kwargs") or {}).get("function_call")
    if function_call:
        key["function_call"] = function_call
    status = fields.get("status")
    if status is not None and status != "success":
        key["status"] = status
    return key


def _split(turns: Sequence[Turn]) -> tuple[str, str]:
    latest = latest_index([human for _, human in turns])
    text = content_text(turns[latest][0]["content"])
    context = []
    calls: dict[Any, tuple[int, int]] = {}  # tool call id -> (its AI message, its place)
    for i, (fields, _) in enumerate(turns):
        key = _message_key(fields, strip_text=i == latest)
        if fields.get("tool_calls"):
            calls.update({call.get("id"): (i, n) for n, call in enumerate(fields["tool_calls"])})
        elif fields["type"] == "tool":
            # Which call a result answers (by its place: ids differ from run to run):
            # the same results given to the other calls are another question.
            key["answers"] = calls.get(fields.get("tool_call_id"))
        context.append(key)
    return text, "messages:" + json.dumps(context, sort_keys=True, ensure_ascii=False, default=str)


def split_prompt(prompt: str) -> tuple[str, str]:
    """(text to embed, exact context) of a LangChain cache prompt (see the module)."""
    turns = _prompt_turns(prompt)
    return (prompt, "text") if turns is None else _split(turns)


def split_messages(messages: Sequence[BaseMessage]) -> tuple[str, str]:
    """(text to embed, exact context) of a chat model's messages: what
    :func:`split_prompt` gives for ``dumps(messages)``.

    Example:
        >>> from langchain_core.messages import AIMessage, HumanMessage
        >>> text, context = split_messages([HumanMessage("Hi!"), AIMessage("Hello."),
        ...                                 HumanMessage("Who are you?")])
        >>> text, "Hello." in context
        ('Who are you?', True)
    """
    if not messages:
        raise ValueError("messages must hold at least one message, got none")
    return _split([_turn(m) for m in messages])


__all__ = ["MESSAGE_CLASSES", "Turn", "parse_messages", "split_messages", "split_prompt"]
