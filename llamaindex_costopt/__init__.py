"""costopt for LlamaIndex: routing, semantic caching and cost accounting.

Example:
    .. code-block:: python

        from llama_index.core import Settings
        from llamaindex_costopt import CostEventHandler, RouterLLM, SemanticCacheLLM

        handler = CostEventHandler(budget_usd=5.0).register()
        router = RouterLLM(llms={"simple": cheap_llm, "complex": strong_llm})
        Settings.llm = SemanticCacheLLM(router, embed_model=embed_model)
        ...
        print(handler.report())

The three levers sit on the framework-free engine ``costopt_core``, like the LangChain
face ``langchain_costopt``: this package only translates LlamaIndex objects and events.
"""

from __future__ import annotations

import importlib
from typing import Any

# Modules load on first use so `import llamaindex_costopt` stays cheap.
_LAZY: dict[str, str] = {
    "RouterLLM": "llamaindex_costopt.router",
    "RoutingDecisionEvent": "llamaindex_costopt.router",
    "SemanticCacheLLM": "llamaindex_costopt.cache",
    "CacheHitEvent": "llamaindex_costopt.cache",
    "cache_namespace": "llamaindex_costopt.cache",
    "CostEventHandler": "llamaindex_costopt.handlers",
    "SimulatedLLM": "llamaindex_costopt.simulated",
    "HashingEmbedding": "llamaindex_costopt.simulated",
    "BudgetExceededError": "costopt_core.ledger",
    "ComplexityClassifier": "costopt_core.classify",
    "get_strategy": "costopt_core.strategies",
    "set_price": "costopt_core.pricing",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'llamaindex_costopt' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])


__all__ = list(_LAZY)
