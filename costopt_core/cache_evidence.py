"""Lexical evidence that two questions differ where a sentence embedding barely moves:
numbers, negation, dates, named entities, opposite words, content words on one side only.
English and Chinese.

Example:
    >>> from costopt_core.cache_evidence import compare
    >>> compare("How do I reset my password?", "How can I reset my password?").conflicts
    ()
    >>> compare("Is Python 3.12 supported?", "Is Python 3.11 supported?").conflicts
    ('numbers',)
    >>> compare("Can I delete a dataset?", "Can I not delete a dataset?").conflicts
    ('negation',)
    >>> compare("How do I install it on Windows?", "How do I install it on Linux?").conflicts
    ('entities',)
    >>> compare("如何重置密码？", "如何不重置密码？").conflicts
    ('negation',)
    >>> compare("三月的销售额是多少？", "四月的销售额是多少？").conflicts
    ('dates',)
    >>> compare("Books on economics for students?", "Books on psychology for students?").swapped
    True

Why: a sentence embedding sums meaning over the whole sentence, so "Python 3.11" vs
"Python 3.12", "can" vs "cannot", "Windows" vs "Linux" or "increase" vs "decrease" move
the cosine by a hair (users' main complaint about semantic caches: reversed-meaning
questions served as hits). Such a *conflict* is strong evidence of a different question;
a word only one side has is weak evidence (paraphrases swap words) and is measured as a
share (``unmatched``), for the gate to weigh. Everything is a few regular expressions
and set operations: microseconds per pair, no model.
"""

from __future__ import annotations

import difflib
import itertools
import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

_CJK = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_TOKEN = re.compile(rf"`[^`]+`|[{_CJK}]+|[A-Za-z0-9_]+(?:[.'’\-/][A-Za-z0-9_]+)*")
_CJK_START = re.compile(rf"[{_CJK}]")
_NUMBER = re.compile(r"^\d+(?:[.,]\d+)*$")
_HAS_DIGIT = re.compile(r"\d")
_CN_DIGITS = "零〇一二两三四五六七八九十百千万亿"
_CN_NUMBER = re.compile(rf"[{_CN_DIGITS}]+(?:点[{_CN_DIGITS}]+)?")
_CN_DATE = re.compile(
    rf"(?:[{_CN_DIGITS}\d]+|上|下|这|本)(?:月|号|日|年|季度|周|星期)|"
    r"星期[一二三四五六日天]|周[一二三四五六日末]|今天|明天|昨天|后天|前天|今年|去年|明年"
)


def _words(text: str) -> list[str]:
    return text.split()


