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
  neighbourhood of ten or so already averages out noise, with thousands a hundred does;
- **combination**: the neighbours' estimate is combined with the prompt's length
  (``use_length``: the one signal that held on every labelled set tried) and with a
  linear direction in embedding space (``use_linear``: ridge regression of the labels,
  :mod:`costopt_core.ridge`), which generalises to prompts unlike any labelled one, by a
  small logistic regression fitted at ``fit`` time on *leave-one-out* estimates of the
  training prompts (each estimated without its own label, as a new prompt would be). An
  input that says nothing gets no weight. On GSM8K (dev set, 5-fold, e5 on the first 32
  tokens) APGR went 0.617 (neighbours alone) -> 0.638 (+ length) -> 0.647 (+ linear);
  length alone 0.597, shuffled labels 0.46-0.50.

Embeddings are any model (see :mod:`costopt_core.embedding_cache`); the default is the
best offline embedding installed, on the first ``max_tokens`` (32) tokens of each prompt
(see :data:`costopt_core.learned.DEFAULT_MAX_TOKENS`: the head names the topic, and a
5-fold run on 14k prompts then fits minutes on 2 cores). ``save`` /
:func:`costopt_core.learned.load_router` write and read plain ``.npz`` / ``.json`` files.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from os import PathLike
from typing import Any

import numpy as np

from costopt_core.decision import LADDER
from costopt_core.embedding_cache import embedding_function
from costopt_core.learned import DEFAULT_MAX_TOKENS, LearnedStrategy, NotFittedError
from costopt_core.logistic import fit_logistic, predict_logistic
from costopt_core.ridge import fit_ridge
from costopt_core.tokens import estimate_tokens
from costopt_core.zero_shot import length_value

