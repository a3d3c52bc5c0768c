"""LlamaIndex answers as the wrappers read and replay them.

Example:
    >>> from llama_index.core.base.llms.types import CompletionResponse
    >>> answer = CompletionResponse(text="Paris")
    >>> answer_text(answer), [chunk.delta for chunk in replay(answer)]
    ('Paris', ['Paris'])
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

from llama_index.core.base.llms.types import ChatResponse, CompletionResponse


def answer_text(response: ChatResponse | CompletionResponse) -> str:
    """The text of an answer, chat or completion."""
    if isinstance(response, ChatResponse):
        return response.message.content or ""
    return response.text or ""


def whole_answer(chunk: ChatResponse | CompletionResponse) -> Any:
    """A stream's latest chunk as the whole answer so far (LlamaIndex chunks carry the
    text so far; their ``delta`` is cleared)."""
    if isinstance(chunk, ChatResponse):
        return ChatResponse(
            message=chunk.message, raw=chunk.raw, additional_kwargs=chunk.additional_kwargs
        )
    return CompletionResponse(
        text=chunk.text, raw=chunk.raw, additional_kwargs=chunk.additional_kwargs
    )


def replay(response: ChatResponse | CompletionResponse) -> Iterator[Any]:
    """A whole answer as a one-chunk stream (its text is the chunk's delta)."""
    if isinstance(response, ChatResponse):
        yield ChatResponse(
            message=response.message,
            raw=response.raw,
            delta=response.message.content or "",
            logprobs=response.logprobs,
            additional_kwargs=response.additional_kwargs,
        )
    else:
        yield CompletionResponse(
            text=response.text,
            raw=response.raw,
            delta=response.text,
            logprobs=response.logprobs,
            additional_kwargs=response.additional_kwargs,
        )


async def areplay(response: ChatResponse | CompletionResponse) -> AsyncIterator[Any]:
    """Async :func:`replay`."""
    for chunk in replay(response):
        yield chunk


__all__ = ["answer_text", "areplay", "replay", "whole_answer"]
