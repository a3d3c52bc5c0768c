"""Prompt compression without a model: squeeze whitespace and repeated boilerplate, drop
duplicate and overlapping retrieved chunks, and keep what is most relevant to the
question within a token budget.

Example:
    >>> from costopt_core.compression import ChunkCompressor
    >>> chunks = [
    ...     "Paris is the capital of France.   It has   2.1 million inhabitants.",
    ...     "Paris is the capital of France. It has 2.1 million inhabitants.",  # duplicate
    ...     "The Loire is the longest river in France. It flows into the Atlantic.",
    ... ]
    >>> result = ChunkCompressor(max_tokens=27).compress(chunks, query="capital of France?")
    >>> for text in result.texts:
    ...     print(text)
    Paris is the capital of France. It has 2.1 million inhabitants.
    The Loire is the longest river in France.
    >>> result.kept, result.tokens_before, result.tokens_after, result.saved_tokens
    ((0, 2), 51, 27, 24)

The faces use it to translate their own objects: ``langchain_costopt.compression``
(a Runnable for prompts, a document compressor for retrievers) and
``llamaindex_costopt.compression`` (a node postprocessor). The tokens a compressor
removed are priced by the cost handlers as the ``compression`` lever
(:mod:`costopt_core.levers`).

What :meth:`ChunkCompressor.compress` does, in order:

1. :func:`squeeze_whitespace`: trailing spaces, runs of spaces inside a line, and runs
   of blank lines; indentation at the start of a line is kept, and fenced code blocks
   and markdown tables are left byte for byte (code stays code);
2. relevance: chunks are ranked by BM25 against the query (:func:`relevance_scores`);
   without a query the input order is the rank (a retriever's order);
3. repeats, lossless: a line of 4+ words already seen in a kept chunk (headers,
   footers, cookie banners repeated on every page) is dropped (``drop_repeated_lines``);
   words a kept chunk already ends or starts with are trimmed (:func:`trim_overlap`:
   what a text splitter's ``chunk_overlap`` repeats); a chunk whose word 3-grams are
   mostly (``near_duplicate_threshold``) in the chunks kept already is dropped;
4. the budget, only when what is left is over ``max_tokens``: with a query, the
   sentences most relevant to it fill the budget, each chunk keeping its sentence order
   (``granularity="sentence"``, coarse to fine); with ``granularity="chunk"`` or no
   query, whole chunks are kept in rank order and the first that does not fit is cut.

Token counts are :func:`costopt_core.tokens.count_tokens` on ``model``'s tokenizer (the
``[tokenizers]`` extra) or the offline estimate.
"""

from __future__ import annotations

import math
import re
import zlib
from collections import Counter
from collections.abc import Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from itertools import groupby
from operator import itemgetter
from typing import Any, Literal

from pydantic import BaseModel, Field, model_validator

from costopt_core.arguments import refuse_unknown_arguments
from costopt_core.tokens import count_tokens

_TRAILING_SPACE = re.compile(r"[ \t\u00a0]+$", re.MULTILINE)
# Two or more spaces after a non-space: inside a line, never the indentation.
_INNER_SPACES = re.compile(r"(?<=\S)[ \t\u00a0]{2,}")
_BLANK_LINES = re.compile(r"\n{3,}")
_INVISIBLE = re.compile(r"[\u200b\u200c\u200d\u2060\ufeff]")
# A code fence (CommonMark): 3+ backticks or tildes, indented at most 3 spaces.
_FENCE = re.compile(r" {0,3}(`{3,}|~{3,})")
# A table's delimiter row: "---|:---:" cells, with or without outer pipes.
_TABLE_DELIMITER = re.compile(r"\s*\|?\s*:?-+:?\s*(\|\s*:?-+:?\s*)*\|?\s*$")
_WORD = re.compile(r"\w+", re.UNICODE)
_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff]")
_SENTENCE_END = re.compile(r"(?<=[.!?。！？])\s+")

