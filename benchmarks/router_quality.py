"""Router quality on the GSM8K routing dev set: APGR / CPT(50%) / CPT(80%) side by side.

Run:
    .venv/bin/python benchmarks/router_quality.py [DATA.csv] [--folds 5]

Strategies: prompt length, the seed's rules, the zero-shot scorer (no training), KNN over
the hashing embedding (K-fold cross-validation, out-of-fold scores) and random routing
(mean of several seeds). Nothing is tuned on the data; it only measures.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from costopt_core.evaluation import (
    RouterEvaluation,
    RoutingCurve,
    RoutingData,
    cross_val_scores,
    evaluate_scores,
    load_routing_data,
    random_scores,
    score_prompts,
)
from costopt_core.strategies import get_strategy

DEFAULT_DATA = Path("/work/shared/data/gsm8k_routing.csv")


def paired_bootstrap(
    data: RoutingData, scores: dict[str, np.ndarray], resamples: int, seed: int = 0
) -> dict[str, tuple[float, float, float]]:
    """2.5%, 50% and 97.5% quantiles of APGR(strategy) - APGR(length) when the prompts
    are resampled with replacement (the same resample for every strategy)."""
    rng = np.random.default_rng(seed)
    diffs: dict[str, list[float]] = {name: [] for name in scores if name != "length"}
    for _ in range(resamples):
        idx = rng.integers(0, len(data), len(data))
        base = RoutingCurve.from_scores(scores["length"][idx], data.weak[idx], data.strong[idx])
        for name in diffs:
            curve = RoutingCurve.from_scores(scores[name][idx], data.weak[idx], data.strong[idx])
            diffs[name].append(curve.apgr() - base.apgr())
    return {
        name: tuple(float(q) for q in np.quantile(values, [0.025, 0.5, 0.975]))  # type: ignore[misc]
        for name, values in diffs.items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", nargs="?", default=str(DEFAULT_DATA))
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--random-seeds", type=int, default=20)
    parser.add_argument("--bootstrap", type=int, default=300, help="paired resamples")
    args = parser.parse_args()

    data = load_routing_data(args.data)
    print(
        f"{Path(args.data).name}: {len(data)} prompts, weak quality {data.weak.mean():.3f}, "
        f"strong quality {data.strong.mean():.3f}\n"
    )
    rows: list[tuple[str, RouterEvaluation, float]] = []
    all_scores: dict[str, np.ndarray] = {}
    for name in ("length", "rules", "zero-shot"):
        start = time.perf_counter()
        scores = all_scores[name] = score_prompts(get_strategy(name), data.prompts)
        rows.append(
            (name, evaluate_scores(scores, data, strategy=name), time.perf_counter() - start)
        )
    start = time.perf_counter()
    knn_scores = cross_val_scores(lambda: get_strategy("knn"), data, args.folds)
    all_scores["knn"] = knn_scores
    rows.append(
        (
            f"knn ({args.folds}-fold)",
            evaluate_scores(knn_scores, data, strategy="knn", folds=args.folds),
            time.perf_counter() - start,
        )
    )
    randoms = [
        evaluate_scores(random_scores(len(data), seed), data, strategy="random")
        for seed in range(args.random_seeds)
    ]

    length_apgr = rows[0][1].apgr
    header = (
        f"{'strategy':<16}{'APGR':>8}{'vs length':>11}{'CPT(50%)':>10}{'CPT(80%)':>10}"
        f"{'APGR $':>9}{'95% qual':>10}{'seconds':>9}"
    )
    print(header)
    print("-" * len(header))
    for name, r, seconds in rows:
        share95 = r.curve.share_for_quality(0.95)
        print(
            f"{name:<16}{r.apgr:>8.3f}{r.apgr / length_apgr:>10.3f}x{r.cpt50 * 100:>9.1f}%"
            f"{r.cpt80 * 100:>9.1f}%{r.curve.apgr_cost():>9.3f}"
            f"{(share95 or float('nan')) * 100:>9.1f}%{seconds:>9.2f}"
        )
    apgr = np.array([r.apgr for r in randoms])
    cpt50 = np.array([r.cpt50 for r in randoms])
    cpt80 = np.array([r.cpt80 for r in randoms])
    print(
        f"{'random (mean)':<16}{apgr.mean():>8.3f}{apgr.mean() / length_apgr:>10.3f}x"
        f"{cpt50.mean() * 100:>9.1f}%{cpt80.mean() * 100:>9.1f}%"
        f"{'':>9}{'':>10}{'':>9}"
    )
    print(
        f"\nrandom routing over {args.random_seeds} seeds: APGR {apgr.mean():.3f} "
        f"+/- {apgr.std():.3f} (sd); expected value 0.5"
    )
    print(
        f"\nAPGR difference to length, paired bootstrap over prompts ({args.bootstrap} "
        "resamples, 95% interval):"
    )
    for name, (low, mid, high) in paired_bootstrap(data, all_scores, args.bootstrap).items():
        print(f"  {name:<12} {mid:+.3f}  [{low:+.3f}, {high:+.3f}]")
    print(
        "\nAPGR $: area under PGR against the extra spend (gpt-4o-mini -> gpt-4o, catalog "
        "prices, prompt tokens + 500 answer tokens); 95% qual: strong-call share needed "
        "for 95% of the strong model's quality."
    )


if __name__ == "__main__":
    main()
