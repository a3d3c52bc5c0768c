"""CostEventHandler: what each LlamaIndex LLM call cost and saved, from instrumentation.

Example:
    .. code-block:: python

        from llamaindex_costopt import CostEventHandler

        handler = CostEventHandler(budget_usd=5.0, on_budget="downgrade").register()
        index.as_query_engine().query("What does the contract say about renewals?")
        print(handler.total_cost, handler.total_saved)
        print(handler.report())
        handler.unregister()

It is a LlamaIndex instrumentation ``BaseEventHandler`` on the root dispatcher, and it
prices with the same engine as the LangChain face (``costopt_core.accounting``): same
arguments, attributes, report, JSON/CSV export and budgets as ``CostCallbackHandler``.

How events are read:

* An LLM call is an ``LLMChatStartEvent``/``LLMChatEndEvent`` (or completion) pair.
  Usage comes from the end event's response: ``raw["usage"]`` / ``raw.usage`` (OpenAI
  style dict or object: prompt/completion tokens with cached-token and reasoning
  details, or input/output tokens, Anthropic and Gemini shapes), else the
  ``additional_kwargs`` token counts LlamaIndex integrations add. A response without
  usage is costed from its prompt and answer text (``call_text``; the model family's
  tokenizer with the ``[tokenizers]`` extra, else an estimate) and marked estimated.
  Model: the provider's ``raw["model"]``, else the LLM's metadata.
* Only the innermost LLM span is counted: a small span handler registered with this
  handler records span parents, so an LLM call made inside another LLM call (a wrapper
  whose decorated ``chat`` calls a decorated inner ``chat``, or ``MockLLM``'s chat
  delegating to its completion) is priced once, at the innermost call.
* ``llm.as_structured_llm(...)``: a ``StructuredLLM``'s stream starts its inner model
  call only when it is read, after its own span closed. The first LLM call or cache hit
  starting, before the stream's first chunk, in the context the stream was started in
  (``contextvars``: the same thread or asyncio task, or one that copied its context, as
  a task created from it does) is taken as its inner call: that call is priced, the
  ``StructuredLLM``'s own events are not. Read from a context that did not copy it (a
  thread pool without ``contextvars.copy_context``), both are priced.
* Routing: ``RouterLLM`` dispatches a ``RoutingDecisionEvent`` in its span; a call
  inside that span is recorded with the tier and a baseline (the most expensive tier
  model unless ``baseline_model`` is named). Calls a cascade rejected are recorded as
  cascade attempts (spend, negative savings).
* Cache hits: ``SemanticCacheLLM`` dispatches a ``CacheHitEvent``; it is recorded as
  saved dollars at the price of the model that answered originally, never as spend. The
  LLM call the hit answered (a ``StructuredLLM`` around the cache: the nearest open LLM
  call around the hit, or the ``StructuredLLM`` stream it answers) is not priced either.
* Compression: the tokens a ``NodeCompressor`` removed (``PromptCompressedEvent``) are
  booked on the next priced call of the same query (root span). A streaming query
  engine starts its LLM call when the response is read, after the query closed: the
  first root span opened next in the same context (thread or asyncio task) takes them
  if it is an LLM's ``stream`` / ``astream``; any other drops them.

Budgets and LlamaIndex: the dispatcher swallows exceptions raised by event handlers,
so this handler cannot stop a call. ``RouterLLM`` and ``SemanticCacheLLM`` ask it before
calling a model (``reserve_call``): ``on_budget="raise"`` raises
``BudgetExceededError`` from there, before any spending; ``"downgrade"`` makes the
router answer with its cheapest tier; ``"warn"`` warns and lets the call go. A plain
LLM outside those wrappers is still checked at its start event, but there a "raise"
can only be logged. A router's fallback or escalation reserves the next tier's maximum
before asking it; a tier that failed gives its reservation back first (it billed
nothing), so a fallback holds one tier's reservation, not two.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any, Protocol

from llama_index.core.base.llms.base import BaseLLM
from llama_index.core.base.llms.types import ToolCallBlock
from llama_index.core.instrumentation import get_dispatcher, root_manager
from llama_index.core.instrumentation.event_handlers import BaseEventHandler
from llama_index.core.instrumentation.events import BaseEvent
from llama_index.core.instrumentation.events.llm import (
    LLMChatEndEvent,
    LLMChatInProgressEvent,
    LLMChatStartEvent,
    LLMCompletionEndEvent,
    LLMCompletionInProgressEvent,
    LLMCompletionStartEvent,
)
from llama_index.core.instrumentation.span import active_span_id
from llama_index.core.instrumentation.span.simple import SimpleSpan
from llama_index.core.instrumentation.span_handlers import BaseSpanHandler
from llama_index.core.llms import ChatMessage

from costopt_core.accounting import (
    CallText,
    CostHandlerBase,
    UsageCounts,
    usage_counts,
    usage_from_mapping,
)
from costopt_core.budget_gate import CallQuote
from costopt_core.compression_marks import CompressionMarks
from costopt_core.engine import ROUTING_KEY
from costopt_core.ledger import BudgetExceededError, TokenUsage
from costopt_core.metadata_keys import BATCH_KEY, USAGE_ESTIMATED, USAGE_TAG
from llamaindex_costopt.messages import message_text
from llamaindex_costopt.model_slots import SlotsCopied
from llamaindex_costopt.requests import ChatRequest, CompleteRequest
from llamaindex_costopt.responses import whole_answer
from llamaindex_costopt.wrapper import output_limit, prompt_tokens

logger = logging.getLogger(__name__)

UNKNOWN_MODEL = "unknown-model"
_MEMORY = 4096  # bounded maps: abandoned streams must not leak state
_USAGE_KEYS = ("usage", "usage_metadata", "token_usage")


# -- reading LlamaIndex responses ---------------------------------------------------------


def _as_mapping(value: Any) -> Mapping[str, Any] | None:
    """A usage-like value as a mapping: dicts as they are, objects via ``model_dump`` /
    ``to_dict`` / their attributes."""
    if value is None:
        return None
    if type(value) is dict or isinstance(value, Mapping):
        return value
    for method in ("model_dump", "to_dict", "dict"):
        dump = getattr(value, method, None)
        if callable(dump):
            try:
                data = dump()
            except Exception:
                continue
            if isinstance(data, Mapping):
                return data
    try:
        data = vars(value)
    except TypeError:
        return None
    return {k: v for k, v in data.items() if not k.startswith("_")}


def _field(container: Any, key: str) -> Any:
    if type(container) is dict or isinstance(container, Mapping):
        return container.get(key)
    return getattr(container, key, None)


def usage_of_response(response: Any) -> TokenUsage | None:
    """Token usage of a LlamaIndex ``ChatResponse`` / ``CompletionResponse``.

    Example:
        >>> from llama_index.core.llms import ChatMessage, ChatResponse
        >>> r = ChatResponse(message=ChatMessage(role="assistant", content="hi"),
        ...                  raw={"usage": {"prompt_tokens": 12, "completion_tokens": 3}})
        >>> usage_of_response(r).input_tokens, usage_of_response(r).output_tokens
        (12, 3)
    """
    counts = usage_counts_of_response(response)
    return None if counts is None else TokenUsage(*counts)


def usage_counts_of_response(response: Any) -> UsageCounts | None:
    """:func:`usage_of_response` as ``costopt_core.accounting.usage_counts`` gives it: a
    plain tuple, for the call path, which needs no object."""
    if response is None:
        return None
    raw = getattr(response, "raw", None)
    if raw is not None:
        for key in _USAGE_KEYS:
            counts = usage_counts(_as_mapping(_field(raw, key)))
            if counts is not None:
                return counts
        counts = usage_counts(_as_mapping(raw)) if isinstance(raw, Mapping) else None
        if counts is not None:
            return counts
    extra = getattr(response, "additional_kwargs", None) or {}
    for key in _USAGE_KEYS:
        counts = usage_counts(_as_mapping(extra.get(key)))
        if counts is not None:
            return counts
    return usage_counts({k: v for k, v in extra.items() if k != ROUTING_KEY})


def model_of_response(response: Any) -> str | None:
    """The model name the provider reported in the raw response, if any."""
    raw = getattr(response, "raw", None)
    for key in ("model", "model_name", "modelId", "model_version"):
        value = _field(raw, key) if raw is not None else None
        if isinstance(value, str) and value:
            return value
    return None


def _response_text(response: Any) -> str:
    """An answer's text and the tool calls it makes (billed as output like its text)."""
    message = getattr(response, "message", None)
    if message is None:
        return str(getattr(response, "text", "") or "")
    text = str(getattr(message, "content", "") or "")
    calls: list[Any] = [
        {"name": b.tool_name, "arguments": b.tool_kwargs}
        for b in getattr(message, "blocks", None) or ()
        if isinstance(b, ToolCallBlock)
    ]
    raw = (getattr(message, "additional_kwargs", None) or {}).get("tool_calls")
    if not calls and raw:
        calls = list(raw)
    return f"{text}{json.dumps(calls, default=str)}" if calls else text


