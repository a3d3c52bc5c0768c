"""Deferred LangChain calls through the provider's batch API, billed at its batch rates.

Example:
    >>> from langchain_costopt import CostCallbackHandler
    >>> from langchain_costopt.batch import deferred_batch
    >>> from langchain_costopt.simulated import SimulatedChatModel
    >>> from costopt_core.batch.imitation import ImitationBatchServer
    >>> handler = CostCallbackHandler()
    >>> with ImitationBatchServer(processing_s=0.01) as server:
    ...     answers = deferred_batch(
    ...         SimulatedChatModel(model_name="gpt-4o-mini"), ["What is 2 + 2?", "Name a colour."],
    ...         {"callbacks": [handler]}, provider="openai", base_url=server.openai_base_url,
    ...         api_key=server.api_key, poll_interval_s=0.01)
    >>> [a.response_metadata["costopt_batch"] for a in answers], handler.summary().calls
    ([True, True], 2)
    >>> handler.to_dict()["saved_batch_usd"] == handler.total_cost  # half price
    True

With a ``ChatOpenAI`` or ``ChatAnthropic`` model, the provider, base URL, API key, model
name, ``max_tokens`` and ``temperature`` are read from the model; any other chat model
(or to override) takes ``provider=``, ``base_url=``, ``api_key=``. Each input is one
LangChain run of that model: ``on_chat_model_start`` fires for every input before the
batch is submitted (so a ``CostCallbackHandler`` reserves each call's budget and may
refuse it), then ``on_llm_end`` with the answer or ``on_llm_error`` (which releases the
reservation) once the batch has ended. Answers are ``AIMessage``s with the provider's
usage, ``response_metadata["model_name"]`` and ``response_metadata["costopt_batch"] =
True`` (``costopt_core.metadata_keys.BATCH_KEY``), which the cost handlers bill at the
catalog's batch rate (``ModelPrice.batch_discount``).

``BatchAPIChatModel`` wraps a chat model so it answers ``invoke`` directly and
``batch(..., deferred=True)`` through the batch API; as a ``RouterChatModel`` tier, the
router's ``batch(inputs, deferred=True)`` sends each tier's group through its batch API.
It is a drop-in chat model: ``bind_tools`` and ``with_structured_output`` are the wrapped
model's own, bound on the wrapper (so ``create_agent`` runs on it, and a deferred batch of
the bound model sends the tools or schema with every request).

A router is not one model: pass it to ``router.batch(inputs, deferred=True)``, not here.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from typing import Any
from uuid import UUID

from langchain_core.callbacks import (
    AsyncCallbackManager,
    AsyncCallbackManagerForLLMRun,
    CallbackManager,
    CallbackManagerForLLMRun,
)
from langchain_core.language_models import BaseChatModel, LanguageModelInput
from langchain_core.messages import (
    AIMessage,
    BaseMessage,
    HumanMessage,
    convert_to_messages,
    convert_to_openai_messages,
)
from langchain_core.messages.ai import UsageMetadata
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult, LLMResult
from langchain_core.prompt_values import PromptValue
from langchain_core.runnables import Runnable, RunnableConfig
from langchain_core.runnables.config import get_config_list
from langchain_core.tools import BaseTool
from pydantic import BaseModel, ConfigDict, SecretStr, model_validator

from costopt_core.arguments import refuse_unknown_arguments
from costopt_core.batch import (
    PROVIDERS,
    BatchRequest,
    BatchResult,
    BatchTarget,
    check_provider,
    resolve_target,
)
from costopt_core.batch.client import PollSettings
from costopt_core.batch.deferred import DeferredBatch, DeferredOptions, converted_inputs
from costopt_core.ledger import TokenUsage
from costopt_core.metadata_keys import BATCH_KEY, model_name_in
from langchain_costopt.chat_run import callback_manager_args
from langchain_costopt.messages import Messages, Stop

logger = logging.getLogger(__name__)

BatchConfig = RunnableConfig | Sequence[RunnableConfig] | None

#: Where the LangChain integrations keep their base URL and key (field names of
#: ``ChatOpenAI`` and ``ChatAnthropic``), by provider.
_BASE_URL_FIELDS: Mapping[str, tuple[str, ...]] = {
    "openai": ("openai_api_base",),
    "anthropic": ("anthropic_api_url",),
}
_API_KEY_FIELDS: Mapping[str, tuple[str, ...]] = {
    "openai": ("openai_api_key",),
    "anthropic": ("anthropic_api_key",),
}


def batch_target(
    model: BaseChatModel,
    *,
    provider: str | None = None,
    base_url: str | None = None,
    api_key: str | SecretStr | None = None,
    model_name: str | None = None,
    stop: Stop = None,
    **kwargs: Any,
) -> BatchTarget:
    """Read a chat model's provider, endpoint, key, name and settings (explicit wins).

    Example:
        >>> from langchain_costopt.simulated import SimulatedChatModel
        >>> target = batch_target(SimulatedChatModel(model_name="gpt-4o-mini", max_tokens=64),
        ...                       provider="anthropic", api_key="sk-test")
        >>> target.api, target.model, target.params["max_tokens"]
        (AnthropicBatchAPI(base_url='https://api.anthropic.com'), 'gpt-4o-mini', 64)
    """
    if not isinstance(model, BaseChatModel):
        raise TypeError(f"model must be a LangChain chat model, got {type(model).__name__}")
    ls = model._get_ls_params(stop=stop, **kwargs)
    detected = ls.get("ls_provider")
    known = provider or detected
    key = api_key
    if key is None and known in PROVIDERS:
        key = _field(model, _API_KEY_FIELDS[known])
    if isinstance(key, SecretStr):
        key = key.get_secret_value()
    params: dict[str, Any] = {}
    if isinstance(ls.get("ls_max_tokens"), int):
        params["max_tokens"] = ls["ls_max_tokens"]
    if isinstance(ls.get("ls_temperature"), int | float):
        params["temperature"] = ls["ls_temperature"]
    if stop:
        params["stop"] = list(stop)
    params.update(kwargs)
    return resolve_target(
        provider=provider,
        detected=detected,
        base_url=base_url
        or (_field(model, _BASE_URL_FIELDS[known]) if known in PROVIDERS else None),
        api_key=key,
        model_name=model_name or ls.get("ls_model_name") or model_name_in(vars(model)),
        params=params,
    )


def _field(model: BaseChatModel, names: tuple[str, ...]) -> Any:
    for field in names:
        value = getattr(model, field, None)
        if value:
            return value
    return None


#: What ``deferred_batch`` takes as each input (said when one is not).
ACCEPTED_INPUTS = "a text, a PromptValue or a list of messages (BaseMessage, (role, text), dict)"


def input_messages(item: LanguageModelInput) -> list[BaseMessage]:
    """A chat model input (text, prompt value or messages) as messages."""
    if isinstance(item, PromptValue):
        return item.to_messages()
    if isinstance(item, str):
        return [HumanMessage(item)]
    if not isinstance(item, Sequence):
        raise TypeError(f"a chat model input must be {ACCEPTED_INPUTS}, got {type(item).__name__}")
    return convert_to_messages(item)  # type: ignore[arg-type]


def usage_metadata(usage: TokenUsage) -> UsageMetadata:
    """LangChain's usage record of ``usage`` (cache and reasoning details when present)."""
    record = UsageMetadata(
        input_tokens=usage.input_tokens,
        output_tokens=usage.output_tokens,
        total_tokens=usage.total_tokens,
    )
    if usage.cache_read_tokens or usage.cache_write_tokens:
        record["input_token_details"] = {
            "cache_read": usage.cache_read_tokens,
            "cache_creation": usage.cache_write_tokens,
        }
    if usage.reasoning_tokens:
        record["output_token_details"] = {"reasoning": usage.reasoning_tokens}
    return record


