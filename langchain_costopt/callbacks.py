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
  with no usage anywhere is counted as a call of unknown cost ("unpriced"), not $0.
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
  invocation params (``models``), for the baseline.
* One count per run: a run id is counted once; a run whose child LLM run was counted
  (a wrapper delegating through a child run) is not counted again; several choices of
  one prompt (``n > 1``) carrying the same usage are one call.

Budgets are checked in ``on_chat_model_start`` / ``on_llm_start``: the handler sets
``raise_error = True`` so LangChain propagates ``BudgetExceededError`` before the
provider is called; every other failure inside the handler is logged and swallowed.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.outputs import LLMResult
from langchain_core.tracers.context import register_configure_hook

from costopt_core.accounting import (
    AccountantViews,
    CostAccountant,
    OnBudget,
    usage_from_mapping,
)
from costopt_core.ledger import (
    Budget,
    BudgetExceededError,
    LedgerProtocol,
    TokenUsage,
)
from costopt_core.pricing import PriceCatalog

logger = logging.getLogger(__name__)

_MODEL_KEYS = ("model_name", "model", "model_id", "deployment_name")
_COUNTED_MEMORY = 4096
UNKNOWN_MODEL = "unknown-model"


@dataclass(slots=True)
class _Run:
    model: str | None
    router_models: tuple[str, ...]
    routing: Mapping[str, Any] | None
    reservation: str | None
    parent: UUID | None
    covered: bool = False


def _is_map(value: Any) -> bool:
    # Metadata is nearly always a plain dict: skip the slower ABC check for it.
    return type(value) is dict or (value is not None and isinstance(value, Mapping))


def _model_from(mapping: Mapping[str, Any] | None) -> str | None:
    if not mapping:
        return None
    for key in _MODEL_KEYS:
        value = mapping.get(key)
        if isinstance(value, str) and value:
            return value
    return None


def _router_models(params: Mapping[str, Any]) -> tuple[str, ...]:
    # RouterChatModel's invocation params hold {"models": {tier: identifying params}}.
    models = params.get("models")
    if not _is_map(models):
        return ()
    names = []
    for spec in models.values():
        name = _model_from(spec) if _is_map(spec) else None
        if name:
            names.append(name)
    return tuple(names)


def _is_langchain_cache_hit(usage_metadata: Any) -> bool:
    return _is_map(usage_metadata) and usage_metadata.get("total_cost", None) == 0


