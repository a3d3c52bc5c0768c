"""Room a budget keeps for an agent's next call while its tools run.

Opt-in (LlamaIndex: ``RouterLLM(hold_follow_ups=True)``). An agent's model call that
asks for tools is followed by a call that reads their results.
Admitted one by one, concurrent agent runs each got their first call in while there was
room, and then none of their follow-ups fit: the budget was spent and no run answered
(15 LlamaIndex ``FunctionAgent`` runs on a budget for about five calls: 0 answered, 79 %
of the budget spent). So an agent's call (one offered tools), once admitted, also holds
what its follow-up can cost (its own prompt, its answer at most the output cap, the
output cap again) when that fits: under the call's key until it answers, then under the
ids of the tool calls it made (``move``), or given back if it made none. The follow-up,
which carries those ids, gives the hold back just before it is admitted. Calls admitted
later find that room taken, so runs already started finish first (the same 15 runs: 1
to 4 answered). The price: a hold is a call's maximum, so with uncapped models it turns
away runs an ample budget would have answered (hence opt-in). A hold is best effort: one that
does not fit is not made (its follow-up is admitted as any call, a larger one than held
as well), and one nobody claims (the run was cancelled) expires after
``FOLLOW_UP_TTL_S``.

Example:
    >>> from costopt_core.accounting import CostAccountant
    >>> from costopt_core.budget_gate import CallQuote
    >>> from costopt_core.pricing import set_price
    >>> _ = set_price("doc-follow-up", input_per_token=1e-6, output_per_token=1e-6)
    >>> accountant = CostAccountant(budget_usd=1.0)
    >>> accountant.follow_ups.hold(["run-1"], CallQuote("doc-follow-up", 900, 100))
    True
    >>> round(accountant.ledger.reserved_usd, 6)  # 900 in, 100 out
    0.001
    >>> accountant.follow_ups.move("run-1", ["call_1", "call_2"])  # it asked for 2 tools
    >>> accountant.follow_ups.release(["call_2"])  # the follow-up carries the results
    >>> accountant.ledger.reserved_usd, len(accountant.follow_ups)
    (0, 0)
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Sequence
from typing import TYPE_CHECKING

from costopt_core.budget_gate import CallQuote, max_call_cost

if TYPE_CHECKING:
    from costopt_core.accounting import CostAccountant

logger = logging.getLogger(__name__)

#: How long a hold waits for its follow-up: a run cancelled while its tools ran must not
#: keep budget from the others for long (a slower tool's follow-up is admitted as usual).
FOLLOW_UP_TTL_S = 60.0
_HELD_KEPT = 4096  # tool-call ids held at most (the oldest holds are given back)


class FollowUpHolds:
    """The holds of one accountant, by tool-call id (thread-safe)."""

    __slots__ = ("_accountant", "_held", "_lock")

    def __init__(self, accountant: CostAccountant) -> None:
        self._accountant = accountant
        self._lock = threading.Lock()
        # Each id of an answer's tool calls -> that answer's one hold: [reservation, ids].
        self._held: OrderedDict[str, list[object]] = OrderedDict()

    def hold(self, keys: Sequence[str], quote: CallQuote) -> bool:
        """Reserve what the follow-up of ``keys`` can cost (``quote``: its model, its
        prompt, its output cap); True if held. Nothing is held when there is no budget,
        the model has no price or the hold does not fit."""
        accountant = self._accountant
        if not accountant.budgets or not keys:
            return False
        price = accountant.catalog.get(quote.model)
        if price is None:
            return False
        estimate = max_call_cost(price, quote.prompt_tokens, quote.max_output_tokens)
        ttl = min(FOLLOW_UP_TTL_S, accountant.reservation_ttl_seconds)
        try:
            check = accountant.ledger.reserve(estimate, accountant.budgets, ttl_seconds=ttl)
        except Exception:  # a ledger that cannot answer: the follow-up is admitted as usual
            logger.debug("holding an agent's follow-up call failed", exc_info=True)
            return False
        if not check.allowed or check.reservation_id is None:
            return False
        entry: list[object] = [check.reservation_id, list(keys)]
        dropped: list[object] = []
        with self._lock:
            for key in keys:
                replaced = self._held.get(key)
                if replaced is not None:  # held again (a stream's first and last chunk)
                    dropped.extend(self._take(replaced))
                self._held[key] = entry
            while len(self._held) > _HELD_KEPT:
                dropped.extend(self._take(self._held.popitem(last=False)[1]))
        for reservation in dropped:
            accountant.cancel(reservation)  # type: ignore[arg-type]
        return True

    def move(self, key: str, keys: Sequence[str]) -> None:
        """The hold made under ``key`` (a call, before its answer) now waits for the
        follow-up of the tool calls ``keys`` its answer made."""
        with self._lock:
            entry = self._held.pop(key, None)
            if entry is None or not keys:
                dropped = [] if entry is None else self._take(entry)
            else:
                entry[1] = list(keys)
                dropped = []
                for new_key in keys:
                    other = self._held.get(new_key)
                    if other is not None and other is not entry:  # ids shared (a cached
                        dropped.extend(self._take(other))  # answer, reused ids): give back
                    self._held[new_key] = entry
        for reservation in dropped:
            self._accountant.cancel(reservation)  # type: ignore[arg-type]

    def _take(self, entry: list[object]) -> list[object]:
        # Called with the lock held: the entry's ids forgotten, its reservation returned
        # once (an entry several ids share is taken by the first of them).
        for key in entry[1]:  # type: ignore[attr-defined]
            if self._held.get(key) is entry:
                del self._held[key]
        reservation, entry[0] = entry[0], None
        return [] if reservation is None else [reservation]

    def release(self, keys: Sequence[str]) -> None:
        """The follow-up of the tool calls ``keys`` is about to be admitted: their hold
        (any of the ids finds it) is given back."""
        if not self._held:  # no agent holds anything: one truth test per call
            return
        released: list[object] = []
        with self._lock:
            for key in keys:
                entry = self._held.get(key)
                if entry is not None:
                    released.extend(self._take(entry))
        for reservation in released:
            self._accountant.cancel(reservation)  # type: ignore[arg-type]

    def __len__(self) -> int:
        """How many tool-call ids hold a follow-up."""
        return len(self._held)


__all__ = ["FOLLOW_UP_TTL_S", "FollowUpHolds"]