def answer_message(result: BatchResult, target: BatchTarget, batch_id: str | None) -> AIMessage:
    """The ``AIMessage`` of an answered request, marked as billed at the batch rate."""
    metadata: dict[str, Any] = {
        "model_name": result.model or target.model,
        "finish_reason": result.finish_reason,
        "model_provider": target.api.name,
        BATCH_KEY: True,
        "batch_id": batch_id,
        "custom_id": result.custom_id,
    }
    raw_id = result.raw.get("id")
    return AIMessage(
        content=result.text,
        tool_calls=[
            {"name": c.name, "args": dict(c.args), "id": c.id, "type": "tool_call"}
            for c in result.tool_calls
        ],
        usage_metadata=usage_metadata(result.usage) if result.usage is not None else None,
        response_metadata=metadata,
        id=raw_id if isinstance(raw_id, str) else None,
    )


class _Deferred:
    """One deferred batch of a chat model: its requests, and how its runs open."""

    def __init__(
        self,
        model: BaseChatModel,
        inputs: Sequence[LanguageModelInput],
        config: BatchConfig,
        stop: Stop,
        keywords: dict[str, Any],
    ) -> None:
        """``keywords``: ``deferred_batch``'s options and the settings sent with every
        request. A ``BatchAPIChatModel`` is unwrapped: its own settings fill in what the
        call did not give."""
        _refuse_router(model)
        options, params = DeferredOptions.of_call(keywords, "deferred_batch")
        params.pop("deferred", None)
        # LangChain's tracing record of with_structured_output, never a request field.
        params.pop("ls_structured_output_format", None)
        if isinstance(model, BatchAPIChatModel):
            options = options.filled(model.batch_options())
            model = model.model
        self.messages = converted_inputs(
            inputs, input_messages, argument="inputs", accepted=ACCEPTED_INPUTS
        )
        self.model = model
        self.target = target = batch_target(model, stop=stop, **options.target_keywords(), **params)
        self.configs = get_config_list(config, len(inputs))
        requests = [
            BatchRequest(
                f"request-{i}",
                target.model,
                tuple(convert_to_openai_messages(messages)),  # type: ignore[arg-type]
                target.params,
            )
            for i, messages in enumerate(self.messages)
        ]
        self.batch = DeferredBatch(target.api, requests, options)
        self.stop = stop
        self.invocation_params = {
            "_type": model._llm_type,
            "model_name": target.model,
            **target.params,
            "batch_api": target.api.name,
        }
        self.ls_params = dict(model._get_ls_params(stop=stop, **params))
        self.ls_params["ls_model_name"] = target.model

    def manager_args(self, i: int) -> tuple[Any, ...]:
        """``CallbackManager.configure``'s arguments for input ``i``."""
        return callback_manager_args(self.model, self.configs[i], self.ls_params)

    def start_args(self, i: int) -> dict[str, Any]:
        config = self.configs[i]
        run_id = config.get("run_id")
        return {
            "serialized": {"name": type(self.model).__name__, "batch_api": self.target.api.name},
            "messages": [self.messages[i]],
            "invocation_params": self.invocation_params,
            "options": {"stop": self.stop, "deferred": True},
            "name": config.get("run_name"),
            "run_id": run_id if isinstance(run_id, UUID) else None,
            "batch_size": len(self.messages),
        }

    def answer(self, result: BatchResult, batch_id: str | None) -> tuple[AIMessage, LLMResult]:
        """An answered request's message, and what its run reports."""
        message = answer_message(result, self.target, batch_id)
        return message, LLMResult(generations=[[ChatGeneration(message=message)]])


