"""costopt middleware for LangChain agents (``create_agent(..., middleware=[...])``).

Needs the ``langchain`` package: ``pip install "costopt-llm[agents]"``.

* :class:`CostRoutingMiddleware` routes every model call of the agent to a tier.
* :class:`BudgetMiddleware` stops the agent cleanly before a call that would not fit its
  budget; ``budget.cover(middleware)`` holds another middleware's own model calls
  (``SummarizationMiddleware``'s summaries) to it too.
* :class:`PromptCompressionMiddleware` trims the history the model is sent to a token
  budget (the agent's state keeps the whole conversation).
* :class:`PromptCacheMiddleware` keeps the prompt prefix stable and marks it for the
  provider's prompt cache (Anthropic ``cache_control``).
"""

from __future__ import annotations

try:
    import langchain.agents.middleware  # noqa: F401
except ImportError as exc:  # pragma: no cover - exercised in a subprocess test
    raise ImportError(
        "langchain_costopt.middleware needs the langchain package: "
        'pip install "costopt-llm[agents]"'
    ) from exc

from langchain_costopt.middleware.budget import BudgetMiddleware
from langchain_costopt.middleware.compression import PromptCompressionMiddleware
from langchain_costopt.middleware.prompt_cache import PromptCacheMiddleware
from langchain_costopt.middleware.routing import CostRoutingMiddleware

__all__ = [
    "BudgetMiddleware",
    "CostRoutingMiddleware",
    "PromptCacheMiddleware",
    "PromptCompressionMiddleware",
]
