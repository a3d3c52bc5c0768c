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
from collections.abc import Iterable
from typing import Protocol, runtime_checkable

from costopt_core.ledger import BudgetExceededError

logger = logging.getLogger(__name__)

# A budget reservation opened for one call: the gate that holds it and its id.
Reservation = tuple["BudgetGate", "str | None"]


@runtime_checkable
class DowngradeSignal(Protocol):
    """A handler that may ask routers to answer with their cheapest tier."""

    @property
    def downgrade_requested(self) -> bool:
        """True while over budget with ``on_budget="downgrade"``."""
        ...


@runtime_checkable
class BudgetGate(DowngradeSignal, Protocol):
    """A handler that reserves a call's budget before the model is called."""

    def reserve_call(self, *, routed: bool = False) -> str | None:
        """Raise ``BudgetExceededError`` or return a reservation id (None: nothing held)."""
        ...

    def release_call(self, reservation: str | None) -> None:
        """The call failed before spending: drop its reservation."""
        ...


def downgrade_requested(handlers: Iterable[object] | None) -> bool:
    """Whether any of ``handlers`` asks for the cheapest tier (a broken one is logged)."""
    for handler in handlers or ():
        if not isinstance(handler, DowngradeSignal):
            continue
        try:
            if handler.downgrade_requested:
                return True
        except Exception:  # a broken handler must not break routing
            logger.exception("downgrade_requested failed on %r", handler)
    return False


def open_budget(gates: Iterable[BudgetGate], *, routed: bool) -> list[Reservation]:
    """Ask each gate before calling a model. ``BudgetExceededError`` propagates (after
    the reservations already made are released); any other gate failure is logged."""
    reservations: list[Reservation] = []
    for gate in gates:
        try:
            reservations.append((gate, gate.reserve_call(routed=routed)))
        except BudgetExceededError:
            release_budget(reservations)
            raise
        except Exception:
            logger.exception("budget check failed on %r; the call goes ahead", gate)
    return reservations


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
    "BudgetGate",
    "DowngradeSignal",
    "Reservation",
    "downgrade_requested",
    "open_budget",
    "release_budget",
]
