"""A zero-shot difficulty scorer: general features of a prompt, weighted by hand.

Example:
    >>> from costopt_core.zero_shot import ZeroShotStrategy
    >>> router = ZeroShotStrategy()
    >>> router.route("Translate 'good morning' into French.").tier
    'simple'
    >>> hard = ("A shop sells pens at $3 each and notebooks at $5 each. If Ana buys 4 pens "
    ...         "and twice as many notebooks, then pays with a $50 bill, how much change "
    ...         "does she get? Explain each step.")
    >>> router.route(hard).score > router.route("What is the capital of France?").score
    True

Nothing here is fitted to data. Each feature stands for work the model must do:

- **length**: more text to read and keep consistent (per doubling of the token count);
- **quantities**: numbers, number words, percentages, fractions: every quantity is an
  operand, and operands are what multi-step arithmetic chains together;
- **maths cues** ("how many", "percent", "each", "ratio", "平均", "多少") and **symbols**;
- **code cues** (code fences, ``def``, "implement", "函数");
- **reasoning cues** ("why", "prove", "compare", "trade-off", "分析", "推理");
- **steps**: sequencing words ("then", "after", "finally", "然后"), sentences, several
  questions, enumerated items: each is a sub-task;
- **conditionals** ("if", "unless", "如果") and **constraints** ("at least", "must",
  "不超过"): branches and limits a weak model tends to drop;
- **simple-task cues** (translate, summarise, format, extract, classify, greetings) pull
  the score down: these are tasks cheap models do well.

Counts enter through ``log1p`` (the second "then" says less than the first), the sum goes
through a logistic, and the weights were set from those arguments before looking at any
labelled data. ``route`` cuts the score into ``tiers`` at even cut points (thirds for
the seed's three tiers); ``get_strategy("zero-shot", threshold=...)`` re-cuts it, and
:func:`costopt_core.evaluation.calibrate_threshold` finds a cut for a target share.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from costopt_core.decision import LADDER, RouteDecision
from costopt_core.tokens import estimate_tokens


def _words(*cues: str) -> re.Pattern[str]:
    """English cues (regular expressions; ``|`` separates alternatives) match at a word
    start, so "reason" counts "reasoning"."""
    return re.compile(r"\b(?:" + "|".join(cues) + r")", re.IGNORECASE)


def _literal(cues: str) -> re.Pattern[str]:
    """Chinese cues, separated by spaces, match as plain substrings (Chinese has no word
    boundaries)."""
    return re.compile("|".join(re.escape(c) for c in cues.split()))


_NUMBER = re.compile(r"(?<![\w.])[-+]?\$?\d[\d,]*(?:\.\d+)?(?:/\d+)?%?")
_NUMBER_WORDS = _words(
    r"(?:one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|fifteen|"
    r"twenty|thirty|forty|fifty|sixty|seventy|eighty|ninety|hundred|thousand|million|"
    r"half|halves|twice|double|triple|thrice|quarter|dozen|thirds?|fourths?|fifths?)\b"
)
_ZH_NUMBER = re.compile(
    r"[零一二三四五六七八九十百千万亿两半]+[个只本元块米克斤岁天年月周小时分秒人次倍件张条辆台份杯瓶箱页]"
)
_MATH = [
    _words(
        r"how (?:many|much|long|far|old)|percent|fraction|ratio|proportion|average|mean|total|sum|"
        r"differen|product|remain|left over|each|per|every|times|more than|less than|fewer|"
        r"increase|decrease|discount|interest|profit|rate|speed|area|volume|perimeter|equation|"
        r"solve|calculat|comput|probability|integer|divid|multipl"
    ),
    _literal(
        "多少 几个 计算 求解 平均 百分之 比例 总共 一共 剩下 剩余 每 倍 方程 概率 面积 体积 "
        "速度 利润 折扣"
    ),
]
_SYMBOLS = re.compile(r"[=+*/^×÷√∑∫≤≥≠<>]|\\frac|\\sum|\\int|\$\$")
_CODE = [
    re.compile(
        r"```|\bdef |\bclass |\breturn\b|\bimport |#include|=>|\};|\bselect .* from\b",
        re.IGNORECASE,
    ),
    _words(
        r"function|implement|algorithm|debug|bug|refactor|compile|regex|regular expression|sql|"
        r"python|javascript|java\b|rust|api|complexity|o\(n"
    ),
    _literal("代码 函数 实现 算法 调试 编程 程序"),
]
_REASONING = [
    _words(
        r"why|explain|prove|proof|derive|justify|step by step|reason|analy|compar|evaluat|"
        r"trade-off|tradeoff|design|architect|optimi|strateg|plan|pros and cons|critique|assess|"
        r"infer"
    ),
    _literal("为什么 证明 推导 解释 分析 推理 比较 评估 设计 架构 优化 权衡 策略 规划"),
]
_STEPS = [
    _words(
        r"then\b|after\b|afterwards|before\b|first\b|second\b|finally\b|next\b|later\b|also\b|"
        r"meanwhile\b|while\b|until\b"
    ),
    _literal("然后 首先 其次 最后 接着 之后 同时 再"),
]
_CONDITIONALS = [
    _words(
        r"if\b|unless\b|otherwise\b|whether\b|when\b|assum|suppose|given that|in case\b|provided\b"
    ),
    _literal("如果 假如 假设 否则 若 除非 当"),
]
_CONSTRAINTS = [
    _words(
        r"must|at least|at most|no more than|no less than|exactly|only\b|without|within|cannot|"
        r"can't|should not|do not|don't|ensure|maximum|minimum|limit"
    ),
    _literal("必须 至少 最多 不超过 不少于 只能 不能 不要 确保 限制"),
]
_SIMPLE = [
    _words(
        r"translat|summar|format|extract|classif|rewrite|paraphras|spell|define|definition|"
        r"what is the capital|correct the grammar|(?:hi|hello|hey|thanks|thank you)\b"
    ),
    _literal("翻译 摘要 格式化 提取 分类 改写 润色 你好 谢谢"),
]
_SENTENCE_END = re.compile(r"[.!?。！？]+(?=\s|$)")
_QUESTION = re.compile(r"[?？]")
_LIST_ITEM = re.compile(r"(?m)^\s*(?:\d+[.)]|[-*•])\s+")
# A relation between two quantities ("twice as many as", "3 years older than", "比…多"):
# one operation to turn it into a number.
_RELATIONS = [
    re.compile(
        r"\b(?:twice|thrice|half|double|triple|(?:\w+ )?times|\w+%|more|less|fewer|longer|"
        r"shorter|older|younger|faster|slower|cheaper|bigger|smaller|taller|heavier)\b"
        r"(?: as \w+)? (?:than|as)\b",
        re.IGNORECASE,
    ),
    re.compile(
        r"比[^，。,.？?]{0,12}?[多少大小快慢贵便宜高低长短]|[是为][^，。,.？?]{0,8}?的\S{0,3}倍"
    ),
]
# What the final question asks for: a derived quantity ("in total", "left", "how much
# more", "percent") needs one more operation after the facts are combined.
_DERIVED = [
    _words(
        r"in total|altogether|combined|left\b|remain|more\b|less\b|differen|percent|average|per\b|"
        r"each\b|how long|how often|profit|rate\b"
    ),
    _literal("一共 总共 还剩 剩下 多多少 少多少 平均 百分之几 每"),
]


@dataclass(frozen=True)
class Features:
    """The counts the score is built from (exposed for explanations and tests)."""

    tokens: int
    quantities: int
    maths: int
    symbols: int
    code: int
    reasoning: int
    steps: int
    conditionals: int
    relations: int
    derived: int
    constraints: int
    sentences: int
    questions: int
    list_items: int
    simple: int


def _count(patterns: Sequence[re.Pattern[str]], text: str, distinct: bool) -> int:
    found: list[str] = []
    for pattern in patterns:
        found.extend(m.group(0).lower() for m in pattern.finditer(text))
    return len(set(found)) if distinct else len(found)


def _last_sentence(text: str) -> str:
    parts = [p for p in re.split(r"(?<=[.!?。！？])\s*", text.strip()) if p.strip()]
    return parts[-1] if parts else ""


def operations(f: Features) -> int:
    """Estimated operations a solution needs: every quantity is an operand, every
    relation, condition and sequencing word a step, a derived question one more."""
    return f.quantities + f.relations + f.conditionals + f.steps + f.derived


def extract_features(text: str) -> Features:
    """Count the zero-shot features of ``text``.

    Example:
        >>> f = extract_features("If Ana has 3 apples and buys twice as many, how many in total?")
        >>> f.quantities, f.relations, f.conditionals, f.derived, operations(f)
        (2, 1, 1, 1, 5)
    """
    if not isinstance(text, str):
        raise TypeError(f"text must be str, got {type(text).__name__}")
    sentences = len(_SENTENCE_END.findall(text))
    if text.strip() and not _SENTENCE_END.search(text.strip()[-1:] + " "):
        sentences += 1  # a last clause with no full stop is still a sentence
    return Features(
        tokens=estimate_tokens(text),
        quantities=len(_NUMBER.findall(text))
        + len(_NUMBER_WORDS.findall(text))
        + len(_ZH_NUMBER.findall(text)),
        maths=_count(_MATH, text, distinct=True),
        symbols=len(_SYMBOLS.findall(text)),
        code=_count(_CODE, text, distinct=True),
        reasoning=_count(_REASONING, text, distinct=True),
        steps=_count(_STEPS, text, distinct=False),
        conditionals=_count(_CONDITIONALS, text, distinct=False),
        relations=_count(_RELATIONS, text, distinct=False),
        derived=_count(_DERIVED, _last_sentence(text), distinct=False),
        constraints=_count(_CONSTRAINTS, text, distinct=False),
        sentences=sentences,
        questions=len(_QUESTION.findall(text)),
        list_items=len(_LIST_ITEM.findall(text)),
        simple=_count(_SIMPLE, text, distinct=True),
    )


# Log-odds weights, set by argument, not fitted. Two kinds of evidence:
# - workload (how much): per doubling of the prompt's tokens, and per log1p of the
#   estimated operations; operations measure the work directly, so they weigh a bit more;
# - domain (what kind): maths / code / reasoning cues say a task needs reasoning at all,
#   which is a yes/no matter, so they enter saturated (the 5th maths word says nothing
#   new) and do not re-count the workload; a simple-task cue is strong evidence the other
#   way. Constraints, several questions and list items are sub-tasks a weak model drops.
DEFAULT_WEIGHTS: Mapping[str, float] = {
    "length": 0.5,
    "operations": 0.6,
    "maths": 0.4,
    "symbols": 0.15,
    "code": 1.0,
    "reasoning": 1.0,
    "constraints": 0.3,
    "extra_questions": 0.3,
    "list_items": 0.25,
    "simple": -1.0,
}
# A one-line factual question with no cue sits near 0.1: clearly the cheap tier.
DEFAULT_BIAS = -3.0
_PRESENCE = ("maths", "code", "reasoning", "simple")

_LABELS = {
    "length": "~{tokens} tokens",
    "operations": "~{operations} operations ({quantities} quantities, {relations} relations)",
    "maths": "{maths} maths cues",
    "symbols": "{symbols} symbols",
    "code": "{code} code cues",
    "reasoning": "{reasoning} reasoning cues",
    "constraints": "{constraints} constraints",
    "extra_questions": "{questions} questions",
    "list_items": "{list_items} list items",
    "simple": "{simple} simple-task cues",
}


class ZeroShotStrategy:
    """Scores how much a prompt needs a strong model, with no training data.

    Args:
        tiers: tier names, cheapest first; the score is cut into equal bands.
        weights: override some feature weights (keys of ``DEFAULT_WEIGHTS``).
        bias: the logistic's intercept.
    """

    name = "zero-shot"

    def __init__(
        self,
        tiers: Sequence[str] = LADDER,
        *,
        weights: Mapping[str, float] | None = None,
        bias: float = DEFAULT_BIAS,
    ) -> None:
        from costopt_core.strategies import check_tiers

        self.tiers = check_tiers(tiers)
        merged = dict(DEFAULT_WEIGHTS)
        for key, value in (weights or {}).items():
            if key not in DEFAULT_WEIGHTS:
                raise ValueError(
                    f"weights: unknown feature {key!r}; allowed: {sorted(DEFAULT_WEIGHTS)}"
                )
            if not isinstance(value, int | float) or not math.isfinite(value):
                raise ValueError(f"weights[{key!r}] must be a finite number, got {value!r}")
            merged[key] = float(value)
        if not isinstance(bias, int | float) or not math.isfinite(bias):
            raise ValueError(f"bias must be a finite number, got {bias!r}")
        self.weights = merged
        self.bias = float(bias)

    def contributions(self, text: str) -> dict[str, float]:
        """Each feature's addition to the log-odds for ``text``."""
        return self._contributions(extract_features(text))

    def _contributions(self, f: Features) -> dict[str, float]:
        values = {
            "length": math.log2(1 + f.tokens / 16),
            "operations": math.log1p(operations(f)),
            "symbols": math.log1p(f.symbols),
            "constraints": math.log1p(f.constraints),
            "extra_questions": math.log1p(max(0, f.questions - 1)),
            "list_items": math.log1p(f.list_items),
        }
        for key in _PRESENCE:
            # 0 cues -> 0, 1 -> 1.26, 2 -> 1.73, saturating at 2.
            values[key] = 2 * (1 - math.exp(-getattr(f, key)))
        return {k: self.weights[k] * values[k] for k in self.weights}

    def score(self, text: str) -> float:
        """The score in [0, 1] (what :meth:`route` cuts into tiers)."""
        z = self.bias + sum(self.contributions(text).values())
        return 1.0 / (1.0 + math.exp(-z))

    def route(self, text: str) -> RouteDecision:
        features = extract_features(text)
        parts = self._contributions(features)
        z = self.bias + sum(parts.values())
        score = 1.0 / (1.0 + math.exp(-z))
        index = min(len(self.tiers) - 1, int(score * len(self.tiers)))
        top = sorted((kv for kv in parts.items() if abs(kv[1]) > 0.05), key=lambda kv: -abs(kv[1]))[
            :3
        ]
        counts = {**vars(features), "operations": operations(features)}
        why = ", ".join(_LABELS[k].format(**counts) for k, _ in top) or "no difficulty cues"
        return RouteDecision(self.tiers[index], score, f"zero-shot {score:.2f}: {why}")

    def __repr__(self) -> str:
        return f"ZeroShotStrategy(tiers={self.tiers!r})"


__all__ = [
    "DEFAULT_BIAS",
    "DEFAULT_WEIGHTS",
    "Features",
    "ZeroShotStrategy",
    "extract_features",
    "operations",
]
