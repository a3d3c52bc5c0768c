"""What BudgetMiddleware and CostRoutingMiddleware tell each other, whichever order they
are listed in: the mark of a budget stop, and whether a call was routed inside the budget.

Example:
    >>> from langchain_core.messages import AIMessage
    >>> with watching_routing() as routed:
    ...     note_routing()  # what CostRoutingMiddleware does for each call it routes
    >>> routed, is_budget_stop(AIMessage("hi"))
    ([True], False)
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from langchain_core.messages import AIMessage

#: ``response_metadata`` key of the message a budget stop ends the agent with.
BUDGET_KEY = "costopt_budget"

# Set by a BudgetMiddleware around the call it holds: a routing middleware inside it
# (listed after it) notes each call it routes there. A list, not a flag: the context an
# inner middleware runs in may be a copy, the list in it is the same.
_ROUTED: ContextVar[list[bool] | None] = ContextVar("costopt_routed_inside", default=None)


def is_budget_stop(message: object) -> bool:
    """Whether ``message`` is the final message of an agent a budget stopped.

    Example:
        >>> is_budget_stop(AIMessage("hi")), is_budget_stop(
        ...     AIMessage("stopped", response_metadata={BUDGET_KEY: {"stopped": True}})
        ... )
        (False, True)
    """
    if not isinstance(message, AIMessage):
        return False
    record = message.response_metadata.get(BUDGET_KEY)
    return isinstance(record, dict) and record.get("stopped") is True


@contextmanager
def watching_routing() -> Iterator[list[bool]]:
    """Around a call: the list it yields is non-empty once a call was routed inside."""
    routed: list[bool] = []
    token = _ROUTED.set(routed)
    try:
        yield routed
    finally:
        _ROUTED.reset(token)


def note_routing() -> None:
    """A routing middleware routes a call: tell the budget middleware it runs inside."""
    routed = _ROUTED.get()
    if routed is not None and not routed:
        routed.append(True)


__all__ = ["BUDGET_KEY", "is_budget_stop", "note_routing", "watching_routing"]
