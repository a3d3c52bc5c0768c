"""Cost ledger: priced call records, per-model totals, budgets with an atomic check.

Example:
    >>> from costopt_core.ledger import Budget, CostLedger, CostRecord
    >>> ledger = CostLedger()
    >>> check = ledger.reserve(0.002, [Budget(0.005)])
    >>> check.allowed
    True
    >>> ledger.record(CostRecord(model="m", input_tokens=1000, output_tokens=500,
    ...                          cost_usd=0.002), reservation_id=check.reservation_id)
    >>> ledger.spent_since(None)
    0.002
    >>> ledger.reserve(0.004, [Budget(0.005)]).allowed   # 0.002 + 0.004 > 0.005
    False

The contract every ledger honours (``LedgerProtocol``; ``CostLedger`` is the in-memory
one, ``costopt_core.stores.postgres.PostgresLedger`` the shared one):

* ``record(record, reservation_id=None)`` stores one ``CostRecord`` and, in the same
  atomic step, drops the reservation it settles (if any).
* ``reserve(estimate_usd, budgets, ttl_seconds=300, now=None) -> BudgetCheck`` is the
  atomic budget check made *before* a call. For every budget, ``used`` is the spend of
  the records whose timestamp is at or after the budget's period start plus the
  estimates of all live (unexpired, unsettled) reservations. The call is admitted iff,
  for every budget, ``used < limit`` and ``used + estimate_usd <= limit``; an admitted
  call leaves a reservation of ``estimate_usd`` that lives until ``record`` settles it,
  ``release`` drops it, or ``ttl_seconds`` pass (a crashed caller never blocks the
  budget for good). Check-and-reserve is one atomic step across every process sharing
  the ledger (a lock here; a transaction with a row lock / advisory lock in SQL), so N
  concurrent callers whose estimates are at least their calls' cost never overshoot a
  limit, and callers whose estimate is low overshoot by at most that call's cost.
* ``release(reservation_id)`` drops a reservation whose call failed.
* ``spent_since(since)``: dollars spent (``cost_usd`` of priced records) with
  ``timestamp >= since`` (epoch seconds; ``None`` = everything).
* ``summary(since=None) -> LedgerSummary``: per-model totals (see ``summarize``, which a
  store may call on its rows or reproduce in SQL).
* ``records(since=None) -> list[CostRecord]``: the stored records, oldest first.

Dollars are floats in USD. Periods are calendar periods in UTC (``period_start``).
"""

from __future__ import annotations

import itertools
import logging
import math
import numbers
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, Protocol, runtime_checkable

from costopt_core.levers import PROVIDER_CACHE, lever_savings
from costopt_core.metadata_keys import USAGE_ESTIMATED, USAGE_TAG
from costopt_core.pricing import check_amount

logger = logging.getLogger(__name__)

RecordKind = Literal["call", "cache_hit", "cascade_attempt"]
Period = Literal["day", "month"]

KINDS: tuple[str, ...] = ("call", "cache_hit", "cascade_attempt")
PERIODS: tuple[str, ...] = ("day", "month")
_DAY = 86_400.0
_KEEP_DAYS = 62
_FOLD_BATCH = 64  # records added to the per-model totals at a time (see CostLedger)
# A deferred record's items in CostLedger._pending: model, cost, timestamp, five token
# counts, saving, baseline cost, build, context, run key (build at _BUILD).
_ENTRY = 13
_BUILD = 10
_FOLD_SPAN = _FOLD_BATCH * _ENTRY
_NO_COUNTS = (0, 0, 0, 0, 0, 0.0, 0.0)  # a built record's counts, saving and baseline
# Float slack of the admission rule (``admits``): a call that fits to the last cent fits.
_ADMIT_SLACK = 1e-12
_INF = math.inf
_NUMBER = (float, int)  # exact types of the figures the fast check passes
_USAGE_FIELDS = (
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
)


class BudgetExceededError(RuntimeError):
    """Raised before a call that the budget no longer allows.

    Attributes: ``budget`` (the ``Budget`` hit), ``spent_usd`` (spend plus live
    reservations in its period when checked), ``limit_usd``; ``ledger_error``: when the
    ledger could not check the budget at all (locked, busy, unreachable), its error
    (``budget`` is then ``None``).
    """

    def __init__(
        self,
        message: str,
        *,
        budget: Budget | None = None,
        spent_usd: float = 0.0,
        ledger_error: BaseException | None = None,
    ):
        super().__init__(message)
        self.budget = budget
        self.spent_usd = spent_usd
        self.ledger_error = ledger_error
        self.limit_usd = budget.limit_usd if budget is not None else math.inf


# Not frozen: one is built per call, and a frozen dataclass's __init__ costs ~2x.
def _counts_ok(counts: Any) -> bool:
    """The five token counts of a ``TokenUsage`` or ``CostRecord`` are ints >= 0: the
    common case, checked in one pass (the callers' loops only name a culprit)."""
    return (
        type(counts.input_tokens) is int
        and type(counts.output_tokens) is int
        and type(counts.cache_read_tokens) is int
        and type(counts.cache_write_tokens) is int
        and type(counts.reasoning_tokens) is int
        and counts.input_tokens >= 0
        and counts.output_tokens >= 0
        and counts.cache_read_tokens >= 0
        and counts.cache_write_tokens >= 0
        and counts.reasoning_tokens >= 0
    )