def exchange_text(prompt: str | Sequence[Any], response: Any) -> CallText:
    """What a call said: its prompt (chat messages, or a completion's prompt string) and
    its answer, to cost it without usage. The cost handler reads a call this way and the
    cache prices a later hit of its answer the same way, so the two figures agree.

    Example:
        >>> from llama_index.core.llms import ChatMessage, CompletionResponse
        >>> exchange_text("What is 2 + 2?", CompletionResponse(text="4"))
        CallText(prompt=['What is 2 + 2?'], answer='4', chat=False)
    """
    if isinstance(prompt, str):
        return CallText([prompt], _response_text(response), False)
    texts = [message_text(m) if isinstance(m, ChatMessage) else str(m) for m in prompt]
    return CallText(texts, _response_text(response), True)


def call_text(start: Any, response: Any, max_output_tokens: int | None = None) -> CallText:
    """A call's prompt (from its start event) and answer, to cost it without usage (its
    answer counted at most ``max_output_tokens``: a provider never bills past the cap).

    Example:
        >>> from llama_index.core.llms import ChatMessage, ChatResponse
        >>> from llama_index.core.instrumentation.events.llm import LLMChatStartEvent
        >>> start = LLMChatStartEvent(messages=[ChatMessage(role="user", content="Hi")],
        ...                           additional_kwargs={}, model_dict={})
        >>> answer = ChatResponse(message=ChatMessage(role="assistant", content="Hello!"))
        >>> call_text(start, answer)
        CallText(prompt=['Hi'], answer='Hello!', chat=True)
    """
    messages = getattr(start, "messages", None)
    if messages is None:
        said = exchange_text(str(getattr(start, "prompt", "") or ""), response)
    else:
        said = exchange_text(messages, response)
        # The tools a call binds are billed as part of its prompt (their JSON schemas).
        tools = (getattr(start, "additional_kwargs", None) or {}).get("tools")
        if tools:
            said = CallText([*said.prompt, json.dumps(tools, default=str)], said.answer, True)
    return replace(said, max_output_tokens=max_output_tokens) if max_output_tokens else said


def start_output_limit(start: Any, llm: Any) -> int | None:
    """The output cap of the call a start event opens on ``llm`` (``None``: unknown): the
    call's own keyword arguments', else the LLM's, as ``wrapper.output_limit`` reads them
    (the event's ``model_dict`` is the LLM's metadata, not its settings).

    Example:
        >>> from llama_index.core.instrumentation.events.llm import LLMCompletionStartEvent
        >>> from llama_index.core.llms import MockLLM
        >>> start = LLMCompletionStartEvent(prompt="Hi", additional_kwargs={}, model_dict={})
        >>> start_output_limit(start, MockLLM(max_tokens=64)), start_output_limit(start, None)
        (64, None)
    """
    call_kwargs = getattr(start, "additional_kwargs", None)
    return output_limit(llm if llm is not None else _NO_SETTINGS, call_kwargs)


_NO_SETTINGS: Mapping[str, Any] = MappingProxyType({})


def start_quote(start: Any, model: str | None, llm: Any) -> CallQuote:
    """The most the call a start event opens on ``llm`` can cost on ``model``: what a
    budget reserves for a call made outside the wrappers (its prompt as
    ``wrapper.prompt_tokens`` counts it, its output cap).

    Example:
        >>> from llama_index.core.instrumentation.events.llm import LLMCompletionStartEvent
        >>> from llama_index.core.llms import MockLLM
        >>> start = LLMCompletionStartEvent(prompt="Hello there", additional_kwargs={},
        ...                                 model_dict={})
        >>> start_quote(start, "m", MockLLM(max_tokens=64))
        CallQuote(model='m', prompt_tokens=4, max_output_tokens=64)
    """
    call_kwargs = dict(getattr(start, "additional_kwargs", None) or {})
    messages = getattr(start, "messages", None)
    request: ChatRequest | CompleteRequest = (
        CompleteRequest(str(getattr(start, "prompt", "") or ""), False, call_kwargs)
        if messages is None
        else ChatRequest(list(messages), call_kwargs)
    )
    return CallQuote(model, prompt_tokens(request), start_output_limit(start, llm))


