"""CostRoutingMiddleware next to LangChain's ModelFallbackMiddleware, in a real
``create_agent`` loop: the model that answers is the one the record names and the cost
handler books, whichever side of the routing the fallback is listed on."""

from __future__ import annotations

import asyncio
import gc
import weakref
from typing import Any

import pytest
from langchain.agents import create_agent
from langchain.agents.middleware import (
    ModelFallbackMiddleware,
    ModelRetryMiddleware,
    wrap_model_call,
)
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


@pytest.mark.parametrize("asynchronous", [False, True])
def test_the_fallback_answers_however_many_other_steps_start_during_the_outage(
    asynchronous: bool,
) -> None:
    # A busy server in an outage: while the routed tiers of one step fail, 1100 steps
    # of other requests start (1024 were remembered before: the fallback's request was
    # routed again, the tiers failed again and the backup was never called).
    others = SimulatedChatModel(model_name="fb-other")
    routing: CostRoutingMiddleware

    class Outage(Counted):
        def _generate(self, *args: Any, **kwargs: Any) -> Any:
            for i in range(1100):
                routing._steps.changed(f"other-step-{i}", others)
            return super()._generate(*args, **kwargs)

    models: dict[str, Counted] = {
        "cheap": Outage(model_name="fb-cheap", fail=True),
        "strong": Counted(model_name="fb-strong", fail=True),
    }
    backup = Counted(model_name="fb-backup")
    routing = CostRoutingMiddleware(models=models, strategy="rules")
    agent = create_agent(
        models["strong"], tools=[], middleware=[ModelFallbackMiddleware(backup), routing]
    )
    reply = ask(agent, asynchronous, EASY)
    assert reply.response_metadata["model_name"] == "fb-backup" and len(backup._calls) == 1
    assert {tier: len(m._calls) for tier, m in models.items()} == {"cheap": 1, "strong": 1}


def test_a_model_built_per_request_does_not_outlive_its_run() -> None:
    # A middleware outside the routing that builds the model per request (a tenant's
    # key, its own HTTP client): once the run is over nothing of the routing holds it.
    built: list[weakref.ref[SimulatedChatModel]] = []

    @wrap_model_call
    def per_tenant_model(request: Any, handler: Any) -> Any:
        model = SimulatedChatModel(model_name="fb-tenant")
        built.append(weakref.ref(model))
        return handler(request.override(model=model))

    models = tiers(failing=())
    routing = CostRoutingMiddleware(models=models, strategy="rules")
    agent = create_agent(models["strong"], tools=[], middleware=[per_tenant_model, routing])
    for i in range(20):
        agent.invoke({"messages": [HumanMessage(f"hi {i}")]})
    gc.collect()
    assert len(built) == 20 and [r for r in built if r() is not None] == []


def test_step_models_remember_the_first_model_of_each_step() -> None:
    first, other = SimulatedChatModel(), SimulatedChatModel()
    steps = StepModels()
    assert not steps.changed("a", first) and steps.changed("a", other)
    assert not steps.changed("a", first)  # the first model again: unchanged
    assert not steps.changed(None, other)  # a step it cannot tell: never changed
    assert step_of(object()) is None


def test_step_models_forget_a_step_by_age_not_by_the_steps_started_since() -> None:
    now = [0.0]
    first, other = SimulatedChatModel(), SimulatedChatModel()
    steps = StepModels(max_age=60.0, clock=lambda: now[0])
    steps.changed("a", first)
    for i in range(5000):
        steps.changed(f"other-{i}", other)
    now[0] = 59.0
    assert steps.changed("a", other)  # still remembered, 5000 steps later
    now[0] = 61.0
    assert not steps.changed("a", other)  # a minute old: forgotten, "a" starts anew
    assert len(steps) == 1  # the 5000 others, as old, are gone too


def test_step_models_forget_a_step_whose_model_is_gone() -> None:
    steps = StepModels()
    model = SimulatedChatModel()
    steps.changed("a", model)
    del model
    gc.collect()
    # No request of step "a" can still run with its model: another model starts it anew.
    assert not steps.changed("a", SimulatedChatModel())


def test_step_models_keep_at_most_size_steps() -> None:
    model = SimulatedChatModel()
    steps = StepModels(size=2)
    for step in "abc":
        steps.changed(step, model)
    assert len(steps) == 2
    assert not steps.changed("a", SimulatedChatModel())  # the oldest, dropped


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"size": 0}, ValueError, "size must be an int >= 1"),
        ({"max_age": 0}, ValueError, "max_age must be a number of seconds > 0"),
        ({"max_age": "15m"}, ValueError, "max_age must be a number of seconds > 0"),
        ({"clock": 1.0}, TypeError, "clock must be a callable"),
    ],
)
def test_step_models_refuse_bad_arguments(kwargs: Any, error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        StepModels(**kwargs)
