"""A tier that failed gives back what the call holds for it before the next tier reserves
(``TierRelease``); a tier whose answer a cascade rejected keeps its reservation (the
answer was paid for), and a tier whose reservation was refused holds nothing to give."""

from __future__ import annotations

import logging

import pytest

from costopt_core.budget_gate import TierRelease, TierReservation, conforms
from costopt_core.engine import RoutingEngine
from costopt_core.ledger import BudgetExceededError
from tests.unit_tests.core.test_engine import Cascade, run_call

TIERS = {"simple": "deepseek-v3", "medium": "gpt-4o-mini", "complex": "claude-3.5-sonnet"}
RUN = "run-1"


class Holder:
    """A handler holding a run's reservations per tier, as a budget does: the tier the
    run was admitted on, then one per climb; ``refuse``: tiers that do not fit."""

    def __init__(self, first: str = "simple", refuse: frozenset[str] = frozenset()) -> None:
        self.held = [first]
        self.refuse = refuse
        self.log: list[str] = []
        self.downgrade_requested = False  # turns true at a refusal, if it downgrades
        self.downgrades = False

    def reserve_tier(self, run_id: object, tier: str, quote: object) -> None:
        assert run_id == RUN
        if tier in self.refuse:
            self.log.append(f"refused {tier}")
            self.downgrade_requested = self.downgrades
            raise BudgetExceededError(f"{tier} does not fit")
        self.log.append(f"reserve {tier}")
        self.held.append(tier)

    def release_tier(self, run_id: object, tier: str) -> None:
        assert run_id == RUN and tier in self.held  # only what the run holds
        self.log.append(f"release {tier}")
        self.held.remove(tier)

    def downgraded_run(self, run_id: object) -> bool:
        return self.downgrade_requested


def asker(failing: set[str]):
    def ask(tier: str) -> str:
        if tier in failing:
            raise ConnectionError(f"{tier} down")
        return f"answer from {tier}"

    return ask


def test_the_protocol_is_what_the_handlers_implement() -> None:
    assert conforms(Holder(), TierRelease) and conforms(Holder(), TierReservation)


@pytest.mark.parametrize("asynchronous", [False, True])
def test_a_failed_tier_is_released_before_the_next_one_reserves(asynchronous: bool) -> None:
    holder = Holder()
    call = RoutingEngine(lambda text: "simple", TIERS).begin("hi", handlers=[holder], run_id=RUN)
    ask = asker({"simple", "medium"})
    answered = run_call(call, ask, asynchronous)
    assert answered.tier == "complex"
    assert holder.log == ["release simple", "reserve medium", "release medium", "reserve complex"]
    assert holder.held == ["complex"]  # what the answer is settled against


def test_a_rejected_answer_keeps_its_reservation() -> None:
    holder = Holder()
    engine = RoutingEngine(Cascade({"simple"}), TIERS)
    answered = engine.begin("hi", handlers=[holder], run_id=RUN).run(asker({"medium"}))
    assert answered.tier == "complex" and answered.info["escalated_from"] == ["simple"]
    # simple was paid for: held; medium failed: released before complex reserved.
    assert holder.log == ["reserve medium", "release medium", "reserve complex"]
    assert holder.held == ["simple", "complex"]


def test_a_refused_climb_holds_nothing_to_release() -> None:
    # medium fails, complex does not fit, the budget downgrades to the cheapest tier:
    # complex's refusal reserved nothing, so only medium is given back.
    holder = Holder(first="medium", refuse=frozenset({"complex"}))
    holder.downgrades = True
    engine = RoutingEngine(lambda text: "medium", TIERS)
    answered = engine.begin("hi", handlers=[holder], run_id=RUN).run(asker({"medium"}))
    assert answered.tier == "simple" and answered.info["downgraded_from"] == "complex"
    assert holder.log == ["release medium", "refused complex", "reserve simple"]
    assert holder.held == ["simple"]


def test_a_broken_release_is_logged_and_the_call_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    class Broken(Holder):
        def release_tier(self, run_id: object, tier: str) -> None:
            raise RuntimeError("ledger unreachable")

    holder = Broken()
    engine = RoutingEngine(lambda text: "simple", TIERS)
    with caplog.at_level(logging.ERROR, logger="costopt_core.engine"):
        answered = engine.begin("hi", handlers=[holder], run_id=RUN).run(asker({"simple"}))
    assert answered.tier == "medium" and holder.held == ["simple", "medium"]  # stricter
    assert "releasing failed tier 'simple'" in caplog.text


def test_a_handler_without_release_still_reserves_each_climb() -> None:
    class ReserveOnly:
        def __init__(self) -> None:
            self.climbs: list[str] = []

        def reserve_tier(self, run_id: object, tier: str, quote: object) -> None:
            self.climbs.append(tier)

    handler = ReserveOnly()
    assert not conforms(handler, TierRelease)
    engine = RoutingEngine(lambda text: "simple", TIERS)
    answered = engine.begin("hi", handlers=[handler], run_id=RUN).run(asker({"simple"}))
    assert answered.tier == "medium" and handler.climbs == ["medium"]
