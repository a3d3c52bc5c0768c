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
Which tier answers is the engine's call (:mod:`costopt_core.engine`: strategy, budget
downgrade, fallback, cascade, routing record); this module only translates LangChain's
messages, runs and chunks to and from it. The router delegates to the chosen model's
``_generate`` / ``_stream`` with its own run manager, so callbacks, tracing and caches
see exactly one run per call (the router's). ``batch`` is the exception: it groups
inputs per tier and calls each inner model's ``batch`` once, so those runs are the inner
models' own, with the decision in their metadata (``metadata["costopt_routing"]``).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, ClassVar, NamedTuple, cast

from langchain_core.callbacks import (
    BaseCallbackManager,
    BaseRunManager,
    CallbackManager,
)
from langchain_core.globals import get_llm_cache
from langchain_core.language_models import BaseChatModel, LangSmithParams, LanguageModelInput
from langchain_core.language_models.model_profile import ModelProfile
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.output_parsers import JsonOutputKeyToolsParser, PydanticToolsParser
from langchain_core.outputs import ChatGenerationChunk, ChatResult, LLMResult
from langchain_core.runnables import (
    Runnable,
    RunnableConfig,
    RunnableMap,
    RunnablePassthrough,
)
from langchain_core.runnables.config import ensure_config, get_config_list
from langchain_core.tools import BaseTool
from langchain_core.utils.function_calling import convert_to_json_schema, convert_to_openai_tool
from langchain_core.utils.pydantic import is_basemodel_subclass
from pydantic import BaseModel, ConfigDict, Field, model_validator

from costopt_core.arguments import (
    STRATEGY_HINT,
    TIER_CONNECTION_SETTINGS,
    refuse_unknown_arguments,
)
from costopt_core.budget_gate import TierReservation, conforms
from costopt_core.decision import RouteDecision, with_checked_tiers
from costopt_core.engine import ROUTING_KEY, Answered, AnswerFacts, RoutedCall, RoutingEngine
from costopt_core.metadata_keys import (
    BATCH_ROUTING_KEY,
    MODEL_NAME_KEYS,
    ROUTED_TIER_PARAM,
    model_name_in,
)
from costopt_core.prompt_prefix import CACHE_MARK, settings_for
from langchain_costopt.batch import adeferred_batch, deferred_batch
from langchain_costopt.cache_stream import CachedStream, cache_of, replay_generation_chunks
from langchain_costopt.callbacks import tracking_handlers
from langchain_costopt.context_values import holding
from langchain_costopt.messages import (
    Messages,
    Stop,
    has_tool_history,
    human_turns_text,
    latest_human_question,
)
from langchain_costopt.routed_output import (
    OpenedStream,
    StreamRelay,
    annotate_message,
    annotate_result,
    message_facts,
    result_as_chunks,
)
from langchain_costopt.tool_binding import STRUCTURED_METHODS, StructuredAnswerParser, ToolBinder

logger = logging.getLogger(__name__)

BatchConfig = RunnableConfig | list[RunnableConfig] | None

# The current call's handlers and run id, for code paths where LangChain does not hand
# ``_stream`` its run manager (``stream()`` and invoke-through-stream); budgets need
# them. Set only around the router's own call, read only by the router.
_CALL_RUN: ContextVar[tuple[Sequence[Any], Any] | None] = ContextVar(
    "costopt_router_run", default=None
)


def model_name_of(model: Any) -> str:
    """The provider model name of a chat model (``model_name``/``model``), else its type."""
    for attr in MODEL_NAME_KEYS:
        value = getattr(model, attr, None)
        if isinstance(value, str) and value:
            return value
    llm_type = getattr(model, "_llm_type", None)
    return llm_type if isinstance(llm_type, str) else type(model).__name__


def _handlers_of(callbacks: Any) -> list[Any]:
    """The handlers of a config's callbacks, a callback manager or a run manager."""
    if callbacks is None:
        return []
    if isinstance(callbacks, BaseCallbackManager | BaseRunManager):
        return list(callbacks.handlers)
    if isinstance(callbacks, list | tuple):
        return list(callbacks)
    return []


def _cost_identity(model: BaseChatModel, name: str) -> dict[str, Any]:
    """What a cost handler needs to bound a tier's call and its model's identifying params
    may lack: the model name and the output cap as LangChain reports them (``ls_*``).
    Read once, at the router's construction: ``_identifying_params`` runs on every call."""
    identity = dict(model._identifying_params)
    extra: dict[str, Any] = {}
    if model_name_in(identity) is None:
        extra["model_name"] = name
    if "max_tokens" not in identity:
        limit = model._get_ls_params().get("ls_max_tokens")
        if isinstance(limit, int):
            extra["max_tokens"] = limit
    return extra


def _answer_facts(result: Any) -> AnswerFacts | None:
    """What a cascade judges in a ChatResult (:func:`message_facts` of its answer)."""
    if not isinstance(result, ChatResult) or not result.generations:
        return None
    return message_facts(result.generations[0].message)


def merged_profile(profiles: Sequence[ModelProfile | None]) -> ModelProfile | None:
    """What every one of several models' profiles promises: the smallest limit, a
    capability only when each has it (one model without it is enough for ``False``), the
    levels all of them offer. A key some model does not report stays out, unless
    another model's ``False`` settles it; text (names, dates) describes one model only.

    Example:
        >>> merged_profile([
        ...     {"max_input_tokens": 128_000, "tool_calling": True, "image_inputs": True},
        ...     {"max_input_tokens": 200_000, "tool_calling": True, "pdf_inputs": False},
        ... ])
        {'max_input_tokens': 128000, 'tool_calling': True, 'pdf_inputs': False}
    """
    merged: dict[str, Any] = {}
    for key in dict.fromkeys(key for profile in profiles if profile for key in profile):
        values = [(profile or {}).get(key) for profile in profiles]
        if any(value is False for value in values):
            merged[key] = False
        elif any(value is None for value in values):
            continue
        elif all(value is True for value in values):
            merged[key] = True
        elif all(isinstance(value, int) and not isinstance(value, bool) for value in values):
            merged[key] = min(values)
        elif all(isinstance(value, list) for value in values):
            merged[key] = [v for v in values[0] if all(v in other for other in values[1:])]
    return cast(ModelProfile, merged) if merged else None


def _agent_profile(model: BaseChatModel) -> ModelProfile | None:
    """``model``'s profile, with ``structured_output`` as ``create_agent`` would use it
    for this model in an agent with tools.

    ``create_agent`` does not ask a Gemini model below the 3 series for its own structured
    output when the agent has tools (that series cannot answer both at once;
    ``langchain.agents.factory._supports_provider_strategy``). It reads the router's
    profile without knowing which tier answers, so such a tier makes the router's
    ``structured_output`` False: ``create_agent`` then has the answer given as a tool
    call (``ToolStrategy``), which every tier can give. The price: an agent without
    tools over such a tier gets ``ToolStrategy`` too, where the tier alone would not.
    """
    profile = model.profile
    if not profile or not profile.get("structured_output"):
        return profile
    name = (
        getattr(model, "model_name", None)
        or getattr(model, "model", None)
        or getattr(model, "model_id", "")
    )
    name = name.lower() if isinstance(name, str) else ""
    if "gemini" in name and "gemini-3" not in name:
        return cast(ModelProfile, {**profile, "structured_output": False})
    return profile


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
        >>> from langchain_costopt.simulated import SimulatedChatModel as Sim
        >>> router = RouterChatModel(
        ...     models={"cheap": Sim(model_name="gpt-4o-mini"), "strong": Sim(model_name="o3")},
        ...     strategy=lambda text: "strong" if len(text) > 40 else "cheap",
        ... )
        >>> router.route("hi").tier, router.invoke("hi").response_metadata["model_name"]
        ('cheap', 'gpt-4o-mini')

    Args:
        models: tier name -> chat model, cheapest first (at least two tiers).
        strategy: a strategy object (``.route(text)``), a built-in name (``"rules"``,
            ``"length"``, ``"zero-shot"``, ``"knn"``, ``"cascade"``) or a callable
            ``text -> tier name``. Default: the seed's rules.
        fallback: when the chosen model raises (or fails before its first stream
            chunk), the next tier up answers and the decision records ``fallback_from``.
        include_history: classify all human turns instead of only the latest one.
        pin_tool_threads: once a model has called a tool, keep the conversation on that
            model's tier (a budget downgrade still wins). Off by default: every call is
            routed on its own merits, each provider reading the others' tool calls.
        temperature, max_tokens: when given, set on every tier whose model has that
            setting (each tier gets a copy; the models passed in are not changed).
        stop: default stop sequences for every call (a call's ``stop=`` wins).

    Tiers' own settings: a tier's ``rate_limiter`` paces the calls routed to it
    (``invoke`` and ``stream``, sync and async). Its ``callbacks``, ``tags``,
    ``metadata`` and ``cache`` are not used: the router's run is the call's run, so give
    them to the router (a grouped ``batch``, which runs each tier's own ``batch``, is
    the exception).

    A call may pass ``model=``: a tier name or a tier's model name forces that tier; any
    other value is passed on to the routed model (LangChain's per-call override).
    A strategy whose ``route`` raises fails the call before any model is called; a
    cascade check (``accept``) that raises is logged and the answer accepted.

    Caching: ``invoke``/``batch`` use the LLM cache as any LangChain chat model does
    (``cache=`` or ``set_llm_cache``). Unlike LangChain's own classes, the router's
    ``stream``/``astream`` use it too (``cache=False`` opts out): a cached answer is
    streamed back in chunks (routing record on the first, the cache-hit marker, usage and
    model name on the last, one ``on_llm_new_token`` each) without routing or calling a
    model, and a streamed answer is stored once complete, under the key ``invoke`` uses,
    so either serves the other (:mod:`langchain_costopt.cache_stream`).

    Example:
        >>> from langchain_core.caches import InMemoryCache
        >>> router = RouterChatModel(
        ...     models={"cheap": Sim(model_name="gpt-4o-mini"), "strong": Sim(model_name="o3")},
        ...     cache=InMemoryCache(),
        ... )
        >>> answer = router.invoke("What is a haiku?")
        >>> chunks = list(router.stream("What is a haiku?"))  # served by the cache
        >>> sum(chunks[1:], chunks[0]).content == answer.content, len(chunks) > 1
        (True, True)
    """

    #: Its own ``stream``/``astream`` consult its cache (``cache_stream.CacheStreamingModel``).
    streams_through_cache: ClassVar[bool] = True

    models: dict[str, BaseChatModel]
    strategy: Any = None
    fallback: bool = True
    include_history: bool = False
    pin_tool_threads: bool = False
    temperature: float | None = Field(default=None, ge=0)
    max_tokens: int | None = Field(default=None, gt=0)
    stop: list[str] | None = None

    model_config = ConfigDict(arbitrary_types_allowed=True)

    if TYPE_CHECKING:
        # Derived at construction and kept in the instance ``__dict__`` rather than as
        # pydantic private attributes: those cost ~1.7 µs per read on the call path.
        _engine: RoutingEngine
        _binder: ToolBinder
        _cost_ids: dict[str, dict[str, Any]]
        _ls_name: str

    @model_validator(mode="before")
    @classmethod
    def _check_models(cls, data: Any) -> Any:
        refuse_unknown_arguments(
            data,
            cls.model_fields,
            "RouterChatModel",
            hint=STRATEGY_HINT,
            allowed=TIER_CONNECTION_SETTINGS,
        )
        return with_checked_tiers(
            data, "models", BaseChatModel, "LangChain chat model (BaseChatModel)"
        )

    @model_validator(mode="after")
    def _build(self) -> RouterChatModel:
        for setting in ("temperature", "max_tokens"):
            value = getattr(self, setting)
            if value is not None:
                self.models = {t: _with_setting(m, setting, value) for t, m in self.models.items()}
        names = {tier: model_name_of(m) for tier, m in self.models.items()}
        engine = RoutingEngine(
            self.strategy, names, fallback=self.fallback, read_answer=_answer_facts
        )
        object.__setattr__(self, "_engine", engine)
        object.__setattr__(self, "_binder", ToolBinder())
        object.__setattr__(self, "_ls_name", "router:" + "|".join(names.values()))
        cost_ids = {tier: _cost_identity(m, names[tier]) for tier, m in self.models.items()}
        object.__setattr__(self, "_cost_ids", cost_ids)
        return self

    # What ``_build`` derives its state from.
    _BUILT_FROM: ClassVar[frozenset[str]] = frozenset(
        {"models", "strategy", "fallback", "temperature", "max_tokens"}
    )

    def model_copy(
        self, *, update: Mapping[str, Any] | None = None, deep: bool = False
    ) -> RouterChatModel:
        """pydantic's copy; a copy with other tiers, strategy or settings routes by them
        (pydantic does not validate a copy, so the engine is built again here)."""
        copied = super().model_copy(update=update, deep=deep)
        if update and not self._BUILT_FROM.isdisjoint(update):
            copied._build()
        if (
            update
            and "models" in update
            and "profile" not in update
            and self.profile == self._resolve_model_profile()  # derived, not given
        ):
            copied.profile = copied._resolve_model_profile()
        return copied

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
                tier: {"_type": m._llm_type, **self._cost_ids[tier], **dict(m._identifying_params)}
                for tier, m in self.models.items()
            },
            "strategy": self._engine.signature,
            "fallback": self.fallback,
            "include_history": self.include_history,
            "pin_tool_threads": self.pin_tool_threads,
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
        return self._engine.tiers

    def _resolve_model_profile(self) -> ModelProfile | None:
        # What holds whichever tier answers: agents and middleware size prompts and
        # choose structured-output strategies by it (``profile=`` given wins).
        return merged_profile([_agent_profile(model) for model in self.models.values()])

    # -- token counting: as the tiers count -------------------------------------------

    @property
    def _token_counter(self) -> BaseChatModel:
        # The strongest tier counts: a count is asked to fit a prompt in a context
        # window, and the strongest tier is where long threads are routed and where a
        # fallback ends, so trimming to its count is safe for the prompt that matters;
        # LangChain's default (a GPT-2 tokenizer, needing transformers) counts like none.
        return self.models[self.tiers[-1]]

    def get_token_ids(self, text: str) -> list[int]:
        """Token ids of ``text`` as the strongest tier counts them (``custom_get_token_ids``
        wins)."""
        if self.custom_get_token_ids is not None:
            return super().get_token_ids(text)
        return self._token_counter.get_token_ids(text)

    def get_num_tokens(self, text: str) -> int:
        """Tokens in ``text`` as the strongest tier counts them."""
        if self.custom_get_token_ids is not None:
            return super().get_num_tokens(text)
        return self._token_counter.get_num_tokens(text)

    def get_num_tokens_from_messages(
        self, messages: list[BaseMessage], tools: Sequence[Any] | None = None
    ) -> int:
        """Tokens in ``messages`` as the strongest tier counts them (what
        ``trim_messages(token_counter=router)`` calls)."""
        if self.custom_get_token_ids is not None:
            return super().get_num_tokens_from_messages(messages, tools)
        return self._token_counter.get_num_tokens_from_messages(messages, tools)

    # -- routing: LangChain messages in, the engine's routed call out -------------------

    def route(self, messages: Sequence[BaseMessage] | str) -> RouteDecision:
        """The decision the router would take for ``messages`` (no model is called)."""
        if isinstance(messages, str):
            return self._engine.decide(messages)
        return self._open(list(messages), (), None).decision

    def _question(self, messages: list[BaseMessage]) -> str:
        if self.include_history:
            return human_turns_text(messages)
        return latest_human_question(messages)

    def _open(
        self,
        messages: list[BaseMessage],
        handlers: Sequence[Any] | None,
        override: Any,
        run_id: Any = None,
    ) -> RoutedCall:
        text = self._question(messages)
        routed = _ROUTED.get()
        decided = routed.decision if routed is not None and routed.fits(self, text) else None
        return self._engine.begin(
            text,
            handlers=handlers or (),
            run_id=run_id,
            override=override,
            pinned=self._tier_from_tool_history(messages),
            decided=decided,
        )

    # -- routing before the run starts -------------------------------------------------
    #
    # LangChain starts the run (and a cost handler checks its budget) before _generate /
    # _stream is called: the call is routed first, so the run's invocation params name
    # the tier it will ask and a budget reserves that tier's maximum, not the dearest.

    def _routed_before(
        self, prompt: Sequence[BaseMessage], kwargs: Mapping[str, Any]
    ) -> _RoutedBefore | None:
        """One prompt's call, routed now (``None`` when the strategy raises: it is
        routed again in the run, where LangChain reports the error)."""
        messages = list(prompt)
        text = self._question(messages)
        override = kwargs.get("model")
        try:
            decision = self._engine.choose(
                text,
                override=override if self._engine.tier_named(override) else None,
                pinned=self._tier_from_tool_history(messages),
            )
        except Exception:
            return None
        return _RoutedBefore(self, text, decision)

    def _call_handlers(self, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> list[Any]:
        # The handlers LangChain will give a generate(messages, stop, callbacks) call's
        # run: those given, the model's own, cost_tracker()'s. Read, not configured: a
        # CallbackManager.configure here cost ~30 us, 7 % of a router's invoke.
        callbacks = kwargs.get("callbacks", args[1] if len(args) > 1 else None)
        found: list[Any] = tracking_handlers()
        for source in (callbacks, self.callbacks):
            if isinstance(source, BaseCallbackManager):
                found += source.handlers
            elif source:
                found += source
        return found

    def generate(self, messages: list[list[BaseMessage]], *args: Any, **kwargs: Any) -> LLMResult:
        if not _reserves_per_tier(self._call_handlers(args, kwargs)):
            with _routing(None):  # routed in the run (an outer call's routing is not this)
                return super().generate(messages, *args, **kwargs)
        if len(messages) == 1:
            with _routing(self._routed_before(messages[0], kwargs)):
                return super().generate(messages, *args, **kwargs)
        # LangChain starts every prompt's run with one set of invocation params, which
        # can name one routed tier only: each prompt gets a generate (and run) of its
        # own, in order, as LangChain runs them; the first takes a given run_id.
        results = []
        for i, prompt in enumerate(messages):
            with _routing(self._routed_before(prompt, kwargs)):
                results.append(super().generate([prompt], *args, **_for_prompt(i, kwargs)))
        return self._joined(results)

    async def agenerate(
        self, messages: list[list[BaseMessage]], *args: Any, **kwargs: Any
    ) -> LLMResult:
        if not _reserves_per_tier(self._call_handlers(args, kwargs)):
            with _routing(None):
                return await super().agenerate(messages, *args, **kwargs)
        if len(messages) == 1:
            with _routing(self._routed_before(messages[0], kwargs)):
                return await super().agenerate(messages, *args, **kwargs)
        parent = super().agenerate

        async def one(i: int, prompt: list[BaseMessage]) -> LLMResult:
            # A task of its own (gather): the routed call is this prompt's alone.
            with _routing(self._routed_before(prompt, kwargs)):
                return await parent([prompt], *args, **_for_prompt(i, kwargs))

        # Concurrently, as LangChain runs them; every run ends, then the first error.
        results = await asyncio.gather(
            *(one(i, prompt) for i, prompt in enumerate(messages)), return_exceptions=True
        )
        for result in results:
            if isinstance(result, BaseException):
                raise result
        return self._joined(cast(list[LLMResult], results))

    def _joined(self, results: Sequence[LLMResult]) -> LLMResult:
        """One ``generate`` result of several prompts' own, as LangChain joins them."""
        runs = [info for result in results for info in result.run or ()]
        return LLMResult(
            generations=[g for result in results for g in result.generations],
            llm_output=self._combine_llm_outputs([result.llm_output for result in results]),
            run=runs or None,
        )

    def _get_invocation_params(self, stop: list[str] | None = None, **kwargs: Any) -> dict:
        params = super()._get_invocation_params(stop=stop, **kwargs)
        routed = _ROUTED.get()
        if routed is not None and routed.router is self and not routed.named:
            # Once: the run's params (read first, before the run starts), not the cache
            # key LangChain reads from them later.
            routed.named = True
            params[ROUTED_TIER_PARAM] = routed.decision.tier
        return params

    def _tier_override(self, kwargs: dict[str, Any]) -> str | None:
        """A per-call ``model=`` naming a tier (or a tier's model) routes there and is
        taken out; any other value stays in the call's kwargs for the routed model."""
        if self._engine.tier_named(kwargs.get("model")) is None:
            return None
        return cast(str, kwargs.pop("model"))

    def _tier_from_tool_history(self, messages: list[BaseMessage]) -> str | None:
        # LangChain messages carry tool calls provider-neutrally, so any tier can read a
        # thread another tier started; pinning is only on request.
        if not self.pin_tool_threads or not has_tool_history(messages):
            return None
        for message in reversed(messages):
            if isinstance(message, AIMessage) and message.tool_calls:
                tier = (message.response_metadata.get(ROUTING_KEY) or {}).get("tier")
                if tier in self.models:
                    return cast(str, tier)
        return None

    def _inner_call(self, tier: str, kwargs: dict[str, Any]) -> tuple[BaseChatModel, dict]:
        """The inner model and call kwargs, with the router's bound tools re-bound the
        inner model's own way (each provider formats tools differently)."""
        model = self.models[tier]
        # A prompt-cache mark only for providers that take it: given to the call, or to
        # bind_tools (create_agent hands its model settings to bind_tools).
        name = self._engine.names[tier]
        if CACHE_MARK in kwargs:
            kwargs = settings_for(name, model._llm_type, kwargs)
        options = kwargs.get("tool_options")
        if options and CACHE_MARK in options:
            kwargs = {**kwargs, "tool_options": settings_for(name, model._llm_type, options)}
        return model, self._binder.call_kwargs(tier, model, kwargs)

    def _answer(self, answered: Answered[ChatResult]) -> ChatResult:
        return annotate_result(answered.result, answered.info, self._engine.names[answered.tier])

    def _relay(self, answered: Answered[Any]) -> StreamRelay:
        return StreamRelay(answered.result, answered.info, self._engine.names[answered.tier])

    # -- tools and structured output: each tier formats them its own way ----------------

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
        formatted = self._binder.register_tools(tools)
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
        if method not in STRUCTURED_METHODS:
            raise ValueError(f"method must be one of {STRUCTURED_METHODS}, got {method!r}")
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
            # The cache key is the call's kwargs, where a class shows only its name: the
            # JSON schema there keeps a schema that gained a field from reading answers
            # cached for its old form.
            spec = {
                "schema": schema,
                "method": method,
                "strict": strict,
                "json_schema": None if schema is None else convert_to_json_schema(schema),
            }
            llm = self.bind(costopt_structured=spec, ls_structured_output_format=ls_format)
            parser = StructuredAnswerParser(answer_schema=schema)
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

    # LangChain runs ``_stream`` without the run manager from ``stream()`` and from the
    # streaming branch of ``invoke``; these pass-through hooks keep the call's handlers
    # and run id reachable for budgets.

    def _generate_with_cache(self, messages: list[BaseMessage], **kwargs: Any) -> ChatResult:
        with _call_run(kwargs.get("run_manager")):
            return super()._generate_with_cache(messages, **kwargs)

    async def _agenerate_with_cache(self, messages: list[BaseMessage], **kwargs: Any) -> ChatResult:
        with _call_run(kwargs.get("run_manager")):
            return await super()._agenerate_with_cache(messages, **kwargs)

    def _generate(
        self, messages: Messages, stop: Stop = None, run_manager: Any = None, **kwargs: Any
    ) -> ChatResult:
        request = _Request(self, messages, stop, run_manager, kwargs)
        return self._answer(request.call.run(request.asker("_generate")))

    async def _agenerate(
        self, messages: Messages, stop: Stop = None, run_manager: Any = None, **kwargs: Any
    ) -> ChatResult:
        request = _Request(self, messages, stop, run_manager, kwargs)
        return self._answer(await request.call.arun(request.asker("_agenerate")))

    # -- streaming ---------------------------------------------------------------------

    def _stream_run(self, config: RunnableConfig | None) -> tuple[RunnableConfig, _RunManagerLike]:
        """The config with the run id the stream's run will take (LangChain takes a
        config's ``run_id``), and the handlers LangChain will configure for that run."""
        config = ensure_config(config)
        if config.get("run_id") is None:
            config = cast(RunnableConfig, {**config, "run_id": uuid.uuid4()})
        manager = CallbackManager.configure(config.get("callbacks"), self.callbacks)
        return config, _RunManagerLike(manager.handlers, config["run_id"])

    def stream(
        self, input: LanguageModelInput, config: RunnableConfig | None = None, **kwargs: Any
    ) -> Iterator[AIMessageChunk]:
        """LangChain's ``stream``, through the router's cache (see the class)."""
        config, run = self._stream_run(config)
        routed = (
            self._routed_before(self._convert_input(input).to_messages(), kwargs)
            if _reserves_per_tier(run.handlers)
            else None
        )
        with _call_run(run), _streaming(self), _routing(routed):
            yield from super().stream(input, config, **kwargs)

    async def astream(
        self, input: LanguageModelInput, config: RunnableConfig | None = None, **kwargs: Any
    ) -> AsyncIterator[AIMessageChunk]:
        """LangChain's ``astream``, through the router's cache (see the class)."""
        config, run = self._stream_run(config)
        routed = (
            self._routed_before(self._convert_input(input).to_messages(), kwargs)
            if _reserves_per_tier(run.handlers)
            else None
        )
        with _call_run(run), _streaming(self), _routing(routed):
            async for chunk in super().astream(input, config, **kwargs):
                yield chunk

    def _stream_cache(
        self, messages: Messages, stop: Stop, kwargs: dict[str, Any]
    ) -> CachedStream | None:
        """The cache entry of a ``stream``/``astream`` call of this router (``None`` for
        an ``invoke`` that streams: ``_generate_with_cache`` caches that one)."""
        call = _STREAMING.get()
        if call is None or call.router is not self or not call.pending:
            return None
        call.pending = False  # an invoke made between this stream's chunks is not it
        cache = cache_of(self)
        return None if cache is None else CachedStream.open(cache, self, messages, stop, kwargs)

    def _stream(
        self, messages: Messages, stop: Stop = None, run_manager: Any = None, **kwargs: Any
    ) -> Iterator[ChatGenerationChunk]:
        entry = self._stream_cache(messages, stop, kwargs)
        if entry is None:
            yield from self._routed_stream(messages, stop, run_manager, **kwargs)
            return
        message = entry.lookup(self)
        if message is not None:
            yield from replay_generation_chunks(message)
            return
        yield from entry.stored_when_complete(
            self._routed_stream(messages, stop, run_manager, **kwargs)
        )

    async def _astream(
        self, messages: Messages, stop: Stop = None, run_manager: Any = None, **kwargs: Any
    ) -> AsyncIterator[ChatGenerationChunk]:
        entry = self._stream_cache(messages, stop, kwargs)
        chunks: AsyncIterator[ChatGenerationChunk]
        if entry is None:
            chunks = self._arouted_stream(messages, stop, run_manager, **kwargs)
        else:
            message = await entry.alookup(self)
            if message is not None:
                for chunk in replay_generation_chunks(message):
                    yield chunk
                return
            chunks = entry.astored_when_complete(
                self._arouted_stream(messages, stop, run_manager, **kwargs)
            )
        async for chunk in chunks:
            yield chunk

    def _routed_stream(
        self, messages: Messages, stop: Stop = None, run_manager: Any = None, **kwargs: Any
    ) -> Iterator[ChatGenerationChunk]:
        if self._engine.judges_answers:
            # A cascade must judge the whole answer before the user sees any of it.
            yield from result_as_chunks(self._generate(messages, stop, run_manager, **kwargs))
            return
        request = _Request(self, messages, stop, run_manager, kwargs)
        relay = self._relay(request.call.run(request.stream_opener(asynchronous=False)))
        yield from relay.head()
        for chunk in relay.rest or ():
            yield relay.pass_on(chunk)
        yield from relay.tail()

    async def _arouted_stream(
        self, messages: Messages, stop: Stop = None, run_manager: Any = None, **kwargs: Any
    ) -> AsyncIterator[ChatGenerationChunk]:
        if self._engine.judges_answers:
            for chunk in result_as_chunks(
                await self._agenerate(messages, stop, run_manager, **kwargs)
            ):
                yield chunk
            return
        request = _Request(self, messages, stop, run_manager, kwargs)
        relay = self._relay(await request.call.arun(request.stream_opener(asynchronous=True)))
        for chunk in relay.head():
            yield chunk
        if relay.rest is not None:
            async for chunk in relay.rest:
                yield relay.pass_on(chunk)
        for chunk in relay.tail():
            yield chunk

    # -- batching ----------------------------------------------------------------------

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
            and not self._engine.judges_answers
            and not uses_cache
            and (self.rate_limiter is None)
        )

    def batch(
        self, inputs: list[LanguageModelInput], config: BatchConfig = None, **kwargs: Any
    ) -> list[Any]:
        """Route every input, then call each chosen model once with its whole group.

        ``deferred=True``: the calls are not urgent; each tier's group goes through its
        provider's batch API (OpenAI Batch, Anthropic Message Batches: half price,
        answers within the provider's window), see :mod:`langchain_costopt.batch`. The
        cache is not consulted on that path, and nothing falls back to another tier: an
        input the batch did not answer gets its error (raised, or returned with
        ``return_exceptions=True``).
        """
        return_exceptions = bool(kwargs.pop("return_exceptions", False))
        deferred = bool(kwargs.pop("deferred", False))
        if not deferred and not self._groups_batches(inputs):
            return super().batch(inputs, config, return_exceptions=return_exceptions, **kwargs)
        batch = _Batch(self, inputs, config, kwargs, deferred=deferred)
        for tier, indexes in batch.groups.items():
            try:
                results = batch.run_group(tier, indexes, "batch")
            except Exception as exc:  # e.g. the tier cannot bind the tools
                results = [exc] * len(indexes)
            for i, result in zip(indexes, results, strict=True):
                call = batch.settle(i, tier, result)
                if call is not None:
                    batch.finish(i, _outcome(call.run, batch.asker(i, "invoke")))
        return batch.outputs(return_exceptions)

    async def abatch(
        self, inputs: list[LanguageModelInput], config: BatchConfig = None, **kwargs: Any
    ) -> list[Any]:
        """Async :meth:`batch`: the groups run concurrently, one ``abatch`` per model
        (``deferred=True``: one provider batch per model, as in :meth:`batch`)."""
        return_exceptions = bool(kwargs.pop("return_exceptions", False))
        deferred = bool(kwargs.pop("deferred", False))
        if not deferred and not self._groups_batches(inputs):
            return await super().abatch(
                inputs, config, return_exceptions=return_exceptions, **kwargs
            )
        batch = _Batch(self, inputs, config, kwargs, deferred=deferred)

        async def run_group(tier: str, indexes: list[int]) -> None:
            try:
                results = await batch.run_group(tier, indexes, "abatch")
            except Exception as exc:
                results = [exc] * len(indexes)
            for i, result in zip(indexes, results, strict=True):
                call = batch.settle(i, tier, result)
                if call is not None:
                    batch.finish(i, await _aoutcome(call.arun, batch.asker(i, "ainvoke")))

        await asyncio.gather(*(run_group(t, idx) for t, idx in batch.groups.items()))
        return batch.outputs(return_exceptions)


class _Request:
    """One ``_generate``/``_stream`` call of the router: what it was asked, under which
    run, and the engine's routed call for it (``model=`` naming a tier is taken out)."""

    def __init__(
        self,
        router: RouterChatModel,
        messages: Messages,
        stop: Stop,
        run_manager: Any,
        kwargs: dict[str, Any],
    ) -> None:
        self.router = router
        self.messages = messages
        self.stop = router.stop if stop is None else stop
        self.run_manager = run_manager
        handlers, run_id = (
            (run_manager.handlers, run_manager.run_id)
            if run_manager
            else _CALL_RUN.get() or ((), None)
        )
        self.call = router._open(messages, handlers, router._tier_override(kwargs), run_id)
        self.kwargs = kwargs

    def asker(self, method: str) -> Callable[[str], Any]:
        """The engine's "ask this tier": the inner model's ``method`` (``_generate`` or
        ``_agenerate``, whose awaitable the async loop awaits) under the router's run,
        once the tier's rate limiter lets it through (LangChain applies a limiter in
        ``generate``/``stream``, which the router does not go through)."""

        def ask(tier: str) -> Any:
            model, kwargs = self.router._inner_call(tier, self.kwargs)
            call = functools.partial(
                getattr(model, method),
                self.messages,
                stop=self.stop,
                run_manager=self.run_manager,
                **kwargs,
            )
            limiter = model.rate_limiter
            if limiter is None:
                return call()
            if method == "_agenerate":

                async def limited() -> Any:
                    await limiter.aacquire(blocking=True)
                    return await call()

                return limited()
            limiter.acquire(blocking=True)
            return call()

        return ask

    def stream_opener(self, *, asynchronous: bool) -> Callable[[str], Any]:
        """ "Ask this tier" for a stream: open the inner stream and take its first chunk
        (so a failing tier falls back before the user sees anything); a model that does
        not stream answers whole."""
        generate = self.asker("_agenerate" if asynchronous else "_generate")

        def inner_stream(tier: str) -> tuple[Any, Any]:
            """The tier's stream, not started (``None``: it answers whole), and its
            rate limiter, to wait on before the stream starts."""
            model, kwargs = self.router._inner_call(tier, self.kwargs)
            if not model._should_stream(async_api=asynchronous, **{**kwargs, "stream": True}):
                return None, None
            method = model._astream if asynchronous else model._stream
            stream = method(self.messages, stop=self.stop, run_manager=self.run_manager, **kwargs)
            return stream, model.rate_limiter

        def open_stream(tier: str) -> Any:
            stream, limiter = inner_stream(tier)
            if stream is None:
                return generate(tier)
            if limiter is not None:
                limiter.acquire(blocking=True)
            return OpenedStream(next(stream, None), stream)

        async def aopen_stream(tier: str) -> Any:
            stream, limiter = inner_stream(tier)
            if stream is None:
                return await generate(tier)
            if limiter is not None:
                await limiter.aacquire(blocking=True)
            return OpenedStream(await anext(stream, None), stream)

        return aopen_stream if asynchronous else open_stream


class _Batch:
    """One grouped ``batch``: a routed call per input, grouped by the tier it starts on.

    The inner runs are the inner models' own: they carry the router's callbacks, tags
    and metadata, and the decision in their metadata (:data:`BATCH_ROUTING_KEY`). A
    failed input goes on through the engine's call (fallback) with ``invoke``.
    """

    def __init__(
        self,
        router: RouterChatModel,
        inputs: list[LanguageModelInput],
        config: BatchConfig,
        kwargs: dict[str, Any],
        deferred: bool = False,
    ) -> None:
        self.router = router
        self.deferred = deferred
        self.inputs = inputs
        self.configs = get_config_list(config, len(inputs))
        self.kwargs = dict(kwargs)
        override = router._tier_override(self.kwargs)
        if self.kwargs.get("stop") is None and router.stop is not None:
            self.kwargs["stop"] = router.stop
        self.calls: list[RoutedCall] = []
        self.groups: dict[str, list[int]] = {}
        for i, (item, item_config) in enumerate(zip(inputs, self.configs, strict=True)):
            messages = router._convert_input(item).to_messages()
            # As LangChain will configure the run: includes handlers registered by
            # configure hooks (e.g. `cost_tracker`), which the config does not list.
            handlers = CallbackManager.configure(
                item_config.get("callbacks"), router.callbacks
            ).handlers
            call = router._open(messages, handlers, override)
            if deferred:
                call.without_fallback()
            self.calls.append(call)
            self.groups.setdefault(call.decision.tier, []).append(i)
        self._outputs: list[Any] = [None] * len(inputs)

    def run_group(self, tier: str, indexes: list[int], method: str) -> Any:
        """The inner model's ``batch`` (or ``abatch``: an awaitable) over one group."""
        model, call_kwargs = self.router._inner_call(tier, self.kwargs)
        if self.deferred:  # the group goes through the tier's provider batch API
            run = adeferred_batch if method == "abatch" else deferred_batch
            return run(
                model,
                [self.inputs[i] for i in indexes],
                [self.config(i, tier) for i in indexes],
                return_exceptions=True,
                **call_kwargs,
            )
        return getattr(model, method)(
            [self.inputs[i] for i in indexes],
            [self.config(i, tier) for i in indexes],
            return_exceptions=True,
            **call_kwargs,
        )

    def asker(self, i: int, method: str) -> Callable[[str], Any]:
        """The engine's "ask this tier" for input ``i`` alone (``invoke``/``ainvoke``)."""

        def ask(tier: str) -> Any:
            model, call_kwargs = self.router._inner_call(tier, self.kwargs)
            return getattr(model, method)(self.inputs[i], self.config(i, tier), **call_kwargs)

        return ask

    def settle(self, i: int, tier: str, result: Any) -> RoutedCall | None:
        """Report the group's outcome for input ``i``; the call when it must go on."""
        call = self.calls[i]
        error = result if isinstance(result, Exception) else None
        try:
            call.settle(tier, None if error else result, error)
        except Exception as exc:
            self._outputs[i] = exc
            return None
        if call.next_tier() is not None:
            return call
        self.finish(i, call.answered())
        return None

    def finish(self, i: int, outcome: Answered[Any] | Exception) -> None:
        if isinstance(outcome, Exception):
            self._outputs[i] = outcome
            return
        names = self.router._engine.names
        message = annotate_message(outcome.result, outcome.info, names[outcome.tier])
        if self.router.output_version == "v1" and isinstance(message, BaseMessage):
            # What the router's own run would have done to the content.
            metadata = {**message.response_metadata, "output_version": "v1"}
            message = message.model_copy(
                update={"content": message.content_blocks, "response_metadata": metadata}
            )
        self._outputs[i] = message

    def config(self, i: int, tier: str) -> RunnableConfig:
        router, config = self.router, self.configs[i]
        info = self.calls[i].record(tier)
        metadata = {
            **(router.metadata or {}),
            **(config.get("metadata") or {}),
            # The inner run does not carry the router's params, so name the tiers here:
            # a cost handler prices the routing saving against them.
            BATCH_ROUTING_KEY: {**info, "tier_models": dict(router._engine.names)},
        }
        merged: dict[str, Any] = {**config, "metadata": metadata}
        if router.tags:
            merged["tags"] = [*(config.get("tags") or []), *router.tags]
        if router.callbacks:
            callbacks = config.get("callbacks")
            own = _handlers_of(router.callbacks)
            if isinstance(callbacks, BaseCallbackManager):
                manager = callbacks.copy()
                for handler in own:
                    manager.add_handler(handler, inherit=True)
                merged["callbacks"] = manager
            else:
                merged["callbacks"] = [*_handlers_of(callbacks), *own]
        return cast(RunnableConfig, merged)

    def outputs(self, return_exceptions: bool) -> list[Any]:
        if not return_exceptions:
            for output in self._outputs:
                if isinstance(output, Exception):
                    raise output
        return self._outputs


def _outcome(run: Callable[[Any], Answered[Any]], ask: Any) -> Answered[Any] | Exception:
    try:
        return run(ask)
    except Exception as exc:
        return exc


async def _aoutcome(run: Callable[[Any], Any], ask: Any) -> Answered[Any] | Exception:
    try:
        return await run(ask)
    except Exception as exc:
        return exc


class _StreamCall:
    """A router's ``stream``/``astream`` in progress: the first ``_stream`` it reaches
    (LangChain's, for this call) consults the cache."""

    __slots__ = ("pending", "router")

    def __init__(self, router: RouterChatModel) -> None:
        self.router = router
        self.pending = True


# The router whose stream()/astream() is running, so its _stream (which LangChain calls
# from stream() and from a streaming invoke alike) knows to consult the cache itself.
_STREAMING: ContextVar[_StreamCall | None] = ContextVar("costopt_router_stream", default=None)


def _streaming(router: RouterChatModel) -> contextlib.AbstractContextManager[None]:
    return holding(_STREAMING, _StreamCall(router))


def _reserves_per_tier(handlers: Sequence[Any]) -> bool:
    """Whether a handler reserves per tier (a budget): its run's params must name the
    tier the call is routed to, so the call is routed before LangChain starts the run.
    Otherwise it is routed in the run, and a cache hit is served without routing."""
    return any(conforms(h, TierReservation) for h in handlers)


def _for_prompt(i: int, kwargs: dict[str, Any]) -> dict[str, Any]:
    """``generate`` keywords for the ``i``-th prompt's own call (a given run id is the
    first run's, as LangChain gives it)."""
    if i == 0 or "run_id" not in kwargs:
        return kwargs
    return {k: v for k, v in kwargs.items() if k != "run_id"}


class _RoutedBefore:
    """A call routed before LangChain started its run (see RouterChatModel._open)."""

    __slots__ = ("decision", "named", "router", "text")

    def __init__(self, router: RouterChatModel, text: str, decision: RouteDecision) -> None:
        self.router = router
        self.text = text
        self.decision = decision
        self.named = False  # the run's params name the tier already

    def fits(self, router: RouterChatModel, text: str) -> bool:
        """Whether this is the call ``router`` is opening for ``text`` (a call made from
        inside it, by another router or on other messages, is routed on its own)."""
        return router is self.router and text == self.text


_ROUTED: ContextVar[_RoutedBefore | None] = ContextVar("costopt_routed_before", default=None)


def _routing(routed: _RoutedBefore | None) -> contextlib.AbstractContextManager[None]:
    return holding(_ROUTED, routed)


class _RunManagerLike(NamedTuple):
    """A run's handlers and id, known before LangChain makes its run manager."""

    handlers: list[Any]
    run_id: Any


def _call_run(run: Any) -> contextlib.AbstractContextManager[None]:
    """Keep a run's handlers and id (from a run manager or ``_RunManagerLike``) for the
    router's ``_stream``, which LangChain calls without them."""
    return holding(_CALL_RUN, None if run is None else (list(run.handlers), run.run_id))


__all__ = ["RouterChatModel", "merged_profile", "model_name_of"]
