"""Measure the seed's techniques that this project can measure offline, and record the
figures that ``costopt techniques`` prints.

Run:
    .venv/bin/python benchmarks/techniques.py          # measure and print
    .venv/bin/python benchmarks/techniques.py --write  # ... and record the figures in
                                                       # costopt_core/data/techniques_measured.json

Each measurement is a saving in dollars against not using the technique, on a data set
shipped in ``shared/data`` (see its README), with settings fixed beforehand (nothing is
tuned on the data):

* downgrade routing: the project's default strategy (no training) scores the 1,307
  GSM8K questions of ``gsm8k_routing.csv``; each is answered by the weak model unless
  its score is among the highest, and the cut is the smallest strong-call share whose
  quality reaches 95 % of the strong model's (the seed's "slight loss"). Weak and strong
  answers' correctness are RouteLLM's recorded labels (Mixtral-8x7B / GPT-4); they are
  priced as gpt-4o-mini / gpt-4o from the catalog, prompt tokens plus 500 answer
  tokens. Saving = 1 - routed cost / all-strong cost.
* semantic cache: GPTCache's 999 ``{origin, similar}`` pairs as a workload of 1,998
  requests: every origin asked once, then every paraphrase. The engine's cache with its
  default error-bounded decision (max_error_rate 0.02) answers what it can, once with
  the offline hashing embedding and once with the ``[embeddings]`` extra's neural one
  when installed; the better is the figure, both are in its details. Every request
  costs the same: saving = hits / requests (at most 50 % on this workload, where half
  the requests are repeats); hits serving another item's answer are reported beside it.

Another lever's benchmark adds its entry the same way: a function returning a
``Measured`` dict, listed in ``MEASUREMENTS``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.util
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from costopt_core import __version__
from costopt_core.cache import SemanticCache
from costopt_core.evaluation import (
    DEFAULT_OUTPUT_TOKENS,
    DEFAULT_STRONG_MODEL,
    DEFAULT_WEAK_MODEL,
    evaluate_scores,
    load_routing_data,
    score_prompts,
)
from costopt_core.hashing import HashingEmbedder
from costopt_core.local_embedding import LocalEmbedder, local_embedding_available
from costopt_core.strategies import get_strategy
from costopt_core.techniques import MEASURED_PATH

SCRIPT = "benchmarks/techniques.py"
DATA_DIR = Path(__file__).resolve().parents[2] / "shared" / "data"
QUALITY_KEPT = 0.95  # routing: share of the strong model's quality the cut must keep
HASHING = "hashing (HashingEmbedder dim=512)"
NEURAL = "multilingual-e5-small-q4 ([embeddings] extra)"
# The cache runs with these embeddings (--no-neural drops the slow one: ~20 ms a
# question on an idle machine, far more on a busy one).
EMBEDDINGS = [HASHING, NEURAL]


def measure_routing(data_dir: Path) -> dict[str, Any]:
    path = data_dir / "gsm8k_routing.csv"
    data = load_routing_data(path)
    strategy = get_strategy("default")
    evaluation = evaluate_scores(score_prompts(strategy, data.prompts), data, strategy="default")
    curve = evaluation.curve
    share = curve.share_for_quality(QUALITY_KEPT)
    if share is None:
        raise RuntimeError("the strong model itself falls short of the quality target")
    routed, strong = curve.cost_at(share), curve.strong_cost
    return {
        "saving": 1 - routed / strong,
        "at": (
            f"at {QUALITY_KEPT:.0%} of the strong model's accuracy "
            f"({curve.quality_at(share):.3f} vs {curve.strong_quality:.3f})"
        ),
        "data": f"{path.name}: {len(data):,} GSM8K questions with RouteLLM's weak/strong labels",
        "method": (
            f"default strategy, {share:.1%} of calls on {DEFAULT_STRONG_MODEL}, the rest on "
            f"{DEFAULT_WEAK_MODEL} (catalog prices, prompt + {DEFAULT_OUTPUT_TOKENS} answer "
            "tokens), against all calls on the strong model"
        ),
        "details": {
            "strong_share": share,
            "usd_per_1k_calls_routed": routed * 1000,
            "usd_per_1k_calls_all_strong": strong * 1000,
            "apgr": evaluation.apgr,
        },
    }


def _cache_run(pairs: list[dict[str, str]], embed: Callable[[str], Any]) -> dict[str, int]:
    """Ask every origin, then every paraphrase, through one cache; count the hits, and
    the wrong ones (an answer cached for another item of the data) per phase."""
    cache = SemanticCache(embed, ttl_seconds=None)
    part = cache.partition("benchmark-model")
    usage = {"model": "benchmark-model", "input_tokens": 0, "output_tokens": 0}
    counts = dict.fromkeys(("requests", "hits", "wrong_origin_phase", "wrong_paraphrase_phase"), 0)
    for phase, key in (("origin_phase", "origin"), ("paraphrase_phase", "similar")):
        for pair in pairs:
            counts["requests"] += 1
            hit = cache.lookup(part, pair[key])
            if hit is None:
                # "The model's answer" is the origin text the question belongs to.
                cache.update(part, pair[key], pair["origin"], usage)
            else:
                counts["hits"] += 1
                counts[f"wrong_{phase}"] += hit.response != pair["origin"]
    return counts


def measure_cache(data_dir: Path) -> dict[str, Any]:
    path = data_dir / "gptcache_mock_data.json"
    pairs = json.loads(path.read_text(encoding="utf-8"))
    runs = {HASHING: _cache_run(pairs, HashingEmbedder(dim=512).embed_one)}
    if NEURAL in EMBEDDINGS and local_embedding_available():
        runs[NEURAL] = _cache_run(pairs, LocalEmbedder().embed_one)
    name, best = max(runs.items(), key=lambda item: item[1]["hits"])
    wrong = best["wrong_origin_phase"] + best["wrong_paraphrase_phase"]
    repeats = len(pairs) - len({p["origin"] for p in pairs})
    return {
        "saving": best["hits"] / best["requests"],
        "at": (
            f"{wrong} of {best['hits']} hits served another item's answer, "
            f"{best['wrong_origin_phase']} of them between near-identical origins"
        ),
        "data": (
            f"{path.name}: {len(pairs):,} GPTCache sentence/paraphrase pairs ({repeats} "
            f"origins repeated verbatim), asked as {best['requests']:,} requests: each "
            "origin, then each paraphrase"
        ),
        "method": (
            f"engine SemanticCache, default error-bounded decision (max_error_rate 2%), "
            f"embedding {name} (best of {len(runs)} tried); every request costs the same, "
            "so saving = hits / requests (at most 50% on this workload)"
        ),
        "details": {label: counts for label, counts in runs.items()},
    }


def _load_script(path: Path) -> Any:
    """A script of this repository (an example, another benchmark) as a module."""
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[path.stem] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def measure_kv_cache(data_dir: Path) -> dict[str, Any]:
    """Provider prompt caching, with ``examples/provider_prompt_cache.py``'s workload."""
    example = _load_script(
        Path(__file__).resolve().parents[1] / "examples" / "provider_prompt_cache.py"
    )
    plain, cached = example.run(with_cache=False), example.run(with_cache=True)
    data = cached.to_dict()
    return {
        "saving": 1 - cached.total_cost / plain.total_cost,
        "at": (
            f"{data['cache_read_tokens']:,} of {data['input_tokens']:,} input tokens read "
            "from the provider's cache; answers unchanged (the cache stores the prefix, "
            "not answers)"
        ),
        "data": (
            f"a support agent (create_agent, {len(example.QUESTIONS)} questions, a "
            f"{len(example.SYSTEM_PROMPT):,}-character system prompt): "
            "examples/provider_prompt_cache.py, a simulated model billing like Anthropic"
        ),
        "method": (
            "PromptCacheMiddleware against the same agent without it; prices of "
            f"{example.MODEL} (cache write 1.25x, read 0.1x the input price); saving = "
            "1 - cost with / cost without; the reads are the provider's, the figure "
            "depends on how much of each prompt is a stable prefix"
        ),
        "details": {
            "usd_without": plain.total_cost,
            "usd_with": cached.total_cost,
            "saved_provider_cache_usd": data["saved_provider_cache_usd"],
        },
    }


