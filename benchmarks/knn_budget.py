"""Does a 5-fold knn evaluation of 14,000 prompts fit 10 minutes on 2 cores?

Run:
    nice .venv/bin/python benchmarks/knn_budget.py [--prompts 200] [--n 14000]

It measures the two costs of ``costopt eval-router DATA --strategy knn --folds 5`` on a
first run (nothing in the embedding cache yet) and projects them to ``--n`` prompts:

1. embedding: CPU seconds per prompt of the default offline embedding (the
   ``[embeddings]`` extra's multilingual-e5-small) on multiple-choice style prompts of
   ~100 tokens (GSM8K questions from /work/shared/data/gsm8k_routing.csv with four
   answer options appended: the length of a knowledge question with its options), whole
   prompts and the learned routers' default head (``DEFAULT_MAX_TOKENS``), in batches
   (a batch is spread over the cores: see :mod:`costopt_core.local_embedding`);
2. the 5 folds: fitting (with the leave-one-out combination) and scoring on
   ``--n`` random unit vectors, measured whole.

CPU seconds, not wall seconds, are projected (divided by the 2 cores): on a shared,
busy machine wall time says more about the neighbours than about this code. The
projection assumes both cores are ours, as on a developer's machine or CI. The whole
command, timed end to end on 14k generated multiple-choice prompts (cold and warm
embedding cache, the shuffled-labels control), is ``benchmarks/knn_wall_time.py``.
"""

from __future__ import annotations

import argparse
import csv
import time
from pathlib import Path

import numpy as np

from costopt_core.embedding_cache import CachedEmbedder, default_embedding
from costopt_core.evaluation import RoutingData, cross_val_scores
from costopt_core.knn import KNNStrategy
from costopt_core.learned import DEFAULT_MAX_TOKENS
from costopt_core.tokens import estimate_tokens

DATA = Path("/work/shared/data/gsm8k_routing.csv")
BUDGET_S = 600.0
CORES = 2
OPTIONS = "\nA. {a}\nB. {b}\nC. {c}\nD. none of the above"


def prompts(count: int) -> list[str]:
    with DATA.open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))[-count:]  # the last rows: a fresh cache
    return [
        r["prompt"] + OPTIONS.format(a=i, b=2 * i + 1, c=f"{i} apples") for i, r in enumerate(rows)
    ]


def embed_cpu_seconds(texts: list[str], max_tokens: int | None) -> float:
    embed = CachedEmbedder(default_embedding(), max_tokens=max_tokens)  # memory only
    embed(texts[:2])  # load the model
    start = time.process_time()
    embed(texts[2:])
    return (time.process_time() - start) / (len(texts) - 2)


class _Vectors:
    """A stand-in embedding: fixed random unit vectors (the fold cost, not the model)."""

    model = "random-unit-vectors"

    def __init__(self, texts: list[str], dim: int = 384) -> None:
        rng = np.random.default_rng(0)
        x = rng.standard_normal((len(texts), dim)).astype(np.float32)
        self.rows = dict(zip(texts, x / np.linalg.norm(x, axis=1, keepdims=True), strict=True))

    def embed(self, texts: list[str]) -> np.ndarray:
        return np.stack([self.rows[t] for t in texts])


def folds_cpu_seconds(n: int) -> float:
    texts = [f"question {i}: " + "word " * (i % 90) for i in range(n)]
    rng = np.random.default_rng(1)
    weak = rng.integers(0, 2, n).astype(float)
    data = RoutingData(texts, weak, np.maximum(weak, rng.integers(0, 2, n)))
    embed = CachedEmbedder(_Vectors(texts))
    embed(texts)
    start = time.process_time()
    cross_val_scores(lambda: KNNStrategy(embed), data, 5)
    return time.process_time() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=200, help="prompts embedded to time")
    parser.add_argument("--n", type=int, default=14_000, help="prompts to project to")
    args = parser.parse_args()
    texts = prompts(args.prompts)
    tokens = np.mean([estimate_tokens(t) for t in texts])
    print(f"{len(texts)} multiple-choice style prompts, ~{tokens:.0f} tokens each (estimated)")
    folds = folds_cpu_seconds(args.n)
    print(f"5 folds of knn on {args.n} prompts: {folds:.1f} CPU s\n")
    print(f"{'embedding':<28}{'CPU ms/prompt':>14}{'projected s':>13}{'/ budget':>10}")
    head = f"head ({DEFAULT_MAX_TOKENS} tokens)"
    for label, cap in (("whole prompt", None), (head, DEFAULT_MAX_TOKENS)):
        per = embed_cpu_seconds(texts, cap)
        total = (per * args.n + folds) / CORES
        print(f"{label:<28}{per * 1000:>14.1f}{total:>13.0f}{total / BUDGET_S:>9.2f}x")
    print(
        f"\nprojected = (embedding CPU s x {args.n} + folds CPU s) / {CORES} cores; budget "
        f"{BUDGET_S:.0f} s. CPU time on a busy machine is inflated too (shared caches): "
        "read it as an upper bound."
    )


if __name__ == "__main__":
    main()
