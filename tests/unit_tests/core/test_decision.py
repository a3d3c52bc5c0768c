"""RouteDecision and how a face maps a decision onto its own tiers."""

from __future__ import annotations

import pytest

from costopt_core.decision import LADDER, RouteDecision, RoutingStrategy, resolve_tier


def decision(tier: str, score: float = 0.5) -> RouteDecision:
    return RouteDecision(tier, score, "test")


def test_decision_validates_tier_and_score() -> None:
    assert RouteDecision("simple", 1, "ok").score == 1.0
    with pytest.raises(ValueError, match=r"score must be in \[0, 1\]"):
        RouteDecision("simple", 1.5, "too high")
    with pytest.raises(ValueError, match=r"score must be in \[0, 1\]"):
        RouteDecision("simple", -0.1, "too low")
    with pytest.raises(TypeError, match="tier must be a non-empty str"):
        RouteDecision("", 0.5, "no tier")


def test_to_dict_flattens_extra() -> None:
    d = RouteDecision("complex", 0.9, "why", {"confidence": 0.8}).to_dict()
    assert d == {"tier": "complex", "score": 0.9, "reason": "why", "confidence": 0.8}


def test_an_exact_tier_name_wins() -> None:
    assert resolve_tier(decision("medium"), LADDER) == "medium"
    assert resolve_tier(decision("pro", 0.0), ("mini", "pro")) == "pro"


def test_a_missing_ladder_tier_goes_to_the_nearest_tier_above() -> None:
    assert resolve_tier(decision("medium"), ("simple", "complex")) == "complex"
    assert resolve_tier(decision("simple"), ("medium", "complex")) == "medium"


def test_with_nothing_above_the_strongest_configured_ladder_tier_answers() -> None:
    assert resolve_tier(decision("complex"), ("simple", "medium")) == "medium"


@pytest.mark.parametrize("score", [0.0, 0.3, 0.5, 0.99])
@pytest.mark.parametrize(
    ("ladder", "tiers", "tier"),
    [
        ("medium", ("cheap", "strong"), "strong"),  # as ("simple", "complex"): quality first
        ("simple", ("cheap", "strong"), "cheap"),
        ("complex", ("cheap", "strong"), "strong"),
        ("medium", ("a", "b", "c"), "b"),
        ("medium", ("a", "b", "c", "d"), "c"),
        ("simple", ("a", "b", "c", "d"), "a"),
    ],
)
def test_ladder_names_over_custom_tiers_take_the_same_place_whatever_the_names(
    score: float, ladder: str, tiers: tuple[str, ...], tier: str
) -> None:
    # The tier a prompt gets must not depend on what the user called the tiers.
    assert resolve_tier(decision(ladder, score), tiers) == tier


def test_an_unknown_tier_name_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match=r"'Simple', which is not one of .*\['a', 'b'\]"):
        resolve_tier(decision("Simple"), ("a", "b"))


def test_strategy_protocol_is_structural() -> None:
    class Always:
        def route(self, text: str) -> RouteDecision:
            return RouteDecision("simple", 0.0, "always")

    assert isinstance(Always(), RoutingStrategy)
    assert not isinstance(object(), RoutingStrategy)


def test_tier_mapping_errors_name_the_argument_and_what_is_expected() -> None:
    from costopt_core.decision import check_strategy_tiers, check_tier_mapping
    from costopt_core.strategies import get_strategy

    ok = check_tier_mapping({"a": 1, "b": 2}, argument="llms", model_type=int, model_kind="int")
    assert ok == {"a": 1, "b": 2}
    with pytest.raises(TypeError, match="llms must be a mapping"):
        check_tier_mapping([1, 2], argument="llms", model_type=int, model_kind="int")
    with pytest.raises(ValueError, match="llms needs at least 2 tiers, got 1"):
        check_tier_mapping({"a": 1}, argument="llms", model_type=int, model_kind="int")
    with pytest.raises(TypeError, match=r"llms\['b'\] must be a int, got str"):
        check_tier_mapping({"a": 1, "b": "x"}, argument="llms", model_type=int, model_kind="int")
    two_tier = get_strategy("length", threshold=0.5, tiers=("cheap", "strong"))
    check_strategy_tiers(two_tier, ("cheap", "strong"), argument="models")
    with pytest.raises(ValueError, match=r"\['strong'\] that are not in models"):
        check_strategy_tiers(two_tier, ("cheap", "mid", "premium"), argument="models")
    with pytest.raises(ValueError, match="not in models"):  # "cheap" in another place
        check_strategy_tiers(two_tier, ("premium", "cheap"), argument="models")
    places = check_strategy_tiers(two_tier, ("cheap", "premium"), argument="models")
    assert places == {"cheap": "cheap", "strong": "premium"}


def test_a_router_trained_on_other_tier_names_deploys_on_a_routers_tiers_by_place() -> None:
    # costopt train-router names its tiers weak / strong; the README's router names them
    # cheap / strong: the trained router was refused.
    from costopt_core.engine import RoutingEngine
    from costopt_core.strategies import get_strategy

    trained = get_strategy("length", threshold=0.5, tiers=("weak", "strong"))
    engine = RoutingEngine(trained, {"cheap": "gpt-4o-mini", "premium": "gpt-4o"})
    assert engine.decide("hi").tier == "cheap"
    assert engine.decide("word " * 2000).tier == "premium"
