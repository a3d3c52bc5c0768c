"""A streaming query engine's compression saving: LlamaIndex starts the LLM call only
when the response is read, after the query span closed; the saving is still booked on
that call, as without streaming, and never on an unrelated later one."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

import pytest
from llama_index.core import Document, PromptTemplate, Settings, VectorStoreIndex

from costopt_core.pricing import set_price
from llamaindex_costopt import CostEventHandler, RouterLLM
from llamaindex_costopt.compression import NodeCompressor
from llamaindex_costopt.simulated import HashingEmbedding, SimulatedLLM

MODEL = "li-stream-compress-model"
CHEAP = "li-stream-compress-cheap"
set_price(MODEL, input_per_token=1e-5, output_per_token=3e-5)
set_price(CHEAP, input_per_token=1e-6, output_per_token=3e-6)
QUESTION = "How tall is the Eiffel Tower?"


@pytest.fixture(scope="module")
def index():
    saved = Settings._embed_model
    Settings.embed_model = HashingEmbedding(dim=256)
    docs = [
        Document(text="Paris is the capital of France. " * 3 + f"Fact {i}: it is {i} m tall. " * 20)
        for i in range(4)
    ]
    yield VectorStoreIndex.from_documents(docs)
    Settings._embed_model = saved


def _engine(index, llm, streaming: bool):
    return index.as_query_engine(
        llm=llm,
        similarity_top_k=4,
        streaming=streaming,
        node_postprocessors=[NodeCompressor(max_tokens=60)],
    )


def _saved(index, llm, *, streaming: bool, asynchronous: bool) -> float:
    engine = _engine(index, llm, streaming)
    with CostEventHandler() as handler:
        if asynchronous:

            async def ask() -> None:
                response = await engine.aquery(QUESTION)
                if streaming:
                    [token async for token in response.async_response_gen()]

            asyncio.run(ask())
        else:
            response = engine.query(QUESTION)
            "".join(response.response_gen) if streaming else str(response)
        figures = handler.to_dict()
    assert figures["calls"] == 1
    return figures["saved_compression_usd"]


@pytest.mark.parametrize("asynchronous", [False, True], ids=["sync", "async"])
@pytest.mark.parametrize("routed", [False, True], ids=["plain", "router"])
def test_a_streamed_answer_books_the_compression_saving_as_a_whole_one(
    index, routed, asynchronous
) -> None:
    def llm():
        if not routed:
            return SimulatedLLM(model_name=MODEL)
        tiers = {"simple": CHEAP, "complex": MODEL}
        return RouterLLM(llms={tier: SimulatedLLM(model_name=m) for tier, m in tiers.items()})

    whole = _saved(index, llm(), streaming=False, asynchronous=asynchronous)
    streamed = _saved(index, llm(), streaming=True, asynchronous=asynchronous)
    assert whole > 0
    assert streamed == pytest.approx(whole)


def test_a_stream_never_read_gives_its_saving_to_no_later_call(index) -> None:
    llm = SimulatedLLM(model_name=MODEL)
    with CostEventHandler() as handler:
        _engine(index, llm, streaming=True).query(QUESTION)  # its answer is never read
        index.as_query_engine(llm=llm, similarity_top_k=4).query(QUESTION)  # no compressor
        "".join(llm.stream(PromptTemplate("an unrelated prompt")))
        figures = handler.to_dict()
    assert figures["calls"] == 2
    assert figures["saved_compression_usd"] == 0


def test_each_of_two_streamed_queries_books_its_own_saving(index) -> None:
    llm = SimulatedLLM(model_name=MODEL)
    one = _saved(index, llm, streaming=False, asynchronous=False)
    engine = _engine(index, llm, streaming=True)
    with CostEventHandler() as handler:
        for _ in range(2):
            "".join(engine.query(QUESTION).response_gen)
        figures = handler.to_dict()
    assert figures["calls"] == 2
    assert figures["saved_compression_usd"] == pytest.approx(2 * one)


def test_streamed_queries_at_once_in_threads_and_tasks_each_book_their_own(index) -> None:
    llm = SimulatedLLM(model_name=MODEL)
    one = _saved(index, llm, streaming=False, asynchronous=False)
    engine = _engine(index, llm, streaming=True)

    async def ask() -> None:
        response = await engine.aquery(QUESTION)
        [token async for token in response.async_response_gen()]

    async def gathered() -> None:
        await asyncio.gather(*(ask() for _ in range(6)))

    with CostEventHandler() as handler:
        with ThreadPoolExecutor(3) as pool:
            list(pool.map(lambda _: "".join(engine.query(QUESTION).response_gen), range(6)))
        asyncio.run(gathered())
        figures = handler.to_dict()
    assert figures["calls"] == 12
    assert figures["saved_compression_usd"] == pytest.approx(12 * one)
