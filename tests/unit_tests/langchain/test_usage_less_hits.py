"""A cache hit of an answer that came without token usage saves what its call cost
(counted from the text), through any LangChain cache, invoked or streamed."""

from __future__ import annotations

from itertools import cycle
from typing import Any

import pytest
from langchain_core.caches import InMemoryCache
from langchain_core.language_models import GenericFakeChatModel
from langchain_core.messages import AIMessage

from langchain_costopt import CostCallbackHandler, HashingEmbeddings, SemanticLLMCache

QUESTION = "What is the capital of France?"


class NoUsage(GenericFakeChatModel):
    """A provider that reports no usage but names its model."""

    model_name: str = "gpt-4o"

    def _generate(self, *args: Any, **kwargs: Any) -> Any:
        result = super()._generate(*args, **kwargs)
        result.generations[0].message.response_metadata["model_name"] = self.model_name
        return result


@pytest.mark.parametrize(
    "make_cache",
    [InMemoryCache, lambda: SemanticLLMCache(HashingEmbeddings(), similarity_threshold=0.9)],
    ids=["InMemoryCache", "SemanticLLMCache"],
)
def test_a_usage_less_hit_saves_what_the_call_cost(make_cache):
    answers = cycle([AIMessage("Paris is the capital and largest city of France.")])
    model = NoUsage(messages=answers, cache=make_cache())
    handler = CostCallbackHandler()
    model.invoke(QUESTION, {"callbacks": [handler]})
    model.invoke(QUESTION, {"callbacks": [handler]})
    call, hit = handler.accountant.ledger.records()
    assert call.estimated or call.tags.get("usage") == "estimated"
    assert hit.kind == "cache_hit" and hit.cost_usd == 0
    assert hit.saved_usd == pytest.approx(call.cost_usd) and call.cost_usd > 0