Granularity = Literal["sentence", "chunk"]
GRANULARITIES: tuple[str, ...] = ("sentence", "chunk")

#: BM25's usual constants (Robertson & Zaragoza).
_BM25_K1 = 1.5
_BM25_B = 0.75
#: Lines shorter than this (in words) are never treated as boilerplate: "}", "Yes." and
#: list bullets repeat legitimately.
_MIN_BOILERPLATE_WORDS = 4
#: A cut chunk is kept only if at least this many tokens of it fit: a stub of a few words
#: costs tokens and answers nothing.
_MIN_CUT_TOKENS = 16


def squeeze_whitespace(text: str) -> str:
    """``text`` with trailing spaces, runs of inner spaces, invisible characters and
    more than one blank line in a row removed; indentation is kept, and fenced code
    blocks (backtick or tilde fences) and markdown table rows are left as they are
    (spaces in code and in aligned tables are content).

    Example:
        >>> squeeze_whitespace("a  b   \\n\\n\\n\\n    indented   line  ")
        'a b\\n\\n    indented line'
        >>> print(squeeze_whitespace("Run  this:\\n```py\\nreturn 'a  b'\\n```\\n| x  |  y |"))
        Run this:
        ```py
        return 'a  b'
        ```
        | x  |  y |
    """
    if "```" not in text and "~~~" not in text and "|" not in text:
        return _squeeze(text).strip("\n ")  # no code, no table: the usual case
    lines = text.splitlines(keepends=True)
    kept = _verbatim_lines(lines)
    if not any(kept):
        return _squeeze(text).strip("\n ")
    runs = [
        (verbatim, "".join(line for _, line in run))
        for verbatim, run in groupby(zip(kept, lines, strict=True), key=itemgetter(0))
    ]
    out = []
    for index, (verbatim, chunk) in enumerate(runs):
        if not verbatim:
            chunk = _squeeze(chunk)
            if index == 0:
                chunk = chunk.lstrip("\n ")
            if index == len(runs) - 1:
                chunk = chunk.rstrip("\n ")
        out.append(chunk)
    return "".join(out)


def _squeeze(text: str) -> str:
    text = _INVISIBLE.sub("", text)
    text = _TRAILING_SPACE.sub("", text)
    text = _INNER_SPACES.sub(" ", text)
    return _BLANK_LINES.sub("\n\n", text)


def _verbatim_lines(lines: Sequence[str]) -> list[bool]:
    """Which ``lines`` belong to a fenced code block (fences included; an unclosed one
    runs to the end, as in CommonMark) or a markdown table (a row starting with ``|``,
    or a pipe-less table's header, delimiter row and rows)."""
    verbatim = [False] * len(lines)
    fence: str | None = None
    for index, line in enumerate(lines):
        opening = _FENCE.match(line)
        if fence is not None:
            verbatim[index] = True
            if (
                opening
                and opening.group(1)[0] == fence[0]
                and len(opening.group(1)) >= len(fence)
                and not line[opening.end() :].strip()
            ):
                fence = None
        elif opening:
            fence = opening.group(1)
            verbatim[index] = True
        elif line.lstrip().startswith("|"):
            verbatim[index] = True
    for index, line in enumerate(lines):
        if verbatim[index] or "|" not in line or not _TABLE_DELIMITER.match(line):
            continue
        if index and "|" in lines[index - 1] and lines[index - 1].strip():
            verbatim[index - 1] = True  # the header row
        row = index
        while row < len(lines) and "|" in lines[row] and lines[row].strip():
            verbatim[row] = True
            row += 1
    return verbatim


def terms(text: str) -> list[str]:
    """Lower-cased words of ``text``; a run of CJK characters gives its bigrams (CJK has
    no spaces to split words on).

    Example:
        >>> terms("Paris, France"), terms("今天天气")
        (['paris', 'france'], ['今天', '天天', '天气'])
    """
    out: list[str] = []
    for word in _WORD.findall(text.lower()):
        if _CJK.search(word) and len(word) > 1:
            out.extend(word[i : i + 2] for i in range(len(word) - 1))
        else:
            out.append(word)
    return out


