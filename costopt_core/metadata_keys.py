"""Keys under which costopt's pieces leave facts for each other in framework metadata.

The writer of each key and its readers live in different modules (a cache and a cost
handler, a router and a cost handler), so the key is defined here, once, and both
import it. The routing record's own key is the engine's ``ROUTING_KEY``
(:mod:`costopt_core.engine`).

Example:
    >>> from costopt_core.metadata_keys import CACHE_MARKER_KEY, model_name_in
    >>> CACHE_MARKER_KEY, model_name_in({"model_name": "gpt-4o-mini"})
    ('costopt_cache', 'gpt-4o-mini')
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

#: LangChain ``generation_info`` and ``message.response_metadata`` key of the cache-hit
#: marker (``costopt_core.cache.CacheHit.marker()``): ``SemanticLLMCache`` sets it on the
#: generations of a hit, ``CostCallbackHandler`` books such an answer as a saving.
CACHE_MARKER_KEY = "costopt_cache"

#: LlamaIndex ``additional_kwargs`` key of the same marker on an answer
#: ``SemanticCacheLLM`` served from its cache.
CACHE_HIT_KEY = "cache"

#: LangChain run-metadata key under which ``RouterChatModel.batch`` hands its routing
#: decision to the inner runs; ``CostCallbackHandler`` reads the tier from it.
BATCH_ROUTING_KEY = "costopt_routing"

#: LangChain invocation-params key under which ``RouterChatModel`` names the tier a call
#: was routed to before its run started; ``CostCallbackHandler`` reserves that tier's
#: maximum (not the dearest tier's) and more only if the call climbs.
ROUTED_TIER_PARAM = "costopt_routed_tier"

#: ``CostRecord.tags`` key and value of a record whose usage the provider did not report:
#: its tokens were counted from the prompt and answer text (stored in every ledger as a
#: tag, so no ledger schema changes), and ``report()`` counts such calls as estimated.
USAGE_TAG = "usage"
USAGE_ESTIMATED = "estimated"
#: ``CostRecord.tags`` key naming what counted an estimated record's tokens: a tokenizer's
#: encoding (``"o200k_base"``) or ``costopt_core.tokens.APPROXIMATE``.
TOKEN_COUNTER_TAG = "token_counter"

#: Keys naming the model in LangChain invocation params, ``response_metadata`` and
#: ``generation_info`` (and the attributes of a chat model), most common first.
MODEL_NAME_KEYS: tuple[str, ...] = ("model_name", "model", "model_id", "deployment_name")


def model_name_in(mapping: Mapping[str, Any] | None) -> str | None:
    """The model a params or metadata mapping names (first of ``MODEL_NAME_KEYS``).

    Example:
        >>> model_name_in({"model": "gpt-4o-mini", "temperature": 0})
        'gpt-4o-mini'
        >>> model_name_in({"model_name": ""}) is None
        True
    """
    if not mapping:
        return None
    for key in MODEL_NAME_KEYS:
        value = mapping.get(key)
        if isinstance(value, str) and value:
            return value
    return None


#: ``CostRecord.tags`` key (value ``"1"``) of a call billed at its provider's batch rates.
BATCH_TAG = "batch"

#: LangChain ``response_metadata`` / LlamaIndex ``ChatResponse.additional_kwargs`` key
#: (value ``True``) of an answer that came back through a provider's batch API: the cost
#: handlers bill it at the batch rate (``ModelPrice.batch_discount``).
BATCH_KEY = "costopt_batch"

#: ``response_metadata`` key (an ``int``) that a prompt compressor sets on the first or
#: last message it hands on: how many input tokens it removed. The cost handlers read it
#: from those two messages only and count the compression saving on that call.
COMPRESSED_TOKENS_KEY = "costopt_compressed_tokens"


__all__ = [
    "BATCH_KEY",
    "BATCH_ROUTING_KEY",
    "BATCH_TAG",
    "CACHE_HIT_KEY",
    "CACHE_MARKER_KEY",
    "COMPRESSED_TOKENS_KEY",
    "MODEL_NAME_KEYS",
    "TOKEN_COUNTER_TAG",
    "USAGE_ESTIMATED",
    "USAGE_TAG",
    "model_name_in",
]
