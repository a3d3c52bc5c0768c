"""The strategy a router uses when given none: the seed's rules where the seed's own cues
speak, the zero-shot scorer everywhere else.

Example:
    >>> from costopt_core.default_strategy import DefaultStrategy
    >>> router = DefaultStrategy()
    >>> [router.route(t).tier for t in ("hi", "What's the weather in Paris?")]
    ['simple', 'simple']
    >>> router.route("Translate 'hello' into French").tier
    'simple'
    >>> router.route("Analyse last year's sales by region, compare the trends, "
    ...              "then design a step-by-step plan for the weakest region.").tier
    'complex'
    >>> router.route("请分析并比较两种架构").reason  # the seed's cues: the seed's tier
    'seed rules: 3 complex cues'

Why this split: the seed's rule set is reproduced exactly by ``"rules"``, and its users
expect its tiers on its own prompts, so any prompt in which a seed cue word appears (or
that is over the seed's length limit) gets exactly the seed's tier. The seed knows only
Chinese cues, though, and sends everything else to "medium", which a two-tier router
resolves to its strong model: an English user would save nothing. Those prompts go to
:class:`~costopt_core.zero_shot.ZeroShotStrategy` instead, which reads English and Chinese
cues and length and sends greetings, lookups and translation to the cheap tier, multi-step
analysis, design and long inputs up. Both are a few tens of microseconds per prompt.
"""

from __future__ import annotations

from costopt_core.classify import SEED_COMPLEX_CUES, SEED_SIMPLE_CUES, ComplexityClassifier
from costopt_core.decision import RouteDecision
from costopt_core.zero_shot import ZeroShotStrategy

_SEED_CUES = (*SEED_COMPLEX_CUES, *SEED_SIMPLE_CUES)


class DefaultStrategy:
    """Seed rules for the seed's prompts, zero-shot for the rest; tiers are the seed's
    ``"simple" / "medium" / "complex"`` (a face maps them onto its own tiers; re-cut the
    score with ``get_strategy("default", threshold=...)``)."""

    name = "default"

    def __init__(self) -> None:
        self.seed = ComplexityClassifier()
        self.zero_shot = ZeroShotStrategy()
        self.tiers = self.zero_shot.tiers

    def route(self, text: str) -> RouteDecision:
        if not isinstance(text, str):
            raise TypeError(f"text must be str, got {type(text).__name__}")
        # Chinese cues are unchanged by lower(), so testing the raw text is the seed's test.
        if len(text) // 2 > self.seed.max_tokens or any(c in text for c in _SEED_CUES):
            decision = self.seed.route(text)
            return RouteDecision(decision.tier, decision.score, f"seed rules: {decision.reason}")
        return self.zero_shot.route(text)

    def __repr__(self) -> str:
        return "DefaultStrategy()"


__all__ = ["DefaultStrategy"]