def measure_batch(data_dir: Path) -> dict[str, Any]:
    """Deferred calls through the imitation OpenAI Batch API against the same calls made
    directly (``examples/batch_discount.py``'s workload)."""
    from costopt_core.batch.imitation import ImitationBatchServer
    from langchain_costopt import CostCallbackHandler
    from langchain_costopt.batch import BatchAPIChatModel
    from langchain_costopt.simulated import SimulatedChatModel

    prompts = [f"Summarise in two sentences: support ticket number {i}." for i in range(20)]
    with ImitationBatchServer(processing_s=0.05) as server:
        model = BatchAPIChatModel(
            model=SimulatedChatModel(model_name="gpt-4o-mini"),
            provider="openai",
            base_url=server.openai_base_url,
            api_key=server.api_key,
            poll_interval_s=0.02,
        )
        direct, deferred = CostCallbackHandler(), CostCallbackHandler()
        model.batch(prompts, {"callbacks": [direct]})
        model.batch(prompts, {"callbacks": [deferred]}, deferred=True)
    return {
        "saving": 1 - deferred.total_cost / direct.total_cost,
        "at": "answers within the provider's 24-hour window instead of at once",
        "data": f"{len(prompts)} summarisation prompts, a simulated gpt-4o-mini",
        "method": (
            "the same calls through a local imitation of OpenAI's Batch API (real HTTP, "
            "real request and result files) against calls made directly, billed by "
            "CostCallbackHandler; the figure is the catalog's batch rate (the providers' "
            "published 50 %) applied to the usage the batch reported, not a bill"
        ),
        "details": {"usd_direct": direct.total_cost, "usd_deferred": deferred.total_cost},
    }


