"""What RouterLLM and SemanticCacheLLM share as LlamaIndex LLMs that wrap other LLMs.

* ``predict`` / ``apredict`` / ``stream`` / ``astream`` record the template's question
  (``query_str``) for the ``chat``/``complete`` call they make (see
  :mod:`llamaindex_costopt.messages`), so a RAG prompt is judged by its question.
* A callback manager given to (or assigned on) the wrapper is handed to the wrapped
  LLMs, so LlamaIndex's legacy callbacks see the calls of the model that answered.
* The wrappers themselves are not decorated with LlamaIndex's ``llm_chat_callback`` /
  ``llm_completion_callback``: they call the wrapped model's decorated methods, so each
  call emits exactly one LLM start/end event pair, the answering model's.
* The eight endpoints (``chat`` and ``complete``, each sync, async, stream and async
  stream) are defined once here: each packs its arguments into a request
  (:class:`ChatRequest`, :class:`CompleteRequest`) and hands it to the subclass's
  ``_answer`` / ``_aanswer`` / ``_stream`` / ``_astream``, which decide which wrapped
  LLM gets the request; ``request.send(llm, mode)`` passes the call on unchanged. Spans
  are named after the wrapper's class (``RouterLLM.chat``...), whatever class defines
  the method.
* ``chat_with_tools`` and its forms are LlamaIndex's own: they ask
  ``_prepare_chat_with_tools`` for ``chat`` kwargs, which here carry a
  :class:`ToolsRequest`, so the wrapped LLM that answers receives the original
  ``*_chat_with_tools`` call and formats the tools its own way.
"""

from __future__ import annotations

import contextlib
import copy
import logging
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Self

from llama_index.core.base.llms.types import (
    ChatMessage,
    ChatResponse,
    ChatResponseAsyncGen,
    ChatResponseGen,
    CompletionResponse,
    CompletionResponseAsyncGen,
    CompletionResponseGen,
    ImageBlock,
    LLMMetadata,
)
from llama_index.core.callbacks import CallbackManager
from llama_index.core.instrumentation import get_dispatcher
from llama_index.core.llms.function_calling import FunctionCallingLLM
from llama_index.core.llms.llm import LLM
from llama_index.core.llms.structured_llm import StructuredLLM
from llama_index.core.prompts import BasePromptTemplate
from llama_index.core.types import TokenAsyncGen, TokenGen
from pydantic import BaseModel

from costopt_core.budget_gate import (
    OUTPUT_LIMIT_KEYS,
    BudgetGate,
    CallQuote,
    conforms,
    output_limit_in,
)
from costopt_core.tokens import estimate_schema_tokens, quote_prompt_tokens
from llamaindex_costopt.messages import message_text, question_scope
from llamaindex_costopt.model_slots import SlotsCopied
from llamaindex_costopt.requests import (
    TOOLS_REQUEST,
    ChatRequest,
    CompleteRequest,
    Mode,
    Request,
    ToolsRequest,
    chat_request,
)
from llamaindex_costopt.responses import answer_text, areplay, replay

if TYPE_CHECKING:
    from llama_index.core.tools.types import BaseTool

logger = logging.getLogger(__name__)
dispatcher = get_dispatcher(__name__)

# Until every wrapper names modes as ``Mode.SYNC``...: the same values.
SYNC, ASYNC, STREAM, ASTREAM = Mode.SYNC, Mode.ASYNC, Mode.STREAM, Mode.ASTREAM


def llm_model_name(llm: Any) -> str:
    """The model name an LLM reports in its metadata (``model``/``model_name`` else)."""
    try:
        name = llm.metadata.model_name
    except Exception:  # metadata of a misconfigured model must not break routing
        name = None
    if isinstance(name, str) and name and name != "unknown":
        return name
    for attr in ("model", "model_name", "model_id"):
        value = getattr(llm, attr, None)
        if isinstance(value, str) and value:
            return value
    return class_name_of(llm)


def class_name_of(llm: Any) -> str:
    """The LLM's LlamaIndex ``class_name()`` (what its instrumentation events carry in
    ``model_dict["class_name"]``), else its Python type name: the last resort of a model
    name, the same for the cost handler and the cache."""
    try:
        name = llm.class_name()
    except Exception:
        name = None
    return name if isinstance(name, str) and name else type(llm).__name__


