"""The embedding cache's identity of a model: configurations never share vectors."""

from __future__ import annotations

import re
import sqlite3
from enum import Enum, StrEnum

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
        def __init__(self) -> None:
            self.model = "text-embedding-004"
            self.task_type = Task.QUERY
            self.client = object()  # not plain data: never part of an identity

    assert model_identity(Google()).endswith('004{"task_type": "retrieval_query"}')


def test_vectors_of_another_length_under_one_identity_are_refused(tmp_path) -> None:
    CachedEmbedder(Remote(width=4), cache_dir=tmp_path)(["hello"])
    with sqlite3.connect(next(tmp_path.glob("*.sqlite"))) as db:
        assert db.execute("SELECT v FROM meta WHERE k = 'vector_length'").fetchone() == ("4",)
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
    np.testing.assert_array_equal(again(["hello"]), expected)
    assert again.dim == 4
    assert model.calls == 1  # one fresh vector tells the model's length, kept from now on
    model = Remote(width=4)
    np.testing.assert_array_equal(CachedEmbedder(model, cache_dir=tmp_path)(["hello"]), expected)
    assert model.calls == 0


class Pooling(StrEnum):
    CLS = "cls"
    MEAN = "mean"


def _hugging_face_embedding() -> type:
    """A LlamaIndex embedding with HuggingFaceEmbedding's public settings and defaults."""
    from llama_index.core.embeddings import BaseEmbedding
    from pydantic import Field

    class HuggingFaceEmbedding(BaseEmbedding):
        max_length: int = Field(default=512)
        pooling: Pooling = Field(default=Pooling.CLS)
        normalize: bool = Field(default=True)
        query_instruction: str | None = None
        encode_kwargs: dict = Field(default_factory=dict)

        def _get_text_embedding(self, text: str) -> list[float]:
            return [float(len(text)), 1.0]

        _get_query_embedding = _get_text_embedding

        async def _aget_query_embedding(self, query: str) -> list[float]:
            return self._get_text_embedding(query)

    return HuggingFaceEmbedding


class FastEmbedEmbeddings(Remote):
    """LangChain's FastEmbedEmbeddings keeps its defaults in ``__init__``'s signature."""

    def __init__(self, max_length: int = 512, doc_embed_type: str = "default") -> None:
        super().__init__()
        self.model_name, self.max_length = "BAAI/bge-small-en-v1.5", max_length


def test_settings_left_at_their_class_default_keep_the_identity(tmp_path) -> None:
    hugging_face = _hugging_face_embedding()
    default = hugging_face(model_name="BAAI/bge-small-en-v1.5")
    name = f"{__name__}.{hugging_face.__qualname__}:BAAI/bge-small-en-v1.5"
    assert model_identity(default) == name  # as before settings were named: cache kept
    chosen = hugging_face(model_name="BAAI/bge-small-en-v1.5", max_length=128)
    assert model_identity(chosen) == name + '{"max_length": 128}'
    pooled = hugging_face(model_name="BAAI/bge-small-en-v1.5", pooling=Pooling.MEAN)
    assert model_identity(pooled) == name + '{"pooling": "mean"}'
    fast = model_identity(FastEmbedEmbeddings())
    assert fast == f"{__name__}.FastEmbedEmbeddings:text-embedding-3-small"
    assert model_identity(FastEmbedEmbeddings(256)).endswith('{"max_length": 256}')


def test_the_cache_file_is_named_after_the_model(tmp_path) -> None:
    hugging_face = _hugging_face_embedding()
    model = hugging_face(model_name="BAAI/bge-small-en-v1.5", max_length=128)
    path = CachedEmbedder(model, cache_dir=tmp_path).path
    assert path.name.startswith("BAAI-bge-small-en-v1-5-")
    assert CachedEmbedder(model, model_id="my-config", cache_dir=tmp_path).path.name.startswith(
        "my-config-"
    )


def test_a_cache_file_named_as_before_is_still_read(tmp_path) -> None:
    embedder = CachedEmbedder(Remote(), cache_dir=tmp_path)
    expected = embedder(["hello"])
    # Named as versions before the model name led the file name did: the identity's
    # last 40 characters, then the same hash.
    slug = re.sub(r"[^A-Za-z0-9]+", "-", embedder.model_id).strip("-")[-40:]
    older = embedder.path.with_name(f"{slug}-{embedder.path.name[-23:]}")
    assert older != embedder.path
    embedder.path.rename(older)
    model = Remote()
    again = CachedEmbedder(model, cache_dir=tmp_path)
    np.testing.assert_array_equal(again(["hello"]), expected)
    assert model.calls == 0
    assert again.path == older


def _old_file(tmp_path, rows: dict[str, int]) -> None:
    """A cache file as older versions wrote it: no length kept, each text's vector as
    long as the configuration that embedded it (identities did not name settings)."""
    import hashlib

    path = CachedEmbedder(Remote(), cache_dir=tmp_path).path
    with sqlite3.connect(path) as db:
        db.execute("DROP TABLE meta")
        for text, width in rows.items():
            key = hashlib.sha256(text.encode()).digest()
            vector = np.asarray(Remote(width=width).embed_documents([text]), dtype=np.float32)
            db.execute("INSERT INTO v (k, x) VALUES (?, ?)", (key, vector.tobytes()))


def test_an_old_file_of_two_vector_lengths_serves_the_model_and_re_embeds_the_rest(
    tmp_path,
) -> None:
    _old_file(tmp_path, {"alpha": 4, "beta": 8, "gamma": 8})
    model = Remote()  # 8 long
    embedder = CachedEmbedder(model, cache_dir=tmp_path)
    vectors = embedder(["alpha", "beta", "delta"])
    assert vectors.shape == (3, 8)
    np.testing.assert_array_equal(
        vectors, np.asarray(Remote().embed_documents(["alpha", "beta", "delta"]), dtype=np.float32)
    )
    assert model.calls == 2  # alpha (the 4-long one) and delta; beta read from the file
    model = Remote()
    assert CachedEmbedder(model, cache_dir=tmp_path)(["alpha", "gamma"]).shape == (2, 8)
    assert model.calls == 0  # alpha was overwritten; the length is kept from now on


def test_an_old_file_whose_every_text_is_cached_learns_the_length_from_one(tmp_path) -> None:
    _old_file(tmp_path, {"alpha": 4, "beta": 8})
    with sqlite3.connect(next(tmp_path.glob("*.sqlite"))) as db:
        # A length guessed off one stored row by an earlier version does not count.
        db.execute("CREATE TABLE meta (k TEXT PRIMARY KEY, v TEXT)")
        db.execute("INSERT INTO meta VALUES ('dim', '4')")
    model = Remote()
    assert CachedEmbedder(model, cache_dir=tmp_path)(["alpha", "beta"]).shape == (2, 8)
    assert model.calls in (1, 2)  # one to learn the length, alpha again unless it was that one
