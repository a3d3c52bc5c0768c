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


def _ends_a_word(char: str) -> bool:
    """Whether a prefix may end after ``char``: whitespace or punctuation (``Problem:``,
    ``问题：``), so a word the prompts only begin alike is never cut in two."""
    return char.isspace() or unicodedata.category(char)[0] in "PZ"


def shared_prefix(
    prompts: Iterable[str], *, min_share: float = MIN_SHARE, min_tokens: int = MIN_TOKENS
) -> str:
    """The longest leading text, ending after a space or punctuation mark, that at least
    ``min_share`` of the distinct ``prompts`` start with; ``""`` when there is none of at
    least ``min_tokens`` estimated tokens. What varies after it (a subject name, the
    question) is kept.

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
    distinct = sorted(set(prompts))
    if len(distinct) < 2:
        return ""
    window = max(2, math.ceil(min_share * len(distinct)))
    if window > len(distinct):
        return ""
    # In sorted order the prompts sharing a prefix are contiguous, and a run's common
    # prefix is that of its first and last prompt: the best run of ``window`` prompts.
    best = ""
    for first, last in zip(distinct, distinct[window - 1 :], strict=False):
        n = len(best) + 1  # only a longer shared head matters
        if len(first) < n or len(last) < n or first[:n] != last[:n]:
            continue
        limit = min(len(first), len(last))
        while n < limit and first[n] == last[n]:
            n += 1
        if n == len(first):
            # One prompt runs on into the others ("check", "check this"): a whole
            # prompt, not an instruction followed by what varies.
            continue
        best = first[:n]
    # Cut back to a word boundary: the last shared word may only begin alike.
    cut = len(best)
    while cut and not _ends_a_word(best[cut - 1]):
        cut -= 1
    prefix = best[:cut]
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


__all__ = ["MIN_SHARE", "MIN_TOKENS", "shared_prefix", "strip_prefix"]
