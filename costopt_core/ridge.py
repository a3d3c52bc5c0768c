"""Ridge regression whose penalty is chosen by exact leave-one-out error, in numpy.

Example:
    >>> import numpy as np
    >>> from costopt_core.ridge import fit_ridge
    >>> rng = np.random.default_rng(0)
    >>> x = rng.standard_normal((200, 5))
    >>> y = x @ np.array([1.0, 0.0, 0.0, 0.0, -1.0]) + 0.1 * rng.standard_normal(200)
    >>> fitted = fit_ridge(x, y)
    >>> np.round(fitted.weights).astype(int).tolist()
    [1, 0, 0, 0, -1]
    >>> bool(np.corrcoef(fitted.loo, y)[0, 1] > 0.9)  # each row predicted without itself
    True

Why ridge and why leave-one-out: a learned router stacks several estimates (its
neighbours', a linear direction, length) with weights fitted on the training prompts;
those weights are honest only if each estimate of a training prompt was made without
that prompt's own label. For ridge regression the leave-one-out predictions are exact
and cheap from one SVD (``e_i / (1 - h_ii)``), and the same SVD scores every penalty,
so the penalty is picked by leave-one-out error with no folds and no tuning by hand.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

#: Penalties tried (on the centred data's scale; unit-length embeddings, labels in [0, 1]).
PENALTIES: tuple[float, ...] = (0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0, 300.0, 1000.0)


class Ridge(NamedTuple):
    """A fitted ridge regression: ``predict(x) = x @ weights + bias``."""

    weights: np.ndarray
    bias: float
    penalty: float
    loo: np.ndarray  # leave-one-out predictions of the training rows

    def predict(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(x, dtype=np.float64) @ self.weights + self.bias


def fit_ridge(x: np.ndarray, y: np.ndarray, penalties: tuple[float, ...] = PENALTIES) -> Ridge:
    """Ridge regression of ``y`` on the rows of ``x`` (with an unpenalised intercept), at
    the penalty of ``penalties`` with the smallest leave-one-out squared error."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if x.ndim != 2 or len(x) != len(y) or len(y) < 3:
        raise ValueError(f"fit_ridge needs an (n, d) array and n >= 3 labels, got {x.shape}")
    if not penalties or min(penalties) <= 0:
        raise ValueError(f"penalties must be numbers > 0, got {penalties!r}")
    mx, my = x.mean(axis=0), float(y.mean())
    u, s, vt = np.linalg.svd(x - mx, full_matrices=False)
    uy = u.T @ (y - my)
    u2 = u**2
    best: tuple[float, float, np.ndarray, np.ndarray] | None = None
    for penalty in penalties:
        shrink = s**2 / (s**2 + penalty)
        fitted = u @ (shrink * uy)
        leverage = u2 @ shrink + 1.0 / len(y)  # the intercept's share too
        residual = (y - my - fitted) / np.maximum(1.0 - leverage, 1e-9)
        error = float(np.mean(residual**2))
        if best is None or error < best[0]:
            weights = vt.T @ (s / (s**2 + penalty) * uy)
            best = (error, penalty, y - residual, weights)
    assert best is not None
    _, penalty, loo, weights = best
    return Ridge(weights, my - float(mx @ weights), penalty, loo)


__all__ = ["PENALTIES", "Ridge", "fit_ridge"]
