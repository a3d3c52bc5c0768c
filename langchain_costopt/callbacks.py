"""CostCallbackHandler and ``cost_tracker``: what each LangChain call cost, what costopt
saved, and budgets enforced before the next call.

Example:
    .. code-block:: python

        from langchain_costopt import CostCallbackHandler, cost_tracker
        from langchain_costopt.simulated import SimulatedChatModel

        model = SimulatedChatModel(model_name="gpt-4o-mini")
        with cost_tracker(budget_usd=1.0) as tracker:
            model.invoke("What is 2 + 2?")          # tracked, no callbacks= needed
        print(tracker.total_cost, tracker.total_saved)
        print(tracker.report())

        handler = CostCallbackHandler(on_budget="downgrade", daily_budget_usd=5.0)
        model.invoke("hi", config={"callbacks": [handler]})

How the events are read (LangChain 1.7 / 1.8):

* Usage: every generation's ``AIMessage.usage_metadata`` (with ``input_token_details``
  cache read / creation and ``output_token_details`` reasoning), else the generation's
  ``generation_info`` usage, else ``llm_output["token_usage"]`` once per run. An answer
  with no usage anywhere (an OpenAI stream without ``stream_usage``, the default for a
  custom base URL) is costed from its prompt and answer text (``call_text``; the model's
  tokenizer with the ``[tokenizers]`` extra, else an estimate) and marked estimated.
* Model: ``response_metadata["model_name"]`` (or ``"model"``), else the run's invocation
  params remembered at start, else its ``ls_model_name`` metadata.
* Streaming: LangChain calls ``on_llm_end`` once with the merged chunks, whose usage is
  the sum of the chunks' usage; only ``on_llm_end`` is counted, so a stream counts once.
* Cache hits: our ``SemanticLLMCache`` marks a hit with ``response_metadata`` (or
  ``generation_info``) ``["costopt_cache"] = {"hit": True, ...}``. Any other LangChain
  chat-model cache hit is recognised by the marker ``BaseChatModel`` itself leaves on
  it: ``_convert_cached_generations`` rewrites a cached ``AIMessage``'s usage to
  ``{**usage, "total_cost": 0}``, a key no provider response carries (checked in
  langchain-core 1.7.0 and 1.8.3). A hit is recorded as saved dollars, never spend.
  Plain-text ``BaseLLM`` cache hits start no run at all in LangChain, so no callback
  handler can see them (the cache's own ``.stats`` counts them).
* Routing: ``response_metadata["routing"]`` (or the ``costopt_routing`` run metadata
  that ``RouterChatModel.batch`` sets) gives the tier; rejected cascade attempts in
  ``routing["attempts"]`` are added as spend. The router's tier models come from its
  invocation params (``models``), for the baseline. A routing middleware's tier call
  under a cascade is a run of its own, judged after it ended: its answer is held
  (``CASCADE_HELD_KEY``) and booked by ``settle_cascade_attempt``, as the routed call
  or as a rejected attempt, the same records as a router's.
* Compression: a prompt compressor's mark (``COMPRESSED_TOKENS_KEY`` in the first or
  last message's ``response_metadata``) and a ``ChunkDocumentCompressor``'s
  ``costopt_documents_compressed`` custom event (booked on the next model call of the
  same root run, found by following chain / retriever / tool runs) are priced at the
  answering model's input price; a prompt carrying both counts the larger, never both.
* One count per run: a run id is counted once; a run whose child LLM run was counted
  (a wrapper delegating through a child run) is not counted again; several choices of
  one prompt (``n > 1``) carrying the same usage are one call.

Budgets are checked in ``on_chat_model_start`` / ``on_llm_start``: the handler sets
``raise_error = True`` so LangChain propagates ``BudgetExceededError`` before the
provider is called; every other failure inside the handler is logged and swallowed.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import threading
import weakref
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from types import MappingProxyType
from typing import Any, NamedTuple
from uuid import UUID

from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, LLMResult
from langchain_core.tracers.context import register_configure_hook

from costopt_core.accounting import (
    CallText,
    CostHandlerBase,
    OnBudget,
    usage_counts,
    usage_from_mapping,
)
from costopt_core.budget_gate import CallQuote, output_limit_in
from costopt_core.compression_marks import CompressionMarks
from costopt_core.engine import ROUTING_KEY
from costopt_core.ledger import BudgetExceededError, CostLedger, LedgerProtocol, TokenUsage
from costopt_core.metadata_keys import (
    BATCH_KEY,
    BATCH_ROUTING_KEY,
    CACHE_MARKER_KEY,
    COMPRESSED_TOKENS_KEY,
    ROUTED_TIER_PARAM,
    model_name_in,
)
from langchain_costopt.compression import DOCUMENTS_COMPRESSED_EVENT
from langchain_costopt.errors import budget_refusal
from langchain_costopt.messages import message_text
from langchain_costopt.run_quotes import call_quote, call_quotes, is_map, router_quotes

logger = logging.getLogger(__name__)

_COUNTED_MEMORY = 4096
_PRICED_MEMORY = 1024
# Open chain / retriever / tool runs remembered for their root; a run that never ends
# (an abandoned stream) is forgotten oldest first beyond this many.
_STEPS_MEMORY = 4096
# LLM runs nest (a router's tier call inside the router's run): how far up to look.
_MAX_LLM_NESTING = 8
UNKNOWN_MODEL = "unknown-model"


#: Routing record key of an answer a cascade may still reject (a routing middleware's
#: tier call, a run of its own): its value keys the answer's booking, held until
#: :func:`settle_cascade_attempt` says whether the cascade kept it.
CASCADE_HELD_KEY = "cascade_held"

_EMPTY: Mapping[str, Any] = MappingProxyType({})
# An answer's metadata keys that send it down the general path (a cache hit, a routed
# or a batch answer): one C-level test on the usual answer.
_UNUSUAL_ANSWER_KEYS = frozenset({CACHE_MARKER_KEY, ROUTING_KEY, BATCH_KEY})


class _Run:
    """What a run's start told us. The start's params and metadata are kept as they
    came and read only if the answer lacks the model or routing (it rarely does)."""

    __slots__ = (
        "climbed",
        "covered",
        "downgraded",
        "messages",
        "metadata",
        "params",
        "parent",
        "reservation",
        "streamed",
        "streamed_metadata",
        "watch",
    )

    def __init__(
        self,
        params: Mapping[str, Any] | None,
        metadata: Mapping[str, Any] | None,
        reservation: str | None,
        parent: Any,
        messages: list[list[Any]] | None = None,
    ) -> None:
        self.params = params
        self.metadata = metadata
        # The prompt as LangChain passed it, only read if the answer brings no usage.
        self.messages = messages
        self.reservation = reservation
        self.parent = parent  # the parent run's key (see CostCallbackHandler._runs)
        self.covered = False  # a child run was counted for this one
        self.downgraded = False  # admitted only on a router's cheapest tier
        # (tier, reservation) as a router's call climbed to dearer tiers (see reserve_tier).
        self.climbed: list[tuple[str, str | None]] | None = None
        # The text streamed so far, and what its chunks said of themselves (the model,
        # a router's routing record), for a stream cut short (see on_llm_new_token).
        self.streamed: list[str] | None = None
        self.streamed_metadata: dict[str, Any] | None = None
        # (asyncio task, its done callback) of an async run holding a reservation.
        self.watch: tuple[asyncio.Task[Any], Callable[..., None]] | None = None

    @property
    def model(self) -> str | None:
        """The model named by the run's invocation params, else its ls_model_name."""
        try:
            model = model_name_in(self.params) if is_map(self.params) else None
            if model is None and is_map(self.metadata):
                model = self.metadata.get("ls_model_name")  # type: ignore[union-attr]
        except Exception:
            logger.exception("CostCallbackHandler could not read the run's model")
            return None
        return model if isinstance(model, str) and model else None

    @property
    def routed_model(self) -> str | None:
        """The model of the tier a ``RouterChatModel`` run was routed to at its start."""
        params = self.params
        try:
            tier = params.get(ROUTED_TIER_PARAM) if is_map(params) else None
            spec = params["models"].get(tier) if tier is not None else None  # type: ignore[index]
            return model_name_in(spec) if is_map(spec) else None
        except Exception:
            logger.exception("CostCallbackHandler could not read the router's tier")
            return None

    @property
    def router_models(self) -> tuple[str, ...]:
        try:
            return _router_models(self.params) if is_map(self.params) else ()
        except Exception:
            logger.exception("CostCallbackHandler could not read the router's models")
            return ()

    @property
    def compressed_tokens(self) -> int:
        """Input tokens a prompt compressor removed from this run's prompt (its mark sits
        on the first or last message: two reads, never a scan of the history)."""
        prompts = self.messages
        if not prompts or not prompts[0]:
            return 0
        prompt = prompts[0]
        for message in (prompt[-1], prompt[0]) if len(prompt) > 1 else prompt:
            metadata = getattr(message, "response_metadata", None)
            if metadata:
                removed = metadata.get(COMPRESSED_TOKENS_KEY)
                if type(removed) is int and removed > 0:
                    return removed
        return 0

    @property
    def routing(self) -> Mapping[str, Any] | None:
        """The decision ``RouterChatModel.batch`` puts in the run's metadata."""
        metadata = self.metadata
        if not metadata or (type(metadata) is not dict and not is_map(metadata)):
            return None
        routing = metadata.get(BATCH_ROUTING_KEY)
        return routing if routing is not None and is_map(routing) else None


