"""SimulatedChatModel: a deterministic, offline chat model for examples and tests.

Example:
    >>> from langchain_costopt.simulated import SimulatedChatModel
    >>> model = SimulatedChatModel(model_name="gpt-4o-mini")
    >>> reply = model.invoke("What is 2 + 2?")
    >>> reply.usage_metadata["output_tokens"] > 0
    True

It answers with text derived from the question, reports ``usage_metadata`` from an
offline token estimate, streams word by word, and calls bound tools with arguments
filled from the tool's JSON schema (numbers taken from the question). It stands in
for a provider model where no API key or network is available; it is not a model.
"""

from __future__ import annotations

import json
import re
import uuid
import zlib
from collections.abc import AsyncIterator, Iterator
from typing import Any

from langchain_core.callbacks import (
    AsyncCallbackManagerForLLMRun,
    CallbackManagerForLLMRun,
)
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage, ToolMessage
from langchain_core.messages.ai import UsageMetadata
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.utils.function_calling import convert_to_openai_tool

from costopt_core.tokens import estimate_tokens
from langchain_costopt.messages import latest_human_text, message_text

_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")


class SimulatedProviderError(RuntimeError):
    """Raised by a SimulatedChatModel configured with ``fail=True``."""


class SimulatedChatModel(BaseChatModel):
    """Deterministic stand-in for a provider chat model.

    Args:
        model_name: reported in ``response_metadata["model_name"]`` (price it by name).
        answer: fixed answer text; by default one is derived from the question.
        fail: raise :class:`SimulatedProviderError` on every call (fallback tests).
        answer_words: length of the derived answer in words.
    """

    model_name: str = "simulated-model"
    answer: str | None = None
    fail: bool = False
    answer_words: int = 24
    temperature: float = 0.0
    max_tokens: int | None = None
    stop_sequences: list[str] | None = None

    @property
    def _llm_type(self) -> str:
        return "costopt-simulated"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"model_name": self.model_name, "answer": self.answer,
                "temperature": self.temperature, "max_tokens": self.max_tokens}

    def _get_ls_params(self, stop: list[str] | None = None, **kwargs: Any) -> Any:
        params = super()._get_ls_params(stop=stop, **kwargs)
        params["ls_provider"] = "simulated"
        params["ls_model_name"] = self.model_name
        return params

    def bind_tools(self, tools: Any, *, tool_choice: Any = None, **kwargs: Any) -> Any:
        formatted = [convert_to_openai_tool(t) for t in tools]
        bind: dict[str, Any] = {"tools": formatted, **kwargs}
        if tool_choice is not None:
            bind["tool_choice"] = tool_choice
        return self.bind(**bind)

    # -- the simulated behaviour ---------------------------------------------------------

    def _reply(self, messages: list[BaseMessage], stop: list[str] | None, **kwargs: Any
               ) -> AIMessage:
        if self.fail:
            raise SimulatedProviderError(f"{self.model_name}: simulated provider outage")
        question = latest_human_text(messages)
        tool_calls = self._tool_calls(messages, question, kwargs)
        text = "" if tool_calls else self._answer_text(messages, question)
        for token in stop or self.stop_sequences or ():
            if token and token in text:
                text = text[: text.index(token)]
        if self.max_tokens is not None:
            text = " ".join(text.split()[: max(1, self.max_tokens)])
        prompt_tokens = sum(estimate_tokens(message_text(m)) + 4 for m in messages)
        if kwargs.get("tools"):
            prompt_tokens += estimate_tokens(json.dumps(kwargs["tools"]))
        output_tokens = estimate_tokens(text) + sum(
            estimate_tokens(json.dumps(tc["args"])) + 5 for tc in tool_calls
        )
        usage = UsageMetadata(
            input_tokens=prompt_tokens,
            output_tokens=max(1, output_tokens),
            total_tokens=prompt_tokens + max(1, output_tokens),
        )
        return AIMessage(
            content=text,
            tool_calls=tool_calls,
            usage_metadata=usage,
            response_metadata={"model_name": self.model_name, "finish_reason": "stop"},
        )

    def _answer_text(self, messages: list[BaseMessage], question: str) -> str:
        if self.answer is not None:
            return self.answer
        last = messages[-1] if messages else None
        if isinstance(last, ToolMessage):
            return f"The tool returned {message_text(last)}."
        seed = zlib.crc32(f"{self.model_name}|{question}".encode())
        words = re.findall(r"\w+", question)[:8] or ["your", "question"]
        filler = ["this", "depends", "on", "context", "and", "the", "details", "given",
                  "so", "here", "is", "a", "concise", "answer", "with", "reasons"]
        body = []
        for _ in range(self.answer_words):
            seed = (seed * 1103515245 + 12345) & 0x7FFFFFFF  # deterministic LCG
            body.append(filler[(seed >> 16) % len(filler)])
        return f"{self.model_name} on '{' '.join(words)}': " + " ".join(body) + "."

    def _tool_calls(self, messages: list[BaseMessage], question: str, kwargs: dict[str, Any]
                    ) -> list[dict[str, Any]]:
        tools = kwargs.get("tools") or []
        if not tools or isinstance(messages[-1], ToolMessage):
            return []
        choice = kwargs.get("tool_choice")
        names = [t["function"]["name"] for t in tools if "function" in t]
        if choice in (None, "auto"):
            chosen = [n for n in names if n.lower() in question.lower()]
            if not chosen:
                return []
            name = chosen[0]
        elif choice == "none":
            return []
        elif isinstance(choice, str) and choice in names:
            name = choice
        elif isinstance(choice, dict):
            name = choice.get("function", {}).get("name") or choice.get("name") or names[0]
        else:  # "any" / "required" / True
            mentioned = [n for n in names if n.lower() in question.lower()]
            name = mentioned[0] if mentioned else names[0]
        schema = next(t["function"] for t in tools if t["function"]["name"] == name)
        args = _fill_schema(schema.get("parameters") or {}, question)
        return [{"name": name, "args": args, "id": f"call_{uuid.uuid4().hex[:12]}",
                 "type": "tool_call"}]

    # -- BaseChatModel hooks -------------------------------------------------------------

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        message = self._reply(messages, stop, **kwargs)
        return ChatResult(generations=[ChatGeneration(message=message)])

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        return self._generate(messages, stop, **kwargs)

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        message = self._reply(messages, stop, **kwargs)
        pieces = re.findall(r"\S+\s*", str(message.content)) or [""]
        for i, piece in enumerate(pieces):
            last = i == len(pieces) - 1
            chunk = AIMessageChunk(
                content=piece,
                usage_metadata=message.usage_metadata if last else None,
                response_metadata=message.response_metadata if last else {},
                tool_call_chunks=[
                    {"name": tc["name"], "args": json.dumps(tc["args"]), "id": tc["id"],
                     "index": n, "type": "tool_call_chunk"}
                    for n, tc in enumerate(message.tool_calls)
                ] if last else [],
            )
            if last:
                chunk.chunk_position = "last"
            generation = ChatGenerationChunk(message=chunk)
            if run_manager:
                run_manager.on_llm_new_token(piece, chunk=generation)
            yield generation

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        for chunk in self._stream(messages, stop, **kwargs):
            if run_manager:
                await run_manager.on_llm_new_token(str(chunk.message.content), chunk=chunk)
            yield chunk


