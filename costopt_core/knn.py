"""A learned router: k-nearest-neighbours over prompt embeddings.

Example:
    >>> from costopt_core.hashing import HashingEmbedder
    >>> from costopt_core.knn import KNNStrategy
    >>> router = KNNStrategy(HashingEmbedder(), k=3).fit(
    ...     ["translate hello", "translate goodbye", "prove the theorem", "prove the lemma"],
    ...     [0, 0, 1, 1],
    ... )
    >>> router.route("please prove this theorem").score > router.route("translate thanks").score
    True

``fit(prompts, labels)`` takes the user's own labelled prompts (labels in [0, 1]: 1 = the
strong model was needed, graded values for judge scores). ``route`` scores a prompt by the
labels of its ``k`` most similar labelled prompts:

- **weighting**: a neighbour's weight is ``exp((similarity - best) / temperature)``, so
  closer prompts count more and far ones fade out smoothly; the default temperature is
  mild (0.5): labels are noisy, and on a dev set (GSM8K, all-MiniLM-L6-v2, 5-fold) sharp
  weights (0.05) scored APGR 0.57 where mild ones scored 0.62-0.63;
- **smoothing**: ``prior_strength`` pseudo-neighbours carry the overall mean label, so a
  prompt whose neighbours are few or far stays near the base rate instead of copying one
  noisy label;
- **k** defaults to about ``2 * sqrt(n)`` between 10 and 100: with a few hundred labels a
  neighbourhood of ten or so already averages out noise, with thousands a hundred does.

Embeddings are any model (see :mod:`costopt_core.embedding_cache`); the default is the
best offline embedding installed. ``save`` / :func:`costopt_core.learned.load_router`
write and read plain ``.npz`` / ``.json`` files.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from os import PathLike
from typing import Any

import numpy as np

from costopt_core.decision import LADDER
from costopt_core.embedding_cache import embedding_function
from costopt_core.learned import LearnedStrategy, NotFittedError

_CHUNK = 256  # query rows per similarity block (bounds memory on large evaluations)


def auto_k(n: int) -> int:
    """The default neighbourhood for ``n`` labelled prompts.

    Example:
        >>> [auto_k(n) for n in (20, 400, 1000, 10_000)]
        [10, 40, 63, 100]
    """
    return int(min(100, max(10, round(2 * math.sqrt(n)))))


class KNNStrategy(LearnedStrategy):
    """Score = smoothed, similarity-weighted mean label of the nearest labelled prompts.

    Args:
        embeddings: any embedding model; None = the best offline one installed.
        k: neighbours consulted; None = :func:`auto_k` of the training size.
        temperature: similarity scale of the neighbour weights (smaller = sharper).
        prior_strength: pseudo-neighbours at the overall mean label.
        tiers, thresholds, cache_dir: see :class:`~costopt_core.learned.LearnedStrategy`.
    """

    name = "knn"
    state_keys = ("vectors", "labels")

    def __init__(
        self,
        embeddings: Any = None,
        *,
        k: int | None = None,
        temperature: float = 0.5,
        prior_strength: float = 1.0,
        tiers: Sequence[str] = LADDER,
        thresholds: Sequence[float] | None = None,
        cache_dir: str | PathLike[str] | None = None,
    ) -> None:
        if k is not None and (not isinstance(k, int) or isinstance(k, bool) or k < 1):
            raise ValueError(f"k must be an int >= 1 or None (automatic), got {k!r}")
        if not isinstance(temperature, int | float) or not temperature > 0:
            raise ValueError(f"temperature must be a number > 0, got {temperature!r}")
        if not isinstance(prior_strength, int | float) or not prior_strength >= 0:
            raise ValueError(f"prior_strength must be a number >= 0, got {prior_strength!r}")
        super().__init__(embeddings, tiers=tiers, thresholds=thresholds, cache_dir=cache_dir)
        self.k = k
        self.temperature = float(temperature)
        self.prior_strength = float(prior_strength)

    def settings(self) -> dict[str, Any]:
        return {"k": self.k, "temperature": self.temperature, "prior_strength": self.prior_strength}

    def _fit(self, prompts: Sequence[str], x: np.ndarray, y: np.ndarray) -> dict[str, np.ndarray]:
        return {"vectors": x, "labels": y.astype(np.float64)}

    def _neighbours(self, state: dict[str, np.ndarray], x: np.ndarray) -> tuple[Any, Any]:
        vectors = state["vectors"]
        if x.shape[1] != vectors.shape[1]:
            raise ValueError(
                f"embedding dimension {x.shape[1]} does not match the fitted "
                f"{vectors.shape[1]}: route with the embeddings used to fit"
            )
        k = min(self.k or auto_k(len(vectors)), len(vectors))
        sims = x @ vectors.T
        top = np.argpartition(-sims, k - 1, axis=1)[:, :k]
        top_sims = np.take_along_axis(sims, top, axis=1)
        # Sorted best first, ties broken by position, so scores never depend on platform.
        order = np.lexsort((top, -top_sims), axis=1)
        return np.take_along_axis(top, order, axis=1), np.take_along_axis(top_sims, order, axis=1)

    def _scores(
        self, state: dict[str, np.ndarray], prompts: Sequence[str], x: np.ndarray
    ) -> np.ndarray:
        labels = state["labels"]
        base = float(labels.mean())
        out = np.empty(len(x))
        for i in range(0, len(x), _CHUNK):
            top, sims = self._neighbours(state, x[i : i + _CHUNK])
            weights = np.exp((sims - sims[:, :1]) / self.temperature)
            total = weights.sum(axis=1) + self.prior_strength
            out[i : i + _CHUNK] = (
                (weights * labels[top]).sum(axis=1) + self.prior_strength * base
            ) / total
        return out

    def _explain(self, state: dict[str, np.ndarray], x: np.ndarray, score: float) -> str:
        top, sims = self._neighbours(state, x)
        needed = float(state["labels"][top[0]].mean())
        return (
            f"knn: mean label {needed:.2f} over {top.shape[1]} nearest labelled prompts "
            f"(top similarity {float(sims[0, 0]):.2f}); score {score:.2f}"
        )

    def __repr__(self) -> str:
        n = 0 if self._state is None else len(self._state["labels"])
        return f"KNNStrategy(embeddings={self._embed.name}, k={self.k}, fitted_on={n})"


__all__ = ["KNNStrategy", "NotFittedError", "auto_k", "embedding_function"]
