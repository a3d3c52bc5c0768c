"""Framework-free cost accounting shared by the LangChain and LlamaIndex cost handlers.

Example:
    >>> from costopt_core import set_price
    >>> from costopt_core.accounting import CostAccountant
    >>> from costopt_core.ledger import TokenUsage
    >>> _ = set_price("doc-small", input_per_token=1e-6, output_per_token=2e-6)
    >>> _ = set_price("doc-large", input_per_token=1e-5, output_per_token=3e-5)
    >>> acct = CostAccountant()
    >>> rec = acct.record_call("doc-small", TokenUsage(1000, 500), tier="simple",
    ...                        router_models=["doc-small", "doc-large"])
    >>> round(rec.cost_usd, 6), rec.baseline_model, round(rec.saved_usd, 6)
    (0.002, 'doc-large', 0.023)
    >>> hit = acct.record_cache_hit("doc-small", TokenUsage(1000, 500))
    >>> round(acct.total_cost, 6), round(acct.total_saved, 6)
    (0.002, 0.025)

A face (``CostCallbackHandler``, ``CostEventHandler``) turns its framework's events into
three calls: ``before_call()`` (budget check and reservation, before the provider is
called), then ``record_call`` / ``record_cache_hit`` / ``record_attempt`` with the model
name and a ``TokenUsage`` (``costopt_core.usage.usage_from_mapping`` reads the usual
provider formats). A face shows the figures (``total_cost``, ``report()``, ``to_json()``,
budgets...) by inheriting ``costopt_core.cost_handler.AccountantViews``, which reads the
face's ``accountant`` attribute. What the accountant learns and logs of models it cannot
price is in ``costopt_core.unquoted_models`` and ``costopt_core.model_warnings``.
The per-call methods run on every LLM call, so they are kept to a few dict operations, one
price lookup and one ledger append under a lock (see benchmarks/handler_overhead.py).

Rules, in one place so both faces agree:

* Price: ``costopt_core.pricing`` (a dict hit after the first lookup per model). A model
  no source prices is recorded with ``cost_usd=None`` ("unpriced", tokens still
  counted) and a warning is logged once per model per process: never a silent $0.
* No usage from the provider (a stream without usage, a proxy that strips it): the face
  passes the call's text (``CallText``) and its tokens are counted from it with the
  model family's tokenizer when installed, else estimated (``costopt_core.tokens``).
  The record is priced as usual (its output at most the call's ``max_tokens``) and
  tagged ``{"usage": "estimated", "token_counter": ...}``; ``to_dict()`` counts such
  calls in ``estimated_calls``. Without the text the cost is unknown ("unpriced"),
  never $0.
* Savings, two levers, each event counted under one of them and never both:

  - routing, for a routed call actually made (one with a ``tier``): what the same usage
    would have cost on the baseline model minus what it cost. The baseline is the
    ``baseline_model`` the user names; else the most expensive of the router's tier
    models for this usage, when the face knows them; else the most expensive model
    this accountant has seen. Unrouted calls carry no baseline and save nothing.
    Rejected cascade attempts are spend, and negative routing savings (a baseline call
    would not have made them).
  - cache, for a hit: no spend (``cost_usd=0``); saved = what the avoided call would
    have cost on the model that would have answered (the one whose answer is cached,
    with the usage it reported). The cache prices that once and hands the figure over
    (``saved_hint_usd``), so ``cache.stats["saved_usd"]``, the tracker and the report
    show the same number; a hit without the cache's figure (another cache) is priced
    here from its usage, by the same rule. A routed hit saves only this: the router
    made no call, so there is no routing saving to add.
* Budgets (``Budget``: total, per day, per month) are checked before the call with the
  ledger's atomic ``reserve``, reserving the most the call can cost (its quote: prompt
  plus output cap, priced; ``call_estimate_usd`` when given; the largest of the last 32
  calls for a call with no quote), so a call that would not fit is refused before it
  is made, and concurrent callers on a shared ledger cannot all slip under the limit
  together. A model with no price is quoted on the priced model that answered a call
  of that name before; until one has, on its prompt and output cap at the dearest
  prices any priced model has (a bound no such call can pass), and only when that does
  not fit, one call of it at a time holds what is left of the budget (other calls'
  refusals then name it); a model whose answers have no price either is refused. A
  router's call is held to the model of the tier it is routed to. ``on_budget``
  decides what a refusal does: ``"raise"`` raises ``BudgetExceededError``, ``"warn"``
  warns once per crossing and lets the call go, ``"downgrade"`` sets ``downgrade`` (a
  router then answers with its cheapest tier; checked again in a new day or month).
  A ledger that cannot check a budget (locked, busy, down) refuses the call too
  (``on_ledger_error="refuse"``, the default; ``"allow"`` lets it go unbudgeted), while
  recording spend after a call never fails it: the SQL ledgers keep a record they could
  not write and count it until it is written.
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
import warnings
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from os import PathLike
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Literal
from uuid import UUID

from costopt_core.budget_gate import CallQuote, max_call_cost
from costopt_core.cost_report import (
    UNPRICED,
    RecordBreakdown,
    format_report,
    records_csv,
    report_csv,
    report_dict,
)
from costopt_core.exports import lazy_exports
from costopt_core.fault_log import FaultLog
from costopt_core.follow_ups import FollowUpHolds
from costopt_core.ledger import (
    Budget,
    BudgetCheck,
    BudgetExceededError,
    CostLedger,
    CostRecord,
    DeferredRecordLedger,
    DroppingLedger,
    LedgerProtocol,
    LedgerSummary,
    QuickReserveLedger,
    RecordKind,
    TokenUsage,
    admits,
    period_start,
)
from costopt_core.levers import (
    BATCH,
    COMPRESSION,
    PROVIDER_CACHE,
    SavingTags,
)
from costopt_core.local_models import is_local
from costopt_core.metadata_keys import BATCH_TAG, TOKEN_COUNTER_TAG, USAGE_ESTIMATED, USAGE_TAG
from costopt_core.model_warnings import calls_of, warn_unmetered, warn_unpriced, warn_unquoted
from costopt_core.pricing import (
    ModelPrice,
    PriceCatalog,
    check_amount,
    default_catalog,
)
from costopt_core.unquoted_models import UnquotedModels, dearest_listed_prices, holding_rest_note
from costopt_core.usage import (
    CallText,
    UsageCounts,
    capped_output,
    price_usage,
    usage_counts,
    usage_from_mapping,
)

if TYPE_CHECKING:
    from costopt_core.cost_handler import (
        HANDLER_ARGUMENTS,
        AccountantViews,
        CostHandlerBase,
        refuse_handler_arguments,
    )

logger = logging.getLogger(__name__)

OnBudget = Literal["raise", "warn", "downgrade"]
ON_BUDGET: tuple[str, ...] = ("raise", "warn", "downgrade")
OnLedgerError = Literal["refuse", "allow"]
ON_LEDGER_ERROR: tuple[str, ...] = ("refuse", "allow")
_RECENT_CALLS = 32
# The tag marks an estimated record in every ledger; a ledger whose records also carry
# an ``estimated`` field (and count it in its totals) gets that set too.
_RECORD_ESTIMATED = "estimated" in CostRecord.__dataclass_fields__
_BATCH_TAGS: Mapping[str, str] = MappingProxyType({BATCH_TAG: "1"})


class BudgetWarning(UserWarning):
    """Emitted (once per crossing) when ``on_budget="warn"`` and a budget is spent."""


def _run_text(run_id: object) -> str | None:
    # A record's run id: text (a run id may come as an object, e.g. a UUID).
    return run_id if run_id is None or type(run_id) is str else str(run_id)


def _uuid_text(value: int) -> str:
    # str(UUID(int=value)), without building the UUID (a third of a record's building).
    digits = f"{value:032x}"
    return f"{digits[:8]}-{digits[8:12]}-{digits[12:16]}-{digits[16:20]}-{digits[20:]}"


def _uncached_cost(
    price: ModelPrice, input_tokens: int, output_tokens: int, reasoning: int
) -> float:
    # A call's cost with no provider cache: the baseline its cache saving is measured on.
    return price.cost(input_tokens, output_tokens, 0, 0, reasoning)


#: Output caps of reserved calls kept until their answer (runs that never end past this).
_CAPS_KEPT = 4096
_PRICED = object()  # _quote_costs: every quote is priced
_ESTIMATE = object()  # _admit_unquoted: reserve the estimate (call_estimate_usd)
_REQUOTE = object()  # _admit_unquoted: a price was learned, quote the call again


def _output_cap(quotes: Sequence[CallQuote]) -> int | None:
    # The most output any of the call's models may write (a fallback tier may answer):
    # None when one of them sets no limit.
    caps = [quote.max_output_tokens for quote in quotes]
    return None if None in caps else max(caps)  # type: ignore[type-var]


# -- the accountant -------------------------------------------------------------------------


def unchecked_budget_error(exc: BaseException) -> BudgetExceededError:
    """The refusal of a call whose budget the ledger could not check (``exc``, its error
    kept as ``ledger_error``), naming the way to let such calls go ahead.

    Example:
        >>> error = unchecked_budget_error(TimeoutError("database is locked"))
        >>> print(error)  # doctest: +NORMALIZE_WHITESPACE
        cost budget not checked: the cost ledger failed (TimeoutError: database is locked);
        the call was not made. To let calls go ahead unbudgeted while the ledger fails,
        pass on_ledger_error='allow' (or on_budget='warn') to the cost handler
        >>> error.budget is None, type(error.ledger_error).__name__
        (True, 'TimeoutError')
    """
    reason = str(exc).strip() or "no message"
    return BudgetExceededError(
        f"cost budget not checked: the cost ledger failed ({type(exc).__name__}: {reason}); "
        "the call was not made. To let calls go ahead unbudgeted while the ledger fails, "
        "pass on_ledger_error='allow' (or on_budget='warn') to the cost handler",
        ledger_error=exc,
    )


#: Seconds a reservation holds when its call never ends (the ledgers' own default).
DEFAULT_RESERVATION_TTL = 300.0


def _opt_limit(name: str, value: float | None) -> float | None:
    return None if value is None else check_amount(name, value)


def build_budgets(
    budget_usd: float | None = None,
    daily_budget_usd: float | None = None,
    monthly_budget_usd: float | None = None,
    budgets: Iterable[Budget] = (),
) -> tuple[Budget, ...]:
    """The budgets a handler enforces, validated (clear ``ValueError`` on bad limits)."""
    out: list[Budget] = []
    for name, limit, period in (
        ("budget_usd", budget_usd, None),
        ("daily_budget_usd", daily_budget_usd, "day"),
        ("monthly_budget_usd", monthly_budget_usd, "month"),
    ):
        checked = _opt_limit(name, limit)
        if checked is not None:
            out.append(Budget(checked, period))  # type: ignore[arg-type]
    if isinstance(budgets, Budget) or not isinstance(budgets, Iterable):
        raise TypeError(f"budgets must be a list of Budget objects, got {type(budgets).__name__}")
    for budget in budgets:
        if not isinstance(budget, Budget):
            raise TypeError(f"budgets must hold Budget objects, got {type(budget).__name__}")
        out.append(budget)
    return tuple(out)


def _batch_billed(price: ModelPrice, cost: float) -> float:
    """What the provider's batch API bills for a call that costs ``cost`` directly."""
    return cost * (1.0 - price.batch_discount)


