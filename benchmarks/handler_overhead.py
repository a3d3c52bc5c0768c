"""Cost-handler overhead: a fake chat model's invoke with vs. without CostCallbackHandler.

Run:
    .venv/bin/python benchmarks/handler_overhead.py [--calls 3000] [--repeats 7]

Prints the median microseconds per invoke for each setup side by side and the ratio
(target: <= 1.05x). Setups alternate within each repeat so machine noise hits both.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.language_models import GenericFakeChatModel
from langchain_core.messages import AIMessage

from langchain_costopt import CostCallbackHandler, cost_tracker, set_price

MODEL = "bench-model"


class _Replies:
    """An endless iterator of one AIMessage with usage (GenericFakeChatModel input)."""

    def __iter__(self) -> _Replies:
        return self

    def __next__(self) -> AIMessage:
        return AIMessage(
            "a short answer",
            usage_metadata={
                "input_tokens": 120,
                "output_tokens": 40,
                "total_tokens": 160,
                "input_token_details": {"cache_read": 60},
            },
            response_metadata={"model_name": MODEL},
        )


class _NoopHandler(BaseCallbackHandler):
    """Any handler at all: LangChain's own per-handler cost, for comparison."""


def _time_per_call(fn: Callable[[], object], calls: int) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - start) / calls * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=3000)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()

    set_price(MODEL, input_per_token=1e-6, output_per_token=2e-6, cache_read_per_token=1e-7)
    model = GenericFakeChatModel(messages=_Replies())
    handler = CostCallbackHandler()
    budgeted = CostCallbackHandler(budget_usd=1e9, daily_budget_usd=1e9)
    with_handler = {"callbacks": [handler]}
    with_budget = {"callbacks": [budgeted]}

    noop = {"callbacks": [_NoopHandler()]}
    setups: dict[str, Callable[[], object]] = {
        "no handler": lambda: model.invoke("hello"),
        "no-op handler": lambda: model.invoke("hello", config=noop),
        "CostCallbackHandler": lambda: model.invoke("hello", config=with_handler),
        "handler + 2 budgets": lambda: model.invoke("hello", config=with_budget),
    }

    def tracked() -> object:
        with cost_tracker():
            return model.invoke("hello")

    setups["cost_tracker()"] = tracked
    for fn in setups.values():  # warm up imports, price cache, pydantic
        _time_per_call(fn, 200)

    samples: dict[str, list[float]] = {name: [] for name in setups}
    for _ in range(args.repeats):
        for name, fn in setups.items():
            samples[name].append(_time_per_call(fn, args.calls))

    base = statistics.median(samples["no handler"])
    noop_med = statistics.median(samples["no-op handler"])
    print(f"fake chat model invoke, {args.calls} calls x {args.repeats} repeats (median)")
    print(f"{'setup':<22} {'us/call':>9} {'vs none':>8} {'vs no-op':>9}")
    for name, values in samples.items():
        med = statistics.median(values)
        print(f"{name:<22} {med:>9.1f} {med / base:>7.3f}x {med / noop_med:>8.3f}x")
    own = statistics.median(samples["CostCallbackHandler"]) - noop_med
    print(
        f"handler's own work: {own:.1f} us/call (beyond what LangChain spends on any "
        f"handler: {noop_med - base:.1f} us/call)"
    )
    print(f"target: CostCallbackHandler <= 1.05x; calls counted: {handler.summary().calls}")


if __name__ == "__main__":
    main()
