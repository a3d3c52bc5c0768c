"""The default strategy: the seed's tier on the seed's prompts, sensible English routing."""

from __future__ import annotations

import pytest

from costopt_core import as_strategy
from costopt_core.classify import SEED_COMPLEX_CUES, SEED_SIMPLE_CUES
from costopt_core.decision import resolve_tier
from costopt_core.default_strategy import DefaultStrategy
from tests.unit_tests.core.test_classify import SEED, boundary_prompts, generated_prompts

CHEAP = [
    "hi",
    "Hello, how are you?",
    "What's the weather in Paris?",
    "Who wrote Hamlet?",
    "Translate 'hello' into French",
    "Format this as JSON: name Ann, age 31",
    "Extract the email address from: contact bob@example.org for details",
    "Classify this review as positive or negative: great phone!",
    "今天天气怎么样？",
]
STRONG = [
    "Analyse last year's sales by region, compare the trends with the year before, then "
    "design a step-by-step plan for the weakest region.",
    "Design the architecture of a multi-tenant billing service and evaluate the trade-offs "
    "between a shared and a per-tenant database.",
    "Prove that there are infinitely many primes, then explain why the proof fails for "
    "twin primes.",
    "Review this contract and list every risk: " + "The supplier shall deliver goods. " * 300,
]


@pytest.mark.parametrize("seed", [1, 2])
def test_prompts_with_seed_cues_get_the_seeds_tier(seed: int) -> None:
    router = DefaultStrategy()
    cued = [
        p
        for p in generated_prompts(2000, seed) + boundary_prompts()
        if len(p) // 2 > 2000 or any(c in p for c in (*SEED_COMPLEX_CUES, *SEED_SIMPLE_CUES))
    ]
    assert len(cued) > 1000
    for prompt in cued:
        assert router.route(prompt).tier == SEED.classify(prompt).value, prompt


@pytest.mark.parametrize("text", CHEAP)
def test_a_two_tier_router_sends_everyday_requests_to_the_cheap_model(text: str) -> None:
    decision = as_strategy(None).route(text)
    assert resolve_tier(decision, ("simple", "complex")) == "simple", decision
    assert resolve_tier(decision, ("cheap", "strong")) == "cheap", decision


@pytest.mark.parametrize("text", STRONG)
def test_a_two_tier_router_sends_analysis_design_and_long_inputs_up(text: str) -> None:
    decision = as_strategy(None).route(text)
    assert decision.tier == "complex", decision
    assert resolve_tier(decision, ("cheap", "strong")) == "strong"


def test_reasons_say_which_rule_set_decided() -> None:
    router = DefaultStrategy()
    assert router.route("请翻译这句话").reason.startswith("seed rules:")
    assert router.route("hi").reason.startswith("zero-shot")
    with pytest.raises(TypeError, match="text must be str"):
        router.route(b"hi")  # type: ignore[arg-type]
