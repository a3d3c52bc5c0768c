"""What a router or a cache wrapper asks of a cost handler before it calls a model.

Cost handlers (``CostCallbackHandler``, ``CostEventHandler``) enforce budgets; the
routers and wrappers that call models consult them through these protocols, never
through attribute names looked up by string.

Example:
    >>> class Handler:
    ...     downgrade_requested = True
    >>> downgrade_requested([object(), Handler()])
    True
    >>> isinstance(Handler(), DowngradeSignal), isinstance(Handler(), BudgetGate)
    (True, False)
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import NamedTuple, Protocol, runtime_checkable

from costopt_core.ledger import BudgetExceededError
from costopt_core.pricing import ModelPrice, PriceCatalog, default_catalog

logger = logging.getLogger(__name__)

# A budget reservation opened for one call: the gate that holds it and its id.
Reservation = tuple["BudgetGate", "str | None"]

# What a call may write when neither the call nor its model says (no ``max_tokens``):
# a budget must reserve some maximum, and most chat answers stay well below this.
DEFAULT_MAX_OUTPUT_TOKENS = 4096


#: The names providers give a call's output cap (OpenAI, its reasoning models, Hugging
#: Face / vLLM / llama.cpp, Gemini, Ollama), in the order they are read.
OUTPUT_LIMIT_KEYS: tuple[str, ...] = (
    "max_tokens",
    "max_completion_tokens",
    "max_new_tokens",
    "max_output_tokens",
    "num_predict",
)


def output_limit_in(settings: object) -> int | None:
    """The output cap a call's settings (or a model's) name, if any (a positive int).

    Example:
        >>> output_limit_in({"temperature": 0, "max_new_tokens": 512}), output_limit_in({})
        (512, None)
    """
    if not isinstance(settings, Mapping):
        return None
    for key in OUTPUT_LIMIT_KEYS:
        value = settings.get(key)
        if type(value) is int and value > 0:
            return value
    return None


def max_call_cost(price: ModelPrice, prompt_tokens: int, max_output_tokens: int | None) -> float:
    """The most a call can cost at ``price``: its prompt at the input price plus its output
    limit (``DEFAULT_MAX_OUTPUT_TOKENS`` when it sets none) at the output price.

    Example:
        >>> max_call_cost(ModelPrice(input=1e-6, output=4e-6), 1000, 500)
        0.003
    """
    output = (
        max_output_tokens
        if max_output_tokens is not None and max_output_tokens > 0
        else DEFAULT_MAX_OUTPUT_TOKENS
    )
    # ModelPrice.cost for plain input and output tokens, without its keyword call:
    # this runs before every budgeted call.
    return prompt_tokens * price.input + output * price.output


class CallQuote(NamedTuple):
    """The most a call can cost: its model, its prompt, and the most it may write.

    A named tuple, immutable like a frozen dataclass: one is built before every budgeted
    call, and a frozen dataclass's ``__init__`` (one ``object.__setattr__`` per field)
    costs several times a tuple's.

    Example:
        >>> from costopt_core import set_price
        >>> _ = set_price("quote-model", input_per_token=1e-6, output_per_token=4e-6)
        >>> CallQuote("quote-model", prompt_tokens=1000, max_output_tokens=500).max_cost()
        0.003
    """

    model: str | None
    prompt_tokens: int
    max_output_tokens: int | None = None

    def max_cost(self, catalog: PriceCatalog | None = None) -> float | None:
        """Priced input plus the output limit at the output price (None: unpriced)."""
        price = (catalog or default_catalog).get(self.model) if self.model else None
        if price is None:
            return None
        return max_call_cost(price, self.prompt_tokens, self.max_output_tokens)


@runtime_checkable
class DowngradeSignal(Protocol):
    """A handler that may ask routers to answer with their cheapest tier."""

    @property
    def downgrade_requested(self) -> bool:
        """True while over budget with ``on_budget="downgrade"``."""
        ...


@runtime_checkable
class RunDowngradeSignal(Protocol):
    """A handler that admitted one call only on the cheapest tier."""

    def downgraded_run(self, run_id: object) -> bool:
        """True when the call ``run_id`` (a run or span id) must take the cheapest tier."""
        ...


@runtime_checkable
class BudgetGate(DowngradeSignal, RunDowngradeSignal, Protocol):
    """A handler that reserves a call's budget before the model is called."""

    def reserve_call(self, *, routed: bool = False, quotes: Sequence[CallQuote] = ()) -> str | None:
        """Reserve the most the call can cost; raise ``BudgetExceededError`` if it cannot
        fit, or return a reservation id (None: nothing held).

        ``quotes`` are the call's possible models, cheapest first (a router's tiers): the
        dearest is reserved; when only the cheapest fits and the gate downgrades, that is
        reserved and ``downgraded_run`` says so for the current call.
        """
        ...

    def release_call(self, reservation: str | None) -> None:
        """The call failed before spending: drop its reservation."""
        ...


