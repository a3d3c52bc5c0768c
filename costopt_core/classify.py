"""The seed's rule classifier: prompt length plus complexity / simplicity cue words.

Example:
    >>> from costopt_core import ComplexityClassifier
    >>> ComplexityClassifier().classify("请翻译这句话")
    'simple'
    >>> ComplexityClassifier().classify("分析并比较两种架构")
    'complex'
    >>> ComplexityClassifier(languages=("zh", "en")).classify("Translate this to French")
    'simple'
    >>> estimate_cost("请翻译这句话")["model"]
    'deepseek-v3'

The default rule set is the seed's, reproduced exactly (same tier on the same prompt):

1. ``len(prompt) // 2 > 2000`` (the seed's token estimate) -> ``"complex"``;
2. two or more distinct complex cues present -> ``"complex"``;
3. at least one simple cue and no complex cue -> ``"simple"``;
4. otherwise ``"medium"``.

Chinese cues match as substrings of the lower-cased prompt, as in the seed. English
cues (opt in with ``languages=("zh", "en")``) match at the start of a word, so
``"format"`` does not fire inside ``"information"``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any, Literal

from costopt_core.decision import RouteDecision
from costopt_core.pricing import SEED_MODELS, get_price

Tier = Literal["simple", "medium", "complex"]
TIERS: tuple[Tier, ...] = ("simple", "medium", "complex")

SEED_COMPLEX_CUES: tuple[str, ...] = ("分析", "推理", "比较", "评估", "设计", "架构")
SEED_SIMPLE_CUES: tuple[str, ...] = ("翻译", "摘要", "格式化", "提取", "分类")

# English cues of the same kinds as the seed's: word prefixes, so inflections count.
ENGLISH_COMPLEX_CUES: tuple[str, ...] = (
    "analy",  # analyse, analyze, analysis
    "reason",
    "compar",  # compare, comparison
    "evaluat",
    "design",
    "architect",
)
ENGLISH_SIMPLE_CUES: tuple[str, ...] = ("translat", "summar", "format", "extract", "classif")

CUES_BY_LANGUAGE: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "zh": (SEED_COMPLEX_CUES, SEED_SIMPLE_CUES),
    "en": (ENGLISH_COMPLEX_CUES, ENGLISH_SIMPLE_CUES),
}

# Score bands per tier so that a threshold on the score reproduces the tiers
# (simple < 1/3 <= medium < 2/3 <= complex) while ordering prompts inside a tier.
_BAND_LOW = {"simple": 0.0, "medium": 1 / 3, "complex": 2 / 3}
_BAND_WIDTH = 1 / 3 - 1e-6


def _is_word_cue(cue: str) -> bool:
    return cue.isascii() and cue[:1].isalnum()


class _CueSet:
    """Counts distinct cues present in a lower-cased text."""

    __slots__ = ("_pattern", "_substrings")

    def __init__(self, cues: Iterable[str]) -> None:
        cleaned: list[str] = []
        for cue in cues:
            if not isinstance(cue, str) or not cue.strip():
                raise ValueError(f"cue words must be non-empty strings, got {cue!r}")
            low = cue.strip().lower()
            if low not in cleaned:
                cleaned.append(low)
        self._substrings = tuple(c for c in cleaned if not _is_word_cue(c))
        words = [c for c in cleaned if _is_word_cue(c)]
        self._pattern = (
            re.compile(r"\b(" + "|".join(re.escape(w) for w in words) + ")") if words else None
        )

    def count(self, lowered: str) -> int:
        n = 0
        for cue in self._substrings:
            if cue in lowered:
                n += 1
        if self._pattern is not None:
            found = self._pattern.findall(lowered)
            if found:
                n += len(set(found))
        return n


class ComplexityClassifier:
    """Rule-based complexity classifier (the seed's rules by default).

    Args:
        languages: which built-in cue lists to use; ``("zh",)`` is the seed exactly.
        complex_cues: extra complex cue words (added to the language lists).
        simple_cues: extra simple cue words.
        max_tokens: above this token estimate a prompt is complex (seed: 2000).
        complex_cue_min: distinct complex cues needed for "complex" (seed: 2).
    """

    def __init__(
        self,
        languages: Sequence[str] = ("zh",),
        *,
        complex_cues: Iterable[str] = (),
        simple_cues: Iterable[str] = (),
        max_tokens: int = 2000,
        complex_cue_min: int = 2,
    ) -> None:
        if isinstance(languages, str):
            languages = (languages,)
        unknown = [lang for lang in languages if lang not in CUES_BY_LANGUAGE]
        if unknown:
            raise ValueError(f"languages: unknown {unknown!r}; allowed: {sorted(CUES_BY_LANGUAGE)}")
        if not isinstance(max_tokens, int) or max_tokens < 1:
            raise ValueError(f"max_tokens must be an int >= 1, got {max_tokens!r}")
        if not isinstance(complex_cue_min, int) or complex_cue_min < 1:
            raise ValueError(f"complex_cue_min must be an int >= 1, got {complex_cue_min!r}")
        complex_all = [c for lang in languages for c in CUES_BY_LANGUAGE[lang][0]]
        simple_all = [c for lang in languages for c in CUES_BY_LANGUAGE[lang][1]]
        self.languages = tuple(languages)
        self.max_tokens = max_tokens
        self.complex_cue_min = complex_cue_min
        # Kept as public tuples so a router's cache key tells two cue sets apart.
        self.complex_cues = (*complex_all, *complex_cues)
        self.simple_cues = (*simple_all, *simple_cues)
        self._complex = _CueSet(self.complex_cues)
        self._simple = _CueSet(self.simple_cues)

    def classify(self, text: str) -> Tier:
        """Return ``"simple"``, ``"medium"`` or ``"complex"`` for ``text``.

        Example:
            >>> rules = ComplexityClassifier()
            >>> rules.classify("提取这段文字中的日期")  # a simple cue, no complex cue
            'simple'
            >>> rules.classify("评估这个方案")  # one complex cue is not enough
            'medium'
            >>> rules.classify("x" * 4002)  # ~2001 tokens by the seed's estimate
            'complex'
        """
        return self.route(text).tier  # type: ignore[return-value]

    def route(self, text: str) -> RouteDecision:
        """Classify ``text`` and say why, with a score in [0, 1].

        Example:
            >>> ComplexityClassifier().route("请分析并比较两种架构").reason
            '3 complex cues'
        """
        if not isinstance(text, str):
            raise TypeError(f"text must be str, got {type(text).__name__}")
        tokens = len(text) // 2  # the seed's rough estimate; kept so tiers match it
        length = min(1.0, tokens / self.max_tokens)
        if tokens > self.max_tokens:
            return RouteDecision(
                "complex", 1.0, f"long prompt: ~{tokens} tokens > {self.max_tokens}"
            )
        lowered = text.lower()
        n_complex = self._complex.count(lowered)
        n_simple = self._simple.count(lowered)
        if n_complex >= self.complex_cue_min:
            tier: Tier = "complex"
            reason = f"{n_complex} complex cues"
        elif n_simple >= 1 and n_complex == 0:
            tier = "simple"
            reason = f"{n_simple} simple cue{'s' if n_simple > 1 else ''}, no complex cue"
        else:
            tier = "medium"
            reason = f"default ({n_complex} complex, {n_simple} simple cues)"
        return RouteDecision(tier, _BAND_LOW[tier] + _BAND_WIDTH * length, reason)


_seed_classifier = ComplexityClassifier()


def estimate_cost(prompt: str, est_output_tokens: int = 500) -> dict[str, Any]:
    """The seed's ``ModelRouter.estimate_cost``: route with the seed rules, price the
    tier's model from the catalog (the seed kept ``classify`` and ``estimate_cost``
    together; the catalog itself knows nothing of classifiers).

    Returns ``{"model", "input_tokens", "output_tokens", "total_cost"}``; the input
    estimate is the seed's ``len(prompt) // 2``.

    Example:
        >>> cost = estimate_cost("分析并比较两种架构", est_output_tokens=100)
        >>> cost["model"], cost["input_tokens"], cost["total_cost"]
        ('claude-3.5-sonnet', 4, 0.001512)
    """
    if not isinstance(est_output_tokens, int) or est_output_tokens < 0:
        raise ValueError(f"est_output_tokens must be an int >= 0, got {est_output_tokens!r}")
    tier = _seed_classifier.classify(prompt)
    model = SEED_MODELS[tier]["model"]
    price = get_price(model)
    assert price is not None  # the seed layer always knows its own models
    input_tokens = len(prompt) // 2
    # The seed's formula on per-1K prices; rounding the per-1K figure recovers the exact
    # decimal (0.00015, not 0.00015000000000000001) so results match the seed's digits.
    input_per_1k = round(price.input * 1000, 12)
    output_per_1k = round(price.output * 1000, 12)
    total = (input_tokens / 1000) * input_per_1k + (est_output_tokens / 1000) * output_per_1k
    return {
        "model": model,
        "input_tokens": input_tokens,
        "output_tokens": est_output_tokens,
        "total_cost": round(total, 6),
    }
