"""RouterLLM's fallback under a CostEventHandler budget: the cheap tier is down and the
strong one answers. Spend never passes the budget, and the failed tier's reservation is
given back before the strong tier reserves (``costopt_core.budget_gate.TierRelease``):
held on top, it had the last strong answer that fits refused (4 of 5 answered)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from costopt_core import SQLiteLedger
from costopt_core.budget_gate import TierRelease, conforms
from costopt_core.ledger import BudgetExceededError
from costopt_core.pricing import set_price
from llamaindex_costopt import CostEventHandler, RouterLLM
from llamaindex_costopt.requests import CompleteRequest
from llamaindex_costopt.simulated import SimulatedLLM
from llamaindex_costopt.wrapper import request_quotes

set_price("lfb-cheap", input_per_token=1e-6, output_per_token=4e-6)
set_price("lfb-strong", input_per_token=1e-5, output_per_token=3e-5)
QUESTION = "请分析并比较两种架构"


def cheap_down_router() -> RouterLLM:
    return RouterLLM(
        llms={
            "simple": SimulatedLLM(model_name="lfb-cheap", fail=True, max_tokens=100),
            # Long enough to be cut at max_tokens: each answer costs close to its maximum.
            "complex": SimulatedLLM(model_name="lfb-strong", max_tokens=100, answer_words=400),
        },
        strategy=lambda text: "simple",
    )


STRONG_MAX = request_quotes(
    CompleteRequest(QUESTION, False, {}), [("lfb-strong", SimulatedLLM(max_tokens=100))]
)[0].max_cost()
BUDGET = 5 * STRONG_MAX  # room for 5 strong answers


def handler_for(ledger: str, tmp_path: Path) -> CostEventHandler:
    if ledger == "sqlite":
        return CostEventHandler(budget_usd=BUDGET, ledger=SQLiteLedger(tmp_path / "c.db"))
    return CostEventHandler(budget_usd=BUDGET)


def answer_in_a_row(handler: CostEventHandler, calls: int) -> int:
    router, answered = cheap_down_router(), 0
    with handler:
        for _ in range(calls):
            try:
                response = router.complete(QUESTION)
            except BudgetExceededError:
                continue
            assert response.additional_kwargs["routing"]["fallback_from"] == "simple"
            answered += 1
    return answered


async def answer_at_once(handler: CostEventHandler, calls: int) -> int:
    router = cheap_down_router()
    with handler:
        results = await asyncio.gather(
            *(router.acomplete(QUESTION) for _ in range(calls)), return_exceptions=True
        )
    assert all(
        not isinstance(r, BaseException) or isinstance(r, BudgetExceededError) for r in results
    )
    return sum(not isinstance(r, BaseException) for r in results)


@pytest.mark.parametrize("ledger", ["memory", "sqlite"])
def test_a_fallback_never_spends_past_the_budget(ledger: str, tmp_path: Path) -> None:
    handler = handler_for(ledger, tmp_path)
    answered = answer_in_a_row(handler, 10)
    answered += asyncio.run(answer_at_once(handler, 100))
    assert answered == handler.summary().calls >= 4
    assert handler.total_cost <= BUDGET + 1e-12
    assert handler.ledger.reserved_usd == pytest.approx(0.0)


def test_the_handler_gives_a_failed_tier_back() -> None:
    assert conforms(CostEventHandler(), TierRelease)


@pytest.mark.parametrize("ledger", ["memory", "sqlite"])
@pytest.mark.parametrize("at_once", [False, True])
def test_every_strong_answer_that_fits_is_given(at_once: bool, ledger: str, tmp_path: Path) -> None:
    handler = handler_for(ledger, tmp_path)
    answered = (
        asyncio.run(answer_at_once(handler, 100)) if at_once else answer_in_a_row(handler, 10)
    )
    assert answered == 5 == handler.summary().calls  # 4 while the failed tier's was held
    assert 0.95 * BUDGET <= handler.total_cost <= BUDGET + 1e-12
    assert handler.ledger.reserved_usd == pytest.approx(0.0)