def usage_as_mapping(usage: TokenUsage) -> dict[str, Any]:
    """``usage`` in LangChain's ``usage_metadata`` shape: what
    :func:`costopt_core.accounting.usage_from_mapping` reads back whole (cache and
    reasoning tokens included).

    Example:
        >>> usage = TokenUsage(100, 20, cache_read_tokens=60, reasoning_tokens=5)
        >>> usage_from_mapping(usage_as_mapping(usage)) == usage
        True
    """
    return {
        "input_tokens": usage.input_tokens,
        "output_tokens": usage.output_tokens,
        "total_tokens": usage.total_tokens,
        "input_token_details": {
            "cache_read": usage.cache_read_tokens,
            "cache_creation": usage.cache_write_tokens,
        },
        "output_token_details": {"reasoning": usage.reasoning_tokens},
    }


# -- span tree ----------------------------------------------------------------------------


class RootSpanWatcher(Protocol):
    """Told when a root span (one opened outside any other) opens and closes."""

    def root_entered(self, span_id: str, instance: Any) -> None: ...

    def root_left(self, span_id: str, *, dropped: bool) -> None: ...


class SpanTree(SlotsCopied, BaseSpanHandler[SimpleSpan]):
    """Remembers the parent of every open span, so the cost handler can tell an LLM
    call nested in another LLM call (or in a router or cache wrapper) from a new one.

    It sees every span of the process, so it keeps a plain ``id -> parent id`` dict
    (single dict operations, atomic under the GIL) instead of span objects, and the LLM
    of each open LLM span (its settings, e.g. ``max_tokens``, are not in the events). A
    ``watcher`` hears of root spans opening and closing.

    Example:
        >>> from llama_index.core.llms import MockLLM
        >>> tree, llm = SpanTree(), MockLLM()
        >>> tree.span_enter("query-1")
        >>> tree.span_enter("llm-1", parent_id="query-1", instance=llm)
        >>> tree.ancestors("llm-1"), tree.llm_of("llm-1") is llm
        (['query-1'], True)
    """

    # Slots, not pydantic private attributes (see model_slots): the tree is told of
    # every span of the process.
    __slots__ = ("_llms", "_parents", "_watcher")

    def __init__(self, watcher: RootSpanWatcher | None = None) -> None:
        super().__init__(open_spans={}, completed_spans=[], dropped_spans=[], current_span_ids={})
        self._parents: dict[str, str | None] = {}
        self._llms: dict[str, BaseLLM] = {}
        self._watcher = watcher

    @classmethod
    def class_name(cls) -> str:
        return "CostoptSpanTree"

    # LlamaIndex calls these hooks with keyword arguments only; the tree needs the ids.
    def span_enter(
        self, id_: str, *, parent_id: str | None = None, instance: Any = None, **kwargs: Any
    ) -> None:
        self._parents[id_] = parent_id
        if isinstance(instance, BaseLLM):
            self._llms[id_] = instance
        if parent_id is None and self._watcher is not None:
            self._watcher.root_entered(id_, instance)

    def span_exit(self, id_: str, **kwargs: Any) -> None:
        self._left(id_, dropped=False)

    def span_drop(self, id_: str, **kwargs: Any) -> None:
        self._left(id_, dropped=True)

    def _left(self, id_: str, *, dropped: bool) -> None:
        if self._llms:
            self._llms.pop(id_, None)
        root = id_ in self._parents and self._parents.pop(id_, None) is None
        if root and self._watcher is not None:
            self._watcher.root_left(id_, dropped=dropped)

    # Required by the abstract base; never reached since the hooks above replace the base
    # class's use of them.
    def new_span(self, id_: str, *, parent_span_id: str | None = None, **kwargs: Any) -> SimpleSpan:
        return SimpleSpan(id_=id_, parent_id=parent_span_id)

    def prepare_to_exit_span(self, id_: str, **kwargs: Any) -> SimpleSpan | None:
        return None

    prepare_to_drop_span = prepare_to_exit_span

    def llm_of(self, span_id: str | None) -> BaseLLM | None:
        """The LLM whose open span ``span_id`` is, if it is one."""
        return self._llms.get(span_id) if span_id is not None else None

    def ancestors(self, span_id: str | None) -> list[str]:
        """Open ancestors of ``span_id``, nearest first (the span itself excluded)."""
        parents = self._parents
        chain: list[str] = []
        parent = parents.get(span_id) if span_id else None
        while parent and len(chain) < 256:
            chain.append(parent)
            parent = parents.get(parent)
        return chain


# -- the handler ----------------------------------------------------------------------------


@dataclass(slots=True)
class _Gate:
    """A wrapper call (router / cache miss) that checked the budget before calling."""

    # The wrapper's own, as reserve_call returned it: its release_call names it, even
    # after the tier it covered failed and gave it back (``own_held`` then False).
    reservation: str | None
    routed: bool
    downgraded: bool = False  # admitted only on the router's cheapest tier
    # (tier, reservation) as the router climbed to dearer tiers (see reserve_tier): a
    # tier that failed gives its entry back (release_tier); the rest is released once
    # the call is settled. A climb that reserved nothing is kept too: release_tier tells
    # a climbed tier from the one the wrapper's own reservation covers by it.
    climbed: list[tuple[str, str | None]] = field(default_factory=list)
    own_held: bool = True

    def give_back(self, tier: str) -> str | None:
        """What the call holds for ``tier``, which failed without an answer: taken out
        (the caller cancels it). A climbed tier's entry, else the wrapper's own."""
        for i, (held_tier, reservation) in enumerate(self.climbed):
            if held_tier == tier:
                del self.climbed[i]
                return reservation
        return self._take_own()

    def take_answered(self) -> str | None:
        """The reservation the call's answer settles, taken out: the answering tier's.
        Failed tiers gave theirs back and a climb is asked only once the one before it
        is done, so the tier climbed last is the one that answered (a cascade's
        rejected answer, when the budget refused the climb after it, is also the last
        one held); without a climb, the wrapper's own."""
        if self.climbed:
            return self.climbed.pop()[1]
        return self._take_own()

    def take_all(self) -> list[str]:
        """Every reservation still held, taken out: the call is settled or failed."""
        held: list[str] = []
        if self.climbed:  # only after a climb
            held = [reservation for _, reservation in self.climbed if reservation is not None]
            self.climbed.clear()
        own = self._take_own()
        if own is not None:
            held.append(own)
        return held

    def _take_own(self) -> str | None:
        if not self.own_held:
            return None
        self.own_held = False
        return self.reservation


