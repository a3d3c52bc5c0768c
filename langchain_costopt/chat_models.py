"""RouterChatModel: a LangChain chat model that sends each call to one of N chat models.

Example:
    >>> from langchain_costopt import RouterChatModel
    >>> from langchain_costopt.simulated import SimulatedChatModel
    >>> router = RouterChatModel(models={
    ...     "simple": SimulatedChatModel(model_name="deepseek-v3"),
    ...     "complex": SimulatedChatModel(model_name="claude-3.5-sonnet"),
    ... })
    >>> reply = router.invoke("请翻译: hello")
    >>> reply.response_metadata["routing"]["tier"], reply.response_metadata["model_name"]
    ('simple', 'deepseek-v3')

Tiers are the mapping's keys, ordered cheapest first; a fallback climbs that order.
The router delegates to the chosen model's ``_generate`` / ``_stream`` with its own
run manager, so callbacks, tracing and caches see exactly one run per call (the
router's). ``batch`` is the exception: it groups inputs per tier and calls each inner
model's ``batch`` once, so those runs are the inner models' own, with the decision in
their metadata (``metadata["costopt_routing"]``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, cast

from langchain_core.callbacks import (
    AsyncCallbackManagerForLLMRun,
    BaseCallbackManager,
    CallbackManager,
    CallbackManagerForLLMRun,
)
from langchain_core.globals import get_llm_cache
from langchain_core.language_models import BaseChatModel, LangSmithParams, LanguageModelInput
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.output_parsers import (
    BaseOutputParser,
    JsonOutputKeyToolsParser,
    PydanticToolsParser,
)
from langchain_core.output_parsers.json import parse_json_markdown
from langchain_core.outputs import ChatGenerationChunk, ChatResult
from langchain_core.runnables import (
    Runnable,
    RunnableBinding,
    RunnableConfig,
    RunnableMap,
    RunnablePassthrough,
    RunnableSequence,
)
from langchain_core.runnables.config import ensure_config, get_config_list
from langchain_core.tools import BaseTool
from langchain_core.utils.function_calling import convert_to_openai_tool
from langchain_core.utils.pydantic import is_basemodel_subclass
from pydantic import BaseModel, ConfigDict, model_validator

from costopt_core.budget_gate import downgrade_requested
from costopt_core.decision import (
    RouteDecision,
    RoutingStrategy,
    check_strategy_tiers,
    check_tier_mapping,
    resolve_tier,
    routing_info,
)
from costopt_core.strategies import as_strategy, strategy_signature
from langchain_costopt.messages import has_tool_history, human_turns_text, latest_human_text

logger = logging.getLogger(__name__)

_TOOL_KEYS = ("tools", "tool_choice", "tool_options", "costopt_structured")
_STRUCTURED_METHODS = ("function_calling", "json_mode", "json_schema")
_BIND_CACHE_MAX = 256

# Handlers of the current call for code paths where LangChain does not hand ``_stream``
# a run manager (``stream()`` and invoke-through-stream); the downgrade protocol needs
# them. Set only around the router's own call, read only by the router.
_CALL_HANDLERS: ContextVar[Sequence[Any] | None] = ContextVar(
    "costopt_router_handlers", default=None
)


def model_name_of(model: Any) -> str:
    """The provider model name of a chat model (``model_name``/``model``), else its type."""
    for attr in ("model_name", "model", "model_id", "deployment_name"):
        value = getattr(model, attr, None)
        if isinstance(value, str) and value:
            return value
    llm_type = getattr(model, "_llm_type", None)
    return llm_type if isinstance(llm_type, str) else type(model).__name__


def _handlers_of(callbacks: Any) -> list[Any]:
    if callbacks is None:
        return []
    if isinstance(callbacks, BaseCallbackManager):
        return list(callbacks.handlers)
    if isinstance(callbacks, list | tuple):
        return list(callbacks)
    return []


def _answer_text(message: BaseMessage) -> str:
    content = message.content
    if isinstance(content, str):
        return content
    return "".join(
        b if isinstance(b, str) else str(b.get("text", ""))
        for b in content
        if isinstance(b, str) or (isinstance(b, dict) and b.get("type") == "text")
    )


def _with_setting(model: BaseChatModel, name: str, value: Any) -> BaseChatModel:
    """A copy of ``model`` with a standard setting, when the model has that field."""
    if name in type(model).model_fields:
        return model.model_copy(update={name: value})
    logger.warning(
        "%s has no %r setting; RouterChatModel(%s=...) does not apply to it",
        type(model).__name__,
        name,
        name,
    )
    return model


class RouterChatModel(BaseChatModel):
    """Route each call to the cheapest chat model that can handle it.

    Example:
        >>> from langchain_costopt import RouterChatModel
        >>> from langchain_costopt.simulated import SimulatedChatModel
        >>> router = RouterChatModel(models={
        ...     "simple": SimulatedChatModel(model_name="gpt-4o-mini"),
        ...     "medium": SimulatedChatModel(model_name="gpt-4o"),
        ...     "complex": SimulatedChatModel(model_name="o3"),
        ... })
        >>> router.route("请分析并比较两种架构").tier
        'complex'

    Args:
        models: tier name -> chat model, cheapest first (at least two tiers).
        strategy: a strategy object (``.route(text)``), a built-in name (``"rules"``,
            ``"length"``, ``"zero-shot"``, ``"knn"``, ``"cascade"``) or a callable
            ``text -> tier name``. Default: the seed's rules.
        fallback: when the chosen model raises (or fails before its first stream
            chunk), the next tier up answers and the decision records ``fallback_from``.
        include_history: classify all human turns instead of only the latest one.
        temperature, max_tokens: when given, set on every tier whose model has that
            setting (each tier gets a copy; the models passed in are not changed).
        stop: default stop sequences for every call (a call's ``stop=`` wins).

    A call may pass ``model=`` (a tier name or a tier's model name) to force that tier.
    """

    models: dict[str, BaseChatModel]
    strategy: Any = "rules"
    fallback: bool = True
    include_history: bool = False
    temperature: float | None = None
    max_tokens: int | None = None
    stop: list[str] | None = None

    model_config = ConfigDict(arbitrary_types_allowed=True)

    if TYPE_CHECKING:
        # Derived at construction and kept in the instance ``__dict__`` rather than as
        # pydantic private attributes: those cost ~1.7 µs per read on the call path.
        _strategy: RoutingStrategy
        _tiers: tuple[str, ...]
        _names: dict[str, str]
        _by_name: dict[str, str]
        _check: Callable[[str, str, str], bool] | None
        _signature: str
        _ls_name: str
        _bind_lock: threading.Lock
        # (tier, id(tools or structured spec)) -> (that object, choice, options, kwargs)
        _bind_cache: dict[tuple[str, int], tuple[Any, Any, Any, dict[str, Any]]]
        # id(formatted tools list) -> (formatted list, the tools as the user gave them)
        _tool_sources: dict[int, tuple[Any, list[Any]]]

    @model_validator(mode="before")
    @classmethod
    def _check_models(cls, data: Any) -> Any:
        if isinstance(data, dict):
            models = check_tier_mapping(
                data.get("models"),
                argument="models",
                model_type=BaseChatModel,
                model_kind="LangChain chat model (BaseChatModel)",
            )
            data = {**data, "models": models}
        return data

    @model_validator(mode="after")
    def _build(self) -> RouterChatModel:
        strategy = as_strategy(self.strategy)
        for setting in ("temperature", "max_tokens"):
            value = getattr(self, setting)
            if value is not None:
                self.models = {t: _with_setting(m, setting, value) for t, m in self.models.items()}
        check_strategy_tiers(strategy, tuple(self.models), argument="models")
        names = {tier: model_name_of(m) for tier, m in self.models.items()}
        check = getattr(strategy, "accept", None)
        derived = {
            "_strategy": strategy,
            "_tiers": tuple(self.models),
            "_names": names,
            "_by_name": {name: tier for tier, name in reversed(names.items())},
            "_check": check if callable(check) else None,
            "_signature": strategy_signature(strategy),
            "_ls_name": "router:" + "|".join(names.values()),
            "_bind_lock": threading.Lock(),
            "_bind_cache": {},
            "_tool_sources": {},
        }
        for name, value in derived.items():
            object.__setattr__(self, name, value)
        return self

    # -- LangChain model identity ------------------------------------------------------

    @property
    def _llm_type(self) -> str:
        return "costopt-router"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        # Inner models' identities are part of the cache key: two routers over
        # different models must never share cached answers.
        return {
            "models": {
                tier: {"_type": m._llm_type, **dict(m._identifying_params)}
                for tier, m in self.models.items()
            },
            "strategy": self._signature,
            "fallback": self.fallback,
            "include_history": self.include_history,
            # Not "stop": LangChain writes the call's stop under that key.
            "default_stop": self.stop,
        }

    def _get_ls_params(self, stop: list[str] | None = None, **kwargs: Any) -> LangSmithParams:
        override = kwargs.get("model")
        params = LangSmithParams(
            ls_provider="costopt",
            ls_model_type="chat",
            ls_model_name=override if isinstance(override, str) and override else self._ls_name,
        )
        temperature = kwargs.get("temperature", self.temperature)
        if isinstance(temperature, int | float):
            params["ls_temperature"] = temperature
        max_tokens = kwargs.get("max_tokens", self.max_tokens)
        if isinstance(max_tokens, int):
            params["ls_max_tokens"] = max_tokens
        stop = stop or self.stop
        if stop:
            params["ls_stop"] = stop
        return params

    @property
    def tiers(self) -> tuple[str, ...]:
        """Tier names, cheapest first."""
        return self._tiers

    # -- routing -------------------------------------------------------------------------

    def route(self, messages: Sequence[BaseMessage] | str) -> RouteDecision:
        """The decision the router would take for ``messages`` (no model is called)."""
        if isinstance(messages, str):
            return self._decide_text(messages)
        return self._decide(list(messages), [])

    def _decide_text(self, text: str) -> RouteDecision:
        decision = self._strategy.route(text)
        tier = resolve_tier(decision, self._tiers)
        if tier != decision.tier:
            decision = RouteDecision(tier, decision.score, decision.reason, decision.extra)
        return decision

    def _decide(
        self,
        messages: list[BaseMessage],
        handlers: Sequence[Any] | None,
        override: Any = None,
    ) -> RouteDecision:
        if override is not None:
            return self._forced(override)
        pinned = self._tier_from_tool_history(messages)
        if pinned is not None:
            return RouteDecision(pinned, 0.5, "conversation holds tool calls: stay on one model")
        if downgrade_requested(handlers):
            return RouteDecision(self._tiers[0], 0.0, "budget exceeded: downgraded")
        text = human_turns_text(messages) if self.include_history else latest_human_text(messages)
        return self._decide_text(text)

    def _forced(self, override: Any) -> RouteDecision:
        tier = override if override in self.models else self._by_name.get(override)
        if tier is None:
            raise ValueError(
                f"model={override!r} names no tier of this router; use a tier name "
                f"{list(self._tiers)!r} or a tier's model name {list(self._by_name)!r}"
            )
        score = self._tiers.index(tier) / (len(self._tiers) - 1)
        return RouteDecision(tier, score, f"model override: {override}")

    def _tier_from_tool_history(self, messages: list[BaseMessage]) -> str | None:
        # Tool-call ids and formats are provider specific: once a model has called a
        # tool, it sees the conversation through.
        if not has_tool_history(messages):
            return None
        for message in reversed(messages):
            if isinstance(message, AIMessage) and message.tool_calls:
                routing = message.response_metadata.get("routing") or {}
                tier = routing.get("tier")
                if tier in self.models:
                    return cast(str, tier)
        return None

    def _routing_info(
        self, decision: RouteDecision, tier: str, fallback_from: str | None = None
    ) -> dict[str, Any]:
        return routing_info(decision, tier, self._names[tier], fallback_from)

    def _order_from(self, tier: str) -> list[str]:
        start = self._tiers.index(tier)
        return list(self._tiers[start:]) if self.fallback else [tier]

    # -- tools and structured output, formatted per inner model ---------------------------

    def _inner_call(self, tier: str, kwargs: dict[str, Any]) -> tuple[BaseChatModel, dict]:
        """The inner model and call kwargs, with the router's bound tools re-bound the
        inner model's own way (each provider formats tools differently)."""
        model = self.models[tier]
        if not kwargs or not any(k in kwargs for k in _TOOL_KEYS):
            return model, kwargs
        kwargs = dict(kwargs)
        tools = kwargs.pop("tools", None)
        tool_choice = kwargs.pop("tool_choice", None)
        options = kwargs.pop("tool_options", None) or {}
        structured = kwargs.pop("costopt_structured", None)
        bound = structured if structured is not None else tools
        if not bound:
            return model, kwargs
        key = (tier, id(bound))
        cached = self._bind_cache.get(key)
        if (
            cached is not None
            and cached[0] is bound
            and cached[1] == tool_choice
            and cached[2] == options
        ):
            return model, {**cached[3], **kwargs}
        if structured is not None:
            inner_kwargs = self._structured_kwargs(tier, structured)
        else:
            source = self._tool_sources.get(id(tools))
            originals = source[1] if source is not None and source[0] is tools else list(tools)
            bind_kwargs: dict[str, Any] = dict(options)
            if tool_choice is not None:
                bind_kwargs["tool_choice"] = tool_choice
            inner_kwargs = _binding_kwargs(model, model.bind_tools(originals, **bind_kwargs))
        with self._bind_lock:
            if len(self._bind_cache) >= _BIND_CACHE_MAX:
                self._bind_cache.clear()
            self._bind_cache[key] = (bound, tool_choice, options, inner_kwargs)
        return model, {**inner_kwargs, **kwargs}

    def _structured_kwargs(self, tier: str, spec: dict[str, Any]) -> dict[str, Any]:
        """Call kwargs that make ``tier``'s model answer in ``spec["schema"]``, its own way.

        A model with its own ``with_structured_output`` builds the request (response
        format, JSON mode, ...); the router takes the binding's kwargs and parses the
        answer itself. Models without one get the schema as a forced tool call.
        """
        model = self.models[tier]
        schema, method, strict = spec["schema"], spec["method"], spec.get("strict")
        if type(model).with_structured_output is not BaseChatModel.with_structured_output:
            try:
                runnable = model.with_structured_output(schema, method=method, strict=strict)
            except (NotImplementedError, ValueError, TypeError) as exc:
                logger.info("%s: %s not available (%r); using a tool call", tier, method, exc)
            else:
                found = _find_binding(runnable, model)
                if found is not None:
                    found.pop("ls_structured_output_format", None)
                    return found
        options = {} if strict is None else {"strict": strict}
        bound = model.bind_tools([schema], tool_choice="any", **options)
        return _binding_kwargs(model, bound)

    def bind_tools(
        self,
        tools: Sequence[dict[str, Any] | type | Callable[..., Any] | BaseTool],
        *,
        tool_choice: str | dict | bool | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, AIMessage]:
        """Bind tools; at call time the chosen inner model formats them its own way.

        Extra keyword arguments (``strict=``, ``parallel_tool_calls=``, ...) go to the
        inner model's ``bind_tools``.
        """
        originals = list(tools)
        formatted = [convert_to_openai_tool(tool) for tool in originals]
        with self._bind_lock:
            if len(self._tool_sources) >= _BIND_CACHE_MAX:
                self._tool_sources.clear()
            self._tool_sources[id(formatted)] = (formatted, originals)
        bind: dict[str, Any] = {"tools": formatted}
        if tool_choice is not None:
            bind["tool_choice"] = tool_choice
        ls_format = kwargs.pop("ls_structured_output_format", None)
        if ls_format is not None:
            bind["ls_structured_output_format"] = ls_format
        if kwargs:
            bind["tool_options"] = kwargs
        return self.bind(**bind)

    def with_structured_output(
        self,
        schema: dict[str, Any] | type,
        *,
        include_raw: bool = False,
        method: str = "function_calling",
        strict: bool | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, dict[str, Any] | BaseModel]:
        """Answers parsed into ``schema``; each tier requests it its own way.

        ``method="function_calling"`` binds the schema as a forced tool; ``"json_schema"``
        / ``"json_mode"`` use the chosen model's own structured-output request where it
        has one (else a forced tool call), and the router parses either form.
        """
        if kwargs:
            raise ValueError(f"with_structured_output: unsupported arguments {kwargs}")
        if method not in _STRUCTURED_METHODS:
            raise ValueError(f"method must be one of {_STRUCTURED_METHODS}, got {method!r}")
        ls_format = {"kwargs": {"method": method, "strict": strict}, "schema": schema}
        is_pydantic = isinstance(schema, type) and is_basemodel_subclass(schema)
        parser: Runnable[Any, Any]
        if method == "function_calling":
            options = {} if strict is None else {"strict": strict}
            llm = self.bind_tools(
                [schema], tool_choice="any", ls_structured_output_format=ls_format, **options
            )
            if is_pydantic:
                parser = PydanticToolsParser(tools=[cast(type, schema)], first_tool_only=True)
            else:
                key = convert_to_openai_tool(schema)["function"]["name"]
                parser = JsonOutputKeyToolsParser(key_name=key, first_tool_only=True)
        else:
            spec = {"schema": schema, "method": method, "strict": strict}
            llm = self.bind(costopt_structured=spec, ls_structured_output_format=ls_format)
            parser = _StructuredAnswerParser(answer_schema=schema)
        if include_raw:
            parsed = RunnablePassthrough.assign(
                parsed=(lambda x: x["raw"]) | parser, parsing_error=lambda _: None
            )
            fallback = RunnablePassthrough.assign(parsed=lambda _: None)
            return RunnableMap(raw=llm) | parsed.with_fallbacks(
                [fallback], exception_key="parsing_error"
            )
        return llm | parser

    # -- generation --------------------------------------------------------------------

    @staticmethod
    def _annotate(result: ChatResult, info: dict[str, Any], model_name: str) -> ChatResult:
        for generation in result.generations:
            metadata = generation.message.response_metadata
            metadata.setdefault("model_name", model_name)
            metadata["routing"] = dict(info)
        llm_output = dict(result.llm_output or {})
        llm_output["routing"] = dict(info)
        result.llm_output = llm_output
        return result

    def _attempt_record(self, tier: str, result: ChatResult) -> dict[str, Any]:
        """A rejected cascade attempt, with its usage so its cost is still accounted."""
        message = result.generations[0].message
        usage = getattr(message, "usage_metadata", None)
        model = message.response_metadata.get("model_name") or self._names[tier]
        return {"tier": tier, "model": model, "usage": dict(usage) if usage else None}

    def _finish(
        self,
        result: ChatResult,
        decision: RouteDecision,
        tier: str,
        failed_tier: str | None,
        attempts: list[dict[str, Any]],
    ) -> ChatResult:
        info = self._routing_info(decision, tier, failed_tier)
        if attempts:
            info["escalated_from"] = [a["tier"] for a in attempts]
            info["attempts"] = attempts
        return self._annotate(result, info, self._names[tier])

    def _rejected(self, messages: list[BaseMessage], result: ChatResult, tier: str) -> bool:
        """Cascade protocol: the strategy judges the answer; False escalates."""
        check = self._check
        if check is None or not result.generations:
            return False
        answer = _answer_text(result.generations[0].message)
        return not check(latest_human_text(messages), answer, tier)

    def _generate_with_cache(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        # LangChain may take the streaming branch here and call ``_stream`` without the
        # run manager; keep its handlers reachable for the downgrade protocol.
        token = _CALL_HANDLERS.set(run_manager.handlers if run_manager else None)
        try:
            return super()._generate_with_cache(
                messages, stop=stop, run_manager=run_manager, **kwargs
            )
        finally:
            _CALL_HANDLERS.reset(token)

    async def _agenerate_with_cache(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        token = _CALL_HANDLERS.set(run_manager.handlers if run_manager else None)
        try:
            return await super()._agenerate_with_cache(
                messages, stop=stop, run_manager=run_manager, **kwargs
            )
        finally:
            _CALL_HANDLERS.reset(token)

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        stop = self.stop if stop is None else stop
        override = kwargs.pop("model", None)
        handlers = run_manager.handlers if run_manager else _CALL_HANDLERS.get()
        decision = self._decide(messages, handlers, override)
        order = self._order_from(decision.tier)
        attempts: list[dict[str, Any]] = []
        first_error: BaseException | None = None
        failed_tier: str | None = None
        last = len(order) - 1
        for i, tier in enumerate(order):
            try:
                model, call_kwargs = self._inner_call(tier, kwargs)
                result = model._generate(
                    messages, stop=stop, run_manager=run_manager, **call_kwargs
                )
            except Exception as exc:
                if first_error is None:
                    first_error, failed_tier = exc, tier
                logger.warning("tier %r (%s) failed: %r", tier, self._names[tier], exc)
                if i == last:
                    raise first_error from None
                continue
            if i < last and self._rejected(messages, result, tier):
                attempts.append(self._attempt_record(tier, result))
                continue
            return self._finish(result, decision, tier, failed_tier, attempts)
        raise RuntimeError("unreachable: routing order exhausted")  # pragma: no cover

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        stop = self.stop if stop is None else stop
        override = kwargs.pop("model", None)
        handlers = run_manager.handlers if run_manager else _CALL_HANDLERS.get()
        decision = self._decide(messages, handlers, override)
        order = self._order_from(decision.tier)
        attempts: list[dict[str, Any]] = []
        first_error: BaseException | None = None
        failed_tier: str | None = None
        last = len(order) - 1
        for i, tier in enumerate(order):
            try:
                model, call_kwargs = self._inner_call(tier, kwargs)
                result = await model._agenerate(
                    messages, stop=stop, run_manager=run_manager, **call_kwargs
                )
            except Exception as exc:
                if first_error is None:
                    first_error, failed_tier = exc, tier
                logger.warning("tier %r (%s) failed: %r", tier, self._names[tier], exc)
                if i == last:
                    raise first_error from None
                continue
            if i < last and self._rejected(messages, result, tier):
                attempts.append(self._attempt_record(tier, result))
                continue
            return self._finish(result, decision, tier, failed_tier, attempts)
        raise RuntimeError("unreachable: routing order exhausted")  # pragma: no cover

    # -- streaming ---------------------------------------------------------------------

    def _stream_handlers(self, config: RunnableConfig | None) -> list[Any]:
        config = ensure_config(config)
        return [*_handlers_of(config.get("callbacks")), *_handlers_of(self.callbacks)]

    def stream(
        self,
        input: LanguageModelInput,
        config: RunnableConfig | None = None,
        *,
        stop: list[str] | None = None,
        **kwargs: Any,
    ) -> Iterator[AIMessageChunk]:
        # LangChain's stream() runs ``_stream`` without the run manager; the downgrade
        # protocol reads the call's handlers from here instead.
        token = _CALL_HANDLERS.set(self._stream_handlers(config))
        try:
            yield from super().stream(input, config, stop=stop, **kwargs)
        finally:
            # A generator closed from another context cannot reset; nothing to undo then.
            with contextlib.suppress(ValueError):
                _CALL_HANDLERS.reset(token)

    async def astream(
        self,
        input: LanguageModelInput,
        config: RunnableConfig | None = None,
        *,
        stop: list[str] | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[AIMessageChunk]:
        token = _CALL_HANDLERS.set(self._stream_handlers(config))
        try:
            async for chunk in super().astream(input, config, stop=stop, **kwargs):
                yield chunk
        finally:
            with contextlib.suppress(ValueError):
                _CALL_HANDLERS.reset(token)

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        if self._check is not None:
            # A cascade must judge the whole answer before the user sees any of it.
            result = self._generate(messages, stop=stop, run_manager=run_manager, **kwargs)
            yield from _result_as_chunks(result)
            return
        stop = self.stop if stop is None else stop
        override = kwargs.pop("model", None)
        handlers = run_manager.handlers if run_manager else _CALL_HANDLERS.get()
        decision = self._decide(messages, handlers, override)
        order = self._order_from(decision.tier)
        first_error: BaseException | None = None
        last = len(order) - 1
        for i, tier in enumerate(order):
            info = self._routing_info(decision, tier, decision.tier if first_error else None)
            name = self._names[tier]
            result: ChatResult | None = None
            try:
                model, call_kwargs = self._inner_call(tier, kwargs)
                if model._should_stream(async_api=False, **{**call_kwargs, "stream": True}):
                    iterator = model._stream(
                        messages, stop=stop, run_manager=run_manager, **call_kwargs
                    )
                    first = next(iterator, None)
                else:
                    result = model._generate(
                        messages, stop=stop, run_manager=run_manager, **call_kwargs
                    )
            except Exception as exc:
                first_error = first_error or exc
                logger.warning("tier %r (%s) failed before streaming: %r", tier, name, exc)
                if i == last:
                    raise first_error from None
                continue
            if result is not None:
                yield from _result_as_chunks(self._annotate(result, info, name))
                return
            if first is None:
                return
            named = _has_model_name(first)
            yield _with_routing(first, info)
            for chunk in iterator:
                named = named or _has_model_name(chunk)
                yield chunk
            if not named:
                yield _closing_chunk(name)
            return

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        if self._check is not None:
            result = await self._agenerate(messages, stop=stop, run_manager=run_manager, **kwargs)
            for chunk in _result_as_chunks(result):
                yield chunk
            return
        stop = self.stop if stop is None else stop
        override = kwargs.pop("model", None)
        handlers = run_manager.handlers if run_manager else _CALL_HANDLERS.get()
        decision = self._decide(messages, handlers, override)
        order = self._order_from(decision.tier)
        first_error: BaseException | None = None
        last = len(order) - 1
        for i, tier in enumerate(order):
            info = self._routing_info(decision, tier, decision.tier if first_error else None)
            name = self._names[tier]
            result: ChatResult | None = None
            try:
                model, call_kwargs = self._inner_call(tier, kwargs)
                if model._should_stream(async_api=True, **{**call_kwargs, "stream": True}):
                    iterator = model._astream(
                        messages, stop=stop, run_manager=run_manager, **call_kwargs
                    )
                    first = await anext(iterator, None)
                else:
                    result = await model._agenerate(
                        messages, stop=stop, run_manager=run_manager, **call_kwargs
                    )
            except Exception as exc:
                first_error = first_error or exc
                logger.warning("tier %r (%s) failed before streaming: %r", tier, name, exc)
                if i == last:
                    raise first_error from None
                continue
            if result is not None:
                for chunk in _result_as_chunks(self._annotate(result, info, name)):
                    yield chunk
                return
            if first is None:
                return
            named = _has_model_name(first)
            yield _with_routing(first, info)
            async for chunk in iterator:
                named = named or _has_model_name(chunk)
                yield chunk
            if not named:
                yield _closing_chunk(name)
            return

    # -- batching ----------------------------------------------------------------------

    def _group_batch(
        self,
        inputs: list[LanguageModelInput],
        configs: list[RunnableConfig],
        override: Any,
    ) -> tuple[list[RouteDecision], dict[str, list[int]]]:
        decisions: list[RouteDecision] = []
        groups: dict[str, list[int]] = {}
        for i, (item, config) in enumerate(zip(inputs, configs, strict=True)):
            messages = self._convert_input(item).to_messages()
            # As LangChain will configure the run: includes handlers registered by
            # configure hooks (e.g. `cost_tracker`), which the config does not list.
            handlers = CallbackManager.configure(config.get("callbacks"), self.callbacks).handlers
            decision = self._decide(messages, handlers, override)
            decisions.append(decision)
            groups.setdefault(decision.tier, []).append(i)
        return decisions, groups

    def _batch_config(self, config: RunnableConfig, info: dict[str, Any]) -> RunnableConfig:
        # The runs are the inner models': they carry the router's own callbacks, tags
        # and metadata, and the decision in their metadata.
        metadata = {
            **(self.metadata or {}),
            **(config.get("metadata") or {}),
            # The inner run does not carry the router's params, so name the tiers here:
            # a cost handler prices the routing saving against them.
            "costopt_routing": {**info, "tier_models": dict(self._names)},
        }
        merged: dict[str, Any] = {**config, "metadata": metadata}
        if self.tags:
            merged["tags"] = [*(config.get("tags") or []), *self.tags]
        if self.callbacks:
            callbacks = config.get("callbacks")
            own = _handlers_of(self.callbacks)
            if isinstance(callbacks, BaseCallbackManager):
                manager = callbacks.copy()
                for handler in own:
                    manager.add_handler(handler, inherit=True)
                merged["callbacks"] = manager
            else:
                merged["callbacks"] = [*_handlers_of(callbacks), *own]
        return cast(RunnableConfig, merged)

    def _groups_batches(self, inputs: list[LanguageModelInput]) -> bool:
        """Whether ``batch`` may hand groups to the inner models' own ``batch``.

        Not for a cascade (it judges each answer), a single input, or a router with its
        cache (its own or the global one) or rate limiter: the inner runs would bypass
        them, and answers cached by ``invoke`` must hit in ``batch`` too.
        """
        own = self.cache
        uses_cache = get_llm_cache() is not None if own is None else own is not False
        return (
            len(inputs) > 1
            and self._check is None
            and not uses_cache
            and (self.rate_limiter is None)
        )

    def _batch_output(self, message: Any, info: dict[str, Any], tier: str) -> Any:
        message = _annotate_message(message, info, self._names[tier])
        if self.output_version == "v1" and isinstance(message, BaseMessage):
            # What the router's own run would have done to the content.
            metadata = {**message.response_metadata, "output_version": "v1"}
            message = message.model_copy(
                update={"content": message.content_blocks, "response_metadata": metadata}
            )
        return message

    def _batch_kwargs(self, kwargs: dict[str, Any]) -> tuple[dict[str, Any], Any]:
        kwargs = dict(kwargs)
        override = kwargs.pop("model", None)
        if kwargs.get("stop") is None and self.stop is not None:
            kwargs["stop"] = self.stop
        return kwargs, override

    def batch(
        self,
        inputs: list[LanguageModelInput],
        config: RunnableConfig | list[RunnableConfig] | None = None,
        *,
        return_exceptions: bool = False,
        **kwargs: Any,
    ) -> list[Any]:
        """Route every input, then call each chosen model once with its whole group."""
        if not inputs:
            return []
        if not self._groups_batches(inputs):
            return super().batch(inputs, config, return_exceptions=return_exceptions, **kwargs)
        configs = get_config_list(config, len(inputs))
        kwargs, override = self._batch_kwargs(kwargs)
        decisions, groups = self._group_batch(inputs, configs, override)
        outputs: list[Any] = [None] * len(inputs)
        for tier, indexes in groups.items():
            infos = {i: self._routing_info(decisions[i], tier) for i in indexes}
            try:
                model, call_kwargs = self._inner_call(tier, kwargs)
                results = model.batch(
                    [inputs[i] for i in indexes],
                    [self._batch_config(configs[i], infos[i]) for i in indexes],
                    return_exceptions=True,
                    **call_kwargs,
                )
            except Exception as exc:
                results = [exc] * len(indexes)
            for i, result in zip(indexes, results, strict=True):
                if isinstance(result, Exception):
                    result = self._batch_fallback(
                        tier, inputs[i], configs[i], decisions[i], result, kwargs
                    )
                else:
                    result = self._batch_output(result, infos[i], tier)
                outputs[i] = result
        if not return_exceptions:
            for result in outputs:
                if isinstance(result, Exception):
                    raise result
        return outputs

    def _batch_fallback(
        self,
        tier: str,
        item: LanguageModelInput,
        config: RunnableConfig,
        decision: RouteDecision,
        error: Exception,
        kwargs: dict[str, Any],
    ) -> Any:
        for next_tier in self._order_from(tier)[1:]:
            info = self._routing_info(decision, next_tier, fallback_from=tier)
            try:
                model, call_kwargs = self._inner_call(next_tier, kwargs)
                result = model.invoke(item, self._batch_config(config, info), **call_kwargs)
            except Exception as exc:
                logger.warning("tier %r failed in batch fallback: %r", next_tier, exc)
                continue
            return self._batch_output(result, info, next_tier)
        return error

    async def abatch(
        self,
        inputs: list[LanguageModelInput],
        config: RunnableConfig | list[RunnableConfig] | None = None,
        *,
        return_exceptions: bool = False,
        **kwargs: Any,
    ) -> list[Any]:
        """Async :meth:`batch`: the groups run concurrently, one ``abatch`` per model."""
        if not inputs:
            return []
        if not self._groups_batches(inputs):
            return await super().abatch(
                inputs, config, return_exceptions=return_exceptions, **kwargs
            )
        configs = get_config_list(config, len(inputs))
        kwargs, override = self._batch_kwargs(kwargs)
        decisions, groups = self._group_batch(inputs, configs, override)
        outputs: list[Any] = [None] * len(inputs)

        async def run_group(tier: str, indexes: list[int]) -> None:
            infos = {i: self._routing_info(decisions[i], tier) for i in indexes}
            try:
                model, call_kwargs = self._inner_call(tier, kwargs)
                results = await model.abatch(
                    [inputs[i] for i in indexes],
                    [self._batch_config(configs[i], infos[i]) for i in indexes],
                    return_exceptions=True,
                    **call_kwargs,
                )
            except Exception as exc:
                results = [exc] * len(indexes)
            for i, result in zip(indexes, results, strict=True):
                if isinstance(result, Exception):
                    result = await self._abatch_fallback(
                        tier, inputs[i], configs[i], decisions[i], result, kwargs
                    )
                else:
                    result = self._batch_output(result, infos[i], tier)
                outputs[i] = result

        await asyncio.gather(*(run_group(t, idx) for t, idx in groups.items()))
        if not return_exceptions:
            for result in outputs:
                if isinstance(result, Exception):
                    raise result
        return outputs

    async def _abatch_fallback(
        self,
        tier: str,
        item: LanguageModelInput,
        config: RunnableConfig,
        decision: RouteDecision,
        error: Exception,
        kwargs: dict[str, Any],
    ) -> Any:
        for next_tier in self._order_from(tier)[1:]:
            info = self._routing_info(decision, next_tier, fallback_from=tier)
            try:
                model, call_kwargs = self._inner_call(next_tier, kwargs)
                result = await model.ainvoke(item, self._batch_config(config, info), **call_kwargs)
            except Exception as exc:
                logger.warning("tier %r failed in batch fallback: %r", next_tier, exc)
                continue
            return self._batch_output(result, info, next_tier)
        return error


class _StructuredAnswerParser(BaseOutputParser[Any]):
    """Parses a structured answer given either as a tool call or as JSON text."""

    answer_schema: Any

    def parse(self, text: str) -> Any:
        return self._validate(parse_json_markdown(text))

    def parse_result(self, result: list[Any], *, partial: bool = False) -> Any:
        message = result[0].message if result else None
        tool_calls = getattr(message, "tool_calls", None)
        if tool_calls:
            return self._validate(tool_calls[0]["args"])
        text = _answer_text(message) if isinstance(message, BaseMessage) else result[0].text
        return self.parse(text)

    def _validate(self, data: Any) -> Any:
        schema = self.answer_schema
        if isinstance(schema, type) and is_basemodel_subclass(schema):
            if hasattr(schema, "model_validate"):
                return schema.model_validate(data)
            return schema.parse_obj(data)  # pydantic.v1 models
        return data

    @property
    def _type(self) -> str:
        return "costopt_structured_answer"


def _binding_kwargs(model: BaseChatModel, bound: Any) -> dict[str, Any]:
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


def _has_model_name(chunk: ChatGenerationChunk) -> bool:
    return bool(chunk.message.response_metadata.get("model_name"))


def _with_routing(chunk: ChatGenerationChunk, info: dict[str, Any]) -> ChatGenerationChunk:
    # Only the decision goes on the first chunk: string metadata such as model_name
    # is concatenated when chunks are added, so it must appear on one chunk only.
    chunk.message.response_metadata["routing"] = dict(info)
    return chunk


def _closing_chunk(model_name: str) -> ChatGenerationChunk:
    """A last, empty chunk naming the model, for inner streams that never named it."""
    return ChatGenerationChunk(
        message=AIMessageChunk(
            content="", response_metadata={"model_name": model_name}, chunk_position="last"
        )
    )


def _annotate_message(message: Any, info: dict[str, Any], model_name: str) -> Any:
    if isinstance(message, BaseMessage):
        message.response_metadata.setdefault("model_name", model_name)
        message.response_metadata["routing"] = dict(info)
    return message


def _result_as_chunks(result: ChatResult) -> Iterator[ChatGenerationChunk]:
    """A finished result replayed as one (last) stream chunk per generation."""
    for generation in result.generations:
        message = generation.message
        chunk_message = AIMessageChunk(
            content=message.content,
            additional_kwargs=message.additional_kwargs,
            response_metadata=message.response_metadata,
            usage_metadata=getattr(message, "usage_metadata", None),
            tool_call_chunks=[
                {
                    "name": tc["name"],
                    "args": json.dumps(tc["args"]),
                    "id": tc.get("id"),
                    "index": idx,
                    "type": "tool_call_chunk",
                }
                for idx, tc in enumerate(getattr(message, "tool_calls", []) or [])
            ],
            id=message.id,
            chunk_position="last",
        )
        yield ChatGenerationChunk(message=chunk_message, generation_info=generation.generation_info)


__all__ = ["RouterChatModel", "model_name_of"]