def output_limit(llm: Any, call_kwargs: Mapping[str, Any] | None = None) -> int | None:
    """The most a call of ``llm`` answers, in tokens: the call's own cap (``max_tokens=``
    and the other providers' names), else the LLM's ``additional_kwargs``, else its
    ``max_tokens`` / ``max_new_tokens`` setting; None: the engine's default. ``llm`` may
    also be its settings as a mapping (``LLM.to_dict()``).

    Example:
        >>> from llama_index.core.llms import MockLLM
        >>> llm = MockLLM(max_tokens=64)
        >>> output_limit(llm), output_limit(llm, {"max_tokens": 9}), output_limit(llm.to_dict())
        (64, 9, 64)
    """
    limit = output_limit_in(call_kwargs)
    if limit is not None:
        return limit
    if isinstance(llm, WrapperLLM):
        # A costopt wrapper answers with the LLMs it wraps: the most any of them may.
        caps = [output_limit(inner) for inner in llm._wrapped_llms()]
        return None if not caps or None in caps else max(caps)  # type: ignore[type-var]
    if isinstance(llm, StructuredLLM):
        return output_limit(llm.llm)
    settings = (
        llm
        if isinstance(llm, Mapping)
        else {key: getattr(llm, key, None) for key in _limit_settings(type(llm))}
    )
    # LlamaIndex's ``metadata.num_output`` is only a prompt-sizing hint (256 for any LLM
    # that does not say), not enforced: reserving it would under-reserve an uncapped model.
    return output_limit_in(settings.get("additional_kwargs")) or output_limit_in(settings)


# The settings that may name an LLM's output cap, and those a pydantic LLM class can have
# (its fields and class attributes), by class: asking a pydantic model for an attribute it
# lacks costs a failed lookup and a __getattr__ call, six of them per tier per routed call.
_CAP_SETTINGS = ("additional_kwargs", *OUTPUT_LIMIT_KEYS)
_LIMIT_SETTINGS: dict[type, tuple[str, ...]] = {}


def _limit_settings(cls: type) -> tuple[str, ...]:
    keys = _LIMIT_SETTINGS.get(cls)
    if keys is None:
        fields = getattr(cls, "model_fields", None)
        config = getattr(cls, "model_config", None)
        if (
            not isinstance(fields, Mapping)
            or (isinstance(config, Mapping) and config.get("extra") == "allow")
            or getattr(cls, "__getattr__", None) is not BaseModel.__getattr__
        ):  # instance attributes, pydantic extras or a delegating __getattr__ may name one
            return _CAP_SETTINGS
        keys = tuple(k for k in _CAP_SETTINGS if k in fields or hasattr(cls, k))
        _LIMIT_SETTINGS[cls] = keys
    return keys


# Each tool's schema, by the tool's identity: building one (pydantic's JSON schema) costs
# far more than the rest of a budget check, and an agent sends the same tools on every
# call. The value keeps the tool alive, so its id is not reused while held.
_SCHEMAS_MEMORY = 256
_schemas: dict[int, tuple[Any, Any]] = {}


def tool_schemas(tools: Sequence[Any]) -> list[Any]:
    """The tools as a model is sent them (OpenAI's function format, whatever their
    description's length: a provider may accept what OpenAI's 1024-character check
    refuses), each built once per tool object.

    Example:
        >>> from llama_index.core.tools import FunctionTool
        >>> def add(a: int, b: int) -> int:
        ...     "Adds two integers."
        ...     return a + b
        >>> tool_schemas([FunctionTool.from_defaults(add)])[0]["function"]["name"]
        'add'
    """
    return [_schema_of(tool) for tool in tools]


def _schema_of(tool: Any) -> Any:
    held = _schemas.get(id(tool))
    if held is not None and held[0] is tool:
        return held[1]
    meta = getattr(tool, "metadata", None)
    try:
        schema = meta.to_openai_tool(skip_length_check=True) if meta else repr(tool)
    except Exception:  # a schema that cannot be built is still sent by name
        schema = getattr(meta, "name", repr(tool))
    if len(_schemas) >= _SCHEMAS_MEMORY:
        _schemas.clear()  # a few tools per process: a rare reset, not an LRU
    _schemas[id(tool)] = (tool, schema)
    return schema


