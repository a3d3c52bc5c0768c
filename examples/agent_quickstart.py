"""costopt in a LangChain agent: every model call routed on its own, offline.

Run:  python examples/agent_quickstart.py      (needs the [agents] extra)

An agent makes several model calls per question: one that decides which tool to call,
then one that reads the tool's result and answers. ``CostRoutingMiddleware`` judges the
first by the question and sends the second, which only reads a successful tool result,
one tier below. Simulated tiers (deterministic tool calls and answers, realistic token
usage) stand in for DeepSeek-V3, GPT-4o-mini and Claude 3.5 Sonnet; swap in real chat
models and nothing else changes. The run is priced against always asking the strongest.
"""

from __future__ import annotations

import sys

try:
    from langchain.agents import create_agent
except ImportError:  # the extra is not installed: say which, not a bare traceback
    sys.exit(f'{__file__} needs the [agents] extra: pip install "costopt-llm[agents]"')
from langchain_core.messages import AIMessage
from langchain_core.tools import tool

from langchain_costopt import cost_tracker
from langchain_costopt.middleware import CostRoutingMiddleware
from langchain_costopt.simulated import SimulatedChatModel

QUESTIONS = [
    "Use get_weather: what is the weather in Paris?",
    "Analyze and compare the weather in Oslo for a trip, then evaluate the risks: use get_weather.",
    "请用 get_weather 分析并比较北京的天气, 评估出行风险。",
]


@tool
def get_weather(city: str) -> str:
    """Current weather in a city."""
    return f"{city}: 21°C, light wind, no rain"


def main() -> None:
    tiers = {
        "simple": SimulatedChatModel(model_name="deepseek-v3"),
        "medium": SimulatedChatModel(model_name="gpt-4o-mini"),
        "complex": SimulatedChatModel(model_name="claude-3-5-sonnet"),
    }
    routing = CostRoutingMiddleware(
        models=tiers,
        tool_result_downgrade=1,
    )
    agent = create_agent(tiers["complex"], tools=[get_weather], middleware=[routing])

    with cost_tracker(baseline_model="claude-3-5-sonnet") as tracker:
        for question in QUESTIONS:
            print(f"\n{question}")
            messages = agent.invoke({"messages": [("user", question)]})["messages"]
            for message in messages:
                if isinstance(message, AIMessage):
                    info = message.response_metadata["routing"]
                    what = "calls a tool" if message.tool_calls else "answers"
                    print(f"  {info['tier']:<8} {info['model']:<18} {what:<13} {info['reason']}")

    print(f"\nspent ${tracker.total_cost:.6f}, saved ${tracker.total_saved:.6f} against")
    print("asking claude-3-5-sonnet for every call:")
    print(tracker.report())


if __name__ == "__main__":
    main()
