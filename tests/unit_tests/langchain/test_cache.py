"""SemanticLLMCache, the LangChain face of the semantic cache."""

from __future__ import annotations

import asyncio
import contextvars
import json
import threading
import time

import pytest
from langchain_core.embeddings import Embeddings
from langchain_core.language_models.fake import FakeListLLM
from langchain_core.load import dumps
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage
from langchain_core.outputs import ChatGeneration, Generation
from langchain_tests.integration_tests.cache import AsyncCacheTestSuite, SyncCacheTestSuite

from costopt_core.stores.memory import MemoryStore
from costopt_core.stores.sqlite import SQLiteStore
from langchain_costopt import HashingEmbeddings, SemanticLLMCache, cache_namespace
from langchain_costopt.cache import current_namespace, split_prompt
from langchain_costopt.simulated import SimulatedChatModel

Q = "How do I reset my account password?"
REWORDED = "How can I reset my account password?"


def make_cache(**kw) -> SemanticLLMCache:
    kw.setdefault("similarity_threshold", 0.85)
    return SemanticLLMCache(HashingEmbeddings(), **kw)


def model(cache: SemanticLLMCache, name: str = "gpt-4o-mini", **kw) -> SimulatedChatModel:
    return SimulatedChatModel(model_name=name, cache=cache, **kw)


def marker(message: AIMessage) -> dict | None:
    return message.response_metadata.get("costopt_cache")


# -- LangChain's standard cache suites ------------------------------------------------


class TestSemanticLLMCacheStandard(SyncCacheTestSuite):
    @pytest.fixture
    def cache(self) -> SemanticLLMCache:
        return SemanticLLMCache(HashingEmbeddings())


class TestSemanticLLMCacheSQLiteStandard(SyncCacheTestSuite):
    @pytest.fixture
    def cache(self, tmp_path) -> SemanticLLMCache:
        return SemanticLLMCache(HashingEmbeddings(), store=SQLiteStore(tmp_path / "c.db"))


class TestSemanticLLMCacheAsyncStandard(AsyncCacheTestSuite):
    @pytest.fixture
    async def cache(self) -> SemanticLLMCache:
        return SemanticLLMCache(HashingEmbeddings())


class TestSemanticLLMCacheSQLiteAsyncStandard(AsyncCacheTestSuite):
    @pytest.fixture
    async def cache(self, tmp_path) -> SemanticLLMCache:
        return SemanticLLMCache(HashingEmbeddings(), store=SQLiteStore(tmp_path / "c.db"))


# -- matching -------------------------------------------------------------------------


def test_repeated_and_reworded_questions_are_served_from_cache():
    cache = make_cache()
    chat = model(cache)
    first = chat.invoke(Q)
    assert marker(first) is None
    again = chat.invoke(Q)
    reworded = chat.invoke(REWORDED)
    assert again.content == reworded.content == first.content
    assert marker(again)["exact"] is True and marker(again)["similarity"] == 1.0
    assert marker(reworded)["exact"] is False and 0.85 <= marker(reworded)["similarity"] < 1
    stats = cache.stats
    assert (stats["hits"], stats["misses"]) == (2, 1)
    assert stats["saved_usd"] > 0 and stats["tokens_saved"] > 0
    assert marker(reworded)["saved_usd"] == pytest.approx(stats["saved_usd"] / 2)


def _conversation(system: str = "Be brief.", earlier: str = "Hi, I am Ann.") -> list:
    return [
        SystemMessage(system),
        HumanMessage(earlier),
        AIMessage("Hello Ann!"),
        HumanMessage(Q),
    ]


def get_weather(city: str) -> str:
    """Weather in a city."""
    return "sunny"


def get_time(city: str) -> str:
    """Local time in a city."""
    return "noon"


