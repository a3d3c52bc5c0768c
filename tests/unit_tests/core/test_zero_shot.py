"""ZeroShotStrategy: general difficulty features, readable reasons, no training."""

from __future__ import annotations

import pytest

from costopt_core.strategies import get_strategy
from costopt_core.zero_shot import ZeroShotStrategy, extract_features, operations

ONE_STEP = "Sam has 3 apples and buys 2 more. How many apples does he have?"
MULTI_STEP = (
    "Sam has 3 apples and buys twice as many pears as apples. He then gives 2 pears to "
    "each of his 4 friends. If a pear costs $1.50, how much money did he spend on the "
    "pears he gave away, and how many pieces of fruit does he have left?"
)


def test_simple_tasks_go_to_the_cheap_tier() -> None:
    router = ZeroShotStrategy()
    for text in ["Translate 'thank you' into Spanish.", "hi", "请翻译这句话", "Summarise this."]:
        decision = router.route(text)
        assert decision.tier == "simple", (text, decision)


def test_more_operations_score_higher() -> None:
    router = ZeroShotStrategy()
    assert router.score(MULTI_STEP) > router.score(ONE_STEP) > router.score("hi")
    with_condition = ONE_STEP.replace("How many", "If he eats 1 every day, how many")
    assert router.score(with_condition) > router.score(ONE_STEP)


def test_code_and_chinese_reasoning_leave_the_cheap_tier() -> None:
    router = ZeroShotStrategy()
    code = (
        "Write a Python function that parses a CSV file and returns the rows sorted by "
        "date; handle missing values."
    )
    assert router.route(code).tier != "simple"
    assert router.route("分析并比较两种数据库架构的优缺点，然后给出迁移方案").tier != "simple"
    assert router.route("分析并比较两种数据库架构的优缺点，然后给出迁移方案").score > router.score(
        "请翻译这句话"
    )


def test_features_count_quantities_in_words_digits_and_chinese() -> None:
    f = extract_features("She paid $12.50 for half a dozen eggs, 30% off, twice a week.")
    assert f.quantities >= 5  # 12.50, half, dozen, 30%, twice
    assert f.relations == 0
    g = extract_features("Tom is 3 years older than Ann, who has twice as many cats as Bo.")
    assert g.relations == 2
    z = extract_features("小明有三个苹果，比小红多两个，一共有多少个？")
    assert z.quantities >= 2 and z.relations >= 1 and z.derived >= 1
    assert operations(z) >= 4


def test_reason_names_the_main_features() -> None:
    decision = ZeroShotStrategy().route(MULTI_STEP)
    assert decision.reason.startswith("zero-shot ")
    assert "operations" in decision.reason
    assert 0.0 <= decision.score <= 1.0


def test_tiers_weights_and_bad_input() -> None:
    two = ZeroShotStrategy(tiers=("cheap", "strong"))
    assert two.route("hi").tier == "cheap"
    louder = ZeroShotStrategy(weights={"operations": 2.0})
    assert louder.score(MULTI_STEP) > ZeroShotStrategy().score(MULTI_STEP)
    with pytest.raises(ValueError, match="unknown feature"):
        ZeroShotStrategy(weights={"vibes": 1.0})
    with pytest.raises(ValueError, match="finite"):
        ZeroShotStrategy(bias=float("nan"))
    with pytest.raises(TypeError, match="text must be str"):
        ZeroShotStrategy().route(None)  # type: ignore[arg-type]


def test_by_name_with_a_threshold() -> None:
    router = get_strategy("zero-shot", threshold=0.5, tiers=("weak", "strong"))
    assert router.route(MULTI_STEP).tier == "strong"
    assert router.route("hi").tier == "weak"
