"""RouterChatModel: a LangChain chat model that sends each call to one of N chat models.

Example:
    .. code-block:: python

        from langchain_core.language_models import GenericFakeChatModel
        from langchain_core.messages import AIMessage
        from langchain_costopt import RouterChatModel

        cheap = GenericFakeChatModel(messages=iter([AIMessage("Bonjour")]))
        strong = GenericFakeChatModel(messages=iter([AIMessage("A long analysis")]))
        router = RouterChatModel(models={"simple": cheap, "complex": strong})
        reply = router.invoke("请翻译: hello")
        reply.response_metadata["routing"]  # {'tier': 'simple', 'model': ..., ...}

Tiers are the mapping's keys, ordered cheapest first; a fallback climbs that order.
The router delegates to the chosen model's ``_generate`` / ``_stream`` with its own
run manager, so callbacks, tracing and caches see exactly one run per call.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from typing import Any, cast

from langchain_core.callbacks import (
    AsyncCallbackManagerForLLMRun,
    CallbackManagerForLLMRun,
)
from langchain_core.language_models import BaseChatModel, LanguageModelInput
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.outputs import ChatGenerationChunk, ChatResult
from langchain_core.runnables import Runnable, RunnableConfig
from langchain_core.runnables.config import get_config_list
from langchain_core.tools import BaseTool
from langchain_core.utils.function_calling import convert_to_openai_tool
from pydantic import ConfigDict, Field, PrivateAttr, model_validator

from costopt_core.decision import LADDER, RouteDecision, RoutingStrategy, resolve_tier
from costopt_core.strategies import as_strategy
from langchain_costopt.messages import has_tool_history, human_turns_text, latest_human_text

logger = logging.getLogger(__name__)

_TOOL_KEYS = ("tools", "tool_choice", "tool_options")


def model_name_of(model: Any) -> str:
    """The provider model name of a chat model (``model_name``/``model``), else its type."""
    for attr in ("model_name", "model", "model_id", "deployment_name"):
        value = getattr(model, attr, None)
        if isinstance(value, str) and value:
            return value
    llm_type = getattr(model, "_llm_type", None)
    return llm_type if isinstance(llm_type, str) else type(model).__name__


def _strategy_signature(strategy: Any) -> str:
    """Stable description of a strategy for the cache key: class plus simple settings."""
    cls = type(strategy)
    settings = {
        k: v
        for k, v in sorted(vars(strategy).items())
        if not k.startswith("_") and isinstance(v, str | int | float | bool | tuple)
    } if hasattr(strategy, "__dict__") else {}
    return f"{cls.__module__}.{cls.__qualname__}{settings}"


def _downgrade_requested(handlers: Sequence[Any]) -> bool:
    """A cost handler over budget with on_budget="downgrade" sets ``costopt_downgrade``."""
    for handler in handlers:
        try:
            if getattr(handler, "costopt_downgrade", False):
                return True
        except Exception:  # a broken handler must not break routing
            logger.exception("costopt_downgrade check failed on %r", handler)
    return False


def _answer_text(message: BaseMessage) -> str:
    content = message.content
    if isinstance(content, str):
        return content
    return "".join(
        b if isinstance(b, str) else str(b.get("text", ""))
        for b in content
        if isinstance(b, str) or (isinstance(b, dict) and b.get("type") == "text")
    )


class RouterChatModel(BaseChatModel):
    """Route each call to the cheapest chat model that can handle it.

    Args:
        models: tier name -> chat model, cheapest first (at least two tiers).
        strategy: a strategy object (``.route(text)``), a built-in name (``"rules"``,
            ``"length"``, ``"zero-shot"``, ``"knn"``, ``"cascade"``) or a callable
            ``text -> tier name``. Default: the seed's rules.
        fallback: when the chosen model raises (or fails before its first stream
            chunk), the next tier up answers and the decision records ``fallback_from``.
        include_history: classify all human turns instead of only the latest one.
    """

    models: dict[str, BaseChatModel]
    strategy: Any = "rules"
    fallback: bool = True
    include_history: bool = False

    model_config = ConfigDict(arbitrary_types_allowed=True)

    _strategy: RoutingStrategy = PrivateAttr()
    _tiers: tuple[str, ...] = PrivateAttr()
    _names: dict[str, str] = PrivateAttr(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _check_models(cls, data: Any) -> Any:
        if isinstance(data, dict):
            models = data.get("models")
            if not isinstance(models, Mapping):
                raise TypeError(
                    "models must be a mapping of tier name -> chat model, got "
                    f"{type(models).__name__}"
                )
            if len(models) < 2:
                raise ValueError(f"models needs at least 2 tiers, got {len(models)}")
            for tier, model in models.items():
                if not isinstance(tier, str) or not tier:
                    raise TypeError(f"tier names must be non-empty str, got {tier!r}")
                if not isinstance(model, BaseChatModel):
                    raise TypeError(
                        f"models[{tier!r}] must be a LangChain chat model (BaseChatModel), "
                        f"got {type(model).__name__}"
                    )
            data = {**data, "models": dict(models)}
        return data

    @model_validator(mode="after")
    def _build(self) -> RouterChatModel:
        self._strategy = as_strategy(self.strategy)
        self._tiers = tuple(self.models)
        self._names = {tier: model_name_of(m) for tier, m in self.models.items()}
        declared = getattr(self._strategy, "tiers", None)
        if declared and not set(declared) <= set(LADDER):
            unknown = [t for t in declared if t not in self.models]
            if unknown:
                raise ValueError(
                    f"strategy routes to tiers {unknown!r} that are not in models "
                    f"({list(self.models)!r})"
                )
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
            "strategy": _strategy_signature(self._strategy),
        }

    def _get_ls_params(self, stop: list[str] | None = None, **kwargs: Any) -> Any:
        params = super()._get_ls_params(stop=stop, **kwargs)
        params["ls_provider"] = "costopt"
        params["ls_model_name"] = "router:" + "|".join(self._names.values())
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

    def _decide(self, messages: list[BaseMessage], handlers: Sequence[Any]) -> RouteDecision:
        pinned = self._tier_from_tool_history(messages)
        if pinned is not None:
            return RouteDecision(pinned, 0.5, "conversation holds tool calls: stay on one model")
        if _downgrade_requested(handlers):
            return RouteDecision(self._tiers[0], 0.0, "budget exceeded: downgraded")
        text = human_turns_text(messages) if self.include_history else latest_human_text(messages)
        return self._decide_text(text)

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
        info: dict[str, Any] = {
            "tier": tier,
            "model": self._names[tier],
            "score": decision.score,
            "reason": decision.reason,
        }
        if fallback_from is not None:
            info["fallback_from"] = fallback_from
        if decision.extra:
            info.update(decision.extra)
        return info

    def _order_from(self, tier: str) -> list[str]:
        start = self._tiers.index(tier)
        return list(self._tiers[start:]) if self.fallback else [tier]

    def _inner_call(self, tier: str, kwargs: dict[str, Any]) -> tuple[BaseChatModel, dict]:
        """The inner model and call kwargs, with the router's bound tools re-bound the
        inner model's own way (each provider formats tools differently)."""
        model = self.models[tier]
        if not any(k in kwargs for k in _TOOL_KEYS):
            return model, kwargs
        kwargs = dict(kwargs)
        tools = kwargs.pop("tools", None)
        tool_choice = kwargs.pop("tool_choice", None)
        options = kwargs.pop("tool_options", None) or {}
        if not tools:
            return model, kwargs
        bind_kwargs: dict[str, Any] = dict(options)
        if tool_choice is not None:
            bind_kwargs["tool_choice"] = tool_choice
        bound = model.bind_tools(tools, **bind_kwargs)
        bound_kwargs = getattr(bound, "kwargs", None)
        if getattr(bound, "bound", None) is not model or not isinstance(bound_kwargs, dict):
            raise TypeError(
                f"{type(model).__name__}.bind_tools returned {type(bound).__name__}; "
                "RouterChatModel needs a binding of the model itself"
            )
        return model, {**bound_kwargs, **kwargs}

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

    def _cascade_check(self) -> Callable[[str, str, str], bool] | None:
        check = getattr(self._strategy, "accept", None)
        return check if callable(check) else None

    # -- generation --------------------------------------------------------------------

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        handlers = run_manager.handlers if run_manager else []
        decision = self._decide(messages, handlers)
        check = self._cascade_check()
        order = self._order_from(decision.tier)
        attempts: list[dict[str, Any]] = []
        first_error: BaseException | None = None
        for i, tier in enumerate(order):
            model, call_kwargs = self._inner_call(tier, kwargs)
            try:
                result = model._generate(messages, stop=stop, run_manager=run_manager, **call_kwargs)
            except Exception as exc:
                if first_error is None:
                    first_error = exc
                logger.warning("tier %r (%s) failed: %r", tier, self._names[tier], exc)
                if i == len(order) - 1:
                    raise first_error from None
                continue
            if check is not None and i < len(order) - 1 and result.generations:
                answer = _answer_text(result.generations[0].message)
                if not check(latest_human_text(messages), answer, tier):
                    attempts.append(self._attempt_record(tier, result))
                    continue
            info = self._routing_info(
                decision, tier, decision.tier if tier != decision.tier and first_error else None
            )
            if attempts:
                info["escalated_from"] = [a["tier"] for a in attempts]
                info["attempts"] = attempts
            return self._annotate(result, info, self._names[tier])
        raise RuntimeError("unreachable: routing order exhausted")  # pragma: no cover

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        handlers = run_manager.handlers if run_manager else []
        decision = self._decide(messages, handlers)
        check = self._cascade_check()
        order = self._order_from(decision.tier)
        attempts: list[dict[str, Any]] = []
        first_error: BaseException | None = None
        for i, tier in enumerate(order):
            model, call_kwargs = self._inner_call(tier, kwargs)
            try:
                result = await model._agenerate(
                    messages, stop=stop, run_manager=run_manager, **call_kwargs
                )
            except Exception as exc:
                if first_error is None:
                    first_error = exc
                logger.warning("tier %r (%s) failed: %r", tier, self._names[tier], exc)
                if i == len(order) - 1:
                    raise first_error from None
                continue
            if check is not None and i < len(order) - 1 and result.generations:
                answer = _answer_text(result.generations[0].message)
                if not check(latest_human_text(messages), answer, tier):
                    attempts.append(self._attempt_record(tier, result))
                    continue
            info = self._routing_info(
                decision, tier, decision.tier if tier != decision.tier and first_error else None
            )
            if attempts:
                info["escalated_from"] = [a["tier"] for a in attempts]
                info["attempts"] = attempts
            return self._annotate(result, info, self._names[tier])
        raise RuntimeError("unreachable: routing order exhausted")  # pragma: no cover

    def _attempt_record(self, tier: str, result: ChatResult) -> dict[str, Any]:
        """A rejected cascade attempt, with its usage so its cost is still accounted."""
        message = result.generations[0].message
        usage = getattr(message, "usage_metadata", None)
        model = message.response_metadata.get("model_name") or self._names[tier]
        return {"tier": tier, "model": model, "usage": dict(usage) if usage else None}

    # -- streaming ---------------------------------------------------------------------

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        handlers = run_manager.handlers if run_manager else []
        if self._cascade_check() is not None:
            # A cascade must judge the whole answer before the user sees any of it.
            result = self._generate(messages, stop=stop, run_manager=run_manager, **kwargs)
            yield from _result_as_chunks(result)
            return
        decision = self._decide(messages, handlers)
        order = self._order_from(decision.tier)
        first_error: BaseException | None = None
        for i, tier in enumerate(order):
            model, call_kwargs = self._inner_call(tier, kwargs)
            info = self._routing_info(decision, tier, decision.tier if first_error else None)
            if not model._should_stream(async_api=False, **{**call_kwargs, "stream": True}):
                try:
                    result = model._generate(
                        messages, stop=stop, run_manager=run_manager, **call_kwargs
                    )
                except Exception as exc:
                    first_error = first_error or exc
                    if i == len(order) - 1:
                        raise first_error from None
                    continue
                yield from _result_as_chunks(self._annotate(result, info, self._names[tier]))
                return
            iterator = model._stream(messages, stop=stop, run_manager=run_manager, **call_kwargs)
            try:
                first = next(iterator)
            except StopIteration:
                return
            except Exception as exc:
                first_error = first_error or exc
                logger.warning("tier %r failed before streaming: %r", tier, exc)
                if i == len(order) - 1:
                    raise first_error from None
                continue
            yield _with_routing(first, info, self._names[tier])
            yield from iterator
            return

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        handlers = run_manager.handlers if run_manager else []
        if self._cascade_check() is not None:
            result = await self._agenerate(messages, stop=stop, run_manager=run_manager, **kwargs)
            for chunk in _result_as_chunks(result):
                yield chunk
            return
        decision = self._decide(messages, handlers)
        order = self._order_from(decision.tier)
        first_error: BaseException | None = None
        for i, tier in enumerate(order):
            model, call_kwargs = self._inner_call(tier, kwargs)
            info = self._routing_info(decision, tier, decision.tier if first_error else None)
            if not model._should_stream(async_api=True, **{**call_kwargs, "stream": True}):
                try:
                    result = await model._agenerate(
                        messages, stop=stop, run_manager=run_manager, **call_kwargs
                    )
                except Exception as exc:
                    first_error = first_error or exc
                    if i == len(order) - 1:
                        raise first_error from None
                    continue
                for chunk in _result_as_chunks(self._annotate(result, info, self._names[tier])):
                    yield chunk
                return
            iterator = model._astream(messages, stop=stop, run_manager=run_manager, **call_kwargs)
            try:
                first = await iterator.__anext__()
            except StopAsyncIteration:
                return
            except Exception as exc:
                first_error = first_error or exc
                logger.warning("tier %r failed before streaming: %r", tier, exc)
                if i == len(order) - 1:
                    raise first_error from None
                continue
            yield _with_routing(first, info, self._names[tier])
            async for chunk in iterator:
                yield chunk
            return

    # -- batching ----------------------------------------------------------------------

    def _group_batch(
        self, inputs: list[LanguageModelInput], configs: list[RunnableConfig]
    ) -> tuple[list[RouteDecision], dict[str, list[int]]]:
        decisions: list[RouteDecision] = []
        groups: dict[str, list[int]] = {}
        for i, (item, config) in enumerate(zip(inputs, configs, strict=True)):
            messages = self._convert_input(item).to_messages()
            callbacks = config.get("callbacks")
            handlers = callbacks if isinstance(callbacks, list) else getattr(
                callbacks, "handlers", []
            )
            decision = self._decide(messages, handlers)
            decisions.append(decision)
            groups.setdefault(decision.tier, []).append(i)
        return decisions, groups

    def _batch_config(self, config: RunnableConfig, info: dict[str, Any]) -> RunnableConfig:
        # Callbacks see the decision in the run's metadata, since the run is the inner's.
        metadata = {**(config.get("metadata") or {}), "costopt_routing": info}
        return cast(RunnableConfig, {**config, "metadata": metadata})

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
        if self._cascade_check() is not None or len(inputs) == 1:
            return super().batch(inputs, config, return_exceptions=return_exceptions, **kwargs)
        configs = get_config_list(config, len(inputs))
        decisions, groups = self._group_batch(inputs, configs)
        outputs: list[Any] = [None] * len(inputs)
        for tier, indexes in groups.items():
            model, call_kwargs = self._inner_call(tier, kwargs)
            infos = {i: self._routing_info(decisions[i], tier) for i in indexes}
            results = model.batch(
                [inputs[i] for i in indexes],
                [self._batch_config(configs[i], infos[i]) for i in indexes],
                return_exceptions=True,
                **call_kwargs,
            )
            for i, result in zip(indexes, results, strict=True):
                if isinstance(result, Exception):
                    result = self._batch_fallback(tier, inputs[i], configs[i], decisions[i],
                                                  result, kwargs)
                else:
                    _annotate_message(result, infos[i], self._names[tier])
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
            model, call_kwargs = self._inner_call(next_tier, kwargs)
            info = self._routing_info(decision, next_tier, fallback_from=tier)
            try:
                result = model.invoke(item, self._batch_config(config, info), **call_kwargs)
            except Exception:
                continue
            return _annotate_message(result, info, self._names[next_tier])
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
        if self._cascade_check() is not None or len(inputs) == 1:
            return await super().abatch(
                inputs, config, return_exceptions=return_exceptions, **kwargs
            )
        configs = get_config_list(config, len(inputs))
        decisions, groups = self._group_batch(inputs, configs)
        outputs: list[Any] = [None] * len(inputs)

        async def run_group(tier: str, indexes: list[int]) -> None:
            model, call_kwargs = self._inner_call(tier, kwargs)
            infos = {i: self._routing_info(decisions[i], tier) for i in indexes}
            results = await model.abatch(
                [inputs[i] for i in indexes],
                [self._batch_config(configs[i], infos[i]) for i in indexes],
                return_exceptions=True,
                **call_kwargs,
            )
            for i, result in zip(indexes, results, strict=True):
                if isinstance(result, Exception):
                    result = await self._abatch_fallback(
                        tier, inputs[i], configs[i], decisions[i], result, kwargs
                    )
                else:
                    _annotate_message(result, infos[i], self._names[tier])
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
            model, call_kwargs = self._inner_call(next_tier, kwargs)
            info = self._routing_info(decision, next_tier, fallback_from=tier)
            try:
                result = await model.ainvoke(
                    item, self._batch_config(config, info), **call_kwargs
                )
            except Exception:
                continue
            return _annotate_message(result, info, self._names[next_tier])
        return error

    # -- tools -------------------------------------------------------------------------

    def bind_tools(
        self,
        tools: Sequence[dict[str, Any] | type | Callable[..., Any] | BaseTool],
        *,
        tool_choice: str | dict | bool | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, AIMessage]:
        """Bind tools; at call time the chosen inner model formats them its own way."""
        formatted = [convert_to_openai_tool(tool) for tool in tools]
        bind: dict[str, Any] = {"tools": formatted}
        if tool_choice is not None:
            bind["tool_choice"] = tool_choice
        if kwargs:
            bind["tool_options"] = kwargs
        return self.bind(**bind)