class CostCallbackHandler(AccountantViews, BaseCallbackHandler):
    """Tallies LangChain LLM calls per model, prices them, and enforces budgets.

    Example:
        >>> from langchain_costopt import CostCallbackHandler, set_price
        >>> from langchain_costopt.simulated import SimulatedChatModel
        >>> _ = set_price("doc-model", input_per_token=1e-6, output_per_token=2e-6)
        >>> handler = CostCallbackHandler()
        >>> reply = SimulatedChatModel(model_name="doc-model").invoke(
        ...     "hello", config={"callbacks": [handler]})
        >>> u = reply.usage_metadata
        >>> handler.total_cost == u["input_tokens"] * 1e-6 + u["output_tokens"] * 2e-6
        True

    Args:
        baseline_model: model that routed calls are compared against (default: the
            most expensive tier of the router, else the most expensive model seen).
        budget_usd: limit in USD over the ledger's life (this tracker's, unless a
            shared ``ledger`` is given).
        on_budget: ``"raise"`` (``BudgetExceededError`` before the next call),
            ``"warn"`` (warn once per crossing, call goes ahead) or ``"downgrade"``
            (``RouterChatModel`` then answers with its cheapest tier).
        ledger: a shared ledger (e.g. ``PostgresLedger``); totals and budgets are then
            those of the ledger. Default: a private in-memory ``CostLedger``.
        daily_budget_usd / monthly_budget_usd: limits per UTC calendar day / month.
        budgets: further ``costopt_core.ledger.Budget`` objects.
        tags: stored on every record (e.g. ``{"app": "support-bot"}``).
        catalog: price catalog (default: the process-wide one, see ``set_price``).
        call_estimate_usd: reserved against the budgets before each call (default:
            the largest of the last 32 calls; see ``CostAccountant``).
    """

    # LangChain re-raises a handler exception only when raise_error is set; the one
    # exception this handler lets out is BudgetExceededError, raised on purpose.
    raise_error: bool = True
    # The work per event is a few dict operations under a lock: running inline keeps
    # async callbacks on the event loop instead of hopping to an executor thread.
    run_inline: bool = True
    ignore_chain: bool = True
    ignore_agent: bool = True
    ignore_retriever: bool = True
    ignore_retry: bool = True
    ignore_custom_event: bool = True

    def __init__(
        self,
        baseline_model: str | None = None,
        budget_usd: float | None = None,
        on_budget: OnBudget = "raise",
        ledger: LedgerProtocol | None = None,
        *,
        daily_budget_usd: float | None = None,
        monthly_budget_usd: float | None = None,
        budgets: Sequence[Budget] = (),
        tags: Mapping[str, str] | None = None,
        catalog: PriceCatalog | None = None,
        call_estimate_usd: float | None = None,
    ) -> None:
        super().__init__()
        self.accountant = CostAccountant(
            baseline_model=baseline_model,
            budget_usd=budget_usd,
            daily_budget_usd=daily_budget_usd,
            monthly_budget_usd=monthly_budget_usd,
            budgets=budgets,
            on_budget=on_budget,
            ledger=ledger,
            catalog=catalog,
            tags=tags,
            call_estimate_usd=call_estimate_usd,
        )
        self._lock = threading.Lock()
        self._runs: dict[UUID, _Run] = {}
        self._counted: OrderedDict[UUID, None] = OrderedDict()

    # Public figures (total_cost, total_saved, budgets, summary, report, to_json, ...)
    # come from AccountantViews, shared with llamaindex_costopt's CostEventHandler.

    # -- run start: remember the model, check the budget --------------------------------

    def on_chat_model_start(
        self,
        serialized: dict[str, Any],
        messages: list[list[Any]],
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        self._start(run_id, parent_run_id, metadata, kwargs)

    def on_llm_start(
        self,
        serialized: dict[str, Any],
        prompts: list[str],
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        self._start(run_id, parent_run_id, metadata, kwargs)

    def _start(
        self,
        run_id: UUID,
        parent_run_id: UUID | None,
        metadata: Mapping[str, Any] | None,
        kwargs: Mapping[str, Any],
    ) -> None:
        try:
            params = kwargs.get("invocation_params") or {}
            model = _model_from(params) or (metadata or {}).get("ls_model_name")
            router_models = _router_models(params)
            routing = (metadata or {}).get("costopt_routing")
            with self._lock:
                nested = parent_run_id is not None and parent_run_id in self._runs
        except Exception:
            logger.exception("CostCallbackHandler could not read the run start")
            model, router_models, routing, nested = None, (), None, False
        # A nested LLM run was admitted with its parent; checking again would reserve twice.
        reservation = None if nested else self.accountant.before_call()  # may raise
        run = _Run(
            model=model if isinstance(model, str) else None,
            router_models=router_models,
            routing=routing if _is_map(routing) else None,
            reservation=reservation,
            parent=parent_run_id,
        )
        with self._lock:
            self._runs[run_id] = run

    # -- run end: count the usage once --------------------------------------------------

    def on_llm_end(
        self,
        response: LLMResult,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        **kwargs: Any,
    ) -> None:
        run = self._finish(run_id)
        try:
            self._account(response, run_id, run)
        except Exception:
            logger.exception("CostCallbackHandler failed to account run %s", run_id)
            if run is not None:
                self.accountant.cancel(run.reservation)

    def on_llm_error(
        self,
        error: BaseException,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        **kwargs: Any,
    ) -> None:
        run = self._finish(run_id)
        try:
            response = kwargs.get("response")
            # A stream that failed midway may still carry billed usage.
            if isinstance(response, LLMResult) and response.generations:
                self._account(response, run_id, run)
            elif run is not None:
                self.accountant.cancel(run.reservation)
        except Exception:
            logger.exception("CostCallbackHandler failed on the error of run %s", run_id)
            if run is not None:
                self.accountant.cancel(run.reservation)

    def _finish(self, run_id: UUID) -> _Run | None:
        with self._lock:
            return self._runs.pop(run_id, None)

    def _claim(self, run_id: UUID, run: _Run | None) -> bool:
        """True the first time a run is counted; marks its parent LLM run as covered."""
        with self._lock:
            if run_id in self._counted:
                return False
            self._counted[run_id] = None
            if len(self._counted) > _COUNTED_MEMORY:
                self._counted.popitem(last=False)
            if run is not None and run.parent is not None:
                parent = self._runs.get(run.parent)
                if parent is not None:
                    parent.covered = True
            return True

    def _account(self, response: LLMResult, run_id: UUID, run: _Run | None) -> None:
        if not self._claim(run_id, run):
            return
        reservation = run.reservation if run is not None else None
        if run is not None and run.covered:
            self.accountant.cancel(reservation)  # a child run already counted this call
            return
        llm_output = response.llm_output or {}
        fallback_model = (
            _model_from(llm_output) or (run.model if run is not None else None) or UNKNOWN_MODEL
        )
        recorded = False
        run_key = str(run_id)
        for row in response.generations:
            seen: list[TokenUsage] = []
            for generation in row:
                if self._account_generation(
                    generation,
                    run,
                    run_key,
                    fallback_model,
                    None if recorded else reservation,
                    seen,
                ):
                    recorded = True
        if not recorded:
            usage = usage_from_mapping(llm_output.get("token_usage") or llm_output.get("usage"))
            if usage is not None and not usage.is_empty():
                routing = _routing_of(None, run)
                self.accountant.record_call(
                    fallback_model,
                    usage,
                    tier=_tier(routing),
                    router_models=_tier_models(routing, run),
                    run_id=run_key,
                    reservation_id=reservation,
                )
                recorded = True
        if not recorded and any(row for row in response.generations):
            # An answer came back without any usage: count the call, cost unknown.
            routing = _routing_of(None, run)
            self.accountant.record_call(
                fallback_model,
                None,
                tier=_tier(routing),
                router_models=_tier_models(routing, run),
                run_id=run_key,
                reservation_id=reservation,
            )
            recorded = True
        if not recorded:
            self.accountant.cancel(reservation)

    def _account_generation(
        self,
        generation: Any,
        run: _Run | None,
        run_id: str,
        fallback_model: str,
        reservation: str | None,
        seen: list[TokenUsage],
    ) -> bool:
        message = getattr(generation, "message", None)
        metadata: Mapping[str, Any] = getattr(message, "response_metadata", None) or {}
        info: Mapping[str, Any] = getattr(generation, "generation_info", None) or {}
        usage_metadata = getattr(message, "usage_metadata", None)
        usage = usage_from_mapping(usage_metadata) or usage_from_mapping(
            info.get("usage") or info.get("token_usage") or info.get("usage_metadata")
        )
        cache = metadata.get("costopt_cache") or info.get("costopt_cache")
        cache = cache if _is_map(cache) else None
        model = (
            _model_from(metadata)
            or _model_from(info)
            or (cache.get("model") if cache and isinstance(cache.get("model"), str) else None)
            or fallback_model
        )
        routing = _routing_of(metadata, run) if metadata or run is not None else None
        tier = _tier(routing) if routing else None
        model = self._repair_model_name(model)
        if (cache is not None and cache.get("hit")) or _is_langchain_cache_hit(usage_metadata):
            hint = cache.get("saved_usd") if cache is not None else None
            self.accountant.record_cache_hit(
                model,
                usage,
                saved_hint_usd=hint if isinstance(hint, int | float) else None,
                tier=tier,
                run_id=run_id,
                reservation_id=reservation,
            )
            return True  # a cached answer's cascade attempts were paid for long ago
        if usage is None or usage in seen:
            # Several choices of one prompt (n > 1) each repeat the request's usage.
            return False
        seen.append(usage)
        self.accountant.record_call(
            model,
            usage,
            tier=tier,
            router_models=_tier_models(routing, run),
            run_id=run_id,
            reservation_id=reservation,
        )
        for attempt in (routing or {}).get("attempts") or ():
            if not _is_map(attempt):
                continue
            attempt_usage = usage_from_mapping(attempt.get("usage"))
            if attempt_usage is None:
                continue
            attempt_model = attempt.get("model")
            self.accountant.record_attempt(
                attempt_model if isinstance(attempt_model, str) and attempt_model else model,
                attempt_usage,
                tier=attempt.get("tier") if isinstance(attempt.get("tier"), str) else None,
                run_id=run_id,
            )
        return True

    def _repair_model_name(self, model: str) -> str:
        # LangChain merges stream chunks by concatenating strings, so a model name sent
        # in two chunks arrives doubled ("m" + "m"); only an unpriced name is checked.
        if self.accountant.price_of(model) is not None:
            return model
        unit = _repeated_unit(model)
        if unit is not None and self.accountant.price_of(unit) is not None:
            return unit
        return model


def _repeated_unit(name: str) -> str | None:
    """``"gpt-4ogpt-4o"`` -> ``"gpt-4o"``: the shortest unit ``name`` repeats, if any."""
    size = len(name)
    for unit in range(1, size // 2 + 1):
        if size % unit == 0 and name[:unit] * (size // unit) == name:
            return name[:unit]
    return None


def _routing_of(metadata: Mapping[str, Any] | None, run: _Run | None) -> Mapping[str, Any] | None:
    routing = (metadata or {}).get("routing")
    if _is_map(routing):
        return routing
    return run.routing if run is not None else None


def _tier_models(routing: Mapping[str, Any] | None, run: _Run | None) -> tuple[str, ...] | None:
    """The router's tier models: from its invocation params, else from the decision
    (``routing["tier_models"]``, ``{tier: model}``, which batch runs need)."""
    if run is not None and run.router_models:
        return run.router_models
    tier_models = (routing or {}).get("tier_models")
    if _is_map(tier_models):
        names = tuple(m for m in tier_models.values() if isinstance(m, str) and m)
        return names or None
    return None


def _tier(routing: Mapping[str, Any] | None) -> str | None:
    tier = (routing or {}).get("tier")
    return tier if isinstance(tier, str) else None


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
]
