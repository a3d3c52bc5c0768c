"""costopt for LangChain: routing, semantic caching and cost accounting.

Example:
    .. code-block:: python

        from langchain_costopt import RouterChatModel
        router = RouterChatModel(models={"simple": cheap_model, "complex": strong_model})

    >>> from langchain_costopt import HashingEmbeddings, RouterChatModel, set_price
    >>> len(HashingEmbeddings(dim=64).embed_query("hello"))
    64
"""

from __future__ import annotations

from costopt_core.exports import lazy_exports
from langchain_costopt.chat_models import RouterChatModel

# Modules load on first use so `import langchain_costopt` stays cheap.
__getattr__, __dir__, _LAZY = lazy_exports(
    __name__,
    {
        "langchain_costopt.simulated": ("SimulatedChatModel",),
        "langchain_costopt.cache": ("SemanticLLMCache", "cache_namespace"),
        # LocalEmbeddings needs the [embeddings] extra only when one is built.
        "langchain_costopt.embeddings": ("HashingEmbeddings", "LocalEmbeddings"),
        "langchain_costopt.callbacks": ("CostCallbackHandler", "cost_tracker"),
        "langchain_costopt.compression": ("PromptCompressor", "ChunkDocumentCompressor"),
        "costopt_core.ledger": ("BudgetExceededError",),
        "costopt_core": ("ComplexityClassifier", "estimate_cost", "get_strategy", "set_price"),
    },
)

__all__ = ["RouterChatModel", *_LAZY]
