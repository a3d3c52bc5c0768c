"""costopt for LangChain: routing, semantic caching and cost accounting.

Example:
    .. code-block:: python

        from langchain_costopt import RouterChatModel
        router = RouterChatModel(models={"simple": cheap_model, "complex": strong_model})
"""

from __future__ import annotations

import importlib
from typing import Any

from costopt_core import ComplexityClassifier, estimate_cost, get_strategy, set_price
from langchain_costopt.chat_models import RouterChatModel

# Modules load on first use so `import langchain_costopt` stays cheap.
_LAZY: dict[str, str] = {
    "SimulatedChatModel": "langchain_costopt.simulated",
    "SemanticLLMCache": "langchain_costopt.cache",
    "cache_namespace": "langchain_costopt.cache",
    "HashingEmbeddings": "langchain_costopt.embeddings",
    "CostCallbackHandler": "langchain_costopt.callbacks",
    "cost_tracker": "langchain_costopt.callbacks",
    "BudgetExceededError": "costopt_core.ledger",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'langchain_costopt' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


__all__ = [
    "ComplexityClassifier",
    "RouterChatModel",
    "estimate_cost",
    "get_strategy",
    "set_price",
    *_LAZY,
]