_EN_NUMBER_WORDS = {
    w: str(i)
    for i, w in enumerate(
        _words(
            "zero _ two three four five six seven eight nine ten eleven twelve thirteen "
            "fourteen fifteen sixteen seventeen eighteen nineteen twenty"
        )
    )
    if w != "_"  # "one" is far more often a pronoun ("one can...") than a count
} | {"thirty": "30", "forty": "40", "fifty": "50", "hundred": "100", "thousand": "1000"}
_EN_NUMBER_WORDS |= {"million": "1e6", "billion": "1e9", "half": "0.5", "twice": "2"}
_EN_DATES = frozenset(
    _words(
        "january february march april may june july august september october november "
        "december jan feb mar apr jun jul aug sep sept oct nov dec monday tuesday wednesday "
        "thursday friday saturday sunday today tomorrow yesterday tonight weekend morning "
        "evening night spring summer autumn fall winter"
    )
)
# "may" is a month only when capitalised ("in May"); lower case it is the verb.
_AMBIGUOUS_DATES = {"may", "march", "fall"}
_EN_NEGATIONS = frozenset(
    _words(
        "not no never none nobody nothing neither nor without cannot cant dont doesnt didnt "
        "isnt arent wasnt werent wont wouldnt shouldnt couldnt hasnt havent hadnt mustnt"
    )
)
_CN_NEGATIONS = ("没有", "不", "没", "无", "非", "别", "未", "勿", "莫")
# Words that turn a question into its opposite; each pair is matched by stem.
_OPPOSITES = [
    ("increase", "decrease"),
    ("increase", "reduce"),
    ("add", "remove"),
    ("enable", "disable"),
    ("install", "uninstall"),
    ("upload", "download"),
    ("import", "export"),
    ("encrypt", "decrypt"),
    ("compress", "decompress"),
    ("before", "after"),
    ("min", "max"),
    ("minimum", "maximum"),
    ("best", "worst"),
    ("buy", "sell"),
    ("open", "close"),
    ("start", "stop"),
    ("lock", "unlock"),
    ("win", "lose"),
    ("gain", "lose"),
    ("more", "less"),
    ("most", "least"),
    ("high", "low"),
    ("higher", "lower"),
    ("highest", "lowest"),
    ("fast", "slow"),
    ("faster", "slower"),
    ("cheap", "expensive"),
    ("cheapest", "expensive"),
    ("advantage", "disadvantage"),
    ("pro", "con"),
    ("true", "false"),
    ("success", "failure"),
    ("above", "below"),
    ("inside", "outside"),
    ("input", "output"),
    ("left", "right"),
    ("north", "south"),
    ("east", "west"),
    ("male", "female"),
    ("men", "women"),
    ("man", "woman"),
    ("boy", "girl"),
    ("husband", "wife"),
    ("old", "young"),
    ("older", "younger"),
    ("first", "last"),
    ("push", "pull"),
    ("send", "receive"),
    ("give", "take"),
    ("borrow", "lend"),
    ("private", "public"),
    ("legal", "illegal"),
    ("possible", "impossible"),
    ("增加", "减少"),
    ("上涨", "下跌"),
    ("打开", "关闭"),
    ("开启", "关闭"),
    ("上传", "下载"),
    ("导入", "导出"),
    ("买", "卖"),
    ("最高", "最低"),
    ("最大", "最小"),
    ("最好", "最差"),
    ("之前", "之后"),
    ("优点", "缺点"),
    ("加密", "解密"),
    ("安装", "卸载"),
    ("启用", "禁用"),
    ("男", "女"),
]
_EN_STOPWORDS = frozenset(
    _words(
        "a an the and or but if then else of to in on at by for with from as into onto about "
        "over under between through during up down out off again further is am are was were "
        "be been being do does did doing have has had having i me my mine myself we us our "
        "ours you your yours he him his she her hers it its they them their theirs this that "
        "these those what which who whom whose when where why how there here can could will "
        "would shall should may might must need let get got getting make makes made any some "
        "all each every other such only own same so than too very just also s t please tell "
        "know want like way one ones thing things using use used ways someone something "
        "anyone anything explain describe give provide show possible best good really much "
        "many lot"
    )
)
_CN_STOPCHARS = set("的了吗呢吧啊呀么是在和与及或就都也还很请问我你他她它们这那个有怎样什如何为哪")

_ENTITY_SHAPE = re.compile(r"^`|[A-Z].*[A-Z]|_|\.[a-z]|[a-z][A-Z]|\d[a-zA-Z]|[a-zA-Z]\d")


@dataclass(frozen=True)
class Evidence:
    """What separates a new question from a cached one, beyond the cosine.

    ``conflicts`` names the strong signals found (``numbers``, ``negation``, ``dates``,
    ``entities``, ``opposites``); ``unmatched`` is the share of content words (CJK
    characters for Chinese) that only one of the two questions has, the larger of the
    two sides' shares, in [0, 1]. ``swapped``: the questions are the same but for one or
    two content words *replaced* (each side has words the other lacks, and they share
    more than they differ), the shape of look-alikes such as "books on economics" /
    "books on psychology"; synonyms swap the same way, so it is weak evidence that the
    gate weighs against the cosine.
    """

    conflicts: tuple[str, ...]
    unmatched: float
    swapped: bool = False
    #: The two prompts share a long context (:func:`shared_context_parts`): the evidence
    #: above is that of the parts that differ, and only those parts' meaning can tell
    #: the questions apart (the whole prompts' cosine is the context's).
    shared_context: bool = False