@pytest.mark.parametrize(
    "variant",
    ["system prompt", "model", "earlier turn", "tenant", "namespace", "tools", "temperature"],
)
def test_a_hit_never_crosses_what_changes_the_answer(variant):
    cache = make_cache()
    chat = model(cache).bind_tools([get_weather])
    chat.invoke(_conversation())
    assert marker(chat.invoke(_conversation())) is not None  # the baseline does hit

    other_cache = make_cache(store=cache.store, namespace="acme")
    cases = {
        "system prompt": lambda: chat.invoke(_conversation(system="Answer in French.")),
        "model": lambda: (
            model(cache, "claude-3-5-sonnet").bind_tools([get_weather]).invoke(_conversation())
        ),
        "earlier turn": lambda: chat.invoke(_conversation(earlier="Hi, I am Bob.")),
        "namespace": lambda: model(other_cache).bind_tools([get_weather]).invoke(_conversation()),
        "tools": lambda: model(cache).bind_tools([get_time]).invoke(_conversation()),
        "temperature": lambda: (
            model(cache, temperature=0.7).bind_tools([get_weather]).invoke(_conversation())
        ),
    }
    if variant == "tenant":
        with cache_namespace("tenant-b"):
            reply = chat.invoke(_conversation())
    else:
        reply = cases[variant]()
    assert marker(reply) is None


def test_message_ids_and_earlier_metadata_do_not_split_the_cache():
    cache = make_cache()
    chat = model(cache)
    history = _conversation()
    chat.invoke(history)
    history_with_ids = [
        SystemMessage("Be brief.", id="s1"),
        HumanMessage("Hi, I am Ann.", id="h1"),
        AIMessage("Hello Ann!", id="run-123", response_metadata={"model_name": "x"}),
        HumanMessage(REWORDED, id="h2"),
    ]
    assert marker(chat.invoke(history_with_ids)) is not None


def test_only_the_latest_human_turn_is_embedded():
    text, context = split_prompt(dumps(_conversation()))
    assert text == Q
    assert "Be brief." in context and "Hi, I am Ann." in context and Q not in context
    image = {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}
    with_image = [HumanMessage(content=[{"type": "text", "text": Q}, image])]
    text, context = split_prompt(dumps(with_image))
    assert text == Q and "cat.png" in context  # an image changes the answer: exact key
    assert split_prompt("[not json") == ("[not json", "text")
    assert split_prompt("[1, 2]") == ("[1, 2]", "text")


def test_plain_llm_prompts_are_embedded_as_they_are():
    cache = make_cache()
    llm = FakeListLLM(responses=["first answer", "second answer"], cache=cache)
    assert llm.invoke(Q) == "first answer"
    assert llm.invoke(REWORDED) == "first answer"  # from cache, the model is not called
    assert llm.invoke("Something entirely different") == "second answer"
    assert cache.stats["hits"] == 1


# -- what a hit returns ----------------------------------------------------------------


def test_hit_returns_the_stored_generations_marked_for_cost_handlers():
    cache = make_cache()
    stored = [
        ChatGeneration(
            message=AIMessage(
                content="Use the reset link.",
                tool_calls=[{"name": "get_weather", "args": {"city": "Paris"}, "id": "c1"}],
                usage_metadata={"input_tokens": 120, "output_tokens": 30, "total_tokens": 150},
                response_metadata={"model_name": "gpt-4o-mini", "finish_reason": "stop"},
            ),
            generation_info={"finish_reason": "stop"},
        )
    ]
    prompt, llm_string = dumps([HumanMessage(Q)]), "llm-config"
    cache.update(prompt, llm_string, stored)
    (got,) = cache.lookup(prompt, llm_string)
    mark = got.generation_info.pop("costopt_cache")
    assert got.message.response_metadata.pop("costopt_cache") == mark
    (call,) = got.message.tool_calls  # a served answer is a new message: a fresh call id
    assert call["id"] != "c1"
    call["id"] = "c1"
    assert got == stored[0]  # everything else is exactly what was stored
    assert mark["hit"] and mark["model"] == "gpt-4o-mini"
    assert (mark["input_tokens"], mark["output_tokens"], mark["tokens_saved"]) == (120, 30, 150)
    assert mark["saved_usd"] > 0


def test_generations_are_stored_as_json_never_pickle():
    store = MemoryStore()
    cache = make_cache(store=store)
    cache.update("a prompt", "llm", [Generation(text="answer", generation_info={"a": 1})])
    (entry_id,) = store._entries
    payload = json.loads(store._entries[entry_id].response)
    assert payload[0]["lc"] == 1 and payload[0]["kwargs"]["text"] == "answer"


def test_cost_handler_books_a_hit_as_saving_not_spend():
    from langchain_costopt import CostCallbackHandler

    cache = make_cache()
    chat = model(cache)
    chat.invoke(Q)
    handler = CostCallbackHandler()
    reply = chat.invoke(REWORDED, config={"callbacks": [handler]})
    assert reply.usage_metadata["output_tokens"] > 0  # usage kept for the saving
    assert handler.total_cost == 0
    assert handler.total_saved == pytest.approx(cache.stats["saved_usd"])


