"""A cascade: answer with the cheapest tier, escalate when a check rejects the answer.

Example:
    >>> from costopt_core.cascade import CascadeStrategy
    >>> cascade = CascadeStrategy(require_json=True)
    >>> cascade.route("Give me the totals as JSON").score
    0.0
    >>> cascade.accept("Give me the totals as JSON", "Sure! The total is 4.", "simple")
    False
    >>> cascade.accept("Give me the totals as JSON", '{"total": 4}', "simple")
    True

``route`` picks the cheapest tier (or, with ``start=``, whatever another strategy
picks). A router that sees ``accept(text, answer_text, tier)`` on its strategy calls
it after each answer and, on ``False``, asks the next tier up; ``RouterChatModel``
records the rejected attempts with their token usage in
``response_metadata["routing"]["attempts"]`` so their cost is still accounted.

Checks (all configured ones must pass):

- ``validator``: your callable, ``answer -> bool``, ``(question, answer) -> bool`` or
  ``(question, answer, tier) -> bool``; an exception counts as a rejection;
- ``require_json`` / ``json_keys``: the answer parses as JSON (a fenced code block is
  fine), holding these keys;
- ``pattern``: a regular expression the answer must contain;
- ``min_confidence``: the answer's self-reported confidence ("Confidence: 0.8",
  "confidence 85%", "7/10", ``{"confidence": 0.9}``, "置信度：0.8", or high / medium /
  low) must reach this; an answer that reports none is rejected;
- ``min_length``: at least this many non-blank characters;
- ``reject_refusals`` (on by default): "I'm sorry, but I can't...", "As an AI...",
  "抱歉，我无法..." are rejected.
"""

from __future__ import annotations

import inspect
import json
import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from costopt_core.decision import LADDER, RouteDecision

logger = logging.getLogger(__name__)

_REFUSAL = re.compile(
    r"\b(?:i(?:'m| am) (?:sorry|afraid),? (?:but )?i (?:can(?:no|')t|am unable|won't)"
    r"|i (?:can(?:no|')t|am unable to|'m unable to|won't be able to) "
    r"(?:help|assist|answer|provide|do that|comply|fulfil)"
    r"|as an ai(?: language model)?\b"
    r"|i (?:don't|do not) (?:have enough information|know the answer))"
    r"|(?:抱歉|对不起)[，,]?\s*我(?:无法|不能)|我无法(?:回答|提供|帮助|完成)"
    r"|作为一?个?(?:AI|人工智能)",
    re.IGNORECASE,
)
_FENCE = re.compile(r"```(?:json)?\s*(.*?)```", re.DOTALL | re.IGNORECASE)
_CONFIDENCE = re.compile(
    r"(?:confidence|certainty|置信度|信心|把握)\W{0,3}(?:level|score)?\W{0,3}"
    r"(?:(?P<num>\d+(?:\.\d+)?)\s*(?P<pct>%|/\s*(?P<den>\d+))?|(?P<word>very high|high|"
    r"medium|moderate|low|very low|高|中|低))",
    re.IGNORECASE,
)
_WORD_CONFIDENCE = {
    "very high": 0.95,
    "high": 0.85,
    "高": 0.85,
    "medium": 0.6,
    "moderate": 0.6,
    "中": 0.6,
    "low": 0.3,
    "低": 0.3,
    "very low": 0.1,
}


def parse_confidence(answer: str) -> float | None:
    """The last self-reported confidence in ``answer`` as a number in [0, 1], or None.

    Example:
        >>> parse_confidence("The answer is 12. Confidence: 85%")
        0.85
        >>> parse_confidence('{"answer": 3, "confidence": 0.4}')
        0.4
    """
    found: float | None = None
    for match in _CONFIDENCE.finditer(answer):
        if match.group("word"):
            found = _WORD_CONFIDENCE[match.group("word").lower()]
            continue
        value = float(match.group("num"))
        if match.group("den"):
            den = float(match.group("den"))
            value = value / den if den > 0 else float("nan")
        elif match.group("pct") or value > 1:
            value /= 100
        if 0.0 <= value <= 1.0:
            found = value
    return found


def parse_json_answer(answer: str) -> Any:
    """The JSON value in ``answer`` (bare, or inside a fenced code block); raises
    ``ValueError`` when there is none.

    Example:
        >>> parse_json_answer('Here it is:\\n```json\\n{"total": 4}\\n```')
        {'total': 4}
        >>> parse_json_answer("four")
        Traceback (most recent call last):
        ...
        ValueError: answer is not JSON: Expecting value
    """
    text = answer.strip()
    fenced = _FENCE.search(text)
    if fenced:
        text = fenced.group(1).strip()
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"answer is not JSON: {exc.msg}") from None


def _arity(func: Callable[..., Any]) -> int:
    try:
        params = inspect.signature(func).parameters.values()
    except (TypeError, ValueError):
        return 1
    if any(p.kind is p.VAR_POSITIONAL for p in params):
        return 3
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return max(1, min(3, len(positional)))


@dataclass(frozen=True)
class CheckResult:
    """Whether an answer passed, and which check rejected it."""

    accepted: bool
    reason: str

    def __bool__(self) -> bool:
        return self.accepted


