"""Router quality on labelled routing data: APGR / CPT / dollars side by side, out-of-fold
for the learned strategies, with a shuffled-label control and the default strategy's cost.

Run:
    .venv/bin/python benchmarks/router_quality.py [DATA.csv] [--folds 5] [--embedding NAME]

Data: by default ``/work/shared/data/gsm8k_routing.csv`` (1,307 GSM8K test questions
with Mixtral-8x7B / GPT-4 correctness, from the RouteLLM repository, Apache-2.0; questions
from GSM8K, MIT). Nothing here is tuned on the data; it only measures. Never point it at
MMLU or MT-Bench to choose settings: those are the held-out checks.

Strategies: prompt length, the seed's rules, the default strategy, zero-shot (no labels),
knn (with and without its length combination) and logistic (K-fold cross-validation,
out-of-fold scores), knn again with the labels
shuffled across prompts (a control: it must stay near 0.5), and random routing (mean of
several seeds). ``--embedding``: ``default`` (the best offline embedding installed),
``hashing``, or ``minilm`` (all-MiniLM-L6-v2 through the numpy development tool
``benchmarks/minilm_numpy.py``, see its docstring for the install line).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from costopt_core.commands.eval_router import shuffled
from costopt_core.embedding_cache import CachedEmbedder, default_cache_dir, default_embedding
from costopt_core.evaluation import (
    RouterEvaluation,
    RoutingCurve,
    RoutingData,
    cross_val_scores,
    embed_all,
    evaluate_scores,
    load_routing_data,
    random_scores,
    score_prompts,
)
from costopt_core.hashing import HashingEmbedder
from costopt_core.knn import KNNStrategy
from costopt_core.learned import DEFAULT_MAX_TOKENS
from costopt_core.logistic import LogisticStrategy
from costopt_core.strategies import get_strategy

DEFAULT_DATA = Path("/work/shared/data/gsm8k_routing.csv")
OVERHEAD_PROMPTS = [
    "hi",
    "What's the weather in Paris?",
    "Translate 'hello' into French",
    "请翻译这句话",
    "请分析并比较这两种系统架构的优缺点",
    "Analyse last year's sales by region, compare the trends, then design a plan.",
    "Write a Python function that parses a CSV file and sorts the rows by date.",
    "Summarize: " + "the quarterly report shows growth in all regions. " * 20,
]


def embedding(name: str) -> Any:
    if name == "hashing":
        return HashingEmbedder()
    if name == "minilm":
        sys.path.insert(0, str(Path(__file__).parent))
        from minilm_numpy import MiniLM  # development tool, not part of the product

        model = MiniLM()
        model.model = "all-MiniLM-L6-v2-numpy"  # its identity in the embedding cache
        return model
    return default_embedding()


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


def median_us(route: Callable[[str], Any], repeat: int = 300) -> float:
    """Median over the overhead prompts of the µs per route call."""
    times = []
    for prompt in OVERHEAD_PROMPTS:
        route(prompt)  # warm-up (the zero-shot word memo)
        start = time.perf_counter()
        for _ in range(repeat):
            route(prompt)
        times.append((time.perf_counter() - start) / repeat * 1e6)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", nargs="?", default=str(DEFAULT_DATA))
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--embedding", choices=["default", "hashing", "minilm"], default="default")
    parser.add_argument(
        "--max-tokens",
        type=int,
        default=DEFAULT_MAX_TOKENS,
        help=f"head of each prompt embedded ({DEFAULT_MAX_TOKENS}, the routers' default; "
        "0 = whole prompts)",
    )
    parser.add_argument("--random-seeds", type=int, default=20)
    parser.add_argument("--bootstrap", type=int, default=200, help="paired resamples")
    args = parser.parse_args()

    data = load_routing_data(args.data)
    print(
        f"{Path(args.data).name}: {len(data)} prompts, weak quality {data.weak.mean():.3f}, "
        f"strong quality {data.strong.mean():.3f}\n"
    )
    rows: list[tuple[str, RouterEvaluation, float]] = []
    all_scores: dict[str, np.ndarray] = {}
    for name in ("length", "rules", "default", "zero-shot"):
        start = time.perf_counter()
        scores = all_scores[name] = score_prompts(get_strategy(name), data.prompts)
        rows.append(
            (name, evaluate_scores(scores, data, strategy=name), time.perf_counter() - start)
        )
    embedder = CachedEmbedder(
        embedding(args.embedding),
        cache_dir=default_cache_dir(),
        max_tokens=args.max_tokens or None,
    )
    learned = {
        "knn": lambda: KNNStrategy(embedder),
        "knn, no length": lambda: KNNStrategy(embedder, use_length=False),
        "logistic": lambda: LogisticStrategy(embedder),
    }
    start = time.perf_counter()
    embed_all(learned["knn"](), data.prompts, progress=True)
    embed_seconds = time.perf_counter() - start
    for name, factory in learned.items():
        start = time.perf_counter()
        scores = all_scores[name] = cross_val_scores(factory, data, args.folds)
        label = f"{name} ({args.folds}-fold)"
        rows.append(
            (label, evaluate_scores(scores, data, strategy=name), time.perf_counter() - start)
        )
    control = shuffled(data, seed=0)
    start = time.perf_counter()
    control_scores = cross_val_scores(learned["knn"], control, args.folds)
    rows.append(
        (
            "knn, shuffled",
            evaluate_scores(control_scores, control, strategy="knn shuffled"),
            time.perf_counter() - start,
        )
    )
    randoms = [
        evaluate_scores(random_scores(len(data), seed), data, strategy="random")
        for seed in range(args.random_seeds)
    ]

    length_apgr = rows[0][1].apgr
    header = (
        f"{'strategy':<26}{'APGR':>7}{'vs length':>11}{'CPT(50%)':>10}{'CPT(80%)':>10}"
        f"{'USD/1k @95%':>13}{'saving':>8}{'seconds':>9}"
    )
    head = f"first {args.max_tokens} tokens" if args.max_tokens else "whole prompts"
    print(f"embedding for knn / logistic: {embedder.name}, {head} ({embed_seconds:.1f} s to embed)")
    print(header)
    print("-" * len(header))
    for name, r, seconds in rows:
        level = r.quality_levels([0.95])[0]
        usd, saving = level["usd_per_1k_calls"], level["saving_vs_all_strong"]
        print(
            f"{name:<26}{r.apgr:>7.3f}{r.apgr / length_apgr:>10.3f}x{r.cpt50 * 100:>9.1f}%"
            f"{r.cpt80 * 100:>9.1f}%{(usd or float('nan')):>13.4f}"
            f"{(saving or float('nan')) * 100:>7.1f}%{seconds:>9.2f}"
        )
    apgr = np.array([r.apgr for r in randoms])
    print(f"{'random (mean)':<26}{apgr.mean():>7.3f}{apgr.mean() / length_apgr:>10.3f}x")
    print(
        f"\nrandom routing over {args.random_seeds} seeds: APGR {apgr.mean():.3f} "
        f"+/- {apgr.std():.3f} (sd); expected value 0.5"
    )
    print(
        f"\nAPGR difference to length, paired bootstrap over prompts ({args.bootstrap} "
        "resamples, 95% interval):"
    )
    for name, (low, mid, high) in paired_bootstrap(data, all_scores, args.bootstrap).items():
        print(f"  {name:<16} {mid:+.3f}  [{low:+.3f}, {high:+.3f}]")
    print(
        "\nUSD/1k @95%: USD per 1,000 calls at 95% of the strong model's quality (gpt-4o-mini "
        "-> gpt-4o, catalog prices, prompt tokens + 500 answer tokens); saving: against "
        "sending every call to gpt-4o."
    )
    rules, default = get_strategy("rules").route, get_strategy("default").route
    ratio_rules, ratio_default = median_us(rules), median_us(default)
    print(
        f"\nclassifier cost, median µs per prompt over {len(OVERHEAD_PROMPTS)} mixed prompts: "
        f"rules {ratio_rules:.1f}, default {ratio_default:.1f} "
        f"(default / rules = {ratio_default / ratio_rules:.1f}x)"
    )


if __name__ == "__main__":
    main()