# The running event loop of this thread, else None: without the RuntimeError that
# asyncio.get_running_loop() raises (and costs) on every sync call. In asyncio's __all__.
_running_loop = asyncio._get_running_loop


# Every live handler, for _refused_everywhere (weakly: a handler is never kept alive).
_HANDLERS: weakref.WeakSet[CostCallbackHandler] = weakref.WeakSet()


def _refused_everywhere(key: Any) -> None:
    # A budget refused run ``key``: the handlers LangChain called before this one (two
    # budgets on one call: nested cost_tracker()s, or a team and a request handler)
    # drop what they opened for it.
    for _ in range(3):
        try:
            handlers = list(_HANDLERS)
            break
        except RuntimeError:  # a handler made or collected meanwhile: read again
            continue
    else:
        return
    for handler in handlers:
        try:
            handler._refused(key)
        except Exception:
            logger.exception("releasing a refused run's reservation failed")


def _answered(row: list[Any]) -> bool:
    """Whether a failed run's generations hold some answer: not only the empty message
    LangChain builds from a provider error's HTTP response (status code, body), which no
    provider bills (a rate limit's 429 was booked as a call costed from its prompt)."""
    for generation in row:
        message = getattr(generation, "message", None)
        if message is None or message.content or getattr(message, "usage_metadata", None):
            return True
        if getattr(message, "tool_calls", None):
            return True
    return False


def _streamed_so_far(run: _Run | None) -> LLMResult | None:
    """What a run cut short had streamed, as its answer (None: nothing streamed)."""
    if run is None or not run.streamed:
        return None
    message = AIMessage("".join(run.streamed), response_metadata=run.streamed_metadata or {})
    return LLMResult(generations=[[ChatGeneration(message=message)]])


