"""RouterLLM: a LlamaIndex LLM that sends each call to one of N LLMs, cheapest first.

Example:
    .. code-block:: python

        from llama_index.core import Settings
        from llama_index.llms.openai import OpenAI
        from llamaindex_costopt import RouterLLM

        Settings.llm = RouterLLM(
            llms={"simple": OpenAI(model="gpt-4o-mini"), "complex": OpenAI(model="gpt-4o")}
        )
        response = Settings.llm.complete("请翻译: good morning")
        response.additional_kwargs["routing"]  # {'tier': 'simple', 'model': ..., ...}

Routing uses the engine's strategies (``costopt_core.strategies``): the strategy judges
the user's question (the latest user turn; for a RAG prompt the ``query_str``, not the
retrieved context; see :mod:`llamaindex_costopt.messages`) and the decision is mapped
onto the configured tiers with ``costopt_core.decision.resolve_tier``.

Every answer carries the decision in ``additional_kwargs["routing"]``: ``tier``,
``model``, ``score``, ``reason`` and, when they apply, ``fallback_from`` (the chosen
tier failed and the next tier up answered), ``escalated_from`` / ``attempts`` (a
cascade strategy rejected cheaper answers). The same decision is dispatched as a
:class:`RoutingDecisionEvent` on LlamaIndex's instrumentation dispatcher.

The router's public methods are not wrapped in LlamaIndex's LLM callback decorators;
they call the chosen model's (decorated) methods, so one call emits one LLM start/end
event pair, from the model that answered. The router's spans (``RouterLLM.chat``...)
enclose the inner model's, which is how :class:`~llamaindex_costopt.CostEventHandler`
ties a priced call to its routing decision.

Budgets: before each call the router asks every ``CostEventHandler`` registered on the
dispatcher (and the one passed as ``cost_handler=``) to check its budget. LlamaIndex
swallows exceptions raised by event handlers, so a budget with ``on_budget="raise"`` is
enforced here: ``BudgetExceededError`` propagates to the caller and no model is called.
With ``on_budget="downgrade"`` the router answers with its cheapest tier.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from llama_index.core.base.llms.types import (
    ChatMessage,
    ChatResponse,
    LLMMetadata,
)
from llama_index.core.instrumentation import get_dispatcher
from llama_index.core.instrumentation.events import BaseEvent
from llama_index.core.llms.function_calling import FunctionCallingLLM
from llama_index.core.llms.llm import LLM, ToolSelection
from pydantic import ConfigDict, Field, PrivateAttr, model_validator

from costopt_core.budget_gate import BudgetGate, downgrade_requested, open_budget, release_budget
from costopt_core.decision import (
    RouteDecision,
    RoutingStrategy,
    check_strategy_tiers,
    check_tier_mapping,
    resolve_tier,
    routing_info,
)
from costopt_core.ledger import BudgetExceededError
from costopt_core.strategies import as_strategy, strategy_signature
from llamaindex_costopt.messages import (
    chat_question,
    has_tool_history,
    question_of,
    tool_call_ids,
)
from llamaindex_costopt.wrapper import (
    ASTREAM,
    ASYNC,
    STREAM,
    SYNC,
    CompleteRequest,
    Request,
    ToolsRequest,
    WrapperLLM,
    answer_text,
    areplay,
    budget_gates,
    llm_model_name,
    merged_metadata,
    replay,
)

if TYPE_CHECKING:
    pass

logger = logging.getLogger(__name__)
dispatcher = get_dispatcher(__name__)

_MAX_TOOL_IDS = 10_000
_PINNED_REASON = "conversation holds tool calls: stay on one model"


class RoutingDecisionEvent(BaseEvent):
    """The router's decision for one call, dispatched once the answering model is known
    (for streams: at the first chunk), or with ``error`` set when every tier failed.

    ``span_id`` is the router's span: the answering model's LLM events are in a child span.
    """

    tier: str
    model: str
    score: float
    reason: str
    fallback_from: str | None = None
    escalated_from: list[str] = Field(default_factory=list)
    routing: dict[str, Any] = Field(default_factory=dict)
    models: dict[str, str] = Field(default_factory=dict)
    error: str | None = None

    @classmethod
    def class_name(cls) -> str:
        return "RoutingDecisionEvent"


class _Call:
    """The state of one routed call: order of tiers, budget reservations, attempts."""

    __slots__ = ("attempts", "decision", "first_error", "question", "tokens")

    def __init__(
        self, decision: RouteDecision, question: str, tokens: list[tuple[Any, Any]]
    ) -> None:
        self.decision = decision
        self.question = question
        self.tokens = tokens
        self.attempts: list[dict[str, Any]] = []
        self.first_error: BaseException | None = None


class RouterLLM(WrapperLLM):
    """Route each LlamaIndex call to the cheapest LLM that can handle it.

    Example:
        >>> from llamaindex_costopt import RouterLLM
        >>> from llamaindex_costopt.simulated import SimulatedLLM
        >>> router = RouterLLM(llms={"simple": SimulatedLLM(model_name="deepseek-v3"),
        ...                          "complex": SimulatedLLM(model_name="gpt-4o")})
        >>> router.complete("请翻译: good morning").additional_kwargs["routing"]["model"]
        'deepseek-v3'

    Args:
        llms: tier name -> LlamaIndex LLM, cheapest first (at least two tiers).
        strategy: a strategy object (``.route(text)``), a built-in name (``"rules"``,
            ``"length"``, ``"zero-shot"``, ``"knn"``, ``"cascade"``) or a callable
            ``text -> tier name``. Default: the seed's rules.
        fallback: when the chosen LLM raises (or fails before its first stream chunk),
            the next tier up answers; the decision records ``fallback_from``.
        include_history: classify every user turn instead of only the latest one.
        cost_handler: a ``CostEventHandler`` whose budget is checked before each call,
            in addition to those registered on the instrumentation dispatcher.
    """

    llms: dict[str, Any]
    strategy: Any = "rules"
    fallback: bool = True
    include_history: bool = False
    cost_handler: Any = Field(default=None, exclude=True)

    model_config = ConfigDict(arbitrary_types_allowed=True)

    _strategy: RoutingStrategy = PrivateAttr()
    _tiers: tuple[str, ...] = PrivateAttr()
    _names: dict[str, str] = PrivateAttr(default_factory=dict)
    _tool_tiers: OrderedDict[str, str] = PrivateAttr(default_factory=OrderedDict)
    _lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)

    @model_validator(mode="before")
    @classmethod
    def _check_llms(cls, data: Any) -> Any:
        if isinstance(data, dict):
            llms = check_tier_mapping(
                data.get("llms"),
                argument="llms",
                model_type=LLM,
                model_kind="LlamaIndex LLM (llama_index.core.llms.LLM)",
            )
            handler = data.get("cost_handler")
            if handler is not None and not isinstance(handler, BudgetGate):
                raise TypeError(
                    "cost_handler must be a CostEventHandler (a BudgetGate), got "
                    f"{type(handler).__name__}"
                )
            data = {**data, "llms": llms}
        return data

    @model_validator(mode="after")
    def _build(self) -> RouterLLM:
        self._strategy = as_strategy(self.strategy)
        self._tiers = tuple(self.llms)
        self._names = {tier: llm_model_name(llm) for tier, llm in self.llms.items()}
        check_strategy_tiers(self._strategy, self._tiers, argument="llms")
        return self

    def _wrapped_llms(self) -> list[LLM]:
        return list(self.llms.values())

    # -- identity ----------------------------------------------------------------------

    @classmethod
    def class_name(cls) -> str:
        return "RouterLLM"

    @property
    def metadata(self) -> LLMMetadata:
        """What holds for every tier: smallest context window, chat / function calling
        only if every inner LLM has it; ``model_name`` names the tiers' models."""
        return merged_metadata(self._wrapped_llms(), self.model_name)

    @property
    def model_name(self) -> str:
        return "router:" + "|".join(self._names[t] for t in self._tiers)

    @property
    def tiers(self) -> tuple[str, ...]:
        """Tier names, cheapest first."""
        return self._tiers

    @property
    def models(self) -> dict[str, str]:
        """Tier -> model name."""
        return dict(self._names)

    def to_payload(self) -> dict[str, Any]:
        return {
            **super().to_payload(),
            "tiers": dict(self._names),
            "strategy": strategy_signature(self._strategy),
        }

    # -- decisions ---------------------------------------------------------------------

    def route(self, prompt: str | Sequence[ChatMessage]) -> RouteDecision:
        """The decision the router would take for ``prompt`` (no model is called)."""
        if isinstance(prompt, str):
            return self._decide_text(question_of(prompt))
        return self._decide_messages(list(prompt), downgrade=False)

    def _decide_text(self, text: str) -> RouteDecision:
        decision = self._strategy.route(text)
        tier = resolve_tier(decision, self._tiers)
        if tier != decision.tier:
            decision = RouteDecision(tier, decision.score, decision.reason, decision.extra)
        return decision

    def _decide_messages(self, messages: list[ChatMessage], downgrade: bool) -> RouteDecision:
        if has_tool_history(messages):
            pinned = self._pinned_tier(messages)
            if pinned is not None:
                return RouteDecision(pinned, 0.5, _PINNED_REASON)
        if downgrade:
            return RouteDecision(self._tiers[0], 0.0, "budget exceeded: downgraded")
        return self._decide_text(chat_question(messages, include_history=self.include_history))

    def _pinned_tier(self, messages: list[ChatMessage]) -> str | None:
        # Tool-call ids and formats are provider specific: the model that called a tool
        # sees the conversation through.
        with self._lock:
            for message in reversed(messages):
                for call_id in tool_call_ids(message):
                    tier = self._tool_tiers.get(call_id)
                    if tier is not None:
                        return tier
        return None

    def _remember_tool_calls(self, tier: str, response: ChatResponse) -> None:
        llm = self.llms[tier]
        if not isinstance(llm, FunctionCallingLLM):
            return
        try:
            calls = llm.get_tool_calls_from_response(response, error_on_no_tool_call=False)
        except Exception:  # a model that cannot parse its own answer made no tool call
            calls = []
        ids = [c.tool_id for c in calls or () if getattr(c, "tool_id", None)]
        ids += tool_call_ids(response.message)
        if not ids:
            return
        with self._lock:
            for call_id in ids:
                self._tool_tiers[call_id] = tier
                self._tool_tiers.move_to_end(call_id)
            while len(self._tool_tiers) > _MAX_TOOL_IDS:
                self._tool_tiers.popitem(last=False)

    def _routing_info(
        self, call: _Call, tier: str, fallback_from: str | None = None
    ) -> dict[str, Any]:
        decision = call.decision
        info = routing_info(decision, tier, self._names[tier], fallback_from)
        if call.attempts:
            info["escalated_from"] = [a["tier"] for a in call.attempts]
            info["attempts"] = [dict(a) for a in call.attempts]
        return info

    def _emit(self, info: dict[str, Any], error: BaseException | None = None) -> None:
        try:
            dispatcher.event(
                RoutingDecisionEvent(
                    tier=info["tier"],
                    model=info["model"],
                    score=info["score"],
                    reason=info["reason"],
                    fallback_from=info.get("fallback_from"),
                    escalated_from=list(info.get("escalated_from", [])),
                    routing=dict(info),
                    models=dict(self._names),
                    error=None if error is None else repr(error),
                )
            )
        except Exception:  # observability must never fail the user's call
            logger.exception("dispatching RoutingDecisionEvent failed")

    def _order(self, call: _Call) -> list[tuple[str, bool]]:
        """The tiers to try, the chosen one first, each with whether it is the last."""
        tier = call.decision.tier
        tiers = list(self._tiers[self._tiers.index(tier) :]) if self.fallback else [tier]
        return [(t, index == len(tiers) - 1) for index, t in enumerate(tiers)]

    def _cascade_check(self) -> Callable[[str, str, str], bool] | None:
        check = getattr(self._strategy, "accept", None)
        return check if callable(check) else None

    # -- budgets -----------------------------------------------------------------------

    def _start(self, question: str, decide: Callable[[bool], RouteDecision]) -> _Call:
        """Check budgets (raising BudgetExceededError before any model is called), then
        decide; a budget in "downgrade" mode sends the call to the cheapest tier."""
        gates = budget_gates(dispatcher, self.cost_handler)
        tokens = open_budget(gates, routed=True)
        return _Call(decide(downgrade_requested(gates)), question, tokens)

    def _failed(self, call: _Call, tier: str, exc: Exception, last: bool) -> None:
        """A tier raised: the next one is tried, unless this was the last tier or a budget
        refused the call (then the reservations are released and the error raised)."""
        if isinstance(exc, BudgetExceededError):
            release_budget(call.tokens)
            raise exc
        if call.first_error is None:
            call.first_error = exc
        logger.warning("tier %r (%s) failed: %r", tier, self._names[tier], exc)
        if last:
            release_budget(call.tokens)
            info = self._routing_info(call, call.decision.tier)
            self._emit(info, error=call.first_error)
            raise call.first_error from None

    def _accepted(
        self,
        call: _Call,
        tier: str,
        response: Any,
        last: bool,
    ) -> bool:
        """The cascade check (if the strategy has one) on a non-final tier's answer; a
        rejected answer is recorded in ``attempts`` and the next tier up is asked."""
        check = self._cascade_check()
        if check is None or last:
            return True
        try:
            ok = bool(check(call.question, answer_text(response), tier))
        except Exception:
            logger.exception("cascade check failed; the answer is accepted")
            return True
        if not ok:
            call.attempts.append(
                {"tier": tier, "model": self._names[tier], "usage": _usage(response)}
            )
        return ok

    def _finish(self, call: _Call, tier: str, response: Any) -> Any:
        fell_back = tier != call.decision.tier and call.first_error is not None
        fallback_from = call.decision.tier if fell_back else None
        info = self._routing_info(call, tier, fallback_from)
        _annotate(response, info)
        self._emit(info)
        if isinstance(response, ChatResponse):
            self._remember_tool_calls(tier, response)
        return response

    # -- the routing loops -------------------------------------------------------------

    def _send(self, tier: str, request: Request, mode: str) -> Any:
        llm = self.llms[tier]
        if isinstance(request, ToolsRequest):
            llm = self._tool_llm(llm)
        return request.send(llm, mode)

    def _run(self, call: _Call, request: Request, mode: str) -> Any:
        for tier, last in self._order(call):
            try:
                response = self._send(tier, request, mode)
            except Exception as exc:
                self._failed(call, tier, exc, last)
                continue
            if self._accepted(call, tier, response, last):
                return self._finish(call, tier, response)
        raise RuntimeError("unreachable: routing order exhausted")  # pragma: no cover

    async def _arun(self, call: _Call, request: Request, mode: str) -> Any:
        for tier, last in self._order(call):
            try:
                response = await self._send(tier, request, mode)
            except Exception as exc:
                self._failed(call, tier, exc, last)
                continue
            if self._accepted(call, tier, response, last):
                return self._finish(call, tier, response)
        raise RuntimeError("unreachable: routing order exhausted")  # pragma: no cover

    def _run_stream(self, call: _Call, request: Request) -> Iterator[Any]:
        """Start the stream of the chosen tier now (inside the router's span), falling
        back while no chunk has been produced; later chunks flow through untouched."""
        for tier, last in self._order(call):
            try:
                iterator = iter(self._send(tier, request, STREAM))
                first = next(iterator)
            except StopIteration:  # an empty answer is still an answer
                self._emit(self._routing_info(call, tier))
                return iter(())
            except Exception as exc:
                self._failed(call, tier, exc, last)
                continue
            info = self._finish(call, tier, first).additional_kwargs["routing"]
            return self._relay(first, iterator, tier, info)
        raise RuntimeError("unreachable: routing order exhausted")  # pragma: no cover

    def _relay(self, first: Any, rest: Iterator[Any], tier: str, info: dict) -> Iterator[Any]:
        last = first
        yield first
        for chunk in rest:
            _annotate(chunk, info)
            last = chunk
            yield chunk
        if isinstance(last, ChatResponse) and last is not first:
            self._remember_tool_calls(tier, last)

    async def _arun_stream(self, call: _Call, request: Request) -> AsyncIterator[Any]:
        for tier, last in self._order(call):
            try:
                iterator = await self._send(tier, request, ASTREAM)
                first = await iterator.__anext__()
            except StopAsyncIteration:
                self._emit(self._routing_info(call, tier))
                return _aempty()
            except Exception as exc:
                self._failed(call, tier, exc, last)
                continue
            info = self._finish(call, tier, first).additional_kwargs["routing"]
            return self._arelay(first, iterator, tier, info)
        raise RuntimeError("unreachable: routing order exhausted")  # pragma: no cover

    async def _arelay(
        self, first: Any, rest: AsyncIterator[Any], tier: str, info: dict
    ) -> AsyncIterator[Any]:
        last = first
        yield first
        async for chunk in rest:
            _annotate(chunk, info)
            last = chunk
            yield chunk
        if isinstance(last, ChatResponse) and last is not first:
            self._remember_tool_calls(tier, last)

    # -- requests: route, then send ----------------------------------------------------

    def _chat_call(self, messages: list[ChatMessage]) -> _Call:
        question = chat_question(messages, include_history=self.include_history)
        return self._start(question, lambda down: self._decide_messages(messages, down))

    def _text_call(self, prompt: str) -> _Call:
        question = question_of(prompt)

        def decide(downgrade: bool) -> RouteDecision:
            if downgrade:
                return RouteDecision(self._tiers[0], 0.0, "budget exceeded: downgraded")
            return self._decide_text(question)

        return self._start(question, decide)

    def _call_for(self, request: Request) -> _Call:
        if isinstance(request, CompleteRequest):
            return self._text_call(request.prompt)
        if isinstance(request, ToolsRequest):
            for llm in self.llms.values():
                self._tool_llm(llm)
        return self._chat_call(request.messages)

    def _answer(self, request: Request) -> Any:
        return self._run(self._call_for(request), request, SYNC)

    async def _aanswer(self, request: Request) -> Any:
        return await self._arun(self._call_for(request), request, ASYNC)

    def _stream(self, request: Request) -> Iterator[Any]:
        call = self._call_for(request)
        if self._cascade_check() is not None:
            # A cascade judges the whole answer before the user sees any of it.
            return replay(self._run(call, request, SYNC))
        return self._run_stream(call, request)

    async def _astream(self, request: Request) -> AsyncIterator[Any]:
        call = self._call_for(request)
        if self._cascade_check() is not None:
            return areplay(await self._arun(call, request, ASYNC))
        return await self._arun_stream(call, request)

    # -- tools -------------------------------------------------------------------------

    def _tool_llm(self, llm: LLM) -> FunctionCallingLLM:
        if not isinstance(llm, FunctionCallingLLM) or not llm.metadata.is_function_calling_model:
            raise TypeError(
                f"{type(llm).__name__} ({llm_model_name(llm)}) does not support tool calling; "
                "every tier of a RouterLLM used with tools must be a function-calling LLM"
            )
        return llm

    def _tools_llm_for(self, request: ToolsRequest) -> FunctionCallingLLM:
        tier = self._decide_messages(request.messages, downgrade=False).tier
        return self._tool_llm(self.llms[tier])

    def get_tool_calls_from_response(
        self,
        response: ChatResponse,
        error_on_no_tool_call: bool = True,
        **kwargs: Any,
    ) -> list[ToolSelection]:
        """Parsed by the model that answered (named in ``additional_kwargs["routing"]``)."""
        routing = (response.additional_kwargs or {}).get("routing") or {}
        tier = routing.get("tier")
        if tier in self.llms:
            return self._tool_llm(self.llms[tier]).get_tool_calls_from_response(
                response, error_on_no_tool_call=error_on_no_tool_call, **kwargs
            )
        # Not a routed response (e.g. built by hand): the first tier that parses it.
        for llm in self.llms.values():
            if not isinstance(llm, FunctionCallingLLM):
                continue
            try:
                calls = llm.get_tool_calls_from_response(
                    response, error_on_no_tool_call=False, **kwargs
                )
            except Exception:
                continue
            if calls:
                return calls
        if error_on_no_tool_call:
            raise ValueError("Expected at least one tool call, but got 0 tool calls.")
        return []


# -- helpers ---------------------------------------------------------------------------------


def _usage(response: Any) -> dict[str, Any] | None:
    from llamaindex_costopt.handlers import usage_of_response

    try:
        usage = usage_of_response(response)
    except Exception:
        return None
    return (
        None
        if usage is None
        else {
            "input_tokens": usage.input_tokens,
            "output_tokens": usage.output_tokens,
            "total_tokens": usage.total_tokens,
        }
    )


def _annotate(response: Any, info: dict[str, Any]) -> None:
    extra = response.additional_kwargs
    if extra is None:
        response.additional_kwargs = extra = {}
    extra["routing"] = dict(info)


async def _aempty() -> AsyncIterator[Any]:
    return
    yield  # pragma: no cover - makes this an async generator


__all__ = ["RouterLLM", "RoutingDecisionEvent"]
