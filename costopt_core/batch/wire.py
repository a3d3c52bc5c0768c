"""The contract between a provider's batch format and the transport that runs it.

A provider module (:mod:`~costopt_core.batch.openai`, :mod:`~costopt_core.batch.anthropic`)
never does I/O: it describes each HTTP call (:class:`HttpCall`) and reads each reply
(:class:`HttpReply`). :mod:`~costopt_core.batch.client` runs those descriptions over
HTTP, with one loop for the sync and the async transport.

Example:
    >>> reply = HttpReply(200, b'{"id": "batch_1"}')
    >>> reply.json()["id"], reply.transient
    ('batch_1', False)
    >>> HttpReply(0, b"connection refused").transient
    True
"""

from __future__ import annotations

import json
from collections.abc import Generator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, Protocol

from costopt_core.batch.requests import BatchAPIError, BatchRequest, BatchResult


@dataclass(frozen=True)
class HttpCall:
    """One HTTP call: ``path`` is joined to the provider's base URL unless it is absolute.

    ``files``: multipart fields ``{name: (filename, bytes, content type)}`` sent with the
    form fields ``data``.
    """

    method: Literal["GET", "POST"]
    path: str
    json: Any = None
    files: Mapping[str, tuple[str, bytes, str]] | None = None
    data: Mapping[str, str] | None = None


@dataclass(frozen=True)
class HttpReply:
    """A reply's status and body. Status 0: the call never got an answer (network)."""

    status: int
    body: bytes = b""

    @property
    def transient(self) -> bool:
        """Worth trying again: no answer, rate limited, or a server error."""
        return self.status == 0 or self.status == 429 or self.status >= 500

    def json(self) -> Any:
        return json.loads(self.body.decode("utf-8"))


@dataclass(frozen=True)
class Wait:
    """Sleep before the next call (the transport sleeps its own way, sync or async)."""

    seconds: float


@dataclass(frozen=True)
class BatchStatus:
    """Where a batch stands after one poll: ``ended`` once its results can be read."""

    batch_id: str
    ended: bool
    state: str
    detail: Mapping[str, Any] = field(default_factory=dict)


#: What a provider generator yields and is sent back: the engine's I/O protocol.
Steps = Generator[HttpCall | Wait, HttpReply | None, Any]


class BatchProvider(Protocol):
    """A provider's batch API as HTTP call descriptions (no I/O)."""

    @property
    def name(self) -> str:
        """``"openai"``, ``"anthropic"``..."""
        ...

    @property
    def base_url(self) -> str:
        """Where its API lives (paths of :class:`HttpCall` are joined to it)."""
        ...

    @property
    def max_requests(self) -> int:
        """The most requests one batch may hold."""
        ...

    def headers(self) -> dict[str, str]:
        """Authentication and version headers for every call."""
        ...

    def submit(self, requests: Sequence[BatchRequest]) -> Generator[HttpCall, HttpReply, str]:
        """Create the batch; returns its id."""
        ...

    def status_call(self, batch_id: str) -> HttpCall:
        """The call that reads the batch's status."""
        ...

    def read_status(self, batch_id: str, reply: HttpReply) -> BatchStatus:
        """The status in ``reply``; raises :class:`BatchAPIError` if the batch failed."""
        ...

    def results(self, status: BatchStatus) -> Generator[HttpCall, HttpReply, list[BatchResult]]:
        """Fetch and parse the results of an ended batch (any order)."""
        ...

    def cancel_call(self, batch_id: str) -> HttpCall:
        """The call that cancels the batch."""
        ...


class BatchEndpoint:
    """Where a provider's batch API lives and the key it takes: the base of the provider
    classes (the key is never shown in ``repr``).

    Example:
        >>> from costopt_core.batch.openai import OpenAIBatchAPI
        >>> OpenAIBatchAPI("sk-secret", "http://127.0.0.1:8000/v1/")
        OpenAIBatchAPI(base_url='http://127.0.0.1:8000/v1')
        >>> OpenAIBatchAPI("")
        Traceback (most recent call last):
        ...
        ValueError: api_key must be a non-empty string (the provider's API key)
    """

    #: The provider's own API root, used without ``base_url``.
    default_base_url: ClassVar[str]

    def __init__(
        self, api_key: str, base_url: str | None, extra_headers: Mapping[str, str] | None
    ) -> None:
        if not isinstance(api_key, str) or not api_key:
            raise ValueError("api_key must be a non-empty string (the provider's API key)")
        self._api_key = api_key
        self.base_url = (base_url or self.default_base_url).rstrip("/")
        self._extra_headers = dict(extra_headers or {})

    def __repr__(self) -> str:
        return f"{type(self).__name__}(base_url={self.base_url!r})"


def check_reply(reply: HttpReply, what: str) -> HttpReply:
    """``reply`` if it succeeded, else :class:`BatchAPIError` with the provider's message.

    Example:
        >>> check_reply(HttpReply(401, b'{"error": {"message": "bad key", "type": "auth"}}'),
        ...             "POST /v1/batches")
        Traceback (most recent call last):
        ...
        costopt_core.batch.requests.BatchAPIError: POST /v1/batches failed (401 auth): bad key
    """
    if 200 <= reply.status < 300:
        return reply
    message, kind = _error_of(reply)
    raise BatchAPIError(
        f"{what} failed ({reply.status}{' ' + kind if kind else ''}): {message}",
        status_code=reply.status,
        error_type=kind,
    )


def _error_of(reply: HttpReply) -> tuple[str, str]:
    # OpenAI: {"error": {"message", "type"}}; Anthropic: {"type": "error", "error": {...}}.
    try:
        error = reply.json().get("error")
    except (ValueError, AttributeError, UnicodeDecodeError):
        return reply.body.decode("utf-8", "replace")[:500] or "no answer", ""
    if isinstance(error, Mapping):
        return str(error.get("message", error)), str(error.get("type") or "")
    return str(error), ""


__all__ = [
    "BatchEndpoint",
    "BatchProvider",
    "BatchStatus",
    "HttpCall",
    "HttpReply",
    "Steps",
    "Wait",
    "check_reply",
]
