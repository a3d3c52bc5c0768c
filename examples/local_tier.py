"""costopt local tier: a self-hosted model as a routing tier, priced so that routing to
it shows in the savings. Fully offline.

Run:  python examples/local_tier.py

Two local models stand in for Ollama / llama.cpp ones: an 8B model on hardware you own
($0 per token, reported "local", never "unpriced") and a 4-bit 32B model on a rented
GPU at $1.20 an hour. Claude 3.5 Sonnet is the strong API tier. Each prompt prints the
tier, the model, what the call cost and what it saved against the strong tier; then the
cost report and the break-even of the rented GPU against the API.

With a real local model nothing else changes: ``pip install langchain-ollama`` and put
``ChatOllama(model="llama3.1:8b")`` where the simulated model is; ``set_hourly_cost``
prices it under the name it reports.
"""

from __future__ import annotations

from costopt_core import get_price
from costopt_core.cli import main as costopt
from costopt_core.local_models import price_status, set_hourly_cost
from langchain_costopt import CostCallbackHandler, RouterChatModel
from langchain_costopt.simulated import SimulatedChatModel

OWN_GPU = "llama3.1:8b"
RENTED_GPU = "qwen2.5:32b-instruct-q4_K_M"
API = "claude-3-5-sonnet"

PROMPTS = [
    "Translate 'good morning' into French.",
    "请把这段话翻译成英文：今天天气很好。",
    "Summarize this paragraph in one sentence: costopt routes each call to a cheaper model.",
    "What is the capital of Australia?",
    "How do I reverse a list in Python?",
    "Analyze the trade-offs and compare a monolith with microservices for a 5-person team.",
    "请分析并比较 PostgreSQL 与 MongoDB 在电商系统架构设计中的优劣。",
    "Classify this review as positive or negative: 'The battery died in an hour.'",
]


def main() -> None:
    # Your own machine: no bill per token. A rented GPU: its hourly price spread over the
    # tokens it produces while busy (40 tokens/s generation, 400 tokens/s prompt).
    set_hourly_cost(OWN_GPU)
    set_hourly_cost(
        RENTED_GPU, usd_per_hour=1.20, tokens_per_second=40, input_tokens_per_second=400
    )

    cost = CostCallbackHandler(baseline_model=API)
    router = RouterChatModel(
        models={
            "simple": SimulatedChatModel(model_name=OWN_GPU),  # e.g. ChatOllama(model=OWN_GPU)
            "medium": SimulatedChatModel(model_name=RENTED_GPU),
            "complex": SimulatedChatModel(model_name=API),  # e.g. ChatAnthropic(...)
        },
        callbacks=[cost],
    )

    print(f"{'tier':<8} {'model':<28} {'price':<9} {'cost USD':>10} {'saved USD':>10}  prompt")
    for question in PROMPTS:
        spent, saved = cost.total_cost, cost.total_saved
        routing = router.invoke(question).response_metadata["routing"]
        status = price_status(get_price(routing["model"]))
        print(
            f"{routing['tier']:<8} {routing['model']:<28} {status:<9} "
            f"{cost.total_cost - spent:>10.6f} {cost.total_saved - saved:>10.6f}  {question[:45]}"
        )

    print()
    print(cost.report())
    print("\nprices:")
    for model in (OWN_GPU, RENTED_GPU, API):
        price = get_price(model)
        print(f"  {model:<28} {price_status(price):<7} ({price.source})")

    print("\nWhen does the rented GPU pay for itself against the API, at 5,000 requests a day?")
    costopt(
        [
            "estimate",
            "--model",
            "claude-3.5-sonnet",
            "--requests-per-day",
            "5000",
            "--input-tokens",
            "1000",
            "--output-tokens",
            "500",
            "--local-usd-per-hour",
            "1.20",
            "--local-tokens-per-second",
            "40",
            "--local-input-tokens-per-second",
            "400",
        ]
    )


if __name__ == "__main__":
    main()
