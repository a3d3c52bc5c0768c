"""Tools and structured output bound on a router, re-bound each inner model's own way.

A router's ``bind_tools`` / ``with_structured_output`` cannot format the request itself:
each provider formats tools differently, and the model that answers is known only at
call time. The router binds provider-neutral call kwargs (:data:`TOOL_KEYS`); at call
time :class:`ToolBinder` turns them into the chosen model's own kwargs, by calling that
model's ``bind_tools`` / ``with_structured_output`` and taking the binding's kwargs.

Example:
    >>> from langchain_costopt.simulated import SimulatedChatModel
    >>> def add(a: int, b: int) -> int:
    ...     '''Add two integers.'''
    ...     return a + b
    >>> binder = ToolBinder()
    >>> formatted = binder.register_tools([add])
    >>> model = SimulatedChatModel(model_name="gpt-4o-mini")
    >>> kwargs = binder.call_kwargs("simple", model, {"tools": formatted})
    >>> [tool["function"]["name"] for tool in kwargs["tools"]]
    ['add']
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any, cast

from langchain_core.exceptions import OutputParserException
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessageChunk, BaseMessage, BaseMessageChunk
from langchain_core.output_parsers import BaseCumulativeTransformOutputParser
from langchain_core.output_parsers.json import parse_json_markdown
from langchain_core.outputs import ChatGeneration, Generation
from langchain_core.runnables import RunnableBinding, RunnableSequence
from langchain_core.utils.function_calling import convert_to_openai_tool
from langchain_core.utils.pydantic import is_basemodel_subclass

from langchain_costopt.messages import message_text

logger = logging.getLogger(__name__)

# The router's own call kwargs for bound tools and structured output.
TOOL_KEYS = ("tools", "tool_choice", "tool_options", "costopt_structured")
STRUCTURED_METHODS = ("function_calling", "json_mode", "json_schema")
_CACHE_MAX = 256


class ToolBinder:
    """Per-inner-model kwargs for the tools or schema bound on a router, cached.

    Binding is costly (tool schemas are converted by each provider), so the inner
    kwargs are cached per (tier, bound object); the caches are bounded and thread-safe.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        # (tier, id(tools or structured spec)) -> (that object, choice, options, kwargs)
        self._bound: dict[tuple[str, int], tuple[Any, Any, Any, dict[str, Any]]] = {}
        # id(formatted tools list) -> (formatted list, the tools as the user gave them)
        self._sources: dict[int, tuple[Any, list[Any]]] = {}

    # A router is copied and pickled as any chat model is (``copy.deepcopy``,
    # ``model_copy(deep=True)``, multiprocessing): a lock cannot be, and the caches are
    # keyed on object ids that mean nothing in the copy, so a copy starts empty.
    def __getstate__(self) -> dict[str, Any]:
        return {}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__()  # type: ignore[misc]

    def register_tools(self, tools: Sequence[Any]) -> list[dict[str, Any]]:
        """The tools in OpenAI format (what the router binds), remembering the originals
        so each inner model can bind them its own way."""
        originals = list(tools)
        formatted = [convert_to_openai_tool(tool) for tool in originals]
        with self._lock:
            if len(self._sources) >= _CACHE_MAX:
                self._sources.clear()
            self._sources[id(formatted)] = (formatted, originals)
        return formatted

    def call_kwargs(
        self, tier: str, model: BaseChatModel, kwargs: dict[str, Any]
    ) -> dict[str, Any]:
        """``kwargs`` with the router's tool/schema kwargs replaced by ``model``'s own.

        Options bound with an empty tool list (``create_agent(tools=[],
        response_format=ProviderStrategy(...))`` binds ``response_format`` that way) still
        go through the model's ``bind_tools``, which turns them into its own request.
        """
        if not kwargs or not any(k in kwargs for k in TOOL_KEYS):
            return kwargs
        kwargs = dict(kwargs)
        tools = kwargs.pop("tools", None)
        tool_choice = kwargs.pop("tool_choice", None)
        options = kwargs.pop("tool_options", None) or {}
        structured = kwargs.pop("costopt_structured", None)
        bound = structured if structured is not None else tools
        if not bound and not options:
            return kwargs
        if bound is None:  # options bound without a tools list: key the cache on them
            bound = options
        key = (tier, id(bound))
        cached = self._bound.get(key)
        if (
            cached is not None
            and cached[0] is bound
            and cached[1] == tool_choice
            and cached[2] == options
        ):
            return {**cached[3], **kwargs}
        if structured is not None:
            inner = structured_kwargs(model, structured)
        else:
            source = self._sources.get(id(tools))
            originals = (
                source[1] if source is not None and source[0] is tools else list(tools or ())
            )
            bind_kwargs: dict[str, Any] = dict(options)
            if tool_choice is not None:
                bind_kwargs["tool_choice"] = tool_choice
            inner = binding_kwargs(model, model.bind_tools(originals, **bind_kwargs))
        with self._lock:
            if len(self._bound) >= _CACHE_MAX:
                self._bound.clear()
            self._bound[key] = (bound, tool_choice, options, inner)
        return {**inner, **kwargs}