def call_text(run: _Run | None, response: LLMResult) -> CallText:
    """The prompt and answer text of a run, to cost it when no usage came back: the
    run's messages (text blocks; images are not counted) and bound tools, and the first
    answer's text with its tool calls.

    Example:
        >>> from langchain_core.messages import AIMessage, HumanMessage
        >>> from langchain_core.outputs import ChatGeneration
        >>> run = _Run({}, None, None, None, [[HumanMessage("Hello, world!")]])
        >>> result = LLMResult(generations=[[ChatGeneration(message=AIMessage("Hi!"))]])
        >>> call_text(run, result)
        CallText(prompt=['Hello, world!'], answer='Hi!', chat=True)
    """
    prompt: list[str] = []
    chat = True
    messages = run.messages if run is not None else None
    for item in messages[0] if messages else ():
        if isinstance(item, str):  # a completion model's prompt (on_llm_start)
            prompt.append(item)
            chat = False
        elif isinstance(item, BaseMessage):
            prompt.append(message_text(item))
    params = run.params if run is not None and is_map(run.params) else _EMPTY
    if params.get("tools"):
        prompt.append(json.dumps(params["tools"], default=str))
    answer = ""
    first = response.generations[0] if response.generations else ()
    if first:
        generation = first[0]
        answer = generation.text or ""
        tool_calls = getattr(getattr(generation, "message", None), "tool_calls", None)
        if tool_calls:
            answer += json.dumps(
                [{"name": c.get("name"), "args": c.get("args")} for c in tool_calls],
                default=str,
                ensure_ascii=False,
            )
    # A provider never bills output past the call's max_tokens: the estimate stays below it.
    return CallText(prompt, answer, chat, max_output_tokens=output_limit_in(params))


def _router_models(params: Mapping[str, Any]) -> tuple[str, ...]:
    # RouterChatModel's invocation params hold {"models": {tier: identifying params}}.
    models = params.get("models")
    if not is_map(models):
        return ()
    names = []
    for spec in models.values():
        name = model_name_in(spec) if is_map(spec) else None
        if name:
            names.append(name)
    return tuple(names)


class _HandlerState:
    """What a ``CostCallbackHandler`` keeps between a run's start and its end.

    A base with a no-argument ``__init__`` rather than fields set in the handler's own
    ``__init__``: the handler's constructor is the engine's ``CostHandlerBase`` (one
    argument list for both faces), which runs this through ``super().__init__()``.
    """

    # Answers a cascade may still reject, by their routing record's CASCADE_HELD_KEY:
    # (the routed call's booking, then what an attempt's booking needs). Made by the
    # first one held: the handler's usual calls never look at it.
    _held: dict[str, list[tuple[Callable[[], Any], str, TokenUsage, Any, Any, Any]]] | None
    _held = None

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()
        self._runs: dict[Any, _Run] = {}  # open runs by run key (see on_chat_model_start)
        self._counted: OrderedDict[Any, None] = OrderedDict()  # run keys counted
        self._priced_names: set[str] = set()  # answer model names the catalog prices
        # Root run of each open non-root chain / retriever / tool run (a root run is its
        # own root and is not kept): a document compressor's custom event names the step
        # it ran in, and its saving belongs to the next model call of the same root.
        self._roots: OrderedDict[Any, Any] = OrderedDict()
        self._compression: CompressionMarks[Any] = CompressionMarks()
        # Set by the first compression event: until then the call path skips asking the
        # marks (a Python __bool__ call per call).
        self._compression_seen = False
        _HANDLERS.add(self)  # type: ignore[arg-type]