def prompt_tokens(request: Request) -> int:
    """What a budget reserves for the prompt of ``request``: its text (never short of the
    real count), the chat format's tokens per message, its images and the tool schemas
    it binds (``costopt_core.tokens.quote_prompt_tokens``).

    Example:
        >>> from llama_index.core.llms import ChatMessage
        >>> prompt_tokens(CompleteRequest("Hello there", False, {}))
        4
        >>> prompt_tokens(ChatRequest([ChatMessage(role="user", content="Hello there")], {}))
        10
    """
    if isinstance(request, CompleteRequest):
        return quote_prompt_tokens([request.prompt], chat=False)
    images = sum(1 for m in request.messages for b in m.blocks if isinstance(b, ImageBlock))
    texts = [message_text(m) for m in request.messages]
    tokens = quote_prompt_tokens(texts, images=images)
    if isinstance(request, ToolsRequest):
        # Per schema (each counted once per process), plus the list's brackets and commas.
        schemas = tool_schemas(request.tools)
        tokens += sum(map(estimate_schema_tokens, schemas)) + len(schemas) + 1
    elif request.kwargs.get("tools"):
        tokens += estimate_schema_tokens(request.kwargs["tools"])
    return tokens


def request_quotes(request: Request, llms: Iterable[tuple[str, Any]]) -> list[CallQuote]:
    """The most ``request`` can cost on each of ``llms`` (model name, LLM), in order: what
    a wrapper reserves before it calls one of them.

    Example:
        >>> from llama_index.core.llms import MockLLM
        >>> request = CompleteRequest("Hello there", False, {})
        >>> request_quotes(request, [("m", MockLLM(max_tokens=64))])
        [CallQuote(model='m', prompt_tokens=4, max_output_tokens=64)]
    """
    tokens = prompt_tokens(request)
    call_kwargs = request.options() if isinstance(request, ToolsRequest) else request.kwargs
    return [CallQuote(name, tokens, output_limit(llm, call_kwargs)) for name, llm in llms]


def merged_metadata(llms: Iterable[LLM], model_name: str) -> LLMMetadata:
    """Metadata of a wrapper over several LLMs: what holds for every one of them."""
    metas = [llm.metadata for llm in llms]
    outputs = [m.num_output for m in metas if m.num_output and m.num_output > 0]
    return LLMMetadata(
        context_window=min(m.context_window for m in metas),
        num_output=max(outputs) if outputs else metas[0].num_output,
        is_chat_model=all(m.is_chat_model for m in metas),
        is_function_calling_model=all(
            m.is_function_calling_model and isinstance(llm, FunctionCallingLLM)
            for m, llm in zip(metas, llms, strict=True)
        ),
        model_name=model_name,
        system_role=metas[0].system_role,
    )


def budget_gates(dispatcher: Any, explicit: BudgetGate | None = None) -> list[BudgetGate]:
    """Cost handlers whose budgets apply to a wrapper's call: ``explicit`` plus those
    registered on the dispatcher chain the wrapper's events travel (up to the root)."""
    gates: list[BudgetGate] = []
    if explicit is not None:
        gates.append(explicit)
    current: Any = dispatcher
    while current is not None:
        for handler in current.event_handlers:
            if conforms(handler, BudgetGate) and not any(handler is g for g in gates):
                gates.append(handler)
        if not current.propagate:
            break
        try:
            current = current.parent
        except (AssertionError, KeyError):
            break
    return gates


@dataclass
class _PromptOrigin:
    """The template a wrapper's ``predict``/``stream`` formats, and what it formatted
    (the wrapper's own settings), so the LLM that answers can format it its own way."""

    template: BasePromptTemplate
    args: dict[str, Any]
    output_parser: Any
    formatted: str | list[ChatMessage] | None = None


_PROMPT_ORIGIN: ContextVar[_PromptOrigin | None] = ContextVar("costopt_prompt_origin", default=None)


