"""Cost-handler overhead: a fake chat model's invoke with vs. without CostCallbackHandler.

Run:
    .venv/bin/python benchmarks/handler_overhead.py [--calls 3000] [--repeats 7]

Prints microseconds per invoke for each setup side by side and the ratios (target:
<= 1.05x). Setups alternate within each repeat so machine noise hits all of them, and
the best repeat of each is reported (on a shared machine the median drifts with load).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.language_models import GenericFakeChatModel
from langchain_core.messages import AIMessage

from langchain_costopt import CostCallbackHandler, cost_tracker, set_price

MODEL = "bench-model"


class _Replies:
    """An endless iterator of one AIMessage with usage (GenericFakeChatModel input)."""

    def __init__(self, delay_s: float = 0.0) -> None:
        self.delay_s = delay_s

    def __iter__(self) -> _Replies:
        return self

    def __next__(self) -> AIMessage:
        if self.delay_s:
            time.sleep(self.delay_s)
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

    def on_chat_model_start(self, *args: object, **kwargs: object) -> None:
        # Defined so LangChain does not take its NotImplementedError fallback path.
        return None


def _time_per_call(fn: Callable[[], object], calls: int) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - start) / calls * 1e6


def measure(model: GenericFakeChatModel, label: str, calls: int, repeats: int) -> None:
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
        _time_per_call(fn, max(5, calls // 5))

    samples: dict[str, list[float]] = {name: [] for name in setups}
    for _ in range(repeats):
        for name, fn in setups.items():
            samples[name].append(_time_per_call(fn, calls))

    base = min(samples["no handler"])
    noop_best = min(samples["no-op handler"])
    print(f"{label}: {calls} calls x {repeats} repeats (best repeat)")
    print(f"{'setup':<22} {'us/call':>9} {'vs none':>8} {'vs no-op':>9}")
    for name, values in samples.items():
        best = min(values)
        print(f"{name:<22} {best:>9.1f} {best / base:>7.3f}x {best / noop_best:>8.3f}x")
    own = min(samples["CostCallbackHandler"]) - noop_best
    print(
        f"handler's own work: {own:.1f} us/call, beyond the {noop_best - base:.1f} us/call "
        f"LangChain spends on any handler; calls counted: {handler.summary().calls}\n"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=500)
    parser.add_argument("--repeats", type=int, default=21)
    args = parser.parse_args()

    set_price(MODEL, input_per_token=1e-6, output_per_token=2e-6, cache_read_per_token=1e-7)
    measure(
        GenericFakeChatModel(messages=_Replies()),
        "fake chat model invoke (instant)",
        args.calls,
        args.repeats,
    )
    # The same fake answering after 1 ms, far faster than any hosted model, to show the
    # overhead at the scale of a real call.
    measure(
        GenericFakeChatModel(messages=_Replies(delay_s=0.001)),
        "fake chat model invoke (1 ms answer)",
        max(20, args.calls // 10),
        7,
    )
    print("target: CostCallbackHandler <= 1.05x")


if __name__ == "__main__":
    main()