@dataclass(slots=True)
class TokenUsage:
    """Token counts of one call, LangChain conventions: ``input_tokens`` includes the
    cache read/write tokens, ``output_tokens`` includes the reasoning tokens.

    Example:
        >>> usage = TokenUsage(input_tokens=1200, output_tokens=300, cache_read_tokens=1000)
        >>> (usage + TokenUsage(10, 5)).total_tokens
        1515
        >>> TokenUsage(input_tokens=-1)
        Traceback (most recent call last):
        ...
        ValueError: TokenUsage.input_tokens must be an int >= 0, got -1
    """

    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0

    def __post_init__(self) -> None:
        # The common all-int case is checked in one pass; the loop only names the culprit.
        if not _counts_ok(self):
            for name in _USAGE_FIELDS:
                value = getattr(self, name)
                if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                    raise ValueError(f"TokenUsage.{name} must be an int >= 0, got {value!r}")

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    def __add__(self, other: TokenUsage) -> TokenUsage:
        return TokenUsage(
            self.input_tokens + other.input_tokens,
            self.output_tokens + other.output_tokens,
            self.cache_read_tokens + other.cache_read_tokens,
            self.cache_write_tokens + other.cache_write_tokens,
            self.reasoning_tokens + other.reasoning_tokens,
        )

    def is_empty(self) -> bool:
        return self.input_tokens == 0 and self.output_tokens == 0


@dataclass(slots=True)
class CostRecord:
    """One priced event: a model call, a cache hit, or a rejected cascade attempt.

    ``cost_usd`` is what was spent (``None``: the model is unpriced; a cache hit spends
    ``0.0``). ``saved_usd`` is what this event saved against the baseline: for a cache
    hit the price of the call it avoided, for a routed call ``baseline_cost_usd -
    cost_usd`` (negative when the routed model cost more), for a cascade attempt
    ``-cost_usd`` (the baseline would not have made it). ``None`` when not knowable.
    ``tags`` defaults to ``{}`` and ``timestamp`` to now, also when given as ``None``.
    ``estimated`` marks token counts (and so the cost) estimated from the text because
    the provider reported no usage.

    Figures that cannot be (a NaN, infinite or negative cost, a negative or non-integer
    token count, a NaN timestamp) are refused, naming the field and what it allows:

    Example:
        >>> CostRecord("m", cost_usd=0.25, saved_usd=-0.05).saved_usd  # cost more: fine
        -0.05
        >>> CostRecord("m", input_tokens=-3)
        Traceback (most recent call last):
        ...
        ValueError: CostRecord.input_tokens must be an int >= 0, got -3
    """

    model: str
    kind: RecordKind = "call"
    tier: str | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0
    cost_usd: float | None = 0.0
    saved_usd: float | None = 0.0
    baseline_model: str | None = None
    baseline_cost_usd: float | None = None
    tags: Mapping[str, str] = field(default_factory=dict)
    timestamp: float = field(default_factory=time.time)
    run_id: str | None = None
    estimated: bool = False

    def __post_init__(self) -> None:
        if not self.model or not isinstance(self.model, str):
            raise ValueError(f"CostRecord.model must be a non-empty str, got {self.model!r}")
        if self.kind not in KINDS:
            raise ValueError(f"CostRecord.kind must be one of {KINDS}, got {self.kind!r}")
        # Callers pass their optional values through (accounting builds one per call).
        if self.tags is None:
            self.tags = {}
        if self.timestamp is None:
            self.timestamp = time.time()
        # One NaN or negative figure would poison every total and budget read from the
        # ledger, in memory and in every database holding it. The common case (ints
        # and finite floats) is checked in one pass; _check_figures names the culprit.
        cost, saved, baseline, ts = (
            self.cost_usd,
            self.saved_usd,
            self.baseline_cost_usd,
            self.timestamp,
        )
        if not (
            _counts_ok(self)
            and type(ts) in _NUMBER
            and -_INF < ts < _INF
            and (cost is None or (type(cost) in _NUMBER and 0 <= cost < _INF))
            and (saved is None or (type(saved) in _NUMBER and -_INF < saved < _INF))
            and (baseline is None or (type(baseline) in _NUMBER and 0 <= baseline < _INF))
        ):
            self._check_figures()

    def _check_figures(self) -> None:
        for name in _USAGE_FIELDS:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, numbers.Integral):
                raise TypeError(f"CostRecord.{name} must be an int >= 0, got {value!r}")
            if value < 0:
                raise ValueError(f"CostRecord.{name} must be an int >= 0, got {value!r}")
            setattr(self, name, int(value))  # a numpy integer stored as the int it is
        for name, low, allowed in (
            ("cost_usd", 0.0, "a finite number >= 0 (USD) or None (unpriced)"),
            ("saved_usd", -math.inf, "a finite number (USD; negative: costopt cost more) or None"),
            ("baseline_cost_usd", 0.0, "a finite number >= 0 (USD) or None"),
            ("timestamp", -math.inf, "a finite number (epoch seconds)"),
        ):
            value = getattr(self, name)
            if value is None and name != "timestamp":
                continue
            if isinstance(value, bool) or not isinstance(value, numbers.Real):
                raise TypeError(f"CostRecord.{name} must be {allowed}, got {value!r}")
            if not (math.isfinite(value) and value >= low):
                raise ValueError(f"CostRecord.{name} must be {allowed}, got {value!r}")

    @property
    def priced(self) -> bool:
        return self.cost_usd is not None

    @property
    def usage(self) -> TokenUsage:
        return TokenUsage(
            self.input_tokens,
            self.output_tokens,
            self.cache_read_tokens,
            self.cache_write_tokens,
            self.reasoning_tokens,
        )

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["tags"] = dict(self.tags)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CostRecord:
        names = cls.__dataclass_fields__
        return cls(**{k: v for k, v in data.items() if k in names})


