"""What a chat-model verifier asks and how its reply is read, for both faces.

Example:
    >>> from costopt_core.cache_judge import judge_messages, parse_verdict
    >>> system, user = judge_messages("Is it open on Sunday?", "Is it open Sundays?", "Yes.")
    >>> "Sunday" in user and system.startswith("You check")
    True
    >>> parse_verdict("YES"), parse_verdict("No, different day."), parse_verdict("maybe")
    (True, False, False)

A verdict is only "yes" when the reply starts with yes: anything else (no, hedging,
an empty or garbled reply) is "no", because a wrong cached answer costs a user while a
needless miss costs one model call. Long cached answers are cut to
:data:`MAX_ANSWER_CHARS` (the judge needs the gist, and the verifier should stay cheap).
"""

from __future__ import annotations

import re

#: Characters of the cached answer shown to the judge.
MAX_ANSWER_CHARS = 1500

SYSTEM = (
    "You check a cache of answers. Reply with exactly one word: YES if the cached answer "
    "fully and correctly answers the new question (same meaning, same numbers, names, "
    "dates and negation), otherwise NO."
)

_TEMPLATE = (
    "New question:\n{question}\n\nCached question:\n{cached_question}\n\n"
    "Cached answer:\n{cached_answer}\n\nDoes the cached answer answer the new question? "
    "YES or NO."
)
_YES = re.compile(r"^\W*(yes|是|对|可以)\b", re.IGNORECASE)


def judge_messages(question: str, cached_question: str, cached_answer: str) -> tuple[str, str]:
    """(system prompt, user prompt) for a yes/no judge."""
    answer = cached_answer
    if len(answer) > MAX_ANSWER_CHARS:
        answer = answer[:MAX_ANSWER_CHARS] + " [...]"
    return SYSTEM, _TEMPLATE.format(
        question=question, cached_question=cached_question, cached_answer=answer
    )


def parse_verdict(reply: str) -> bool:
    """True only for a reply that starts with yes."""
    return bool(isinstance(reply, str) and _YES.match(reply.strip()))


__all__ = ["MAX_ANSWER_CHARS", "SYSTEM", "judge_messages", "parse_verdict"]