_CHUNK = 256  # query rows per similarity block (bounds memory on large evaluations)
_COMBINE_L2 = 1e-3  # three inputs and thousands of labels: the fit needs little shrinkage
_COMBINE_KEYS = ("weights", "bias", "mean", "scale")
# Optional arrays of a fitted state (files from before them rank by the neighbours alone).
_OPTIONAL_KEYS = (*(f"combine_{k}" for k in _COMBINE_KEYS), "ridge_weights", "ridge_bias")


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
        use_length: combine the neighbours' estimate with the prompt's length.
        use_linear: combine it with a ridge-regression direction in embedding space
            (both False = the neighbours' estimate alone; see the module docs).
        tiers, thresholds, cache_dir, max_tokens: see
            :class:`~costopt_core.learned.LearnedStrategy`.
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
        use_length: bool = True,
        use_linear: bool = True,
        tiers: Sequence[str] = LADDER,
        thresholds: Sequence[float] | None = None,
        cache_dir: str | PathLike[str] | None = None,
        max_tokens: int | None = DEFAULT_MAX_TOKENS,
    ) -> None:
        if k is not None and (not isinstance(k, int) or isinstance(k, bool) or k < 1):
            raise ValueError(f"k must be an int >= 1 or None (automatic), got {k!r}")
        if not isinstance(temperature, int | float) or not temperature > 0:
            raise ValueError(f"temperature must be a number > 0, got {temperature!r}")
        if not isinstance(prior_strength, int | float) or not prior_strength >= 0:
            raise ValueError(f"prior_strength must be a number >= 0, got {prior_strength!r}")
        for flag, value in (("use_length", use_length), ("use_linear", use_linear)):
            if not isinstance(value, bool):
                raise TypeError(f"{flag} must be a bool, got {value!r}")
        super().__init__(
            embeddings,
            tiers=tiers,
            thresholds=thresholds,
            cache_dir=cache_dir,
            max_tokens=max_tokens,
        )
        self.k = k
        self.temperature = float(temperature)
        self.prior_strength = float(prior_strength)
        self.use_length = use_length
        self.use_linear = use_linear

    def settings(self) -> dict[str, Any]:
        return {
            "k": self.k,
            "temperature": self.temperature,
            "prior_strength": self.prior_strength,
            "use_length": self.use_length,
            "use_linear": self.use_linear,
        }

    def _check_state(self, state: dict[str, np.ndarray], source: Any) -> dict[str, np.ndarray]:
        checked = super()._check_state(state, source)
        checked.update({k: state[k] for k in _OPTIONAL_KEYS if k in state})
        return checked

    def _fit(self, prompts: Sequence[str], x: np.ndarray, y: np.ndarray) -> dict[str, np.ndarray]:
        state = {"vectors": x, "labels": y.astype(np.float64)}
        if not (self.use_length or self.use_linear) or len(y) < 3 or np.ptp(y) == 0:
            return state
        loo = self._estimates(state, x, leave_one_out=True)
        linear = None
        if self.use_linear:
            ridge = fit_ridge(x, y)
            state["ridge_weights"] = ridge.weights
            state["ridge_bias"] = np.array([ridge.bias])
            linear = ridge.loo
        inputs = _combine_inputs(loo, prompts if self.use_length else None, linear)
        # Each input says "harder" as it rises: on a small labelled set the fit can guess
        # a noisy input's sign wrong (a leave-one-out ridge on 200 prompts of 384 dims
        # came out anti-correlated), so no input may weigh against the label.
        fitted = fit_logistic(inputs, y, l2=_COMBINE_L2, nonnegative=True)
        state.update({f"combine_{k}": v for k, v in fitted.items()})
        return state

    def _neighbours(
        self, state: dict[str, np.ndarray], x: np.ndarray, skip: np.ndarray | None = None
    ) -> tuple[Any, Any]:
        """The ``k`` nearest labelled prompts of each row of ``x``, best first; row ``i``
        never gets labelled prompt ``skip[i]`` (leave-one-out)."""
        vectors = state["vectors"]
        if x.shape[1] != vectors.shape[1]:
            raise ValueError(
                f"embedding dimension {x.shape[1]} does not match the fitted "
                f"{vectors.shape[1]}: route with the embeddings used to fit"
            )
        k = min(self.k or auto_k(len(vectors)), len(vectors) - (skip is not None))
        sims = x @ vectors.T
        if skip is not None:
            sims[np.arange(len(x)), skip] = -np.inf
        top = np.argpartition(-sims, k - 1, axis=1)[:, :k]
        top_sims = np.take_along_axis(sims, top, axis=1)
        # Sorted best first, ties broken by position, so scores never depend on platform.
        order = np.lexsort((top, -top_sims), axis=1)
        return np.take_along_axis(top, order, axis=1), np.take_along_axis(top_sims, order, axis=1)

    def _estimates(
        self, state: dict[str, np.ndarray], x: np.ndarray, *, leave_one_out: bool = False
    ) -> np.ndarray:
        """The smoothed, similarity-weighted mean label of each row's neighbours."""
        labels = state["labels"]
        base = float(labels.mean())
        out = np.empty(len(x))
        for i in range(0, len(x), _CHUNK):
            skip = np.arange(i, min(i + _CHUNK, len(x))) if leave_one_out else None
            top, sims = self._neighbours(state, x[i : i + _CHUNK], skip)
            weights = np.exp((sims - sims[:, :1]) / self.temperature)
            total = weights.sum(axis=1) + self.prior_strength
            out[i : i + _CHUNK] = (
                (weights * labels[top]).sum(axis=1) + self.prior_strength * base
            ) / total
        return out

    def _scores(
        self, state: dict[str, np.ndarray], prompts: Sequence[str], x: np.ndarray
    ) -> np.ndarray:
        estimates = self._estimates(state, x)
        if "combine_weights" not in state:
            return estimates
        linear = None
        if "ridge_weights" in state:
            linear = x.astype(np.float64) @ state["ridge_weights"] + state["ridge_bias"][0]
        lengths = prompts if self.use_length else None
        fitted = {k: state[f"combine_{k}"] for k in _COMBINE_KEYS}
        return predict_logistic(fitted, _combine_inputs(estimates, lengths, linear))

    def _explain(self, state: dict[str, np.ndarray], x: np.ndarray, score: float) -> str:
        top, sims = self._neighbours(state, x)
        needed = float(state["labels"][top[0]].mean())
        parts = ["length"] if self.use_length and "combine_weights" in state else []
        parts += ["a linear direction"] if "ridge_weights" in state else []
        length = "".join(f" and {part}" for part in parts)
        return (
            f"knn: mean label {needed:.2f} over {top.shape[1]} nearest labelled prompts "
            f"(top similarity {float(sims[0, 0]):.2f}){length}; score {score:.2f}"
        )

    def __repr__(self) -> str:
        n = 0 if self._state is None else len(self._state["labels"])
        return f"KNNStrategy(embeddings={self._embed.name}, k={self.k}, fitted_on={n})"


def _combine_inputs(
    estimates: np.ndarray, prompts: Sequence[str] | None, linear: np.ndarray | None
) -> np.ndarray:
    """The inputs of the combination: the neighbours' estimate on the log-odds scale, the
    prompts' length feature (unless ``prompts`` is None) and the linear prediction (unless
    ``linear`` is None)."""
    p = np.clip(estimates, 1e-4, 1 - 1e-4)
    columns = [np.log(p / (1 - p))]
    if prompts is not None:
        columns.append(np.array([length_value(estimate_tokens(t)) for t in prompts]))
    if linear is not None:
        columns.append(np.asarray(linear, dtype=np.float64))
    return np.column_stack(columns)


__all__ = ["KNNStrategy", "NotFittedError", "auto_k", "embedding_function"]
