"""One request of a provider batch, one result, and the ways a batch fails.

Example:
    >>> from costopt_core.batch.requests import BatchRequest, batch_requests
    >>> [r.custom_id for r in batch_requests("gpt-4o-mini", [[{"role": "user", "content": "hi"}]])]
    ['request-0']
    >>> BatchRequest("bad id!", "gpt-4o-mini", ({"role": "user", "content": "hi"},))
    Traceback (most recent call last):
    ...
    ValueError: custom_id must be 1-64 letters, digits, '_' or '-', got 'bad id!'

A request holds its messages in OpenAI's chat format (``{"role", "content"}`` dicts,
assistant ``tool_calls``, ``tool`` messages): what LangChain's
``convert_to_openai_messages`` gives, and what each provider module turns into its own
wire format. ``params`` are the call's settings in the same format (``max_tokens``,
``temperature``, ``stop``, ``tools``, ``tool_choice``...).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from costopt_core.ledger import TokenUsage
from costopt_core.usage import usage_from_mapping

# Both providers accept this alphabet (Anthropic's is the stricter of the two).
_CUSTOM_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


@dataclass(frozen=True)
class BatchRequest:
    """One call of a batch: an id to match its result, the model, messages and settings."""

    custom_id: str
    model: str
    messages: tuple[Mapping[str, Any], ...]
    params: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.custom_id, str) or not _CUSTOM_ID.match(self.custom_id):
            raise ValueError(
                f"custom_id must be 1-64 letters, digits, '_' or '-', got {self.custom_id!r}"
            )
        if not isinstance(self.model, str) or not self.model:
            raise ValueError(f"model must be a non-empty model name, got {self.model!r}")
        if not self.messages or not all(
            isinstance(m, Mapping) and isinstance(m.get("role"), str) for m in self.messages
        ):
            raise ValueError("messages must be a non-empty sequence of {'role', 'content'} dicts")
        if not isinstance(self.params, Mapping):
            raise TypeError(f"params must be a mapping, got {type(self.params).__name__}")


def batch_requests(
    model: str,
    conversations: Iterable[Sequence[Mapping[str, Any]]],
    params: Mapping[str, Any] | None = None,
) -> list[BatchRequest]:
    """One request per conversation, ids ``request-0``, ``request-1``... in order."""
    settings = dict(params or {})
    return [
        BatchRequest(f"request-{i}", model, tuple(messages), settings)
        for i, messages in enumerate(conversations)
    ]


@dataclass(frozen=True)
class ToolCall:
    """A tool call in an answer: the provider's id, the tool's name, parsed arguments."""

    id: str
    name: str
    args: Mapping[str, Any]


@dataclass(frozen=True)
class BatchResult:
    """What came back for one request: an answer, or why there is none.

    ``error_type`` is the provider's (``invalid_request_error``, ``expired``,
    ``canceled``...); ``raw`` is the provider's answer object (the chat completion or
    message) as it came.
    """

    custom_id: str
    text: str = ""
    tool_calls: tuple[ToolCall, ...] = ()
    usage: TokenUsage | None = None
    model: str | None = None
    finish_reason: str | None = None
    raw: Mapping[str, Any] = field(default_factory=dict)
    error: str | None = None
    error_type: str | None = None

    @property
    def ok(self) -> bool:
        """True when the request was answered."""
        return self.error is None

    @classmethod
    def answered(
        cls,
        custom_id: str,
        answer: Mapping[str, Any],
        text: str,
        tool_calls: Sequence[ToolCall] = (),
        finish_reason: str | None = None,
    ) -> BatchResult:
        """The result of a request answered with ``answer`` (a chat completion or a
        message: both providers put ``usage`` and ``model`` at its top).

        Example:
            >>> result = BatchResult.answered("r-0", {"model": "m", "usage": {
            ...     "input_tokens": 3, "output_tokens": 1}}, "hi", finish_reason="end_turn")
            >>> result.ok, result.model, result.usage.total_tokens
            (True, 'm', 4)
        """
        return cls(
            custom_id,
            text=text,
            tool_calls=tuple(tool_calls),
            usage=usage_from_mapping(answer.get("usage")),
            model=answer.get("model"),
            finish_reason=finish_reason,
            raw=answer,
        )


class BatchAPIError(RuntimeError):
    """The batch API refused a call or the batch as a whole failed (HTTP status, type)."""

    def __init__(
        self, message: str, *, status_code: int | None = None, error_type: str = ""
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.error_type = error_type


class BatchTimeoutError(TimeoutError):
    """The batch had not ended within the timeout; it was cancelled (best effort)."""

    def __init__(self, message: str, *, batch_id: str) -> None:
        super().__init__(message)
        self.batch_id = batch_id


class BatchRequestError(RuntimeError):
    """One request of a batch came back without an answer (the face raises it for it)."""

    def __init__(self, result: BatchResult) -> None:
        super().__init__(f"{result.custom_id}: {result.error_type or 'error'}: {result.error}")
        self.result = result


__all__ = [
    "BatchAPIError",
    "BatchRequest",
    "BatchRequestError",
    "BatchResult",
    "BatchTimeoutError",
    "ToolCall",
    "batch_requests",
]