@runtime_checkable
class TierReservation(Protocol):
    """A handler holding a routed call's budget (reserved for the tier the call starts
    on) that reserves more before the call climbs to another tier."""

    def reserve_tier(self, run_id: object, tier: str, quote: CallQuote | None) -> None:
        """Reserve what ``tier`` can cost (``quote``, or the handler's own quote of the
        run's tier when None) for the run or span ``run_id``, on top of what it holds
        (released with the rest at its end); ``BudgetExceededError`` when it does not
        fit. A run it holds nothing for is left alone. (A tier that failed is released
        first: see ``TierRelease``.)"""
        ...


@runtime_checkable
class TierRelease(Protocol):
    """A ``TierReservation`` handler that gives back what a routed call holds for a tier
    that failed, before the next tier reserves: a failed call billed nothing, and held on
    top of the next tier's reservation it kept others (and the call itself, near the end
    of a budget) from what the budget still has room for.

    Example:
        >>> class Holder:
        ...     def reserve_tier(self, run_id, tier, quote): ...
        ...     def release_tier(self, run_id, tier): ...
        >>> isinstance(Holder(), TierRelease), isinstance(Holder(), TierReservation)
        (True, True)
    """

    def release_tier(self, run_id: object, tier: str) -> None:
        """``tier`` failed in the run or span ``run_id`` without an answer: drop what the
        run holds for it (the reservation ``reserve_tier`` made for it, else the one the
        run was admitted with, which covers the tier it started on). The engine asks only
        for a tier the run holds a reservation for, never for one a cascade rejected (its
        answer was paid for). A run it holds nothing for is left alone."""
        ...


@runtime_checkable
class FollowUpHold(Protocol):
    """A handler that keeps room for an agent's next call while its tools run (see
    ``costopt_core.follow_ups``): held once an agent's call is admitted, passed to the
    tool calls its answer makes, given back just before the call carrying their results
    is admitted."""

    def hold_follow_up(self, keys: Sequence[str], quote: CallQuote) -> bool:
        """Hold what the follow-up of ``keys`` can cost (``quote``); False if it does not
        fit (the follow-up is then admitted as any call)."""
        ...

    def move_follow_up(self, key: str, keys: Sequence[str]) -> None:
        """The hold under ``key`` now waits for the follow-up of the tool calls ``keys``
        (none: given back)."""
        ...

    def release_follow_up(self, keys: Sequence[str]) -> None:
        """Give back the hold of ``keys`` (none held: nothing)."""
        ...


_CONFORMS: dict[tuple[type, type], bool] = {}


def conforms(handler: object, protocol: type) -> bool:
    """``isinstance(handler, protocol)``, remembered per handler class: a runtime protocol
    check costs ~20 µs, and routers make it for every handler on every call.

    Example:
        >>> class Handler:
        ...     downgrade_requested = False
        >>> conforms(Handler(), DowngradeSignal), conforms(Handler(), BudgetGate)
        (True, False)
    """
    key = (type(handler), protocol)
    found = _CONFORMS.get(key)
    if found is None:
        found = _CONFORMS[key] = isinstance(handler, protocol)
    return found


