"""ZeroShotStrategy: general difficulty features, readable reasons, no training."""

from __future__ import annotations

import pytest

from costopt_core.strategies import get_strategy
from costopt_core.zero_shot import ZeroShotStrategy, extract_features

ANALYSIS = (
    "Analyse last year's sales by region, compare the trends with the year before, then "
    "design a step-by-step plan for the weakest region and explain the trade-offs."
)


@pytest.mark.parametrize(
    "text",
    [
        "hi",
        "Hello!",
        "What's the weather in Paris?",
        "Who wrote Hamlet?",
        "Translate 'thank you' into Spanish.",
        "Summarise this.",
        "Format these names as a bulleted list: Ann, Bo, Cy",
        "Extract the dates from: met on 3 May, left on 9 June.",
        "请翻译这句话",
        "今天天气怎么样？",
    ],
)
def test_everyday_requests_go_to_the_cheap_tier(text: str) -> None:
    assert ZeroShotStrategy().route(text).tier == "simple", text


@pytest.mark.parametrize(
    "text",
    [
        ANALYSIS,
        "Design a fault-tolerant architecture for a payment system and evaluate the "
        "trade-offs of each option.",
        "分析并比较两种数据库架构的优缺点，然后给出迁移方案",
        "Read this report: " + "revenue rose in every region while costs fell. " * 200,
    ],
)
def test_reasoning_design_and_long_inputs_go_up(text: str) -> None:
    assert ZeroShotStrategy().route(text).tier == "complex", text[:60]


def test_a_long_input_leaves_the_cheap_tier_even_for_a_simple_task() -> None:
    report = "revenue rose in every region while costs fell. " * 200
    assert ZeroShotStrategy().route("Summarise this report: " + report).tier != "simple"


def test_length_is_the_backbone_and_cues_move_it() -> None:
    router = ZeroShotStrategy()
    short, long = "Tell me about owls.", "Tell me about owls. " + "They hunt at night. " * 40
    assert router.score(long) > router.score(short)
    assert router.score("Why do owls hunt at night?") > router.score("Do owls hunt at night?")
    code = "Write a Python function that parses a CSV file and sorts the rows by date."
    assert router.route(code).tier != "simple"
    assert router.score("Translate: owls hunt at night.") < router.score("Owls hunt at night.")


def test_features_count_cues_in_english_and_chinese() -> None:
    f = extract_features("First analyse the logs, then explain why the API fails.")
    assert (f.reasoning, f.code, f.steps) == (3, 1, 2)  # analyse, explain, why; api
    assert extract_features("then then then").steps == 3  # steps count occurrences
    assert extract_features("why why why").reasoning == 1  # task kinds count distinct cues
    z = extract_features("首先分析原因，然后设计方案")
    assert (z.reasoning, z.steps) == (2, 2)
    assert extract_features("What is the capital of Peru?").lookup
    assert not extract_features("What is the capital of Peru? " * 10).lookup  # not short


def test_reason_names_the_main_features() -> None:
    decision = ZeroShotStrategy().route(ANALYSIS)
    assert decision.reason.startswith("zero-shot ")
    assert "reasoning cues" in decision.reason
    assert 0.0 <= decision.score <= 1.0


def test_tiers_weights_and_bad_input() -> None:
    two = ZeroShotStrategy(tiers=("cheap", "strong"))
    assert two.route("hi").tier == "cheap"
    louder = ZeroShotStrategy(weights={"reasoning": 3.0})
    assert louder.score(ANALYSIS) > ZeroShotStrategy().score(ANALYSIS)
    with pytest.raises(ValueError, match="unknown feature"):
        ZeroShotStrategy(weights={"vibes": 1.0})
    with pytest.raises(ValueError, match="finite"):
        ZeroShotStrategy(bias=float("nan"))
    with pytest.raises(TypeError, match="text must be str"):
        ZeroShotStrategy().route(None)  # type: ignore[arg-type]


def test_by_name_with_a_threshold() -> None:
    router = get_strategy("zero-shot", threshold=0.5, tiers=("weak", "strong"))
    assert router.route(ANALYSIS).tier == "strong"
    assert router.route("hi").tier == "weak"


def test_task_words_count_where_a_request_names_its_task() -> None:
    # Asked for: the cue counts.
    for request in ("Translate this into German.", "Can you please summarise it?"):
        assert extract_features(request).simple == 1, request
    assert extract_features("Text: it rained.\nExtract the dates.").simple == 1
    # Content: the same words do not make a knowledge question a simple task.
    assert extract_features("The classification of whales rests on which feature?").simple == 0
    assert extract_features("Which describes the formation of stars?").simple == 0
    # One everyday word is no code task; beside another code cue it is.
    assert extract_features("What is the function of the kidney?").code == 0
    assert extract_features("A class of 30 pupils shares 90 pens. How many each?").code == 0
    assert extract_features("Write a Python function that sorts a list.").code == 2
