"""A learned router: k-nearest-neighbours over prompt embeddings.

Example:
    >>> from costopt_core.knn import KNNStrategy
    >>> router = KNNStrategy(k=3).fit(
    ...     ["translate hello", "translate goodbye", "prove the theorem", "prove the lemma"],
    ...     [0, 0, 1, 1],
    ... )
    >>> router.route("please prove this theorem").score > router.route("translate thanks").score
    True

``fit(prompts, labels)`` takes the user's own labelled prompts: a label is 1 when the
strong model was needed (it answered well and the weak one did not), 0 when the weak
one sufficed, or anything in between (e.g. a scaled score difference;
:meth:`costopt_core.evaluation.RoutingData.gain_labels` maps both models' results to
1 / 0.5 / 0 for "strong needed" / "no difference" / "weak better"). ``route`` scores the
similarity-weighted mean label of the ``k`` most similar labelled prompts (with 0/1
labels: P(strong needed)), shrunk towards the overall mean when the neighbours are
far away.

Embeddings are duck-typed, so any framework's model works without importing it:
LangChain ``Embeddings`` (``embed_documents``), LlamaIndex ``BaseEmbedding``
(``get_text_embedding_batch`` / ``get_text_embedding``), an object with ``embed(texts)``,
or a plain callable ``texts -> vectors``. The default is the offline
:class:`costopt_core.hashing.HashingEmbedder`. Prompts are compared with prompts, so
both sides go through the same (document) embedding function.

``save(path)`` writes one ``.npz`` file (vectors, labels, prompts and a JSON header; no
pickle); ``KNNStrategy.load(path)`` reads it back.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np

from costopt_core.decision import LADDER, RouteDecision
from costopt_core.hashing import HashingEmbedder

_FORMAT = "costopt-knn"
_VERSION = 1


class NotFittedError(RuntimeError):
    """A learned strategy was asked to route before ``fit`` (or ``load``)."""


EmbedFn = Callable[[Sequence[str]], np.ndarray]


def embedding_function(embeddings: Any = None) -> tuple[EmbedFn, str]:
    """Adapt any embedding model to ``texts -> (n, dim) array``; returns it and a name.

    Accepts None (the hashing embedder), a LangChain ``Embeddings``, a LlamaIndex
    ``BaseEmbedding``, an object with ``embed(texts)`` or a callable ``texts -> vectors``.

    Example:
        >>> fn, name = embedding_function(lambda texts: [[1.0, 0.0] for _ in texts])
        >>> fn(["a", "b"]).shape, name
        ((2, 2), '<lambda>')
        >>> embedding_function()[1]
        'HashingEmbedder'
    """
    if embeddings is None:
        embeddings = HashingEmbedder()
    name = type(embeddings).__name__
    if callable(getattr(embeddings, "embed_documents", None)):
        # LangChain Embeddings: documents in a batch.
        def fn(texts: Sequence[str]) -> np.ndarray:
            return np.asarray(embeddings.embed_documents(list(texts)), dtype=np.float32)
    elif callable(getattr(embeddings, "get_text_embedding_batch", None)):
        # LlamaIndex BaseEmbedding.
        def fn(texts: Sequence[str]) -> np.ndarray:
            return np.asarray(embeddings.get_text_embedding_batch(list(texts)), dtype=np.float32)
    elif callable(getattr(embeddings, "get_text_embedding", None)):

        def fn(texts: Sequence[str]) -> np.ndarray:
            return np.asarray([embeddings.get_text_embedding(t) for t in texts], dtype=np.float32)
    elif callable(getattr(embeddings, "embed", None)):

        def fn(texts: Sequence[str]) -> np.ndarray:
            return np.asarray(embeddings.embed(list(texts)), dtype=np.float32)
    elif callable(embeddings):
        name = getattr(embeddings, "__name__", name)

        def fn(texts: Sequence[str]) -> np.ndarray:
            return np.asarray(embeddings(list(texts)), dtype=np.float32)
    else:
        raise TypeError(
            "embeddings must be a LangChain Embeddings, a LlamaIndex embedding, an object "
            f"with embed(texts), or a callable texts -> vectors; got {type(embeddings).__name__}"
        )
    return fn, name


def _unit_rows(vectors: np.ndarray, expected: int, who: str) -> np.ndarray:
    if vectors.ndim != 2 or vectors.shape[0] != expected:
        raise ValueError(
            f"{who} returned an array of shape {vectors.shape}; expected ({expected}, dim)"
        )
    if not np.all(np.isfinite(vectors)):
        raise ValueError(f"{who} returned non-finite values")
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return (vectors / np.where(norms > 0, norms, 1.0)).astype(np.float32)


@dataclass(frozen=True)
class _Index:
    vectors: np.ndarray  # (n, dim), unit rows
    labels: np.ndarray  # (n,), in [0, 1]
    prompts: tuple[str, ...]
    base_rate: float


class KNNStrategy:
    """P(strong needed) from the ``k`` most similar labelled prompts.

    Args:
        embeddings: any embedding model (see module docs); default the hashing embedder.
        k: neighbours consulted (capped at the number of labelled prompts).
        prior_strength: pseudo-weight of the overall strong rate; neighbours with little
            similarity then move the score less.
        tiers: tier names, cheapest first; the score is cut into equal bands.
    """

    name = "knn"

    def __init__(
        self,
        embeddings: Any = None,
        *,
        k: int = 10,
        prior_strength: float = 1.0,
        tiers: Sequence[str] = LADDER,
    ) -> None:
        from costopt_core.strategies import check_tiers

        if not isinstance(k, int) or isinstance(k, bool) or k < 1:
            raise ValueError(f"k must be an int >= 1, got {k!r}")
        if not isinstance(prior_strength, int | float) or not prior_strength >= 0:
            raise ValueError(f"prior_strength must be a number >= 0, got {prior_strength!r}")
        self.k = k
        self.prior_strength = float(prior_strength)
        self.tiers = check_tiers(tiers)
        self._embeddings = embeddings
        self._embed, self._embedding_name = embedding_function(embeddings)
        self._lock = threading.Lock()
        self._index: _Index | None = None

    def clone(self) -> KNNStrategy:
        """An unfitted strategy with the same settings and the same embedding model
        (shared, not copied: it may hold a client). Cross-validation fits one per fold."""
        return KNNStrategy(
            self._embeddings, k=self.k, prior_strength=self.prior_strength, tiers=self.tiers
        )

    # -- training ----------------------------------------------------------------------

    @property
    def is_fitted(self) -> bool:
        return self._index is not None

    def fit(self, prompts: Sequence[str], labels: Sequence[float] | np.ndarray) -> KNNStrategy:
        """Learn from labelled prompts (label 1 = the strong model was needed)."""
        if isinstance(prompts, str) or not all(isinstance(p, str) for p in prompts):
            raise TypeError("prompts must be a sequence of str")
        y = np.asarray(labels, dtype=float).reshape(-1)
        if len(prompts) == 0:
            raise ValueError("fit needs at least one labelled prompt")
        if len(y) != len(prompts):
            raise ValueError(f"got {len(prompts)} prompts but {len(y)} labels")
        if not np.all(np.isfinite(y)) or y.min() < 0 or y.max() > 1:
            raise ValueError("labels must be numbers in [0, 1] (1 = strong model needed)")
        vectors = _unit_rows(self._embed(list(prompts)), len(prompts), self._embedding_name)
        index = _Index(vectors, y, tuple(prompts), float(y.mean()))
        with self._lock:
            self._index = index
        return self

    # -- routing -----------------------------------------------------------------------

    def _neighbours(self, text: str) -> tuple[_Index, np.ndarray, np.ndarray]:
        index = self._index  # one read: a concurrent fit swaps the whole index
        if index is None:
            raise NotFittedError(
                "KNNStrategy is not fitted: call fit(prompts, labels) or "
                "KNNStrategy.load(path) before routing"
            )
        if not isinstance(text, str):
            raise TypeError(f"text must be str, got {type(text).__name__}")
        query = _unit_rows(self._embed([text]), 1, self._embedding_name)[0]
        if query.shape[0] != index.vectors.shape[1]:
            raise ValueError(
                f"embedding dimension {query.shape[0]} does not match the fitted "
                f"{index.vectors.shape[1]}: route with the embeddings used to fit"
            )
        sims = index.vectors @ query
        k = min(self.k, len(sims))
        top = np.argpartition(-sims, k - 1)[:k]
        # Similarity ties are broken by position so scores never depend on the platform.
        top = top[np.lexsort((top, -sims[top]))]
        return index, top, sims[top]

    def score(self, text: str) -> float:
        """P(strong model needed) for ``text``."""
        index, top, sims = self._neighbours(text)
        return self._score(index, top, sims)

    def _score(self, index: _Index, top: np.ndarray, sims: np.ndarray) -> float:
        weights = np.clip(sims, 0.0, None)
        total = float(weights.sum()) + self.prior_strength
        if total <= 0:
            return index.base_rate
        value = float(weights @ index.labels[top]) + self.prior_strength * index.base_rate
        return min(1.0, max(0.0, value / total))

    def route(self, text: str) -> RouteDecision:
        index, top, sims = self._neighbours(text)
        score = self._score(index, top, sims)
        tier = self.tiers[min(len(self.tiers) - 1, int(score * len(self.tiers)))]
        needed = float(index.labels[top].sum())
        reason = (
            f"knn: {needed:g} of {len(top)} nearest labelled prompts needed the strong "
            f"model (top similarity {float(sims[0]):.2f}); P(strong)={score:.2f}"
        )
        return RouteDecision(tier, score, reason, {"knn_neighbours": [int(i) for i in top[:3]]})

    # -- persistence -------------------------------------------------------------------

    def save(self, path: str | PathLike[str]) -> Path:
        """Write the fitted index to ``path`` (a ``.npz`` file; the suffix is added if
        missing) and return the path written."""
        index = self._index
        if index is None:
            raise NotFittedError("nothing to save: fit the KNNStrategy first")
        target = Path(path)
        if target.suffix != ".npz":
            target = target.with_name(target.name + ".npz")
        embedder: dict[str, Any]
        if isinstance(self._embeddings, HashingEmbedder) or self._embeddings is None:
            hashing = self._embeddings or HashingEmbedder()
            embedder = {"type": "hashing", "config": hashing.config()}
        else:
            embedder = {"type": "custom", "name": self._embedding_name}
        header = {
            "format": _FORMAT,
            "version": _VERSION,
            "k": self.k,
            "prior_strength": self.prior_strength,
            "tiers": list(self.tiers),
            "embedder": embedder,
            "dim": int(index.vectors.shape[1]),
        }
        target.parent.mkdir(parents=True, exist_ok=True)
        with target.open("wb") as handle:
            np.savez_compressed(
                handle,
                header=np.array(json.dumps(header)),
                vectors=index.vectors,
                labels=index.labels,
                prompts=np.array(index.prompts, dtype=str),
            )
        return target

    @classmethod
    def load(cls, path: str | PathLike[str], embeddings: Any = None) -> KNNStrategy:
        """Read a strategy written by :meth:`save`. A model fitted with a custom
        embedding needs the same ``embeddings`` passed again."""
        source = Path(path)
        if not source.is_file() and source.with_name(source.name + ".npz").is_file():
            source = source.with_name(source.name + ".npz")
        if not source.is_file():
            raise FileNotFoundError(f"KNN model file not found: {source}")
        with np.load(source, allow_pickle=False) as data:
            try:
                header = json.loads(str(data["header"]))
                vectors = np.asarray(data["vectors"], dtype=np.float32)
                labels = np.asarray(data["labels"], dtype=float)
                prompts = tuple(str(p) for p in data["prompts"])
            except KeyError as exc:
                raise ValueError(f"{source} is not a costopt KNN model (missing {exc})") from None
        if header.get("format") != _FORMAT:
            raise ValueError(f"{source} is not a costopt KNN model")
        if header.get("version", 0) > _VERSION:
            raise ValueError(
                f"{source} was written by a newer costopt (format version {header['version']})"
            )
        spec = header["embedder"]
        if embeddings is None:
            if spec["type"] != "hashing":
                raise ValueError(
                    f"{source} was fitted with a custom embedding ({spec.get('name')}); "
                    "pass the same model as embeddings="
                )
            embeddings = HashingEmbedder.from_config(spec["config"])
        strategy = cls(
            embeddings,
            k=int(header["k"]),
            prior_strength=float(header["prior_strength"]),
            tiers=header["tiers"],
        )
        if len(labels) != len(vectors) or len(prompts) != len(vectors) or len(vectors) == 0:
            raise ValueError(f"{source}: vectors, labels and prompts disagree in length")
        strategy._index = _Index(vectors, labels, prompts, float(labels.mean()))
        return strategy

    def __repr__(self) -> str:
        n = 0 if self._index is None else len(self._index.labels)
        return f"KNNStrategy(embeddings={self._embedding_name}, k={self.k}, fitted_on={n})"


__all__ = ["KNNStrategy", "NotFittedError", "embedding_function"]