def measure_compression(data_dir: Path) -> dict[str, Any]:
    """Prompt compression on public QA samples (``benchmarks/compression.py``)."""
    module = _load_script(Path(__file__).resolve().parent / "compression.py")
    return module.measure_for_techniques(data_dir)


MEASUREMENTS: dict[str, Callable[[Path], dict[str, Any]]] = {
    "routing": measure_routing,
    "semantic_cache": measure_cache,
    "kv_cache": measure_kv_cache,
    "batch": measure_batch,
    "prompt_compression": measure_compression,
}


def measure_all(data_dir: Path) -> dict[str, Any]:
    figures: dict[str, Any] = {}
    for key, measure in MEASUREMENTS.items():
        start = time.perf_counter()
        entry = measure(data_dir)
        entry["script"] = SCRIPT
        entry["seconds"] = round(time.perf_counter() - start, 1)
        figures[key] = entry
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=DATA_DIR)
    parser.add_argument("--write", action="store_true", help=f"record into {MEASURED_PATH}")
    parser.add_argument("--no-neural", action="store_true", help="cache: hashing embedding only")
    args = parser.parse_args()
    if args.no_neural:
        EMBEDDINGS.remove(NEURAL)
    figures = measure_all(args.data_dir)
    for key, entry in figures.items():
        print(f"{key}: {entry['saving']:.1%} ({entry['at']}; {entry['seconds']} s)")
    if args.write:
        recorded = json.loads(MEASURED_PATH.read_text()) if MEASURED_PATH.exists() else {}
        recorded.setdefault("techniques", {}).update(figures)
        recorded["measured_on"] = dt.date.today().isoformat()
        recorded["costopt_version"] = __version__
        MEASURED_PATH.write_text(json.dumps(recorded, indent=2, sort_keys=True) + "\n")
        print(f"recorded in {MEASURED_PATH}")


if __name__ == "__main__":
    main()