# -- tenants ---------------------------------------------------------------------------


def test_cache_namespace_scopes_and_nests():
    assert current_namespace() is None
    with cache_namespace("a") as tenant:
        assert tenant == "a" and current_namespace() == "a"
        with cache_namespace("b"):
            assert current_namespace() == "b"
        assert current_namespace() == "a"
    assert current_namespace() is None
    with pytest.raises(ValueError, match="tenant"), cache_namespace(""):
        pass


def test_tenants_in_concurrent_threads_stay_apart():
    cache = make_cache()
    chat = model(cache)
    with cache_namespace("alpha"):
        chat.invoke(Q)
    results: dict[str, dict | None] = {}
    barrier = threading.Barrier(4)

    def ask(tenant: str) -> None:
        with cache_namespace(tenant):
            barrier.wait()
            results[tenant] = marker(chat.invoke(Q))

    threads = [
        threading.Thread(target=contextvars.copy_context().run, args=(ask, t))
        for t in ("alpha", "beta", "gamma", "delta")
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results["alpha"] is not None
    assert [results[t] for t in ("beta", "gamma", "delta")] == [None, None, None]


async def test_tenants_in_concurrent_tasks_stay_apart():
    cache = make_cache()
    chat = model(cache)
    with cache_namespace("alpha"):
        await chat.ainvoke(Q)

    async def ask(tenant: str) -> dict | None:
        with cache_namespace(tenant):
            await asyncio.sleep(0)
            return marker(await chat.ainvoke(Q))

    hits = await asyncio.gather(ask("alpha"), ask("beta"), ask("alpha"), ask("gamma"))
    assert [h is not None for h in hits] == [True, False, True, False]


# -- async, persistence, faults, arguments -----------------------------------------------


class AsyncOnlyEmbeddings(Embeddings):
    """Sync methods fail: proves the async path never calls them."""

    def __init__(self) -> None:
        self.inner = HashingEmbeddings()

    def embed_query(self, text: str) -> list[float]:
        raise AssertionError("sync embedding called from the async path")

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        raise AssertionError("sync embedding called from the async path")

    async def aembed_query(self, text: str) -> list[float]:
        return self.inner.embed_query(text)


async def test_async_calls_use_async_embeddings():
    cache = SemanticLLMCache(AsyncOnlyEmbeddings(), similarity_threshold=0.85)
    chat = model(cache)
    first = await chat.ainvoke(Q)
    second = await chat.ainvoke(REWORDED)
    assert second.content == first.content and marker(second) is not None
    assert cache.stats["errors"] == 0
    await cache.aclear()
    assert await cache.alookup(dumps([HumanMessage(Q)]), "x") is None


def test_sqlite_store_keeps_answers_across_restart(tmp_path):
    path = tmp_path / "cache.db"
    first_cache = make_cache(store=SQLiteStore(path))
    answer = model(first_cache).invoke(Q).content
    first_cache.store.close()
    restarted = make_cache(store=SQLiteStore(path))
    reply = model(restarted).invoke(REWORDED)
    assert reply.content == answer and marker(reply) is not None


class BrokenEmbeddings(Embeddings):
    def embed_query(self, text: str) -> list[float]:
        raise ConnectionError("embedding API unreachable")

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        raise ConnectionError("embedding API unreachable")


class WrongSizeEmbeddings(HashingEmbeddings):
    def embed_query(self, text: str) -> list[float]:
        return super().embed_query(text)[: 1 + len(text) % 3]  # varying, wrong sizes


def test_failing_embeddings_never_break_the_call(caplog):
    cache = SemanticLLMCache(BrokenEmbeddings())
    chat = model(cache)
    assert chat.invoke(Q).content and chat.invoke(Q).content
    assert cache.stats["errors"] == 4 and cache.stats["hits"] == 0
    assert "embedding API unreachable" in caplog.text


async def test_failing_store_never_breaks_the_async_call():
    class BrokenStore(MemoryStore):
        def search(self, *a, **kw):
            raise OSError("store offline")

        def upsert(self, entry):
            raise OSError("store offline")

    cache = make_cache(store=BrokenStore())
    assert (await model(cache).ainvoke(Q)).content
    assert cache.stats["errors"] == 2


def test_wrong_size_vectors_are_rejected_and_not_stored(caplog):
    store = MemoryStore(dim=512)
    cache = SemanticLLMCache(WrongSizeEmbeddings(), store=store)
    assert model(cache).invoke(Q).content
    assert store.count() == 0 and cache.stats["rejected_vectors"] == 2
    assert "dimensions" in caplog.text


def test_corrupt_stored_answer_is_a_miss():
    store = MemoryStore()
    cache = make_cache(store=store)
    prompt = dumps([HumanMessage(Q)])
    cache.update(prompt, "llm", [Generation(text="fine")])
    for entry in store._entries.values():
        entry.response = '[{"lc": 1, "type": "constructor", "id": ["os", "system"]}]'
    assert cache.lookup(prompt, "llm") is None
    stats = cache.stats
    assert (stats["hits"], stats["misses"], stats["errors"]) == (0, 1, 1)
    assert stats["tokens_saved"] == 0 and stats["unpriced_hits"] == 0
    cache.update("empty answer", "llm", [])  # never stored: a hit must replay something
    assert store.count() == 1


def test_ttl_and_max_entries_apply_through_the_face():
    now = [0.0]
    cache = make_cache(ttl_seconds=10, max_entries=1, clock=lambda: now[0])
    cache.update("q one", "llm", [Generation(text="1")])
    cache.update("q two", "llm", [Generation(text="2")])
    assert cache.lookup("q one", "llm") is None  # evicted by max_entries=1
    assert cache.lookup("q two", "llm") == [Generation(text="2")]
    now[0] = 11.0
    assert cache.lookup("q two", "llm") is None  # expired


def test_constructor_validates_arguments():
    with pytest.raises(ValueError, match="similarity_threshold"):
        SemanticLLMCache(HashingEmbeddings(), similarity_threshold=1.5)
    with pytest.raises(TypeError, match="Embeddings"):
        SemanticLLMCache(lambda text: [1.0])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="namespace"):
        SemanticLLMCache(HashingEmbeddings(), namespace="")
    with pytest.raises(ValueError, match="max_entries"):
        SemanticLLMCache(HashingEmbeddings(), max_entries=-1)