def shingles(text: str, size: int = 3) -> frozenset[int]:
    """Hashed word ``size``-grams of ``text`` (its words when it has fewer).

    Example:
        >>> len(shingles("one two three four")), len(shingles("one two"))
        (2, 1)
    """
    words = terms(text)
    if len(words) <= size:
        return frozenset((zlib.crc32(" ".join(words).encode()),)) if words else frozenset()
    return frozenset(
        zlib.crc32(" ".join(words[i : i + size]).encode()) for i in range(len(words) - size + 1)
    )


def near_duplicate(candidate: AbstractSet[int], kept: AbstractSet[int], threshold: float) -> bool:
    """True when at least ``threshold`` of ``candidate``'s shingles are in ``kept``
    (containment: an overlapping window, or a copy with a word changed, is a duplicate).

    Example:
        >>> a = shingles("the cat sat on the mat today")
        >>> near_duplicate(shingles("the cat sat on the mat"), a, 0.8)
        True
        >>> near_duplicate(shingles("a dog barked at the postman"), a, 0.8)
        False
    """
    if not candidate:
        return True  # nothing to say that a kept chunk does not already say
    return len(candidate & kept) >= threshold * len(candidate)


def relevance_scores(query: str, texts: Sequence[str]) -> list[float]:
    """BM25 score of each text for ``query``, with document frequencies from ``texts``
    themselves (the retrieved set is the collection).

    Example:
        >>> relevance_scores("capital of France", ["Paris is the capital of France.",
        ...                                        "Berlin is in Germany."])[1]
        0.0
    """
    docs = [Counter(terms(text)) for text in texts]
    if not docs:
        return []
    lengths = [sum(doc.values()) for doc in docs]
    average = sum(lengths) / len(docs) or 1.0
    query_terms = set(terms(query))
    frequency = {term: sum(1 for doc in docs if term in doc) for term in query_terms}
    scores: list[float] = []
    for doc, length in zip(docs, lengths, strict=True):
        score = 0.0
        for term in query_terms:
            tf = doc.get(term, 0)
            if not tf:
                continue
            df = frequency[term]
            idf = math.log(1.0 + (len(docs) - df + 0.5) / (df + 0.5))
            norm = _BM25_K1 * (1.0 - _BM25_B + _BM25_B * length / average)
            score += idf * tf * (_BM25_K1 + 1.0) / (tf + norm)
        scores.append(score)
    return scores


def cut_to_tokens(text: str, max_tokens: int, model: str | None = None) -> str:
    """The longest run of whole sentences from the start of ``text`` within
    ``max_tokens`` (whole words when even the first sentence is longer).

    Example:
        >>> cut_to_tokens("One two three. Four five six. Seven.", 8)
        'One two three. Four five six.'
    """
    if max_tokens <= 0:
        return ""
    if count_tokens(text, model)[0] <= max_tokens:
        return text
    kept = ""
    for sentence in _SENTENCE_END.split(text):
        trial = f"{kept} {sentence}" if kept else sentence
        if count_tokens(trial, model)[0] > max_tokens:
            break
        kept = trial
    if kept:
        return kept
    words = text.split(" ")
    lo, hi = 0, len(words)  # binary search: the longest word prefix that fits
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if count_tokens(" ".join(words[:mid]), model)[0] <= max_tokens:
            lo = mid
        else:
            hi = mid - 1
    return " ".join(words[:lo])


