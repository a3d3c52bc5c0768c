"""Routing data with a label per tier (three or more models, each judged on every prompt).

With two tiers a router learns one thing per prompt: did the strong model gain over the
weak one (``RoutingData.gain_labels``). With a label for each of several tiers, cheapest
first, the prompt's *needed tier* is the cheapest one that reaches the best label any tier
got on it (all tiers wrong: the cheapest; a mid tier as good as the top one: the mid
tier). A learned router is trained on the needed tier as a fraction of the ladder, so its
one score orders prompts from "the cheapest tier will do" to "only the top tier will", and
its cut points split that score into bands, one per tier.

:func:`routed_quality` judges such a router at given shares of calls per tier: the mean
label of the tier each prompt was sent to, beside each tier alone, the same shares at
random, and the needed-tier oracle.

Example:
    >>> import numpy as np
    >>> labels = np.array([[1, 1, 1], [0, 1, 1], [0, 0, 1], [0, 0, 0]])
    >>> needed_tiers(labels).tolist()
    [0, 1, 2, 0]
    >>> needed_tier_labels(labels).tolist()
    [0.0, 0.5, 1.0, 0.0]
    >>> needed_shares(labels)
    [0.5, 0.25, 0.25]
    >>> result = routed_quality(labels, np.array([0.1, 0.6, 0.9, 0.2]), [0.5, 0.25, 0.25])
    >>> result.quality, result.random_quality, result.oracle_quality
    (0.75, 0.4375, 0.75)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

# Labels this close to a prompt's best count as reaching it (float scores read from text).
_TIE = 1e-9


def check_tier_labels(labels: Any, n_prompts: int) -> np.ndarray:
    """``labels`` as a float array of shape (n_prompts, tiers >= 2), or ValueError."""
    array = np.asarray(labels, dtype=float)
    if array.ndim != 2 or array.shape[0] != n_prompts or array.shape[1] < 2:
        raise ValueError(
            f"tier_labels must hold one row per prompt ({n_prompts}) and one column per tier "
            f"(at least 2), got shape {array.shape}"
        )
    if not np.all(np.isfinite(array)):
        raise ValueError("tier_labels holds a missing or non-finite value")
    return array


def needed_tiers(labels: np.ndarray) -> np.ndarray:
    """Per prompt, the index of the cheapest tier whose label reaches the prompt's best."""
    best = labels.max(axis=1, keepdims=True)
    return np.argmax(labels >= best - _TIE, axis=1)


def needed_tier_labels(labels: np.ndarray) -> np.ndarray:
    """The training label of a learned router: the needed tier as a fraction of the ladder
    (0 = the cheapest tier does as well as any, 1 = only the top tier reaches the best)."""
    return needed_tiers(labels) / (labels.shape[1] - 1)


def needed_shares(labels: np.ndarray) -> list[float]:
    """The share of prompts whose needed tier is each tier, cheapest first: the default
    shares a router is calibrated for when none are given."""
    counts = np.bincount(needed_tiers(labels), minlength=labels.shape[1])
    return [float(c) / len(labels) for c in counts]


def check_shares(shares: Sequence[float], tiers: int | Sequence[str]) -> list[float]:
    """``shares`` as floats: one in [0, 1] per tier (``tiers``: their names or number),
    summing to 1, or ValueError."""
    wanted = [float(s) for s in shares]
    count = tiers if isinstance(tiers, int) else len(tiers)
    if len(wanted) != count or any(not 0.0 <= s <= 1.0 for s in wanted):
        named = f"({count})" if isinstance(tiers, int) else list(tiers)
        raise ValueError(f"shares: one number in [0, 1] per tier {named}, got {wanted}")
    if abs(sum(wanted) - 1.0) > 1e-6:
        raise ValueError(f"shares must sum to 1, got {sum(wanted):.4f}")
    return wanted


def bands_at_shares(scores: np.ndarray, shares: Sequence[float]) -> np.ndarray:
    """The tier index of each prompt when the lowest-scored ``shares[0]`` of them go to the
    cheapest tier, the next ``shares[1]`` to the next one, and so on (ties in the order
    given)."""
    wanted = check_shares(shares, len(shares))
    order = np.argsort(np.asarray(scores, dtype=float), kind="stable")
    ends = np.rint(np.cumsum(wanted) * len(order)).astype(int)
    ends[-1] = len(order)
    bands = np.empty(len(order), dtype=int)
    start = 0
    for tier, end in enumerate(ends):
        bands[order[start:end]] = tier
        start = end
    return bands


def bands_at_cuts(scores: np.ndarray, thresholds: Sequence[float]) -> np.ndarray:
    """The tier index of each prompt under a router's cut points (a score equal to a cut
    point goes up, as ``LearnedStrategy.tier_of`` does)."""
    return np.searchsorted(np.asarray(thresholds, dtype=float), scores, side="right")


