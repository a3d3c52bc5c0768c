"""``on_budget="downgrade"`` on a day or month budget: the flag a spent period set is
checked again when a new period starts (issue 16's audit: on a fresh UTC day a router's
batch and an agent's first turn were still sent to the cheapest tier)."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest

from costopt_core import set_price
from costopt_core.accounting import CostAccountant
from costopt_core.budget_gate import CallQuote
from costopt_core.ledger import TokenUsage

set_price("period-cheap", input_per_token=1e-6, output_per_token=2e-6)
set_price("period-strong", input_per_token=1e-5, output_per_token=3e-5)
TIERS = [CallQuote("period-cheap", 100, 100), CallQuote("period-strong", 100, 100)]
STRONG = 100 * 1e-5 + 100 * 3e-5  # $0.004 a call
DAY_ONE = datetime(2026, 3, 14, 12, tzinfo=UTC).timestamp()
DAY_TWO = datetime(2026, 3, 15, 0, 0, 5, tzinfo=UTC).timestamp()
MONTH_TWO = datetime(2026, 4, 1, 0, 0, 5, tzinfo=UTC).timestamp()


@pytest.fixture
def clock(monkeypatch) -> list[float]:
    now = [DAY_ONE]
    monkeypatch.setattr(time, "time", lambda: now[0])
    return now


def spend_strong_calls(acct: CostAccountant, n: int) -> None:
    for _ in range(n):
        reservation, downgraded = acct.admit(TIERS, routed=True)
        assert not downgraded
        acct.record_call("period-strong", TokenUsage(100, 100), reservation_id=reservation)


def test_a_new_day_clears_the_flag_before_any_call(clock) -> None:
    acct = CostAccountant(daily_budget_usd=2.5 * STRONG, on_budget="downgrade")
    spend_strong_calls(acct, 2)
    assert acct.downgrade is True  # a third strong call would not fit today
    clock[0] = DAY_TWO
    # Read before any call of the new day (a router's batch decides its tiers first).
    assert acct.downgrade is False
    spend_strong_calls(acct, 2)  # the new day's budget, on the strong tier
    assert acct.downgrade is True


def test_a_budget_still_spent_in_the_new_day_keeps_the_flag(clock) -> None:
    acct = CostAccountant(
        daily_budget_usd=2.5 * STRONG, monthly_budget_usd=2.5 * STRONG, on_budget="downgrade"
    )
    spend_strong_calls(acct, 2)
    clock[0] = DAY_TWO
    assert acct.downgrade is True  # the month's budget is as spent as yesterday
    clock[0] = MONTH_TWO
    assert acct.downgrade is False


def test_a_lifetime_budget_never_rolls_over(clock) -> None:
    acct = CostAccountant(budget_usd=2.5 * STRONG, on_budget="downgrade")
    spend_strong_calls(acct, 2)
    clock[0] = MONTH_TWO
    assert acct.downgrade is True
