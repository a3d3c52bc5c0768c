"""costopt provider prompt caching: an agent's stable prefix read back from the provider's
cache at a tenth of the input price, and the saving on its own line. Fully offline.

Run:  python examples/provider_prompt_cache.py      (needs the [agents] extra)

A support agent with a long system prompt answers six questions twice: once as is, once
with ``PromptCacheMiddleware``, which marks the request cacheable for Anthropic models
(``cache_control``), hands the tools over in one order, and warns when the stable part of
the prompt changes between calls. The simulated model bills like Anthropic: cache writes
at 1.25x the input price, cache reads at 0.1x. The cost report shows the provider cache's
saving apart from the plugin's own cache.

With a real model nothing else changes: put ``ChatAnthropic(model="claude-sonnet-4-5")``
where the simulated model is.
"""

from __future__ import annotations

import sys

try:
    from langchain.agents import create_agent
except ImportError:  # the extra is not installed: say which, not a bare traceback
    sys.exit(f'{__file__} needs the [agents] extra: pip install "costopt-llm[agents]"')
from langchain_core.tools import tool

from langchain_costopt import CostCallbackHandler, set_price
from langchain_costopt.middleware import PromptCacheMiddleware
from langchain_costopt.simulated import SimulatedChatModel

MODEL = "claude-sonnet-4-5"
# Anthropic's published rates for this model (USD per token): input $3/M, output $15/M,
# cache write (5 min) $3.75/M, cache read $0.30/M.
set_price(
    MODEL,
    input_per_token=3e-6,
    output_per_token=1.5e-5,
    cache_write_per_token=3.75e-6,
    cache_read_per_token=3e-7,
)

POLICY = (
    "You are the support agent of ACME Parcels. Be brief and polite. Parcels ship within "
    "two working days; returns are free within 30 days; refunds take five working days. "
)
SYSTEM_PROMPT = POLICY * 30  # a long, stable policy: the part worth caching

QUESTIONS = [
    "Where is my order 1042?",
    "How do I return a parcel?",
    "Do you ship to Oslo?",
    "When will my refund for order 877 arrive?",
    "Can I change the delivery address of order 1042?",
    "What are your opening hours?",
]


@tool
def track(order: int) -> str:
    """Track an order by its number."""
    return f"order {order} left the depot this morning"


def run(with_cache: bool) -> CostCallbackHandler:
    model = SimulatedChatModel(model_name=MODEL, prompt_cache="explicit")
    middleware = [PromptCacheMiddleware()] if with_cache else []
    agent = create_agent(model, tools=[track], system_prompt=SYSTEM_PROMPT, middleware=middleware)
    handler = CostCallbackHandler()
    for question in QUESTIONS:
        agent.invoke({"messages": [("user", question)]}, {"callbacks": [handler]})
    return handler


def main() -> None:
    plain = run(with_cache=False)
    cached = run(with_cache=True)
    print(f"without PromptCacheMiddleware: {plain.total_cost:.6f} USD")
    print(f"with PromptCacheMiddleware:    {cached.total_cost:.6f} USD")
    share = 1 - cached.total_cost / plain.total_cost
    print(f"provider prompt cache cut the bill by {share:.0%}")
    print()
    print(cached.report())


if __name__ == "__main__":
    main()