@dataclass(frozen=True)
class _Profile:
    squashed: str  # lower case, letters and digits only: "Hugging Face.js" -> "huggingfacejs"
    numbers: frozenset[str]
    negation: int
    dates: frozenset[str]
    entities: frozenset[str]
    stems: frozenset[str]
    content: frozenset[str]


def _stem(word: str) -> str:
    # Light suffix stripping: "datasets"/"dataset", "loading"/"load". Opposites and
    # content words compare stems, so inflections never count as a difference.
    for suffix in ("ing", "ed", "es", "s", "ly"):
        if len(word) > len(suffix) + 3 and word.endswith(suffix):
            return word[: -len(suffix)]
    return word


def _cjk_units(run: str) -> list[str]:
    return [c for c in run if c not in _CN_STOPCHARS and c not in _CN_DIGITS]


@dataclass(frozen=True)
class _Word:
    negation: int
    number: str | None
    date: str | None
    entity: str | None
    stem: str
    content: bool


@lru_cache(maxsize=65536)
def _word(token: str, sentence_start: bool) -> _Word:
    # Words recur across questions: reading each once keeps a new question's profile cheap.
    lower = token.lower().replace("’", "'").strip("`")
    bare = lower.replace("'", "")
    negation, number, date = 0, None, None
    if bare in _EN_NEGATIONS or lower.endswith("n't"):
        negation = 1
    elif _NUMBER.match(lower):
        number = lower.replace(",", "")
    elif bare in _EN_NUMBER_WORDS:
        number = _EN_NUMBER_WORDS[bare]
    elif bare in _EN_DATES and (
        bare not in _AMBIGUOUS_DATES or (token[0].isupper() and not sentence_start)
    ):
        date = bare
    entity = lower if _is_entity(token, sentence_start) else None
    content = bare not in _EN_STOPWORDS and bare not in _EN_NEGATIONS and len(bare) > 1
    return _Word(negation, number, date, entity, _stem(bare), content)


@lru_cache(maxsize=4096)
def _profile(text: str) -> _Profile:
    text = unicodedata.normalize("NFKC", text)
    numbers: set[str] = set()
    dates: set[str] = set()
    entities: set[str] = set()
    stems: set[str] = set()
    content: set[str] = set()
    negation = 0
    sentence_start = True
    for match in _TOKEN.finditer(text):
        token = match.group()
        if token[0] >= "\u3400" and _CJK_START.match(token):
            negation += _count_cn_negations(token)
            dates.update(_CN_DATE.findall(token))
            numbers.update(n for n in _CN_NUMBER.findall(_CN_DATE.sub("", token)) if n)
            units = _cjk_units(token)
            content.update(units)
            stems.update(units)
            stems.update(a + b for a, b in itertools.pairwise(token))
            sentence_start = False
            continue
        word = _word(token, sentence_start)
        negation += word.negation
        if word.number is not None:
            numbers.add(word.number)
        if word.date is not None:
            dates.add(word.date)
        if word.entity is not None:
            entities.add(word.entity)
        stems.add(word.stem)
        if word.content:
            content.add(word.stem)
        sentence_start = text[match.end() : match.end() + 2].strip()[:1] in (".", "?", "!")
    return _Profile(
        _squash(text),
        frozenset(numbers),
        negation,
        frozenset(dates),
        frozenset(entities),
        frozenset(stems),
        frozenset(content),
    )


_NOT_ALNUM = re.compile(r"[\W_]+")


def _squash(text: str) -> str:
    return _NOT_ALNUM.sub("", text.lower())


def _count_cn_negations(run: str) -> int:
    count, i = 0, 0
    while i < len(run):
        for neg in _CN_NEGATIONS:
            if run.startswith(neg, i):
                # "不同" (different), "无论" (regardless), "非常" (very) are not negations.
                if run[i : i + 2] not in ("不同", "无论", "非常", "不错", "未来", "别的", "别人"):
                    count += 1
                i += len(neg) - 1
                break
        i += 1
    return count


