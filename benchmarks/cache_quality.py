"""Semantic-cache hit quality on GPTCache's paraphrase pairs, with the offline
``HashingEmbeddings`` (lexical), through the real ``SemanticLLMCache`` path.

Run:
    .venv/bin/python benchmarks/cache_quality.py
    .venv/bin/python benchmarks/cache_quality.py --data path/to/pairs.json --dim 1024

The data (``../shared/data/gptcache_mock_data.json``) holds 999 ``{origin, similar}``
pairs: a sentence and a paraphrase. Every origin is cached (its answer is the origin
text itself), then every paraphrase is looked up, at each threshold:

* correct hit: the answer returned is the paraphrase's own origin,
* wrong hit: an answer cached for another origin (a user would get a wrong answer),
* miss: no stored question reached the threshold (the model would be called).

Nothing here is tuned to this file: the embedding and the default threshold (0.92, the
seed's) are fixed beforehand; the table only shows the trade-off.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from langchain_core.outputs import Generation

from costopt_core.stores.memory import MemoryStore
from langchain_costopt import HashingEmbeddings, SemanticLLMCache

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "gptcache_mock_data.json"
THRESHOLDS = (0.5, 0.6, 0.7, 0.75, 0.8, 0.85, 0.9, 0.92, 0.95, 0.98)
LLM_STRING = "benchmark-llm"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--dim", type=int, default=512, help="HashingEmbeddings dimension")
    args = parser.parse_args()

    pairs = json.loads(args.data.read_text(encoding="utf-8"))
    embeddings = HashingEmbeddings(dim=args.dim)
    store = MemoryStore()
    loader = SemanticLLMCache(embeddings, store=store, ttl_seconds=None)
    t = time.perf_counter()
    for pair in pairs:
        loader.update(pair["origin"], LLM_STRING, [Generation(text=pair["origin"])])
    load_s = time.perf_counter() - t
    identical = sum(p["origin"].strip() == p["similar"].strip() for p in pairs)

    print(
        f"{len(pairs)} pairs ({identical} paraphrases identical to their origin), "
        f"{store.count()} distinct cached origins, {embeddings!r}, loaded in {load_s:.1f}s\n"
    )
    print(
        f"{'threshold':>9} | {'correct':>7} | {'wrong':>5} | {'miss':>5} | "
        f"{'hit rate':>8} | {'precision':>9} | {'ms/lookup':>9}"
    )
    for threshold in THRESHOLDS:
        cache = SemanticLLMCache(
            embeddings, similarity_threshold=threshold, store=store, ttl_seconds=None
        )
        correct = wrong = miss = 0
        t = time.perf_counter()
        for pair in pairs:
            found = cache.lookup(pair["similar"], LLM_STRING)
            if found is None:
                miss += 1
            elif found[0].text == pair["origin"]:
                correct += 1
            else:
                wrong += 1
        per_lookup = (time.perf_counter() - t) / len(pairs) * 1e3
        hits = correct + wrong
        precision = f"{correct / hits:.3f}" if hits else "n/a"
        mark = "  <- default" if threshold == 0.92 else ""
        print(
            f"{threshold:>9.2f} | {correct:>7} | {wrong:>5} | {miss:>5} | "
            f"{hits / len(pairs):>8.3f} | {precision:>9} | {per_lookup:>9.3f}{mark}"
        )
    print(
        "\nHashingEmbeddings is lexical: paraphrases that keep the wording hit, ones that "
        "change it miss.\nA neural embedding model shifts this trade-off; check any "
        "threshold on your own traffic."
    )


if __name__ == "__main__":
    main()