@dataclass(frozen=True)
class TierQuality:
    """How well routing over several tiers kept quality (mean label, higher is better)."""

    tiers: tuple[str, ...]
    shares: tuple[float, ...]  # the share of prompts sent to each tier
    quality: float  # the mean label of the tier each prompt was sent to
    tier_quality: tuple[float, ...]  # the mean label with every prompt sent to one tier
    random_quality: float  # the same shares, prompts assigned at random (expected)
    oracle_quality: float  # every prompt sent to its needed tier
    usd_per_1k: float | None = None  # the routed calls' cost, when the tiers are priced
    tier_usd_per_1k: tuple[float, ...] | None = None  # every prompt sent to one tier

    def lines(self) -> list[str]:
        """The figures as text lines (what eval-router and train-router print)."""
        priced = self.tier_usd_per_1k is not None
        dollars = f" {'USD / 1k calls':>15}" if priced else ""
        rows = [f"{'tier':<16} {'routed share':>12} {'quality if all sent here':>25}{dollars}"]
        for i, (name, share) in enumerate(zip(self.tiers, self.shares, strict=True)):
            cost = f" {self.tier_usd_per_1k[i]:>15.4f}" if self.tier_usd_per_1k else ""
            rows.append(f"{name:<16} {share:>11.1%} {self.tier_quality[i]:>25.3f}{cost}")
        rows.append(
            f"routed quality {self.quality:.3f}: the same shares at random "
            f"{self.random_quality:.3f}, the top tier alone {self.tier_quality[-1]:.3f}, "
            f"each prompt to its needed tier {self.oracle_quality:.3f}"
        )
        if self.usd_per_1k is not None and self.tier_usd_per_1k:
            top = self.tier_usd_per_1k[-1]
            saving = f", saving {1 - self.usd_per_1k / top:.1%}" if top > 0 else ""
            rows.append(
                f"routed cost USD {self.usd_per_1k:.4f} / 1k calls (the top tier alone "
                f"{top:.4f}{saving})"
            )
        return rows

    def to_dict(self) -> dict[str, Any]:
        return {
            "tiers": list(self.tiers),
            "shares": list(self.shares),
            "quality": self.quality,
            "tier_quality": list(self.tier_quality),
            "random_quality": self.random_quality,
            "oracle_quality": self.oracle_quality,
            "usd_per_1k": self.usd_per_1k,
            "tier_usd_per_1k": None if self.tier_usd_per_1k is None else list(self.tier_usd_per_1k),
        }


def routed_quality(
    labels: np.ndarray,
    scores: np.ndarray,
    shares: Sequence[float] | None = None,
    *,
    thresholds: Sequence[float] | None = None,
    tiers: Sequence[str] | None = None,
    costs: np.ndarray | None = None,
) -> TierQuality:
    """Judge a router's ``scores`` on per-tier ``labels`` (prompts x tiers, cheapest
    first), cutting them at ``shares`` of calls per tier or at the router's
    ``thresholds`` (one of the two); ``costs`` (USD per call, the same shape as
    ``labels``) adds the dollars."""
    labels = check_tier_labels(labels, len(scores))
    n_tiers = labels.shape[1]
    names = tuple(tiers) if tiers is not None else tuple(f"tier {i}" for i in range(n_tiers))
    if len(names) != n_tiers:
        raise ValueError(f"tiers: one name per label column ({n_tiers}), got {list(names)}")
    if (shares is None) == (thresholds is None):
        raise ValueError("pass either shares= or thresholds=")
    if shares is not None:
        bands = bands_at_shares(scores, check_shares(shares, n_tiers))
    else:
        bands = bands_at_cuts(scores, thresholds)  # type: ignore[arg-type]
    got = np.bincount(bands, minlength=n_tiers) / len(bands)
    alone = labels.mean(axis=0)
    rows = np.arange(len(labels))
    best = labels[rows, needed_tiers(labels)]
    usd: float | None = None
    tier_usd: tuple[float, ...] | None = None
    if costs is not None:
        costs = np.asarray(costs, dtype=float)
        if costs.shape != labels.shape:
            raise ValueError(f"costs must have the labels' shape {labels.shape}, got {costs.shape}")
        usd = float(costs[rows, bands].mean() * 1000)
        tier_usd = tuple(float(c) for c in costs.mean(axis=0) * 1000)
    return TierQuality(
        tiers=names,
        shares=tuple(float(s) for s in got),
        quality=float(labels[rows, bands].mean()),
        tier_quality=tuple(float(q) for q in alone),
        random_quality=float(np.dot(got, alone)),
        oracle_quality=float(best.mean()),
        usd_per_1k=usd,
        tier_usd_per_1k=tier_usd,
    )


__all__ = [
    "TierQuality",
    "bands_at_cuts",
    "bands_at_shares",
    "check_shares",
    "check_tier_labels",
    "needed_shares",
    "needed_tier_labels",
    "needed_tiers",
    "routed_quality",
]