def _is_entity(token: str, sentence_start: bool) -> bool:
    """A name or identifier: ``backticked``, CamelCase, snake_case, dotted.name,
    ACRONYM, v2-like, or a capitalised word inside a sentence."""
    if _HAS_DIGIT.search(token) and _NUMBER.match(token):
        return False
    if _ENTITY_SHAPE.search(token):
        return True
    bare = token.lower()
    return (
        not sentence_start
        and token[:1].isupper()
        and bare not in _EN_STOPWORDS
        and bare not in _EN_DATES
        and token != "I"
    )


def _opposed(a: frozenset[str], b: frozenset[str]) -> bool:
    if _OPPOSITE_WORDS.isdisjoint(a) or _OPPOSITE_WORDS.isdisjoint(b):
        return False  # the common case, without the walk over every pair
    for x, y in _OPPOSITES_STEMMED:
        if (x in a and y in b and y not in a and x not in b) or (
            y in a and x in b and x not in a and y not in b
        ):
            return True
    return False


_OPPOSITES_STEMMED = [(_stem(x), _stem(y)) for x, y in _OPPOSITES]
_OPPOSITE_WORDS = frozenset(word for pair in _OPPOSITES_STEMMED for word in pair)


def _uncovered(entities: frozenset[str], other_squashed: str) -> bool:
    """Whether some entity is absent from the other text, spelling aside ("Hugging
    Face" / "HuggingFace", "Datasets" / "datasets"). Each side must name something the
    other does not for a conflict: a paraphrase may simply leave a name out."""
    return any(_squash(entity) not in other_squashed for entity in entities)


def _unmatched(a: frozenset[str], b: frozenset[str]) -> float:
    if not a and not b:
        return 0.0
    only_a = len(a - b) / len(a) if a else 1.0
    only_b = len(b - a) / len(b) if b else 1.0
    return max(only_a, only_b)


def _swapped(a: frozenset[str], b: frozenset[str]) -> bool:
    only_a, only_b = len(a - b), len(b - a)
    return 1 <= only_a <= 2 and 1 <= only_b <= 2 and len(a & b) > max(only_a, only_b)


def compare(question: str, cached_question: str) -> Evidence:
    """The evidence that ``question`` asks something else than ``cached_question``.

    Two prompts that share a long context are compared by the parts that differ:

        >>> context = "Acme Corp was founded in 1987 by Jane Doe. Revenue in 2023 was $1.2B. " * 3
        >>> evidence = compare(context + "Q: What was the revenue in 2022?",
        ...                    context + "Q: What was the revenue in 2023?")
        >>> evidence.conflicts, evidence.shared_context
        (('numbers',), True)
    """
    parts = shared_context_parts(question, cached_question)
    if parts is not None:
        question, cached_question = parts
    a, b = _profile(question), _profile(cached_question)
    conflicts: list[str] = []
    if a.numbers != b.numbers:
        conflicts.append("numbers")
    # Presence, not count: "No, it doesn't exist" and "It does not exist" agree.
    if bool(a.negation) != bool(b.negation):
        conflicts.append("negation")
    if a.dates != b.dates:
        conflicts.append("dates")
    if _uncovered(a.entities, b.squashed) and _uncovered(b.entities, a.squashed):
        conflicts.append("entities")
    if _opposed(a.stems, b.stems):
        conflicts.append("opposites")
    return Evidence(
        tuple(conflicts),
        _unmatched(a.content, b.content),
        _swapped(a.content, b.content),
        parts is not None,
    )


_PHRASE_TOKEN = re.compile(rf"[{_CJK}]|[A-Za-z0-9_]+(?:['’\-][A-Za-z0-9_]+)*")


#: Prompts of at least this many tokens (the longer of two)...
SHARED_CONTEXT_TOKENS = 32
#: ...whose common start and end make up at least this share of the longer one are
#: compared by the part between (:func:`shared_context_parts`). A RAG prompt over the
#: same retrieved context, or a long template, differs from another only in its question:
#: the whole prompts' cosine was 0.998 for two different questions over one context.
SHARED_CONTEXT_SHARE = 0.5