@dataclass(slots=True)
class ModelTotals:
    """Totals of one model. Token counts are billed tokens (calls and cascade attempts);
    cache hits count in ``cache_hits`` and ``saved_usd`` only. ``estimated_events``
    counts the records whose usage was estimated from text."""

    model: str
    calls: int = 0
    cache_hits: int = 0
    cascade_attempts: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0
    cost_usd: float = 0.0
    saved_usd: float = 0.0
    baseline_cost_usd: float = 0.0
    unpriced_events: int = 0
    max_call_cost_usd: float = 0.0
    tiers: dict[str, int] = field(default_factory=dict)
    estimated_events: int = 0

    @property
    def priced(self) -> bool:
        return self.unpriced_events == 0

    @property
    def events(self) -> int:
        """Records counted: calls, cache hits and cascade attempts."""
        return self.calls + self.cache_hits + self.cascade_attempts

    def add(self, record: CostRecord) -> None:
        kind = record.kind
        if kind == "cache_hit":
            self.cache_hits += 1
            self.add_billed(record.cost_usd, 0, 0)  # a hit bills no tokens
        else:
            if kind == "call":
                self.calls += 1
            else:
                self.cascade_attempts += 1
            self.add_billed(
                record.cost_usd,
                record.input_tokens,
                record.output_tokens,
                record.cache_read_tokens,
                record.cache_write_tokens,
                record.reasoning_tokens,
            )
            if record.tier is not None:
                self.tiers[record.tier] = self.tiers.get(record.tier, 0) + 1
        if record.saved_usd is not None:
            self.saved_usd += record.saved_usd
        if record.baseline_cost_usd is not None:
            self.baseline_cost_usd += record.baseline_cost_usd
        if record.estimated:
            self.estimated_events += 1

    def add_billed(
        self,
        cost: float | None,
        input_tokens: int,
        output_tokens: int,
        cache_read_tokens: int = 0,
        cache_write_tokens: int = 0,
        reasoning_tokens: int = 0,
        *,
        events: int = 1,
        max_cost: float | None = None,
    ) -> None:
        """Add what ``events`` events billed: their tokens and their total ``cost``
        (``None``: unpriced), the dearest of them ``max_cost`` (default: ``cost``)."""
        self.input_tokens += input_tokens
        self.output_tokens += output_tokens
        self.cache_read_tokens += cache_read_tokens
        self.cache_write_tokens += cache_write_tokens
        self.reasoning_tokens += reasoning_tokens
        if cost is None:
            self.unpriced_events += events
        else:
            self.cost_usd += cost
            dearest = cost if max_cost is None else max_cost
            if dearest > self.max_call_cost_usd:
                self.max_call_cost_usd = dearest

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["priced"] = self.priced
        return data


@dataclass(slots=True)
class LedgerSummary:
    """Per-model totals plus the grand totals a report shows."""

    models: dict[str, ModelTotals] = field(default_factory=dict)
    first_timestamp: float | None = None
    last_timestamp: float | None = None

    def add(self, record: CostRecord) -> None:
        ts = record.timestamp
        self.totals_of(record.model, ts, ts).add(record)

    def totals_of(self, model: str, first: float, last: float) -> ModelTotals:
        """``model``'s totals, for events from ``first`` to ``last`` (the span takes
        them in)."""
        totals = self.models.get(model)
        if totals is None:
            totals = self.models[model] = ModelTotals(model)
        if self.first_timestamp is None or first < self.first_timestamp:
            self.first_timestamp = first
        if self.last_timestamp is None or last > self.last_timestamp:
            self.last_timestamp = last
        return totals

    @property
    def total_cost(self) -> float:
        return sum((m.cost_usd for m in self.models.values()), 0.0)

    @property
    def total_saved(self) -> float:
        return sum((m.saved_usd for m in self.models.values()), 0.0)

    @property
    def calls(self) -> int:
        return sum(m.calls for m in self.models.values())

    @property
    def cache_hits(self) -> int:
        return sum(m.cache_hits for m in self.models.values())

    @property
    def unpriced_models(self) -> list[str]:
        return sorted(name for name, m in self.models.items() if not m.priced)


def summarize(records: Iterable[CostRecord]) -> LedgerSummary:
    """Fold records into a ``LedgerSummary`` (what ``summary()`` returns)."""
    summary = LedgerSummary()
    for record in records:
        summary.add(record)
    return summary


@dataclass(frozen=True, slots=True)
class Budget:
    """A spending limit in USD over a period: ``None`` (the ledger's whole life),
    ``"day"`` or ``"month"`` (calendar periods in UTC).

    Example:
        >>> daily = Budget(20.0, "day")
        >>> daily.start(now=3 * 86_400 + 5.0), daily.label  # 5 s into day 3 (UTC)
        (259200.0, 'per day')
    """

    limit_usd: float
    period: Period | None = None

    def __post_init__(self) -> None:
        check_amount("Budget.limit_usd", self.limit_usd)
        if self.period is not None and self.period not in PERIODS:
            raise ValueError(f"Budget.period must be None, 'day' or 'month', got {self.period!r}")

    def start(self, now: float | None = None) -> float | None:
        """Epoch seconds at which this budget's current period began (``None``: always)."""
        return period_start(self.period, now)

    @property
    def label(self) -> str:
        return "total" if self.period is None else f"per {self.period}"


def period_start(period: Period | None, now: float | None = None) -> float | None:
    """Start (epoch seconds, UTC) of the calendar ``period`` holding ``now``."""
    if period is None:
        return None
    now = time.time() if now is None else now
    day_start = math.floor(now / _DAY) * _DAY  # UTC has no leap seconds in epoch time
    if period == "day":
        return day_start
    if period != "month":
        raise ValueError(f"period must be None, 'day' or 'month', got {period!r}")
    # Checked before every call under a monthly budget: one datetime per new day.
    start = _month_starts.get(day_start)
    if start is None:
        moment = datetime.fromtimestamp(day_start, tz=UTC)
        start = moment.replace(day=1).timestamp()
        if len(_month_starts) > 64:
            _month_starts.clear()
        _month_starts[day_start] = start
    return start


