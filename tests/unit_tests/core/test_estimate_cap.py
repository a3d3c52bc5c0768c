"""A call without usage, costed from its text, is booked at most the output its
``max_tokens`` allows (issue 16's audit: 134 estimated output tokens for a 100-token cap,
total_cost at 122 % of the budget the reservations had held to 95 %)."""

from __future__ import annotations

import pytest

from costopt_core import set_price
from costopt_core.accounting import CallText, CostAccountant
from costopt_core.budget_gate import CallQuote, max_call_cost
from costopt_core.pricing import default_catalog

set_price("capped-zh", input_per_token=1e-6, output_per_token=4e-6)
set_price("capped-strong", input_per_token=1e-5, output_per_token=3e-5)
ANSWER = "请分析并比较两种架构" * 20  # 200 tokens by the approximate counter


def test_an_estimate_is_held_to_the_cap_the_call_reserved() -> None:
    acct = CostAccountant(budget_usd=1.0)
    reservation = acct.admit_call("capped-zh", 20, 100)
    text = CallText(["请分析"], ANSWER)
    assert reservation is not None
    record = acct.record_call("capped-zh", None, reservation_id=reservation, text=text)
    assert record.output_tokens == 100 and record.estimated
    reserved = max_call_cost(default_catalog.get("capped-zh"), 20, 100)
    assert record.cost_usd <= reserved  # the prompt's count stays below its quote
    assert acct.ledger.reserved_usd == 0.0  # type: ignore[attr-defined]


def test_a_routed_call_is_held_to_its_tiers_largest_cap() -> None:
    acct = CostAccountant(budget_usd=1.0)
    quotes = [CallQuote("capped-zh", 20, 50), CallQuote("capped-strong", 20, 150)]
    reservation, _ = acct.admit(quotes, routed=True)
    record = acct.record_call(
        "capped-strong", None, reservation_id=reservation, text=CallText(["q"], ANSWER)
    )
    assert record.output_tokens == 150


@pytest.mark.parametrize("budget", [None, 1.0])
def test_without_a_cap_the_count_stands(budget) -> None:
    acct = CostAccountant(budget_usd=budget)
    reservation = acct.admit_call("capped-zh", 20)  # no max_tokens: 4,096 reserved
    record = acct.record_call(
        "capped-zh", None, reservation_id=reservation, text=CallText(["q"], ANSWER)
    )
    assert record.output_tokens == 200


def test_the_face_may_give_the_cap_with_the_text() -> None:
    # Without a budget no reservation holds the cap: the face passes it along.
    acct = CostAccountant()
    text = CallText(["q"], ANSWER, max_output_tokens=100)
    assert acct.record_call("capped-zh", None, text=text).output_tokens == 100