@contextlib.contextmanager
def _prompt_scope(
    template: BasePromptTemplate, args: dict[str, Any], output_parser: Any
) -> Iterator[None]:
    token = _PROMPT_ORIGIN.set(_PromptOrigin(template, args, output_parser))
    try:
        yield
    finally:
        _PROMPT_ORIGIN.reset(token)


class WrapperLLM(SlotsCopied, FunctionCallingLLM):
    """Base of the costopt LlamaIndex wrappers: the endpoints are here; a subclass decides
    who answers a request (``_answer``, ``_aanswer``, ``_stream``, ``_astream``).

    Copies: ``copy.deepcopy`` (and ``model_copy(deep=True)``) deep-copies the wrapped
    LLMs and the plain settings, and shares what holds connections, locks or learnt
    state (a subclass's :attr:`_SHARED_ON_COPY` fields, e.g. a cache's store and
    embedding model, a router's strategy, and the engine built from them), so the copy
    answers as the original does. ``from_dict`` needs the objects a dict cannot hold
    (:attr:`_OBJECT_FIELDS`) passed as keyword arguments.
    """

    # A subclass keeps its state in slots, not pydantic private attributes (see
    # model_slots): they are read on every call.
    __slots__ = ()
    _PICKLE_WHAT_PICKLES: ClassVar[bool] = True  # as an LLM's private attributes were

    #: Fields a deep copy shares with the original instead of copying.
    _SHARED_ON_COPY: ClassVar[frozenset[str]] = frozenset()
    #: Fields ``to_dict`` cannot carry as objects: ``from_dict`` must be given them.
    _OBJECT_FIELDS: ClassVar[tuple[str, ...]] = ()

    def _wrapped_llms(self) -> list[LLM]:
        """The LLMs this wrapper delegates to."""
        raise NotImplementedError

    # -- copying and reloading -----------------------------------------------------------

    def __deepcopy__(self, memo: dict[int, Any] | None = None) -> Self:
        memo = {} if memo is None else memo
        clone = copy.copy(self)  # private state (engine, cache) shared; fields replaced
        memo[id(self)] = clone
        for name, value in self.__dict__.items():
            if name not in self._SHARED_ON_COPY:
                clone.__dict__[name] = copy.deepcopy(value, memo)
        clone._copied_from(self)
        clone._share_callback_manager()
        return clone

    def _copied_from(self, original: Self) -> None:
        """Give a deep copy the private state it must not share (locks...)."""

    @classmethod
    def from_dict(cls, data: dict[str, Any], **kwargs: Any) -> Self:  # type: ignore[override]
        """Rebuild a wrapper from ``to_dict()``: its settings come from ``data``; the
        objects a dict cannot hold (the wrapped LLMs...) are passed as keyword arguments.

        Example:
            >>> from llamaindex_costopt import RouterLLM
            >>> from llamaindex_costopt.simulated import SimulatedLLM
            >>> tiers = {"simple": SimulatedLLM(model_name="gpt-4o-mini"),
            ...          "complex": SimulatedLLM(model_name="gpt-4o")}
            >>> data = RouterLLM(llms=tiers, fallback=False).to_dict()
            >>> RouterLLM.from_dict(data, llms=tiers).fallback
            False
            >>> try:
            ...     RouterLLM.from_dict(data)
            ... except TypeError as error:
            ...     print(str(error).split(": ")[-1])
            pass it, RouterLLM.from_dict(data, llms=...)
        """
        given = {**data, **kwargs}
        missing = [name for name in cls._OBJECT_FIELDS if not _an_object(given.get(name))]
        if missing:
            arguments = ", ".join(f"{name}=..." for name in missing)
            raise TypeError(
                f"{cls.__name__}.from_dict cannot rebuild {', '.join(missing)} from a dict "
                f"(to_dict keeps an LLM's settings, not the object): pass "
                f"{'it' if len(missing) == 1 else 'them'}, "
                f"{cls.__name__}.from_dict(data, {arguments})"
            )
        return super().from_dict(data, **kwargs)

    # -- what a subclass decides: who answers a request ----------------------------------

    def _answer(self, request: Request) -> Any:
        raise NotImplementedError

    async def _aanswer(self, request: Request) -> Any:
        raise NotImplementedError

    def _stream(self, request: Request) -> Iterator[Any]:
        raise NotImplementedError

    async def _astream(self, request: Request) -> AsyncIterator[Any]:
        raise NotImplementedError

    # -- callback manager: the wrapper's reaches the wrapped models ----------------------

    def model_post_init(self, context: Any, /) -> None:
        super().model_post_init(context)
        if "callback_manager" in self.model_fields_set:
            self._share_callback_manager()

    def __setattr__(self, name: str, value: Any) -> None:
        super().__setattr__(name, value)
        if name == "callback_manager":
            self._share_callback_manager()

    def _share_callback_manager(self) -> None:
        manager = self.__dict__.get("callback_manager")
        if not isinstance(manager, CallbackManager):
            return
        try:
            llms = self._wrapped_llms()
        except (AttributeError, NotImplementedError):  # during construction
            return
        for llm in llms:
            if llm.callback_manager is not manager:
                llm.callback_manager = manager

    # -- endpoints ------------------------------------------------------------------------

    @dispatcher.span
    def chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        return self._answer(chat_request(messages, kwargs))

    @dispatcher.span
    async def achat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        return await self._aanswer(chat_request(messages, kwargs))

    @dispatcher.span
    def stream_chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponseGen:
        return self._stream(chat_request(messages, kwargs))

    @dispatcher.span
    async def astream_chat(
        self, messages: Sequence[ChatMessage], **kwargs: Any
    ) -> ChatResponseAsyncGen:
        return await self._astream(chat_request(messages, kwargs))

    @dispatcher.span
    def complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        return self._answer(CompleteRequest(prompt, formatted, kwargs))

    @dispatcher.span
    async def acomplete(
        self, prompt: str, formatted: bool = False, **kwargs: Any
    ) -> CompletionResponse:
        return await self._aanswer(CompleteRequest(prompt, formatted, kwargs))

    @dispatcher.span
    def stream_complete(
        self, prompt: str, formatted: bool = False, **kwargs: Any
    ) -> CompletionResponseGen:
        return self._stream(CompleteRequest(prompt, formatted, kwargs))

    @dispatcher.span
    async def astream_complete(
        self, prompt: str, formatted: bool = False, **kwargs: Any
    ) -> CompletionResponseAsyncGen:
        return await self._astream(CompleteRequest(prompt, formatted, kwargs))

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
        """The ``chat`` kwargs of a ``*_chat_with_tools`` call: the conversation and the
        request itself, so that the wrapped LLM that answers formats the tools its own way.

        LlamaIndex's ``chat_with_tools`` (and its async and stream forms) call this, then
        ``chat(**kwargs)``: the request reaches :meth:`chat` under :data:`TOOLS_REQUEST`.
        """
        request = ToolsRequest(
            tools, user_msg, chat_history, verbose, allow_parallel_tool_calls, tool_required, kwargs
        )
        return {"messages": request.messages, TOOLS_REQUEST: request}

    # -- prompt-template entry points: remember the question and the template ----------

    def predict(self, prompt: BasePromptTemplate, **prompt_args: Any) -> str:
        with question_scope(prompt_args), _prompt_scope(prompt, prompt_args, self.output_parser):
            return super().predict(prompt, **prompt_args)

    async def apredict(self, prompt: BasePromptTemplate, **prompt_args: Any) -> str:
        with question_scope(prompt_args), _prompt_scope(prompt, prompt_args, self.output_parser):
            return await super().apredict(prompt, **prompt_args)

    def stream(self, prompt: BasePromptTemplate, **prompt_args: Any) -> TokenGen:
        # The chat/complete call (and so routing and the cache lookup) happens inside
        # stream(), before the token generator is returned.
        with question_scope(prompt_args), _prompt_scope(prompt, prompt_args, self.output_parser):
            return super().stream(prompt, **prompt_args)

    async def astream(self, prompt: BasePromptTemplate, **prompt_args: Any) -> TokenAsyncGen:
        with question_scope(prompt_args), _prompt_scope(prompt, prompt_args, self.output_parser):
            return await super().astream(prompt, **prompt_args)

    # LLM.predict/stream format the template with these (self = the wrapper): what they
    # return is the request the wrapper routes and keys; send() reformats it per LLM.
    def _get_prompt(self, prompt: BasePromptTemplate, **prompt_args: Any) -> str:
        formatted = super()._get_prompt(prompt, **prompt_args)
        _record_formatted(prompt, formatted)
        return formatted

    def _get_messages(self, prompt: BasePromptTemplate, **prompt_args: Any) -> list[ChatMessage]:
        messages = super()._get_messages(prompt, **prompt_args)
        _record_formatted(prompt, messages)
        return messages


