"""CostRoutingMiddleware next to LangChain's ModelFallbackMiddleware, in a real
``create_agent`` loop: the model that answers is the one the record names and the cost
handler books, whichever side of the routing the fallback is listed on."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from langchain.agents import create_agent
from langchain.agents.middleware import ModelFallbackMiddleware, ModelRetryMiddleware
from langchain_core.messages import AIMessage, HumanMessage
from pydantic import PrivateAttr

from costopt_core.pricing import set_price
from langchain_costopt import cost_tracker
from langchain_costopt.middleware import CostRoutingMiddleware
from langchain_costopt.middleware.model_choice import StepModels, step_of
from langchain_costopt.simulated import SimulatedChatModel

for _name, _price in {"fb-cheap": 1e-7, "fb-strong": 1e-5, "fb-backup": 1e-6}.items():
    set_price(_name, input_per_token=_price, output_per_token=4 * _price)
HARD = "请分析并比较巴黎和柏林的架构, 然后评估风险"  # seed rules: the strong tier
EASY = "请翻译: good morning"  # seed rules: the cheap tier


class Counted(SimulatedChatModel):
    """Counts the calls that reach the model (failed ones too)."""

    _calls: list[int] = PrivateAttr(default_factory=list)

    def _generate(self, *args: Any, **kwargs: Any) -> Any:
        self._calls.append(1)
        return super()._generate(*args, **kwargs)


def tiers(*, failing: tuple[str, ...]) -> dict[str, Counted]:
    return {
        "cheap": Counted(model_name="fb-cheap", fail="cheap" in failing),
        "strong": Counted(model_name="fb-strong", fail="strong" in failing),
    }


def ask(agent: Any, asynchronous: bool, text: str = HARD) -> AIMessage:
    question = {"messages": [HumanMessage(text)]}
    if asynchronous:
        return asyncio.run(agent.ainvoke(question))["messages"][-1]
    return agent.invoke(question)["messages"][-1]


@pytest.mark.parametrize("asynchronous", [False, True])
def test_a_fallback_listed_first_answers_once_every_tier_failed(asynchronous: bool) -> None:
    models = tiers(failing=("cheap", "strong"))
    backup = Counted(model_name="fb-backup")
    routing = CostRoutingMiddleware(models=models, strategy="rules")
    agent = create_agent(
        models["strong"], tools=[], middleware=[ModelFallbackMiddleware(backup), routing]
    )
    with cost_tracker() as tracker:
        reply = ask(agent, asynchronous, EASY)
    assert reply.response_metadata["model_name"] == "fb-backup"
    # The routing asked each tier once (cheap, then its own fallback up), and let
    # the fallback's model answer instead of routing its request again.
    assert {tier: len(m._calls) for tier, m in models.items()} == {"cheap": 1, "strong": 1}
    assert len(backup._calls) == 1
    assert "routing" not in reply.response_metadata  # not a routed answer
    assert [(r.model, r.tier) for r in tracker.ledger.records()] == [("fb-backup", None)]


@pytest.mark.parametrize("asynchronous", [False, True])
@pytest.mark.parametrize(("backup_name", "tier"), [("fb-backup", None), ("fb-cheap", "cheap")])
def test_a_fallback_listed_after_the_routing_is_recorded_and_booked_as_itself(
    asynchronous: bool, backup_name: str, tier: str | None
) -> None:
    models = tiers(failing=("strong",))
    backup = Counted(model_name=backup_name)
    routing = CostRoutingMiddleware(models=models, strategy="rules", fallback=False)
    agent = create_agent(
        models["strong"], tools=[], middleware=[routing, ModelFallbackMiddleware(backup)]
    )
    with cost_tracker() as tracker:
        reply = ask(agent, asynchronous)
    record = reply.response_metadata["routing"]
    assert len(backup._calls) == 1 and reply.response_metadata["model_name"] == backup_name
    # The record names the model that answered (and its tier, if it is one), not the
    # strong tier that failed; the cost handler booked it the same way.
    assert (record["model"], record["tier"], record["fallback_from"]) == (
        backup_name,
        tier,
        "strong",
    )
    assert [(r.model, r.tier) for r in tracker.ledger.records()] == [(backup_name, tier)]


def test_a_retry_listed_first_is_routed_again() -> None:
    # ModelRetryMiddleware hands over the same model: each attempt is routed.
    models = tiers(failing=("strong",))
    routing = CostRoutingMiddleware(models=models, strategy="rules", fallback=False)
    retry = ModelRetryMiddleware(max_retries=1, initial_delay=0.0, on_failure="continue")
    agent = create_agent(models["strong"], tools=[], middleware=[retry, routing])
    reply = ask(agent, asynchronous=False)
    assert len(models["strong"]._calls) == 2 and not models["cheap"]._calls
    assert reply.content.startswith("Model call failed after 2 attempts")


def test_step_models_remember_the_first_model_of_each_step() -> None:
    first, other = SimulatedChatModel(), SimulatedChatModel()
    steps = StepModels(size=2)
    assert not steps.changed("a", first) and steps.changed("a", other)
    assert not steps.changed(None, other)  # a step it cannot tell: never changed
    steps.changed("b", other)
    steps.changed("c", other)  # "a" is forgotten: at most two steps are kept
    assert not steps.changed("a", other)
    assert step_of(object()) is None
    with pytest.raises(ValueError, match="size must be an int >= 1"):
        StepModels(size=0)