def downgrade_requested(handlers: Iterable[object] | None, run_id: object = None) -> bool:
    """Whether any of ``handlers`` asks for the cheapest tier (a broken one is logged).

    With ``run_id``, a handler that admits calls one by one (``RunDowngradeSignal``)
    answers for that call alone: a call it admitted at full price keeps its tier even
    while others are downgraded. Otherwise a handler's ``downgrade_requested`` holds for
    every call.
    """
    for handler in handlers or ():
        try:
            if run_id is not None and conforms(handler, RunDowngradeSignal):
                if handler.downgraded_run(run_id):  # type: ignore[attr-defined]
                    return True
            elif conforms(handler, DowngradeSignal) and handler.downgrade_requested:  # type: ignore[attr-defined]
                return True
        except Exception:  # a broken handler must not break routing
            logger.exception("the downgrade check failed on %r", handler)
    return False


def open_budget(
    gates: Iterable[BudgetGate], *, routed: bool, quotes: Sequence[CallQuote] = ()
) -> list[Reservation]:
    """Ask each gate before calling a model. ``BudgetExceededError`` propagates (after
    the reservations already made are released); any other gate failure is logged."""
    reservations: list[Reservation] = []
    for gate in gates:
        try:
            reservations.append((gate, gate.reserve_call(routed=routed, quotes=quotes)))
        except BudgetExceededError:
            release_budget(reservations)
            raise
        except Exception:
            logger.exception("budget check failed on %r; the call goes ahead", gate)
    return reservations


def hold_follow_up(handlers: Iterable[object], keys: Sequence[str], quote: CallQuote) -> None:
    """Ask each ``FollowUpHold`` handler to keep room for the follow-up of ``keys`` (a
    failing handler is logged, never raised: a hold is best effort)."""
    for handler in handlers:
        if keys and conforms(handler, FollowUpHold):
            try:
                handler.hold_follow_up(keys, quote)  # type: ignore[attr-defined]
            except Exception:
                logger.exception("holding an agent's follow-up failed on %r", handler)


def move_follow_up(handlers: Iterable[object], key: str, keys: Sequence[str]) -> None:
    """The holds under ``key`` now wait for the follow-up of the tool calls ``keys``."""
    for handler in handlers:
        if conforms(handler, FollowUpHold):
            try:
                handler.move_follow_up(key, keys)  # type: ignore[attr-defined]
            except Exception:
                logger.exception("passing an agent's follow-up hold on failed on %r", handler)


def release_follow_up(handlers: Iterable[object], keys: Sequence[str]) -> None:
    """Give the holds of ``keys`` back (their follow-up is about to be admitted, or the
    call that held them failed)."""
    for handler in handlers:
        if keys and conforms(handler, FollowUpHold):
            try:
                handler.release_follow_up(keys)  # type: ignore[attr-defined]
            except Exception:
                logger.exception("releasing an agent's follow-up hold failed on %r", handler)


def release_budget(reservations: Iterable[Reservation]) -> None:
    """Release the reservations of a call that failed before spending."""
    for gate, reservation in reservations:
        if reservation is None:
            continue
        try:
            gate.release_call(reservation)
        except Exception:
            logger.exception("releasing a budget reservation failed")


__all__ = [
    "DEFAULT_MAX_OUTPUT_TOKENS",
    "OUTPUT_LIMIT_KEYS",
    "BudgetGate",
    "CallQuote",
    "DowngradeSignal",
    "FollowUpHold",
    "Reservation",
    "RunDowngradeSignal",
    "TierRelease",
    "TierReservation",
    "conforms",
    "downgrade_requested",
    "hold_follow_up",
    "max_call_cost",
    "move_follow_up",
    "open_budget",
    "output_limit_in",
    "release_budget",
    "release_follow_up",
]
