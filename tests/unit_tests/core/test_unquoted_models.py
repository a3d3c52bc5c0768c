"""A model a budget cannot price when the call is made (an Azure deployment, a proxy
alias, no name at all): issue 16's audit saw 100 concurrent first calls all admitted
($0 reserved, no history) and 10x the budget spent, and calls of a model with no price
anywhere never stopped under the smallest budget."""

from __future__ import annotations

import logging
import time

import pytest

from costopt_core import set_price
from costopt_core.accounting import CostAccountant
from costopt_core.budget_gate import CallQuote, max_call_cost
from costopt_core.ledger import BudgetExceededError, CostLedger, CostRecord, TokenUsage
from costopt_core.pricing import default_catalog
from costopt_core.stores.sqlite_ledger import SQLiteLedger

set_price("uq-answer", input_per_token=1e-5, output_per_token=3e-5)
set_price("uq-cheap-answer", input_per_token=1e-6, output_per_token=2e-6)


def _dearest_known() -> float:
    # The dearest output price of the priced models these tests use (o1-pro is among
    # the dearest genai-prices lists): a bound of an unpriced call is at least theirs.
    return max(default_catalog.get(m).output for m in ("o1-pro", "uq-answer", "gpt-4o"))


def test_a_first_call_of_an_unpriced_name_reserves_a_bound_and_blocks_no_one(caplog) -> None:
    acct = CostAccountant(budget_usd=10.0)
    with caplog.at_level(logging.WARNING):
        first = acct.admit_call("uq-deployment", 100, 50)
    assert "set_price('uq-deployment'" in caplog.text  # the warning names the remedy
    bound = acct.ledger.reserved_usd  # type: ignore[attr-defined]
    # A true upper bound: no priced model's call of that prompt and cap costs more ...
    for model in ("o1-pro", "uq-answer", "gpt-4o"):
        assert bound >= max_call_cost(default_catalog.get(model), 100, 50)
    # ... and a bounded one: before, the whole $10 was held.
    assert bound <= 100 * 1e-3 + 50 * _dearest_known()
    # Other calls go ahead meanwhile (before: every call refused, "$10 used of $10"),
    # a second first call of the same name too.
    assert acct.admit_call("uq-answer", 100, 50) is not None
    assert acct.admit_call("uq-deployment", 100, 50) is not None
    acct.record_call("uq-answer", TokenUsage(100, 50), reservation_id=first)
    # Answered by a priced model: later calls of the name are quoted on its price.
    held = acct.ledger.reserved_usd  # type: ignore[attr-defined]
    acct.admit_call("uq-deployment", 100, 50)
    expected = max_call_cost(default_catalog.get("uq-answer"), 100, 50)
    assert acct.ledger.reserved_usd - held == pytest.approx(expected)  # type: ignore[attr-defined]


def test_a_bound_past_what_is_left_holds_the_rest_and_refusals_name_it() -> None:
    acct = CostAccountant(budget_usd=0.1)
    first = acct.admit_call("uq-big", 100, 500)  # its bound: ~$0.3 at o1-pro's prices
    assert acct.ledger.reserved_usd == pytest.approx(0.1)  # type: ignore[attr-defined]
    # Every other call waits for it, and the refusal says why (before: "$0.1 used of
    # $0.1", with nothing spent).
    for model in ("uq-answer", "uq-big"):
        with pytest.raises(BudgetExceededError, match=r"in flight.*set_price\('uq-big'"):
            acct.admit_call(model, 100, 50)
    acct.record_call("uq-answer", TokenUsage(100, 50), reservation_id=first)
    assert acct.ledger.reserved_usd == 0.0  # type: ignore[attr-defined]
    acct.admit_call("uq-big", 100, 500)  # quoted on uq-answer now
    expected = max_call_cost(default_catalog.get("uq-answer"), 100, 500)
    assert acct.ledger.reserved_usd == pytest.approx(expected)  # type: ignore[attr-defined]
    with pytest.raises(BudgetExceededError) as refused:  # a plain refusal names no one
        acct.admit_call("uq-answer", 100, 10_000)
    assert "in flight" not in str(refused.value)


def test_the_bound_covers_a_dear_model_this_accountant_priced() -> None:
    set_price("uq-dearest", input_per_token=1e-3, output_per_token=1e-2)
    acct = CostAccountant(budget_usd=100.0)
    acct.record_call("uq-dearest", TokenUsage(1, 1))
    acct.admit_call("uq-alias-2", 100, 50)
    expected = max_call_cost(default_catalog.get("uq-dearest"), 100, 50)
    assert acct.ledger.reserved_usd >= expected  # type: ignore[attr-defined]


def test_a_failed_first_call_frees_the_budget_and_teaches_nothing() -> None:
    acct = CostAccountant(budget_usd=0.1)
    acct.cancel(acct.admit_call("uq-failing", 100, 500))
    assert acct.ledger.reserved_usd == 0.0  # type: ignore[attr-defined]
    acct.admit_call("uq-answer", 10, 10)  # nothing held in its name: no refusal
    acct.admit_call("uq-failing", 100, 500)
    assert acct.ledger.reserved_usd == pytest.approx(0.1)  # type: ignore[attr-defined]