_month_starts: dict[float, float] = {}


# Not frozen: one is built before every budgeted call, and a frozen dataclass's
# __init__ (object.__setattr__ per field) costs ~3x.
@dataclass(slots=True)
class BudgetCheck:
    """Outcome of ``reserve``. When refused, ``budget`` is the first budget that did
    not allow the call and ``used_usd`` its spend plus live reservations."""

    allowed: bool
    reservation_id: str | None = None
    budget: Budget | None = None
    used_usd: float = 0.0
    estimate_usd: float | None = None  # the next call's estimated cost, when known

    def describe(self) -> str:
        """``"cost budget exceeded (per day): $1.000000 used of $1.000000"``, or, when
        something is left but not enough, what the next call was estimated to cost."""
        budget = self.budget
        limit = budget.limit_usd if budget is not None else math.inf
        label = budget.label if budget is not None else "total"
        used = f"${self.used_usd:.6f} used of ${limit:.6f}"
        if self.used_usd < limit and self.estimate_usd:
            return (
                f"cost budget ({label}) would be exceeded: {used}, and the next call is "
                f"estimated at ${self.estimate_usd:.6f}"
            )
        return f"cost budget exceeded ({label}): {used}"

    @classmethod
    def of(cls, held: str | tuple[Budget | None, float]) -> BudgetCheck:
        """The check a ``QuickReserveLedger.reserve_id`` answer stands for."""
        if type(held) is str:
            return cls(True, held)
        return cls(False, None, *held)

    def error(self) -> BudgetExceededError:
        return BudgetExceededError(
            f"{self.describe()}; the call was not made",
            budget=self.budget,
            spent_usd=self.used_usd,
        )


def admits(used_usd: float, estimate_usd: float, budget: Budget) -> bool:
    """The admission rule of the contract: something is left and the estimate fits."""
    limit = budget.limit_usd
    return used_usd < limit and used_usd + estimate_usd <= limit + _ADMIT_SLACK


@runtime_checkable
class LedgerProtocol(Protocol):
    """What a cost handler needs from a ledger (see the module docstring's contract)."""

    def record(self, record: CostRecord, reservation_id: str | None = None) -> None: ...

    def reserve(
        self,
        estimate_usd: float,
        budgets: Sequence[Budget],
        *,
        ttl_seconds: float = 300.0,
        now: float | None = None,
    ) -> BudgetCheck: ...

    def release(self, reservation_id: str) -> None: ...

    def spent_since(self, since: float | None = None) -> float: ...

    def summary(self, since: float | None = None) -> LedgerSummary: ...

    def records(self, since: float | None = None) -> list[CostRecord]: ...


#: Builds a deferred call's record: ``build(model, timestamp, counts, context, run_key)``.
DeferredBuild = Callable[[str, float, tuple[int, int, int, int, int], Any, Any], CostRecord]


class DroppedRecords:
    """What the records a ledger no longer keeps (past ``max_records``) said beyond its
    totals: their savings per model and lever, and their estimated calls, so a report's
    per-lever split still adds up to the totals (see ``cost_report.RecordBreakdown``).

    Example:
        >>> gone = DroppedRecords()
        >>> gone.add(CostRecord("m", tier="simple", cost_usd=1.0, saved_usd=3.0))
        >>> gone.add_saving("m", "provider_cache", 0.5)
        >>> gone.saved["m"], gone.records
        ({'routing': 3.0, 'provider_cache': 0.5}, 2)
    """

    def __init__(self) -> None:
        self.saved: dict[str, dict[str, float]] = {}  # model -> lever -> USD
        self.estimated_calls: dict[str, int] = {}
        self.records = 0

    def add(self, record: CostRecord) -> None:
        self.records += 1
        for lever, amount in lever_savings(record).items():
            self._add(record.model, lever, amount)
        if record.kind != "cache_hit" and is_estimated(record):
            self.estimated_calls[record.model] = self.estimated_calls.get(record.model, 0) + 1

    def add_saving(self, model: str, lever: str, amount: float) -> None:
        """A plain call dropped unbuilt: its one saving, on ``lever``."""
        self.records += 1
        if amount:
            self._add(model, lever, amount)

    def _add(self, model: str, lever: str, amount: float) -> None:
        row = self.saved.setdefault(model, {})
        row[lever] = row.get(lever, 0.0) + amount

    def copy(self) -> DroppedRecords:
        out = DroppedRecords()
        out.saved = {model: dict(row) for model, row in self.saved.items()}
        out.estimated_calls = dict(self.estimated_calls)
        out.records = self.records
        return out


def is_estimated(record: CostRecord) -> bool:
    """Whether ``record``'s usage was counted from text (the provider reported none)."""
    tags = record.tags
    return record.estimated or bool(tags and tags.get(USAGE_TAG) == USAGE_ESTIMATED)


@runtime_checkable
class DroppingLedger(Protocol):
    """A ledger that keeps at most ``max_records`` records and remembers what the ones it
    dropped said beyond its totals (``dropped_records()``)."""

    def dropped_records(self) -> DroppedRecords: ...


