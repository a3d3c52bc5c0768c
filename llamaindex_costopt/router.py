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

import contextlib
import logging
import threading
import warnings
from collections import OrderedDict
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any

from llama_index.core.base.llms.types import (
    ChatMessage,
    ChatResponse,
    LLMMetadata,
)
from llama_index.core.instrumentation import get_dispatcher
from llama_index.core.instrumentation.events import BaseEvent
from llama_index.core.instrumentation.span import active_span_id
from llama_index.core.llms.function_calling import FunctionCallingLLM
from llama_index.core.llms.llm import LLM, ToolSelection
from pydantic import ConfigDict, Field, model_validator

from costopt_core.arguments import (
    STRATEGY_HINT,
    TIER_CONNECTION_SETTINGS,
    refuse_unknown_arguments,
)
from costopt_core.budget_gate import (
    DEFAULT_MAX_OUTPUT_TOKENS,
    BudgetGate,
    CallQuote,
    hold_follow_up,
    move_follow_up,
    release_budget,
    release_follow_up,
)
from costopt_core.decision import RouteDecision, with_checked_tiers
from costopt_core.engine import ROUTING_KEY, AnswerFacts, RoutedCall, RoutingEngine
from costopt_core.ledger import BudgetExceededError
from llamaindex_costopt.handlers import CostEventHandler
from llamaindex_costopt.messages import (
    chat_question,
    has_tool_history,
    question_of,
    tool_call_ids,
)
from llamaindex_costopt.requests import CompleteRequest, Mode, Request, ToolsRequest
from llamaindex_costopt.responses import answer_text, areplay, replay
from llamaindex_costopt.wrapper import (
    WrapperLLM,
    budget_gates,
    llm_model_name,
    merged_metadata,
    request_quotes,
    send,
)

logger = logging.getLogger(__name__)
dispatcher = get_dispatcher(__name__)

