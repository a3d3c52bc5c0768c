"""costopt_core.logistic: the numpy logistic regression learned routers combine with."""

from __future__ import annotations

import numpy as np

from costopt_core.logistic import fit_logistic


def test_a_nonnegative_fit_gives_an_input_that_points_the_wrong_way_no_weight() -> None:
    # A knn router's combiner: each input says "harder" as it rises. On a small set one
    # can come out anti-correlated by chance; it must then weigh nothing, not count
    # against the label (a 200-prompt router routed worse than random that way).
    rng = np.random.default_rng(0)
    y = (rng.random(300) < 0.4).astype(float)
    signal = y + rng.normal(0, 1.0, 300)
    misleading = -y + rng.normal(0, 1.0, 300)
    z = np.column_stack([signal, misleading])
    free = fit_logistic(z, y, l2=0.01)
    held = fit_logistic(z, y, l2=0.01, nonnegative=True)
    assert free["weights"][1] < 0
    assert held["weights"][1] == 0.0 and held["weights"][0] > 0
