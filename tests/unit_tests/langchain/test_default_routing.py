"""What a LangChain user sees from a router given no strategy."""

from __future__ import annotations

from langchain_costopt import RouterChatModel
from langchain_costopt.simulated import SimulatedChatModel

ANALYSIS = (
    "Analyse our support tickets from last quarter, compare the top complaint themes "
    "with the quarter before, then design a step-by-step plan to cut the backlog."
)


def test_a_two_tier_router_with_no_strategy_saves_on_everyday_english() -> None:
    router = RouterChatModel(
        models={
            "cheap": SimulatedChatModel(model_name="gpt-4o-mini"),
            "strong": SimulatedChatModel(model_name="gpt-4o"),
        }
    )
    routed = {
        text: router.invoke(text).response_metadata["routing"]
        for text in ("hi", "What's the weather in Paris?", "Translate 'hello' into French")
    }
    assert {r["tier"] for r in routed.values()} == {"cheap"}
    assert {r["model"] for r in routed.values()} == {"gpt-4o-mini"}
    strong = router.invoke(ANALYSIS).response_metadata["routing"]
    assert (strong["tier"], strong["model"]) == ("strong", "gpt-4o")
    assert strong["reason"].startswith("zero-shot")
    # The seed's own Chinese prompts keep the seed's tiers.
    assert router.invoke("请翻译这句话").response_metadata["routing"]["tier"] == "cheap"
    assert router.invoke("请分析并比较两种架构").response_metadata["routing"]["tier"] == "strong"
