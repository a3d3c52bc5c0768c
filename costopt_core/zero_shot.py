"""A zero-shot difficulty scorer: general features of a prompt, weighted by hand.

Example:
    >>> from costopt_core.zero_shot import ZeroShotStrategy
    >>> router = ZeroShotStrategy()
    >>> router.route("Translate 'good morning' into French.").tier
    'simple'
    >>> router.route("What's the weather in Paris?").tier
    'simple'
    >>> router.route("Analyse our sales, compare the regions, then design a plan.").tier
    'complex'

Nothing here is fitted to data. Each feature stands for work the model must do, in
English and Chinese:

- **length**: more text to read and keep consistent (per doubling of the token count).
  Length is the one signal that held across every labelled set tried, so it is the
  backbone and the cues below move a prompt up or down from it;
- **reasoning** cues ("why", "prove", "compare", "trade-off", "design", "分析", "推理"),
  **code** cues (code fences, ``def``, "implement", "函数") and **maths** cues ("solve",
  "equation", "probability", "计算"): the kind of task where a strong model gains;
- **vocabulary**: the share of long words (10+ letters): specialist terms mark
  knowledge-heavy questions, where a larger model knows more;
- **steps** (sequencing words, several questions, list items) and **constraints**
  ("at least", "must", "不超过"): sub-tasks and limits a weak model tends to drop;
- **simple-task** cues (translate, summarise, format, extract, classify, greetings) and
  **lookups** (a short "what is / who is / where is ..." question): tasks cheap models do
  well; they pull the score down. A simple-task cue counts only where a request names
  its task (its first word, a sentence's or line's first word, after "please / you / me
  / to"): in "the formation
  of planets" or "the classification of whales" the word is content, not the task. Code
  cues that are everyday words too ("function", "class", "return") count only beside
  another code cue.

Why no arithmetic counts: a probe on labelled knowledge questions found digit, maths-symbol
and "calculate" counts ranked prompts no better than length (a weak and a strong model
both fail at long arithmetic), so maths enters only as a saturated cue of the task kind.

Speed matters: a router's default strategy runs this on every call. The cues of all
kinds are found in one pass of one regular expression per script over the lower-cased
text (tens of microseconds for a paragraph).
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import NamedTuple

from costopt_core.decision import LADDER, RouteDecision
from costopt_core.tokens import estimate_tokens

# Cues of each kind. English: ``word*`` matches words starting with ``word`` ("reason*"
# counts "reasoning"), a bare ``word`` only that word, and ``a_b`` the phrase "a b" (or
# "a-b") anywhere. Chinese cues match as substrings (Chinese has no word boundaries).
_EN_CUES: dict[str, str] = {
    "reasoning": (
        "why prove* proof* derive* justif* explain* analy* reason* compar* evaluat* assess* "
        "critique* critic* tradeoff* trade_off* design* architect* optimi* strateg* plan "
        "planning step_by_step pros_and_cons implication* in_depth in_detail argue* argument* "
        "hypothes* infer*"
    ),
    "code": (
        "python* javascript typescript java c++ rust golang sql regex* regular_expression "
        "function* implement* algorithm* debug* refactor* compil* program programs script "
        "code bug api class def return import"
    ),
    "maths": (
        "solve* equation* integral* derivative* probabilit* theorem* lemma* polynomial* "
        "matrix matrices vector* calculat* comput*"
    ),
    "steps": "then after_that afterwards finally next first second third lastly also",
    "constraints": (
        "must at_least at_most no_more_than no_less_than exactly without within ensure* "
        "make_sure do_not don't should_not limit*"
    ),
    "simple": (
        "translat* summar* tl;dr format* extract* classif* categori* convert* rewrite* "
        "rephras* paraphras* proofread* spell* define definition* synonym* antonym* "
        "correct_the_grammar fix_the_grammar fix_the_typo fix_the_spelling hi hello hey thanks "
        "thank_you good_morning good_afternoon good_evening bye"
    ),
}
_ZH_CUES: dict[str, str] = {
    "reasoning": "为什么 证明 推导 解释 分析 推理 比较 评估 设计 架构 优化 权衡 策略 规划 论证",
    "code": "代码 函数 实现 算法 调试 编程 程序 脚本",
    "maths": "计算 求解 方程 概率 积分 导数 定理 矩阵",
    "steps": "然后 首先 其次 最后 接着 之后 同时",
    "constraints": "必须 至少 最多 不超过 不少于 只能 不能 不要 确保 限制",
    "simple": "翻译 摘要 格式化 提取 分类 改写 润色 你好 谢谢 早上好 再见",
}
KINDS: tuple[str, ...] = tuple(_EN_CUES)


_WORD = re.compile(r"[a-z]+(?:'[a-z]+)?")


def _cue_tables() -> tuple[
    dict[str, str], dict[str, str], tuple[int, ...], list[tuple[str, str, str]]
]:
    words: dict[str, str] = {}
    prefixes: dict[str, str] = {}
    phrases: list[tuple[str, str, str]] = []
    for kind, entries in _EN_CUES.items():
        for entry in entries.split():
            if "_" in entry or not entry.rstrip("*").replace("'", "").isalpha():
                for sep in (" ", "-"):
                    phrase = entry.replace("_", sep)
                    phrases.append((_WORD.findall(phrase)[0], phrase, kind))
            elif entry.endswith("*"):
                prefixes[entry[:-1]] = kind
            else:
                words[entry] = kind
    lengths = tuple(sorted({len(p) for p in prefixes}, reverse=True))
    return words, prefixes, lengths, sorted(set(phrases))


_WORDS, _PREFIXES, _PREFIX_LENGTHS, _PHRASES = _cue_tables()
_ZH = [(cue, kind) for kind, cues in _ZH_CUES.items() for cue in cues.split()]
_CJK = re.compile(r"[\u4e00-\u9fff]")
# A short factual question: "what is / who was / where are / what's ...", "什么是".
_LOOKUP = re.compile(
    r"^\s*(?:(?:what|where|when|which)(?:'s|\s+(?:is|are|was|were|does|do))\b|who\b|"
    r"how (?:old|tall|far|big|many people)\b)|是什么|什么是|在哪|几点|天气"
)
_LIST_ITEM = re.compile(r"(?m)^\s*(?:\d+[.)]|[-*•])\s+")
_LOOKUP_MAX_TOKENS = 24  # beyond a sentence a "what is" question is no longer a lookup
_LONG_WORD = 10  # letters; specialist vocabulary (Zipf: rarer words are longer)


# Code cues that are everyday words too ("the function of the kidney", "the working
# class", "a return on capital"): alone they do not make a code task; beside another code
# cue ("a Python function") they count.
_AMBIGUOUS_CODE = frozenset(
    {
        "function",
        "class",
        "return",
        "import",
        "program",
        "programs",
        "code",
        "script",
        "compil",
        "bug",
    }
)
# Where a request names its task: its first word, a sentence's or line's first word
# ("... Thanks!"), a word after "please / you / me / to" ("can you translate", "help me
# summarise", "how to convert").
# (The word is matched ahead, not consumed: "can you please translate" finds both.)
_LEAD = re.compile(r"(?:^|[.!?:;\n]\s*|\b(?:please|you|me|to|kindly)\s+)(?=([a-z]+))")


def _instruction_words(lowered: str) -> set[str]:
    """Words where a request names its task (see ``_LEAD``). Simple-task cues count only
    there: "Translate this" asks for a translation; in "the formation of planets" or
    "the classification of whales" the word is content."""
    return set(_LEAD.findall(lowered.lstrip()))


class Features(NamedTuple):
    """What the score is built from (exposed for explanations and tests).

    Cue counts are distinct cues for the task-kind cues (``reasoning``, ``code``,
    ``maths``, ``simple``) and occurrences for ``steps`` and ``constraints``.
    """

    tokens: int
    reasoning: int
    code: int
    maths: int
    steps: int
    constraints: int
    simple: int
    lookup: bool
    questions: int
    list_items: int
    long_word_share: float


# word -> its cue, shared by all calls: after warm-up a word costs one dict lookup.
_WORD_MEMO: dict[str, tuple[str, str] | None] = {}
_MEMO_MAX = 50_000
_UNSEEN: tuple[str, str] = ("", "")


def _word_cue(word: str) -> tuple[str, str] | None:
    """(kind, cue) of the cue ``word`` is or starts with, if any (longest prefix wins)."""
    kind = _WORDS.get(word)
    if kind is not None:
        return kind, word
    for length in _PREFIX_LENGTHS:
        if len(word) >= length:
            kind = _PREFIXES.get(word[:length])
            if kind is not None:
                return kind, word[:length]
    return None


def extract_features(text: str) -> Features:
    """The zero-shot features of ``text``.

    Example:
        >>> f = extract_features("First analyse the logs, then explain why the API fails.")
        >>> f.reasoning, f.code, f.steps, f.lookup  # analyse, explain, why; API; first, then
        (3, 1, 2, False)
        >>> extract_features("Who wrote Hamlet?").lookup
        True
    """
    if not isinstance(text, str):
        raise TypeError(f"text must be str, got {type(text).__name__}")
    lowered = text.lower()
    hits: set[tuple[str, str]] = set()  # distinct (kind, cue)
    steps = constraints = 0
    words = _WORD.findall(lowered)
    counts = Counter(words)  # each distinct word is looked up once
    lead = _instruction_words(lowered)
    for word, n in counts.items():
        hit = _WORD_MEMO.get(word, _UNSEEN)
        if hit is _UNSEEN:
            hit = _WORD_MEMO[word] = _word_cue(word)
            if len(_WORD_MEMO) > _MEMO_MAX:  # a bound, not an LRU: vocabularies are small
                _WORD_MEMO.clear()
        if hit is not None and (hit[0] != "simple" or word in lead):
            hits.add(hit)
            if hit[0] == "steps":
                steps += n
            elif hit[0] == "constraints":
                constraints += n
    for head, phrase, kind in _PHRASES:
        # A phrase can only occur where its first word does: most are skipped unread.
        if head in counts and phrase in lowered and (kind != "simple" or head in lead):
            hits.add((kind, phrase))
            steps += kind == "steps"
            constraints += kind == "constraints"
    if _CJK.search(text):
        for cue, kind in _ZH:
            if cue in text:
                hits.add((kind, cue))
                steps += text.count(cue) if kind == "steps" else 0
                constraints += text.count(cue) if kind == "constraints" else 0
    if not any(kind == "code" and cue not in _AMBIGUOUS_CODE for kind, cue in hits):
        ambiguous = [hit for hit in hits if hit[0] == "code"]
        if len(ambiguous) < 2:  # one everyday word ("function", "class") is no code task
            hits.difference_update(ambiguous)
    kinds = [kind for kind, _ in hits]
    tokens = estimate_tokens(text)
    long_words = sum(1 for w in words if len(w) >= _LONG_WORD)
    return Features(
        tokens=tokens,
        reasoning=kinds.count("reasoning"),
        code=kinds.count("code"),
        maths=kinds.count("maths"),
        steps=steps,
        constraints=constraints,
        simple=kinds.count("simple"),
        lookup=tokens <= _LOOKUP_MAX_TOKENS and _LOOKUP.search(lowered) is not None,
        questions=lowered.count("?") + lowered.count("？"),
        list_items=len(_LIST_ITEM.findall(text)) if "\n" in text else 0,
        long_word_share=long_words / len(words) if len(words) >= 5 else 0.0,
    )


# Log-odds weights, set by argument, not fitted:
# - length: per doubling of (1 + tokens/16), the backbone;
# - task kind (reasoning / code / maths / simple) is a yes/no matter, so those cues enter
#   saturated (the fifth reasoning word says little new); reasoning weighs most: analysis,
#   design and argument are where a strong model's answers are judged better;
# - steps, constraints, extra questions and list items are sub-tasks (log1p of counts);
# - vocabulary: per 10 % of long words; a lookup is strong evidence the other way.
DEFAULT_WEIGHTS: Mapping[str, float] = {
    "length": 0.6,
    "reasoning": 1.5,
    "code": 1.2,
    "maths": 0.6,
    "vocabulary": 0.4,
    "steps": 0.4,
    "constraints": 0.3,
    "extra_questions": 0.3,
    "list_items": 0.25,
    "simple": -1.5,
    "lookup": -1.0,
}
# A one-line question with no cue sits near 0.1: clearly the cheap tier.
DEFAULT_BIAS = -3.0
_PRESENCE = ("reasoning", "code", "maths", "simple")

_LABELS = {
    "length": "~{tokens} tokens",
    "reasoning": "{reasoning} reasoning cues",
    "code": "{code} code cues",
    "maths": "{maths} maths cues",
    "vocabulary": "{long_word_share:.0%} long words",
    "steps": "{steps} step words",
    "constraints": "{constraints} constraints",
    "extra_questions": "{questions} questions",
    "list_items": "{list_items} list items",
    "simple": "{simple} simple-task cues",
    "lookup": "a short lookup",
}


def length_value(tokens: int) -> float:
    """The length feature: doublings of ``1 + tokens / 16`` (0 for an empty prompt, 1 at
    16 tokens, ~2.9 at 100): each doubling of a long prompt adds the same.

    Example:
        >>> [round(length_value(t), 2) for t in (0, 16, 100)]
        [0.0, 1.0, 2.86]
    """
    return math.log2(1 + tokens / 16)


def feature_values(f: Features) -> dict[str, float]:
    """Each feature on the scale its weight applies to (before weighting)."""
    values = {
        "length": length_value(f.tokens),
        "vocabulary": 10 * f.long_word_share,
        "steps": math.log1p(f.steps),
        "constraints": math.log1p(f.constraints),
        "extra_questions": math.log1p(max(0, f.questions - 1)),
        "list_items": math.log1p(f.list_items),
        "lookup": 1.0 if f.lookup else 0.0,
    }
    for key in _PRESENCE:
        # 0 cues -> 0, 1 -> 1.26, 2 -> 1.73, saturating at 2.
        values[key] = 2 * (1 - math.exp(-getattr(f, key)))
    return values


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
        self._items = tuple(merged.items())

    def contributions(self, text: str) -> dict[str, float]:
        """Each feature's addition to the log-odds for ``text``.

        Example:
            >>> parts = ZeroShotStrategy().contributions("hi")
            >>> parts["simple"] < 0 < parts["length"]
            True
        """
        values = feature_values(extract_features(text))
        return {k: w * values[k] for k, w in self._items}

    def score(self, text: str) -> float:
        """The score in [0, 1] (what :meth:`route` cuts into tiers)."""
        return _logistic(self.bias + sum(self.contributions(text).values()))

    def route(self, text: str) -> RouteDecision:
        features = extract_features(text)
        values = feature_values(features)
        parts = {k: w * values[k] for k, w in self._items}
        score = _logistic(self.bias + sum(parts.values()))
        index = min(len(self.tiers) - 1, int(score * len(self.tiers)))
        top = sorted((kv for kv in parts.items() if abs(kv[1]) > 0.05), key=lambda kv: -abs(kv[1]))
        counts = features._asdict()
        why = ", ".join(_LABELS[k].format_map(counts) for k, _ in top[:3])
        return RouteDecision(
            self.tiers[index], score, f"zero-shot {score:.2f}: {why or 'no difficulty cues'}"
        )

    def __repr__(self) -> str:
        return f"ZeroShotStrategy(tiers={self.tiers!r})"


def _logistic(z: float) -> float:
    return 1.0 / (1.0 + math.exp(-z))


__all__ = [
    "DEFAULT_BIAS",
    "DEFAULT_WEIGHTS",
    "KINDS",
    "Features",
    "ZeroShotStrategy",
    "extract_features",
    "feature_values",
    "length_value",
]
