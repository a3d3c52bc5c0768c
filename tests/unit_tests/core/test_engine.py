"""The one tier-attempt loop: choice, fallback, cascade, budgets, records; sync = async."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from costopt_core.decision import RouteDecision
from costopt_core.engine import DOWNGRADE_REASON, PINNED_REASON, AnswerFacts, RoutingEngine
from costopt_core.ledger import BudgetExceededError

TIERS = {"simple": "deepseek-v3", "medium": "gpt-4o-mini", "complex": "claude-3.5-sonnet"}
ZH_SIMPLE = "请翻译: good morning"


class Cascade:
    def __init__(self, rejects: set[str]) -> None:
        self.rejects = rejects

    def route(self, text: str) -> RouteDecision:
        return RouteDecision("simple", 0.0, "cheapest first")

    def accept(self, text: str, answer: str, tier: str) -> bool:
        return tier not in self.rejects


class Gate:
    """A BudgetGate: may refuse, may ask for a downgrade, counts reservations."""

    def __init__(self, refuse: bool = False, downgrade: bool = False) -> None:
        self.refuse, self.downgrade_requested = refuse, downgrade
        self.open: set[str] = set()

    def reserve_call(self, *, routed: bool = False, quotes: object = ()) -> str | None:
        if self.refuse:
            raise BudgetExceededError("over budget")
        self.open.add(f"r{len(self.open)}")
        return max(self.open)

    def release_call(self, reservation: str | None) -> None:
        self.open.discard(reservation or "")

    def downgraded_run(self, run_id: object) -> bool:
        return False


def asker(failing: set[str], log: list[str]):
    def ask(tier: str) -> str:
        log.append(tier)
        if tier in failing:
            raise ConnectionError(f"{tier} down")
        return f"answer from {tier}"

    return ask


def run_call(call: Any, ask: Any, asynchronous: bool) -> Any:
    """``call.run(ask)``, or ``call.arun`` of the same answers."""
    if not asynchronous:
        return call.run(ask)

    async def aask(tier: str) -> str:
        return ask(tier)

    return asyncio.run(call.arun(aask))


@pytest.mark.parametrize("asynchronous", [False, True])
def test_fallback_climbs_to_the_next_tier_and_names_the_failed_one(asynchronous: bool) -> None:
    log: list[str] = []
    ask = asker({"simple"}, log)
    call = RoutingEngine("rules", TIERS).begin(ZH_SIMPLE)
    answered = run_call(call, ask, asynchronous)
    assert answered.result == "answer from medium" and log == ["simple", "medium"]
    assert answered.info["fallback_from"] == "simple" and answered.info["model"] == "gpt-4o-mini"


def test_every_tier_failing_raises_the_first_error_and_releases_budgets() -> None:
    gate = Gate()
    call = RoutingEngine("rules", TIERS).begin(ZH_SIMPLE, handlers=[gate], reserve=True)
    assert len(gate.open) == 1
    with pytest.raises(ConnectionError, match="simple down") as raised:
        call.run(asker(set(TIERS), []))
    assert gate.open == set()
    # The tiers it fell back to are named with their errors, not only logged.
    assert raised.value.__notes__ == [
        "then tier 'medium' (gpt-4o-mini) failed too: ConnectionError('medium down')",
        "then tier 'complex' (claude-3.5-sonnet) failed too: ConnectionError('complex down')",
    ]


def test_fallback_off_raises_at_once() -> None:
    log: list[str] = []
    call = RoutingEngine("rules", TIERS, fallback=False).begin(ZH_SIMPLE)
    with pytest.raises(ConnectionError):
        call.run(asker({"simple"}, log))
    assert log == ["simple"]


def test_a_budget_refusal_from_a_tier_never_falls_back() -> None:
    log: list[str] = []

    def ask(tier: str) -> str:
        log.append(tier)
        raise BudgetExceededError("refused")

    with pytest.raises(BudgetExceededError):
        RoutingEngine("rules", TIERS).begin(ZH_SIMPLE).run(ask)
    assert log == ["simple"]


def test_a_refusing_gate_stops_the_call_before_any_model() -> None:
    with pytest.raises(BudgetExceededError):
        RoutingEngine("rules", TIERS).begin(ZH_SIMPLE, handlers=[Gate(refuse=True)], reserve=True)


def test_choice_order_override_then_downgrade_then_pinned_then_strategy() -> None:
    engine = RoutingEngine("rules", TIERS)
    complex_zh = "请分析并比较这两种架构"
    downgrade = [Gate(downgrade=True)]
    assert engine.begin(complex_zh).decision.tier == "complex"
    pinned = engine.begin(complex_zh, pinned="medium").decision
    assert (pinned.tier, pinned.reason) == ("medium", PINNED_REASON)
    # A pinned thread never outranks a budget downgrade.
    down = engine.begin(complex_zh, handlers=downgrade, pinned="medium").decision
    assert (down.tier, down.reason) == ("simple", DOWNGRADE_REASON)
    forced = engine.begin(complex_zh, handlers=downgrade, pinned="medium", override="gpt-4o-mini")
    assert forced.decision.tier == "medium"
    assert engine.tier_named("claude-3.5-sonnet") == "complex" and engine.tier_named("x") is None
    with pytest.raises(ValueError, match="names no tier"):
        engine.begin(complex_zh, override="gpt-5")


def test_cascade_rejections_are_recorded_with_their_usage() -> None:
    facts = lambda result: AnswerFacts(result, {"output_tokens": 7})  # noqa: E731
    engine = RoutingEngine(Cascade({"simple", "medium"}), TIERS, read_answer=facts)
    answered = engine.begin("anything").run(asker(set(), []))
    assert answered.tier == "complex"
    assert answered.info["escalated_from"] == ["simple", "medium"]
    assert [a["usage"] for a in answered.info["attempts"]] == [{"output_tokens": 7}] * 2


def test_a_grouped_outcome_is_settled_then_the_call_runs_on() -> None:
    call = RoutingEngine("rules", TIERS).begin(ZH_SIMPLE)
    call.settle("simple", error=ConnectionError("batch failed"))
    answered = call.run(asker(set(), []))
    assert answered.tier == "medium" and answered.info["fallback_from"] == "simple"
    with pytest.raises(RuntimeError, match="not the one to ask"):
        call.settle("medium", "late")


def test_a_budget_refusal_at_a_tier_sends_the_call_to_the_cheapest_tier_once() -> None:
    log: list[str] = []

    def ask(tier: str) -> str:
        log.append(tier)
        if tier != "simple":
            raise BudgetExceededError("this tier's maximum does not fit")
        return "cheap answer"

    engine = RoutingEngine("rules", TIERS)
    complex_zh = "请分析并比较这两种架构"
    # The decision was made before the budget ran short: the call starts on the dear tier.
    call = engine.start(engine.decide(complex_zh), complex_zh, handlers=[Gate(downgrade=True)])
    answered = call.run(ask)
    assert answered.tier == "simple" and answered.info["downgraded_from"] == "complex"
    assert answered.info["reason"] == DOWNGRADE_REASON and log[-2:] == ["complex", "simple"]
    # Without a handler that downgrades, the refusal stands.
    with pytest.raises(BudgetExceededError):
        engine.start(engine.decide(complex_zh), complex_zh).run(ask)


class ClimbGate(Gate):
    """A gate that holds a call's first tier and refuses a climb above the cheapest."""

    def __init__(self, downgrade: bool = False) -> None:
        super().__init__(downgrade=downgrade)
        self.climbs: list[str] = []

    def reserve_tier(self, run_id: object, tier: str, quote: object) -> None:
        self.climbs.append(tier)
        if tier != "simple":  # only the cheapest fits
            raise BudgetExceededError("the next tier does not fit")


@pytest.mark.parametrize("downgrade", [False, True])
def test_a_refused_escalation_answers_with_the_rejected_answer_it_paid_for(
    downgrade: bool,
) -> None:
    # The cheap answer was rejected and the budget cannot hold the dearer tier: the call
    # used to fail with BudgetExceededError, the paid answer lost (downgrade: asked again).
    engine = RoutingEngine(Cascade({"simple"}), TIERS)
    gate = ClimbGate(downgrade=downgrade)
    log: list[str] = []
    answered = engine.begin("hello", handlers=[gate]).run(asker(set(), log))
    assert answered.result == "answer from simple" and log == ["simple"]
    assert answered.info["tier"] == "simple" and "escalation_refused" in answered.info
    assert "attempts" not in answered.info  # the answer is not also a rejected attempt
    assert gate.climbs == ["medium"]


def test_a_failed_cheapest_tier_is_not_asked_again_when_the_climb_is_refused() -> None:
    engine = RoutingEngine(lambda text: "simple", TIERS)
    log: list[str] = []
    with pytest.raises(BudgetExceededError):
        engine.begin("hello", handlers=[ClimbGate(downgrade=True)]).run(asker({"simple"}, log))
    assert log == ["simple"]
