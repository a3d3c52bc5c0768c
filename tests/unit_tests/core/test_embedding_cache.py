"""The embedding cache's identity of a model: configurations never share vectors."""

from __future__ import annotations

import sqlite3
from enum import Enum

import numpy as np
import pytest

from costopt_core.embedding_cache import CachedEmbedder, model_identity
from costopt_core.hashing import HashingEmbedder


class Remote:
    """Stands for OpenAIEmbeddings(model=..., dimensions=...): one model name, vectors
    as long as asked."""

    def __init__(self, dimensions: int | None = None, width: int = 8) -> None:
        self.model = "text-embedding-3-small"
        self.dimensions = dimensions
        self.width = width  # a setting the identity does not know about
        self.api_key = "sk-secret"
        self.calls = 0

    def embed_documents(self, texts):
        self.calls += len(texts)
        n = self.dimensions or self.width
        return HashingEmbedder(dim=64).embed(texts)[:, :n].tolist()


def test_two_configurations_of_one_model_never_share_cached_vectors(tmp_path) -> None:
    small = CachedEmbedder(Remote(dimensions=4), cache_dir=tmp_path)
    assert small(["hello", "world"]).shape == (2, 4)
    large = CachedEmbedder(Remote(dimensions=8), cache_dir=tmp_path)
    assert large(["hello", "world"]).shape == (2, 8)  # not the 4-long vectors cached above
    assert small.path != large.path
    again = Remote(dimensions=4)
    assert CachedEmbedder(again, cache_dir=tmp_path)(["hello"]).shape == (1, 4)
    assert again.calls == 0  # the same configuration still reads the cache


def test_identity_names_output_settings_only_when_set_and_never_secrets() -> None:
    plain = model_identity(Remote())
    assert plain == f"{__name__}.Remote:text-embedding-3-small"  # as before: caches kept
    sized = model_identity(Remote(dimensions=256))
    assert sized == plain + '{"dimensions": 256}'
    assert "sk-secret" not in sized

    class Task(Enum):
        QUERY = "retrieval_query"

    class Google:
        model = "text-embedding-004"
        task_type = Task.QUERY
        client = object()  # not plain data: never part of an identity

    assert model_identity(Google()).endswith('004{"task_type": "retrieval_query"}')


def test_vectors_of_another_length_under_one_identity_are_refused(tmp_path) -> None:
    CachedEmbedder(Remote(width=4), cache_dir=tmp_path)(["hello"])
    with sqlite3.connect(next(tmp_path.glob("*.sqlite"))) as db:
        assert db.execute("SELECT v FROM meta WHERE k = 'dim'").fetchone() == ("4",)
    changed = CachedEmbedder(Remote(width=8), cache_dir=tmp_path)
    with pytest.raises(ValueError, match=r"8-dimensional vectors, but the cache .* holds 4"):
        changed(["hello", "a text not cached yet"])
    # In memory alone too: one embedder never mixes two lengths.
    model = Remote(width=4)
    memory = CachedEmbedder(model)
    memory(["a"])
    model.width = 6
    with pytest.raises(ValueError, match="settings changed"):
        memory(["b"])


def test_a_cache_file_from_before_the_length_was_kept_still_reads(tmp_path) -> None:
    first = CachedEmbedder(Remote(width=4), cache_dir=tmp_path)
    expected = first(["hello"])
    with sqlite3.connect(first.path) as db:
        db.execute("DROP TABLE meta")
    model = Remote(width=4)
    again = CachedEmbedder(model, cache_dir=tmp_path)
    assert again.dim == 4
    np.testing.assert_array_equal(again(["hello"]), expected)
    assert model.calls == 0
