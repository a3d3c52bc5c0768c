"""The one tier-attempt loop: every routed call of every face runs through it.

Example:
    >>> from costopt_core.engine import RoutingEngine
    >>> engine = RoutingEngine("rules", {"simple": "deepseek-v3", "complex": "gpt-4o"})
    >>> def ask(tier):  # a face's "ask this tier's model"; the cheap one is down
    ...     if tier == "simple":
    ...         raise ConnectionError("provider down")
    ...     return f"answer from {tier}"
    >>> answered = engine.begin("请翻译: good morning").run(ask)
    >>> answered.result, answered.info["fallback_from"], answered.info["model"]
    ('answer from complex', 'simple', 'gpt-4o')

A :class:`RoutingEngine` holds what a router is configured with (strategy, tiers cheapest
first, each tier's model name, fallback on or off). :meth:`RoutingEngine.begin` opens one
call: it reserves budgets (when asked to), picks the tier (a ``model=`` override, a budget
downgrade, a tier pinned by tool history, else the strategy) and returns a
:class:`RoutedCall`, the state machine of that call's attempts. The face hands
:meth:`RoutedCall.run` (or ``await`` :meth:`RoutedCall.arun`) its "ask this tier's model"
function; the engine calls it tier by tier:

* an exception moves to the next tier up (``fallback=True``); for streams the face's
  function opens the stream and takes its first chunk, so a stream falls back only
  before the user sees anything. ``BudgetExceededError`` is a refusal, not a failure:
  it never climbs to a dearer tier; when a handler downgrades (``on_budget="downgrade"``)
  the cheapest tier is asked instead, once, and the record says ``downgraded_from``.
  When no tier is left the first error is raised and the call's budget reservations
  are released. A failed tier billed nothing: what the call holds for it is released
  (``TierRelease``) before the next tier reserves its own maximum.
* a strategy with ``accept(question, answer_text, tier)`` (a cascade) judges every
  answer but the last tier's; a rejected answer is kept in the record's ``attempts``
  (it was paid for) and the next tier is asked. An ``accept`` that raises is logged and
  the answer accepted: a broken check must not break the user's call.
* a strategy whose ``route`` raises fails the call before any model is called (it is
  a configuration error, e.g. a tier name the router does not have).

The answer comes back with its routing record (:attr:`Answered.info`): ``tier``,
``model``, ``score``, ``reason``, ``fallback_from`` when a fallback answered,
``escalated_from`` / ``attempts`` when a cascade escalated, ``downgraded_from`` when a
budget refusal sent the call to the cheapest tier.

Where things live: the engine decides (this module; strategies in
:mod:`costopt_core.strategies`, budgets in :mod:`costopt_core.budget_gate` and
:mod:`costopt_core.accounting`); ``langchain_costopt.chat_models`` (``RouterChatModel``),
``langchain_costopt.middleware.routing`` (``CostRoutingMiddleware``) and
``llamaindex_costopt.router`` (``RouterLLM``) only translate their framework's calls into
``begin``/``start`` and "ask this tier" functions, and the answers back.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, NamedTuple, TypeVar

from costopt_core.budget_gate import (
    BudgetGate,
    CallQuote,
    Reservation,
    TierRelease,
    TierReservation,
    conforms,
    downgrade_requested,
    open_budget,
    release_budget,
)
from costopt_core.decision import (
    RouteDecision,
    check_strategy_tiers,
    resolve_tier,
    routing_info,
)
from costopt_core.ledger import BudgetExceededError
from costopt_core.strategies import StrategyLike, as_strategy, strategy_signature

logger = logging.getLogger(__name__)

R = TypeVar("R")

# The routing record's keys (``response_metadata["routing"]`` / ``additional_kwargs``).
ROUTING_KEY = "routing"
PINNED_REASON = "conversation holds tool calls: stay on one model"
DOWNGRADE_REASON = "budget exceeded: downgraded"


@dataclass(frozen=True)
class AnswerFacts:
    """What the engine reads from an answer to judge it and to account a rejected one."""

    text: str
    usage: dict[str, Any] | None = None
    model: str | None = None


class Answered(NamedTuple, Generic[R]):
    """The accepted answer of a routed call, the tier that gave it and its routing record."""

    result: R
    tier: str
    info: dict[str, Any]


def _no_facts(result: Any) -> AnswerFacts | None:
    return AnswerFacts(result) if isinstance(result, str) else None


class RoutingEngine:
    """A router's configuration and its decisions, framework-free.

    Args:
        strategy: a strategy object, a built-in name or a ``text -> tier`` callable.
        models: tier name -> model name, cheapest first (at least two tiers).
        fallback: on a failure, climb to the next tier (else the error is raised).
        read_answer: the face's reader of an answer (its text, usage, model name), used
            by a cascade's check; ``None`` from it means nothing to judge (accepted).
        argument: the face's name for its tier mapping, used in error messages.
        propagate: exceptions that are the framework's control flow, not a model's
            failure (e.g. LangGraph's interrupts): raised at once, never a fallback.
    """

    def __init__(
        self,
        strategy: StrategyLike,
        models: Mapping[str, str],
        *,
        fallback: bool = True,
        read_answer: Callable[[Any], AnswerFacts | None] = _no_facts,
        argument: str = "models",
        propagate: tuple[type[BaseException], ...] = (),
    ) -> None:
        self.strategy = as_strategy(strategy)
        self.tiers: tuple[str, ...] = tuple(models)
        self.names: dict[str, str] = dict(models)
        self.fallback = fallback
        self.read_answer = read_answer
        self.propagate = (BudgetExceededError, *propagate)
        # A trained strategy's own tier names, mapped by place onto these (if needed).
        self.places = check_strategy_tiers(self.strategy, self.tiers, argument=argument)
        accept = getattr(self.strategy, "accept", None)
        self.accept: Callable[[str, str, str], bool] | None = accept if callable(accept) else None
        # Model name -> tier; the cheapest tier wins when two tiers share a model.
        self.by_name = {name: tier for tier, name in reversed(self.names.items())}
        self.signature = strategy_signature(self.strategy)

    @property
    def judges_answers(self) -> bool:
        """Whether the strategy checks answers (a stream must then be answered whole)."""
        return self.accept is not None

    # -- decisions ---------------------------------------------------------------------

    def decide(self, text: str) -> RouteDecision:
        """The strategy's decision for ``text``, mapped onto this router's tiers."""
        decision = self.strategy.route(text)
        tier = self.places.get(decision.tier) or resolve_tier(decision, self.tiers)
        if tier != decision.tier:
            decision = RouteDecision(tier, decision.score, decision.reason, decision.extra)
        return decision

    def tier_named(self, name: object) -> str | None:
        """The tier that ``name`` (a tier name or a tier's model name) names, if any."""
        if not isinstance(name, str):
            return None
        return name if name in self.names else self.by_name.get(name)

    def forced(self, override: str) -> RouteDecision:
        """A ``model=`` override: a tier name or a tier's model name, else ValueError."""
        tier = self.tier_named(override)
        if tier is None:
            raise ValueError(
                f"model={override!r} names no tier of this router; use a tier name "
                f"{list(self.tiers)!r} or a tier's model name {list(self.by_name)!r}"
            )
        score = self.tiers.index(tier) / (len(self.tiers) - 1)
        return RouteDecision(tier, score, f"model override: {override}")

    def choose(
        self,
        question: str,
        *,
        override: str | None = None,
        pinned: str | None = None,
        downgrade: bool = False,
        decided: RouteDecision | None = None,
    ) -> RouteDecision:
        """Override first, then a budget downgrade (nothing outranks the budget but an
        explicit override), then a tier pinned by tool history, then the strategy.
        ``decided``: what this rule gave for the call before its budget was known (a face
        routes before the run starts, so the budget reserves the tier it will ask); it
        stands unless the budget downgrades the call."""
        if decided is not None and (override is not None or not downgrade):
            return decided
        if override is not None:
            return self.forced(override)
        if downgrade:
            return RouteDecision(self.tiers[0], 0.0, DOWNGRADE_REASON)
        if pinned is not None:
            return RouteDecision(pinned, 0.5, PINNED_REASON)
        return self.decide(question)

    def order_from(self, tier: str) -> tuple[str, ...]:
        """The tiers a call that starts on ``tier`` may try, in order."""
        return self.tiers[self.tiers.index(tier) :] if self.fallback else (tier,)

    def begin(
        self,
        question: str,
        *,
        handlers: Iterable[object] = (),
        reserve: bool = False,
        quotes: Sequence[CallQuote] = (),
        run_id: object = None,
        override: str | None = None,
        pinned: str | None = None,
        decided: RouteDecision | None = None,
    ) -> RoutedCall:
        """Open one routed call: reserve budgets (``reserve=True``: each ``BudgetGate``
        among ``handlers`` reserves the most the call can cost, from ``quotes``, one per
        tier, cheapest first; ``BudgetExceededError`` propagates before any model is
        called), honour a downgrade asked by any handler (for every call, or for this
        call ``run_id``), and pick the tier (``decided``: see :meth:`choose`)."""
        handlers = list(handlers)
        reservations: list[Reservation] = []
        tier_quotes: dict[str, CallQuote] = {}
        if reserve:
            if len(quotes) == len(self.tiers):
                # The tier the call starts on is reserved (and the cheapest, for a
                # downgrade), not the dearest: a climb reserves the next tier then.
                tier_quotes = dict(zip(self.tiers, quotes, strict=True))
                if decided is None:
                    decided = self.choose(question, override=override, pinned=pinned)
                first = tier_quotes[decided.tier]
                quotes = [quotes[0]] if first is quotes[0] else [quotes[0], first]
            gates = [h for h in handlers if conforms(h, BudgetGate)]
            reservations = open_budget(gates, routed=True, quotes=quotes)
        try:
            decision = self.choose(
                question,
                override=override,
                pinned=pinned,
                downgrade=downgrade_requested(handlers, run_id),
                decided=decided,
            )
        except BaseException:
            release_budget(reservations)
            raise
        return RoutedCall(self, decision, question, reservations, handlers, run_id, tier_quotes)

    def start(
        self, decision: RouteDecision, question: str = "", handlers: Iterable[object] = ()
    ) -> RoutedCall:
        """Open a routed call on a decision the face made itself (e.g. an agent's
        follow-up call placed below its turn's tier)."""
        return RoutedCall(self, decision, question, handlers=handlers)


class RoutedCall:
    """One routed call's walk up the tiers (see the module docstring).

    Faces drive it with :meth:`run` / :meth:`arun`; a face that already holds the first
    tier's outcome (a grouped batch) reports it with :meth:`settle` and then runs on.
    """

    __slots__ = (
        "_answer",
        "_downgraded_from",
        "_failed_tier",
        "_holds",
        "_order",
        "_position",
        "_rejected",
        "attempts",
        "decision",
        "engine",
        "first_error",
        "handlers",
        "question",
        "reservations",
        "run_id",
        "tier_quotes",
    )

    def __init__(
        self,
        engine: RoutingEngine,
        decision: RouteDecision,
        question: str,
        reservations: Sequence[Reservation] = (),
        handlers: Iterable[object] = (),
        run_id: object = None,
        tier_quotes: Mapping[str, CallQuote] | None = None,
    ) -> None:
        self.engine = engine
        self.decision = decision
        self.question = question
        self.reservations = list(reservations)
        self.handlers = list(handlers)
        self.run_id = run_id
        self._downgraded_from: str | None = None
        self.attempts: list[dict[str, Any]] = []
        self.first_error: BaseException | None = None
        self._failed_tier: str | None = None
        self._order = engine.order_from(decision.tier)
        self._position = 0
        self._answer: Answered[Any] | None = None
        self._rejected: tuple[str, Any] | None = None  # a cascade's last rejected answer
        # The tier whose budget reservation the call took last (the run's own covers the
        # tier it starts on), while that tier may still answer: given back if it fails.
        self._holds: str | None = self._order[0]
        # Each tier's quote, when the engine holds the call's budget (see begin).
        self.tier_quotes: Mapping[str, CallQuote] = tier_quotes or {}

    # -- the state machine -------------------------------------------------------------

    def next_tier(self) -> str | None:
        """The tier to ask now, or None once the call is answered."""
        if self._answer is not None:
            return None
        return self._order[self._position]

    def without_fallback(self) -> None:
        """Ask no tier after the current one: its failure ends the call with its error.

        For deferred calls (a provider's batch API at half price): a batch that failed
        or was refused must not turn into direct calls on a dearer tier.
        """
        self._order = self._order[: self._position + 1]

    def settle(self, tier: str, result: Any = None, error: BaseException | None = None) -> None:
        """Report how ``tier`` answered: an error, or a result the cascade may reject."""
        if tier != self.next_tier():
            raise RuntimeError(f"tier {tier!r} was not the one to ask ({self.next_tier()!r})")
        last = self._position == len(self._order) - 1
        if error is not None:
            if tier == self._holds:
                self._give_back(tier)
            self._failed(tier, error, last)
        elif last or self._accepted(tier, result):
            self._answer = Answered(result, tier, self.record(tier))
        self._position += 1

    def _failed(self, tier: str, error: BaseException, last: bool) -> None:
        if isinstance(error, BudgetExceededError) and self._rejected is not None:
            # The budget cannot hold the escalation: the answer the cascade rejected was
            # paid for, and is better than none.
            rejected_tier, result = self._rejected
            self.attempts.pop()  # it is the answer now, not a rejected attempt
            info = self.record(rejected_tier)
            info["escalation_refused"] = str(error)
            self._answer = Answered(result, rejected_tier, info)
            return
        if self._downgrade_instead(tier, error):
            return
        if isinstance(error, self.engine.propagate):
            release_budget(self.reservations)
            raise error
        if self.first_error is None:
            self.first_error, self._failed_tier = error, tier
        else:  # the first error is raised: it names what the tiers above it said
            self.first_error.add_note(
                f"then tier {tier!r} ({self.engine.names[tier]}) failed too: {error!r}"
            )
        logger.warning("tier %r (%s) failed: %r", tier, self.engine.names[tier], error)
        if last:
            release_budget(self.reservations)
            raise self.first_error from None

    def _give_back(self, tier: str) -> None:
        # A failed call billed nothing: held on top of the next tier's reservation, its
        # reservation kept other calls (and this one, near the budget's end) out of room
        # the budget still had. A rejected answer was paid for: it never comes here.
        self._holds = None
        for handler in self.handlers:
            if conforms(handler, TierRelease):
                try:
                    handler.release_tier(self.run_id, tier)
                except Exception:  # held until the run ends: stricter, never over
                    logger.exception("releasing failed tier %r's budget failed", tier)

    def _downgrade_instead(self, tier: str, error: BaseException) -> bool:
        """A budget refused ``tier`` at the model's start and a handler downgrades: the
        cheapest tier is asked next (once), instead of giving up."""
        cheapest = self.engine.tiers[0]
        if (
            not isinstance(error, BudgetExceededError)
            or tier == cheapest
            or self._downgraded_from is not None
            or cheapest in self._order[: self._position]  # asked already (and failed)
            or not downgrade_requested(self.handlers, self.run_id)
        ):
            return False
        logger.warning("budget refused tier %r; the cheapest tier %r answers", tier, cheapest)
        self._downgraded_from = tier
        self._order = (*self._order[: self._position + 1], cheapest)
        return True

    def _accepted(self, tier: str, result: Any) -> bool:
        accept = self.engine.accept
        if accept is None:
            return True
        try:
            facts = self.engine.read_answer(result)
            if facts is None or accept(self.question, facts.text, tier):
                return True
        except Exception:
            logger.exception("the cascade's answer check failed; the answer is accepted")
            return True
        model = facts.model or self.engine.names[tier]
        self.attempts.append({"tier": tier, "model": model, "usage": facts.usage})
        self._rejected = (tier, result)
        return False

    def record(self, tier: str) -> dict[str, Any]:
        """The routing record for an answer from ``tier``."""
        fallback_from = self._failed_tier if tier != self._failed_tier else None
        info = routing_info(self.decision, tier, self.engine.names[tier], fallback_from)
        if self.attempts:
            info["escalated_from"] = [a["tier"] for a in self.attempts]
            info["attempts"] = [dict(a) for a in self.attempts]
        if self._downgraded_from is not None and tier != self._downgraded_from:
            info["downgraded_from"] = self._downgraded_from
            info["reason"] = DOWNGRADE_REASON
        return info

    def answered(self) -> Answered[Any]:
        """The accepted answer (after :meth:`run`, or :meth:`settle` calls that ended it)."""
        if self._answer is None:
            raise RuntimeError("the routed call has no answer yet")
        return self._answer

    # -- drivers: the same walk, sync or async -----------------------------------------

    def reserve_climb(self, tier: str) -> None:
        """Before a tier other than the first is asked (a fallback, an escalation, a
        downgrade's retry): reserve what it can cost, on top of what is held: a rejected
        answer was paid for, while a tier that failed was given back when it failed
        (``TierRelease``). ``BudgetExceededError`` when it does not fit: a refusal ends
        the climb. Handlers hold the reservations (``TierReservation``), with the tier's
        quote when the call was opened with quotes (``begin(reserve=True)``)."""
        if self._position == 0:
            return
        quote = self.tier_quotes.get(tier)
        for handler in self.handlers:
            if conforms(handler, TierReservation):
                handler.reserve_tier(self.run_id, tier, quote)
        self._holds = tier  # every handler holds it now (a refusal leaves it unheld)

    def run(self, ask: Callable[[str], R]) -> Answered[R]:
        """Ask tier after tier with ``ask(tier)`` until one answer is accepted."""
        try:
            while (tier := self.next_tier()) is not None:
                self.settle(tier, *_attempt(ask, tier, self.reserve_climb))
        except BaseException as exc:
            self._stopped(exc)
            raise
        return self.answered()

    async def arun(self, ask: Callable[[str], Awaitable[R]]) -> Answered[R]:
        """Async :meth:`run`: ``ask(tier)`` returns an awaitable."""
        try:
            while (tier := self.next_tier()) is not None:
                self.settle(tier, *await _aattempt(ask, tier, self.reserve_climb))
        except BaseException as exc:
            self._stopped(exc)
            raise
        return self.answered()

    def _stopped(self, exc: BaseException) -> None:
        # Cancelled (an asyncio timeout) or interrupted mid-call: no tier answered, and
        # none will. (A model's errors are Exceptions: settle has dealt with them.)
        if not isinstance(exc, Exception):
            release_budget(self.reservations)


def _attempt(
    ask: Callable[[str], Any], tier: str, reserve: Callable[[str], None]
) -> tuple[Any, Exception | None]:
    try:
        reserve(tier)
        return ask(tier), None
    except Exception as exc:
        return None, exc


async def _aattempt(
    ask: Callable[[str], Awaitable[Any]], tier: str, reserve: Callable[[str], None]
) -> tuple[Any, Exception | None]:
    try:
        reserve(tier)
        return await ask(tier), None
    except Exception as exc:
        return None, exc


__all__ = [
    "DOWNGRADE_REASON",
    "PINNED_REASON",
    "ROUTING_KEY",
    "AnswerFacts",
    "Answered",
    "RoutedCall",
    "RoutingEngine",
]
