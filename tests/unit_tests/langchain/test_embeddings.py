"""HashingEmbeddings: the deterministic offline LangChain embedding."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from langchain_core.embeddings import Embeddings

from langchain_costopt import HashingEmbeddings


def cos(a: list[float], b: list[float]) -> float:
    return float(np.dot(a, b))


def test_is_a_langchain_embeddings_with_unit_vectors():
    emb = HashingEmbeddings(dim=128)
    assert isinstance(emb, Embeddings)
    vector = emb.embed_query("Where is my parcel?")
    assert len(vector) == 128 and np.linalg.norm(vector) == pytest.approx(1.0, abs=1e-6)
    docs = emb.embed_documents(["a b c", "Where is my parcel?"])
    assert len(docs) == 2 and docs[1] == vector


def test_same_text_same_vector_in_another_process():
    code = (
        "from langchain_costopt import HashingEmbeddings;"
        "print(HashingEmbeddings(dim=64).embed_query('Where is my parcel?')[:4])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    here = HashingEmbeddings(dim=64).embed_query("Where is my parcel?")[:4]
    assert out.stdout.strip() == str(here)


def test_lexical_similarity_orders_rewordings_above_unrelated_text():
    emb = HashingEmbeddings()
    base = emb.embed_query("How do I cancel my subscription?")
    reworded = emb.embed_query("how can I cancel the subscription")
    unrelated = emb.embed_query("Recommend a good pasta recipe")
    assert cos(base, reworded) > 0.7 > 0.3 > cos(base, unrelated)


def test_lexical_means_no_synonyms():
    # Documented limitation: meaning without shared spelling is not matched.
    emb = HashingEmbeddings()
    assert cos(emb.embed_query("automobile price"), emb.embed_query("car cost")) < 0.3


def test_text_without_word_characters_still_gets_a_unit_vector():
    emb = HashingEmbeddings(dim=64)
    a, b = emb.embed_query("???"), emb.embed_query("!!!")
    assert np.linalg.norm(a) == pytest.approx(1.0) and cos(a, a) == pytest.approx(1.0)
    assert a != b


async def test_async_methods_equal_sync():
    emb = HashingEmbeddings(dim=32)
    long_text = "word " * 2000  # takes the worker-thread path
    assert await emb.aembed_query("hello there") == emb.embed_query("hello there")
    assert await emb.aembed_query(long_text) == emb.embed_query(long_text)
    assert await emb.aembed_documents(["x y", "z"]) == emb.embed_documents(["x y", "z"])


def test_arguments_validated_and_identity_reported():
    with pytest.raises(ValueError, match="dim"):
        HashingEmbeddings(dim=4)
    with pytest.raises(TypeError, match="text must be str"):
        HashingEmbeddings().embed_query(None)  # type: ignore[arg-type]
    assert HashingEmbeddings(dim=64).model != HashingEmbeddings(dim=128).model
    assert "dim=64" in repr(HashingEmbeddings(dim=64))