def structured_kwargs(model: BaseChatModel, spec: dict[str, Any]) -> dict[str, Any]:
    """Call kwargs that make ``model`` answer in ``spec["schema"]``, its own way.

    A model with its own ``with_structured_output`` builds the request (response
    format, JSON mode, ...); the router takes the binding's kwargs and parses the answer
    itself (:class:`StructuredAnswerParser`). Other models get the schema as a forced
    tool call.
    """
    schema, method, strict = spec["schema"], spec["method"], spec.get("strict")
    if type(model).with_structured_output is not BaseChatModel.with_structured_output:
        try:
            runnable = model.with_structured_output(schema, method=method, strict=strict)
        except (NotImplementedError, ValueError, TypeError) as exc:
            logger.info("%s: %s not available (%r); using a tool call", type(model), method, exc)
        else:
            found = _find_binding(runnable, model)
            if found is not None:
                found.pop("ls_structured_output_format", None)
                return found
    options = {} if strict is None else {"strict": strict}
    return binding_kwargs(model, model.bind_tools([schema], tool_choice="any", **options))


def binding_kwargs(model: BaseChatModel, bound: Any) -> dict[str, Any]:
    """The kwargs of ``model.bind_tools(...)``'s binding (a binding of the model itself).

    A model whose ``bind_tools`` returns the model itself (a scripted test model, or one
    that knows its tools already) gets no kwargs, as when it is called directly.
    """
    if bound is model:
        return {}
    kwargs = getattr(bound, "kwargs", None)
    if getattr(bound, "bound", None) is not model or not isinstance(kwargs, dict):
        raise TypeError(
            f"{type(model).__name__}.bind_tools returned {type(bound).__name__}; "
            "RouterChatModel needs a binding of the model itself"
        )
    return dict(kwargs)


def _find_binding(runnable: Any, model: BaseChatModel) -> dict[str, Any] | None:
    """The kwargs of the binding over ``model`` inside a with_structured_output chain."""
    stack = [runnable]
    seen = 0
    while stack and seen < 32:
        seen += 1
        node = stack.pop(0)
        if isinstance(node, RunnableBinding):
            if node.bound is model:
                return dict(node.kwargs)
            stack.append(node.bound)
        elif isinstance(node, RunnableSequence):
            stack.extend(node.steps)
    return None