def trim_overlap(text: str, kept: Sequence[str], min_words: int = 8) -> str:
    """``text`` without the leading words that a kept chunk ends with, or the trailing
    words a kept chunk starts with (what a text splitter's ``chunk_overlap`` repeats).

    Example:
        >>> first = "one two three four five six seven eight nine ten"
        >>> trim_overlap("seven eight nine ten eleven twelve", [first], min_words=4)
        'eleven twelve'
        >>> trim_overlap("zero one two three four five", [first], min_words=4)
        'zero'
    """
    words = text.split()
    if len(words) < min_words:
        return text
    lowered = [w.lower() for w in words]
    start, end = 0, len(words)
    for other in kept:
        theirs = [w.lower() for w in other.split()]
        start = max(start, _overlap(theirs, lowered, min_words))
        end = min(end, len(words) - _overlap(lowered, theirs, min_words))
    if start == 0 and end == len(words):
        return text
    return " ".join(words[start:end]) if start < end else ""


def _overlap(first: list[str], second: list[str], min_words: int) -> int:
    """Length of the longest end of ``first`` that ``second`` starts with (>= min_words)."""
    head = second[:min_words]
    if len(head) < min_words:
        return 0
    best = 0
    for pos in range(max(0, len(first) - len(second)), len(first) - min_words + 1):
        if first[pos : pos + min_words] == head and first[pos:] == second[: len(first) - pos]:
            best = max(best, len(first) - pos)
    return best


def best_sentences(text: str, query: str, max_tokens: int, model: str | None = None) -> str:
    """The sentences of ``text`` most relevant to ``query`` that fit in ``max_tokens``,
    in their original order (the start of the text when none scores).

    Example:
        >>> best_sentences("Cats purr. The sky is blue today. Dogs bark.", "dogs", 4)
        'Dogs bark.'
    """
    sentences = [s for s in _SENTENCE_END.split(text) if s]
    scores = relevance_scores(query, sentences)
    if len(sentences) < 2 or not any(scores):
        return cut_to_tokens(text, max_tokens, model)
    chosen: list[int] = []
    used = 0
    for index in sorted(range(len(sentences)), key=lambda i: -scores[i]):
        if not scores[index]:
            break
        size = count_tokens(sentences[index], model)[0] + (1 if chosen else 0)
        if used + size <= max_tokens:
            chosen.append(index)
            used += size
    if not chosen:
        return cut_to_tokens(text, max_tokens, model)
    return " ".join(sentences[i] for i in sorted(chosen))


@dataclass(frozen=True, slots=True)
class Compressed:
    """What :meth:`ChunkCompressor.compress` kept.

    ``texts``: the kept chunks (squeezed, perhaps cut), most relevant first (input order
    without a query); ``kept``: their positions in the input; token counts of all the
    input chunks and of the kept ones, on the compressor's tokenizer.
    """

    texts: tuple[str, ...]
    kept: tuple[int, ...]
    tokens_before: int
    tokens_after: int

    @property
    def saved_tokens(self) -> int:
        """Tokens removed (never negative)."""
        return max(0, self.tokens_before - self.tokens_after)

    @property
    def ratio(self) -> float:
        """Share of the input tokens removed, 0..1.

        Example:
            >>> Compressed(("a",), (0,), 100, 75).ratio
            0.25
        """
        return self.saved_tokens / self.tokens_before if self.tokens_before else 0.0


