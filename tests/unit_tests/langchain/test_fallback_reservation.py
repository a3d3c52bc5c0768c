"""A router's fallback under a budget: a tier that failed billed nothing, so its budget
reservation is given back before the next tier reserves its own. Held on top, it kept
calls out of room the budget still had (cheap tier down, a budget fitting 5 strong
answers: 3 of 100 concurrent calls answered, 4 of 5 in a row)."""

from __future__ import annotations

import asyncio
import contextvars
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import AIMessage

from costopt_core import SQLiteLedger
from costopt_core.cascade import CascadeStrategy
from costopt_core.ledger import BudgetExceededError
from costopt_core.pricing import set_price
from costopt_core.tokens import quote_prompt_tokens
from langchain_costopt import CostCallbackHandler, RouterChatModel
from tests.unit_tests.langchain.exact_cost import ExactCostModel

PRICES = {
    "fb-cheap": (1e-6, 4e-6),
    "fb-medium": (3e-6, 1e-5),
    "fb-strong": (1e-5, 3e-5),
}
for _name, (_input, _output) in PRICES.items():
    set_price(_name, input_per_token=_input, output_per_token=_output)
QUESTION = "请分析并比较两种架构"
MAX_TOKENS = 100


def cost(model: str) -> float:
    """What one answer of ``model`` costs: the most the budget reserves for it."""
    price_in, price_out = PRICES[model]
    return quote_prompt_tokens([QUESTION]) * price_in + MAX_TOKENS * price_out


def cheap_down_router() -> RouterChatModel:
    """Every call starts on the cheap tier, which is down: the strong tier answers."""
    return RouterChatModel(
        models={
            "simple": ExactCostModel(model_name="fb-cheap", fail=True),
            "complex": ExactCostModel(model_name="fb-strong"),
        },
        strategy=lambda text: "simple",
    )


BUDGET = 5 * cost("fb-strong")  # room for 5 strong answers


def handler_for(ledger: str, tmp_path: Path, on_budget: str = "raise") -> CostCallbackHandler:
    if ledger == "sqlite":
        return CostCallbackHandler(
            budget_usd=BUDGET, on_budget=on_budget, ledger=SQLiteLedger(tmp_path / "c.db")
        )
    return CostCallbackHandler(budget_usd=BUDGET, on_budget=on_budget)


def answered(results: list[Any]) -> list[AIMessage]:
    return [r for r in results if isinstance(r, AIMessage)]


@pytest.mark.parametrize("ledger", ["memory", "sqlite"])
def test_calls_in_a_row_answer_until_the_budget_is_spent(ledger: str, tmp_path: Path) -> None:
    router, handler = cheap_down_router(), handler_for(ledger, tmp_path)
    replies = []
    for _ in range(5):  # the fifth was refused: the failed tier's reservation held room
        replies.append(router.invoke(QUESTION, config={"callbacks": [handler]}))
    with pytest.raises(BudgetExceededError):
        router.invoke(QUESTION, config={"callbacks": [handler]})
    assert [r.response_metadata["routing"]["fallback_from"] for r in replies] == ["simple"] * 5
    assert handler.summary().calls == 5
    assert handler.total_cost == pytest.approx(BUDGET)  # the whole budget used, not 80 %
    assert handler.total_cost <= BUDGET + 1e-12
    assert handler.ledger.reserved_usd == pytest.approx(0.0)


@pytest.mark.parametrize("on_budget", ["raise", "downgrade"])
@pytest.mark.parametrize("ledger", ["memory", "sqlite"])
async def test_a_hundred_concurrent_calls_use_the_whole_budget(
    ledger: str, on_budget: str, tmp_path: Path
) -> None:
    router, handler = cheap_down_router(), handler_for(ledger, tmp_path, on_budget)
    results = await asyncio.gather(
        *(router.ainvoke(QUESTION, config={"callbacks": [handler]}) for _ in range(100)),
        return_exceptions=True,
    )
    assert len(answered(results)) == 5 == handler.summary().calls  # was 3 (60 %)
    assert all(isinstance(r, AIMessage | BudgetExceededError) for r in results)
    assert handler.total_cost <= BUDGET + 1e-12
    assert handler.total_cost == pytest.approx(BUDGET)
    assert handler.ledger.reserved_usd == pytest.approx(0.0)