_MAX_TOOL_IDS = 10_000


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
        strategy: what picks the tier (see :func:`costopt_core.get_strategy`): a name,
            an object with ``route(text)``, or a ``text -> tier`` callable; the
            seed's rules when omitted.
        fallback: on an error (for streams, before the first chunk) the next tier up
            answers, and ``fallback_from`` names the tier that failed.
        include_history: judge every user turn, not only the latest one.
        cost_handler: a ``CostEventHandler`` whose budget is checked before each call,
            in addition to those registered on the instrumentation dispatcher. Register
            it as well (``handler.register()``): unregistered, it is asked before each
            call but never sees the answers, so it counts no spend and its reservations
            are freed only when they expire (``reservation_ttl_seconds``).
        hold_follow_ups: under a budget, an agent's call (one offered tools) also holds
            room for the call that reads its tools' results (see
            ``costopt_core.follow_ups``): concurrent agents on a small budget then finish
            the runs they started. Off by default: a hold is that call's maximum (its
            ``max_tokens``, else 4,096 output tokens) on top of the running call's, so
            with uncapped models it turns away runs an ample budget would have answered.
    """

    llms: dict[str, Any]
    strategy: Any = None
    fallback: bool = True
    include_history: bool = False
    cost_handler: Any = Field(default=None, exclude=True)
    hold_follow_ups: bool = False

    model_config = ConfigDict(arbitrary_types_allowed=True)

    __slots__ = ("_engine", "_lock", "_names", "_tool_tiers")  # set by _build

    # A strategy may hold a trained model: a copy routes with the same one.
    _SHARED_ON_COPY = frozenset({"strategy", "cost_handler"})
    _OBJECT_FIELDS = ("llms",)

    @model_validator(mode="before")
    @classmethod
    def _check_llms(cls, data: Any) -> Any:
        refuse_unknown_arguments(
            data,
            cls.model_fields,
            "RouterLLM",
            hint=STRATEGY_HINT,
            allowed=TIER_CONNECTION_SETTINGS,
        )
        handler = data.get("cost_handler") if isinstance(data, dict) else None
        if handler is not None and not isinstance(handler, BudgetGate):
            raise TypeError(
                "cost_handler must be a CostEventHandler (a BudgetGate), got "
                f"{type(handler).__name__}"
            )
        return with_checked_tiers(data, "llms", LLM, "LlamaIndex LLM (llama_index.core.llms.LLM)")

    @model_validator(mode="after")
    def _build(self) -> RouterLLM:
        handler = self.cost_handler
        if isinstance(handler, CostEventHandler) and not handler.registered:
            warnings.warn(
                "RouterLLM(cost_handler=...) is given a CostEventHandler that no dispatcher "
                "has: it checks each call's budget but never sees the answers, so it counts "
                "no spend and holds every reservation until it expires; call "
                "handler.register() (once) as well",
                UserWarning,
                stacklevel=2,
            )
        self._lock = threading.Lock()
        self._tool_tiers: OrderedDict[str, str] = OrderedDict()
        self._names = {tier: llm_model_name(llm) for tier, llm in self.llms.items()}
        self._engine = RoutingEngine(
            self.strategy,
            self._names,
            fallback=self.fallback,
            read_answer=_answer_facts,
            argument="llms",
        )
        return self

    def _wrapped_llms(self) -> list[LLM]:
        return list(self.llms.values())

    def _copied_from(self, original: RouterLLM) -> None:
        self._lock = threading.Lock()
        with original._lock:
            self._tool_tiers = OrderedDict(original._tool_tiers)
        self._names = dict(original._names)

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
        return "router:" + "|".join(self._names.values())

    @property
    def tiers(self) -> tuple[str, ...]:
        """Tier names, cheapest first."""
        return self._engine.tiers

    @property
    def models(self) -> dict[str, str]:
        """Tier -> model name."""
        return dict(self._names)

    def to_payload(self) -> dict[str, Any]:
        return {
            **super().to_payload(),
            "tiers": dict(self._names),
            "strategy": self._engine.signature,
        }

    # -- decisions ---------------------------------------------------------------------

    def route(self, prompt: str | Sequence[ChatMessage]) -> RouteDecision:
        """The decision the router would take for ``prompt`` (no model is called)."""
        if isinstance(prompt, str):
            return self._engine.decide(question_of(prompt))
        messages = list(prompt)
        question = chat_question(messages, include_history=self.include_history)
        return self._engine.choose(question, pinned=self._pinned_tier(messages))

    def _pinned_tier(self, messages: list[ChatMessage], history: bool | None = None) -> str | None:
        # Tool-call ids and formats are provider specific: the model that called a tool
        # sees the conversation through. ``history``: has_tool_history, when known.
        if not (has_tool_history(messages) if history is None else history):
            return None
        with self._lock:
            for message in reversed(messages):
                for call_id in tool_call_ids(message):
                    tier = self._tool_tiers.get(call_id)
                    if tier is not None:
                        return tier
        return None

    def _remember_tool_calls(self, tier: str, response: ChatResponse) -> list[str]:
        """The ids of the tool calls ``response`` makes, kept with ``tier``."""
        llm = self.llms[tier]
        if not isinstance(llm, FunctionCallingLLM):
            return []
        try:
            calls = llm.get_tool_calls_from_response(response, error_on_no_tool_call=False)
        except Exception:  # a model that cannot parse its own answer made no tool call
            calls = []
        ids = [c.tool_id for c in calls or () if getattr(c, "tool_id", None)]
        ids += tool_call_ids(response.message)
        if not ids:
            return ids
        with self._lock:
            for call_id in ids:
                self._tool_tiers[call_id] = tier
                self._tool_tiers.move_to_end(call_id)
            while len(self._tool_tiers) > _MAX_TOOL_IDS:
                self._tool_tiers.popitem(last=False)
        return ids

    def _answered(self, call: RoutedCall, tier: str, response: Any) -> None:
        # An answer that asks for tools: its tier sees the conversation through, and the
        # room held for the call that reads the results waits for their ids.
        ids = (
            self._remember_tool_calls(tier, response) if isinstance(response, ChatResponse) else []
        )
        if call.handlers:
            move_follow_up(call.handlers, _hold_key(call), ids)

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

    # -- one routed call: LlamaIndex requests in, the engine's routed call out ---------

    def _call_for(self, request: Request) -> RoutedCall:
        """Reserve budgets (``BudgetExceededError`` before any model is called) and pick
        the tier; a budget in "downgrade" mode sends the call to the cheapest tier."""
        pinned = None
        history = False
        if isinstance(request, CompleteRequest):
            question = question_of(request.prompt)
        else:
            if isinstance(request, ToolsRequest):
                for llm in self.llms.values():
                    self._tool_llm(llm)
            question = chat_question(request.messages, include_history=self.include_history)
            history = has_tool_history(request.messages)
            pinned = self._pinned_tier(request.messages, history)
        gates = budget_gates(dispatcher, self.cost_handler)
        if gates and history:
            # A tool call's follow-up (whichever router made the call): its room is its own.
            ids = [i for message in request.messages for i in tool_call_ids(message)]
            release_follow_up(gates, ids)
        call = self._engine.begin(
            question,
            handlers=gates,
            reserve=True,
            quotes=self._quotes(request),
            run_id=active_span_id.get(),  # the router's span: where the gates keep the call
            pinned=pinned,
        )
        if (
            self.hold_follow_ups
            and gates
            and isinstance(request, ToolsRequest)
            and not _no_follow_up(request)
        ):
            self._hold_follow_up(call, request, gates)
        return call

    def _hold_follow_up(
        self, call: RoutedCall, request: ToolsRequest, gates: list[BudgetGate]
    ) -> None:
        # An agent's step: room for the call after its tools (see costopt_core.follow_ups),
        # its prompt this one's plus the answer (at most the output cap).
        tier = call.next_tier() or call.decision.tier
        [quote] = request_quotes(request, [(self._names[tier], self.llms[tier])])
        answer = quote.max_output_tokens or DEFAULT_MAX_OUTPUT_TOKENS
        quote = quote._replace(prompt_tokens=quote.prompt_tokens + answer)
        hold_follow_up(gates, [_hold_key(call)], quote)

    def _quotes(self, request: Request) -> list[CallQuote]:
        """The most ``request`` can cost on each tier, cheapest first."""
        return request_quotes(request, ((self._names[t], llm) for t, llm in self.llms.items()))

    def _send(self, tier: str, request: Request, mode: Mode) -> Any:
        llm = self.llms[tier]
        if isinstance(request, ToolsRequest):
            llm = self._tool_llm(llm)
        return send(request, llm, mode)

    @contextlib.contextmanager
    def _failure_event(self, call: RoutedCall) -> Iterator[None]:
        """Every tier failed: the decision is dispatched with the error, then raised."""
        try:
            yield
        except BudgetExceededError:
            release_follow_up(call.handlers, [_hold_key(call)])
            raise
        except Exception as exc:
            release_follow_up(call.handlers, [_hold_key(call)])
            self._emit(call.record(call.decision.tier), error=exc)
            raise
        except BaseException:  # cancelled (asyncio.CancelledError, KeyboardInterrupt...)
            release_follow_up(call.handlers, [_hold_key(call)])
            raise

    def _finish(
        self,
        call: RoutedCall,
        response: Any,
        tier: str,
        info: dict[str, Any],
        *,
        whole: bool = True,
    ) -> Any:
        # ``whole=False``: a stream's first chunk (its relay tells the end, see done).
        _annotate(response, info)
        self._emit(info)
        if whole:
            self._answered(call, tier, response)
        return response

    def _answer(self, request: Request) -> Any:
        call = self._call_for(request)
        with self._failure_event(call):
            answered = call.run(lambda tier: self._send(tier, request, Mode.SYNC))
        return self._finish(call, *answered)

    async def _aanswer(self, request: Request) -> Any:
        call = self._call_for(request)
        with self._failure_event(call):
            answered = await call.arun(lambda tier: self._send(tier, request, Mode.ASYNC))
        return self._finish(call, *answered)

    def _stream(self, request: Request) -> Iterator[Any]:
        if self._engine.judges_answers:
            # A cascade judges the whole answer before the user sees any of it.
            return replay(self._answer(request))
        call = self._call_for(request)
        with self._failure_event(call):
            # The stream starts now, inside the router's span: a tier that fails before
            # its first chunk falls back; later chunks flow through untouched.
            answered = call.run(lambda tier: _open_stream(self._send(tier, request, Mode.STREAM)))
        (first, rest), tier, info = answered
        if first is None:  # an empty answer is still an answer
            self._emit(info)
            self._answered(call, tier, None)
            return iter(())
        first = self._finish(call, first, tier, info, whole=False)
        relay = _ChunkRelay(self, tier, first, info, call)
        return _relay(relay, rest)

    async def _astream(self, request: Request) -> AsyncIterator[Any]:
        if self._engine.judges_answers:
            return areplay(await self._aanswer(request))
        call = self._call_for(request)
        with self._failure_event(call):
            answered = await call.arun(
                lambda tier: _aopen_stream(self._send(tier, request, Mode.ASTREAM))
            )
        (first, rest), tier, info = answered
        if first is None:
            self._emit(info)
            self._answered(call, tier, None)
            return _aempty()
        first = self._finish(call, first, tier, info, whole=False)
        relay = _ChunkRelay(self, tier, first, info, call)
        return _arelay(relay, rest)

    # -- tools -------------------------------------------------------------------------

    def _tool_llm(self, llm: LLM) -> FunctionCallingLLM:
        if not isinstance(llm, FunctionCallingLLM) or not llm.metadata.is_function_calling_model:
            raise TypeError(
                f"{type(llm).__name__} ({llm_model_name(llm)}) does not support tool calling; "
                "every tier of a RouterLLM used with tools must be a function-calling LLM"
            )
        return llm

    def get_tool_calls_from_response(
        self,
        response: ChatResponse,
        error_on_no_tool_call: bool = True,
        **kwargs: Any,
    ) -> list[ToolSelection]:
        """Parsed by the model that answered (named in ``additional_kwargs["routing"]``)."""
        routing = (response.additional_kwargs or {}).get(ROUTING_KEY) or {}
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


def _no_follow_up(request: ToolsRequest) -> bool:
    # LlamaIndex's structured output (FunctionCallingProgram: structured_predict,
    # as_structured_llm, selectors) forces its one tool and never sends the result back.
    return request.tool_required and len(request.tools) == 1


def _hold_key(call: RoutedCall) -> str:
    # The key of the room a routed call holds for its follow-up, until it answers.
    return f"routed-call:{call.run_id}:{id(call)}"


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


def _answer_facts(response: Any) -> AnswerFacts:
    """What a cascade judges in an answer; its usage prices a rejected attempt."""
    return AnswerFacts(answer_text(response), _usage(response))


class _ChunkRelay:
    """The chunks after the first: each carries the routing record; the last one's tool
    calls are remembered, so the conversation stays on the model that made them."""

    def __init__(
        self, router: RouterLLM, tier: str, first: Any, info: dict[str, Any], call: RoutedCall
    ) -> None:
        self.router, self.tier, self.first, self.info = router, tier, first, info
        self.call = call
        self.last = first

    def abandoned(self) -> None:
        """The consumer stopped before the end: no end event will settle the call's
        budget reservation, so it is given back (else it would hold budget until the
        process ends). What the stopped stream spent is not recorded."""
        release_budget(self.call.reservations)
        release_follow_up(self.call.handlers, [_hold_key(self.call)])

    def pass_on(self, chunk: Any) -> Any:
        _annotate(chunk, self.info)
        self.last = chunk
        return chunk

    def done(self) -> None:
        self.router._answered(self.call, self.tier, self.last)


def _open_stream(stream: Any) -> tuple[Any, Iterator[Any]]:
    iterator = iter(stream)
    return next(iterator, None), iterator


async def _aopen_stream(stream: Any) -> tuple[Any, AsyncIterator[Any]]:
    iterator = await stream
    return await anext(iterator, None), iterator


def _relay(relay: _ChunkRelay, rest: Iterator[Any]) -> Iterator[Any]:
    complete = False
    try:
        yield relay.first
        for chunk in rest:
            yield relay.pass_on(chunk)
        complete = True
        relay.done()
    finally:
        if not complete:
            close = getattr(rest, "close", None)
            if close is not None:
                close()
            relay.abandoned()


async def _arelay(relay: _ChunkRelay, rest: AsyncIterator[Any]) -> AsyncIterator[Any]:
    complete = False
    try:
        yield relay.first
        async for chunk in rest:
            yield relay.pass_on(chunk)
        complete = True
        relay.done()
    finally:
        if not complete:
            aclose = getattr(rest, "aclose", None)
            if aclose is not None:
                await aclose()
            relay.abandoned()


def _annotate(response: Any, info: dict[str, Any]) -> None:
    extra = response.additional_kwargs
    if extra is None:
        response.additional_kwargs = extra = {}
    extra[ROUTING_KEY] = dict(info)


async def _aempty() -> AsyncIterator[Any]:
    return
    yield  # pragma: no cover - makes this an async generator


__all__ = ["RouterLLM", "RoutingDecisionEvent"]