class ChunkCompressor:
    """Dedup, rank and cut retrieved chunks (see the module doc for the steps).

    Args:
        max_tokens: token budget of the kept chunks together; ``None``: no cut (only
            squeezing and deduplication).
        near_duplicate_threshold: share of a chunk's word 3-grams already in a kept
            chunk above which it is dropped, in (0, 1]; 1.0 drops only copies.
        squeeze: squeeze whitespace in every chunk.
        drop_repeated_lines: drop a line of 4+ words already seen in a kept chunk.
        granularity: when the chunks are over the budget and there is a query,
            ``"sentence"`` keeps the sentences most relevant to it, from every kept chunk
            (each chunk keeps its sentence order); ``"chunk"`` keeps whole chunks, the
            most relevant first, and cuts the first that does not fit.
        model: the model whose tokenizer counts tokens (``None``: the estimate).
    """

    def __init__(
        self,
        max_tokens: int | None = None,
        *,
        near_duplicate_threshold: float = 0.8,
        squeeze: bool = True,
        drop_repeated_lines: bool = True,
        granularity: Granularity = "sentence",
        model: str | None = None,
    ) -> None:
        if granularity not in GRANULARITIES:
            raise ValueError(f"granularity must be one of {GRANULARITIES}, got {granularity!r}")
        if max_tokens is not None and (
            isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1
        ):
            raise ValueError(f"max_tokens must be None or an int >= 1, got {max_tokens!r}")
        if not (
            isinstance(near_duplicate_threshold, int | float)
            and 0.0 < near_duplicate_threshold <= 1.0
        ):
            raise ValueError(
                "near_duplicate_threshold must be a number in (0, 1], "
                f"got {near_duplicate_threshold!r}"
            )
        self.max_tokens = max_tokens
        self.near_duplicate_threshold = float(near_duplicate_threshold)
        self.squeeze = bool(squeeze)
        self.drop_repeated_lines = bool(drop_repeated_lines)
        self.granularity = granularity
        self.model = model

    def tokens(self, text: str) -> int:
        """Tokens of ``text`` on this compressor's tokenizer."""
        return count_tokens(text, self.model)[0]

    def compress(self, chunks: Sequence[str], query: str | None = None) -> Compressed:
        """Keep the chunks worth sending, most relevant to ``query`` first."""
        if isinstance(chunks, str):
            raise TypeError("chunks must be a sequence of strings, not one string")
        texts = [str(chunk) for chunk in chunks]
        before = sum(self.tokens(text) for text in texts)
        squeezed = [squeeze_whitespace(text) for text in texts] if self.squeeze else texts
        order = list(range(len(texts)))
        if query:
            scores = relevance_scores(query, squeezed)
            order.sort(key=lambda i: -scores[i])  # stable: ties keep the retriever's order
        kept, out = self._distinct(squeezed, order)
        sizes = [self.tokens(text) for text in out]
        budget = self.max_tokens
        if budget is None or sum(sizes) <= budget:
            return Compressed(tuple(out), tuple(kept), before, sum(sizes))
        if query and self.granularity == "sentence":
            kept, out = self._best_sentences_of(kept, out, query, budget)
        else:
            kept, out = self._whole_chunks(kept, out, sizes, query, budget)
        return Compressed(tuple(out), tuple(kept), before, sum(self.tokens(t) for t in out))

    def _distinct(self, texts: Sequence[str], order: Sequence[int]) -> tuple[list[int], list[str]]:
        """Chunks in ``order`` without repeated lines, overlaps and near-duplicates."""
        kept: list[int] = []
        out: list[str] = []
        seen_shingles: set[int] = set()
        seen_lines: set[str] = set()
        for index in order:
            text = texts[index]
            if self.drop_repeated_lines:
                text = self._new_lines(text, seen_lines)
            if out:
                text = trim_overlap(text, out)
            grams = shingles(text)
            threshold = self.near_duplicate_threshold
            if not text.strip() or near_duplicate(grams, seen_shingles, threshold):
                continue
            kept.append(index)
            out.append(text)
            seen_shingles.update(grams)
            if self.drop_repeated_lines:
                seen_lines.update(_line_keys(text))
        return kept, out

    def _whole_chunks(
        self, kept: list[int], out: list[str], sizes: list[int], query: str | None, budget: int
    ) -> tuple[list[int], list[str]]:
        used = 0
        for position, size in enumerate(sizes):
            if used + size <= budget:
                used += size
                continue
            # The most relevant chunk that does not fit is cut to what is left rather
            # than passed over for a less relevant one that would fit.
            room = budget - used
            text = ""
            if room >= _MIN_CUT_TOKENS:
                text = out[position]
                if query:
                    text = best_sentences(text, query, room, self.model)
                else:
                    text = cut_to_tokens(text, room, self.model)
            if text:
                return kept[: position + 1], [*out[:position], text]
            return kept[:position], out[:position]
        return kept, out

    def _best_sentences_of(
        self, kept: list[int], out: list[str], query: str, budget: int
    ) -> tuple[list[int], list[str]]:
        # Coarse to fine: the chunks were chosen and ordered; now the sentences most
        # relevant to the query fill the budget, each chunk keeping its sentence order.
        sentences = [
            (position, sentence)
            for position, text in enumerate(out)
            for sentence in _SENTENCE_END.split(text)
            if sentence.strip()
        ]
        scores = relevance_scores(query, [sentence for _, sentence in sentences])
        chosen: set[int] = set()
        used = 0
        for index in sorted(range(len(sentences)), key=lambda i: -scores[i]):
            size = self.tokens(sentences[index][1])
            if used + size <= budget:
                chosen.add(index)
                used += size
        new_kept: list[int] = []
        new_out: list[str] = []
        for position, index in enumerate(kept):
            parts = [s for i, (p, s) in enumerate(sentences) if p == position and i in chosen]
            if parts:
                new_kept.append(index)
                new_out.append(" ".join(parts))
        return new_kept, new_out

    @staticmethod
    def _new_lines(text: str, seen: set[str]) -> str:
        if not seen or ("\n" not in text and _line_key(text) not in seen):
            return text
        lines = [line for line in text.split("\n") if _line_key(line) not in seen]
        return "\n".join(lines).strip("\n")


