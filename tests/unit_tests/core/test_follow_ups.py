"""costopt_core.follow_ups: the room a budget keeps for an agent's next call."""

from __future__ import annotations

import time

import pytest

from costopt_core.accounting import CostAccountant
from costopt_core.budget_gate import CallQuote
from costopt_core.ledger import CostLedger
from costopt_core.pricing import set_price

set_price("follow-up-model", input_per_token=1e-6, output_per_token=1e-6)
QUOTE = CallQuote("follow-up-model", 900, 100)  # $0.001 at most


def test_a_hold_passes_to_the_tool_calls_and_their_follow_up_gives_it_back() -> None:
    accountant = CostAccountant(budget_usd=1.0)
    assert accountant.follow_ups.hold(["run"], QUOTE)
    accountant.follow_ups.move("run", ["call_a", "call_b"])
    assert accountant.ledger.reserved_usd == pytest.approx(0.001)
    accountant.follow_ups.release(["call_b", "call_a"])  # one hold, given back once
    assert accountant.ledger.reserved_usd == 0 and len(accountant.follow_ups) == 0


def test_an_answer_without_tool_calls_gives_the_hold_back() -> None:
    accountant = CostAccountant(budget_usd=1.0)
    accountant.follow_ups.hold(["run"], QUOTE)
    accountant.follow_ups.move("run", [])
    assert accountant.ledger.reserved_usd == 0 and len(accountant.follow_ups) == 0


def test_a_hold_that_does_not_fit_is_not_made_and_refuses_nothing() -> None:
    accountant = CostAccountant(budget_usd=0.0005)
    assert not accountant.follow_ups.hold(["run"], QUOTE)
    assert accountant.ledger.reserved_usd == 0
    accountant.follow_ups.release(["run"])  # nothing held: nothing to do


@pytest.mark.parametrize(
    "accountant",
    [CostAccountant(), CostAccountant(budget_usd=1.0)],
    ids=["no budget", "unpriced model"],
)
def test_nothing_is_held_without_a_budget_or_a_price(accountant: CostAccountant) -> None:
    quote = QUOTE if not accountant.budgets else CallQuote("no-such-model-anywhere", 900, 100)
    assert not accountant.follow_ups.hold(["run"], quote)
    assert accountant.ledger.reserved_usd == 0


def test_holding_the_same_ids_again_replaces_the_hold() -> None:
    accountant = CostAccountant(budget_usd=1.0)
    accountant.follow_ups.hold(["call_a"], QUOTE)
    accountant.follow_ups.hold(["call_a"], QUOTE)  # a stream's first and last chunk
    assert accountant.ledger.reserved_usd == pytest.approx(0.001)


def test_a_ledger_that_cannot_answer_leaves_the_follow_up_to_usual_admission() -> None:
    class Down(CostLedger):
        def reserve(self, *args: object, **kwargs: object) -> object:
            raise OSError("disk full")

    accountant = CostAccountant(budget_usd=1.0, ledger=Down())
    assert not accountant.follow_ups.hold(["run"], QUOTE)


def test_an_unclaimed_hold_expires() -> None:
    # A run cancelled while its tools ran: its hold lasts FOLLOW_UP_TTL_S at most.
    accountant = CostAccountant(budget_usd=1.0, reservation_ttl_seconds=0.01)
    accountant.follow_ups.hold(["run"], QUOTE)
    time.sleep(0.02)
    assert accountant.ledger.reserved_usd == 0


def test_two_holds_moved_to_the_same_ids_keep_one() -> None:
    # Two calls served the same cached tool call: one hold waits for their follow-up.
    accountant = CostAccountant(budget_usd=1.0)
    accountant.follow_ups.hold(["run-1"], QUOTE)
    accountant.follow_ups.hold(["run-2"], QUOTE)
    accountant.follow_ups.move("run-1", ["call_a"])
    accountant.follow_ups.move("run-2", ["call_a"])
    assert accountant.ledger.reserved_usd == pytest.approx(0.001)
    accountant.follow_ups.release(["call_a"])
    assert accountant.ledger.reserved_usd == 0 and len(accountant.follow_ups) == 0
