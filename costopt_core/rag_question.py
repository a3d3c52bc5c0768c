"""The question inside a RAG prompt: what a router judges, not the retrieved context.

Example:
    >>> from costopt_core.rag_question import question_in
    >>> prompt = "Context:\\nAcme Corp was founded by Jane Doe.\\n\\nQuestion: Who founded it?"
    >>> question_in(prompt)
    'Who founded it?'
    >>> question_in("What is the capital of France?") is None
    True

Why: a RAG prompt arrives as one message that holds pages of retrieved text and a short
question. Judged whole, every RAG question looks long and knowledge-heavy, and goes to
the dearest tier. LlamaIndex hands the question apart (``query_str``); LangChain renders
its prompt template first, so the question is read back out of the text here, from the
labels RAG templates use: LangChain's ``rlm/rag-prompt`` (``Question: ... Context: ...
Answer:``), its tutorials' ``Question: ... Helpful Answer:``, and the common
``Context: ... Question: ...``, in English and Chinese.
"""

from __future__ import annotations

import re

_LABEL = r"(?:Question|Query|问题)[ \t]*[:：]"
# What may follow the question: another part of the template, or the end.
_NEXT_PART = (
    r"\n\s*(?:Answer|Helpful Answer|Original Answer|New Answer|Refined Answer|SQLQuery|"
    r"Context|Contexts|Documents?|Sources?|Passages?|答案|回答|上下文|背景|资料)[ \t]*[:：]"
)
_QUESTION = re.compile(
    rf"(?:^|\n)[ \t]*{_LABEL}[ \t]*(?P<q>.+?)(?={_NEXT_PART}|\s*$)", re.DOTALL | re.IGNORECASE
)
#: The question must be at most this share of the prompt: a prompt that is mostly its
#: question has no context worth leaving out.
MAX_QUESTION_SHARE = 0.5


def question_in(text: str) -> str | None:
    """The question a RAG prompt asks (its last ``Question:`` / ``Query:`` / ``问题：``
    part, up to the next part of the template), or ``None`` when ``text`` is not such a
    prompt or is mostly its question."""
    if "uestion" not in text and "uery" not in text and "问题" not in text:
        return None  # the usual prompt: no regular expression run
    matches = list(_QUESTION.finditer(text))
    if not matches:
        return None
    question = matches[-1].group("q").strip()
    if not question or len(question) > MAX_QUESTION_SHARE * len(text):
        return None
    return question


__all__ = ["MAX_QUESTION_SHARE", "question_in"]
