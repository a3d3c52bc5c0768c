"""Prompt compression without a model: squeeze whitespace and repeated boilerplate, drop
duplicate and near-duplicate retrieved chunks, keep the chunks most relevant to the
question first, and cut what is left to a token budget.

Example:
    >>> from costopt_core.compression import ChunkCompressor
    >>> chunks = [
    ...     "Paris is the capital of France.   It has   2.1 million inhabitants.",
    ...     "Paris is the capital of France. It has 2.1 million inhabitants.",  # duplicate
    ...     "The Loire is the longest river in France.",
    ...     "Berlin is the capital of Germany.",
    ... ]
    >>> result = ChunkCompressor(max_tokens=20).compress(chunks, query="capital of France")
    >>> for text in result.texts:
    ...     print(text)
    Paris is the capital of France. It has 2.1 million inhabitants.
    >>> result.kept, result.tokens_before, result.tokens_after, result.saved_tokens
    ((0,), 53, 16, 37)

The faces use it to translate their own objects: ``langchain_costopt.compression``
(a Runnable for prompts, a document compressor for retrievers) and
``llamaindex_costopt.compression`` (a node postprocessor). The tokens a compressor
removed are priced by the cost handlers as the ``compression`` lever
(:mod:`costopt_core.levers`).

What each step does, in the order :meth:`ChunkCompressor.compress` runs them:

1. :func:`squeeze_whitespace`: trailing spaces, runs of spaces inside a line, and runs
   of blank lines; indentation at the start of a line is kept (code stays code);
2. relevance: chunks are ranked by BM25 against the query (:func:`relevance_scores`),
   so the most relevant are kept first when the budget runs out; without a query the
   input order is the rank (a retriever's order);
3. exact and near duplicates (:func:`near_duplicate`): a chunk whose word 3-grams are
   mostly (``near_duplicate_threshold``) contained in a chunk already kept is dropped;
4. boilerplate: a line already seen in a kept chunk (headers, footers, cookie banners
   repeated on every page) is dropped from later chunks (``drop_repeated_lines``);
5. the budget: whole chunks are kept while they fit in ``max_tokens``; the first chunk
   that does not fit is cut at a sentence end to fill what is left, and the rest are
   dropped.

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

from costopt_core.tokens import count_tokens

_TRAILING_SPACE = re.compile(r"[ \t\u00a0]+$", re.MULTILINE)
# Two or more spaces after a non-space: inside a line, never the indentation.
_INNER_SPACES = re.compile(r"(?<=\S)[ \t\u00a0]{2,}")
_BLANK_LINES = re.compile(r"\n{3,}")
_INVISIBLE = re.compile(r"[\u200b\u200c\u200d\u2060\ufeff]")
_WORD = re.compile(r"\w+", re.UNICODE)
_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff]")
_SENTENCE_END = re.compile(r"(?<=[.!?。！？])\s+")

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
    more than one blank line in a row removed; indentation is kept.

    Example:
        >>> squeeze_whitespace("a  b   \\n\\n\\n\\n    indented   line  ")
        'a b\\n\\n    indented line'
    """
    text = _INVISIBLE.sub("", text)
    text = _TRAILING_SPACE.sub("", text)
    text = _INNER_SPACES.sub(" ", text)
    return _BLANK_LINES.sub("\n\n", text).strip("\n ")


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
        model: the model whose tokenizer counts tokens (``None``: the estimate).
    """

    def __init__(
        self,
        max_tokens: int | None = None,
        *,
        near_duplicate_threshold: float = 0.8,
        squeeze: bool = True,
        drop_repeated_lines: bool = True,
        model: str | None = None,
    ) -> None:
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
        kept: list[int] = []
        out: list[str] = []
        seen_shingles: set[int] = set()
        seen_lines: set[str] = set()
        budget = self.max_tokens
        used = 0
        for index in order:
            text = squeezed[index]
            if self.drop_repeated_lines:
                text = self._new_lines(text, seen_lines)
            grams = shingles(text)
            threshold = self.near_duplicate_threshold
            if not text.strip() or near_duplicate(grams, seen_shingles, threshold):
                continue
            size = self.tokens(text)
            if budget is not None and used + size > budget:
                # The most relevant chunk that does not fit is cut to what is left rather
                # than passed over for a less relevant one that would fit.
                room = budget - used
                text = cut_to_tokens(text, room, self.model) if room >= _MIN_CUT_TOKENS else ""
                if text:
                    kept.append(index)
                    out.append(text)
                    used += self.tokens(text)
                break
            kept.append(index)
            out.append(text)
            used += size
            seen_shingles.update(grams)
            if self.drop_repeated_lines:
                seen_lines.update(_line_keys(text))
        return Compressed(tuple(out), tuple(kept), before, used)

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


__all__ = [
    "ChunkCompressor",
    "Compressed",
    "cut_to_tokens",
    "near_duplicate",
    "relevance_scores",
    "shingles",
    "squeeze_whitespace",
    "terms",
]