def _an_object(value: Any) -> bool:
    """Whether ``value`` is an object (or a mapping of objects), not what ``to_dict``
    made of one (a dict, or a mapping of dicts)."""
    if value is None:
        return False
    if isinstance(value, Mapping):
        return (
            bool(value)
            and "class_name" not in value
            and not any(isinstance(item, Mapping) for item in value.values())
        )
    return True


def _record_formatted(template: BasePromptTemplate, formatted: str | list[ChatMessage]) -> None:
    origin = _PROMPT_ORIGIN.get()
    if origin is not None and origin.template is template:
        origin.formatted = list(formatted) if isinstance(formatted, list) else formatted


def send(request: Request, llm: LLM, mode: Mode) -> Any:
    """Make ``request`` on ``llm`` as ``request.send`` does; a request a wrapper's
    ``predict``/``stream`` formatted is formatted as ``llm`` would format it used
    plainly: its ``system_prompt``, ``query_wrapper_prompt``, ``completion_to_prompt``
    and ``messages_to_prompt`` apply (LlamaIndex applies them in ``predict``, which the
    answering LLM never sees: the wrapper calls its ``chat``/``complete``).

    Example:
        >>> from llama_index.core.llms import ChatMessage
        >>> from llamaindex_costopt.simulated import SimulatedLLM
        >>> request = ChatRequest([ChatMessage(role="user", content="Hi")], {})
        >>> send(request, SimulatedLLM(model_name="gpt-4o-mini"), Mode.SYNC).raw["model"]
        'gpt-4o-mini'
    """
    return _as_plain_call(request, llm).send(llm, mode)