def test_a_hit_prices_the_provider_usage_the_cost_handler_would_read():
    # Usage is parsed by the engine's usage_from_mapping, as the cost handler does: an
    # OpenAI token_usage with cached prompt tokens keeps them for the saving.
    cache = make_cache()
    prompt, llm_string = dumps([HumanMessage(Q)]), "[('model_name', 'gpt-4o-mini')]"
    usage = {"prompt_tokens": 100, "completion_tokens": 20}
    usage["prompt_tokens_details"] = {"cached_tokens": 60}  # type: ignore[assignment]
    info = {"token_usage": usage, "model_name": "gpt-4o-mini"}
    cache.update(prompt, llm_string, [ChatGeneration(message=AIMessage("x"), generation_info=info)])
    (hit,) = cache.lookup(prompt, llm_string)
    mark = hit.generation_info["costopt_cache"]
    assert (mark["model"], mark["input_tokens"], mark["output_tokens"]) == ("gpt-4o-mini", 100, 20)
    from costopt_core.pricing import get_price

    assert mark["saved_usd"] == pytest.approx(get_price("gpt-4o-mini").cost(100, 20, 60))


def test_without_reported_usage_the_saving_is_estimated_from_the_text():
    cache = make_cache()
    llm_string = "[('model', 'gpt-4o-mini')]"
    cache.update("a plain prompt", llm_string, [Generation(text="an answer")])
    assert cache.lookup("a plain prompt", llm_string) == [Generation(text="an answer")]
    stats = cache.stats
    assert stats["input_tokens_saved"] > 0 and stats["output_tokens_saved"] > 0
    assert stats["saved_usd"] > 0 and stats["unpriced_hits"] == 0


class HangingEmbeddings(HashingEmbeddings):
    """An embedding service that stops answering."""

    def embed_query(self, text: str) -> list[float]:
        time.sleep(2.0)
        return super().embed_query(text)

    async def aembed_query(self, text: str) -> list[float]:
        await asyncio.sleep(2.0)
        return super().embed_query(text)