class CostAccountant:
    """Prices usage, attributes savings, enforces budgets, and reports; framework-free.

    Args:
        baseline_model: the model routed calls are compared against (see module doc).
        budget_usd / daily_budget_usd / monthly_budget_usd: limits in USD for the
            ledger's lifetime, the current UTC day, the current UTC month.
        budgets: further ``Budget`` objects.
        on_budget: ``"raise"`` | ``"warn"`` | ``"downgrade"``.
        ledger: where records go; default a fresh in-memory ``CostLedger``. Pass a
            shared ledger (e.g. ``PostgresLedger``) and totals and budgets are its own.
        catalog: price source; default the process-wide catalog (``set_price``).
        tags: added to every record.
        call_estimate_usd: the amount reserved against the budgets for each call
            before it is made. Default: the largest of the last 32 calls. ``0`` admits
            calls while anything is left (the last one may pass the limit).
        reservation_ttl_seconds: how long a call's reservation holds if the call never
            ends (a killed process): long enough for the slowest call (a call that
            outlives it no longer holds its share of the budget), short enough that a
            crashed worker does not block a shared budget for long. Default 300.
        on_ledger_error: ``"refuse"`` (default) | ``"allow"``: what a budgeted call does
            when the ledger cannot check its budget (see :meth:`admit`).
    """

    def __init__(
        self,
        *,
        baseline_model: str | None = None,
        budget_usd: float | None = None,
        daily_budget_usd: float | None = None,
        monthly_budget_usd: float | None = None,
        budgets: Iterable[Budget] = (),
        on_budget: OnBudget = "raise",
        ledger: LedgerProtocol | None = None,
        catalog: PriceCatalog | None = None,
        tags: Mapping[str, str] | None = None,
        call_estimate_usd: float | None = None,
        reservation_ttl_seconds: float = DEFAULT_RESERVATION_TTL,
        on_ledger_error: OnLedgerError = "refuse",
    ) -> None:
        if baseline_model is not None and (
            not isinstance(baseline_model, str) or not baseline_model.strip()
        ):
            raise ValueError(f"baseline_model must be None or a model name, got {baseline_model!r}")
        if on_budget not in ON_BUDGET:
            raise ValueError(f"on_budget must be one of {ON_BUDGET}, got {on_budget!r}")
        if on_ledger_error not in ON_LEDGER_ERROR:
            raise ValueError(
                f"on_ledger_error must be one of {ON_LEDGER_ERROR}, got {on_ledger_error!r}"
            )
        if catalog is not None and not isinstance(catalog, PriceCatalog):
            raise TypeError(
                f"catalog must be a PriceCatalog (e.g. costopt_core.pricing.default_catalog), "
                f"got {type(catalog).__name__}"
            )
        if tags is not None and not (
            isinstance(tags, Mapping) and all(isinstance(x, str) for kv in tags.items() for x in kv)
        ):
            raise TypeError(f"tags must be a mapping of str to str, got {tags!r}")
        if ledger is not None and not isinstance(ledger, LedgerProtocol):
            raise TypeError(
                "ledger must implement record/reserve/release/spent_since/summary/records "
                f"(e.g. CostLedger, PostgresLedger), got {type(ledger).__name__}"
            )
        self.baseline_model = baseline_model
        self.budgets = build_budgets(budget_usd, daily_budget_usd, monthly_budget_usd, budgets)
        self.on_budget: OnBudget = on_budget
        self.on_ledger_error: OnLedgerError = on_ledger_error
        self.ledger: LedgerProtocol = ledger if ledger is not None else CostLedger()
        # A ledger that builds records when read takes plain calls' spend alone on the
        # call path (see record_call_later); the others get each record built at once.
        self._defer = (
            self.ledger.record_deferred if isinstance(self.ledger, DeferredRecordLedger) else None
        )
        self._build_later = self._later_record  # one bound method, not one per call
        # A ledger that reserves without building a BudgetCheck does so for the usual
        # call (see admit_call).
        self._reserve_id = (
            self.ledger.reserve_id if isinstance(self.ledger, QuickReserveLedger) else None
        )
        self.catalog = catalog if catalog is not None else default_catalog
        if baseline_model is not None and self.catalog.get(baseline_model) is None:
            # Said now, not at the first routed call: routing savings would read $0.
            warn_unpriced(baseline_model)
        self.tags = dict(tags or {})
        self._lock = threading.Lock()
        self._seen: dict[str, None] = {}  # priced models seen, insertion-ordered
        self._recent_costs: deque[float] = deque(maxlen=_RECENT_CALLS)
        self._seed_estimate: float | None = None
        self.call_estimate_usd = _opt_limit("call_estimate_usd", call_estimate_usd)
        if (
            isinstance(reservation_ttl_seconds, bool)
            or not isinstance(reservation_ttl_seconds, int | float)
            or not 0 < reservation_ttl_seconds < math.inf
        ):
            raise ValueError(
                "reservation_ttl_seconds must be a number of seconds > 0, got "
                f"{reservation_ttl_seconds!r}"
            )
        self.reservation_ttl_seconds = float(reservation_ttl_seconds)
        # The recent costs only feed the reservation estimate of budgeted calls.
        self._tracks_recent = bool(self.budgets)
        self._downgrade = False
        # The budgets' period starts when the flag was set: a new UTC day or month
        # clears it (see the downgrade property); only period budgets ever roll over.
        self._downgraded_in: tuple[float | None, ...] = ()
        self._periodic = any(budget.period is not None for budget in self.budgets)
        self._warned_budget = False
        self._refused_at = math.inf  # the cheapest maximum refused since the last reset
        self._unquoted = UnquotedModels()
        # Room kept for agents' next calls while their tools run (see follow_ups).
        self.follow_ups = FollowUpHolds(self)
        # The dearest prices a model may have, for an unpriced model's calls (see
        # _upper_bound): worked out when first needed, again once a new model is priced.
        self._dearest: ModelPrice | None = None
        # The max_tokens of each reserved call that set one, until its answer: a call
        # whose usage is counted from its text is booked at most that much output (the
        # approximate counter reads ~1.3x a capped Chinese answer: 134 tokens of 100).
        self._caps: dict[str, int] = {}
        # Its calls awaiting their answer: read (an empty dict) on every call's record.
        self._unquoted_pending = self._unquoted.pending
        # A ledger that is down fails every call alike: in full once, then at DEBUG.
        # Outside a budget check the call goes ahead (a cost-handler fault never fails
        # the user's call); a budget check that fails refuses it (see _unchecked).
        self._faults = FaultLog(logger, "cost ledger", "; the call goes ahead")
        self._refusals = FaultLog(logger, "cost ledger", "; the call is refused")

    # -- pricing -----------------------------------------------------------------------

    def price_of(self, model: str | None) -> ModelPrice | None:
        return self.catalog.get(model)

    def price(self, model: str, usage: TokenUsage) -> float | None:
        """Cost of ``usage`` on ``model``, or ``None`` (and a one-time warning) if unpriced."""
        price = self.catalog.get(model)
        if price is None:
            warn_unpriced(model)
            return None
        return price_usage(price, usage)

    def _baseline(
        self, model: str, usage: TokenUsage, router_models: Sequence[str] | None
    ) -> tuple[str | None, float | None]:
        if self.baseline_model is not None:
            return self.baseline_model, self.price(self.baseline_model, usage)
        if router_models:
            candidates: Iterable[str] = router_models
        else:
            with self._lock:
                candidates = [*self._seen, model]
        best: tuple[str | None, float | None] = (None, None)
        for name in candidates:
            price = self.catalog.get(name)
            if price is None:
                continue
            cost = price_usage(price, usage)
            if best[1] is None or cost > best[1]:
                best = (name, cost)
        return best

    # -- budgets -----------------------------------------------------------------------

    @property
    def downgrade(self) -> bool:
        """True while a budget is spent and ``on_budget="downgrade"`` (checked again
        once a day or month budget's period has rolled over since it was set)."""
        if self._downgrade and self._periodic and self._periods() != self._downgraded_in:
            self._new_period()
        return self._downgrade

    def _periods(self) -> tuple[float | None, ...]:
        now = time.time()
        return tuple(budget.start(now) for budget in self.budgets)

    def _set_downgrade(self) -> None:
        self._downgraded_in = self._periods()
        self._downgrade = True

    def _new_period(self) -> None:
        # A spent day's flag held on a fresh day: a router's batch, or an agent's first
        # turn, read it before any call could clear it, and went to the cheapest tier
        # with the new day's budget untouched. A new period starts every check afresh.
        self._downgrade = False
        self._warned_budget = False
        self._refused_at = math.inf
        self._update_downgrade()

    def _estimate(self, first_call: Callable[[], float] | None = None) -> float:
        # The reservation for the next call is the largest of the last few calls: when
        # calls look alike it bounds the next one, so neither a lone caller nor several
        # concurrent callers pass a limit. Before this accountant has seen a call, a
        # shared ledger's mean cost per call stands in, else the face's estimate of this
        # very call (``first_call``, e.g. from its prompt and the model's price).
        if self.call_estimate_usd is not None:
            return self.call_estimate_usd
        with self._lock:
            if self._recent_costs:
                return max(self._recent_costs)
            seeded = self._seed_estimate
        if seeded is None:
            seeded = 0.0
            try:
                summary = self.ledger.summary()
                calls = sum(m.calls + m.cascade_attempts for m in summary.models.values())
                seeded = summary.total_cost / calls if calls else 0.0
            except Exception as exc:
                self._faults.report("reading the ledger's mean call cost", exc)
            with self._lock:
                self._seed_estimate = seeded
        if not seeded and first_call is not None:
            try:
                return max(0.0, float(first_call()))
            except Exception:
                logger.exception("estimating the first call's cost failed")
        return seeded

    def before_call(self, first_call: Callable[[], float] | None = None) -> str | None:
        """:meth:`admit` for a call with no quote: its reservation id (or ``None``)."""
        return self.admit(first_call=first_call)[0]

    def _quote_costs(self, quotes: Sequence[CallQuote]) -> tuple[list[float], object]:
        # Each quote's maximum, on its model's price or on the priced model that answered
        # a call of that name before; and the name of the call's own model (the routed
        # tier's, the last quote) when it has neither, for _admit_unquoted. Any other
        # unpriced quote (a router's cheapest tier, for a downgrade) is left out: a call
        # routed to a priced tier is quoted on the priced tiers, as any other.
        costs = []
        last = len(quotes) - 1
        for i, quote in enumerate(quotes):
            cost = quote.max_cost(self.catalog)
            if cost is None:
                cost = self._stand_in_cost(quote)
            if cost is not None:
                costs.append(cost)
            elif i == last:
                return costs, quote.model
        return costs, _PRICED

    def _stand_in_cost(self, quote: CallQuote) -> float | None:
        answerer = self._unquoted.answered_by.get(quote.model)
        price = self.catalog.get(answerer) if answerer is not None else None
        if price is None:
            return None
        return max_call_cost(price, quote.prompt_tokens, quote.max_output_tokens)

    def _upper_bound(self, quote: CallQuote) -> float:
        # A model priced like any model the catalog knows cannot cost more than its
        # prompt and output cap at the dearest prices any of them has.
        dearest = self._dearest
        if dearest is None:
            dearest = self._dearest = self._dearest_price()
        return max_call_cost(dearest, quote.prompt_tokens, quote.max_output_tokens)

    def _dearest_price(self) -> ModelPrice:
        # The shipped sources' dearest, and that of every model this accountant has
        # priced (a user's set_price among them); worked out again only once it has
        # priced a model it had not (see _spent), never per call.
        dear_in, dear_out = dearest_listed_prices()
        with self._lock:
            seen = list(self._seen)
        for name in seen:
            price = self.catalog.get(name)
            if price is not None:
                dear_in = max(dear_in, price.input, price.cache_read or 0.0)
                dear_in = max(dear_in, price.cache_write or 0.0)
                dear_out = max(dear_out, price.output, price.reasoning or 0.0)
        return ModelPrice(input=dear_in, output=dear_out, source="dearest known")

    def admit(
        self,
        quotes: Sequence[CallQuote] = (),
        *,
        routed: bool = False,
        first_call: Callable[[], float] | None = None,
    ) -> tuple[str | None, bool]:
        """Check the budgets before a call and reserve the most it can cost.

        ``quotes`` are the models the call may use, cheapest first: the dearest one's
        maximum is reserved (without quotes, the estimate of :meth:`_estimate`;
        ``first_call`` estimates a first call with no history). A model with no price
        is quoted on the priced model that answered a call of that name before (an
        Azure deployment or a proxy alias answering as a priced model); until one has,
        at the dearest prices the catalog knows (what is left of the budget when that
        does not fit), and a model whose answers have no price either is refused (see
        :meth:`_admit_unquoted`). A router's call (its quotes the cheapest tier's and
        the routed tier's, last) is held to its routed tier's model: an unpriced
        cheapest tier does not stop a call routed to a priced one.
        Returns the reservation id (or ``None``) and whether the call was admitted only
        on its cheapest quote.

        When the maximum does not fit: ``on_budget="raise"`` raises
        ``BudgetExceededError``; ``"warn"`` warns and lets the call go; ``"downgrade"``
        admits a ``routed`` call on its cheapest quote if that fits, and otherwise raises
        as well, so spend never passes a budget. A ledger that cannot answer (locked,
        busy, unreachable) admits nothing: the call is refused with a
        ``BudgetExceededError`` naming the ledger's error (``ledger_error``), unless
        ``on_ledger_error="allow"`` or ``on_budget="warn"``, which log the fault and
        let the call go unbudgeted.
        """
        if not self.budgets:
            return None, False
        costs, unquoted = self._quote_costs(quotes)
        while unquoted is not _PRICED:
            held = self._admit_unquoted(unquoted, quotes, costs)  # type: ignore[arg-type]
            if held is _ESTIMATE:
                break
            if held is not _REQUOTE:
                return held, False  # type: ignore[return-value]
            costs, unquoted = self._quote_costs(quotes)  # a name learned: each one once
        try:
            if self.call_estimate_usd is not None or not costs:
                estimate = self._estimate(first_call)
            else:
                estimate = max(costs)
            check = self.ledger.reserve(
                estimate, self.budgets, ttl_seconds=self.reservation_ttl_seconds
            )
        except Exception as exc:
            self._unchecked(exc)
            return None, False
        admitted = self._admitted(check, estimate, costs, routed)
        if admitted[0] is not None and quotes:
            self._note_cap(admitted[0], _output_cap(quotes))
        return admitted

    def _admit_unquoted(
        self, name: str | None, quotes: Sequence[CallQuote], costs: list[float]
    ) -> object:
        """Admit a call of ``name`` (its last quote), a model with no price and none
        learned for it (``costs``: its other quotes' maximums): its reservation id
        (``None``: admitted unbudgeted); ``_ESTIMATE`` when the user's
        ``call_estimate_usd`` is to be reserved instead; ``_REQUOTE`` when its answers'
        model has a price now (the call is quoted on it).

        Reserving $0 (nothing to price it on, no history) let 100 first calls at once
        spend 10x the budget; holding what is left of the budget for each refused every
        other call, priced ones too, while it ran. So each reserves a true bound (see
        :meth:`_upper_bound`), and only a call whose bound does not fit holds what is
        left, one at a time, until its answer names a priced model; an answer with no
        price either means its spend can never be counted, and later calls are refused."""
        answer = self._unquoted.uncountable.get(name)
        if answer is not None:
            if self.catalog.get(answer) is None:
                return self._refuse_uncountable(name, answer)
            self._unquoted.answered(name, answer, self.catalog)  # priced since
            return _REQUOTE
        if self.call_estimate_usd is not None:
            return _ESTIMATE
        warn_unquoted(name)
        bound = max([*costs, self._upper_bound(quotes[-1])])
        try:
            check, holds_rest = self._reserve_bound(bound)
        except Exception as exc:
            self._unchecked(exc)
            return None
        rest_until = time.time() + self.reservation_ttl_seconds if holds_rest else None
        if check.allowed:
            if check.reservation_id is not None:
                others = tuple(quote.model for quote in quotes[:-1])
                self._unquoted.hold(check.reservation_id, name, others, rest_until)
                self._note_cap(check.reservation_id, _output_cap(quotes))
            return check.reservation_id
        check.estimate_usd = bound
        return self._refuse_unquoted(name, check)

    def _reserve_bound(self, bound: float) -> tuple[BudgetCheck, bool]:
        # ``bound`` reserved, else what is left when that does not fit (and whether it
        # was). A bound past the tightest limit never fits: no doomed try first.
        tightest = min(budget.limit_usd for budget in self.budgets)
        if bound < tightest:
            check = self.ledger.reserve(
                bound, self.budgets, ttl_seconds=self.reservation_ttl_seconds
            )
            budget = check.budget
            if check.allowed or budget is None or check.used_usd >= budget.limit_usd:
                return check, False
            tightest = budget.limit_usd - check.used_usd
        return self._reserve_what_is_left(tightest), True

    def _reserve_what_is_left(self, left: float) -> BudgetCheck:
        # What is left of the tightest budget, reservations of calls in flight included:
        # each refusal names the budget and what it has used, so the estimate shrinks to
        # fit it (one more try per budget at most).
        estimate = left
        for _ in range(len(self.budgets) + 1):
            check = self.ledger.reserve(
                estimate, self.budgets, ttl_seconds=self.reservation_ttl_seconds
            )
            budget = check.budget
            if check.allowed or budget is None or check.used_usd >= budget.limit_usd:
                return check
            estimate = min(estimate, budget.limit_usd - check.used_usd)
        return check

    def _refuse_unquoted(self, name: str | None, check: BudgetCheck) -> None:
        held = self._holding_note()
        message = check.describe() + held
        if not held:  # no unpriced call in flight to name: what this one would reserve
            message += (
                f"; {calls_of(name)}, which has no known price, each "
                f"reserve ${check.estimate_usd or 0.0:.6f} (their prompt and output cap at the "
                "dearest prices of any priced model) until one answers with a priced "
                f"model. Register a price with set_price({name or '<model name>'!r}, "
                "input_per_token=..., output_per_token=...)"
            )
        if self.on_budget == "warn":
            self._warn_budget(message)
            return None
        raise BudgetExceededError(
            f"{message}; the call was not made", budget=check.budget, spent_usd=check.used_usd
        )

    def _holding_note(self) -> str:
        # Why a budget with little spent refuses: an unpriced call in flight holds the rest.
        holding = self._unquoted.holding_rest() if self._unquoted.rest else ()
        return holding_rest_note(holding) if holding else ""

    def _describe(self, check: BudgetCheck) -> str:
        return check.describe() + self._holding_note()

    def _refusal(self, check: BudgetCheck) -> BudgetExceededError:
        if not self._unquoted.rest:
            return check.error()
        return BudgetExceededError(
            f"{self._describe(check)}; the call was not made",
            budget=check.budget,
            spent_usd=check.used_usd,
        )

    def _refuse_uncountable(self, name: str | None, answer: str) -> None:
        message = (
            f"cost budget: {calls_of(name)} are answered by {answer!r}, a model with no "
            "known price, so the budget cannot count what they spend. "
            f"Register a price with set_price({answer!r}, input_per_token=..., "
            "output_per_token=...)"
        )
        if self.on_budget == "warn":
            self._warn_budget(message)
            return None
        raise BudgetExceededError(f"{message}; the call was not made")

    def _warn_budget(self, message: str, stacklevel: int = 6) -> None:
        # on_budget="warn": once per crossing, in the log and as a BudgetWarning.
        if not self._warned_budget:
            self._warned_budget = True
            logger.warning("%s (on_budget='warn': the call goes ahead)", message)
            warnings.warn(
                f"{message}; on_budget='warn': the call goes ahead",
                BudgetWarning,
                stacklevel=stacklevel,
            )

    def admit_call(
        self, model: str | None, prompt_tokens: int, max_output_tokens: int | None = None
    ) -> str | None:
        """:meth:`admit` for one call that is not routed (the usual one): the most it can
        cost on ``model`` reserved (``CallQuote(model, prompt_tokens, max_output_tokens)``),
        its reservation id returned. The same rule, without building quotes."""
        if not self.budgets:
            return None
        price = self.catalog.get(model) if self.call_estimate_usd is None else None
        if price is None:  # the estimate stands in: admit's own path
            return self.admit((CallQuote(model, prompt_tokens, max_output_tokens),))[0]
        estimate = max_call_cost(price, prompt_tokens, max_output_tokens)
        quick = self._reserve_id
        try:
            if quick is None:
                check = self.ledger.reserve(
                    estimate, self.budgets, ttl_seconds=self.reservation_ttl_seconds
                )
            else:
                held = quick(estimate, self.budgets, self.reservation_ttl_seconds)
                if type(held) is str and estimate < self._refused_at:
                    if max_output_tokens is not None:  # _note_cap's usual case, inline
                        caps = self._caps
                        if type(max_output_tokens) is int and len(caps) < _CAPS_KEPT:
                            caps[held] = max_output_tokens
                        else:
                            self._note_cap(held, max_output_tokens)
                    return held  # the usual case: nothing refused lately
                check = BudgetCheck.of(held)
        except Exception as exc:
            self._unchecked(exc)
            return None
        if check.allowed and estimate < self._refused_at:
            reservation = check.reservation_id
        else:
            reservation = self._admitted(check, estimate, [estimate], False)[0]
        if max_output_tokens is not None and reservation is not None:
            self._note_cap(reservation, max_output_tokens)
        return reservation

    def _note_cap(self, reservation_id: str, cap: int | None) -> None:
        caps = self._caps
        if cap is None or type(cap) is not int or cap <= 0:
            return
        if len(caps) >= _CAPS_KEPT:  # runs that never ended: their caps go first
            for key in list(caps)[: _CAPS_KEPT // 2]:
                caps.pop(key, None)
        caps[reservation_id] = cap

    def _take_cap(self, reservation_id: str | None) -> int | None:
        return self._caps.pop(reservation_id, None) if reservation_id is not None else None

    def _admitted(
        self, check: BudgetCheck, estimate: float, costs: list[float], routed: bool
    ) -> tuple[str | None, bool]:
        # What the ledger's answer means for the call (see admit).
        if check.allowed:
            if estimate >= self._refused_at:
                # A call as dear as the last one refused fits again (e.g. a new day).
                self._downgrade = False
                self._warned_budget = False
                self._refused_at = math.inf
            return check.reservation_id, False
        self._refused_at = min(self._refused_at, estimate)
        check.estimate_usd = estimate
        if self.on_budget == "raise":
            raise self._refusal(check)
        message = self._describe(check)
        if self.on_budget == "warn":
            self._warn_budget(message, stacklevel=5)
            return None, False
        downgrades = routed and len(costs) > 1 and costs[0] < estimate
        if not self.downgrade and downgrades:
            logger.warning("%s (on_budget='downgrade': routing to the cheapest tier)", message)
        self._set_downgrade()
        if not downgrades:  # not routed, or already on its cheapest tier: refused
            raise self._refusal(check)
        try:
            cheap = self.ledger.reserve(
                costs[0], self.budgets, ttl_seconds=self.reservation_ttl_seconds
            )
        except Exception as exc:
            self._unchecked(exc)
            return None, True
        if not cheap.allowed:
            cheap.estimate_usd = costs[0]
            raise self._refusal(cheap)
        return cheap.reservation_id, True

    def _unchecked(self, exc: Exception) -> None:
        # The ledger could not check a budget (a SQLite write lock held past its timeout,
        # a PostgreSQL pool with no free connection, a server down): letting the call go
        # would let every concurrent call through unbudgeted (up to 34x the budget in an
        # audit), so it is refused unless the user chose otherwise.
        if self.on_ledger_error == "allow" or self.on_budget == "warn":
            self._faults.report("budget check", exc)
            return
        self._refusals.report("budget check", exc)
        raise unchecked_budget_error(exc) from exc

    def cancel(self, reservation_id: str | None) -> None:
        """Drop the reservation of a call that failed before spending."""
        if reservation_id is None:
            return
        if self._unquoted_pending:
            self._unquoted.drop(reservation_id)
        if self._caps:
            self._caps.pop(reservation_id, None)
        try:
            self.ledger.release(reservation_id)
        except Exception as exc:
            self._faults.report("releasing a budget reservation", exc)

    # -- recording ---------------------------------------------------------------------

    def _record(
        self,
        model: str,
        kind: RecordKind,
        tier: str | None,
        usage: TokenUsage,
        cost: float | None,
        saved: float | None,
        tags: Mapping[str, str] | None,
        run_id: object,
        baseline_model: str | None = None,
        baseline_cost: float | None = None,
        timestamp: float | None = None,
        saving_parts: Mapping[str, float] | None = None,
    ) -> CostRecord:
        record_tags: Mapping[str, str] = {**self.tags, **tags} if tags else self.tags
        if saving_parts:
            record_tags = SavingTags(record_tags, saving_parts)
        # Positional: a record is built on every call, and keywords cost ~40% more.
        record = CostRecord(
            model,
            kind,
            tier,
            usage.input_tokens,
            usage.output_tokens,
            usage.cache_read_tokens,
            usage.cache_write_tokens,
            usage.reasoning_tokens,
            cost,
            saved,
            baseline_model,
            baseline_cost,
            record_tags,
            timestamp,
            _run_text(run_id),  # made text here, once built
        )
        if tags and _RECORD_ESTIMATED and tags.get(USAGE_TAG) == USAGE_ESTIMATED:
            record.estimated = True  # type: ignore[attr-defined]
        return record

    def _store(
        self,
        record: CostRecord,
        reservation_id: str | None,
        router_models: Sequence[str] | None = None,
    ) -> CostRecord:
        if self._unquoted_pending:  # an empty dict: one test on the usual call
            self._unquoted.settled(
                reservation_id, record.model, self.catalog, record.tier, router_models
            )
        if self._caps and reservation_id is not None:
            self._caps.pop(reservation_id, None)
        self.ledger.record(record, reservation_id=reservation_id)
        cost = record.cost_usd
        if cost is not None and record.kind != "cache_hit":
            self._spent(record.model, cost)
        return record

    def _spent(self, model: str, cost: float) -> None:
        # What a priced call or attempt tells the accountant beyond the ledger.
        if model not in self._seen:  # a lock-free read: a dict lookup is atomic
            with self._lock:
                self._seen[model] = None
            self._dearest = None  # its price may be dearer: worked out again when needed
        if self._tracks_recent:
            # deque.append is atomic, and max() over a deque of floats runs in C
            # without releasing the GIL: the reader cannot see a half-done append.
            self._recent_costs.append(cost)
        if self.on_budget == "downgrade" and self.budgets and not self._downgrade:
            self._update_downgrade()

    def _update_downgrade(self) -> None:
        # Raised as soon as the spend crosses a budget, not only at the next call's
        # check: a router deciding a whole batch up front must already see it.
        try:
            estimate = self._estimate()
            spent = any(
                not admits(self.ledger.spent_since(period_start(b.period)), estimate, b)
                for b in self.budgets
            )
        except Exception as exc:
            self._faults.report("reading the budget spend", exc)
            return
        if spent:
            logger.warning("cost budget spent (on_budget='downgrade': cheapest tier from now)")
            self._set_downgrade()

    def record_call(
        self,
        model: str,
        usage: TokenUsage | None,
        *,
        tier: str | None = None,
        router_models: Sequence[str] | None = None,
        run_id: object = None,
        tags: Mapping[str, str] | None = None,
        reservation_id: str | None = None,
        timestamp: float | None = None,
        text: CallText | None = None,
        compressed_tokens: int = 0,
        batch: bool = False,
    ) -> CostRecord:
        """Record one model call. A ``tier`` marks it routed (baseline and savings).

        ``usage=None`` (the model reported no token usage): the call is costed from
        ``text`` and tagged estimated; without ``text`` its cost is unknown, reported as
        "unpriced" (never as $0). Either way a warning is logged once per model.
        ``compressed_tokens``: input tokens a prompt compressor removed before the call;
        ``batch``: the call went through the provider's batch API (billed at the batch
        rate). Their savings, and the provider cache's, are split as
        :mod:`costopt_core.levers` says.
        """
        if usage is None:
            cap = self._take_cap(reservation_id) if self._caps else None
            usage, tags = self._usage_from_text(model, text, tags, cap)
        # The price is read once per call: every figure of the record is on it.
        record = self._call_record(
            model,
            self.catalog.get(model),
            usage,
            tier,
            router_models,
            run_id,
            tags,
            timestamp,
            compressed_tokens,
            batch,
        )
        return self._store(record, reservation_id, router_models)

    def record_call_later(
        self,
        model: str,
        usage: UsageCounts,
        *,
        run_id: object = None,
        reservation_id: str | None = None,
    ) -> None:
        """:meth:`record_call` for the usual call (not routed, its usage reported, no
        compressed prompt, no batch price), with ``usage`` as counts (see
        :func:`usage_counts`), when nobody needs its record now: on a ledger that builds
        records when read (``DeferredRecordLedger``, e.g. ``CostLedger``) the call path
        prices the call and counts its spend, and the same record ``record_call`` would
        build is built when the ledger is next read. Other ledgers get it now.
        """
        price = self.catalog.get(model)
        defer = self._defer
        if price is None or defer is None or self._unquoted_pending:
            self.record_call(
                model, TokenUsage(*usage), run_id=run_id, reservation_id=reservation_id
            )
            return
        # The call and its baseline uncached, as _lever_parts prices them (usage_counts
        # keeps cache and reasoning tokens within their totals, as bill needs).
        caps = self._caps
        if caps:  # its usage was reported: its cap is not needed
            caps.pop(reservation_id, None)  # type: ignore[arg-type]
        cost, direct = price.bill(usage)
        now = time.time()
        # The record is built later from the call's price and time. A UUID run id is
        # kept as its int (its text is made when the record is built).
        run_key = run_id.int if type(run_id) is UUID else _run_text(run_id)
        build = self._build_later
        if usage[2] or usage[3]:
            # The provider's prompt cache: the record's saving and baseline, for the
            # totals kept before it is built.
            saved = direct - cost
            defer(model, cost, now, usage, build, price, run_key, reservation_id, saved, direct)
        else:
            defer(model, cost, now, usage, build, price, run_key, reservation_id)
        self._spent(model, cost)

    def _later_record(
        self, model: str, timestamp: float, usage: UsageCounts, price: ModelPrice, run_key: object
    ) -> CostRecord:
        run_id = _uuid_text(run_key) if type(run_key) is int else run_key
        return self._call_record(
            model, price, TokenUsage(*usage), None, None, run_id, None, timestamp, 0, False
        )

    def _call_record(
        self,
        model: str,
        price: ModelPrice | None,
        usage: TokenUsage | None,
        tier: str | None,
        router_models: Sequence[str] | None,
        run_id: object,
        tags: Mapping[str, str] | None,
        timestamp: float | None,
        compressed_tokens: int,
        batch: bool,
    ) -> CostRecord:
        # The one rule of a call's record (record_call builds it now, record_call_later
        # when the ledger is read): its cost, lever parts, baseline and saving.
        cost: float | None = None
        if usage is None:
            usage = TokenUsage()
        elif price is None:
            warn_unpriced(model)
        else:
            cost = price_usage(price, usage)
        baseline_model: str | None = None
        baseline_cost: float | None = None
        saved: float | None = 0.0
        removed = 0
        levered = False
        parts: dict[str, float] | None = None
        if cost is not None and (
            batch or compressed_tokens or usage.cache_read_tokens or usage.cache_write_tokens
        ):
            removed, cost, direct, parts = self._lever_parts(
                price,  # type: ignore[arg-type]  # priced: cost is not None
                usage,
                cost,
                compressed_tokens,
                batch,
            )
            if batch:
                tags = {**tags, BATCH_TAG: "1"} if tags else _BATCH_TAGS
            levered = True
            if tier is None:
                baseline_model, baseline_cost, saved = model, direct, direct - cost
        if tier is not None:
            # The baseline is priced on the usage with no lever: the full prompt, uncached.
            baseline_usage = usage
            if levered and (removed or usage.cache_read_tokens or usage.cache_write_tokens):
                baseline_usage = TokenUsage(
                    usage.input_tokens + removed, usage.output_tokens, 0, 0, usage.reasoning_tokens
                )
            baseline_model, baseline_cost = self._baseline(model, baseline_usage, router_models)
            saved = None if cost is None or baseline_cost is None else baseline_cost - cost
        return self._record(
            model,
            "call",
            tier,
            usage,
            cost,
            saved,
            tags,
            run_id,
            baseline_model,
            baseline_cost,
            timestamp,
            parts,
        )

    def _lever_parts(
        self, price: ModelPrice, usage: TokenUsage, cost: float, compressed_tokens: int, batch: bool
    ) -> tuple[int, float, float, dict[str, float]]:
        # Off the plain path: only calls with provider cache tokens, a compressed prompt
        # or a batch price come here. Returns the input tokens a compressor removed, the
        # billed cost, the no-lever cost on this model (full prompt, uncached, direct),
        # and each tagged lever's part (stored as SavingTags: formatted when read).
        removed = compressed_tokens if type(compressed_tokens) is int else int(compressed_tokens)
        removed = removed if removed > 0 else 0
        inp, out, reasoning = usage.input_tokens, usage.output_tokens, usage.reasoning_tokens
        direct = _uncached_cost(price, inp + removed, out, reasoning)
        if not removed and not batch:  # the usual case: the provider's prompt cache only
            return 0, cost, direct, {PROVIDER_CACHE: direct - cost}
        compressed = price.cost(inp, out, 0, 0, reasoning) if removed else direct
        billed = _batch_billed(price, cost) if batch else cost
        parts = {
            COMPRESSION: direct - compressed,
            PROVIDER_CACHE: compressed - cost,
            BATCH: cost - billed,
        }
        return removed, billed, direct, parts

    def _usage_from_text(
        self,
        model: str,
        text: CallText | None,
        tags: Mapping[str, str] | None,
        cap: int | None = None,
    ) -> tuple[TokenUsage | None, Mapping[str, str] | None]:
        # Only calls without provider usage come here, so the tokenizer's cost is paid
        # only by them, never on the usual per-call path. ``cap``: the output limit the
        # call's reservation was made with (a count from text can read past it).
        warn_unmetered(model, text is not None)
        if text is None:
            return None, tags
        try:
            usage, counter = text.usage(model)
        except Exception:
            logger.exception("counting the tokens of a call without usage failed")
            return None, tags
        output = capped_output(usage.output_tokens, cap)
        if output != usage.output_tokens:
            usage = TokenUsage(usage.input_tokens, output)
        return usage, {**(tags or {}), USAGE_TAG: USAGE_ESTIMATED, TOKEN_COUNTER_TAG: counter}

    def record_attempt(
        self,
        model: str,
        usage: TokenUsage | None,
        *,
        tier: str | None = None,
        run_id: object = None,
        tags: Mapping[str, str] | None = None,
        text: CallText | None = None,
    ) -> CostRecord:
        """Record a rejected cascade attempt: spend, and negative savings (``usage`` /
        ``text`` as in :meth:`record_call`)."""
        if usage is None:
            usage, tags = self._usage_from_text(model, text, tags)
        cost = None if usage is None else self.price(model, usage)
        usage = usage or TokenUsage()
        saved = None if cost is None else -cost
        record = self._record(
            model, "cascade_attempt", tier, usage, cost, saved, tags, run_id, None, 0.0
        )
        return self._store(record, None)

    def record_cache_hit(
        self,
        model: str,
        usage: TokenUsage | None,
        *,
        saved_hint_usd: float | None = None,
        tier: str | None = None,
        run_id: object = None,
        tags: Mapping[str, str] | None = None,
        reservation_id: str | None = None,
        text: CallText | None = None,
    ) -> CostRecord:
        """Record a cache hit: no spend; saved = what the avoided call would have cost on
        the model that would have answered (the cache's ``saved_hint_usd`` when it gives
        one, so both report one figure; else ``usage`` priced on ``model``; a hit with no
        usage is counted from ``text`` as :meth:`record_call` counts a call)."""
        if (usage is None or usage.is_empty()) and text is not None:
            usage, tags = self._usage_from_text(model, text, tags)
        usage = usage or TokenUsage()
        saved: float | None = None
        if saved_hint_usd is not None:
            hint = float(saved_hint_usd)
            saved = hint if math.isfinite(hint) and hint >= 0 else None
        if saved is None and not usage.is_empty():
            saved = self.price(model, usage)
        record = self._record(model, "cache_hit", tier, usage, 0.0, saved, tags, run_id)
        return self._store(record, reservation_id)

    # -- reading -----------------------------------------------------------------------

    @property
    def total_cost(self) -> float:
        """Dollars spent (priced records) in the ledger."""
        return self.ledger.spent_since(None)

    @property
    def total_saved(self) -> float:
        """Dollars saved: cache hits plus routing savings (net of cascade attempts)."""
        return self.summary().total_saved

    def summary(self, since: float | None = None) -> LedgerSummary:
        return self.ledger.summary(since)

    def budget_status(self) -> list[dict[str, Any]]:
        """Each budget with its period start, spend so far and what is left."""
        now = time.time()
        status = []
        for budget in self.budgets:
            spent = self.ledger.spent_since(budget.start(now))
            status.append(
                {
                    "limit_usd": budget.limit_usd,
                    "period": budget.period,
                    "spent_usd": spent,
                    "remaining_usd": max(0.0, budget.limit_usd - spent),
                    "exceeded": spent >= budget.limit_usd,
                }
            )
        return status

    def to_dict(self) -> dict[str, Any]:
        """Totals and per-model figures as plain JSON-ready data (see ``report_dict``)."""
        summary = self.summary()
        report = report_dict(
            summary,
            baseline_model=self.baseline_model,
            budgets=self.budget_status(),
            on_budget=self.on_budget if self.budgets else None,
            breakdown=RecordBreakdown.of(
                self.ledger.records(),
                summary,
                self.ledger.dropped_records() if isinstance(self.ledger, DroppingLedger) else None,
            ),
        )
        if self.baseline_model is not None and self.catalog.get(self.baseline_model) is None:
            # Routing savings against an unpriced baseline are unknown, not $0.
            report["baseline_unpriced"] = True
        # A self-hosted model may cost $0: say so, or its 0.000000 reads like a gap.
        report["local_models"] = [
            name for name in report["models"] if is_local(self.catalog.get(name))
        ]
        return report

    def report(self) -> str:
        """A readable table: per model and total calls, tokens, spend and saved."""
        return format_report(self.to_dict())

    def to_json(self, path: str | PathLike[str] | None = None) -> str:
        """The ``to_dict()`` report as JSON; written to ``path`` when given."""
        text = json.dumps(self.to_dict(), indent=2, sort_keys=True)
        if path is not None:
            with open(path, "w", encoding="utf-8") as fh:
                fh.write(text + "\n")
        return text

    def to_csv(self, path: str | PathLike[str] | None = None, *, records: bool = False) -> str:
        """Per-model rows plus a TOTAL row (or every record with ``records=True``)."""
        text = records_csv(self.ledger.records()) if records else report_csv(self.to_dict())
        if path is not None:
            with open(path, "w", encoding="utf-8", newline="") as fh:
                fh.write(text)
        return text

    def project_month(
        self, requests_per_day: float | None = None, days: int = 30
    ) -> dict[str, Any]:
        """Extrapolate the observed usage to a month (see ``projection.project_report``)."""
        from costopt_core.projection import project_report

        return project_report(self.to_dict(), requests_per_day=requests_per_day, days=days)


# The faces import these from here: usage.py, cost_handler.py and model_warnings.py hold
# them, and cost_handler.py (which builds a CostAccountant) loads on first use, so
# neither module needs the other loaded first.
__getattr__, __dir__, _LAZY = lazy_exports(
    __name__,
    {
        "costopt_core.cost_handler": (
            "HANDLER_ARGUMENTS",
            "AccountantViews",
            "CostHandlerBase",
            "refuse_handler_arguments",
        )
    },
)

__all__ = [
    "DEFAULT_RESERVATION_TTL",
    "HANDLER_ARGUMENTS",
    "UNPRICED",
    "AccountantViews",
    "BudgetExceededError",
    "BudgetWarning",
    "CallText",
    "CostAccountant",
    "CostHandlerBase",
    "RecordBreakdown",
    "UsageCounts",
    "build_budgets",
    "format_report",
    "price_usage",
    "records_csv",
    "refuse_handler_arguments",
    "report_csv",
    "report_dict",
    "unchecked_budget_error",
    "usage_counts",
    "usage_from_mapping",
    "warn_unmetered",
    "warn_unpriced",
]