def shared_context_parts(question: str, cached_question: str) -> tuple[str, str] | None:
    """The parts of two long prompts that differ (with one token of context either
    side), when the prompts share most of their text at the start
    and the end; else ``None`` (short prompts, prompts that differ throughout, or only in
    case and punctuation).

    Example:
        >>> context = "Acme Corp makes industrial pumps and valves in Springfield. " * 4
        >>> shared_context_parts(context + "Question: Who founded Acme Corp?",
        ...                      context + "Question: What was Acme's revenue in 2023?")
        ('Question: Who founded Acme Corp', "Question: What was Acme's revenue in 2023")
    """
    a = list(_PHRASE_TOKEN.finditer(question))
    b = list(_PHRASE_TOKEN.finditer(cached_question))
    longest = max(len(a), len(b))
    if longest < SHARED_CONTEXT_TOKENS:
        return None
    shortest = min(len(a), len(b))
    start = 0
    while start < shortest and a[start].group().lower() == b[start].group().lower():
        start += 1
    end = 0  # tokens shared at the end, never overlapping the shared start
    while end < shortest - start and a[-1 - end].group().lower() == b[-1 - end].group().lower():
        end += 1
    if start + end < SHARED_CONTEXT_SHARE * longest or start + end == len(a) == len(b):
        return None
    # One token of context either side of the difference, as in replaced_phrases.
    first = max(0, start - 1)
    return (
        _span(question, a, first, len(a) - end + 1),
        _span(cached_question, b, first, len(b) - end + 1),
    )


def _span(text: str, tokens: list[re.Match[str]], first: int, stop: int) -> str:
    """The text from token ``first`` to the end of token ``stop - 1``."""
    stop = min(stop, len(tokens))
    return text[tokens[first].start() : tokens[stop - 1].end()]


def wording_change(question: str, cached_question: str) -> Literal["none", "order", "words"]:
    """How the wording of two texts differs: ``"none"`` (at most in case, spacing and
    punctuation, which no question's meaning hangs on), ``"order"`` (the same words in
    another order) or ``"words"``.

    Example:
        >>> wording_change("What is the capital of France?", "what is the capital of france")
        'none'
        >>> wording_change("Flights from Paris to London?", "Flights from London to Paris?")
        'order'
        >>> wording_change("What is the capital of France?", "How do I bake bread?")
        'words'
    """
    if _profile(question).squashed == _profile(cached_question).squashed:
        return "none"
    ours = sorted(_PHRASE_TOKEN.findall(question.lower()))
    return "order" if ours == sorted(_PHRASE_TOKEN.findall(cached_question.lower())) else "words"


def replaced_phrases(question: str, cached_question: str) -> tuple[str, str] | None:
    """The words ``question`` and ``cached_question`` do not share, each with one word of
    context either side (several places joined by `` ... ``), or ``None`` when they
    differ nowhere. For a replaced word (``Evidence.swapped``) an embedding of the two
    phrases tells a synonym ("lose weight fast" / "lose weight quickly") from another
    thing ("models for image generation" / "models for audio generation"), which the
    whole sentences' cosine barely separates.

    Example:
        >>> replaced_phrases("Books on economics for kids?", "Books on psychology for kids?")
        ('on economics for', 'on psychology for')
    """
    a, b = _PHRASE_TOKEN.findall(question), _PHRASE_TOKEN.findall(cached_question)
    matcher = difflib.SequenceMatcher(
        a=[t.lower() for t in a], b=[t.lower() for t in b], autojunk=False
    )
    ours: list[str] = []
    theirs: list[str] = []
    for op, i1, i2, j1, j2 in matcher.get_opcodes():
        if op != "equal":
            ours.append(" ".join(a[max(0, i1 - 1) : i2 + 1]))
            theirs.append(" ".join(b[max(0, j1 - 1) : j2 + 1]))
    if not ours:
        return None
    return " ... ".join(ours), " ... ".join(theirs)


__all__ = [
    "SHARED_CONTEXT_SHARE",
    "SHARED_CONTEXT_TOKENS",
    "Evidence",
    "compare",
    "replaced_phrases",
    "shared_context_parts",
    "wording_change",
]