def _refuse_router(model: BaseChatModel) -> None:
    # A batch holds one model; the router picks one per input (its own batch groups them).
    from langchain_costopt.chat_models import RouterChatModel  # imports this module

    if isinstance(model, RouterChatModel):
        raise TypeError(
            "model must be one chat model, not a RouterChatModel (it picks a model per "
            "input): call router.batch(inputs, deferred=True), which defers each tier's "
            "group through that tier's batch API"
        )


class _Runs:
    """A deferred batch's LangChain runs (the engine's ``DeferredRuns``)."""

    def __init__(self, job: _Deferred) -> None:
        self.job = job
        self.managers: list[CallbackManagerForLLMRun | None] = [None] * len(job.messages)

    def start(self, index: int) -> None:
        manager = CallbackManager.configure(*self.job.manager_args(index))
        self.managers[index] = manager.on_chat_model_start(**self.job.start_args(index))[0]

    def end(self, index: int, result: BatchResult, batch_id: str | None) -> AIMessage:
        message, ended = self.job.answer(result, batch_id)
        if (run := self.managers[index]) is not None:
            run.on_llm_end(ended)
        return message

    def fail(self, index: int, error: BaseException) -> None:
        if (run := self.managers[index]) is not None:  # None: its start was refused
            run.on_llm_error(error)