def _fill_schema(schema: dict[str, Any], question: str) -> dict[str, Any]:
    """Arguments for a JSON schema: numbers from the question in order, text otherwise."""
    numbers = iter(_NUMBER.findall(question))
    words = re.findall(r"[A-Za-z\u4e00-\u9fff]+", question) or ["value"]
    props: dict[str, Any] = schema.get("properties") or {}
    required = schema.get("required") or list(props)
    args: dict[str, Any] = {}
    for name, spec in props.items():
        if name not in required and "default" in spec:
            continue
        args[name] = _value_for(spec, numbers, words, name)
    return args


def _value_for(spec: dict[str, Any], numbers: Iterator[str], words: list[str], name: str) -> Any:
    kind = spec.get("type")
    if "enum" in spec:
        return spec["enum"][0]
    if kind == "integer":
        return int(float(next(numbers, "1")))
    if kind == "number":
        return float(next(numbers, "1"))
    if kind == "boolean":
        return True
    if kind == "array":
        return [_value_for(spec.get("items") or {"type": "string"}, numbers, words, name)]
    if kind == "object":
        return _fill_schema(spec, " ".join(words))
    if "anyOf" in spec:
        options = [s for s in spec["anyOf"] if s.get("type") != "null"] or spec["anyOf"]
        return _value_for(options[0], numbers, words, name)
    return f"{name}: {' '.join(words[:6])}"
