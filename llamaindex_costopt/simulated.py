"""SimulatedLLM and HashingEmbedding: deterministic, offline stand-ins for LlamaIndex.

Example:
    >>> from llamaindex_costopt.simulated import SimulatedLLM
    >>> llm = SimulatedLLM(model_name="gpt-4o-mini")
    >>> response = llm.complete("What is 2 + 2?")
    >>> response.raw["usage"]["completion_tokens"] > 0
    True

``SimulatedLLM`` is a LlamaIndex ``FunctionCallingLLM`` that implements every endpoint
directly (chat, complete, their async and streaming forms): each call emits exactly
one LLM start/end event pair, unlike LlamaIndex's ``MockLLM`` whose chat nests a
completion. It answers with text derived from the question, reports OpenAI-style usage
in ``raw["usage"]`` from an offline token estimate, streams word by word, and calls
tools whose name the question mentions (arguments filled from the tool's schema, numbers
taken from the question). It mirrors ``langchain_costopt.simulated.SimulatedChatModel``
for LlamaIndex; it stands in for a provider model where no key or network is available.

``HashingEmbedding`` wraps the engine's ``costopt_core.hashing.HashingEmbedder`` (hashed
words and character n-grams) as a LlamaIndex ``BaseEmbedding``: lexical similarity, the
same vector in every process, no download. (``MockEmbedding`` returns one constant
vector for every text, which makes every text look identical.)
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from llama_index.core.base.embeddings.base import BaseEmbedding
from llama_index.core.base.llms.types import (
    ChatMessage,
    ChatResponse,
    ChatResponseAsyncGen,
    ChatResponseGen,
    CompletionResponse,
    CompletionResponseAsyncGen,
    CompletionResponseGen,
    LLMMetadata,
    MessageRole,
)
from llama_index.core.llms.callbacks import llm_chat_callback, llm_completion_callback
from llama_index.core.llms.function_calling import FunctionCallingLLM
from llama_index.core.llms.llm import ToolSelection
from pydantic import Field, PrivateAttr

from costopt_core.hashing import HashingEmbedder
from costopt_core.simulation import (
    choose_tool,
    fill_schema,
    simulated_answer,
    truncate_to_tokens,
)
from costopt_core.tokens import estimate_tokens
from llamaindex_costopt.messages import as_messages, latest_user_text, message_text, question_of

if TYPE_CHECKING:
    from llama_index.core.tools.types import BaseTool


class SimulatedProviderError(RuntimeError):
    """Raised by a SimulatedLLM configured with ``fail=True``."""


class SimulatedLLM(FunctionCallingLLM):
    """Deterministic stand-in for a provider LLM.

    Args:
        model_name: reported in metadata and ``raw["model"]`` (price it by name).
        answer: fixed answer text; by default one is derived from the question.
        fail: raise :class:`SimulatedProviderError` on every call (fallback tests).
        answer_words: length of the derived answer in words.
        max_tokens: the most an answer may hold, in tokens (as a provider's cap; a
            budget reserves up to it); ``None``: no cap.
        context_window: reported in metadata.
        function_calling: whether the metadata says it supports tools.
        usage_in: where usage is reported: ``"raw"`` (OpenAI-style ``raw["usage"]``),
            ``"additional_kwargs"`` (prompt/completion token counts) or ``"none"``.
    """

    model_name: str = "simulated-model"
    answer: str | None = None
    fail: bool = False
    answer_words: int = 24
    max_tokens: int | None = None
    context_window: int = 128_000
    function_calling: bool = True
    usage_in: str = "raw"
    calls: int = Field(default=0, exclude=True)
    _seed: int = PrivateAttr(default=0)

    @classmethod
    def class_name(cls) -> str:
        return "SimulatedLLM"

    @property
    def metadata(self) -> LLMMetadata:
        return LLMMetadata(
            context_window=self.context_window,
            num_output=self.max_tokens or 512,
            is_chat_model=True,
            is_function_calling_model=self.function_calling,
            model_name=self.model_name,
        )

    # -- the simulated behaviour ---------------------------------------------------------

    def _answer_text(self, messages: Sequence[ChatMessage], question: str) -> str:
        if self.answer is not None:
            return self.answer
        last = messages[-1] if messages else None
        if last is not None and last.role == MessageRole.TOOL:
            return f"The tool returned {message_text(last)}."
        return simulated_answer(self.model_name, question, self.answer_words)

    def _reply(
        self,
        messages: Sequence[ChatMessage],
        tools: list[dict] | None = None,
        tool_choice: Any = None,
    ) -> ChatResponse:
        self.calls += 1
        if self.fail:
            raise SimulatedProviderError(f"{self.model_name}: simulated provider outage")
        question = question_of(latest_user_text(messages))
        tool_calls = self._tool_calls(messages, question, tools or [], tool_choice)
        text = "" if tool_calls else self._answer_text(messages, question)
        if self.max_tokens is not None:
            text = truncate_to_tokens(text, self.max_tokens)
        prompt_tokens = sum(estimate_tokens(message_text(m)) + 4 for m in messages)
        if tools:
            prompt_tokens += estimate_tokens(json.dumps(tools))
        completion_tokens = max(
            1,
            estimate_tokens(text)
            + sum(estimate_tokens(c["function"]["arguments"]) + 5 for c in tool_calls),
        )
        usage = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        }
        extra: dict[str, Any] = {}
        message_extra: dict[str, Any] = {"tool_calls": tool_calls} if tool_calls else {}
        raw: dict[str, Any] = {"model": self.model_name, "id": f"sim-{uuid.uuid4().hex[:8]}"}
        if self.usage_in == "raw":
            raw["usage"] = usage
        elif self.usage_in == "additional_kwargs":
            extra.update(usage)
        return ChatResponse(
            message=ChatMessage(
                role=MessageRole.ASSISTANT, content=text, additional_kwargs=message_extra
            ),
            raw=raw,
            additional_kwargs=extra,
        )

    def _tool_calls(
        self, messages: Sequence[ChatMessage], question: str, tools: list[dict], choice: Any
    ) -> list[dict[str, Any]]:
        if not tools or (messages and messages[-1].role == MessageRole.TOOL):
            return []
        name = choose_tool([t["function"]["name"] for t in tools], question, choice)
        if name is None:
            return []
        schema = next(t["function"] for t in tools if t["function"]["name"] == name)
        args = fill_schema(schema.get("parameters") or {}, question)
        return [
            {
                "id": f"call_{uuid.uuid4().hex[:12]}",
                "type": "function",
                "function": {"name": name, "arguments": json.dumps(args)},
            }
        ]

    @staticmethod
    def _prompt_messages(prompt: str) -> list[ChatMessage]:
        return [ChatMessage(role=MessageRole.USER, content=prompt)]

    @staticmethod
    def _as_completion(
        response: ChatResponse, delta: str | None = None, text: str | None = None
    ) -> CompletionResponse:
        return CompletionResponse(
            text=response.message.content or "" if text is None else text,
            delta=delta,
            raw=response.raw,
            additional_kwargs=response.additional_kwargs,
        )

    @staticmethod
    def _chunks(response: ChatResponse) -> Iterator[ChatResponse]:
        """Word-by-word chunks; usage and tool calls arrive with the last one."""
        content = response.message.content or ""
        pieces = re.findall(r"\S+\s*", content) or [""]
        text = ""
        for i, piece in enumerate(pieces):
            last = i == len(pieces) - 1
            text += piece
            yield ChatResponse(
                message=ChatMessage(
                    role=MessageRole.ASSISTANT,
                    content=text,
                    additional_kwargs=response.message.additional_kwargs if last else {},
                ),
                delta=piece,
                raw=response.raw if last else {"model": (response.raw or {}).get("model")},
                additional_kwargs=response.additional_kwargs if last else {},
            )

    # -- endpoints: each decorated once, none calling another ---------------------------

    @llm_chat_callback()
    def chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        return self._reply(messages, kwargs.get("tools"), kwargs.get("tool_choice"))

    @llm_chat_callback()
    async def achat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        return self._reply(messages, kwargs.get("tools"), kwargs.get("tool_choice"))

    @llm_chat_callback()
    def stream_chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponseGen:
        def gen() -> ChatResponseGen:
            response = self._reply(messages, kwargs.get("tools"), kwargs.get("tool_choice"))
            yield from self._chunks(response)

        return gen()

    @llm_chat_callback()
    async def astream_chat(
        self, messages: Sequence[ChatMessage], **kwargs: Any
    ) -> ChatResponseAsyncGen:
        async def gen() -> AsyncIterator[ChatResponse]:
            response = self._reply(messages, kwargs.get("tools"), kwargs.get("tool_choice"))
            for chunk in self._chunks(response):
                yield chunk

        return gen()

    @llm_completion_callback()
    def complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        return self._as_completion(self._reply(self._prompt_messages(prompt)))

    @llm_completion_callback()
    async def acomplete(
        self, prompt: str, formatted: bool = False, **kwargs: Any
    ) -> CompletionResponse:
        return self._as_completion(self._reply(self._prompt_messages(prompt)))

    @llm_completion_callback()
    def stream_complete(
        self, prompt: str, formatted: bool = False, **kwargs: Any
    ) -> CompletionResponseGen:
        def gen() -> CompletionResponseGen:
            response = self._reply(self._prompt_messages(prompt))
            for chunk in self._chunks(response):
                yield self._as_completion(chunk, delta=chunk.delta)

        return gen()

    @llm_completion_callback()
    async def astream_complete(
        self, prompt: str, formatted: bool = False, **kwargs: Any
    ) -> CompletionResponseAsyncGen:
        async def gen() -> AsyncIterator[CompletionResponse]:
            response = self._reply(self._prompt_messages(prompt))
            for chunk in self._chunks(response):
                yield self._as_completion(chunk, delta=chunk.delta)

        return gen()

    # -- tools (OpenAI format) -----------------------------------------------------------

    def _prepare_chat_with_tools(
        self,
        tools: Sequence[BaseTool],
        user_msg: str | ChatMessage | None = None,
        chat_history: list[ChatMessage] | None = None,
        verbose: bool = False,
        allow_parallel_tool_calls: bool = False,
        tool_required: bool = False,
        **kwargs: Any,
    ) -> dict[str, Any]:
        tool_specs = [tool.metadata.to_openai_tool() for tool in tools]
        choice = kwargs.pop("tool_choice", None)
        if tool_required and choice is None:
            choice = "required"
        return {
            "messages": as_messages(user_msg, chat_history),
            "tools": tool_specs or None,
            "tool_choice": choice,
            **kwargs,
        }

    def get_tool_calls_from_response(
        self,
        response: ChatResponse,
        error_on_no_tool_call: bool = True,
        **kwargs: Any,
    ) -> list[ToolSelection]:
        calls = response.message.additional_kwargs.get("tool_calls") or []
        if not calls and error_on_no_tool_call:
            raise ValueError(f"Expected at least one tool call, but got {len(calls)} tool calls.")
        return [
            ToolSelection(
                tool_id=call["id"],
                tool_name=call["function"]["name"],
                tool_kwargs=json.loads(call["function"]["arguments"] or "{}"),
            )
            for call in calls
        ]


class HashingEmbedding(BaseEmbedding):
    """The engine's deterministic hashing embedder as a LlamaIndex embedding model.

    Example:
        >>> from llamaindex_costopt.simulated import HashingEmbedding
        >>> embed = HashingEmbedding(dim=64)
        >>> len(embed.get_text_embedding("hello world"))
        64
    """

    dim: int = 512
    _embedder: HashingEmbedder = PrivateAttr()

    def __init__(self, dim: int = 512, **kwargs: Any) -> None:
        kwargs.setdefault("model_name", f"costopt-hashing-{dim}")
        super().__init__(dim=dim, **kwargs)
        self._embedder = HashingEmbedder(dim=dim)

    @classmethod
    def class_name(cls) -> str:
        return "HashingEmbedding"

    def _vector(self, text: str) -> list[float]:
        return self._embedder.embed_one(text).tolist()

    def _get_query_embedding(self, query: str) -> list[float]:
        return self._vector(query)

    async def _aget_query_embedding(self, query: str) -> list[float]:
        return self._vector(query)

    def _get_text_embedding(self, text: str) -> list[float]:
        return self._vector(text)

    def _get_text_embeddings(self, texts: list[str]) -> list[list[float]]:
        return self._embedder.embed(texts).tolist()


__all__ = ["HashingEmbedding", "SimulatedLLM", "SimulatedProviderError"]