class _AsyncRuns:
    """:class:`_Runs` through LangChain's async callback managers."""

    def __init__(self, job: _Deferred) -> None:
        self.job = job
        self.managers: list[AsyncCallbackManagerForLLMRun | None] = [None] * len(job.messages)

    async def start(self, index: int) -> None:
        manager = AsyncCallbackManager.configure(*self.job.manager_args(index))
        runs = await manager.on_chat_model_start(**self.job.start_args(index))
        self.managers[index] = runs[0]

    async def end(self, index: int, result: BatchResult, batch_id: str | None) -> AIMessage:
        message, ended = self.job.answer(result, batch_id)
        if (run := self.managers[index]) is not None:
            await run.on_llm_end(ended)
        return message

    async def fail(self, index: int, error: BaseException) -> None:
        if (run := self.managers[index]) is not None:
            await run.on_llm_error(error)


@DeferredOptions.keywords(more=True)
def deferred_batch(
    model: BaseChatModel,
    inputs: Sequence[LanguageModelInput],
    config: BatchConfig = None,
    *,
    stop: Stop = None,
    **kwargs: Any,
) -> list[Any]:
    """Answer ``inputs`` with ``model`` through its provider's batch API (waits for it).

    ``model``: a chat model of a provider with a batch API, or a ``BatchAPIChatModel``
    (whose settings apply where the call gives none). Keyword arguments:
    ``costopt_core.batch.deferred.DeferredOptions`` (``return_exceptions``,
    ``provider``, ``base_url``, ``api_key``, ``model_name``, ``poll_interval_s``,
    ``max_poll_interval_s``, ``timeout_s``, ``settings``, ``http_client``); any other is
    sent with every request (``tools``, ``top_p``...), except a name shaped like an
    option (ending in ``_s``, starting with ``poll``, or close to one: a TypeError).
    ``inputs``: a list, each a text, a ``PromptValue`` or a list of messages.

    Returns one ``AIMessage`` per input, in order. A request the provider did not
    answer raises ``BatchRequestError`` (or is returned as one with
    ``return_exceptions=True``); so does a budget refusal (``BudgetExceededError``,
    before anything is submitted), a refused or failed batch (``BatchAPIError``) and a
    batch not ended by ``timeout_s`` (``BatchTimeoutError``, after cancelling it).
    """
    job = _Deferred(model, inputs, config, stop, kwargs)
    return job.batch.run(_Runs(job))


@DeferredOptions.keywords(more=True)
async def adeferred_batch(
    model: BaseChatModel,
    inputs: Sequence[LanguageModelInput],
    config: BatchConfig = None,
    *,
    stop: Stop = None,
    **kwargs: Any,
) -> list[Any]:
    """Async :func:`deferred_batch` (polls with ``asyncio.sleep``; ``http_client`` is an
    ``httpx.AsyncClient``)."""
    job = _Deferred(model, inputs, config, stop, kwargs)
    return await job.batch.arun(_AsyncRuns(job))