@runtime_checkable
class DeferredRecordLedger(Protocol):
    """A ledger that takes a plain call's spend now and builds its record when read.

    ``record_deferred(model, cost_usd, timestamp, counts, build, context, run_key,
    reservation_id, saved_usd, baseline_cost_usd)`` counts ``cost_usd`` at ``timestamp``
    against the budgets and settles the reservation at once, as ``record`` does.
    ``build(model, timestamp, counts, context, run_key)`` (``context`` and ``run_key``:
    the caller's, kept apart rather than in a tuple, as nothing is kept per call that the
    cyclic GC must track) must return the same record whenever it runs: a ``"call"``
    record of ``model`` with that cost, timestamp, token ``counts`` (input, output, cache
    read, cache write, reasoning), saving and baseline cost (``0.0``: none), no tier and
    no estimate, so the totals are kept from these and the record is built only when the
    records are read.
    A cost handler records every call and few calls' records are ever read one by one:
    building them all cost more than the rest of the handler.
    """

    def record_deferred(
        self,
        model: str,
        cost_usd: float | None,
        timestamp: float,
        counts: tuple[int, int, int, int, int],
        build: DeferredBuild,
        context: Any,
        run_key: Any,
        reservation_id: str | None = None,
        saved_usd: float = 0.0,
        baseline_cost_usd: float = 0.0,
    ) -> None: ...


@runtime_checkable
class QuickReserveLedger(Protocol):
    """A ledger that can reserve without building a ``BudgetCheck``.

    ``reserve_id(estimate_usd, budgets)`` decides as ``reserve`` does and returns the
    reservation id when the estimate fits every budget, else the first budget refusing
    it and its spend plus live reservations (nothing reserved). The usual budgeted call
    fits: building its ``BudgetCheck`` cost as much as the check itself.
    """

    def reserve_id(
        self,
        estimate_usd: float,
        budgets: Sequence[Budget],
        ttl_seconds: float = 300.0,
        now: float | None = None,
    ) -> str | tuple[Budget | None, float]: ...


def check_estimate(estimate_usd: float) -> float:
    """``estimate_usd`` as a float if it is a finite number >= 0, else ValueError."""
    if type(estimate_usd) is float and 0.0 <= estimate_usd < math.inf:
        return estimate_usd  # the usual case, checked once per budgeted call
    return check_amount("estimate_usd", estimate_usd)


