"""RouterLLM and SemanticCacheLLM copied (``copy.deepcopy``, ``model_copy(deep=True)``)
and reloaded (``from_dict(to_dict())``) as LlamaIndex copies and reloads plain LLMs; the
cost handler copied and pickled as a pydantic object is (its state lives in slots: see
``llamaindex_costopt.model_slots``)."""

from __future__ import annotations

import copy
import pickle

import pytest
from llama_index.core.base.llms.types import ChatMessage
from llama_index.core.callbacks import CallbackManager

from llamaindex_costopt import CostEventHandler, RouterLLM, SemanticCacheLLM
from llamaindex_costopt.simulated import HashingEmbedding, SimulatedLLM

QUESTION = "How many moons does Mars have?"


def router(**kwargs) -> RouterLLM:
    tiers = {"simple": "gpt-4o-mini", "complex": "gpt-4o"}
    return RouterLLM(
        llms={tier: SimulatedLLM(model_name=model) for tier, model in tiers.items()}, **kwargs
    )


@pytest.mark.filterwarnings("ignore:RouterLLM\\(cost_handler")  # an unregistered one
@pytest.mark.parametrize("deep_copy", [copy.deepcopy, lambda llm: llm.model_copy(deep=True)])
def test_a_copied_router_routes_as_the_original_on_its_own_tier_llms(deep_copy) -> None:
    handler = CostEventHandler()
    original = router(fallback=False, cost_handler=handler, callback_manager=CallbackManager())
    clone = deep_copy(original)
    assert clone.models == original.models and clone.fallback is False
    assert clone.llms["simple"] is not original.llms["simple"]
    assert clone.cost_handler is handler  # one budget for both
    for llm in (original, clone):
        assert llm.complete("hi").additional_kwargs["routing"]["tier"] == "simple"
        assert llm.llms["simple"].callback_manager is llm.callback_manager
    clone.llms["simple"].max_tokens = 3
    assert original.llms["simple"].max_tokens != 3


def test_a_copied_cache_answers_from_the_same_cache() -> None:
    inner = router()
    original = SemanticCacheLLM(inner, embed_model=HashingEmbedding(), similarity_threshold=0.9)
    original.complete(QUESTION)
    clone = copy.deepcopy(original)
    assert clone.llm is not inner and clone.llm.llms["simple"] is not inner.llms["simple"]
    assert clone.complete(QUESTION).additional_kwargs["cache"]["hit"] is True
    assert clone.similarity_threshold == 0.9


def test_from_dict_rebuilds_a_wrapper_given_its_llms() -> None:
    original = router(fallback=False, include_history=True)
    rebuilt = RouterLLM.from_dict(original.to_dict(), llms=dict(original.llms))
    assert rebuilt.to_dict() == original.to_dict()
    cached = SemanticCacheLLM(original, embed_model=HashingEmbedding(), max_error_rate=0.05)
    reloaded = SemanticCacheLLM.from_dict(
        cached.to_dict(), llm=original, embed_model=HashingEmbedding()
    )
    assert reloaded.max_error_rate == 0.05
    assert reloaded.complete(QUESTION).text == cached.complete(QUESTION).text


@pytest.mark.parametrize(
    ("build", "needed"),
    [
        (router, r"RouterLLM.from_dict\(data, llms=\.\.\.\)"),
        (
            lambda: SemanticCacheLLM(router(), embed_model=HashingEmbedding()),
            r"SemanticCacheLLM.from_dict\(data, llm=\.\.\., embed_model=\.\.\.\)",
        ),
    ],
    ids=["router", "cache"],
)
def test_from_dict_without_the_llms_says_what_to_pass(build, needed) -> None:
    llm = build()
    with pytest.raises(TypeError, match=needed):
        type(llm).from_dict(llm.to_dict())


@pytest.mark.parametrize("shallow_copy", [copy.copy, lambda handler: handler.model_copy()])
def test_a_shallow_copy_of_the_handler_counts_into_the_same_figures(shallow_copy) -> None:
    handler = CostEventHandler()
    clone = shallow_copy(handler)
    with clone:
        SimulatedLLM(model_name="gpt-4o-mini").chat([ChatMessage(role="user", content="hi")])
    assert handler.summary().calls == clone.summary().calls == 1
    assert handler.total_cost == clone.total_cost > 0


def test_pickling_the_handler_refuses_clearly_as_before() -> None:
    # Its state holds locks (as its private attributes did): never a half handler.
    with pytest.raises(TypeError, match="lock"):
        pickle.dumps(CostEventHandler())


@pytest.mark.parametrize("make", [router, lambda: SemanticCacheLLM(router(), HashingEmbedding())])
def test_a_pickled_wrapper_answers_as_the_original(make) -> None:
    # As LlamaIndex pickles an LLM: what pickles is kept (the router's engine, the cache).
    original = make()
    clone = pickle.loads(pickle.dumps(original))
    assert clone.complete(QUESTION).text == original.complete(QUESTION).text


def test_two_handlers_are_not_equal_and_the_dispatcher_removes_the_right_one() -> None:
    from llama_index.core.instrumentation import get_dispatcher

    first, second = CostEventHandler(), CostEventHandler()
    assert first != second and first == first and copy.copy(first) == first
    root = get_dispatcher()
    root.add_event_handler(first)
    root.add_event_handler(second)
    try:
        root.event_handlers.remove(second)
        with first:
            SimulatedLLM(model_name="gpt-4o-mini").chat([ChatMessage(role="user", content="hi")])
        assert (first.summary().calls, second.summary().calls) == (1, 0)
    finally:
        root.event_handlers = [h for h in root.event_handlers if h is not first and h is not second]


@pytest.mark.parametrize("deep_copy", [copy.deepcopy, lambda h: h.model_copy(deep=True)])
def test_a_deep_copy_of_the_handler_refuses_clearly_as_before(deep_copy) -> None:
    with pytest.raises(TypeError, match="lock"):
        deep_copy(CostEventHandler())
