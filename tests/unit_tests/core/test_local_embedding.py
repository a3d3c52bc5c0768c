"""The offline neural embedding's batches: spread over worker threads, same vectors."""

from __future__ import annotations

import numpy as np
import pytest

from costopt_core import local_embedding
from costopt_core.local_embedding import LocalEmbedder

pytestmark = pytest.mark.skipif(
    not local_embedding.local_embedding_available(), reason="extra [embeddings] not installed"
)

# Distinct lengths, so that a chunk returned out of place could not go unnoticed.
TEXTS = [f"what does {'a big ' * (i % 4)}item {i} cost?" for i in range(21)]


def test_a_batch_gives_each_text_its_own_vector_in_order():
    embed = LocalEmbedder()
    batch = embed.embed_many(TEXTS)  # more than a chunk: spread over the workers
    one_by_one = np.stack([embed.embed_one(t) for t in TEXTS])
    assert batch.shape == (len(TEXTS), embed.dim) and batch.dtype == np.float32
    np.testing.assert_array_equal(batch, one_by_one)


def test_a_batch_is_the_same_without_worker_threads(monkeypatch):
    embed = LocalEmbedder()
    spread = embed.embed_many(TEXTS)
    monkeypatch.setattr(local_embedding, "_batch_pool", lambda model: None)
    np.testing.assert_array_equal(embed.embed_many(TEXTS), spread)


def test_a_forked_process_gets_its_own_workers(monkeypatch):
    embed = LocalEmbedder()
    embed.embed_many(TEXTS)
    inherited = local_embedding._pool
    monkeypatch.setattr(local_embedding, "_pool_pid", -1)  # as a child of fork sees it
    assert local_embedding._batch_pool(embed._model) is not inherited
    np.testing.assert_array_equal(embed.embed_many(TEXTS[:18]), embed.embed_many(TEXTS)[:18])


def test_many_cores_share_a_batch_in_smaller_chunks_with_the_same_vectors(monkeypatch):
    embed = LocalEmbedder()
    spread = embed.embed_many(TEXTS)
    calls = []
    query = embed._model.query

    def counted(texts):
        calls.append(len(texts))
        return query(texts)

    monkeypatch.setattr(local_embedding, "_cores", lambda: 8)
    monkeypatch.setattr(embed._model, "query", counted)
    np.testing.assert_array_equal(embed.embed_many(TEXTS), spread)
    assert sorted(calls, reverse=True) == [3] * 7  # 21 texts for 8 workers