async def test_a_hanging_embedding_model_is_given_up_on_and_the_model_answers(caplog) -> None:
    cache = SemanticLLMCache(HangingEmbeddings(dim=64), embedding_timeout_s=0.1)
    model = SimulatedChatModel(model_name="gpt-4o-mini", cache=cache)
    started = time.perf_counter()
    with caplog.at_level("WARNING"):
        reply = model.invoke("What is the capital of France?")
        areply = await model.ainvoke("What is the capital of Italy?")
    # Lookup and update each waited 0.1 s at most, not the model's 2 s.
    assert time.perf_counter() - started < 1.5
    assert reply.content and areply.content
    assert cache.stats["errors"] >= 2 and "embedding_timeout_s" in caplog.text


@pytest.mark.filterwarnings("ignore:The function `loads` is in beta")
def test_revive_reads_back_what_loads_reads_and_refuses_what_it_refuses():
    from langchain_core.load import loads
    from langchain_core.messages import ToolMessage

    from langchain_costopt.revive import Revive

    classes = [AIMessage, HumanMessage, ToolMessage, ChatGeneration]
    revive = Revive(classes)
    value = [
        ChatGeneration(
            message=AIMessage(
                "hi",
                tool_calls=[{"name": "f", "args": {"lc": 1, "n": [1, {"x": None}]}, "id": "1"}],
                response_metadata={"lc": 1, "type": "constructor", "id": ["os", "system"]},
            ),
            generation_info={"nested": [[1, 2], {"a": "b"}]},
        ),
        HumanMessage("q", additional_kwargs={"lc": 1}),
        ToolMessage("r", tool_call_id="1", status="error"),
    ]
    text = dumps(value)
    assert revive(text) == loads(text, allowed_objects=classes) == value
    with pytest.raises(ValueError, match="not allowed"):
        revive(dumps([SystemMessage("not in the list")]))


def test_an_unknown_cache_argument_is_refused_naming_the_class_called() -> None:
    with pytest.raises(TypeError, match=r"SemanticLLMCache got unexpected arguments \['foo'\]"):
        SemanticLLMCache(HashingEmbeddings(), foo=1)
    SemanticLLMCache(HashingEmbeddings(), verifier_timeout=2.0)  # an engine option: passed on


def test_which_call_a_tool_result_answers_is_part_of_the_key():
    # Results listed in another order than the calls: the same texts in the same order,
    # answering the other calls, are another question (ids differ from run to run and
    # are not keyed: a result is keyed by the place of the call it answers).
    from langchain_core.messages import ToolMessage

    def history(answered: tuple[str, str], ids: tuple[str, str] = ("c1", "c2")) -> str:
        calls = [
            {"name": "price", "args": {"sym": "ACME"}, "id": ids[0]},
            {"name": "price", "args": {"sym": "FOO"}, "id": ids[1]},
        ]
        place = dict(zip(("c1", "c2"), ids, strict=True))
        return dumps(
            [
                HumanMessage("Which is dearer, ACME or FOO?"),
                AIMessage("", tool_calls=calls),
                ToolMessage("7", tool_call_id=place[answered[0]]),
                ToolMessage("5", tool_call_id=place[answered[1]]),
            ]
        )

    asked = split_prompt(history(("c2", "c1")))  # FOO is 7, ACME is 5
    assert split_prompt(history(("c2", "c1"), ids=("x9", "y8"))) == asked  # new ids
    assert split_prompt(history(("c1", "c2"))) != asked  # ACME is 7, FOO is 5


def test_results_of_an_earlier_ai_messages_calls_are_keyed_by_their_call():
    from langchain_core.messages import ToolMessage

    def history(paris: str, rome: str) -> str:
        first = [
            {"name": "w", "args": {"c": "Paris"}, "id": "p"},
            {"name": "w", "args": {"c": "Rome"}, "id": "r"},
        ]
        return dumps(
            [
                HumanMessage("Weather in Paris, Rome and Oslo?"),
                AIMessage("", tool_calls=first),
                AIMessage("", tool_calls=[{"name": "w", "args": {"c": "Oslo"}, "id": "o"}]),
                ToolMessage("sunny", tool_call_id="p" if paris == "sunny" else "r"),
                ToolMessage("rain", tool_call_id="r" if paris == "sunny" else "p"),
                ToolMessage("snow", tool_call_id="o"),
            ]
        )

    assert split_prompt(history("sunny", "rain")) != split_prompt(history("rain", "sunny"))