class CostLedger:
    """In-memory, thread-safe ledger for one process.

    Totals are kept incrementally (a record costs O(1)); spend per UTC day is bucketed
    so period budgets never rescan history. At most ``max_records`` raw records are
    kept for export (oldest dropped first); totals always cover everything. It is a
    ``DeferredRecordLedger``: a cost handler's plain calls are counted at once and their
    records built only when the records are read (the totals never need them); until
    then each takes ~210 bytes (a built record ~610), at most ~2x ``max_records`` of them
    before the oldest, which the newest would push out anyway, are dropped unbuilt.

    Example:
        >>> from costopt_core.ledger import CostLedger, CostRecord
        >>> ledger = CostLedger()
        >>> ledger.record(CostRecord(model="m", cost_usd=0.5))
        >>> def build(model, timestamp, counts, context, run_key):
        ...     return CostRecord(model, cost_usd=0.25, timestamp=timestamp)
        >>> ledger.record_deferred("m", 0.25, 1.0, (0, 0, 0, 0, 0), build, None, None)
        >>> ledger.spent_since(None), ledger.summary().total_cost
        (0.75, 0.75)
        >>> [record.cost_usd for record in ledger.records()]
        [0.5, 0.25]
    """

    def __init__(self, *, max_records: int | None = 100_000) -> None:
        if max_records is not None and (not isinstance(max_records, int) or max_records < 0):
            raise ValueError(f"max_records must be None or an int >= 0, got {max_records!r}")
        self._lock = threading.Lock()
        self._records: deque[CostRecord] = deque(maxlen=max_records)
        self._dropped = False
        self._gone = DroppedRecords()  # what the dropped records said (see report())
        self._summary = LedgerSummary()
        # Records not yet added to _summary: folded in batches (and before any read),
        # so the per-model totals cost the call path an append, not a ModelTotals.add.
        self._unfolded: list[CostRecord] = []
        # Deferred records, oldest first, built when the records are read, and records
        # that came after them (their build None, their context the record): one flat
        # list, _ENTRY items an entry (see record_deferred). Flat, because a container
        # kept per call wakes Python's cyclic GC every few hundred calls. Their totals
        # are folded from their figures (up to index _pending_folded); unread ones the
        # newest max_records push out are dropped unbuilt.
        self._pending: list[Any] = []
        self._pending_folded = 0
        # Entries a reader is building outside the lock (see _read_records), and the
        # lock that lets one reader build at a time.
        self._in_flight: list[Any] = []
        self._reading = threading.Lock()
        self._record_overridden = type(self).record is not CostLedger.record
        self._reserve_overridden = type(self).reserve is not CostLedger.reserve
        if not self._reserve_overridden and type(self).reserve_id is CostLedger.reserve_id:
            # reserve_id's rule itself, bound here: one call fewer per budgeted call.
            self.reserve_id = self._reserve  # type: ignore[method-assign]
        self._spent_total = 0.0
        self._spent_by_day: dict[float, float] = {}
        self._buckets_from = -math.inf  # day buckets before this were folded away
        self._reservations: dict[str, tuple[float, float]] = {}  # id -> (estimate, expiry)
        # Kept alongside _reservations so a budget check neither sums nor scans them:
        # the estimates' total, and the earliest expiry (no scan before it comes).
        self._reserved_total = 0.0
        self._next_expiry = math.inf
        # The lowest limit of the budgets tuple last checked (by identity: a handler's
        # budgets are one tuple): while the whole spend is below it, every budget admits.
        self._lowest_of: Sequence[Budget] = ()
        self._lowest_limit = math.inf
        self._newest_day = -math.inf  # the latest day bucket (records may be back-dated)
        # Each period's start for times in [_starts_from, _starts_until): one UTC day.
        self._period_starts: dict[str, float] = {}
        self._starts_from = self._starts_until = -math.inf
        # Ids only need to be unique within this ledger; a counter is cheaper than uuid4.
        # Made at the first reservation: a ledger without budgets (one per cost_tracker
        # block) never pays for the uuid4.
        self._id_prefix = ""
        self._ids = itertools.count(1)

    # -- writing -----------------------------------------------------------------------

    def record(self, record: CostRecord, reservation_id: str | None = None) -> None:
        if type(record) is not CostRecord and not isinstance(record, CostRecord):
            raise TypeError(f"record must be a CostRecord, got {type(record).__name__}")
        cost = record.cost_usd
        with self._lock:
            if self._pending or self._in_flight:
                # Behind deferred records: it waits in line with them, built already,
                # so the records stay in the order they came without building those.
                ts = record.timestamp
                self._pending.extend((record.model, cost, ts, *_NO_COUNTS, None, record, None))
                self._queue_totals(record)
            else:
                self._keep(record)
            self._settle(reservation_id, cost, record.timestamp)

    def record_deferred(
        self,
        model: str,
        cost_usd: float | None,
        timestamp: float,
        counts: tuple[int, int, int, int, int],
        build: DeferredBuild,
        context: Any,
        run_key: Any,
        reservation_id: str | None = None,
        saved_usd: float = 0.0,
        baseline_cost_usd: float = 0.0,
    ) -> None:
        """Count ``cost_usd`` now and keep the record for when the records are read (see
        ``DeferredRecordLedger``). A subclass that changes ``record`` gets every record
        through it, built now."""
        if self._record_overridden:
            self.record(build(model, timestamp, counts, context, run_key), reservation_id)
            return
        # acquire / release, not ``with``: the context manager's two calls cost as much
        # again as the lock itself, and this runs for every call.
        lock = self._lock
        lock.acquire()
        try:
            pending = self._pending
            # The entry's items, in _ENTRY's order (see __init__).
            entry = (model, cost_usd, timestamp, *counts, saved_usd, baseline_cost_usd)
            pending.extend(entry)
            pending.extend((build, context, run_key))
            self._settle(reservation_id, cost_usd, timestamp)
            if len(pending) - self._pending_folded >= _FOLD_SPAN:
                self._fold_pending()
        finally:
            lock.release()

    def _keep(self, record: CostRecord) -> None:
        # Called with the lock held: keep the record and queue it for the totals.
        self._keep_built((record,))
        self._queue_totals(record)

    def _queue_totals(self, record: CostRecord) -> None:
        # Called with the lock held.
        unfolded = self._unfolded
        unfolded.append(record)
        if len(unfolded) >= _FOLD_BATCH:
            self._fold()

    def _settle(self, reservation_id: str | None, cost: float | None, timestamp: float) -> None:
        # Called with the lock held: a call's spend counted and its reservation dropped,
        # in one call (this runs for every call).
        if reservation_id is not None:
            held = self._reservations.pop(reservation_id, None)
            if held is not None:
                if self._reservations:
                    self._reserved_total -= held[0]
                else:
                    self._reserved_total = 0.0  # no float residue once nothing is held
                    self._next_expiry = math.inf
        if not cost:
            return
        self._spent_total += cost
        day = (timestamp // _DAY) * _DAY
        bucket = self._spent_by_day.get(day)
        if bucket is None:
            self._spent_by_day[day] = cost
            if day > self._newest_day:
                self._newest_day = day
            self._fold_old_days(day)
        else:
            self._spent_by_day[day] = bucket + cost

    def _fold_pending(self) -> None:
        # Called with the lock held: the deferred records' totals, from their figures
        # (each is a plain call: see DeferredRecordLedger), none of them built.
        pending = self._pending
        start, end = self._pending_folded, len(pending)
        self._pending_folded = end
        if start < end:
            totals_of = self._summary.totals_of
            models = pending[start::_ENTRY]
            costs = pending[start + 1 :: _ENTRY]
            builds = pending[start + _BUILD :: _ENTRY]
            if len(set(models)) == 1 and None not in builds and None not in costs:
                # The usual batch: one model's priced calls, summed column by column.
                stamps = pending[start + 2 :: _ENTRY]
                totals = totals_of(models[0], min(stamps), max(stamps))
                totals.calls += len(models)
                tokens = (sum(pending[start + i :: _ENTRY]) for i in range(3, 8))
                totals.add_billed(sum(costs), *tokens, events=len(models), max_cost=max(costs))
                totals.saved_usd += sum(pending[start + 8 :: _ENTRY])
                totals.baseline_cost_usd += sum(pending[start + 9 :: _ENTRY])
            else:
                for i in range(start, end, _ENTRY):
                    if pending[i + _BUILD] is not None:  # None: a record queued by record()
                        totals = totals_of(pending[i], pending[i + 2], pending[i + 2])
                        totals.calls += 1
                        totals.add_billed(pending[i + 1], *pending[i + 3 : i + 8])
                        totals.saved_usd += pending[i + 8]
                        totals.baseline_cost_usd += pending[i + 9]
        keep = self._records.maxlen
        if keep is not None and end >= (2 * keep + _FOLD_BATCH) * _ENTRY:
            # Trimmed once they are twice what is kept: an O(1) cost per call.
            self._push_out(pending, keep)
            self._pending_folded = len(pending)

    def _take_pending(self) -> list[Any]:
        # Called with the lock held: the deferred entries to build, their totals folded
        # (those the newest max_records would push out are dropped unbuilt).
        self._fold_pending()
        pending = self._pending
        self._pending = []
        self._pending_folded = 0
        keep = self._records.maxlen
        if keep is not None and len(pending) > keep * _ENTRY:
            self._push_out(pending, keep)
        return pending

    def _push_out(self, pending: list[Any], keep: int) -> None:
        # Called with the lock held: drops, unbuilt, the entries that the newest ``keep``
        # (max_records) entries push out, and every kept record (all older than them).
        gone = self._gone
        for record in self._records:
            gone.add(record)
        end = len(pending) - keep * _ENTRY
        for i in range(0, end, _ENTRY):
            if pending[i + _BUILD] is None:
                gone.add(pending[i + _BUILD + 1])  # a record queued built
            else:  # a plain call: its one saving is the provider's prompt cache
                gone.add_saving(pending[i], PROVIDER_CACHE, pending[i + 8])
        del pending[:end]
        self._records.clear()
        self._dropped = True

    def _keep_built(self, built: Iterable[CostRecord]) -> None:
        # Called with the lock held.
        records = self._records
        for record in built:
            if len(records) == records.maxlen:
                self._dropped = True
                self._gone.add(records[0] if records else record)  # the one dropped now
            records.append(record)

    def dropped_records(self) -> DroppedRecords:
        """What the records dropped past ``max_records`` said beyond the totals."""
        with self._lock:
            return self._gone.copy()

    def _build_pending(self) -> None:
        # Called with the lock held: every record built now (see _read_records).
        self._keep_built(_built(self._take_pending()))

    def _read_records(self) -> list[CostRecord]:
        """Every record, oldest first. Deferred records are built outside the lock, so a
        read of many (up to max_records, ~7 us each) never holds up the calls being
        counted; whatever comes meanwhile waits in line behind them."""
        with self._reading:  # one reader builds at a time; the others then find them
            with self._lock:
                pending = self._in_flight = self._take_pending()
            built: list[CostRecord] = []
            try:
                built = _built(pending) if pending else []
            finally:
                with self._lock:  # one section: nothing may overtake the built records
                    if self._in_flight is pending:  # else clear() came meanwhile
                        self._keep_built(built)
                    self._in_flight = []
                    if self._pending:  # came while building: few, built now
                        self._build_pending()
                    records = list(self._records)
        return records

    def reserve_id(
        self,
        estimate_usd: float,
        budgets: Sequence[Budget],
        ttl_seconds: float = 300.0,
        now: float | None = None,
    ) -> str | tuple[Budget | None, float]:
        """``reserve``'s answer without a ``BudgetCheck`` (see ``QuickReserveLedger``):
        the reservation id when the estimate fits every budget, else the first budget
        refusing it and its spend plus live reservations, with nothing reserved. A
        subclass that changes ``reserve`` is asked through it."""
        if self._reserve_overridden:
            check = self.reserve(estimate_usd, budgets, ttl_seconds=ttl_seconds, now=now)
            if check.allowed and check.reservation_id is not None:
                return check.reservation_id
            return check.budget, check.used_usd
        return self._reserve(estimate_usd, budgets, ttl_seconds, now)

    def _reserve(
        self,
        estimate_usd: float,
        budgets: Sequence[Budget],
        ttl_seconds: float = 300.0,
        now: float | None = None,
    ) -> str | tuple[Budget, float]:
        # reserve and reserve_id's one rule: the reservation id, or the refusing budget
        # and its use. (Not reserve_id itself: a subclass's reserve_id may call reserve.)
        estimate = estimate_usd
        if type(estimate) is not float or not 0.0 <= estimate < math.inf:
            estimate = check_estimate(estimate_usd)  # not the usual finite float: check it
        if now is None:
            now = time.time()
        lock = self._lock  # acquire / release, not ``with`` (see record_deferred)
        lock.acquire()
        try:
            if now >= self._next_expiry:
                self._expire(now)
            pending = self._reserved_total
            if budgets is not self._lowest_of:
                # Only a tuple can be the one remembered: a list can change in place and
                # a generator runs once (a handler's own budgets are a tuple).
                if type(budgets) is not tuple:
                    budgets = tuple(budgets)
                self._lowest_of = budgets
                self._lowest_limit = min((b.limit_usd for b in budgets), default=math.inf)
            lowest = self._lowest_limit
            used = self._spent_total + pending
            if used + estimate > lowest or used >= lowest:
                # Near a limit: each budget's own spend (a period's is part of the whole
                # spend, so far from every limit that one sum settles it for all of them).
                refused = self._refusing(estimate, budgets, pending, now)
                if refused is not None:
                    return refused
            if not self._id_prefix:
                self._id_prefix = uuid.uuid4().hex[:8] + "-"
            reservation_id = f"{self._id_prefix}{next(self._ids)}"
            expiry = now + ttl_seconds
            self._reservations[reservation_id] = (estimate, expiry)
            self._reserved_total = pending + estimate
            if expiry < self._next_expiry:
                self._next_expiry = expiry
            return reservation_id
        finally:
            lock.release()

    def _refusing(
        self, estimate: float, budgets: Sequence[Budget], pending: float, now: float
    ) -> tuple[Budget, float] | None:
        # Called with the lock held: the first budget that does not admit the estimate
        # and its spend plus live reservations, else None.
        if not self._starts_from <= now < self._starts_until:
            # The periods' starts change once a day: worked out then, not per call.
            day = period_start("day", now)
            self._period_starts = {period: period_start(period, now) for period in PERIODS}
            self._starts_from, self._starts_until = day, day + _DAY  # type: ignore[operator]
        starts = self._period_starts
        for budget in budgets:
            period = budget.period
            if period is None:
                used = self._spent_total + pending
            else:
                since = starts[period]
                if since == self._newest_day:  # today's spend: one bucket, no scan
                    used = self._spent_by_day[since] + pending
                else:
                    used = self._spent_since_locked(since) + pending
            if not admits(used, estimate, budget):
                return budget, used
        return None

    def reserve(
        self,
        estimate_usd: float,
        budgets: Sequence[Budget],
        *,
        ttl_seconds: float = 300.0,
        now: float | None = None,
    ) -> BudgetCheck:
        return BudgetCheck.of(self._reserve(estimate_usd, budgets, ttl_seconds, now))

    def release(self, reservation_id: str) -> None:
        with self._lock:
            self._settle(reservation_id, None, 0.0)

    def clear(self) -> None:
        """Forget every record and reservation."""
        with self._lock:
            self._records.clear()
            self._pending.clear()
            self._pending_folded = 0
            self._in_flight = []  # a reader building them keeps none (see _read_records)
            self._dropped = False
            self._gone = DroppedRecords()
            self._summary = LedgerSummary()
            self._unfolded.clear()
            self._spent_total = 0.0
            self._spent_by_day.clear()
            self._buckets_from = -math.inf
            self._newest_day = -math.inf
            self._reservations.clear()
            self._reserved_total = 0.0
            self._next_expiry = math.inf

    # -- reading -----------------------------------------------------------------------

    def spent_since(self, since: float | None = None) -> float:
        with self._lock:
            return self._spent_since_locked(since)

    def summary(self, since: float | None = None) -> LedgerSummary:
        with self._lock:
            if since is None:  # the totals: no deferred record needs building for them
                self._fold_pending()
                self._fold()
                return _copy_summary(self._summary)
        records = self._read_records()
        return summarize(r for r in records if r.timestamp >= since)

    def records(self, since: float | None = None) -> list[CostRecord]:
        records = self._read_records()
        if since is None:
            return records
        return [r for r in records if r.timestamp >= since]

    @property
    def reserved_usd(self) -> float:
        """Estimates of the live reservations (calls admitted, not yet recorded)."""
        with self._lock:
            self._expire(time.time())
            return sum(est for est, _ in self._reservations.values())

    def _spent_since_locked(self, since: float | None) -> float:
        if since is None:
            return self._spent_total
        aligned = since % _DAY == 0  # every period start is
        if aligned and since >= self._newest_day:
            # A day budget's usual case: its period starts on the newest bucket's day.
            return self._spent_by_day.get(since, 0.0) if since == self._newest_day else 0.0
        if aligned and since >= self._buckets_from:
            # Day-aligned (every period start is) and within the kept buckets.
            return sum(v for day, v in self._spent_by_day.items() if day >= since)
        # Older than the kept buckets (rare): the records, those being built by a reader
        # and those waiting, in the order they came.
        spent = sum(r.cost_usd or 0.0 for r in self._records if r.timestamp >= since)
        for entries in (self._in_flight, self._pending):
            stamps = entries[2::_ENTRY]
            costs = entries[1::_ENTRY]
            spent += sum(c or 0.0 for c, t in zip(costs, stamps, strict=True) if t >= since)
        return spent

    def _fold(self) -> None:
        # Called with the lock held.
        add = self._summary.add
        for record in self._unfolded:
            add(record)
        self._unfolded.clear()

    def _fold_old_days(self, newest: float) -> None:
        # Day and month budgets look back at most 31 days: keep ~2 months of day
        # buckets so a budget check stays O(62) however long the process runs.
        cutoff = newest - _KEEP_DAYS * _DAY
        if len(self._spent_by_day) > _KEEP_DAYS and cutoff > self._buckets_from:
            for day in [d for d in self._spent_by_day if d < cutoff]:
                del self._spent_by_day[day]
            self._buckets_from = cutoff

    def _expire(self, now: float) -> None:
        held = self._reservations
        for rid in [rid for rid, (_, expiry) in held.items() if expiry <= now]:
            del held[rid]
        self._reserved_total = sum(est for est, _ in held.values())
        self._next_expiry = min((expiry for _, expiry in held.values()), default=math.inf)


def _built(pending: list[Any]) -> list[CostRecord]:
    # The records of CostLedger._pending's entries, in order. A builder that fails still
    # leaves a record of the spend already counted: money is never missing from them.
    built = []
    columns = (pending[i::_ENTRY] for i in range(_ENTRY))
    for model, cost, timestamp, *figures, build, context, run_key in zip(*columns, strict=True):
        if build is None:
            built.append(context)  # built already (see CostLedger.record)
            continue
        counts = tuple(figures[:5])
        try:
            built.append(build(model, timestamp, counts, context, run_key))
        except Exception:
            logger.exception("building a cost record failed; kept with its cost only")
            tokens = dict(zip(_USAGE_FIELDS, counts, strict=True))
            built.append(CostRecord(model, cost_usd=cost, timestamp=timestamp, **tokens))
    return built


def _copy_summary(summary: LedgerSummary) -> LedgerSummary:
    copy = LedgerSummary(
        first_timestamp=summary.first_timestamp, last_timestamp=summary.last_timestamp
    )
    for name, totals in summary.models.items():
        clone = ModelTotals(**{k: getattr(totals, k) for k in ModelTotals.__dataclass_fields__})
        clone.tiers = dict(totals.tiers)
        copy.models[name] = clone
    return copy


__all__ = [
    "Budget",
    "BudgetCheck",
    "BudgetExceededError",
    "CostLedger",
    "CostRecord",
    "DeferredBuild",
    "DeferredRecordLedger",
    "LedgerProtocol",
    "LedgerSummary",
    "ModelTotals",
    "QuickReserveLedger",
    "TokenUsage",
    "admits",
    "check_estimate",
    "period_start",
    "summarize",
]
