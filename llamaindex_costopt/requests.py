"""The calls a costopt LlamaIndex wrapper passes on, packed as requests.

Each endpoint of :class:`~llamaindex_costopt.wrapper.WrapperLLM` packs its arguments
into a request; the wrapper decides which wrapped LLM answers, and ``request.send(llm,
mode)`` makes the same call on it (``mode`` is how LlamaIndex prefixes the method:
``chat``, ``achat``, ``stream_chat``, ``astream_chat``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from llama_index.core.base.llms.types import ChatMessage
from llama_index.core.llms.function_calling import FunctionCallingLLM
from llama_index.core.llms.llm import LLM

from llamaindex_costopt.messages import as_messages

if TYPE_CHECKING:
    from llama_index.core.tools.types import BaseTool


class Mode(StrEnum):
    """How an endpoint is called: LlamaIndex's prefix of the method name."""

    SYNC = ""
    ASYNC = "a"
    STREAM = "stream_"
    ASTREAM = "astream_"


@dataclass(frozen=True)
class ChatRequest:
    """A ``chat`` call: ``send(llm, Mode.ASYNC)`` makes it as ``llm.achat(messages, **kwargs)``.

    Example:
        >>> from llama_index.core.llms import ChatMessage
        >>> from llamaindex_costopt.simulated import SimulatedLLM
        >>> request = ChatRequest([ChatMessage(role="user", content="Hi")], {})
        >>> request.send(SimulatedLLM(model_name="gpt-4o-mini"), Mode.SYNC).raw["model"]
        'gpt-4o-mini'
    """

    messages: list[ChatMessage]
    kwargs: dict[str, Any]

    def send(self, llm: LLM, mode: Mode) -> Any:
        return getattr(llm, f"{mode}chat")(self.messages, **self.kwargs)


@dataclass(frozen=True)
class CompleteRequest:
    """A ``complete`` call, passed on as ``llm.<mode>complete(prompt, formatted, **kwargs)``."""

    prompt: str
    formatted: bool
    kwargs: dict[str, Any]

    def send(self, llm: LLM, mode: Mode) -> Any:
        return getattr(llm, f"{mode}complete")(self.prompt, formatted=self.formatted, **self.kwargs)


@dataclass(frozen=True)
class ToolsRequest:
    """A ``chat_with_tools`` call (its arguments as ``FunctionCallingLLM`` names them)."""

    tools: Sequence[BaseTool]
    user_msg: str | ChatMessage | None
    chat_history: list[ChatMessage] | None
    verbose: bool
    allow_parallel_tool_calls: bool
    tool_required: bool
    kwargs: dict[str, Any]

    @property
    def messages(self) -> list[ChatMessage]:
        """The conversation the model will see: ``chat_history`` then ``user_msg``."""
        return as_messages(self.user_msg, self.chat_history)

    def options(self) -> dict[str, Any]:
        """The arguments that can change the answer, besides tools and messages."""
        return {
            "allow_parallel_tool_calls": self.allow_parallel_tool_calls,
            "tool_required": self.tool_required,
            **self.kwargs,
        }

    def _arguments(self) -> dict[str, Any]:
        return {
            "user_msg": self.user_msg,
            "chat_history": self.chat_history,
            "verbose": self.verbose,
            **self.options(),
        }

    def send(self, llm: FunctionCallingLLM, mode: Mode) -> Any:
        return getattr(llm, f"{mode}chat_with_tools")(self.tools, **self._arguments())


Request = ChatRequest | CompleteRequest | ToolsRequest

# The ``chat`` kwarg that carries a ``*_chat_with_tools`` call's request (see
# ``WrapperLLM._prepare_chat_with_tools``).
TOOLS_REQUEST = "costopt_tools_request"


def chat_request(messages: Sequence[ChatMessage], kwargs: dict[str, Any]) -> Request:
    """The request of a ``chat`` call: a tools request when ``chat_with_tools`` made it."""
    tools_request = kwargs.pop(TOOLS_REQUEST, None)
    if isinstance(tools_request, ToolsRequest):
        return tools_request
    return ChatRequest(list(messages), kwargs)


__all__ = [
    "TOOLS_REQUEST",
    "ChatRequest",
    "CompleteRequest",
    "Mode",
    "Request",
    "ToolsRequest",
    "chat_request",
]