class CostCallbackHandler(CostHandlerBase, _HandlerState, BaseCallbackHandler):
    """Tallies LangChain LLM calls per model, prices them, and enforces budgets.

    It implements ``costopt_core.budget_gate.DowngradeSignal``: with
    ``on_budget="downgrade"``, ``downgrade_requested`` turns true once a budget is spent
    and ``RouterChatModel`` then answers with its cheapest tier. Budgets are checked in
    the run's start event, where LangChain lets ``BudgetExceededError`` through.

    Example:
        >>> from langchain_costopt import CostCallbackHandler, set_price
        >>> from langchain_costopt.simulated import SimulatedChatModel
        >>> _ = set_price("doc-model", input_per_token=1e-6, output_per_token=2e-6)
        >>> handler = CostCallbackHandler(budget_usd=1.0)
        >>> reply = SimulatedChatModel(model_name="doc-model").invoke(
        ...     "hello", config={"callbacks": [handler]})
        >>> u = reply.usage_metadata
        >>> handler.total_cost == u["input_tokens"] * 1e-6 + u["output_tokens"] * 2e-6
        True
        >>> handler.summary().calls, handler.downgrade_requested
        (1, False)

    Arguments (``baseline_model``, ``budget_usd``, ``on_budget``, ``ledger``,
    ``daily_budget_usd``, ``monthly_budget_usd``, ``budgets``, ``tags``, ``catalog``,
    ``call_estimate_usd``, ``reservation_ttl_seconds``, ``on_ledger_error``) and figures
    (``total_cost``,
    ``total_saved``, ``report()``, ``to_dict()``, ``to_json()``, ``to_csv()``, budgets...)
    are those of
    ``costopt_core.accounting.CostHandlerBase``, the same as LlamaIndex's
    ``CostEventHandler``.
    """

    # LangChain re-raises a handler exception only when raise_error is set; the one
    # exception this handler lets out is BudgetExceededError, raised on purpose.
    raise_error: bool = True

    @property
    def run_inline(self) -> bool:  # type: ignore[override]
        """With the in-memory ledger an event is a few dict operations under a lock: run
        inline, async callbacks stay on the event loop instead of hopping to an executor
        thread. A database ledger does I/O (a SQLite write lock held by another process,
        a Postgres round trip): its events run in LangChain's executor, off the loop."""
        return isinstance(self._accountant.ledger, CostLedger)

    # Chain, retriever and tool runs are followed only for their root (one dict store
    # at the start, one pop at the end), to book a document compressor's custom event.
    ignore_chain: bool = False
    ignore_agent: bool = False
    ignore_retriever: bool = False
    ignore_retry: bool = True
    ignore_custom_event: bool = False

    # -- run start: remember the run, check the budget ----------------------------------
    #
    # The per-call path is written for speed (it runs on every LLM call): plain dict
    # reads with a type check instead of helper calls, run ids keyed by their int (a
    # UUID's __hash__ is Python code), one lock section per event, nothing parsed at
    # the start that the answer usually carries.

    def on_chat_model_start(
        self,
        serialized: dict[str, Any],
        messages: list[list[Any]],
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        # Implemented (not left to LangChain's on_llm_start fallback) so LangChain never
        # renders the messages to strings for this handler; on_llm_start shares it.
        if parent_run_id is None:
            parent = None
        else:
            parent = parent_run_id.int if type(parent_run_id) is UUID else parent_run_id
        params = kwargs.get("invocation_params")
        run = _Run(params, metadata, None, parent, messages)
        accountant = self._accountant
        key = run_id.int if type(run_id) is UUID else run_id
        # Without budgets there is nothing to check or reserve. A nested LLM run was
        # admitted with its parent: checking again would reserve twice. (A dict
        # membership test is atomic: no lock needed to read it.)
        if accountant.budgets and (parent is None or parent not in self._runs):
            try:
                quote = call_quote(messages, params, metadata)
                if quote is not None:
                    run.reservation = accountant.admit_call(*quote)
                else:  # a router's run: its tiers' quotes
                    quotes, _ = call_quotes(messages, params, metadata)
                    run.reservation, run.downgraded = accountant.admit(quotes, routed=True)
            except BudgetExceededError as exc:
                _refused_everywhere(key)
                raise budget_refusal(exc) from exc  # not retried by LangChain's retry middleware
        if run.reservation is not None and _running_loop() is not None:
            self._watch_task(run, key)
        # One dict store, atomic: the run's end pops it under the lock.
        self._runs[key] = run

    def _watch_task(self, run: _Run, key: Any) -> None:
        # LangChain ends no run whose task is cancelled (asyncio.wait_for / timeout
        # around ainvoke): its reservation would be held until it expires. The task's
        # end releases it if the run is still open then; the run's own end unhooks it.
        task = asyncio.current_task()
        if task is not None:
            release = functools.partial(self._task_done, key)
            task.add_done_callback(release)
            run.watch = (task, release)

    def _refused(self, key: Any) -> None:
        """Another handler refused run ``key`` at its start: LangChain stops at the first
        handler that raises and ends the run for no other, so what this one opened for
        it is dropped now (its reservation would be held until it expires)."""
        run = self._runs.pop(key, None)
        if run is not None:
            if run.watch is not None:
                run.watch[0].remove_done_callback(run.watch[1])
            self._accountant.cancel(run.reservation)

    def _task_done(self, key: Any, task: asyncio.Task[Any]) -> None:
        run = self._runs.get(key)
        if run is not None and run.streamed:
            if not task.cancelled():
                # The task that read the first chunks ended (asyncio.wait_for around the
                # first __anext__); the stream goes on in another: watch that one next.
                run.watch = None
                return
            # Cancelled mid-stream: what was streamed was billed (costed from its text).
            answer = _streamed_so_far(run)
            self.on_llm_end(answer, run_id=UUID(int=key) if type(key) is int else key)
            return
        run = self._runs.pop(key, None)
        if run is not None:
            self._accountant.cancel(run.reservation)
            self._release_climbed(run)

    def reserve_tier(self, run_id: object, tier: str, quote: CallQuote | None) -> None:
        """A ``RouterChatModel`` run climbs to ``tier`` (a fallback, a cascade's
        escalation): reserve that tier's maximum on top of what the run holds (a rejected
        answer was paid for; a failed tier was released, see :meth:`release_tier`);
        ``BudgetExceededError`` when it does not fit. Released at the run's end
        (``costopt_core.budget_gate.TierReservation``)."""
        key = run_id.int if type(run_id) is UUID else run_id
        run = self._runs.get(key)
        if run is None or (run.reservation is None and run.climbed is None):
            return  # not admitted here (no budget, or over budget with on_budget="warn")
        # Kept even when nothing was reserved: release_tier tells a climbed tier from
        # the one the run was admitted on by it.
        run.climbed = [*(run.climbed or ()), (tier, self._tier_reservation(run, tier, quote))]

    def _tier_reservation(self, run: _Run, tier: str, quote: CallQuote | None) -> str | None:
        if quote is None:
            try:
                quote = router_quotes(run.messages or [], run.params).get(tier)
            except Exception:
                logger.exception("CostCallbackHandler could not quote tier %r", tier)
                return None
            if quote is None:
                return None
        try:
            return self._accountant.admit([quote])[0]
        except BudgetExceededError as exc:
            raise budget_refusal(exc) from exc  # not retried by LangChain's retry middleware

    def release_tier(self, run_id: object, tier: str) -> None:
        """``tier`` failed in the ``RouterChatModel`` run ``run_id`` without an answer (it
        billed nothing): drop its reservation before the next tier reserves, else a run
        near the budget's end, or many at once, are refused with room left
        (``costopt_core.budget_gate.TierRelease``)."""
        key = run_id.int if type(run_id) is UUID else run_id
        run = self._runs.get(key)
        if run is None:
            return
        climbed = run.climbed or []
        for i, (held_tier, reservation) in enumerate(climbed):
            if held_tier == tier:
                run.climbed = [*climbed[:i], *climbed[i + 1 :]]
                self._accountant.cancel(reservation)
                return
        # The tier the run was admitted on: the answer will settle no reservation, and
        # an empty climbed list keeps the run admitted for the climbs to come.
        reservation, run.reservation = run.reservation, None
        if reservation is not None:
            run.climbed = climbed
            self._accountant.cancel(reservation)

    def _release_climbed(self, run: _Run) -> None:
        for _, reservation in run.climbed or ():
            self._accountant.cancel(reservation)
        run.climbed = None

    def downgraded_run(self, run_id: object) -> bool:
        """True when the router run ``run_id`` was admitted only on its cheapest tier."""
        key = run_id.int if type(run_id) is UUID else run_id
        run = self._runs.get(key)
        return run is not None and run.downgraded

    def on_llm_start(self, serialized: dict[str, Any], prompts: list[str], **kwargs: Any) -> None:
        self.on_chat_model_start(serialized, [list(prompts[:1])], **kwargs)

    # -- steps (chains, retrievers, tools): their root, for compression events -----------

    def _step_start(self, run_id: Any, parent_run_id: Any) -> None:
        if parent_run_id is None:
            return  # a root run is its own root
        try:
            parent = parent_run_id.int if type(parent_run_id) is UUID else parent_run_id
            roots = self._roots
            roots[run_id.int if type(run_id) is UUID else run_id] = roots.get(parent, parent)
            if len(roots) > _STEPS_MEMORY:
                with self._lock:
                    while len(roots) > _STEPS_MEMORY:
                        roots.popitem(last=False)
        except Exception:
            logger.exception("CostCallbackHandler could not follow run %s", run_id)

    def _step_end(self, run_id: Any) -> None:
        self._roots.pop(run_id.int if type(run_id) is UUID else run_id, None)

    def on_chain_start(
        self, serialized: Any, inputs: Any, *, run_id: UUID, parent_run_id: Any = None, **_: Any
    ) -> None:
        self._step_start(run_id, parent_run_id)

    def on_chain_end(self, outputs: Any, *, run_id: UUID, **_: Any) -> None:
        self._step_end(run_id)

    def on_chain_error(self, error: BaseException, *, run_id: UUID, **_: Any) -> None:
        self._step_end(run_id)

    def on_retriever_start(
        self, serialized: Any, query: Any, *, run_id: UUID, parent_run_id: Any = None, **_: Any
    ) -> None:
        self._step_start(run_id, parent_run_id)

    def on_retriever_end(self, documents: Any, *, run_id: UUID, **_: Any) -> None:
        self._step_end(run_id)

    def on_retriever_error(self, error: BaseException, *, run_id: UUID, **_: Any) -> None:
        self._step_end(run_id)

    def on_tool_start(
        self, serialized: Any, input_str: Any, *, run_id: UUID, parent_run_id: Any = None, **_: Any
    ) -> None:
        self._step_start(run_id, parent_run_id)

    def on_tool_end(self, output: Any, *, run_id: UUID, **_: Any) -> None:
        self._step_end(run_id)

    def on_tool_error(self, error: BaseException, *, run_id: UUID, **_: Any) -> None:
        self._step_end(run_id)

    def on_custom_event(self, name: str, data: Any, *, run_id: UUID, **_: Any) -> None:
        """Keep the tokens a ``ChunkDocumentCompressor`` removed (its
        ``costopt_documents_compressed`` event, dispatched from the step it ran in) for
        the next model call of the same root run."""
        if name != DOCUMENTS_COMPRESSED_EVENT or not is_map(data):
            return
        try:
            key = run_id.int if type(run_id) is UUID else run_id
            self._compression_seen = True
            self._compression.add(self._roots.get(key, key), data.get("removed_tokens"))
        except Exception:
            logger.exception("CostCallbackHandler could not read event %s", name)

    def _compressed_tokens(self, run: _Run | None) -> int:
        """Input tokens compressors removed from ``run``'s prompt: its message mark, or
        the documents removed earlier in its root run (the larger: a prompt marked with
        the documents' saving, as ``marked`` does, carries the same tokens as the event,
        so the two are never added). Taking the root's pending tokens books them once."""
        if run is None:
            return 0
        removed = run.compressed_tokens
        if not self._compression or run.parent is None:
            return removed  # the usual case: no compression event is pending
        runs = self._runs
        node = run.parent
        for _ in range(_MAX_LLM_NESTING):  # a tier's run sits in its router's run
            outer = runs.get(node)
            if outer is None or outer.parent is None:
                break
            node = outer.parent
        return max(removed, self._compression.take(self._roots.get(node, node)))

    # -- run end: count the usage once --------------------------------------------------

    def on_llm_new_token(self, token: str, *, run_id: UUID, **kwargs: Any) -> None:
        """Keep what a stream has sent so far: a stream cut short (an error after some
        chunks, a cancelled task) was billed for it, and on ``invoke``'s streaming path
        (an agent's) LangChain reports the error without the chunks."""
        key = run_id.int if type(run_id) is UUID else run_id
        run = self._runs.get(key)
        if run is None:
            return
        if type(token) is str and token:
            if run.streamed is None:
                run.streamed = []
            if run.watch is None and _running_loop() is not None:
                self._watch_task(run, key)  # a cancelled stream is billed too
            run.streamed.append(token)
        metadata = getattr(getattr(kwargs.get("chunk"), "message", None), "response_metadata", None)
        if metadata and type(metadata) is dict:
            if run.streamed_metadata is None:
                run.streamed_metadata = {}
            run.streamed_metadata.update(metadata)

    def on_llm_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        response = kwargs.get("response")
        # A stream that failed midway may still carry billed usage.
        failed_with = (
            response
            if isinstance(response, LLMResult) and any(map(_answered, response.generations))
            else None
        )
        if failed_with is None:  # LangChain's invoke path passes no chunks: [[]]
            run = self._runs.get(run_id.int if type(run_id) is UUID else run_id)
            failed_with = _streamed_so_far(run)
        self.on_llm_end(failed_with, run_id=run_id)

    def on_llm_end(self, response: LLMResult | None, *, run_id: UUID, **kwargs: Any) -> None:
        """Count the run's answer once (``None``, from ``on_llm_error``: it has none, the
        run is dropped); a run not counted releases its budget reservation.

        No lock: each step is one C-level dict operation, atomic under the GIL (int keys,
        no Python ``__hash__``/``__eq__`` to run). Popping the run gives it to one ender
        only; ``setdefault`` on the counted keys is the test-and-set that picks the one
        ender who counts it, whoever holds the run (a run ended twice at once, or its end
        seen by two threads, is counted once). Counting a run marks its parent LLM run (a
        wrapper delegating through it) as covered, so the parent is not counted again.
        """
        key = run_id.int if type(run_id) is UUID else run_id
        run = None
        try:
            run = self._runs.pop(key, None)
            if run is not None and run.watch is not None:
                run.watch[0].remove_done_callback(run.watch[1])
            if response is not None:
                counted = self._counted
                # This ender's own mark: the run it popped (no other ender has it), else a
                # new object. The mark is replaced by None once set, keeping nothing alive;
                # a run id started again after being counted finds None, not its run.
                mark = run if run is not None else object()
                first = counted.setdefault(key, mark) is mark
                if first:
                    counted[key] = None
                    if len(counted) > _COUNTED_MEMORY:
                        # O(1), unlike a plain dict's first key; a race evicts one
                        # more, well short of emptying it.
                        counted.popitem(last=False)
                    if run is not None and run.parent is not None:
                        parent = self._runs.get(run.parent)
                        if parent is not None:
                            parent.covered = True
                    generations = response.generations
                    if (
                        run is None
                        or run.covered
                        or len(generations) != 1
                        or len(generations[0]) != 1
                        or not self._account_plain(generations[0][0], run, run_id)
                    ):
                        self._account(response, run_id, run)
                    return
            if run is not None:
                self._accountant.cancel(run.reservation)
        except Exception:
            logger.exception("CostCallbackHandler failed to account run %s", run_id)
            if run is not None:
                self._accountant.cancel(run.reservation)
        finally:
            if run is not None and run.climbed:
                self._release_climbed(run)  # after its spend is counted

    def _account(self, response: LLMResult, run_id: UUID, run: _Run | None) -> None:
        # The general path (on_llm_end tried _account_plain, for the usual answer, first).
        reservation = run.reservation if run is not None else None
        if run is not None and run.covered:
            self._accountant.cancel(reservation)  # a child run already counted this call
            return
        llm_output = response.llm_output
        recorded = False
        unmetered: _Answerer | None = None
        run_key = run_id  # made text only when the record is built
        for row in response.generations:
            # Several choices of one prompt (n > 1) each repeat the request's usage.
            seen: list[TokenUsage] | None = [] if len(row) > 1 else None
            for generation in row:
                outcome = self._account_generation(
                    generation,
                    run,
                    run_key,
                    llm_output,
                    None if recorded else reservation,
                    seen,
                )
                if outcome is True:
                    recorded = True
                elif unmetered is None and isinstance(outcome, _Answerer):
                    unmetered = outcome
        if recorded:
            return
        usage = (
            usage_from_mapping(llm_output.get("token_usage") or llm_output.get("usage"))
            if llm_output
            else None
        )
        if usage is not None and usage.is_empty():
            usage = None
        if usage is not None or any(row for row in response.generations):
            # Usage of the whole run, else an answer without any usage (e.g. an OpenAI
            # stream without stream_usage): the engine costs it from its text, under the
            # model and routing the answer named (a router's run is named after the
            # router, not the tier model that answered).
            if unmetered is None:
                routing = run.routing if run is not None else None
                unmetered = _Answerer(
                    _fallback_model(llm_output, run, routing), routing, _tier(routing)
                )
            self._accountant.record_call(
                unmetered.model,
                usage,
                tier=unmetered.tier,
                router_models=(
                    None if unmetered.tier is None else _tier_models(unmetered.routing, run)
                ),
                run_id=run_key,
                reservation_id=reservation,
                text=None if usage is not None else call_text(run, response),
                compressed_tokens=self._compressed_tokens(run),
                batch=unmetered.batch,
            )
        else:
            self._accountant.cancel(reservation)

    def _account_plain(self, generation: Any, run: _Run, run_id: UUID) -> bool:
        """Record the usual answer, if this is one (True): one chat answer with its usage
        and a priced model name, and nothing else to read (no cache hit, routing, batch
        price or compressed prompt). Anything else (False) is read by the general path,
        which decides the same for this one: this only skips the reading it does not need.
        """
        message = getattr(generation, "message", None)
        metadata = getattr(message, "response_metadata", None)
        usage = getattr(message, "usage_metadata", None)
        if type(metadata) is not dict or type(usage) is not dict:
            return False
        model = metadata.get("model_name")
        if (
            type(model) is not str
            or model not in self._priced_names
            or not _UNUSUAL_ANSWER_KEYS.isdisjoint(metadata)
            or "total_cost" in usage  # LangChain's mark of a cached answer
        ):
            return False
        info = generation.generation_info
        if info and CACHE_MARKER_KEY in info:
            return False
        run_metadata = run.metadata
        if run_metadata and (type(run_metadata) is not dict or BATCH_ROUTING_KEY in run_metadata):
            return False
        if (self._compression_seen and self._compression) or run.compressed_tokens:
            return False
        counts = usage_counts(usage)
        if counts is None:
            return False
        self._accountant.record_call_later(
            model, counts, run_id=run_id, reservation_id=run.reservation
        )
        return True

    def _account_generation(
        self,
        generation: Any,
        run: _Run | None,
        run_id: object,
        llm_output: Mapping[str, Any] | None,
        reservation: str | None,
        seen: list[TokenUsage] | None,
    ) -> bool | _Answerer:
        """Record one answer: True when recorded; for an answer without usage, who
        answered it (the run's usage, or its text, is recorded under that); else False."""
        message = getattr(generation, "message", None)
        metadata = getattr(message, "response_metadata", None)
        if type(metadata) is not dict:
            metadata = metadata if is_map(metadata) else _EMPTY
        usage_metadata = getattr(message, "usage_metadata", None)
        info = getattr(generation, "generation_info", None) or _EMPTY
        # usage_metadata, when present, is what LangChain-native models report: the
        # provider formats in generation_info are only parsed without it.
        usage = usage_from_mapping(usage_metadata) if usage_metadata else None
        if usage is None and info:
            usage = usage_from_mapping(
                info.get("usage") or info.get("token_usage") or info.get("usage_metadata")
            )
        cache = metadata.get(CACHE_MARKER_KEY)
        if cache is None and info:
            cache = info.get(CACHE_MARKER_KEY)
        if cache is not None and not is_map(cache):
            cache = None
        routing = metadata.get(ROUTING_KEY)
        if routing is None or not is_map(routing):
            routing = run.routing if run is not None else None
        model = metadata.get("model_name")
        if type(model) is not str or not model:
            model = (
                model_name_in(metadata)
                or (model_name_in(info) if info else None)
                or (cache.get("model") if cache and isinstance(cache.get("model"), str) else None)
                or _fallback_model(llm_output, run, routing)
            )
        if model not in self._priced_names:  # a set hit instead of a catalog call
            if self._accountant.catalog.get(model) is None:
                model = self._repair_model_name(model)
            elif len(self._priced_names) < _PRICED_MEMORY:
                self._priced_names.add(model)
        tier = None
        if routing:
            tier = routing.get("tier")
            if type(tier) is not str:
                tier = None
        if (cache is not None and cache.get("hit")) or (
            usage_metadata is not None
            and (type(usage_metadata) is dict or is_map(usage_metadata))
            and usage_metadata.get("total_cost", None) == 0
        ):
            hint = cache.get("saved_usd") if cache is not None else None
            self._compressed_tokens(run)  # a cached answer saves the whole call: drop them
            usage_less = usage is None or usage.is_empty()
            self._accountant.record_cache_hit(
                model,
                usage,
                saved_hint_usd=hint if isinstance(hint, int | float) else None,
                tier=tier,
                run_id=run_id,
                reservation_id=reservation,
                text=call_text(run, LLMResult(generations=[[generation]])) if usage_less else None,
            )
            return True  # a cached answer's cascade attempts were paid for long ago
        if usage is None:
            return _Answerer(model, routing, tier, metadata.get(BATCH_KEY) is True)
        if seen is not None:
            if usage in seen:
                return False
            seen.append(usage)
        book = functools.partial(
            self._accountant.record_call,
            model,
            usage,
            tier=tier,
            router_models=None if tier is None else _tier_models(routing, run),
            run_id=run_id,
            reservation_id=reservation,
            compressed_tokens=self._compressed_tokens(run),
            batch=metadata.get(BATCH_KEY) is True,
        )
        held = routing.get(CASCADE_HELD_KEY) if routing else None
        if type(held) is str:
            # A cascade may still reject this answer: booked once the middleware says.
            with self._lock:
                if self._held is None:
                    self._held = {}
                self._held.setdefault(held, []).append(
                    (book, model, usage, tier, run_id, reservation)
                )
            return True
        book()
        attempts = routing.get("attempts") if routing else None
        for attempt in attempts or ():
            if not is_map(attempt):
                continue
            attempt_usage = usage_from_mapping(attempt.get("usage"))
            if attempt_usage is None:
                continue
            attempt_model = attempt.get("model")
            self._accountant.record_attempt(
                attempt_model if isinstance(attempt_model, str) and attempt_model else model,
                attempt_usage,
                tier=attempt.get("tier") if isinstance(attempt.get("tier"), str) else None,
                run_id=run_id,
            )
        return True

    def settle_held(self, key: str, accepted: bool) -> None:
        """Book the answers held under ``key`` (see :func:`settle_cascade_attempt`): as
        routed calls if ``accepted``, else as rejected cascade attempts (their spend, and
        a negative saving, as a ``RouterChatModel``'s attempts are booked)."""
        held = self._held
        for book, model, usage, tier, run_id, reservation in held.pop(key, ()) if held else ():
            try:
                if accepted:
                    book()
                    continue
                self._accountant.record_attempt(model, usage, tier=tier, run_id=run_id)
                self._accountant.cancel(reservation)
            except Exception:
                logger.exception("CostCallbackHandler failed to account run %s", run_id)
                self._accountant.cancel(reservation)

    def _repair_model_name(self, model: str) -> str:
        # LangChain merges stream chunks by concatenating strings, so a model name sent
        # in two chunks arrives doubled ("m" + "m"); only an unpriced name is checked.
        if self._accountant.price_of(model) is not None:
            return model
        unit = _repeated_unit(model)
        if unit is not None and self._accountant.price_of(unit) is not None:
            return unit
        return model


def _repeated_unit(name: str) -> str | None:
    """``"gpt-4ogpt-4o"`` -> ``"gpt-4o"``: the shortest unit ``name`` repeats, if any."""
    size = len(name)
    for unit in range(1, size // 2 + 1):
        if size % unit == 0 and name[:unit] * (size // unit) == name:
            return name[:unit]
    return None


class _Answerer(NamedTuple):
    """Who answered a call that reported no usage: its model, routing record and tier."""

    model: str
    routing: Mapping[str, Any] | None
    tier: str | None
    batch: bool = False


def _fallback_model(
    llm_output: Mapping[str, Any] | None, run: _Run | None, routing: Mapping[str, Any] | None
) -> str:
    """The model of an answer that names none: the run's llm_output, else the tier model
    its routing decision chose, else the tier a router's run was routed to at its start
    (a router's run is named after the router, which has no price: an abandoned or broken
    routed stream would go unpriced), else the run's start."""
    routed = routing.get("model") if routing else None
    return (
        (model_name_in(llm_output) if is_map(llm_output) else None)
        or (routed if isinstance(routed, str) and routed else None)
        or (run.routed_model or run.model if run is not None else None)
        or UNKNOWN_MODEL
    )


def _tier_models(routing: Mapping[str, Any] | None, run: _Run | None) -> tuple[str, ...] | None:
    """The router's tier models: from its invocation params, else from the decision
    (``routing["tier_models"]``, ``{tier: model}``, which batch runs need)."""
    if run is not None:
        models = run.router_models
        if models:
            return models
    tier_models = routing.get("tier_models") if routing else None
    if is_map(tier_models):
        names = tuple(m for m in tier_models.values() if isinstance(m, str) and m)
        return names or None
    return None


def _tier(routing: Mapping[str, Any] | None) -> str | None:
    tier = routing.get("tier") if routing else None
    return tier if isinstance(tier, str) else None


def settle_cascade_attempt(key: str, accepted: bool) -> None:
    """Book, in every cost handler, the answers held under ``key`` (an answer whose
    routing record carries ``CASCADE_HELD_KEY``): routed calls if the cascade
    ``accepted`` the answer, else rejected cascade attempts.

    Example:
        >>> settle_cascade_attempt("no-such-answer", accepted=True)  # nothing held
    """
    if not isinstance(key, str):
        raise TypeError(f"key must be a str, got {key!r}")
    for handler in list(_HANDLERS):
        handler.settle_held(key, accepted)


# -- cost_tracker -------------------------------------------------------------------------

# One context variable per nesting level: LangChain's configure hook attaches one handler
# per variable, and nested trackers must each see the calls made inside them.
_MAX_NESTING = 8
_tracker_vars: tuple[ContextVar[CostCallbackHandler | None], ...] = tuple(
    ContextVar(f"costopt_cost_tracker_{level}", default=None) for level in range(_MAX_NESTING)
)
for _var in _tracker_vars:
    register_configure_hook(_var, True)


@contextmanager
def cost_tracker(
    baseline_model: str | None = None,
    budget_usd: float | None = None,
    on_budget: OnBudget = "raise",
    ledger: LedgerProtocol | None = None,
    **kwargs: Any,
) -> Iterator[CostCallbackHandler]:
    """Track every LangChain LLM call made inside the ``with`` block.

    Takes the same arguments as ``CostCallbackHandler`` and yields one. Works like
    ``get_openai_callback``: no ``callbacks=`` needed; unregistered on exit, also when
    the body raises. Trackers nest (up to 8 deep); each sees the calls inside it.

    Example:
        >>> from langchain_costopt import cost_tracker
        >>> from langchain_costopt.simulated import SimulatedChatModel
        >>> with cost_tracker() as tracker:
        ...     _ = SimulatedChatModel(model_name="gpt-4o-mini").invoke("hi")
        >>> tracker.summary().calls
        1
    """
    handler = CostCallbackHandler(baseline_model, budget_usd, on_budget, ledger, **kwargs)
    with tracking(handler):
        yield handler


def tracking_handlers() -> list[CostCallbackHandler]:
    """The handlers of the ``cost_tracker()`` / ``tracking()`` blocks around this call,
    outermost first: what LangChain's configure hook adds to every run here (read
    without configuring a callback manager)."""
    found = []
    for var in _tracker_vars:
        handler = var.get()
        if handler is None:
            break
        found.append(handler)
    return found


@contextmanager
def tracking(handler: CostCallbackHandler) -> Iterator[CostCallbackHandler]:
    """Give ``handler`` every LangChain LLM call made inside the ``with`` block, as
    :func:`cost_tracker` does with a new one (for a handler that lives longer, e.g. an
    agent middleware's)."""
    for var in _tracker_vars:
        if var.get() is None:
            break
    else:
        raise RuntimeError(f"cost_tracker nests at most {_MAX_NESTING} levels deep")
    token = var.set(handler)
    try:
        yield handler
    finally:
        try:
            var.reset(token)
        except ValueError:  # exited in another context (e.g. a generator moved threads)
            var.set(None)


__all__ = [
    "BudgetExceededError",
    "CostCallbackHandler",
    "TokenUsage",
    "cost_tracker",
    "tracking",
    "tracking_handlers",
]