def _as_plain_call(request: Request, llm: LLM) -> Request:
    origin = _PROMPT_ORIGIN.get()
    # A wrapped wrapper formats for the LLM it picks (the origin is still in context);
    # a request that is not the one predict formatted (compressed, made by a strategy...)
    # is passed on as it is.
    if origin is None or origin.formatted is None or isinstance(llm, WrapperLLM):
        return request
    if isinstance(request, ChatRequest) and request.messages == origin.formatted:
        return ChatRequest(llm._extend_messages(list(request.messages)), request.kwargs)
    if (
        isinstance(request, CompleteRequest)
        and request.formatted
        and request.prompt == origin.formatted
    ):
        return CompleteRequest(_prompt_for(llm, origin), True, request.kwargs)
    return request


def _prompt_for(llm: LLM, origin: _PromptOrigin) -> str:
    # LLM._get_prompt with the answering LLM's formatters and the wrapper's output parser
    # (the wrapper parses the answer).
    text = origin.template.format(
        llm=llm,
        messages_to_prompt=llm.messages_to_prompt,
        completion_to_prompt=llm.completion_to_prompt,
        **origin.args,
    )
    if origin.output_parser is not None:
        text = origin.output_parser.format(text)
    return llm._extend_prompt(text)


__all__ = [
    "ASTREAM",
    "ASYNC",
    "STREAM",
    "SYNC",
    "TOOLS_REQUEST",
    "ChatRequest",
    "CompleteRequest",
    "Request",
    "ToolsRequest",
    "WrapperLLM",
    "answer_text",
    "areplay",
    "budget_gates",
    "chat_request",
    "llm_model_name",
    "merged_metadata",
    "output_limit",
    "prompt_tokens",
    "replay",
    "request_quotes",
    "send",
    "tool_schemas",
]
