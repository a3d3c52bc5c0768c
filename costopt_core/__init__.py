"""costopt's framework-free engine: classifier, strategies, prices, cache, ledger.

Imports neither LangChain nor LlamaIndex; ``langchain_costopt`` and
``llamaindex_costopt`` translate their framework's objects into calls on it.

Example:
    >>> from costopt_core import ComplexityClassifier, estimate_cost, get_strategy
    >>> ComplexityClassifier().classify("请把这段话翻译成英文")
    'simple'
    >>> estimate_cost("请把这段话翻译成英文")["model"]
    'deepseek-v3'
    >>> get_strategy("rules").route("请分析并比较这两种架构设计").tier
    'complex'
"""

from __future__ import annotations

from costopt_core.classify import ComplexityClassifier, estimate_cost
from costopt_core.decision import RouteDecision, RoutingStrategy, resolve_tier
from costopt_core.exports import lazy_exports
from costopt_core.pricing import (
    ModelPrice,
    PriceCatalog,
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
__getattr__, __dir__, _LAZY = lazy_exports(
    __name__,
    {
        "costopt_core.cache": ("SemanticCache", "cache_namespace"),
        "costopt_core.stores.base": ("CacheStore",),
        "costopt_core.stores.memory": ("MemoryStore",),
        "costopt_core.stores.sqlite": ("SQLiteStore",),
        "costopt_core.stores.postgres": ("PostgresStore", "PostgresLedger"),
        "costopt_core.stores.sqlite_ledger": ("SQLiteLedger",),
        "costopt_core.ledger": (
            "CostLedger",
            "LedgerProtocol",
            "CostRecord",
            "TokenUsage",
            "Budget",
            "BudgetExceededError",
        ),
        "costopt_core.accounting": ("CostAccountant",),
        "costopt_core.hashing": ("HashingEmbedder",),
        "costopt_core.evaluation": ("load_routing_data", "evaluate_router", "calibrate_threshold"),
        "costopt_core.zero_shot": ("ZeroShotStrategy",),
        "costopt_core.knn": ("KNNStrategy", "NotFittedError"),
        "costopt_core.cascade": ("CascadeStrategy",),
        "costopt_core.logistic": ("LogisticStrategy",),
        "costopt_core.learned": ("load_router",),
        "costopt_core.local_models": ("set_hourly_cost",),
        "costopt_core.engine": ("RoutingEngine",),
    },
)

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