class BatchAPIChatModel(BaseChatModel):
    """A chat model whose ``batch(..., deferred=True)`` goes through its batch API.

    ``invoke``, ``stream`` and a plain ``batch`` call ``model`` directly (urgent calls);
    ``batch``/``abatch`` with ``deferred=True`` (or every batch, with ``deferred=True``
    set on the wrapper) run :func:`deferred_batch`. ``provider``, ``base_url`` and
    ``api_key`` default to what ``model`` says (``ChatOpenAI``, ``ChatAnthropic``).

    Example:
        >>> from langchain_costopt.simulated import SimulatedChatModel
        >>> model = BatchAPIChatModel(model=SimulatedChatModel(model_name="gpt-4o-mini"),
        ...                           provider="openai", api_key="sk-test")
        >>> model.model_name, model.invoke("hi").response_metadata["model_name"]
        ('gpt-4o-mini', 'gpt-4o-mini')
    """

    model: BaseChatModel
    provider: str | None = None
    base_url: str | None = None
    api_key: SecretStr | None = None
    model_name: str | None = None
    deferred: bool = False
    poll_interval_s: float = 10.0
    max_poll_interval_s: float = 300.0
    timeout_s: float = 24 * 3600.0

    model_config = ConfigDict(arbitrary_types_allowed=True)

    @model_validator(mode="before")
    @classmethod
    def _refuse_unknown(cls, data: Any) -> Any:
        # Pydantic drops unknown keywords: a misspelt timeout_s would wait a whole day.
        refuse_unknown_arguments(data, cls.model_fields, "BatchAPIChatModel")
        return data

    @model_validator(mode="after")
    def _check(self) -> BatchAPIChatModel:
        check_provider(self.provider)  # now, not at the first deferred batch
        self._settings()  # checks the three
        if self.model_name is None:
            name = self.model._get_ls_params().get("ls_model_name")
            if isinstance(name, str) and name:
                self.model_name = name
        return self

    @property
    def _llm_type(self) -> str:
        return "costopt-batch-api"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {
            **dict(self.model._identifying_params),
            "_type": self.model._llm_type,
            "model_name": self.model_name,
        }

    def _get_ls_params(self, stop: list[str] | None = None, **kwargs: Any) -> Any:
        kwargs.pop("deferred", None)
        return self.model._get_ls_params(stop=stop, **kwargs)

    def _settings(self) -> PollSettings:
        return PollSettings(self.poll_interval_s, self.max_poll_interval_s, self.timeout_s)

    def batch_options(self) -> dict[str, Any]:
        """Where its deferred calls go and how they are waited for (``deferred_batch``'s
        arguments)."""
        return {
            "provider": self.provider,
            "base_url": self.base_url,
            "api_key": self.api_key,
            "model_name": self.model_name,
            "settings": self._settings(),
        }

    # -- urgent calls: the wrapped model, directly --------------------------------------

    def _generate(
        self, messages: Messages, stop: Stop = None, run_manager: Any = None, **kwargs: Any
    ) -> ChatResult:
        kwargs.pop("deferred", None)
        return self.model._generate(messages, stop=stop, run_manager=run_manager, **kwargs)

    async def _agenerate(
        self, messages: Messages, stop: Stop = None, run_manager: Any = None, **kwargs: Any
    ) -> ChatResult:
        kwargs.pop("deferred", None)
        return await self.model._agenerate(messages, stop=stop, run_manager=run_manager, **kwargs)

    def _stream(
        self, messages: Messages, stop: Stop = None, run_manager: Any = None, **kwargs: Any
    ) -> Iterator[ChatGenerationChunk]:
        kwargs.pop("deferred", None)
        return self.model._stream(messages, stop=stop, run_manager=run_manager, **kwargs)

    async def _astream(
        self, messages: Messages, stop: Stop = None, run_manager: Any = None, **kwargs: Any
    ) -> AsyncIterator[ChatGenerationChunk]:
        kwargs.pop("deferred", None)
        async for chunk in self.model._astream(
            messages, stop=stop, run_manager=run_manager, **kwargs
        ):
            yield chunk

    # -- tools and structured output: the wrapped model's own, bound on this wrapper ------

    def bind_tools(
        self,
        tools: Sequence[dict[str, Any] | type | Callable[..., Any] | BaseTool],
        *,
        tool_choice: str | dict | bool | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, AIMessage]:
        """The wrapped model's ``bind_tools``, bound on this wrapper: direct calls pass
        the tools to the wrapped model, deferred batches send them with each request (in
        the wrapped model's format: OpenAI's for ``ChatOpenAI``, Anthropic's for
        ``ChatAnthropic``; the batch APIs take them as they are).

        Example:
            >>> from langchain_costopt.simulated import SimulatedChatModel
            >>> def add(a: int, b: int) -> int:
            ...     '''Add two integers.'''
            ...     return a + b
            >>> model = BatchAPIChatModel(model=SimulatedChatModel(model_name="gpt-4o-mini"),
            ...                           provider="openai", api_key="sk-test")
            >>> model.bind_tools([add]).invoke("add 2 and 3").tool_calls[0]["name"]
            'add'
        """
        if tool_choice is not None:
            kwargs["tool_choice"] = tool_choice
        return self._rebound(self.model.bind_tools(tools, **kwargs))

    def with_structured_output(
        self, schema: dict[str, Any] | type, *, include_raw: bool = False, **kwargs: Any
    ) -> Runnable[LanguageModelInput, Any]:
        """The wrapped model's ``with_structured_output`` (its own methods: function
        calling, JSON schema...), bound on this wrapper so that ``batch(...,
        deferred=True)`` of the result goes through the batch API.

        Example:
            >>> from pydantic import BaseModel
            >>> from langchain_costopt.simulated import SimulatedChatModel
            >>> class City(BaseModel):
            ...     name: str
            >>> model = BatchAPIChatModel(model=SimulatedChatModel(model_name="gpt-4o-mini"),
            ...                           provider="openai", api_key="sk-test")
            >>> type(model.with_structured_output(City).invoke("Where is the Louvre?")).__name__
            'City'
        """
        if type(self.model).with_structured_output is BaseChatModel.with_structured_output:
            # LangChain's own: a forced tool call through this wrapper's bind_tools.
            return super().with_structured_output(schema, include_raw=include_raw, **kwargs)
        structured = self.model.with_structured_output(schema, include_raw=include_raw, **kwargs)
        return self._rebound(structured)

    def _rebound(self, runnable: Runnable[Any, Any]) -> Runnable[Any, Any]:
        """``runnable`` (the wrapped model's binding, or a chain holding it) calling this
        wrapper in place of the wrapped model."""
        return replace_runnable(runnable, self.model, self)

    # -- deferred calls: the batch API ----------------------------------------------------

    def batch(
        self, inputs: list[LanguageModelInput], config: BatchConfig = None, **kwargs: Any
    ) -> list[Any]:
        """``deferred=True``: through the provider's batch API; else direct calls
        (``return_exceptions`` as in LangChain's ``batch``)."""
        if self._deferred(kwargs):
            return deferred_batch(self, inputs, config, **kwargs)
        return super().batch(inputs, config, **kwargs)

    async def abatch(
        self, inputs: list[LanguageModelInput], config: BatchConfig = None, **kwargs: Any
    ) -> list[Any]:
        """Async :meth:`batch`."""
        if self._deferred(kwargs):
            return await adeferred_batch(self, inputs, config, **kwargs)
        return await super().abatch(inputs, config, **kwargs)

    def _deferred(self, kwargs: dict[str, Any]) -> bool:
        """Whether a batch call (its ``kwargs``, ``deferred`` taken out) is deferred."""
        deferred = kwargs.pop("deferred", None)
        return bool(self.deferred if deferred is None else deferred)


