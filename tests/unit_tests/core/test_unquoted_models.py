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

set_price("uq-answer", input_per_token=1e-5, output_per_token=3e-5)
set_price("uq-cheap-answer", input_per_token=1e-6, output_per_token=2e-6)


def test_first_calls_of_an_unpriced_name_hold_what_is_left_one_at_a_time(caplog) -> None:
    acct = CostAccountant(budget_usd=0.1)
    with caplog.at_level(logging.WARNING):
        first = acct.admit_call("uq-deployment", 100, 50)
    assert acct.ledger.reserved_usd == pytest.approx(0.1)  # type: ignore[attr-defined]
    assert "set_price('uq-deployment'" in caplog.text  # the warning names the remedy
    # A second call meanwhile does not fit: before, it reserved $0 and went ahead.
    with pytest.raises(BudgetExceededError, match=r"one at a time.*set_price\('uq-deployment'"):
        acct.admit_call("uq-deployment", 100, 50)
    with pytest.raises(BudgetExceededError):  # nor does any other call
        acct.admit_call("uq-answer", 100, 50)
    acct.record_call("uq-answer", TokenUsage(100, 50), reservation_id=first)
    assert acct.ledger.reserved_usd == 0.0  # type: ignore[attr-defined]
    # Answered by a priced model: later calls of the name are quoted on its price.
    acct.admit_call("uq-deployment", 100, 50)
    expected = max_call_cost(default_catalog.get("uq-answer"), 100, 50)
    assert acct.ledger.reserved_usd == pytest.approx(expected)  # type: ignore[attr-defined]


def test_a_name_learned_from_the_usual_call_path_and_by_a_router() -> None:
    acct = CostAccountant(budget_usd=1.0)
    first = acct.admit_call(None, 100, 50)  # a model that names none
    acct.record_call_later("uq-answer", (100, 50, 0, 0, 0), reservation_id=first)
    assert acct.total_cost == pytest.approx(100 * 1e-5 + 50 * 3e-5)
    reservation, downgraded = acct.admit(
        [CallQuote("uq-cheap-answer", 100, 50), CallQuote(None, 100, 50)]
    )
    assert reservation is not None and downgraded is False
    expected = max_call_cost(default_catalog.get("uq-answer"), 100, 50)
    assert acct.ledger.reserved_usd == pytest.approx(expected)  # type: ignore[attr-defined]


def test_a_failed_first_call_frees_the_budget_and_teaches_nothing() -> None:
    acct = CostAccountant(budget_usd=0.1)
    acct.cancel(acct.admit_call("uq-failing", 100, 50))
    assert acct.ledger.reserved_usd == 0.0  # type: ignore[attr-defined]
    acct.admit_call("uq-failing", 100, 50)
    assert acct.ledger.reserved_usd == pytest.approx(0.1)  # type: ignore[attr-defined]


def test_what_is_left_of_the_tightest_budget_is_held() -> None:
    ledger = CostLedger()
    now = time.time()
    ledger.record(CostRecord("uq-answer", cost_usd=0.3, timestamp=now - 3 * 86_400))
    ledger.record(CostRecord("uq-answer", cost_usd=0.3, timestamp=now))
    acct = CostAccountant(budget_usd=1.0, daily_budget_usd=0.5, ledger=ledger)
    acct.admit_call("uq-tight", 100, 50)
    assert ledger.reserved_usd == pytest.approx(0.2)  # the day's 0.5 - 0.3, not 1.0 - 0.6


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
