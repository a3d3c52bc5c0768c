"""What RouterChatModel does to the answers it passes on: the routing record goes on
each answer, and a stream gets it on its first chunk.

Example:
    >>> from langchain_core.messages import AIMessage
    >>> from langchain_core.outputs import ChatGeneration, ChatResult
    >>> result = ChatResult(generations=[ChatGeneration(message=AIMessage("hi"))])
    >>> info = {"tier": "simple", "model": "deepseek-v3", "score": 0.0, "reason": "cue"}
    >>> message = annotate_result(result, info, "deepseek-v3").generations[0].message
    >>> message.response_metadata["routing"]["tier"], message.response_metadata["model_name"]
    ('simple', 'deepseek-v3')
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from langchain_core.messages import AIMessageChunk, BaseMessage
from langchain_core.messages.tool import ToolCallChunk, tool_call_chunk
from langchain_core.outputs import ChatGenerationChunk, ChatResult

from costopt_core.engine import ROUTING_KEY, AnswerFacts
from langchain_costopt.messages import message_text


def annotate_message(message: Any, info: dict[str, Any], model_name: str) -> Any:
    """Put the routing record (and the model name, if absent) on a message."""
    if isinstance(message, BaseMessage):
        message.response_metadata.setdefault("model_name", model_name)
        message.response_metadata[ROUTING_KEY] = dict(info)
    return message


def annotate_result(result: ChatResult, info: dict[str, Any], model_name: str) -> ChatResult:
    """Put the routing record on every generation and in ``llm_output``."""
    for generation in result.generations:
        annotate_message(generation.message, info, model_name)
    result.llm_output = {**(result.llm_output or {}), ROUTING_KEY: dict(info)}
    return result


def message_facts(message: Any) -> AnswerFacts | None:
    """What a cascade judges in a routed answer: its text, and its usage (which prices a
    rejected attempt). ``None`` (nothing to judge: accepted) for an answer that calls
    tools: a tool call is a step of an agent's loop, not the answer, and its text is
    empty or a preamble, which a length, JSON or pattern check would reject.

    Example:
        >>> from langchain_core.messages import AIMessage
        >>> message_facts(AIMessage("Paris.", response_metadata={"model_name": "m"}))
        AnswerFacts(text='Paris.', usage=None, model='m')
        >>> message_facts(AIMessage("", tool_calls=[{"name": "f", "args": {}, "id": "1"}]))
    """
    if not isinstance(message, BaseMessage) or getattr(message, "tool_calls", None):
        return None
    usage = getattr(message, "usage_metadata", None)
    return AnswerFacts(
        message_text(message),
        dict(usage) if usage else None,
        message.response_metadata.get("model_name"),
    )


def tool_call_chunks_of(message: BaseMessage) -> list[ToolCallChunk]:
    """A message's tool calls as the stream chunks that add up to them.

    Example:
        >>> from langchain_core.messages import AIMessage
        >>> call = {"name": "weather", "args": {"city": "Paris"}, "id": "c1"}
        >>> tool_call_chunks_of(AIMessage("", tool_calls=[call]))[0]["args"]
        '{"city": "Paris"}'
    """
    return [
        tool_call_chunk(name=tc["name"], args=json.dumps(tc["args"]), id=tc.get("id"), index=i)
        for i, tc in enumerate(getattr(message, "tool_calls", None) or [])
    ]


def result_as_chunks(result: ChatResult) -> Iterator[ChatGenerationChunk]:
    """A finished result replayed as one (last) stream chunk per generation."""
    for generation in result.generations:
        message = generation.message
        chunk_message = AIMessageChunk(
            content=message.content,
            additional_kwargs=message.additional_kwargs,
            response_metadata=message.response_metadata,
            usage_metadata=getattr(message, "usage_metadata", None),
            tool_call_chunks=tool_call_chunks_of(message),
            id=message.id,
            chunk_position="last",
        )
        yield ChatGenerationChunk(message=chunk_message, generation_info=generation.generation_info)


@dataclass
class OpenedStream:
    """A tier's stream, opened: its first chunk (None: an empty answer) and the rest."""

    first: ChatGenerationChunk | None
    rest: Any  # Iterator or AsyncIterator of ChatGenerationChunk


class StreamRelay:
    """Passes an answered stream on: the routing record on the first chunk, and a last
    empty chunk naming the model when the inner stream never named it.

    The answer is either an :class:`OpenedStream` or a whole ``ChatResult`` (a model that
    does not stream), which is replayed as chunks.
    """

    def __init__(self, answer: OpenedStream | ChatResult, info: dict[str, Any], model: str):
        self.answer = answer
        self.info = info
        self.model = model
        self.named = False

    @property
    def rest(self) -> Any:
        """The chunks still to pass on through :meth:`pass_on` (None: nothing more)."""
        opened = self.answer
        return opened.rest if isinstance(opened, OpenedStream) and opened.first else None

    def head(self) -> list[ChatGenerationChunk]:
        """The chunks to send first."""
        answer = self.answer
        if isinstance(answer, ChatResult):
            return list(result_as_chunks(annotate_result(answer, self.info, self.model)))
        if answer.first is None:
            return []
        self.named = _has_model_name(answer.first)
        # Only the decision goes on the first chunk: string metadata such as model_name
        # is concatenated when chunks are added, so it must appear on one chunk only.
        answer.first.message.response_metadata[ROUTING_KEY] = dict(self.info)
        return [answer.first]

    def pass_on(self, chunk: ChatGenerationChunk) -> ChatGenerationChunk:
        self.named = self.named or _has_model_name(chunk)
        return chunk

    def tail(self) -> list[ChatGenerationChunk]:
        """The chunks to send last."""
        if self.rest is None or self.named:
            return []
        message = AIMessageChunk(
            content="", response_metadata={"model_name": self.model}, chunk_position="last"
        )
        return [ChatGenerationChunk(message=message)]


def _has_model_name(chunk: ChatGenerationChunk) -> bool:
    # OpenAI names the model in the last chunk's generation_info, which LangChain merges
    # into response_metadata: naming it again would concatenate the two names.
    info = chunk.generation_info or {}
    return bool(chunk.message.response_metadata.get("model_name") or info.get("model_name"))


__all__ = [
    "OpenedStream",
    "StreamRelay",
    "annotate_message",
    "annotate_result",
    "message_facts",
    "result_as_chunks",
    "tool_call_chunks_of",
]
