"""costopt's framework-free engine: classifier, strategies, prices, cache, ledger.

Imports neither LangChain nor LlamaIndex; ``langchain_costopt`` and
``llamaindex_costopt`` translate their framework's objects into calls on it.
"""

from __future__ import annotations

import importlib
from typing import Any

from costopt_core.classify import ComplexityClassifier
from costopt_core.decision import RouteDecision, RoutingStrategy, resolve_tier
from costopt_core.pricing import (
    ModelPrice,
    PriceCatalog,
    estimate_cost,
    get_price,
    set_price,
)
from costopt_core.strategies import (
    CallableStrategy,
    LengthStrategy,
    ThresholdStrategy,
    as_strategy,
    available_strategies,
    get_strategy,
    strategy_signature,
)
from costopt_core.tokens import estimate_tokens

# Heavier or optional parts load on first use: `import costopt_core` stays cheap and
# never needs an optional extra.
_LAZY: dict[str, str] = {
    "SemanticCache": "costopt_core.cache",
    "cache_namespace": "costopt_core.cache",
    "MemoryStore": "costopt_core.stores.memory",
    "SQLiteStore": "costopt_core.stores.sqlite",
    "PostgresStore": "costopt_core.stores.postgres",
    "PostgresLedger": "costopt_core.stores.postgres",
    "CacheStore": "costopt_core.stores.base",
    "CostLedger": "costopt_core.ledger",
    "LedgerProtocol": "costopt_core.ledger",
    "CostRecord": "costopt_core.ledger",
    "TokenUsage": "costopt_core.ledger",
    "Budget": "costopt_core.ledger",
    "BudgetExceededError": "costopt_core.ledger",
    "CostAccountant": "costopt_core.accounting",
    "HashingEmbedder": "costopt_core.hashing",
    "NotFittedError": "costopt_core.knn",
    "load_routing_data": "costopt_core.evaluation",
    "evaluate_router": "costopt_core.evaluation",
    "calibrate_threshold": "costopt_core.evaluation",
    "ZeroShotStrategy": "costopt_core.zero_shot",
    "KNNStrategy": "costopt_core.knn",
    "CascadeStrategy": "costopt_core.cascade",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'costopt_core' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


__all__ = [
    "CallableStrategy",
    "ComplexityClassifier",
    "LengthStrategy",
    "ModelPrice",
    "PriceCatalog",
    "RouteDecision",
    "RoutingStrategy",
    "ThresholdStrategy",
    "as_strategy",
    "available_strategies",
    "estimate_cost",
    "estimate_tokens",
    "get_price",
    "get_strategy",
    "resolve_tier",
    "set_price",
    "strategy_signature",
    *_LAZY,
]
