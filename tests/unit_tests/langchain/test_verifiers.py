"""ChatModelVerifier through SemanticLLMCache: asked on uncertain hits, priced apart,
never served from the cache it guards."""

from __future__ import annotations

import asyncio

from langchain_core.globals import set_llm_cache
from langchain_core.language_models.fake_chat_models import FakeListChatModel

from langchain_costopt import HashingEmbeddings, SemanticLLMCache
from langchain_costopt.simulated import SimulatedChatModel
from langchain_costopt.verifiers import ChatModelVerifier

CACHED = "Can I not bring my dog on the train?"
FLIPPED = "Can I bring my dog on the train?"  # a negation flip: always asked


def calibrated(cache: SemanticLLMCache) -> SemanticLLMCache:
    for topic in [
        "rivers",
        "engines",
        "castles",
        "violins",
        "orbits",
        "peppers",
        "glaciers",
        "tunnels",
    ]:
        for verb in ("cost", "weigh", "last", "sound"):
            cache.engine.lookup("calibration", f"How much do {topic} {verb}?")
    return cache


def test_verifier_yes_serves_and_its_call_is_priced_apart():
    judge = ChatModelVerifier(FakeListChatModel(responses=["YES"]))
    cache = calibrated(SemanticLLMCache(HashingEmbeddings(), verifier=judge))
    model = SimulatedChatModel(model_name="gpt-4o-mini", cache=cache)
    set_llm_cache(cache)  # a global cache must not catch the verifier's own call
    try:
        first = model.invoke(CACHED)
        again = model.invoke(FLIPPED)
    finally:
        set_llm_cache(None)
    assert again.content == first.content
    assert again.response_metadata["costopt_cache"]["hit"] is True
    assert judge.calls == 1 and judge.costs.to_dict()["calls"] == 1
    assert cache.stats["verifier_yes"] == 1


def test_verifier_no_misses_and_async_path_asks_too():
    judge = ChatModelVerifier(FakeListChatModel(responses=["NO", "no"]))
    cache = calibrated(SemanticLLMCache(HashingEmbeddings(), verifier=judge))
    model = SimulatedChatModel(model_name="gpt-4o-mini", cache=cache)
    model.invoke(CACHED)
    assert "costopt_cache" not in model.invoke(FLIPPED).response_metadata
    asyncio.run(cache.engine.alookup(cache._key(FLIPPED, "other")[0], FLIPPED))
    assert cache.stats["verifier_calls"] == 1  # the other partition is empty: not asked


def test_a_failing_verifier_model_never_fails_the_call():
    class Broken(FakeListChatModel):
        def _call(self, *args, **kwargs):
            raise RuntimeError("provider down")

    cache = calibrated(
        SemanticLLMCache(HashingEmbeddings(), verifier=ChatModelVerifier(Broken(responses=[])))
    )
    model = SimulatedChatModel(model_name="gpt-4o-mini", cache=cache)
    model.invoke(CACHED)
    assert model.invoke(FLIPPED).content
    assert cache.stats["verifier_calls"] == 1 and cache.stats["verifier_yes"] == 0