def replace_runnable(
    runnable: Runnable[Any, Any], old: Runnable[Any, Any], new: Runnable[Any, Any]
) -> Runnable[Any, Any]:
    """``runnable`` with ``old`` replaced by ``new`` wherever it is bound or chained
    (bindings, sequences, parallel maps, fallbacks: LangChain's runnables are pydantic
    models whose fields hold their parts); the parts that do not hold ``old`` are kept.

    Example:
        >>> from langchain_core.runnables import RunnableLambda
        >>> one, two = RunnableLambda(lambda x: 1), RunnableLambda(lambda x: 2)
        >>> replace_runnable(one.with_config(tags=["x"]) | str, one, two).invoke(0)
        '2'
    """
    return _replaced(runnable, old, new, depth=0)


def _replaced(value: Any, old: Any, new: Any, depth: int) -> Any:
    if value is old:
        return new
    if depth > 32:  # deeper than any with_structured_output chain
        return value
    if isinstance(value, list | tuple):
        items = [_replaced(v, old, new, depth + 1) for v in value]
        changed = any(a is not b for a, b in zip(items, value, strict=True))
        return type(value)(items) if changed else value
    if isinstance(value, dict):
        entries = {k: _replaced(v, old, new, depth + 1) for k, v in value.items()}
        return entries if any(entries[k] is not v for k, v in value.items()) else value
    if not isinstance(value, Runnable) or not isinstance(value, BaseModel):
        return value
    changes = {}
    for name in type(value).model_fields:
        part = getattr(value, name, None)
        replaced = _replaced(part, old, new, depth + 1)
        if replaced is not part:
            changes[name] = replaced
    return value.model_copy(update=changes) if changes else value


__all__ = [
    "BatchAPIChatModel",
    "adeferred_batch",
    "answer_message",
    "batch_target",
    "deferred_batch",
    "input_messages",
    "replace_runnable",
    "usage_metadata",
]
