"""Routers sharing one LLM cache: routers whose strategies differ never serve each other's
answers; the same trained router after a restart still hits a persistent cache."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from langchain_core.caches import InMemoryCache

from costopt_core.hashing import HashingEmbedder
from costopt_core.knn import KNNStrategy
from costopt_core.learned import load_router
from costopt_core.stores import SQLiteStore
from langchain_costopt import HashingEmbeddings, RouterChatModel, SemanticLLMCache
from langchain_costopt.simulated import SimulatedChatModel

PROMPTS = ["hi", "hello", "prove the theorem", "design a system", "thanks", "derive it"] * 3
EASY_IS_CHEAP = [0, 0, 1, 1, 0, 1] * 3


def knn(labels: list[int]) -> KNNStrategy:
    return KNNStrategy(HashingEmbedder(), tiers=("cheap", "strong")).fit(PROMPTS, labels)


def router(strategy: Any, cache: Any) -> RouterChatModel:
    tiers = {
        "cheap": SimulatedChatModel(model_name="gpt-4o-mini"),
        "strong": SimulatedChatModel(model_name="gpt-4o"),
    }
    return RouterChatModel(models=tiers, strategy=strategy, cache=cache)


def answered_by(model: RouterChatModel, prompt: str) -> str:
    return model.invoke(prompt).response_metadata["model_name"]


def test_routers_with_different_lambdas_do_not_share_answers() -> None:
    cache = InMemoryCache()
    assert answered_by(router(lambda text: "cheap", cache), "Explain entropy") == "gpt-4o-mini"
    assert answered_by(router(lambda text: "strong", cache), "Explain entropy") == "gpt-4o"


def test_routers_trained_on_opposite_labels_do_not_share_answers() -> None:
    cache = InMemoryCache()
    labels = {"cheap": EASY_IS_CHEAP, "strong": [1 - y for y in EASY_IS_CHEAP]}
    routers = {
        name: router(
            KNNStrategy(HashingEmbedder(), tiers=("cheap", "strong")).fit(PROMPTS, y), cache
        )
        for name, y in labels.items()
    }
    assert answered_by(routers["cheap"], "hello") == "gpt-4o-mini"
    assert answered_by(routers["strong"], "hello") == "gpt-4o"


def test_the_same_trained_file_hits_a_persistent_cache_after_a_restart(tmp_path: Path) -> None:
    path = knn(EASY_IS_CHEAP).save(tmp_path / "router.npz")

    def restarted() -> tuple[RouterChatModel, SQLiteStore]:
        store = SQLiteStore(tmp_path / "cache.db")
        cache = SemanticLLMCache(HashingEmbeddings(), store=store, similarity_threshold=0.9)
        return router(load_router(path), cache), store

    first, store = restarted()
    answer = first.invoke("prove the theorem")
    store.close()
    again, store = restarted()
    hit = again.invoke("prove the theorem")
    store.close()
    assert hit.content == answer.content
    assert hit.response_metadata["costopt_cache"]["hit"] is True
