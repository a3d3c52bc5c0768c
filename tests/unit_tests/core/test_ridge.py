"""Ridge regression's leave-one-out predictions are what refitting without the row gives."""

from __future__ import annotations

import numpy as np
import pytest

from costopt_core.ridge import fit_ridge


def test_leave_one_out_is_exact() -> None:
    rng = np.random.default_rng(3)
    x = rng.standard_normal((40, 6))
    y = (x[:, 0] + 0.5 * rng.standard_normal(40) > 0).astype(float)
    fitted = fit_ridge(x, y, penalties=(2.0,))
    for i in (0, 17, 39):
        keep = np.arange(40) != i
        without = fit_ridge(x[keep], y[keep], penalties=(2.0,))
        assert fitted.loo[i] == pytest.approx(float(without.predict(x[i : i + 1])[0]))


def test_the_penalty_follows_the_noise() -> None:
    rng = np.random.default_rng(4)
    x = rng.standard_normal((300, 20))
    clean = x @ rng.standard_normal(20)
    noise = rng.standard_normal(300)  # labels unrelated to x: shrink hard
    assert fit_ridge(x, clean).penalty < fit_ridge(x, noise).penalty
    with pytest.raises(ValueError, match="n >= 3"):
        fit_ridge(x[:2], clean[:2])
