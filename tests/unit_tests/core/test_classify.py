"""The seed's rule classifier reproduced exactly, plus the English cue lists."""

from __future__ import annotations

import random
from enum import Enum
from typing import ClassVar

import pytest

from costopt_core import ComplexityClassifier
from costopt_core.decision import RoutingStrategy


# -- oracle: the seed's ModelRouter.classify, ported line for line -------------------------
class Complexity(Enum):
    SIMPLE = "simple"
    MEDIUM = "medium"
    COMPLEX = "complex"


class SeedModelRouter:
    COMPLEX_KEYWORDS: ClassVar[list[str]] = ["分析", "推理", "比较", "评估", "设计", "架构"]
    SIMPLE_KEYWORDS: ClassVar[list[str]] = ["翻译", "摘要", "格式化", "提取", "分类"]

    def classify(self, prompt: str) -> Complexity:
        prompt_lower = prompt.lower()
        token_estimate = len(prompt) // 2
        if token_estimate > 2000:
            return Complexity.COMPLEX
        complex_count = sum(1 for kw in self.COMPLEX_KEYWORDS if kw in prompt_lower)
        simple_count = sum(1 for kw in self.SIMPLE_KEYWORDS if kw in prompt_lower)
        if complex_count >= 2:
            return Complexity.COMPLEX
        if simple_count >= 1 and complex_count == 0:
            return Complexity.SIMPLE
        return Complexity.MEDIUM


SEED = SeedModelRouter()
PIECES = [
    *SeedModelRouter.COMPLEX_KEYWORDS,
    *SeedModelRouter.SIMPLE_KEYWORDS,
    "分", "析", "翻", "格式", "设 计", "比",  # near misses
    "请", "这段文字", "今天天气怎么样", "，", "。", "？",
    "Translate", "ANALYZE", "information", "design", "hello", "the", " ", "\n", "😀",
    "ÄÖÜ", "İstanbul",  # lower() changes these
]  # fmt: skip


def generated_prompts(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    prompts = []
    for _ in range(n):
        prompts.append("".join(rng.choice(PIECES) for _ in range(rng.randint(0, 12))))
    return prompts


def boundary_prompts() -> list[str]:
    prompts = []
    for length in (3999, 4000, 4001, 4002, 4003, 4004, 6000):
        for head in ("翻译", "分析比较", "分析", "", "Translate "):
            prompts.append(head + "字" * (length - len(head)))
            prompts.append(head + "a" * (length - len(head)))
    return prompts


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_default_rules_match_the_seed_on_generated_prompts(seed: int) -> None:
    classifier = ComplexityClassifier()
    prompts = generated_prompts(2000, seed)
    tiers = {classifier.classify(p) for p in prompts}
    assert tiers == {"simple", "medium", "complex"}  # the generator covers every rule
    for prompt in prompts:
        assert classifier.classify(prompt) == SEED.classify(prompt).value, prompt


def test_length_boundary_matches_the_seed() -> None:
    classifier = ComplexityClassifier()
    for prompt in boundary_prompts():
        assert classifier.classify(prompt) == SEED.classify(prompt).value, len(prompt)
    assert classifier.classify("翻译" + "字" * 3999) == "simple"  # 4001 chars: 2000 tokens
    assert classifier.classify("翻译" + "字" * 4000) == "complex"  # 4002 chars: 2001 tokens
    assert classifier.classify("翻译" + "字" * 4001) == "complex"  # 4003 chars


def test_seed_examples() -> None:
    classifier = ComplexityClassifier()
    assert classifier.classify("请翻译这句话") == "simple"
    assert classifier.classify("分析并比较两种架构") == "complex"
    assert classifier.classify("分析这段代码") == "medium"  # one complex cue only
    assert classifier.classify("翻译并分析") == "medium"  # a simple cue next to a complex one
    assert classifier.classify("分析分析分析") == "medium"  # distinct cues are counted
    assert classifier.classify("") == "medium"


def test_english_cues_match_at_word_start() -> None:
    classifier = ComplexityClassifier(languages=("zh", "en"))
    assert classifier.classify("Translate this to French") == "simple"
    assert classifier.classify("SUMMARIZE the report") == "simple"
    assert classifier.classify("Please format this table") == "simple"
    assert classifier.classify("More information about the venue") == "medium"
    assert classifier.classify("Reformat nothing, preformatted text") == "medium"
    assert classifier.classify("Analyze and compare the two designs") == "complex"
    assert classifier.classify("analysis, analyze, analyses") == "medium"  # one cue, thrice
    assert classifier.classify("Translate and analyze") == "medium"
    assert classifier.classify("请翻译 this") == "simple"
    assert ComplexityClassifier().classify("Translate this to French") == "medium"


def test_cue_lists_and_thresholds_are_configurable() -> None:
    extra = ComplexityClassifier(complex_cues=["prove", "derive"], simple_cues=["spell"])
    assert extra.classify("prove and derive it") == "complex"
    assert extra.classify("spell it") == "simple"
    assert ComplexityClassifier(complex_cue_min=1).classify("分析这段代码") == "complex"
    assert ComplexityClassifier(max_tokens=10).classify("字" * 22) == "complex"
    assert ComplexityClassifier(max_tokens=10).classify("字" * 21) == "medium"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"languages": ("fr",)}, "languages"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"complex_cue_min": 0}, "complex_cue_min"),
        ({"simple_cues": [""]}, "cue words"),
    ],
)
def test_bad_settings_are_rejected(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ComplexityClassifier(**kwargs)


def test_non_text_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="text must be str"):
        ComplexityClassifier().classify(None)  # type: ignore[arg-type]


def test_scores_order_the_tiers_and_reasons_explain() -> None:
    classifier = ComplexityClassifier()
    assert isinstance(classifier, RoutingStrategy)
    simple, medium, complex_ = (classifier.route(p) for p in ("请翻译", "你好", "分析比较"))
    assert simple.score < 1 / 3 <= medium.score < 2 / 3 <= complex_.score <= 1.0
    assert "simple cue" in simple.reason and "complex cues" in complex_.reason
    long = classifier.route("字" * 5000)
    assert long.tier == "complex" and long.score == 1.0 and "long prompt" in long.reason
    # Inside a tier, a longer prompt scores higher.
    assert classifier.route("你好" * 100).score > medium.score
