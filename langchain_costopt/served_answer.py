"""A stored answer served again (a cache hit) is a new message, with new ids.

Example:
    >>> from langchain_core.messages import AIMessage, AIMessageChunk
    >>> stored = AIMessage("", id="run-1", tool_calls=[
    ...     {"name": "weather", "args": {"city": "Paris"}, "id": "call_abc"}])
    >>> served = as_new_answer(stored)
    >>> served.id is None, served.tool_calls[0]["id"].startswith("call_")
    (True, True)
    >>> served.tool_calls[0]["id"] != "call_abc", stored.tool_calls[0]["id"]
    (True, 'call_abc')

With the stored message's id, a LangGraph thread (``add_messages``) would overwrite the
earlier message of that id instead of appending the answer; without one, a graph gives
it a fresh id, and a stream its run's id, as a model call's would. Its tool calls get
fresh ids too: an agent thread that asks the same thing twice would otherwise hold two
calls (and two tool results) under one id, which a provider refuses in the history and
a UI pairs with the wrong result. The id keeps its provider's prefix (``call_``,
``toolu_``), and every place the provider format repeats it (OpenAI's raw
``additional_kwargs["tool_calls"]``, its Responses API ``function_call`` blocks' ``call_id``,
Anthropic's ``tool_use`` content blocks) gets the same new id.
"""

from __future__ import annotations

import uuid
from typing import Any

from langchain_core.messages import AIMessage, AIMessageChunk


def _new_id(old: str) -> str:
    prefix, sep, _ = old.rpartition("_")
    return f"{prefix}{sep}{uuid.uuid4().hex[:24]}" if sep else uuid.uuid4().hex[:24]


def _renamed(items: Any, ids: dict[str, str]) -> Any:
    # Content blocks and raw tool calls: dicts whose "id" is a tool call's, or (OpenAI's
    # Responses API) whose "call_id" is, with an "id" of the stored output item, which a
    # new answer does not have: dropped.
    if not isinstance(items, list):
        return items
    out = []
    for item in items:
        if isinstance(item, dict):
            if isinstance(item.get("call_id"), str) and item["call_id"] in ids:
                item = {k: v for k, v in item.items() if k != "id"}
                item["call_id"] = ids[item["call_id"]]
            elif isinstance(item.get("id"), str) and item["id"] in ids:
                item = {**item, "id": ids[item["id"]]}
        out.append(item)
    return out


def as_new_answer(message: AIMessage) -> AIMessage:
    """``message`` as a new answer: no message id, fresh tool call ids (a copy; the
    stored message is left as it is)."""
    calls = [*message.tool_calls, *message.invalid_tool_calls]
    ids = {c["id"]: _new_id(c["id"]) for c in calls if isinstance(c.get("id"), str)}
    if not ids:
        return message.model_copy(update={"id": None}) if message.id is not None else message
    update: dict[str, Any] = {
        "id": None,
        "tool_calls": [{**c, "id": ids.get(c["id"], c["id"])} for c in message.tool_calls],
        "invalid_tool_calls": [
            {**c, "id": ids.get(c["id"], c["id"])} if c.get("id") else c
            for c in message.invalid_tool_calls
        ],
        "content": _renamed(message.content, ids),
    }
    if isinstance(message, AIMessageChunk):
        update["tool_call_chunks"] = _renamed(message.tool_call_chunks, ids)
    extra = message.additional_kwargs
    if extra.get("tool_calls") is not None:
        update["additional_kwargs"] = {**extra, "tool_calls": _renamed(extra["tool_calls"], ids)}
    return message.model_copy(update=update)


__all__ = ["as_new_answer"]
