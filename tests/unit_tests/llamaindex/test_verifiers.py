"""LLMVerifier through SemanticCacheLLM: asked on uncertain hits, its spend apart."""

from __future__ import annotations

import asyncio
from typing import Any

from llama_index.core.llms import CompletionResponse, CustomLLM, LLMMetadata
from llama_index.core.llms.callbacks import llm_completion_callback

from llamaindex_costopt import SemanticCacheLLM
from llamaindex_costopt.simulated import HashingEmbedding, SimulatedLLM
from llamaindex_costopt.verifiers import LLMVerifier
from tests.unit_tests.llamaindex.test_cache import calibrate

CACHED = "Can I not bring my dog on the train?"
FLIPPED = "Can I bring my dog on the train?"  # a negation flip: always asked


class Yes(CustomLLM):
    @property
    def metadata(self) -> LLMMetadata:
        return LLMMetadata(model_name="judge")

    @llm_completion_callback()
    def complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        return CompletionResponse(text="YES")

    @llm_completion_callback()
    def stream_complete(self, prompt: str, formatted: bool = False, **kwargs: Any):
        yield CompletionResponse(text="YES", delta="YES")


def cache_with(judge: LLMVerifier) -> SemanticCacheLLM:
    llm = SemanticCacheLLM(
        SimulatedLLM(model_name="gpt-4o-mini"),
        embed_model=HashingEmbedding(dim=256),
        verifier=judge,
    )
    calibrate(llm)
    return llm


def test_yes_serves_and_the_judge_counts_its_calls():
    judge = LLMVerifier(Yes())
    llm = cache_with(judge)
    first = llm.complete(CACHED)
    assert llm.complete(FLIPPED).text == first.text and llm.llm.calls == 1
    assert judge.stats["calls"] == 1 and judge.stats["unpriced_calls"] == 1


def test_no_misses_and_the_judges_spend_is_priced():
    judge = LLMVerifier(SimulatedLLM(model_name="gpt-4o-mini"))  # never answers "yes"
    llm = cache_with(judge)
    llm.complete(CACHED)
    asyncio.run(llm.acomplete(FLIPPED))
    assert llm.llm.calls == 2
    assert judge.stats["calls"] == 1 and judge.stats["cost_usd"] > 0
