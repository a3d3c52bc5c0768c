"""Router overhead: RouterChatModel.invoke vs. the inner model's own invoke, and the
rule classifier's time per prompt.

Example:
    .venv/bin/python benchmarks/router_overhead.py            # full run (~10 s)
    .venv/bin/python benchmarks/router_overhead.py --quick    # fewer repetitions

Targets (issue 2): router.invoke / inner.invoke <= 1.3x on a fake model; rules
classifier <= 20 µs per prompt (median over a mixed set of prompts).
Both sides run in the same process, interleaved, so machine noise hits both alike.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

from langchain_core.language_models import FakeListChatModel
from langchain_core.tools import tool

from costopt_core import ComplexityClassifier
from costopt_core.default_strategy import DefaultStrategy
from costopt_core.zero_shot import ZeroShotStrategy
from langchain_costopt import RouterChatModel
from langchain_costopt.simulated import SimulatedChatModel

PROMPTS = [
    "请翻译这句话",
    "请分析并比较这两种系统架构的优缺点",
    "今天天气怎么样？",
    "把下面的文本格式化为表格，并提取所有日期",
    "Translate this paragraph into French, please.",
    "Analyze and compare the two database designs for a high-write workload.",
    "What is the capital of Peru?",
    "Give me more information about the venue and the schedule.",
    "请用 English 总结: the meeting covered budget and hiring.",
    "设计一个 REST API 架构, evaluate the trade-offs",
    "Summarize: " + "the quarterly report shows growth in all regions. " * 20,
    "请评估这个方案：" + "系统需要支持高并发和低延迟。" * 30,
    "hi",
    "Extract the email addresses from this text: alice@example.com, bob@example.org",
    "Why is the sky blue? Explain the reasoning step by step.",
    "字" * 4100,  # over the seed's length limit
]


def per_call_us(fn: Callable[[], object], repeat: int) -> float:
    start = time.perf_counter()
    for _ in range(repeat):
        fn()
    return (time.perf_counter() - start) / repeat * 1e6


def interleaved(
    a: Callable[[], object], b: Callable[[], object], rounds: int, repeat: int
) -> tuple[float, float]:
    """Median per-call µs of ``a`` and ``b``, alternating rounds."""
    ta, tb = [], []
    for _ in range(rounds):
        ta.append(per_call_us(a, repeat))
        tb.append(per_call_us(b, repeat))
    return statistics.median(ta), statistics.median(tb)


def bench_invoke(rounds: int, repeat: int) -> None:
    print("router.invoke vs inner.invoke (same prompt, same answering model)")
    print(f"{'inner model':<34}{'inner µs':>10}{'router µs':>11}{'ratio':>8}")

    inner = FakeListChatModel(responses=["ok"])
    router = RouterChatModel(
        models={"simple": inner, "complex": FakeListChatModel(responses=["strong"])}
    )
    prompt = "请翻译这句话"
    t_inner, t_router = interleaved(
        lambda: inner.invoke(prompt), lambda: router.invoke(prompt), rounds, repeat
    )
    print(f"{'FakeListChatModel':<34}{t_inner:>10.1f}{t_router:>11.1f}{t_router / t_inner:>7.2f}x")

    sim = SimulatedChatModel(model_name="deepseek-v3")
    router = RouterChatModel(
        models={"simple": sim, "complex": SimulatedChatModel(model_name="claude-3.5-sonnet")}
    )
    t_inner, t_router = interleaved(
        lambda: sim.invoke(prompt), lambda: router.invoke(prompt), rounds, repeat
    )
    print(f"{'SimulatedChatModel':<34}{t_inner:>10.1f}{t_router:>11.1f}{t_router / t_inner:>7.2f}x")

    @tool
    def add(a: int, b: int) -> int:
        """Add two integers."""
        return a + b

    inner_bound = sim.bind_tools([add])
    router_bound = router.bind_tools([add])
    t_inner, t_router = interleaved(
        lambda: inner_bound.invoke(prompt), lambda: router_bound.invoke(prompt), rounds, repeat
    )
    label = "SimulatedChatModel + bind_tools"
    print(f"{label:<34}{t_inner:>10.1f}{t_router:>11.1f}{t_router / t_inner:>7.2f}x")
    print("target: ratio <= 1.30x\n")


def bench_classifier(repeat: int) -> None:
    print(f"rule classifier, µs per prompt over {len(PROMPTS)} mixed prompts")
    print(f"{'classifier':<38}{'median':>10}{'max':>11}")
    for label, classify in (
        ("seed rules (zh)", ComplexityClassifier().classify),
        ("rules zh + en", ComplexityClassifier(languages=("zh", "en")).classify),
        ("zero-shot", ZeroShotStrategy().route),
        ("default strategy (no strategy given)", DefaultStrategy().route),
    ):
        times = [per_call_us(lambda p=p, f=classify: f(p), repeat) for p in PROMPTS]
        print(f"{label:<38}{statistics.median(times):>10.2f}{max(times):>11.2f}")
    print("target: median <= 20 µs for the rules; the default strategy is reported beside")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions")
    args = parser.parse_args()
    rounds, repeat, cls_repeat = (5, 100, 500) if args.quick else (15, 300, 3000)
    bench_invoke(rounds, repeat)
    bench_classifier(cls_repeat)


if __name__ == "__main__":
    main()
