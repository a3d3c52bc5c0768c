"""A router's generate()/agenerate() over several prompts under a budget: each prompt's
run reserves the tier that prompt is routed to, routed once."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from langchain_core.messages import HumanMessage

from costopt_core.budget_gate import BudgetExceededError
from langchain_costopt import CostCallbackHandler, RouterChatModel, cost_tracker
from langchain_costopt.simulated import SimulatedChatModel

EASY = ["hi there", "hello again"]
HARD = "please prove this theorem"


class CountingStrategy:
    """Routes prompts naming a proof to the strong tier; counts its decisions."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, text: str) -> str:
        self.calls += 1
        return "strong" if "prove" in text else "cheap"


def _router(strategy: CountingStrategy) -> RouterChatModel:
    # At 200 output tokens gpt-4o-mini may cost ~$0.00012 a call, gpt-4o ~$0.002: a
    # $0.0015 budget holds every cheap call's maximum and not one strong call's.
    return RouterChatModel(
        models={
            "cheap": SimulatedChatModel(model_name="gpt-4o-mini"),
            "strong": SimulatedChatModel(model_name="gpt-4o"),
        },
        strategy=strategy,
        max_tokens=200,
    )


def _generate(router: RouterChatModel, prompts: list[str], path: str, **kwargs: Any) -> Any:
    messages = [[HumanMessage(p)] for p in prompts]
    if path == "generate":
        return router.generate(messages, **kwargs)
    return asyncio.run(router.agenerate(messages, **kwargs))


@pytest.mark.parametrize("path", ["generate", "agenerate"])
def test_each_prompt_reserves_its_routed_tier_not_the_dearest(path: str) -> None:
    strategy = CountingStrategy()
    router = _router(strategy)
    handler = CostCallbackHandler(budget_usd=0.0015, on_budget="raise")
    result = _generate(router, EASY, path, callbacks=[handler])
    tiers = [g[0].message.response_metadata["routing"]["tier"] for g in result.generations]
    assert tiers == ["cheap", "cheap"]
    assert [g[0].text for g in result.generations] != ["", ""]
    assert handler.summary().calls == 2 and 0 < handler.total_cost <= 0.0015
    assert len(result.run) == 2  # one run per prompt, each ended
    assert strategy.calls == 2  # routed once per prompt, never again in the run
    assert handler.ledger.reserved_usd == 0.0


@pytest.mark.parametrize("path", ["generate", "agenerate"])
def test_a_prompt_routed_to_the_dear_tier_is_refused_alone_in_reserving(path: str) -> None:
    # The hard prompt's run reserves the strong tier's maximum, which does not fit; the
    # easy one before it was answered on the cheap tier and paid for.
    router = _router(CountingStrategy())
    handler = CostCallbackHandler(budget_usd=0.0015, on_budget="raise")
    with pytest.raises(BudgetExceededError):
        _generate(router, [EASY[0], HARD], path, callbacks=[handler])
    assert handler.summary().calls == 1 and 0 < handler.total_cost <= 0.0015
    assert handler.ledger.reserved_usd == 0.0


def test_cost_tracker_budgets_reserve_per_prompt_too() -> None:
    strategy = CountingStrategy()
    router = _router(strategy)
    with cost_tracker(budget_usd=0.0015, on_budget="raise") as tracker:
        result = _generate(router, EASY, "generate")
    assert len(result.generations) == 2 and tracker.summary().calls == 2
    assert strategy.calls == 2


def test_without_a_budget_handler_prompts_share_one_generate() -> None:
    # No handler reserving per tier: LangChain's own generate, routed in each run.
    strategy = CountingStrategy()
    router = _router(strategy)
    result = _generate(router, [*EASY, HARD], "generate")
    tiers = [g[0].message.response_metadata["routing"]["tier"] for g in result.generations]
    assert tiers == ["cheap", "cheap", "strong"] and strategy.calls == 3


def test_a_given_run_id_is_the_first_prompts_run() -> None:
    import uuid

    router = _router(CountingStrategy())
    run_id = uuid.uuid4()
    handler = CostCallbackHandler(budget_usd=0.0015)
    result = router.generate([[HumanMessage(p)] for p in EASY], callbacks=[handler], run_id=run_id)
    assert result.run[0].run_id == run_id and result.run[1].run_id != run_id
