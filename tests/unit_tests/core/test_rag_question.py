"""The question inside a RAG prompt, as a router reads it."""

from __future__ import annotations

import pytest

from costopt_core.rag_question import question_in

CONTEXT = "Acme Corp was founded in 1987 by Jane Doe. It makes pumps and valves. " * 10


@pytest.mark.parametrize(
    "prompt",
    [
        f"Question: Who founded Acme? \nContext: {CONTEXT} \nAnswer:",  # rlm/rag-prompt
        f"Context:\n{CONTEXT}\n\nQuestion: Who founded Acme?",
        f"{CONTEXT}\n\nQuestion: Who founded Acme?\n\nHelpful Answer:",
        f"Context information is below.\n{CONTEXT}\nQuery: Who founded Acme?\nAnswer: ",
        f"上下文：{CONTEXT}\n问题：Who founded Acme?",
    ],
)
def test_the_question_of_common_rag_templates(prompt: str) -> None:
    assert question_in(prompt) == "Who founded Acme?"


@pytest.mark.parametrize(
    "prompt",
    [
        "What is the capital of France?",
        "Question: what is the capital of France?",  # all question: nothing to leave out
        f"{CONTEXT} The question: is it worth it?",  # not a template's label
        "Question:\n\n",
    ],
)
def test_anything_else_is_judged_whole(prompt: str) -> None:
    assert question_in(prompt) is None


def test_the_last_question_label_wins() -> None:
    # A few-shot RAG prompt: earlier examples' questions, then the one asked.
    prompt = f"Question: Who is the CEO?\nAnswer: Jane.\n\n{CONTEXT}\nQuestion: Who founded Acme?"
    assert question_in(prompt) == "Who founded Acme?"