@dataclass(slots=True)
class _Open:
    """An LLM call between its start and end events."""

    model: str | None
    gate: str | None
    parent_llm: str | None
    # The start event, kept as it came: its prompt is only read (and its tokens only
    # counted) if the answer brings no usage.
    start: Any
    reservation: str | None = None
    query: str | None = None  # root span of the call (its compression marks)
    # An async stream's call: the task it started in, until the sync stream it relays
    # (if any) starts there (see _relayed_by); then that sync stream's span.
    relay: Any = None
    relayed_to: str | None = None
    # A stream's latest chunk (LlamaIndex chunks carry the answer so far): what a stream
    # stopped early had already produced, and was billed for.
    streamed: Any = None
    # A StructuredLLM stream whose inner call has not started yet (see _claim_structured).
    awaits_inner: bool = False
    # The LLM the call runs on, while its span is open (a stream's span closes before
    # its end event): its cap bounds a count from text.
    llm: Any = None


@dataclass(slots=True)
class _Done:
    model: str
    usage: TokenUsage | None
    text: CallText | None  # set when usage is None: the engine costs the call from it
    run_id: str | None
    query: str | None = None  # root span of the call (its compression marks)
    batch: bool = False  # answered through a provider batch API (billed at its rate)


@dataclass(slots=True)
class _Decision:
    tier: str
    models: tuple[str, ...]
    attempts: list[Mapping[str, Any]] = field(default_factory=list)


