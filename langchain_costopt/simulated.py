"""SimulatedChatModel: a deterministic, offline chat model for examples and tests.

Example:
    >>> from langchain_costopt.simulated import SimulatedChatModel
    >>> model = SimulatedChatModel(model_name="gpt-4o-mini")
    >>> reply = model.invoke("What is 2 + 2?")
    >>> reply.usage_metadata["output_tokens"] > 0
    True

It answers with text derived from the question, reports ``usage_metadata`` from an
offline token estimate, honours stop sequences and ``max_tokens``, streams
word by word with the usage on the last chunk, and calls bound tools with arguments
filled from the tool's JSON schema: numbers in the question fill numeric arguments in
order, quoted text and then capitalised names fill string arguments; after a tool
result it answers in text, unless ``tool_choice="any"`` forces a tool not yet called
this turn (an agent's structured output, ``ToolStrategy``). With
``response_format`` of type ``json_schema`` it answers a JSON object of that schema.
It stands in for a provider model where no API key or network is available; it is
not a model and understands nothing.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import zlib
from collections.abc import AsyncIterator, Iterator
from typing import Any, Literal, cast

from langchain_core.language_models import BaseChatModel, LanguageModelInput
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage, ToolMessage
from langchain_core.messages.ai import UsageMetadata
from langchain_core.output_parsers import JsonOutputParser, PydanticOutputParser
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.runnables import Runnable, RunnableMap, RunnablePassthrough
from langchain_core.utils.function_calling import convert_to_json_schema, convert_to_openai_tool
from langchain_core.utils.pydantic import is_basemodel_subclass
from pydantic import PrivateAttr

from costopt_core.simulation import (
    choose_tool,
    fill_schema,
    simulated_answer,
    truncate_to_tokens,
)
from costopt_core.tokens import estimate_tokens
from langchain_costopt.messages import (
    Messages,
    Stop,
    latest_human_index,
    latest_human_text,
    message_text,
)


class SimulatedProviderError(RuntimeError):
    """Raised by a SimulatedChatModel configured with ``fail=True``."""


# The simulated provider cache's lock, one for every model: a lock kept on the model
# made it unpicklable and un-deep-copyable, unlike a real chat model.
_PREFIX_LOCK = threading.Lock()


class SimulatedChatModel(BaseChatModel):
    """Deterministic stand-in for a provider chat model.

    Args:
        model_name: reported in ``response_metadata["model_name"]`` (price it by name).
        answer: fixed answer text; by default one is derived from the question.
        fail: raise :class:`SimulatedProviderError` on every call (fallback tests).
        answer_words: length of the derived answer in words.
        max_tokens: cut the answer to this many tokens (``finish_reason="length"``), as a
            provider does; a call's own ``max_tokens=`` wins.
        stop_sequences: default stop sequences (a call's ``stop=`` wins).
        prompt_cache: imitate a provider's prompt cache: ``"automatic"`` (OpenAI: every
            prompt prefix of at least ``prompt_cache_min_tokens`` is cached and read back
            by later calls that start with it), ``"explicit"`` (Anthropic: only a call
            with ``cache_control=`` writes its prompt to the cache, billed as cache
            creation), or ``"off"``. Reads and writes are reported in
            ``usage_metadata["input_token_details"]`` as the providers do.

    A call may pass ``model=`` to answer as another model name.
    """

    model_name: str = "simulated-model"
    answer: str | None = None
    fail: bool = False
    answer_words: int = 24
    temperature: float = 0.0
    max_tokens: int | None = None
    stop_sequences: list[str] | None = None
    prompt_cache: Literal["off", "automatic", "explicit"] = "off"
    prompt_cache_min_tokens: int = 1024
    _cached_prefixes: set[bytes] = PrivateAttr(default_factory=set)

    @property
    def _llm_type(self) -> str:
        return "costopt-simulated"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {
            "model_name": self.model_name,
            "answer": self.answer,
            "answer_words": self.answer_words,
            "temperature": self.temperature,
            "max_tokens": self.max_tokens,
            "stop_sequences": self.stop_sequences,
        }

    def _get_ls_params(self, stop: list[str] | None = None, **kwargs: Any) -> Any:
        params = super()._get_ls_params(stop=stop, **kwargs)
        params["ls_provider"] = "simulated"
        model = kwargs.get("model")
        params["ls_model_name"] = model if isinstance(model, str) and model else self.model_name
        return params

    def bind_tools(self, tools: Any, *, tool_choice: Any = None, **kwargs: Any) -> Any:
        """Bind tools in OpenAI's format (``{"type": "function", "function": {...}}``)."""
        strict = kwargs.pop("strict", None)
        formatted = [convert_to_openai_tool(t, strict=strict) for t in tools]
        bind: dict[str, Any] = {"tools": formatted, **kwargs}
        if tool_choice is not None:
            bind["tool_choice"] = tool_choice
        return self.bind(**bind)

    def with_structured_output(
        self, schema: dict[str, Any] | type, **kwargs: Any
    ) -> Runnable[LanguageModelInput, Any]:
        """``method="json_schema"`` answers JSON text through ``response_format``; the
        other methods use a forced tool call (the simulator has no schema-less JSON mode).
        """
        if kwargs.get("method") != "json_schema":
            return super().with_structured_output(schema, **kwargs)
        method = kwargs.pop("method")
        include_raw = bool(kwargs.pop("include_raw", False))
        strict = kwargs.pop("strict", None)
        if kwargs:
            raise ValueError(f"with_structured_output: unsupported arguments {kwargs}")
        json_schema = convert_to_json_schema(schema)
        response_format = {
            "type": "json_schema",
            "json_schema": {
                "name": json_schema.get("title", "answer"),
                "schema": json_schema,
                "strict": strict,
            },
        }
        llm = self.bind(
            response_format=response_format,
            ls_structured_output_format={
                "kwargs": {"method": method, "strict": strict},
                "schema": schema,
            },
        )
        parser: Runnable[Any, Any]
        if isinstance(schema, type) and is_basemodel_subclass(schema):
            parser = PydanticOutputParser(pydantic_object=cast(Any, schema))
        else:
            parser = JsonOutputParser()
        if include_raw:
            parsed = RunnablePassthrough.assign(
                parsed=(lambda x: x["raw"]) | parser, parsing_error=lambda _: None
            )
            fallback = RunnablePassthrough.assign(parsed=lambda _: None)
            return RunnableMap(raw=llm) | parsed.with_fallbacks(
                [fallback], exception_key="parsing_error"
            )
        return llm | parser

    # -- the simulated behaviour ---------------------------------------------------------

    def _reply(
        self, messages: list[BaseMessage], stop: list[str] | None, **kwargs: Any
    ) -> AIMessage:
        model_name = kwargs.get("model") or self.model_name
        if self.fail:
            raise SimulatedProviderError(f"{model_name}: simulated provider outage")
        question = latest_human_text(messages)
        tool_calls = self._tool_calls(messages, question, kwargs, model_name)
        finish = "tool_calls" if tool_calls else "stop"
        text = "" if tool_calls else self._answer_text(messages, question, kwargs, model_name)
        for token in stop or self.stop_sequences or ():
            if token and token in text:
                text = text[: text.index(token)]
                finish = "stop"
        limit = kwargs.get("max_tokens") or self.max_tokens
        if limit is not None and not kwargs.get("response_format"):
            cut = truncate_to_tokens(text, limit)
            if cut != text:
                text, finish = cut, "length"
        if not text and not tool_calls:
            text = "…"  # a provider never returns an empty answer without a tool call
        tools_text = json.dumps(kwargs["tools"]) if kwargs.get("tools") else ""
        prefix_tokens = [estimate_tokens(tools_text) if tools_text else 0]
        for m in messages:
            prefix_tokens.append(prefix_tokens[-1] + estimate_tokens(message_text(m)) + 4)
        prompt_tokens = prefix_tokens[-1]
        cache_read, cache_write = self._provider_cache(messages, tools_text, prefix_tokens, kwargs)
        output_tokens = estimate_tokens(text) + sum(
            estimate_tokens(json.dumps(tc["args"], ensure_ascii=False)) + 5 for tc in tool_calls
        )
        output_tokens = max(1, output_tokens)
        usage = UsageMetadata(
            input_tokens=prompt_tokens,
            output_tokens=output_tokens,
            total_tokens=prompt_tokens + output_tokens,
        )
        if cache_read or cache_write:
            usage["input_token_details"] = {
                "cache_read": cache_read,
                "cache_creation": cache_write,
            }
        return AIMessage(
            content=text,
            tool_calls=tool_calls,
            usage_metadata=usage,
            response_metadata={"model_name": model_name, "finish_reason": finish},
        )

    def _provider_cache(
        self,
        messages: list[BaseMessage],
        tools_text: str,
        prefix_tokens: list[int],
        kwargs: dict[str, Any],
    ) -> tuple[int, int]:
        """(cache-read, cache-write) input tokens, as the imitated provider bills them."""
        if self.prompt_cache == "off":
            return 0, 0
        # One fingerprint per message boundary: a later call reads the longest cached
        # prefix it starts with (the tools, then the messages in order).
        keys: list[bytes] = []
        digest = hashlib.blake2b(tools_text.encode(), digest_size=16)
        for m in messages:
            digest.update(f"{m.type}\x00{message_text(m)}\x01".encode())
            keys.append(digest.copy().digest())
        floor = self.prompt_cache_min_tokens
        with _PREFIX_LOCK:
            read = max(
                (
                    prefix_tokens[i + 1]
                    for i, key in enumerate(keys)
                    if key in self._cached_prefixes
                ),
                default=0,
            )
            writes = self.prompt_cache == "automatic" or bool(kwargs.get("cache_control"))
            if writes and prefix_tokens[-1] >= floor:
                self._cached_prefixes.update(
                    key for i, key in enumerate(keys) if prefix_tokens[i + 1] >= floor
                )
        read = read if read >= floor else 0
        if self.prompt_cache == "explicit" and kwargs.get("cache_control"):
            return read, prefix_tokens[-1] - read  # what is new is written at the write price
        return read, 0

    def _answer_text(
        self,
        messages: list[BaseMessage],
        question: str,
        kwargs: dict[str, Any],
        model_name: str,
    ) -> str:
        response_format = kwargs.get("response_format")
        if isinstance(response_format, dict) and response_format.get("type") == "json_schema":
            schema = (response_format.get("json_schema") or {}).get("schema") or {}
            return json.dumps(fill_schema(schema, question), ensure_ascii=False)
        if self.answer is not None:
            return self.answer
        last = messages[-1] if messages else None
        if isinstance(last, ToolMessage):
            return f"The tool returned {message_text(last)}."
        return simulated_answer(model_name, question, self.answer_words)

    def _tool_calls(
        self,
        messages: list[BaseMessage],
        question: str,
        kwargs: dict[str, Any],
        model_name: str,
    ) -> list[dict[str, Any]]:
        tools = [t for t in kwargs.get("tools") or [] if "function" in t]
        if not tools or not messages:
            return []
        choice = kwargs.get("tool_choice")
        names = [t["function"]["name"] for t in tools]
        if isinstance(messages[-1], ToolMessage):
            # Reading tool results, it answers in text unless the request forces a tool
            # this turn has not called yet (an agent's structured output as a tool:
            # ToolStrategy binds it with tool_choice="any"); never a loop on one tool.
            if choice not in ("any", "required", True):
                return []
            called = {
                call["name"]
                for m in messages[latest_human_index(messages) :]
                if isinstance(m, AIMessage)
                for call in m.tool_calls
            }
            names = [n for n in names if n not in called]
            if not names:
                return []
        name = choose_tool(names, question, choice)
        if name is None:
            return []
        schema = next(t["function"] for t in tools if t["function"]["name"] == name)
        args = fill_schema(schema.get("parameters") or {}, question)
        digest = zlib.crc32(f"{model_name}|{name}|{question}|{len(messages)}".encode())
        return [{"name": name, "args": args, "id": f"call_{digest:08x}", "type": "tool_call"}]

    # -- BaseChatModel hooks -------------------------------------------------------------

    def _generate(
        self, messages: Messages, stop: Stop = None, run_manager: Any = None, **kwargs: Any
    ) -> ChatResult:
        message = self._reply(messages, stop, **kwargs)
        return ChatResult(generations=[ChatGeneration(message=message)])

    async def _agenerate(
        self, messages: Messages, stop: Stop = None, run_manager: Any = None, **kwargs: Any
    ) -> ChatResult:
        return self._generate(messages, stop, **kwargs)

    def _chunks(
        self, messages: list[BaseMessage], stop: list[str] | None, **kwargs: Any
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
                    {
                        "name": tc["name"],
                        "args": json.dumps(tc["args"], ensure_ascii=False),
                        "id": tc["id"],
                        "index": n,
                        "type": "tool_call_chunk",
                    }
                    for n, tc in enumerate(message.tool_calls)
                ]
                if last
                else [],
                chunk_position="last" if last else None,
            )
            yield ChatGenerationChunk(message=chunk)

    def _stream(
        self, messages: Messages, stop: Stop = None, run_manager: Any = None, **kwargs: Any
    ) -> Iterator[ChatGenerationChunk]:
        for chunk in self._chunks(messages, stop, **kwargs):
            if run_manager:
                run_manager.on_llm_new_token(str(chunk.message.content), chunk=chunk)
            yield chunk

    async def _astream(
        self, messages: Messages, stop: Stop = None, run_manager: Any = None, **kwargs: Any
    ) -> AsyncIterator[ChatGenerationChunk]:
        for chunk in self._chunks(messages, stop, **kwargs):
            if run_manager:
                await run_manager.on_llm_new_token(str(chunk.message.content), chunk=chunk)
            yield chunk