def _line_key(line: str) -> str:
    words = terms(line)
    return " ".join(words) if len(words) >= _MIN_BOILERPLATE_WORDS else ""


def _line_keys(text: str) -> set[str]:
    return {key for key in map(_line_key, text.split("\n")) if key}


class ChunkCompressorSettings(BaseModel):
    """:class:`ChunkCompressor`'s arguments as pydantic fields, the one declaration the
    faces' document and node compressors inherit.

    Strict: ``"5"`` or ``5.0`` for ``max_tokens`` is a mistake to report, not a value to
    coerce (the engine then checks the ranges); ``granularity`` is a ``Literal``, never
    coerced.

    Example:
        >>> ChunkCompressorSettings(max_tokens=64).chunk_compressor().max_tokens
        64
        >>> ChunkCompressorSettings(max_tokens="5")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        pydantic_core._pydantic_core.ValidationError: 1 validation error for ChunkCompressorSettings
        max_tokens
        ...
    """

    max_tokens: int | None = Field(default=None, strict=True)
    near_duplicate_threshold: float = Field(default=0.8, strict=True)
    squeeze: bool = Field(default=True, strict=True)
    drop_repeated_lines: bool = Field(default=True, strict=True)
    granularity: Granularity = Field(default="sentence")
    model: str | None = Field(default=None, strict=True)

    @model_validator(mode="before")
    @classmethod
    def _known_arguments(cls, data: Any) -> Any:
        refuse_unknown_arguments(data, cls.model_fields, cls.__name__)  # max_token=5
        return data

    def chunk_compressor(self) -> ChunkCompressor:
        """The engine compressor these settings describe (it checks the ranges)."""
        return ChunkCompressor(
            self.max_tokens,
            near_duplicate_threshold=self.near_duplicate_threshold,
            squeeze=self.squeeze,
            drop_repeated_lines=self.drop_repeated_lines,
            granularity=self.granularity,
            model=self.model,
        )


__all__ = [
    "GRANULARITIES",
    "ChunkCompressor",
    "ChunkCompressorSettings",
    "Compressed",
    "Granularity",
    "best_sentences",
    "cut_to_tokens",
    "near_duplicate",
    "relevance_scores",
    "shingles",
    "squeeze_whitespace",
    "terms",
    "trim_overlap",
]
