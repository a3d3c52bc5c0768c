"""LlamaIndex face overhead: RouterLLM.chat vs. the inner LLM's chat, with and without
a registered CostEventHandler, and a SemanticCacheLLM hit vs. a model call.

Run:
    .venv/bin/python benchmarks/llamaindex_overhead.py [--calls 2000] [--repeats 5]
        [--clock cpu|wall]

Prints microseconds per call side by side and the ratios against the bare inner call.
The inner LLM is the offline ``SimulatedLLM`` (a few tens of microseconds of work), so
the ratios are an upper bound on the relative overhead in front of a real provider call
(hundreds of milliseconds). Setups alternate within each repeat; the best repeat counts.
``--clock cpu`` (default) times with this thread's CPU time (``time.thread_time``), which
leaves out the time other processes hold the CPU on a shared machine; ``--clock wall``
uses ``time.perf_counter``. The handler rows run a ``CostEventHandler`` without a budget
and one with two budgets (each call then reserves its maximum before it runs); the no-op
row registers an event handler that does nothing, LlamaIndex's own cost of any handler.

Figures (this machine, clock; HEAD 47157e4 from a git archive on PYTHONPATH, then this
tree, one run after the other): before the handlers and wrappers kept their state in
slots instead of pydantic private attributes (each read is a failed lookup and two
``__getattr__`` calls: 24 per plain chat) and a plain call's record was built when read,
inner.chat + handler took 160.9 us against 86.3 us with a no-op handler (1.86x), with
budgets 165.8 us, router.chat 208.8 us, router.chat + handler 351.6 us, an exact cache
hit 168.1 us; after: 112.1 us (1.30x), 117.8, 181.1, 241.6 and 155.8 us.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

from llama_index.core.base.llms.types import ChatMessage, MessageRole
from llama_index.core.instrumentation import get_dispatcher
from llama_index.core.instrumentation.event_handlers import BaseEventHandler

from llamaindex_costopt import CostEventHandler, RouterLLM, SemanticCacheLLM
from llamaindex_costopt.simulated import HashingEmbedding, SimulatedLLM


class _NoopHandler(BaseEventHandler):
    """Any event handler at all: LlamaIndex's own per-handler cost, for comparison."""

    @classmethod
    def class_name(cls) -> str:
        return "NoopHandler"

    def handle(self, event: object, **kwargs: object) -> None:
        return None


MESSAGES = [ChatMessage(role=MessageRole.USER, content="请翻译这句话: good morning")]


def _per_call_us(fn: Callable[[], object], calls: int, clock: Callable[[], float]) -> float:
    start = clock()
    for _ in range(calls):
        fn()
    return (clock() - start) / calls * 1e6


def _attach(handler: BaseEventHandler) -> None:
    if isinstance(handler, CostEventHandler):
        handler.register()  # with its span tree
    else:
        get_dispatcher().add_event_handler(handler)


def _detach(handler: BaseEventHandler) -> None:
    if isinstance(handler, CostEventHandler):
        handler.unregister()
    else:
        root = get_dispatcher()
        root.event_handlers = [h for h in root.event_handlers if h is not handler]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--clock", choices=("cpu", "wall"), default="cpu")
    args = parser.parse_args()
    clock = time.thread_time if args.clock == "cpu" else time.perf_counter
    print(f"clock: {'CPU time of this thread' if args.clock == 'cpu' else 'wall time'}")

    inner = SimulatedLLM(model_name="deepseek-v3")
    router = RouterLLM(llms={"simple": inner, "complex": SimulatedLLM(model_name="gpt-4o")})
    cached = SemanticCacheLLM(router, embed_model=HashingEmbedding(dim=384))
    cached.chat(MESSAGES)  # warm: every later call is an exact hit
    handler = CostEventHandler()
    budgeted = CostEventHandler(budget_usd=1e9, daily_budget_usd=1e9)
    noop = _NoopHandler()

    def with_handler(
        fn: Callable[[], object], registered: BaseEventHandler
    ) -> Callable[[], object]:
        def run() -> object:
            return fn()

        run.handler = registered  # type: ignore[attr-defined]
        return run

    setups: dict[str, Callable[[], object]] = {
        "inner.chat": lambda: inner.chat(MESSAGES),
        "router.chat": lambda: router.chat(MESSAGES),
        "inner.chat + no-op handler": with_handler(lambda: inner.chat(MESSAGES), noop),
        "inner.chat + handler": with_handler(lambda: inner.chat(MESSAGES), handler),
        "inner.chat + budgets": with_handler(lambda: inner.chat(MESSAGES), budgeted),
        "router.chat + handler": with_handler(lambda: router.chat(MESSAGES), handler),
        "cache hit (exact)": lambda: cached.chat(MESSAGES),
    }
    best = dict.fromkeys(setups, float("inf"))
    for _ in range(args.repeats):
        for name, fn in setups.items():
            registered = getattr(fn, "handler", None)
            if registered is not None:
                _attach(registered)
            try:
                best[name] = min(best[name], _per_call_us(fn, args.calls, clock))
            finally:
                if registered is not None:
                    _detach(registered)

    base = best["inner.chat"]
    noop_us = best["inner.chat + no-op handler"]
    print(f"{'setup':<28} {'us/call':>9} {'vs inner.chat':>14} {'vs no-op':>9}")
    for name, value in best.items():
        print(f"{name:<28} {value:>9.1f} {value / base:>13.2f}x {value / noop_us:>8.2f}x")
    print(
        f"\nhandler recorded {handler.to_dict()['calls']} calls, "
        f"the budgeted one {budgeted.to_dict()['calls']}"
    )


if __name__ == "__main__":
    main()