def test_what_is_left_of_the_tightest_budget_is_held() -> None:
    ledger = CostLedger()
    now = time.time()
    ledger.record(CostRecord("uq-answer", cost_usd=0.3, timestamp=now - 3 * 86_400))
    ledger.record(CostRecord("uq-answer", cost_usd=0.3, timestamp=now))
    acct = CostAccountant(budget_usd=1.0, daily_budget_usd=0.5, ledger=ledger)
    acct.admit_call("uq-tight", 100, 500)
    assert ledger.reserved_usd == pytest.approx(0.2)  # the day's 0.5 - 0.3, not 1.0 - 0.6


def test_an_unpriced_call_in_flight_blocks_no_other_process(tmp_path) -> None:
    # Two processes sharing a SQLite ledger file (two accountants here).
    path = tmp_path / "ledger.db"
    worker_a = CostAccountant(budget_usd=10.0, ledger=SQLiteLedger(path))
    worker_b = CostAccountant(budget_usd=10.0, ledger=SQLiteLedger(path))
    assert worker_a.admit_call("uq-proc-alias", 20, 100) is not None
    for _ in range(3):  # before: each refused, "$10.000000 used of $10.000000"
        reservation = worker_b.admit_call("uq-answer", 20, 100)
        worker_b.record_call("uq-answer", TokenUsage(20, 10), reservation_id=reservation)
    assert worker_b.summary().calls == 3


# -- a router with an unpriced tier ---------------------------------------------------------


def _routed(acct: CostAccountant, *models: str | None) -> str | None:
    # A router's admission: the cheapest tier's quote, then the routed tier's.
    return acct.admit([CallQuote(model, 100, 50) for model in models], routed=True)[0]


def test_a_call_routed_to_a_priced_tier_is_quoted_on_it() -> None:
    acct = CostAccountant(budget_usd=1.0)
    _routed(acct, "uq-local-a", "uq-answer")
    expected = max_call_cost(default_catalog.get("uq-answer"), 100, 50)
    assert acct.ledger.reserved_usd == pytest.approx(expected)  # type: ignore[attr-defined]


def test_an_unpriced_tier_learns_only_from_its_own_answers() -> None:
    acct = CostAccountant(budget_usd=1.0)
    tiers = ["uq-local-b", "uq-answer"]
    # Routed to the unpriced tier, answered by the priced one (a cascade climbed).
    first = _routed(acct, "uq-local-b")
    acct.record_call(
        "uq-answer", TokenUsage(100, 50), tier="complex", router_models=tiers, reservation_id=first
    )
    # Before: learned as "answered by uq-answer", and quoted on it from then on.
    _routed(acct, "uq-local-b")
    assert acct.ledger.reserved_usd > max_call_cost(  # type: ignore[attr-defined]
        default_catalog.get("uq-answer"), 100, 50
    )


def test_a_local_tier_with_no_price_refuses_only_its_own_calls() -> None:
    acct = CostAccountant(budget_usd=1.0)
    tiers = ["uq-local-c", "uq-answer"]
    first = _routed(acct, "uq-local-c")
    acct.record_call(
        "uq-local-c", TokenUsage(100, 50), tier="simple", router_models=tiers, reservation_id=first
    )
    # Calls routed to the priced tier go ahead (before: every router call refused) ...
    for _ in range(3):
        reservation = _routed(acct, *tiers)
        acct.record_call(
            "uq-answer",
            TokenUsage(100, 50),
            tier="complex",
            router_models=tiers,
            reservation_id=reservation,
        )
    assert acct.summary().calls == 4
    # ... while the local tier, known to have no price, is refused, naming the remedy.
    with pytest.raises(BudgetExceededError, match=r"set_price\('uq-local-c'"):
        _routed(acct, "uq-local-c")


def test_a_model_with_no_price_anywhere_is_refused_after_its_first_answer(caplog) -> None:
    acct = CostAccountant(budget_usd=1.0)
    first = acct.admit_call("uq-alias", 100, 50)
    with caplog.at_level(logging.WARNING):
        acct.record_call("uq-nowhere", TokenUsage(100, 50), reservation_id=first)
    assert "set_price('uq-nowhere'" in caplog.text
    assert acct.total_cost == 0.0  # its spend cannot be counted
    with pytest.raises(BudgetExceededError, match=r"cannot count.*set_price\('uq-nowhere'"):
        acct.admit_call("uq-alias", 100, 50)
    # Priced since: quoted on that price from the next call.
    set_price("uq-nowhere", input_per_token=1e-6, output_per_token=2e-6)
    acct.admit_call("uq-alias", 100, 50)
    expected = max_call_cost(default_catalog.get("uq-nowhere"), 100, 50)
    assert acct.ledger.reserved_usd == pytest.approx(expected)  # type: ignore[attr-defined]


def test_warn_lets_calls_of_an_uncountable_model_go() -> None:
    acct = CostAccountant(budget_usd=1.0, on_budget="warn")
    acct.record_call("uq-never", TokenUsage(1, 1), reservation_id=acct.admit_call(None, 10, 5))
    with pytest.warns(UserWarning, match="cannot count"):
        assert acct.admit_call(None, 10, 5) is None


def test_a_given_call_estimate_is_reserved_for_unpriced_names() -> None:
    acct = CostAccountant(budget_usd=1.0, call_estimate_usd=0.05)
    acct.admit_call("uq-estimated", 100, 50)
    acct.admit_call("uq-estimated", 100, 50)  # the user's estimate: no one-at-a-time
    assert acct.ledger.reserved_usd == pytest.approx(0.1)  # type: ignore[attr-defined]
