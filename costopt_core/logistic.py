"""A learned router: L2-regularised logistic regression on prompt embeddings plus the
zero-shot features (length and task-kind cues), in numpy.

Example:
    >>> from costopt_core.hashing import HashingEmbedder
    >>> from costopt_core.logistic import LogisticStrategy
    >>> router = LogisticStrategy(HashingEmbedder()).fit(
    ...     ["translate hello", "translate goodbye", "prove the theorem", "prove the lemma"],
    ...     [0, 0, 1, 1],
    ... )
    >>> router.route("please prove this theorem").score > router.route("translate thanks").score
    True

Where kNN averages the labels of look-alike prompts, this fits one direction in embedding
space that separates "needed the strong model" from "did not", which generalises to prompts
unlike any labelled one, and it keeps the zero-shot features (length above all) as inputs,
so with few labels it starts from what works without any. Labels may be graded (in
[0, 1]): the loss is cross-entropy against the label. Features are standardised on the
training set; ``l2`` is the ridge penalty per standardised feature, scaled by the training
size so its effect does not shrink as labels grow (with more labels, lower it). Its default
(0.5) is strong: a few thousand noisy labels support only a few directions in a
384-dimensional space (on GSM8K with all-MiniLM-L6-v2, 5-fold: APGR 0.64 at 0.5, 0.62 at
0.05, 0.60 at 0.005).
"""

from __future__ import annotations

from collections.abc import Sequence
from os import PathLike
from typing import Any

import numpy as np

from costopt_core.decision import LADDER
from costopt_core.learned import DEFAULT_MAX_TOKENS, LearnedStrategy
from costopt_core.zero_shot import DEFAULT_WEIGHTS, extract_features, feature_values

_PROMPT_FEATURES = tuple(DEFAULT_WEIGHTS)


def prompt_features(prompts: Sequence[str]) -> np.ndarray:
    """The zero-shot feature values of each prompt, ``(n, len(DEFAULT_WEIGHTS))``.

    Example:
        >>> prompt_features(["hi", "why?"]).shape
        (2, 11)
    """
    rows = [feature_values(extract_features(p)) for p in prompts]
    return np.array([[row[k] for k in _PROMPT_FEATURES] for row in rows], dtype=np.float64)


def fit_logistic(
    z: np.ndarray, y: np.ndarray, *, l2: float, iterations: int = 25, nonnegative: bool = False
) -> dict[str, np.ndarray]:
    """L2-regularised logistic regression of labels ``y`` in [0, 1] (cross-entropy, so
    graded labels are fine) on the columns of ``z``, standardised first; Newton steps.

    Returns ``{"weights", "bias", "mean", "scale"}``: the probability of a row ``r`` is
    ``logistic(((r - mean) / scale) @ weights + bias[0])`` (see :func:`predict_logistic`).
    ``l2`` is the ridge penalty per standardised column, times the number of rows.
    ``nonnegative``: every column is known to rise with the label (e.g. scores that each
    say "harder"), so none may weigh against it; a column the fit would weigh below zero
    (an input that is noise on this data, whose sign the fit guessed) is given no weight
    and the others are fitted again.

    Example:
        >>> z = np.array([[0.0], [1.0], [2.0], [3.0]])
        >>> fitted = fit_logistic(z, np.array([0.0, 0.0, 1.0, 1.0]), l2=0.01)
        >>> p = predict_logistic(fitted, z)
        >>> bool(p[0] < 0.5 < p[3])
        True
    """
    z = np.asarray(z, dtype=np.float64)
    mean = z.mean(axis=0)
    scale = z.std(axis=0)
    scale[scale < 1e-9] = 1.0
    z = (z - mean) / scale
    n, d = z.shape
    a = np.hstack([z, np.ones((n, 1))])
    penalty = np.full(d + 1, l2 * n)
    penalty[-1] = 0.0  # the intercept is not shrunk
    prior = float(np.clip(y.mean(), 1e-3, 1 - 1e-3))
    used = np.ones(d + 1, dtype=bool)
    while True:
        w = np.zeros(d + 1)
        w[-1] = np.log(prior / (1 - prior))
        w[used] = _newton(a[:, used], y, penalty[used], w[used], iterations)
        negative = used[:-1] & (w[:-1] < 0)
        if not nonnegative or not negative.any():
            break
        used[:-1] &= ~negative
    return {"weights": w[:-1], "bias": w[-1:], "mean": mean, "scale": scale}