@pytest.mark.parametrize("ledger", ["memory", "sqlite"])
def test_sixteen_threads_never_pass_the_budget(ledger: str, tmp_path: Path) -> None:
    router, handler = cheap_down_router(), handler_for(ledger, tmp_path)

    def call() -> Any:
        try:
            return router.invoke(QUESTION, config={"callbacks": [handler]})
        except BudgetExceededError as exc:
            return exc

    with ThreadPoolExecutor(16) as pool:
        futures = [pool.submit(contextvars.copy_context().run, call) for _ in range(60)]
        results = [f.result() for f in futures]
    batched = router.batch(
        [QUESTION] * 20,
        config={"callbacks": [handler], "max_concurrency": 16},
        return_exceptions=True,
    )
    assert len(answered([*results, *batched])) == 5 == handler.summary().calls
    assert handler.total_cost <= BUDGET + 1e-12
    assert handler.total_cost == pytest.approx(BUDGET)
    assert handler.ledger.reserved_usd == pytest.approx(0.0)


def test_a_rejected_answer_keeps_its_reservation_and_a_failed_tier_gives_its_back() -> None:
    # cheap answers (a cascade rejects it: paid for), medium is down (billed nothing),
    # strong answers. Each call spends cheap + strong; the budget fits 3 such calls.
    def reject_cheap(question: str, answer: str, tier: str) -> bool:
        return tier != "simple"

    router = RouterChatModel(
        models={
            "simple": ExactCostModel(model_name="fb-cheap"),
            "medium": ExactCostModel(model_name="fb-medium", fail=True),
            "complex": ExactCostModel(model_name="fb-strong"),
        },
        strategy=CascadeStrategy(validator=reject_cheap),
    )
    budget = 3 * (cost("fb-cheap") + cost("fb-strong"))
    handler = CostCallbackHandler(budget_usd=budget)
    replies = [router.invoke(QUESTION, config={"callbacks": [handler]}) for _ in range(3)]
    # The third call's strong tier used not to fit on top of the failed medium tier's
    # reservation: it answered with the rejected cheap answer ("escalation_refused").
    assert [r.response_metadata["routing"]["tier"] for r in replies] == ["complex"] * 3
    assert all(r.response_metadata["routing"]["escalated_from"] == ["simple"] for r in replies)
    assert handler.total_cost == pytest.approx(budget)
    assert handler.total_cost <= budget + 1e-12
    with pytest.raises(BudgetExceededError):
        router.invoke(QUESTION, config={"callbacks": [handler]})
    assert handler.ledger.reserved_usd == pytest.approx(0.0)


async def test_a_rejected_answer_stays_reserved_under_concurrency() -> None:
    # The rejected cheap answer was paid for: its reservation is held while the strong
    # tier answers, so many calls at once never spend past the budget.
    router = RouterChatModel(
        models={
            "simple": ExactCostModel(model_name="fb-cheap"),
            "complex": ExactCostModel(model_name="fb-strong"),
        },
        strategy=CascadeStrategy(validator=lambda q, a, tier: tier != "simple"),
    )
    budget = 3 * (cost("fb-cheap") + cost("fb-strong")) + 0.5 * cost("fb-cheap")
    handler = CostCallbackHandler(budget_usd=budget)
    results = await asyncio.gather(
        *(router.ainvoke(QUESTION, config={"callbacks": [handler]}) for _ in range(60)),
        return_exceptions=True,
    )
    assert answered(results)
    assert handler.total_cost <= budget + 1e-12
    assert handler.ledger.reserved_usd == pytest.approx(0.0)