class StructuredAnswerParser(BaseCumulativeTransformOutputParser[Any]):
    """Parses a structured answer given either as a tool call or as JSON text.

    Streamed, it yields as LangChain's own ``with_structured_output`` parsers do: a
    dict-like schema (JSON schema, TypedDict) gives the growing partial answer, as
    ``JsonOutputParser`` / ``JsonOutputKeyToolsParser`` do; a pydantic model gives the
    validated object once, at the end, as ``ChatOpenAI``'s ``json_schema`` parser does (a
    half-streamed object would be validated from truncated fields). The whole answer is
    parsed once more at the end, so a stream fails on a bad answer as ``invoke`` does.

    Example:
        >>> from langchain_core.messages import AIMessageChunk
        >>> parser = StructuredAnswerParser(answer_schema={"type": "object"})
        >>> pieces = ['{"city": "Pa', 'ris", "temp', '": 21}']
        >>> list(parser.transform(AIMessageChunk(content=p) for p in pieces))
        [{'city': 'Pa'}, {'city': 'Paris'}, {'city': 'Paris', 'temp': 21}]
    """

    answer_schema: Any

    def parse(self, text: str) -> Any:
        try:
            data = parse_json_markdown(text)
        except json.JSONDecodeError as exc:
            # What LangChain's own JSON parsers raise, and retry code catches.
            raise OutputParserException(f"Invalid JSON answer: {exc}", llm_output=text) from exc
        return self._validate(data)

    def parse_result(self, result: list[Any], *, partial: bool = False) -> Any:
        if partial and self._is_model():
            return None
        message = result[0].message if result else None
        tool_calls = getattr(message, "tool_calls", None)
        if tool_calls:
            # A streamed tool call's args are already parsed as far as they go.
            args = tool_calls[0]["args"]
            return args if partial else self._validate(args)
        text = message_text(message) if isinstance(message, BaseMessage) else result[0].text
        if not partial:
            return self.parse(text)
        try:
            return parse_json_markdown(text)
        except json.JSONDecodeError:
            return None

    def _transform(self, input: Iterator[str | BaseMessage]) -> Iterator[Any]:
        stream = _AnswerStream(self)
        for chunk in input:
            yield from stream.add(chunk)
        yield from stream.finish()

    async def _atransform(self, input: AsyncIterator[str | BaseMessage]) -> AsyncIterator[Any]:
        # Partial parses run inline, not in an executor as LangChain's do: each is a
        # partial-JSON scan of one answer, cheaper than the thread hop.
        stream = _AnswerStream(self)
        async for chunk in input:
            for parsed in stream.add(chunk):
                yield parsed
        for parsed in stream.finish():
            yield parsed

    def _is_model(self) -> bool:
        schema = self.answer_schema
        return isinstance(schema, type) and is_basemodel_subclass(schema)

    def _validate(self, data: Any) -> Any:
        schema = self.answer_schema
        if self._is_model():
            if hasattr(schema, "model_validate"):
                return schema.model_validate(data)
            return schema.parse_obj(data)  # pydantic.v1 models
        return data

    @property
    def _type(self) -> str:
        return "costopt_structured_answer"


class _AnswerStream:
    """One streamed answer: the pieces so far and the last value yielded.

    The pieces are added as messages (or text) and wrapped in a generation only to be
    parsed: adding generation chunks, as LangChain's cumulative parsers do, costs more
    per piece. A pydantic answer parses only at the end, so its pieces are merged then,
    in one addition (each message addition re-parses the tool-call arguments so far).
    """

    def __init__(self, parser: StructuredAnswerParser) -> None:
        self._parser = parser
        self._partials = not parser._is_model()
        self._whole: str | BaseMessage | None = None
        self._pieces: list[str | BaseMessage] = []
        self._last: Any = None

    def add(self, chunk: str | BaseMessage) -> list[Any]:
        """The new partial answer, if ``chunk`` changed it."""
        if not self._partials:
            self._pieces.append(chunk)
            return []
        self._whole = _accumulate(self._whole, chunk)
        return self._changed(self._parser.parse_result([_generation(self._whole)], partial=True))

    def finish(self) -> list[Any]:
        """The whole answer, parsed and validated, if it differs from the last partial."""
        if self._pieces:
            self._whole = _merged(self._pieces)
        if self._whole is None:
            return []
        return self._changed(self._parser.parse_result([_generation(self._whole)]))

    def _changed(self, parsed: Any) -> list[Any]:
        if parsed is None or parsed == self._last:
            return []
        self._last = parsed
        return [parsed]


def _merged(pieces: list[str | BaseMessage]) -> str | BaseMessage:
    first, rest = pieces[0], pieces[1:]
    if rest and all(isinstance(piece, AIMessageChunk) for piece in pieces):
        return cast(AIMessageChunk, first) + cast(list[AIMessageChunk], rest)
    whole = first
    for piece in rest:
        whole = _accumulate(whole, piece)
    return whole


def _accumulate(whole: str | BaseMessage | None, chunk: str | BaseMessage) -> str | BaseMessage:
    """``whole`` with the next streamed piece added. A whole message (not a chunk) is
    taken as the whole answer so far: LangChain's parsers turn it into a plain message
    chunk, which loses its tool calls."""
    if isinstance(whole, BaseMessageChunk) and isinstance(chunk, BaseMessageChunk):
        return whole + chunk
    if isinstance(whole, str) and isinstance(chunk, str):
        return whole + chunk
    return chunk


def _generation(whole: str | BaseMessage) -> Generation:
    return Generation(text=whole) if isinstance(whole, str) else ChatGeneration(message=whole)


__all__ = [
    "STRUCTURED_METHODS",
    "TOOL_KEYS",
    "StructuredAnswerParser",
    "ToolBinder",
    "binding_kwargs",
    "structured_kwargs",
]