class CostEventHandler(SlotsCopied, CostHandlerBase, BaseEventHandler):
    """Prices LlamaIndex LLM calls with the engine's catalog; budgets and savings.

    It implements ``costopt_core.budget_gate.BudgetGate`` (and so ``DowngradeSignal``):
    ``RouterLLM`` and ``SemanticCacheLLM`` call ``reserve_call`` before calling a model
    and ``release_call`` when that call fails, and read ``downgrade_requested`` to
    answer with their cheapest tier (see the module docstring). It also implements
    ``TierReservation`` and ``TierRelease``: a router's fallback or escalation reserves
    the next tier on top of what the call holds (``reserve_tier``), after a tier that
    failed gave its reservation back (``release_tier``; it billed nothing).

    Example:
        >>> from llamaindex_costopt import CostEventHandler
        >>> handler = CostEventHandler(budget_usd=1.0)
        >>> handler.total_cost, handler.budget_usd, handler.downgrade_requested
        (0.0, 1.0, False)

    Arguments (``baseline_model``, ``budget_usd``, ``on_budget``, ``ledger``,
    ``daily_budget_usd``, ``monthly_budget_usd``, ``budgets``, ``tags``, ``catalog``,
    ``call_estimate_usd``, ``reservation_ttl_seconds``) and figures (``total_cost``,
    ``total_saved``, ``report()``, ``to_dict()``, ``to_json()``, ``to_csv()``, budgets...)
    are those of
    ``costopt_core.accounting.CostHandlerBase``, the same as LangChain's
    ``CostCallbackHandler``. ``on_budget="raise"`` stops a call only through the
    wrappers above: LlamaIndex swallows what an event handler raises.
    """

    # Slots, not pydantic private attributes (see model_slots): each event reads several.
    __slots__ = (
        "_accountant",
        "_claims",
        "_compression",
        "_covered",
        "_decisions",
        "_dispatcher",
        "_gates",
        "_handoff",
        "_lock",
        "_open",
        "_pending",
        "_spans",
        "_structured",
        "_warned_raise",
    )

    def model_post_init(self, context: Any) -> None:
        super().model_post_init(context)
        self._lock = threading.Lock()
        self._spans = SpanTree(watcher=self)
        self._dispatcher: Any = None
        self._open: OrderedDict[str, _Open] = OrderedDict()
        self._covered: OrderedDict[str, None] = OrderedDict()
        self._gates: OrderedDict[str, _Gate] = OrderedDict()
        self._decisions: OrderedDict[str, _Decision] = OrderedDict()
        self._pending: OrderedDict[str, list[_Done]] = OrderedDict()
        self._warned_raise = False
        # Removed tokens per query (root span): its next priced LLM call takes them.
        self._compression: CompressionMarks[str | None] = CompressionMarks()
        # A query that closed with its marks unclaimed, in this context (see root_left),
        # and the root stream spans that claimed such a query's marks.
        self._handoff: ContextVar[str | None] = ContextVar(
            "costopt_compression_handoff", default=None
        )
        self._claims: OrderedDict[str, str] = OrderedDict()
        # StructuredLLM streams whose inner call has not started yet (see _claim_structured).
        self._structured: OrderedDict[str, None] = OrderedDict()

    @classmethod
    def class_name(cls) -> str:
        return "CostEventHandler"

    # -- registration --------------------------------------------------------------------

    def register(self, dispatcher: Any = None) -> CostEventHandler:
        """Attach to ``dispatcher`` (default: LlamaIndex's root dispatcher), once.

        Registering the same handler again is a no-op, so events are never counted twice.
        """
        target = dispatcher if dispatcher is not None else get_dispatcher()
        with self._lock:
            if self._dispatcher is not None and self._dispatcher is not target:
                raise ValueError(
                    "this CostEventHandler is registered on another dispatcher; "
                    "unregister() it first"
                )
            if not any(h is self for h in target.event_handlers):
                target.add_event_handler(self)
            if not any(h is self._spans for h in target.span_handlers):
                target.add_span_handler(self._spans)
            self._dispatcher = target
        return self

    @property
    def registered(self) -> bool:
        """Whether a dispatcher has the handler (through ``register`` or
        ``add_event_handler``): only then does it see the calls it prices.

        Example:
            >>> handler = CostEventHandler()
            >>> handler.registered, handler.register().registered
            (False, True)
            >>> handler.unregister()
        """
        if self._dispatcher is not None:
            return True
        return any(h is self for d in root_manager.dispatchers.values() for h in d.event_handlers)

    def unregister(self) -> None:
        """Detach from the dispatcher ``register`` attached it to (no-op if not attached)."""
        with self._lock:
            target = self._dispatcher
            self._dispatcher = None
        if target is None:
            return
        target.event_handlers = [h for h in target.event_handlers if h is not self]
        target.span_handlers = [h for h in target.span_handlers if h is not self._spans]

    def __enter__(self) -> CostEventHandler:
        return self.register()

    def __exit__(self, *exc: object) -> None:
        self.unregister()

    def _ensure_span_tree(self) -> None:
        # A handler added with dispatcher.add_event_handler(...) still needs the span
        # tree to tell nested calls apart: attach it to the root dispatcher once.
        if self._dispatcher is not None:
            return
        root = get_dispatcher()
        with self._lock:
            if not any(h is self._spans for h in root.span_handlers):
                root.add_span_handler(self._spans)

    # -- the wrappers' budget gate -------------------------------------------------------

    def reserve_call(self, *, routed: bool = False, quotes: Sequence[CallQuote] = ()) -> str | None:
        """Called by RouterLLM / SemanticCacheLLM in their span before calling a model.

        Reserves the most the call can cost (``quotes``: its possible models, cheapest
        first); raises ``BudgetExceededError`` when that cannot fit (see
        ``CostAccountant.admit``) before any spending; returns the reservation, which the
        priced call inside this span settles. A routed call admitted only on its cheapest
        tier is reported by :meth:`downgraded_run` for this span.
        """
        self._ensure_span_tree()
        span = active_span_id.get()
        chain = self._spans.ancestors(span)
        with self._lock:
            outer = next((s for s in chain if s in self._gates), None)
            if outer is not None and span is not None:
                # A wrapper around a wrapper: the outer one already passed the budget, and
                # one gate holds the reservation. It sits in the router's span when there
                # is a router, since the routing decision is dispatched there and the
                # call must wait for it to be recorded with its tier: a cache inside a
                # router leaves the router's gate where it is; a router inside a cache
                # takes the cache's reservation into its own span.
                if self._gates[outer].routed and not routed:
                    return None
                held = self._gates.pop(outer)
                self._gates[span] = _Gate(
                    held.reservation, routed, climbed=held.climbed, own_held=held.own_held
                )
                return None
        reservation, downgraded = self._accountant.admit(quotes, routed=routed)  # may raise
        if span is not None:
            with self._lock:
                self._gates[span] = _Gate(reservation, routed, downgraded)
                _trim(self._gates)
        return reservation

    def downgraded_run(self, run_id: object) -> bool:
        """True when the wrapper call in span ``run_id`` was admitted only on its
        router's cheapest tier."""
        gate = self._gates.get(run_id)  # type: ignore[call-overload]
        return gate is not None and gate.downgraded

    def release_call(self, reservation: str | None) -> None:
        """The wrapper's call failed or was cancelled before spending (a cache miss's
        model failed; a router's tiers all failed, or its climb was refused): drop its
        reservation and what its router's climbs reserved."""
        if reservation is None:
            return
        with self._lock:
            spans = [s for s, gate in self._gates.items() if gate.reservation == reservation]
            held = [r for span in spans for r in self._gates.pop(span).take_all()]
        # No gate (its span unknown, or settled already): the reservation is all there is.
        for held_reservation in held if spans else (reservation,):
            self._accountant.cancel(held_reservation)

    def reserve_tier(self, run_id: object, tier: str, quote: CallQuote | None) -> None:
        """A router in span ``run_id`` climbs to ``tier`` (a fallback or an escalation):
        reserve what ``quote`` can cost on top of what its gate holds (a rejected answer
        was paid for; a failed tier was given back, see :meth:`release_tier`);
        ``BudgetExceededError`` when it does not fit. Released once the call is settled
        (``costopt_core.budget_gate.TierReservation``)."""
        with self._lock:
            gate = self._gates.get(run_id)  # type: ignore[call-overload]
        if gate is None:
            return
        reservation = None if quote is None else self._accountant.admit([quote])[0]  # may raise
        with self._lock:
            gate.climbed.append((tier, reservation))

    def release_tier(self, run_id: object, tier: str) -> None:
        """``tier`` failed in the router's span ``run_id`` without an answer (it billed
        nothing): what the call holds for it is cancelled before the next tier reserves,
        else a call near the budget's end, or many at once, are refused with room left
        (``costopt_core.budget_gate.TierRelease``). The gate stays, so the wrapper's
        ``release_call`` or the answer still settles the rest, once."""
        with self._lock:
            gate = self._gates.get(run_id)  # type: ignore[call-overload]
            reservation = gate.give_back(tier) if gate is not None else None
        self._accountant.cancel(reservation)

    def _release_gate(self, gate: _Gate | None) -> None:
        # The call's gate is settled (its spend recorded by now) or failed: whatever it
        # still holds is released. Usually nothing: then the accountant (a pydantic
        # private attribute, ~1 us a read) is not even looked up.
        if gate is not None:
            for reservation in gate.take_all():
                self._accountant.cancel(reservation)

    # -- events ----------------------------------------------------------------------------

    def handle(self, event: BaseEvent, **kwargs: Any) -> Any:
        try:
            if isinstance(event, LLMChatStartEvent | LLMCompletionStartEvent):
                self._on_start(event)
            elif isinstance(event, LLMChatEndEvent | LLMCompletionEndEvent):
                self._on_end(event)
            elif isinstance(event, LLMChatInProgressEvent | LLMCompletionInProgressEvent):
                call = self._open.get(event.span_id)  # one dict read per chunk, atomic
                if call is not None:
                    call.streamed = event.response
            else:
                name = event.class_name()
                if name == "RoutingDecisionEvent":
                    self._on_decision(event)
                elif name == "CacheHitEvent":
                    self._on_cache_hit(event)
                elif name == "PromptCompressedEvent":
                    self._on_compressed(event)
                elif name in ("SpanDropEvent", "ExceptionEvent"):
                    self._on_failure(event)
        except Exception:  # a handler fault must never surface in the user's call
            logger.exception("CostEventHandler failed on %s", type(event).__name__)

    def _on_start(self, event: Any) -> None:
        self._ensure_span_tree()
        span = event.span_id
        described = event.model_dict or {}
        model = described.get("model_name")
        if not isinstance(model, str) or model in ("", "unknown"):
            # As llm_model_name names it (the cache names its hits that way too).
            model = described.get("class_name")
        chain = self._spans.ancestors(span)
        method = _stream_method(span)
        task = _current_task() if method is not None else None
        query = self._query_of(span, chain)
        with self._lock:
            parent_llm = next((s for s in chain if s in self._open), None)
            gate = next((s for s in chain if s in self._gates), None)
            relayed = None
            if parent_llm is None and method is not None and task is not None:
                relayed = self._relayed_by(event, method, task)
                if relayed is not None:
                    relayed[1].relayed_to = span
            # A context variable, not the handler's own state: a plain call reads no
            # pydantic private attribute more (each read is a __getattr__ call).
            if parent_llm is None and relayed is None and _AWAITING.get():
                relayed = self._claim_structured(event)
        call = _Open(
            model=model if isinstance(model, str) and model != "unknown" else None,
            gate=gate,
            parent_llm=parent_llm,
            start=event,
            query=query,
            llm=self._spans.llm_of(span),
        )
        if relayed is not None:
            # The inner call is the one priced; it settles where the outer one would.
            outer_span, outer = relayed
            call.parent_llm = outer_span
            call.query = outer.query if outer.query is not None else call.query
            call.gate = call.gate or outer.gate
        if method is not None and method[1] in _RELAYED:
            call.relay = task
        if call.gate is None and call.parent_llm is None and self._accountant.budgets:
            call.reservation = self._plain_call_budget(event, call)
        if span is not None:
            with self._lock:
                self._open[span] = call
                _trim(self._open)
                if method is not None and described.get("class_name") == _STRUCTURED:
                    self._await_inner(span, call)

    def _relayed_by(
        self, event: Any, method: tuple[str, str], task: Any
    ) -> tuple[str, _Open] | None:
        """The open async stream call that this sync stream call relays, if any (lock held).

        LlamaIndex's ``CustomLLM.astream_chat`` / ``astream_complete`` return a generator
        that calls the sync ``stream_chat`` / ``stream_complete`` when it is iterated:
        after the async call's span has closed, so the span tree cannot nest them and
        both would be priced. The inner call is recognised by what only it can be: the
        sync stream method of the same LLM class, started in the same task, with the
        same prompt, while the async call is still open.
        """
        owner, name = method
        for span, call in self._open.items():  # oldest first: streams drained in order
            if call.relay is not task:
                continue
            outer = _stream_method(span)
            if outer is None or outer[0] != owner or _RELAYED.get(outer[1]) != name:
                continue
            if _same_prompt(call.start, event):
                call.relay = None  # one inner call per outer
                return span, call
        return None

    def _await_inner(self, span: str, call: _Open) -> None:
        """Remember a StructuredLLM stream until its inner call starts (lock held).

        Its generator starts the inner model's stream only when it is drained, after
        this span closed: the span tree cannot nest the two, and both would be priced.
        The stream is remembered in this context (``contextvars``: the thread or asyncio
        task that called it, and what copies its context), where it is drained."""
        registry = self._structured
        registry[span] = None
        _trim(registry)
        call.awaits_inner = True
        _AWAITING.set((*_still_awaited(_AWAITING.get()), (registry, span)))

    def _claim_structured(self, event: Any) -> tuple[str, _Open] | None:
        """The StructuredLLM stream an LLM call (start ``event``) or a cache hit
        (``None``) starting in this context answers, if any; it is then covered (lock
        held).

        A stream is claimed once, before its first chunk, by the first call or hit in
        the context it was started in: a fallback tier's call after a failed first one
        finds it covered already. Among several, the one asking the same thing (a
        function-calling model gets the stream's messages as they are), else the oldest.
        Streams that ended, failed or already streamed are forgotten on the way.
        """
        registry, opened = self._structured, self._open
        open_streams: list[tuple[str, _Open]] = []
        for owner, span in _AWAITING.get():
            if owner is not registry or span not in registry:
                continue  # another handler's, or over
            call = opened.get(span)
            if call is not None and call.streamed is None:
                open_streams.append((span, call))
            else:
                del registry[span]
        if not open_streams:
            return None
        same = (
            next((o for o in open_streams if _same_prompt(o[1].start, event)), None)
            if event is not None and len(open_streams) > 1
            else None
        )
        span, call = same or open_streams[0]
        del registry[span]
        call.awaits_inner = False
        _AWAITING.set(_still_awaited(_AWAITING.get()))
        self._covered[span] = None
        _trim(self._covered)
        return span, call

    def _plain_call_budget(self, start: Any, call: _Open) -> str | None:
        """Budget check for an LLM called outside RouterLLM / SemanticCacheLLM: the most
        its call can cost reserved (its prompt and output cap on its model's price), else
        (a model not named or not priced) an estimate from the calls before it."""
        try:
            accountant = self._accountant
            model = call.model
            if model is None or accountant.catalog.get(model) is None:
                # Not the dearest prices' quote the wrappers reserve for an unpriced
                # model: the budget cannot stop this call, so holding what is left of it
                # would only refuse the calls it can stop (the wrappers').
                return accountant.before_call()
            return accountant.admit_call(*start_quote(start, model, call.llm))
        except BudgetExceededError as exc:
            if not self._warned_raise:
                self._warned_raise = True
                logger.error(
                    "%s -- but LlamaIndex ignores exceptions from event handlers, so this "
                    "call goes ahead: wrap the LLM in RouterLLM or SemanticCacheLLM to have "
                    "on_budget='raise' stop calls",
                    exc,
                )
            return None

    def _on_end(self, event: Any) -> None:
        self._ended(event.span_id, event.response)

    def _ended(self, span: str | None, response: Any) -> None:
        with self._lock:
            call = self._open.pop(span, None) if span is not None else None
            covered = span in self._covered
            if covered:
                del self._covered[span]
            if call is not None and call.awaits_inner and span is not None:
                self._structured.pop(span, None)  # it ended before its inner call started
            if call is not None and call.parent_llm is not None:
                # The enclosing LLM call wraps this one: only the innermost is priced.
                self._covered[call.parent_llm] = None
                _trim(self._covered)
        if covered:
            if call is not None:
                self._accountant.cancel(call.reservation)
            return
        counts = usage_counts_of_response(response)
        model = model_of_response(response) or (call.model if call else None) or UNKNOWN_MODEL
        extra = getattr(response, "additional_kwargs", None)
        batch = isinstance(extra, Mapping) and extra.get(BATCH_KEY) is True
        gate_span = call.gate if call is not None else None
        if gate_span is None and counts is not None and not batch and not self._compression:
            # The usual call (no wrapper, its usage reported, no batch price, no
            # compressed prompt): its record is built when the ledger is read.
            self._accountant.record_call_later(
                model,
                counts,
                run_id=span,
                reservation_id=call.reservation if call is not None else None,
            )
            return
        usage = None if counts is None else TokenUsage(*counts)
        text = None
        if usage is None:
            start = call.start if call is not None else None
            llm = call.llm if call is not None else None
            cap = start_output_limit(start, llm) if start else None
            text = call_text(start, response, cap)
        done = _Done(model, usage, text, span, call.query if call is not None else None, batch)
        if gate_span is None:
            self._record_call(done, None, call.reservation if call is not None else None)
            return
        with self._lock:
            gate = self._gates.get(gate_span)
            decision = self._decisions.pop(gate_span, None)
            if gate is not None and not gate.routed:
                del self._gates[gate_span]
            elif gate is not None and decision is None:
                # The router decides after a non-streamed answer returns: wait for it.
                self._pending.setdefault(gate_span, []).append(done)
                _trim(self._pending)
                return
            elif gate is not None:
                del self._gates[gate_span]
        self._record_call(done, decision, gate.take_answered() if gate is not None else None)
        self._release_gate(gate)

    def _on_decision(self, event: Any) -> None:
        span = event.span_id
        routing = event.routing or {}
        decision = _Decision(
            tier=event.tier,
            models=tuple(event.models.values()),
            attempts=list(routing.get("attempts") or ()),
        )
        with self._lock:
            pending = self._pending.pop(span, [])
            gate = self._gates.get(span)
            if pending or event.error or gate is None:
                self._gates.pop(span, None)
            else:
                # A stream: the answer's end event comes later, in this span. (No gate
                # left means the answer was settled already, e.g. by a cache hit.)
                self._decisions[span] = decision
                _trim(self._decisions)
        if event.error:
            for done, attempt in zip(
                pending, decision.attempts + [{}] * len(pending), strict=False
            ):
                self._record_attempt(done, attempt)
            self._release_gate(gate)
            return
        if not pending:
            return
        *rejected, answer = pending
        for done, attempt in zip(rejected, decision.attempts + [{}] * len(rejected), strict=False):
            self._record_attempt(done, attempt)
        self._record_call(answer, decision, gate.take_answered() if gate is not None else None)
        self._release_gate(gate)

    def _on_failure(self, event: Any) -> None:
        span = event.span_id
        call = self._open.get(span) if span is not None else None
        if call is not None and call.streamed is not None:
            # A stream stopped early (closed by its consumer, or broken): what it had
            # streamed was billed. It is priced as the stream's end would have been.
            if call.relayed_to is not None:
                with self._lock:  # the sync stream it relayed stops later, at best
                    self._covered[call.relayed_to] = None
            self._ended(span, whole_answer(call.streamed))
            return
        # A call that raised before answering spent nothing we can see.
        with self._lock:
            call = self._open.pop(span, None) if span is not None else None
            if call is not None and span is not None:
                self._covered.pop(span, None)  # covered by a call that answered it
                if call.awaits_inner:
                    self._structured.pop(span, None)
            gate = None
            if call is not None and call.gate is not None:
                held = self._gates.get(call.gate)
                if held is not None and not held.routed:  # a router settles its own
                    gate = self._gates.pop(call.gate)
        if call is not None:
            self._accountant.cancel(call.reservation)
        self._release_gate(gate)
        if span is not None and span in self._gates:  # a dict read: atomic, no lock
            self._wrapper_dropped(span)

    def _wrapper_dropped(self, span: str) -> None:
        # A wrapper's own span failed or was cancelled without its router telling the
        # outcome (a task cancelled mid-call dispatches no decision, and with no budget
        # there is no reservation to release): its gate goes, after booking any answer
        # already billed that waited for the decision (the last as the call, any before
        # it as rejected attempts, as a decision without error would have).
        with self._lock:
            gate = self._gates.pop(span, None)
            decision = self._decisions.pop(span, None)
            pending = self._pending.pop(span, [])
        if pending:
            *rejected, answer = pending
            for done in rejected:
                self._record_attempt(done, {})
            self._record_call(answer, decision, gate.take_answered() if gate is not None else None)
        self._release_gate(gate)

    def _on_cache_hit(self, event: Any) -> None:
        # A cache inside a router or another wrapper answered: the wrapper's budget
        # reservation is settled by this (free) answer.
        chain = [event.span_id, *self._spans.ancestors(event.span_id)]
        with self._lock:
            gate_span = next((s for s in chain if s in self._gates), None)
            gate = self._gates.pop(gate_span) if gate_span is not None else None
            outer = self._answered_by_hit(chain)
            if gate is None and outer is not None and outer.gate is not None:
                gate = self._gates.pop(outer.gate, None)
        # A cache hit saves the whole call: compression saved nothing more on it.
        self._compression.take(self._query_of(event.span_id, chain[1:]))
        if outer is not None and outer.query is not None:
            self._compression.take(outer.query)
        usage = usage_from_mapping(getattr(event, "usage", None))
        hint = getattr(event, "saved_usd", None)
        self._accountant.record_cache_hit(
            getattr(event, "model", None) or UNKNOWN_MODEL,
            usage,
            saved_hint_usd=hint if isinstance(hint, int | float) else None,
            tier=getattr(event, "tier", None),
            run_id=event.span_id,
            reservation_id=gate.take_answered() if gate is not None else None,
            # Replaying a call costed from its text: the hit's figures are estimates too.
            tags={USAGE_TAG: USAGE_ESTIMATED} if getattr(event, "usage_estimated", False) else None,
        )
        self._release_gate(gate)

    def _answered_by_hit(self, chain: Sequence[str]) -> _Open | None:
        """The LLM call a cache hit answered (lock held), now covered: the nearest open
        one around the hit (a StructuredLLM, any wrapper LLM), else the StructuredLLM
        stream it answers (see _claim_structured). As when an inner model call answers
        it, that call's own events carry no spend."""
        span = next((s for s in chain if s in self._open), None)
        if span is None:
            claimed = self._claim_structured(None) if _AWAITING.get() else None
            return claimed[1] if claimed is not None else None
        self._covered[span] = None
        _trim(self._covered)
        return self._open[span]

    def _on_compressed(self, event: Any) -> None:
        removed = getattr(event, "removed_tokens", 0)
        if type(removed) is not int or removed <= 0:
            return
        self._ensure_span_tree()
        query = CompressionMarks.root_of(self._spans.ancestors(event.span_id))
        self._compression.add(query, removed)

    # -- a streamed answer's compression marks -------------------------------------------

    def _query_of(self, span: str | None, ancestors: Sequence[str]) -> str | None:
        """The query whose compression marks a step in ``span`` reads: its root span's,
        or those its root stream span claimed (see :meth:`root_entered`)."""
        root = ancestors[-1] if ancestors else span
        claimed = self._claims.get(root) if self._claims and root is not None else None
        return claimed if claimed is not None else CompressionMarks.root_of(ancestors)

    def root_left(self, span_id: str, *, dropped: bool) -> None:
        """A root span closed. A streaming query engine starts its LLM call only when
        its response is read, after the query span closed: marks no call of the query
        claimed are handed to the next root span of this context (``contextvars``: the
        same thread, or asyncio task), which takes them if it is an LLM's stream
        (:meth:`root_entered`). A query that failed drops its marks."""
        try:
            if self._claims:
                with self._lock:
                    self._claims.pop(span_id, None)
            if not self._compression:
                return  # the usual case: no compressor ran
            with self._lock:
                if any(call.query == span_id for call in self._open.values()):
                    return  # a call of this query is still running: it takes them
            removed = self._compression.take(span_id)
            if not removed or dropped:
                return
            # Still under the query: a call started in a thread it spawned reads them there.
            self._compression.add(span_id, removed)
            previous = self._handoff.get()
            if previous is not None:
                self._compression.take(previous)  # a stream never read: its marks go
            self._handoff.set(span_id)
        except Exception:  # a handler fault must never surface in the user's call
            logger.exception("CostEventHandler failed closing span %s", span_id)

    def root_entered(self, span_id: str, instance: Any) -> None:
        """A root span opened: an LLM's stream claims the marks handed over in this
        context (:meth:`root_left`); anything else drops them, so that they never go to
        an unrelated later call."""
        query = self._handoff.get()
        if query is None:
            return
        try:
            self._handoff.set(None)
            method = _span_method(span_id)
            if isinstance(instance, BaseLLM) and method is not None and method[1] in _ANSWERS:
                with self._lock:
                    self._claims[span_id] = query
                    _trim(self._claims)
            else:
                self._compression.take(query)
        except Exception:  # a handler fault must never surface in the user's call
            logger.exception("CostEventHandler failed opening span %s", span_id)

    # -- recording -----------------------------------------------------------------------

    def _record_call(
        self, done: _Done, decision: _Decision | None, reservation: str | None
    ) -> None:
        self._accountant.record_call(
            done.model,
            done.usage,
            tier=decision.tier if decision is not None else None,
            router_models=decision.models if decision is not None else None,
            run_id=done.run_id,
            reservation_id=reservation,
            text=done.text,
            compressed_tokens=self._compression.take(done.query),
            batch=done.batch,
        )

    def _record_attempt(self, done: _Done, attempt: Mapping[str, Any]) -> None:
        tier = attempt.get("tier") if isinstance(attempt, Mapping) else None
        self._accountant.record_attempt(
            done.model,
            done.usage,
            tier=tier if isinstance(tier, str) else None,
            run_id=done.run_id,
            text=done.text,
        )


