"""An embedding that cannot tell two differently worded questions apart (a constant one
such as LlamaIndex's MockEmbedding, or a bag of words on a reordered question) is no
evidence that they mean the same: the calibrated cache refuses such a match and says so
once per cache, while exact repeats and case/punctuation variants still hit."""

from __future__ import annotations

import logging

import pytest
from langchain_core.embeddings import Embeddings

from costopt_core.cache_evidence import wording_change
from costopt_core.cache_gate import CacheGate
from langchain_costopt import HashingEmbeddings, SemanticLLMCache
from langchain_costopt.simulated import SimulatedChatModel

FRANCE = "What is the capital of France?"
BREAD = "How do I bake sourdough bread at home?"
TAXES = "When are my quarterly taxes due?"
GATE_LOGGER = "costopt_core.cache_gate"


class ConstantEmbeddings(Embeddings):
    """The LangChain twin of LlamaIndex's MockEmbedding: one vector for every text."""

    def embed_query(self, text: str) -> list[float]:
        return [0.5] * 8

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return [self.embed_query(text) for text in texts]


def warnings_of(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == GATE_LOGGER and r.levelno == logging.WARNING
    ]


def cache_info(message) -> dict:
    return message.response_metadata.get("costopt_cache") or {"hit": False}


# -- LlamaIndex: SemanticCacheLLM + MockEmbedding (the auditor's repro) ------------------


def test_mock_embedding_does_not_serve_unrelated_questions(caplog):
    mock = pytest.importorskip("llama_index.core.embeddings").MockEmbedding
    from llamaindex_costopt import SemanticCacheLLM
    from llamaindex_costopt.simulated import SimulatedLLM

    llm = SemanticCacheLLM(SimulatedLLM(model_name="gpt-4o-mini"), embed_model=mock(embed_dim=8))
    caplog.set_level(logging.WARNING, logger=GATE_LOGGER)
    first = llm.complete(FRANCE)
    bread = llm.complete(BREAD)
    taxes = llm.complete(TAXES)

    for answer, question in ((bread, BREAD), (taxes, TAXES)):
        assert not (answer.additional_kwargs.get("cache") or {}).get("hit")
        assert answer.text != first.text and question.rstrip("?") in answer.text
    [warning] = warnings_of(caplog)  # one per cache, not one per lookup
    assert "MockEmbedding" in warning and "same vector" in warning
    assert "word order" not in warning
    assert llm.stats["hits"] == 0 and llm.stats["gate"]["indistinct_matches"] >= 2

    # What a constant embedding can still do honestly: the same question again.
    again = llm.complete(FRANCE)
    assert again.additional_kwargs["cache"]["hit"] and again.additional_kwargs["cache"]["exact"]
    assert again.text == first.text


# -- LangChain: SemanticLLMCache + a constant embedding ----------------------------------


def test_constant_embedding_langchain_refuses_and_warns_once(caplog):
    cache = SemanticLLMCache(ConstantEmbeddings())
    model = SimulatedChatModel(model_name="gpt-4o-mini", cache=cache)
    caplog.set_level(logging.WARNING, logger=GATE_LOGGER)
    first = model.invoke(FRANCE)
    for question in (BREAD, TAXES, "Who wrote War and Peace?"):
        answer = model.invoke(question)
        assert not cache_info(answer)["hit"], question
        assert answer.content != first.content
    [warning] = warnings_of(caplog)
    assert "MockEmbedding" in warning
    assert cache.stats["hits"] == 0 and cache.stats["gate_rejections"] >= 3

    # Case, spacing and punctuation are no difference in wording: still a hit.
    variant = model.invoke("what is the capital of france")
    assert cache_info(variant)["hit"] and not cache_info(variant)["exact"]
    assert variant.content == first.content


def test_each_cache_warns_once(caplog):
    caplog.set_level(logging.WARNING, logger=GATE_LOGGER)
    for _ in range(2):
        model = SimulatedChatModel(
            model_name="gpt-4o-mini", cache=SemanticLLMCache(ConstantEmbeddings())
        )
        for question in (FRANCE, BREAD, TAXES):
            model.invoke(question)
    assert len(warnings_of(caplog)) == 2


def test_constant_embedding_with_verifier_asks_it():
    asked: list[tuple[str, str]] = []

    def verifier(question: str, cached_question: str, cached_answer: str) -> bool:
        asked.append((question, cached_question))
        return False

    cache = SemanticLLMCache(ConstantEmbeddings(), verifier=verifier)
    model = SimulatedChatModel(model_name="gpt-4o-mini", cache=cache)
    model.invoke(FRANCE)
    bread = model.invoke(BREAD)
    # The cosine says nothing, so only the verifier's verdict could serve it.
    assert asked == [(BREAD, FRANCE)] and not cache_info(bread)["hit"]


# -- a bag-of-words embedding: a reordered question --------------------------------------


def test_reordered_question_under_bag_of_words_is_not_served(caplog):
    cache = SemanticLLMCache(HashingEmbeddings())
    model = SimulatedChatModel(model_name="gpt-4o-mini", cache=cache)
    caplog.set_level(logging.WARNING, logger=GATE_LOGGER)
    model.invoke("Cheapest flights from Paris to London?")
    reverse = model.invoke("Cheapest flights from London to Paris?")
    assert not cache_info(reverse)["hit"]  # the same words, the opposite trip
    [warning] = warnings_of(caplog)
    assert "word order" in warning and "MockEmbedding" not in warning

    # The exact-match path and case/punctuation variants are untouched.
    assert cache_info(model.invoke("Cheapest flights from Paris to London?"))["exact"]
    assert cache_info(model.invoke("cheapest flights from paris to london"))["hit"]


# -- the gate itself -----------------------------------------------------------------------


def test_gate_judges_a_perfect_cosine_by_the_wording():
    gate = CacheGate()
    assert gate.judge(BREAD, FRANCE, 1.0).action == "miss"
    assert gate.judge(BREAD, FRANCE, 0.999995).reason.startswith("embedding cannot tell")
    assert gate.judge("what is the capital of france", FRANCE, 1.0).action == "serve"
    assert gate.describe()["indistinct_matches"] == 2
    # Fixed mode is the seed's rule exactly: the cosine alone decides.
    assert CacheGate(similarity_threshold=0.92).judge(BREAD, FRANCE, 1.0).action == "serve"


def test_wording_change():
    assert wording_change("What  is 2+2?", "what is 2 + 2") == "none"
    assert wording_change("如何重置密码？", "如何重置密码") == "none"
    assert wording_change("flights from Paris to London", "flights from London to Paris") == (
        "order"
    )
    assert wording_change("Is it safe?", "Is it not safe?") == "words"