def _newton(
    a: np.ndarray, y: np.ndarray, penalty: np.ndarray, w: np.ndarray, iterations: int
) -> np.ndarray:
    for _ in range(iterations):
        p = 1.0 / (1.0 + np.exp(-(a @ w)))
        grad = a.T @ (p - y) + penalty * w
        hess = (a * (p * (1 - p))[:, None]).T @ a + np.diag(penalty + 1e-9)
        step = np.linalg.solve(hess, grad)
        w = w - step
        if float(np.max(np.abs(step))) < 1e-6:
            break
    return w


def predict_logistic(fitted: dict[str, np.ndarray], z: np.ndarray) -> np.ndarray:
    """Probabilities of the rows of ``z`` under :func:`fit_logistic`'s result."""
    z = (np.asarray(z, dtype=np.float64) - fitted["mean"]) / fitted["scale"]
    if z.shape[1] != len(fitted["weights"]):
        raise ValueError(
            f"feature dimension {z.shape[1]} does not match the fitted "
            f"{len(fitted['weights'])}: route with the embeddings used to fit"
        )
    return 1.0 / (1.0 + np.exp(-(z @ fitted["weights"] + fitted["bias"][0])))


class LogisticStrategy(LearnedStrategy):
    """P(strong needed) = logistic(w . [embedding, prompt features] + b).

    Args:
        embeddings: any embedding model; None = the best offline one installed.
        l2: ridge penalty (per standardised feature, relative to the training size).
        iterations: Newton steps (the fit usually converges in fewer).
        tiers, thresholds, cache_dir, max_tokens: see
            :class:`~costopt_core.learned.LearnedStrategy`.
    """

    name = "logistic"
    state_keys = ("weights", "bias", "mean", "scale")

    def __init__(
        self,
        embeddings: Any = None,
        *,
        l2: float = 0.5,
        iterations: int = 25,
        tiers: Sequence[str] = LADDER,
        thresholds: Sequence[float] | None = None,
        cache_dir: str | PathLike[str] | None = None,
        max_tokens: int | None = DEFAULT_MAX_TOKENS,
    ) -> None:
        if not isinstance(l2, int | float) or not l2 > 0:
            raise ValueError(f"l2 must be a number > 0, got {l2!r}")
        if not isinstance(iterations, int) or iterations < 1:
            raise ValueError(f"iterations must be an int >= 1, got {iterations!r}")
        super().__init__(
            embeddings,
            tiers=tiers,
            thresholds=thresholds,
            cache_dir=cache_dir,
            max_tokens=max_tokens,
        )
        self.l2 = float(l2)
        self.iterations = iterations

    def settings(self) -> dict[str, Any]:
        return {"l2": self.l2, "iterations": self.iterations}

    def _design(self, prompts: Sequence[str], x: np.ndarray) -> np.ndarray:
        return np.hstack([x.astype(np.float64), prompt_features(prompts)])

    def _fit(self, prompts: Sequence[str], x: np.ndarray, y: np.ndarray) -> dict[str, np.ndarray]:
        return fit_logistic(self._design(prompts, x), y, l2=self.l2, iterations=self.iterations)

    def _scores(
        self, state: dict[str, np.ndarray], prompts: Sequence[str], x: np.ndarray
    ) -> np.ndarray:
        return predict_logistic(state, self._design(prompts, x))

    def __repr__(self) -> str:
        return f"LogisticStrategy(embeddings={self._embed.name}, l2={self.l2})"


__all__ = ["LogisticStrategy", "fit_logistic", "predict_logistic", "prompt_features"]
