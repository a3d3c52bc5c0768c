"""The instruction text most prompts of a data set share (a template's fixed head), so a
learned router can embed what varies instead of the same words for every prompt.

Example:
    >>> template = "Answer the following question carefully.\\n\\nQuestion: "
    >>> prompts = [template + q for q in ("Who wrote Hamlet?", "What is 2+2?", "Why?")]
    >>> prefix = shared_prefix(prompts + ["hi there"])
    >>> prefix == template
    True
    >>> strip_prefix(prompts[0], prefix), strip_prefix("hi there", prefix)
    ('Who wrote Hamlet?', 'hi there')

A learned router embeds only the head of each prompt (about 32 tokens by default: a
neural embedding's cost grows with the text), so behind a shared instruction ("Answer
the following question...", a RAG wrapper, "The following are multiple choice questions
about ...") every prompt would embed the same text and the router would learn nothing
from it. The prefix is found once, at fit time, and saved with the router; routing
strips it with one ``str.startswith`` and a slice.
"""

from __future__ import annotations

import math
import unicodedata
from collections.abc import Iterable

from costopt_core.tokens import estimate_tokens

#: Share of the distinct training prompts that must start with the prefix.
MIN_SHARE = 0.5
#: A shorter shared head is a common opening ("What is the ..."), not a template, and
#: costs the embedded head little: left in place.
MIN_TOKENS = 4
#: Share of the prompts holding the prefix so far that must also hold its next word: a
#: word on fewer belongs to what varies (one subject's name, one task family's opening).
MIN_KEPT = 0.9


def _ends_a_word(char: str) -> bool:
    """Whether a prefix may end after ``char``: whitespace or punctuation (``Problem:``,
    ``问题：``), so a word the prompts only begin alike is never cut in two."""
    return char.isspace() or unicodedata.category(char)[0] in "PZ"


def _common_head(first: str, last: str) -> str:
    """The text ``first`` and ``last`` both start with."""
    n = 0
    limit = min(len(first), len(last))
    while n < limit and first[n] == last[n]:
        n += 1
    return first[:n]


def _next_word_end(text: str, start: int) -> int | None:
    """Where the word starting at ``start`` ends (just after its space or punctuation
    mark); ``None`` when ``text`` ends within it, so nothing would follow a prefix there."""
    for i in range(start, len(text) - 1):
        if _ends_a_word(text[i]):
            return i + 1
    return None


def shared_prefix(
    prompts: Iterable[str],
    *,
    min_share: float = MIN_SHARE,
    min_tokens: int = MIN_TOKENS,
    min_kept: float = MIN_KEPT,
) -> str:
    """The leading text, whole words ending after a space or punctuation mark, that at
    least ``min_share`` of the distinct ``prompts`` start with, extended word by word only
    while each word keeps at least ``min_kept`` of the prompts sharing the words before it;
    ``""`` when it is under ``min_tokens`` estimated tokens. What varies after it (a
    subject name, the question, one task family's own opening) is kept.

    Example:
        >>> shared_prefix([
        ...     "The following are questions about biology. What is a cell?",
        ...     "The following are questions about physics. What is mass?",
        ...     "The following are questions about history. Who was Caesar?",
        ... ])
        'The following are questions about '
        >>> shared_prefix(["What is a cell?", "What is mass?", "Who was Caesar?"])
        ''
    """
    if not 0.0 < min_share <= 1.0:
        raise ValueError(f"min_share must be in (0, 1], got {min_share!r}")
    if not 0.0 < min_kept <= 1.0:
        raise ValueError(f"min_kept must be in (0, 1], got {min_kept!r}")
    distinct = set(prompts)
    need = max(2, math.ceil(min_share * len(distinct)))
    # Coverage before length: the longest prefix half the prompts share can run into one
    # task family's own opening ("... Question: Prove theorem ") or one subject's header,
    # and stripping it from those prompts only would hide what tells them apart.
    if len(distinct) < need:
        return ""
    held, end, first = list(distinct), 0, True
    while True:
        # Words all held prompts share keep every one of them: skip to the last of those
        # at once (the boundary before the shortest prompt's last character, so none ends
        # in them) instead of grouping prompt by prompt, word by word.
        common = _common_head(min(held), max(held))
        for i in range(len(common) - 2, end - 1, -1):
            if _ends_a_word(common[i]):
                end, first = i + 1, False
                break
        words: dict[str, list[str]] = {}
        ended = False
        for text in held:
            word_end = _next_word_end(text, end)
            if word_end is None:
                ended = True
            else:
                words.setdefault(text[end:word_end], []).append(text)
        if ended and not first:
            # A prompt ends within the next word: the others run on past a whole prompt
            # ("check", "check this"), which is not an instruction followed by what varies.
            break
        if not words:
            break
        word, kept = max(words.items(), key=lambda item: (len(item[1]), item[0]))
        if len(kept) < need or (not first and len(kept) < min_kept * len(held)):
            break
        held, end, first = kept, end + len(word), False
    prefix = held[0][:end] if not first else ""
    return prefix if estimate_tokens(prefix) >= min_tokens else ""


def strip_prefix(text: str, prefix: str) -> str:
    """``text`` without ``prefix`` when it starts with it and more follows; else as is.

    Example:
        >>> strip_prefix("Q: why?", "Q: "), strip_prefix("Q: ", "Q: ")
        ('why?', 'Q: ')
    """
    if prefix and len(text) > len(prefix) and text.startswith(prefix):
        return text[len(prefix) :]
    return text


__all__ = ["MIN_KEPT", "MIN_SHARE", "MIN_TOKENS", "shared_prefix", "strip_prefix"]
