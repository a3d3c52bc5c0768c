"""BudgetMiddleware listed after CostRoutingMiddleware (so it runs inside the routing), in
a real ``create_agent`` loop: the budget stop is not passed off as a tier's answer, and a
budget that cannot downgrade from there says so once."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
from langchain.agents import create_agent
from langchain_core.messages import AIMessage, HumanMessage

from costopt_core.cascade import CascadeStrategy
from costopt_core.pricing import set_price
from langchain_costopt.middleware import BudgetMiddleware, CostRoutingMiddleware
from langchain_costopt.middleware.budget import is_budget_stop
from langchain_costopt.simulated import SimulatedChatModel

set_price("order-cheap", input_per_token=1e-6, output_per_token=2e-6)
set_price("order-strong", input_per_token=1e-5, output_per_token=3e-5)
HARD = "请分析并比较巴黎和柏林的架构, 然后评估风险"  # seed rules: the strong tier
# max_tokens=50: a strong call reserves ~$0.0017, a cheap one ~$0.00012.
FITS_CHEAP_ONLY = 0.001
FITS_NOTHING = 1e-6
BUDGET_LOG = "langchain_costopt.middleware.budget"


def tiers() -> dict[str, SimulatedChatModel]:
    return {
        "cheap": SimulatedChatModel(model_name="order-cheap", max_tokens=50),
        "strong": SimulatedChatModel(model_name="order-strong", max_tokens=50),
    }


def last_reply(agent: Any, asynchronous: bool = False) -> AIMessage:
    question = {"messages": [HumanMessage(HARD)]}
    if asynchronous:
        return asyncio.run(agent.ainvoke(question))["messages"][-1]
    return agent.invoke(question)["messages"][-1]


def unrouted_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == BUDGET_LOG]


@pytest.mark.parametrize("asynchronous", [False, True])
@pytest.mark.parametrize("on_budget", ["end", "downgrade"])
def test_a_budget_stop_inside_the_routing_is_not_annotated_as_a_tiers_answer(
    asynchronous: bool, on_budget: Any
) -> None:
    models = tiers()
    routing = CostRoutingMiddleware(models=models, strategy="rules")
    budget = BudgetMiddleware(budget_usd=FITS_CHEAP_ONLY, on_budget=on_budget)
    agent = create_agent(models["strong"], tools=[], middleware=[routing, budget])
    stop = last_reply(agent, asynchronous)
    assert is_budget_stop(stop)
    # No tier answered: no model name, no routing record claiming the strong tier did.
    assert "model_name" not in stop.response_metadata
    assert "routing" not in stop.response_metadata


def test_a_downgrade_budget_with_no_routing_inside_warns_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    models = tiers()
    routing = CostRoutingMiddleware(models=models, strategy="rules")
    budget = BudgetMiddleware(budget_usd=FITS_CHEAP_ONLY, on_budget="downgrade")
    agent = create_agent(models["strong"], tools=[], middleware=[routing, budget])
    with caplog.at_level(logging.WARNING):
        last_reply(agent)
        last_reply(agent)
    warned = unrouted_warnings(caplog)
    assert len(warned) == 1
    assert "List CostRoutingMiddleware after BudgetMiddleware" in warned[0]


@pytest.mark.parametrize("budget_usd", [FITS_CHEAP_ONLY, FITS_NOTHING])
def test_a_downgrade_budget_with_the_routing_inside_does_not_warn(
    budget_usd: float, caplog: pytest.LogCaptureFixture
) -> None:
    models = tiers()
    routing = CostRoutingMiddleware(models=models, strategy="rules")
    budget = BudgetMiddleware(budget_usd=budget_usd, on_budget="downgrade")
    agent = create_agent(models["strong"], tools=[], middleware=[budget, routing])
    with caplog.at_level(logging.WARNING):
        reply = last_reply(agent)
    # Downgraded to the cheap tier when it fits; stopped when not even that fits.
    assert is_budget_stop(reply) is (budget_usd == FITS_NOTHING)
    assert unrouted_warnings(caplog) == []


def test_a_cascade_does_not_judge_a_budget_stop() -> None:
    judged: list[str] = []

    def never_good_enough(answer: str) -> bool:
        judged.append(answer)
        return False

    models = tiers()
    routing = CostRoutingMiddleware(models=models, strategy=CascadeStrategy(never_good_enough))
    budget = BudgetMiddleware(budget_usd=FITS_NOTHING)
    agent = create_agent(models["strong"], tools=[], middleware=[routing, budget])
    assert is_budget_stop(last_reply(agent))
    assert judged == []  # the stop was not escalated to a dearer tier (stopped again)