class CascadeStrategy:
    """Cheapest tier first; escalate when the answer fails the configured checks.

    Args:
        validator: ``answer -> bool`` (or with ``question`` / ``tier`` first, see module).
        require_json: the answer must be JSON.
        json_keys: keys the JSON answer (an object) must hold; implies ``require_json``.
        pattern: a regular expression (str or compiled) the answer must contain.
        min_confidence: lowest acceptable self-reported confidence, in [0, 1].
        min_length: fewest acceptable non-blank characters.
        reject_refusals: reject answers that refuse or disclaim.
        start: a strategy picking the first tier to try (default: the cheapest).
        tiers: tier names, cheapest first, if the cascade should name them itself.
    """

    name = "cascade"

    def __init__(
        self,
        validator: Callable[..., Any] | None = None,
        *,
        require_json: bool = False,
        json_keys: Sequence[str] = (),
        pattern: str | re.Pattern[str] | None = None,
        min_confidence: float | None = None,
        min_length: int = 0,
        reject_refusals: bool = True,
        start: Any = None,
        tiers: Sequence[str] | None = None,
    ) -> None:
        from costopt_core.strategies import as_strategy, check_tiers

        if validator is not None and not callable(validator):
            raise TypeError(f"validator must be callable, got {type(validator).__name__}")
        if isinstance(json_keys, str) or not all(isinstance(k, str) for k in json_keys):
            raise TypeError(f"json_keys must be a sequence of str, got {json_keys!r}")
        if pattern is not None and not isinstance(pattern, str | re.Pattern):
            raise TypeError(f"pattern must be a str or compiled regex, got {pattern!r}")
        if min_confidence is not None and (
            not isinstance(min_confidence, int | float) or not 0.0 <= min_confidence <= 1.0
        ):
            raise ValueError(f"min_confidence must be in [0, 1], got {min_confidence!r}")
        if not isinstance(min_length, int) or isinstance(min_length, bool) or min_length < 0:
            raise ValueError(f"min_length must be an int >= 0, got {min_length!r}")
        self.validator = validator
        self._validator_arity = _arity(validator) if validator is not None else 0
        self.json_keys = tuple(json_keys)
        self.require_json = bool(require_json) or bool(self.json_keys)
        try:
            self.pattern = re.compile(pattern) if isinstance(pattern, str) else pattern
        except re.error as exc:
            raise ValueError(f"pattern is not a valid regular expression: {exc}") from None
        self.min_confidence = None if min_confidence is None else float(min_confidence)
        self.min_length = min_length
        self.reject_refusals = bool(reject_refusals)
        self.start = None if start is None else as_strategy(start)
        self.tiers = None if tiers is None else check_tiers(tiers)

    def describe_checks(self) -> list[str]:
        """The configured checks, in the order they run."""
        checks = []
        if self.reject_refusals:
            checks.append("no refusal")
        if self.min_length:
            checks.append(f">= {self.min_length} chars")
        if self.require_json:
            checks.append("JSON" + (f" with {list(self.json_keys)}" if self.json_keys else ""))
        if self.pattern is not None:
            checks.append(f"matches /{self.pattern.pattern}/")
        if self.min_confidence is not None:
            checks.append(f"confidence >= {self.min_confidence:g}")
        if self.validator is not None:
            checks.append(f"validator {getattr(self.validator, '__name__', 'callable')}")
        return checks

    def route(self, text: str) -> RouteDecision:
        """The first tier to try: the cheapest (or the ``start`` strategy's choice)."""
        checks = ", ".join(self.describe_checks()) or "no checks"
        if self.start is not None:
            first = self.start.route(text)
            return RouteDecision(
                first.tier, first.score, f"cascade from {first.reason}; escalate unless: {checks}"
            )
        tier = self.tiers[0] if self.tiers else LADDER[0]
        return RouteDecision(tier, 0.0, f"cascade: cheapest tier first; escalate unless: {checks}")

    def check(self, text: str, answer_text: str, tier: str) -> CheckResult:
        """Run every configured check on an answer; the first failure names itself.

        Example:
            >>> strict = CascadeStrategy(min_length=5, json_keys=["total"])
            >>> strict.check("sum?", '{"sum": 4}', "simple")
            CheckResult(accepted=False, reason="JSON lacks keys ['total']")
            >>> bool(strict.check("sum?", '{"total": 4}', "simple"))
            True
        """
        answer = answer_text if isinstance(answer_text, str) else str(answer_text)
        if self.reject_refusals and _REFUSAL.search(answer[:400]):
            return CheckResult(False, "refusal")
        if self.min_length and len("".join(answer.split())) < self.min_length:
            return CheckResult(False, f"shorter than {self.min_length} chars")
        if self.require_json:
            try:
                value = parse_json_answer(answer)
            except ValueError as exc:
                return CheckResult(False, str(exc))
            missing = [k for k in self.json_keys if not isinstance(value, dict) or k not in value]
            if missing:
                return CheckResult(False, f"JSON lacks keys {missing}")
        if self.pattern is not None and not self.pattern.search(answer):
            return CheckResult(False, f"no match for /{self.pattern.pattern}/")
        if self.min_confidence is not None:
            confidence = parse_confidence(answer)
            if confidence is None:
                return CheckResult(False, "no self-reported confidence")
            if confidence < self.min_confidence:
                return CheckResult(False, f"confidence {confidence:g} < {self.min_confidence:g}")
        if self.validator is not None:
            args = ((answer,), (text, answer), (text, answer, tier))[self._validator_arity - 1]
            try:
                ok = self.validator(*args)
            except Exception as exc:  # a validator that raises has rejected the answer
                logger.warning("cascade validator raised on tier %r: %r", tier, exc)
                return CheckResult(False, f"validator raised {type(exc).__name__}")
            if not ok:
                return CheckResult(False, "validator rejected")
        return CheckResult(True, "accepted")

    def accept(self, text: str, answer_text: str, tier: str) -> bool:
        """``True`` to keep ``tier``'s answer, ``False`` to escalate to the next tier."""
        return self.check(text, answer_text, tier).accepted

    def __repr__(self) -> str:
        return f"CascadeStrategy(checks={self.describe_checks()!r})"


__all__ = ["CascadeStrategy", "CheckResult", "parse_confidence", "parse_json_answer"]