def _with_routing(
    chunk: ChatGenerationChunk, info: dict[str, Any], model_name: str
) -> ChatGenerationChunk:
    metadata = chunk.message.response_metadata
    metadata.setdefault("model_name", model_name)
    metadata["routing"] = dict(info)
    return chunk


def _annotate_message(message: Any, info: dict[str, Any], model_name: str) -> Any:
    if isinstance(message, BaseMessage):
        message.response_metadata.setdefault("model_name", model_name)
        message.response_metadata["routing"] = dict(info)
    return message


def _result_as_chunks(result: ChatResult) -> Iterator[ChatGenerationChunk]:
    """A finished result replayed as one stream chunk per generation."""
    for generation in result.generations:
        message = generation.message
        chunk_message = AIMessageChunk(
            content=message.content,
            additional_kwargs=message.additional_kwargs,
            response_metadata=message.response_metadata,
            usage_metadata=getattr(message, "usage_metadata", None),
            tool_call_chunks=[
                {"name": tc["name"], "args": _json_args(tc["args"]), "id": tc.get("id"),
                 "index": idx, "type": "tool_call_chunk"}
                for idx, tc in enumerate(getattr(message, "tool_calls", []) or [])
            ],
            id=message.id,
        )
        yield ChatGenerationChunk(message=chunk_message, generation_info=generation.generation_info)


def _json_args(args: Any) -> str:
    return json.dumps(args)


__all__ = ["RouterChatModel", "model_name_of"]
