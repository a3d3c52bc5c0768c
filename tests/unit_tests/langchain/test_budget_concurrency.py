"""Budgets under concurrency: many calls at once never spend past the budget, and a
budget is used up when calls cost what they reserved."""

from __future__ import annotations

import asyncio

import pytest
from langchain_core.messages import AIMessage

from costopt_core.pricing import set_price
from costopt_core.tokens import quote_prompt_tokens
from langchain_costopt import CostCallbackHandler, RouterChatModel, cost_tracker
from tests.unit_tests.langchain.exact_cost import ExactCostModel

set_price("exact-cheap", input_per_token=1e-6, output_per_token=4e-6)
set_price("exact-strong", input_per_token=1e-5, output_per_token=3e-5)
QUESTION = "请分析并比较两种架构"  # the seed's rules: complex


def call_cost(model: str) -> float:
    prompt = quote_prompt_tokens([QUESTION])
    return {"exact-cheap": prompt * 1e-6 + 100 * 4e-6, "exact-strong": prompt * 1e-5 + 100 * 3e-5}[
        model
    ]


async def test_a_hundred_concurrent_async_calls_never_pass_the_budget() -> None:
    model = ExactCostModel(model_name="exact-strong")
    budget = 10 * call_cost("exact-strong")
    with cost_tracker(budget_usd=budget) as tracker:
        results = await asyncio.gather(
            *(model.ainvoke(QUESTION) for _ in range(100)), return_exceptions=True
        )
    answered = [r for r in results if isinstance(r, AIMessage)]
    assert len(answered) == 10 == tracker.summary().calls
    assert tracker.total_cost <= budget + 1e-12
    assert tracker.total_cost >= 0.8 * budget


def test_a_sixteen_thread_batch_never_passes_the_budget() -> None:
    model = ExactCostModel(model_name="exact-strong")
    budget = 10.5 * call_cost("exact-strong")
    handler = CostCallbackHandler(budget_usd=budget)
    results = model.batch(
        [QUESTION] * 60,
        config={"callbacks": [handler], "max_concurrency": 16},
        return_exceptions=True,
    )
    assert sum(isinstance(r, AIMessage) for r in results) == 10 == handler.summary().calls
    assert 0.8 * budget <= handler.total_cost <= budget


@pytest.mark.parametrize("on_budget", ["raise", "downgrade"])
async def test_a_router_under_concurrency_never_passes_the_budget(on_budget: str) -> None:
    router = RouterChatModel(
        models={
            "simple": ExactCostModel(model_name="exact-cheap"),
            "complex": ExactCostModel(model_name="exact-strong"),
        },
        strategy="rules",
    )
    budget = 3 * call_cost("exact-strong") + 5 * call_cost("exact-cheap")
    with cost_tracker(budget_usd=budget, on_budget=on_budget) as tracker:
        results = await asyncio.gather(
            *(router.ainvoke(QUESTION) for _ in range(100)), return_exceptions=True
        )
        batched = router.batch([QUESTION] * 20, return_exceptions=True)
    answered = [r for r in [*results, *batched] if isinstance(r, AIMessage)]
    tiers = [r.response_metadata["routing"]["tier"] for r in answered]
    assert tracker.total_cost <= budget + 1e-12
    assert tracker.total_cost >= 0.8 * budget
    if on_budget == "downgrade":
        # The strong tier while its maximum fitted, then the cheap one.
        assert tiers.count("complex") == 3 and tiers.count("simple") >= 5
    else:
        assert set(tiers) == {"complex"}