# An async stream method of CustomLLM and the sync stream method its generator calls.
_RELAYED = {"astream_chat": "stream_chat", "astream_complete": "stream_complete"}
_STREAM_METHODS = frozenset(_RELAYED) | frozenset(_RELAYED.values())
# The LLM methods whose call a streaming query engine starts after its query closed
# (when the response is read). Chat engines start their streams inside their span.
_ANSWERS = frozenset({"stream", "astream"})
_UUID_TAIL = 37  # "-" + a UUID's 36 characters
# LlamaIndex's StructuredLLM (``llm.as_structured_llm(...)``) in a start event's model_dict.
_STRUCTURED = "structured_llm"
# The StructuredLLM streams started in this context whose inner call has not started, as
# (the registry of the handler that awaits it, span): every registered handler keeps its
# own registry and claims its own entries.
_AWAITING: ContextVar[tuple[tuple[OrderedDict[str, None], str], ...]] = ContextVar(
    "costopt_structured_streams", default=()
)


def _still_awaited(
    entries: tuple[tuple[OrderedDict[str, None], str], ...],
) -> tuple[tuple[OrderedDict[str, None], str], ...]:
    """``entries`` whose handler still awaits their stream's inner call."""
    return tuple(entry for entry in entries if entry[1] in entry[0])


