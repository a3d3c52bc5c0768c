"""get_strategy / as_strategy: names, thresholds, callables, bad input."""

from __future__ import annotations

import pytest

from costopt_core.cascade import CascadeStrategy
from costopt_core.classify import ComplexityClassifier
from costopt_core.decision import RouteDecision
from costopt_core.default_strategy import DefaultStrategy
from costopt_core.knn import KNNStrategy
from costopt_core.logistic import LogisticStrategy
from costopt_core.strategies import (
    CallableStrategy,
    LengthStrategy,
    ThresholdStrategy,
    as_strategy,
    available_strategies,
    get_strategy,
    strategy_signature,
)
from costopt_core.zero_shot import ZeroShotStrategy


@pytest.fixture(autouse=True)
def _deterministic_default_embedding(monkeypatch) -> None:
    # Tests run on the deterministic hashing embedding even where the [embeddings]
    # extra is installed (the default would then be the neural model).
    monkeypatch.setattr("costopt_core.embedding_cache.NEURAL_PROVIDERS", ())


def test_every_public_name_builds_its_strategy() -> None:
    assert available_strategies() == [
        "cascade",
        "default",
        "knn",
        "length",
        "logistic",
        "rules",
        "zero-shot",
    ]
    expected = {
        "default": DefaultStrategy,
        "rules": ComplexityClassifier,
        "length": LengthStrategy,
        "zero-shot": ZeroShotStrategy,
        "knn": KNNStrategy,
        "logistic": LogisticStrategy,
        "cascade": CascadeStrategy,
    }
    for name, cls in expected.items():
        assert isinstance(get_strategy(name), cls)
    # Spelling variants users type.
    assert isinstance(get_strategy("Zero_Shot"), ZeroShotStrategy)
    assert isinstance(get_strategy("zeroshot"), ZeroShotStrategy)


def test_no_strategy_means_the_default_which_keeps_the_seed_tiers_on_seed_prompts() -> None:
    assert isinstance(as_strategy(None), DefaultStrategy)
    assert isinstance(get_strategy(), DefaultStrategy)
    assert get_strategy().route("请翻译这句话").tier == "simple"
    assert as_strategy(None).route("分析并比较两种架构").tier == "complex"


def test_threshold_recuts_the_score() -> None:
    long_text = "word " * 400
    cut = get_strategy("length", threshold=0.5, tiers=("cheap", "strong"))
    assert isinstance(cut, ThresholdStrategy)
    assert cut.route("hi").tier == "cheap"
    assert cut.route(long_text).tier == "strong"
    three = get_strategy("length", thresholds=[0.2, 0.8])
    assert [three.route(t).tier for t in ("hi", "word " * 60, "word " * 3000)] == [
        "simple",
        "medium",
        "complex",
    ]
    assert "score vs" in cut.route("hi").reason


def test_threshold_wrapper_keeps_fit_and_accept_reachable() -> None:
    knn = get_strategy("knn", threshold=0.5)
    knn.fit(["prove it", "say hi"], [1, 0])
    assert knn.route("prove this").tier == "strong"
    cascade = get_strategy("cascade", threshold=0.5, require_json=True)
    assert cascade.accept("q", '{"a": 1}', "weak") is True


def test_callables_are_strategies() -> None:
    router = as_strategy(lambda text: "complex" if "?" in text else "simple")
    assert isinstance(router, CallableStrategy)
    decision = router.route("why?")
    assert (decision.tier, decision.score) == ("complex", 1.0)
    custom = as_strategy(lambda text: RouteDecision("gold", 0.9, "mine"))
    assert custom.route("x").tier == "gold"
    assert as_strategy("zero-shot").route("hi").tier == "simple"


def test_bad_input_is_named() -> None:
    with pytest.raises(ValueError, match="unknown strategy 'magic'"):
        get_strategy("magic")
    with pytest.raises(TypeError, match="strategy name must be str"):
        get_strategy(3)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="either threshold= or thresholds="):
        get_strategy("length", threshold=0.5, thresholds=[0.5])
    with pytest.raises(ValueError, match=r"thresholds must be numbers in \[0, 1\]"):
        get_strategy("length", threshold=1.5)
    with pytest.raises(ValueError, match="ascending"):
        get_strategy("length", thresholds=[0.8, 0.2])
    with pytest.raises(ValueError, match="2 thresholds need 3 tiers"):
        get_strategy("length", thresholds=[0.2, 0.8], tiers=("a", "b"))
    with pytest.raises(TypeError, match="strategy must be a name"):
        as_strategy(42)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="must return a tier name"):
        as_strategy(lambda text: 3).route("x")
    with pytest.raises(ValueError, match="midpoint_tokens"):
        LengthStrategy(midpoint_tokens=0)
    with pytest.raises(ValueError, match="at least 2 distinct"):
        ZeroShotStrategy(tiers=("only",))
    with pytest.raises(TypeError):
        get_strategy("zero-shot", no_such_option=1)


def test_signature_tells_routers_with_different_rules_apart() -> None:
    # A router's cache key holds this: two routers that route differently never share.
    base = strategy_signature(ComplexityClassifier())
    assert base == strategy_signature(ComplexityClassifier())
    assert base != strategy_signature(ComplexityClassifier(languages=("zh", "en")))
    assert base != strategy_signature(ComplexityClassifier(complex_cues=["prove"]))
    assert strategy_signature(get_strategy("rules", threshold=0.4)) != strategy_signature(
        get_strategy("length", threshold=0.4)
    )


def test_signature_names_the_callable_of_a_callable_strategy() -> None:
    def always_simple(text: str) -> str:
        return "simple"

    def always_complex(text: str) -> str:
        return "complex"

    assert strategy_signature(as_strategy(always_simple)) != strategy_signature(
        as_strategy(always_complex)
    )