def _span_method(span_id: str | None) -> tuple[str, str] | None:
    """``(class, method)`` of a LlamaIndex span id (``"MockLLM.stream_chat-<uuid>"``)."""
    if not span_id or len(span_id) <= _UUID_TAIL or span_id[-_UUID_TAIL] != "-":
        return None
    owner, _, method = span_id[:-_UUID_TAIL].rpartition(".")
    return owner, method


def _stream_method(span_id: str | None) -> tuple[str, str] | None:
    """``(class, method)`` of a LlamaIndex span id when the method is a stream method,
    else None."""
    method = _span_method(span_id)
    return method if method is not None and method[1] in _STREAM_METHODS else None


def _current_task() -> Any:
    try:
        return asyncio.current_task()
    except RuntimeError:  # no event loop running in this thread
        return None


def _same_prompt(first: Any, second: Any) -> bool:
    """Two LLM start events asking the same thing (the same messages, or prompt)."""
    messages = getattr(first, "messages", None)
    if messages is not None:
        return messages == getattr(second, "messages", None)
    prompt = getattr(first, "prompt", None)
    return prompt is not None and prompt == getattr(second, "prompt", None)


def _trim(mapping: OrderedDict[str, Any]) -> None:
    while len(mapping) > _MEMORY:
        mapping.popitem(last=False)


__all__ = ["CostEventHandler", "model_of_response", "usage_of_response"]
