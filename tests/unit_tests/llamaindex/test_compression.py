"""NodeCompressor: fewer, deduplicated nodes within a token budget, and the removed tokens
priced by CostEventHandler on the LLM call of the same query, as the compression line."""

from __future__ import annotations

import pytest
from llama_index.core import Document, Settings, VectorStoreIndex
from llama_index.core.base.llms.types import ChatMessage, MessageRole
from llama_index.core.schema import NodeWithScore, QueryBundle, TextNode

from costopt_core.pricing import set_price
from costopt_core.tokens import estimate_tokens
from llamaindex_costopt import CostEventHandler, SemanticCacheLLM
from llamaindex_costopt.compression import NodeCompressor
from llamaindex_costopt.simulated import HashingEmbedding, SimulatedLLM
from tests.unit_tests.llamaindex.fakes import recording

MODEL = "li-compress-model"
set_price(MODEL, input_per_token=1e-5, output_per_token=3e-5)

FACT = "The office opens at 9am and closes at 5pm on weekdays."
FOOTER = "Copyright 2024 Example Corp, all rights reserved worldwide."
FILLER = [
    f"Section {i}: the cafeteria menu lists soup, salad and bread for lunch on day {i}."
    for i in range(8)
]


def nodes(*texts: str) -> list[NodeWithScore]:
    return [
        NodeWithScore(node=TextNode(text=t, id_=f"n{i}"), score=1.0) for i, t in enumerate(texts)
    ]


def user(text: str) -> list[ChatMessage]:
    return [ChatMessage(role=MessageRole.USER, content=text)]


def test_duplicates_and_boilerplate_go_and_the_relevant_node_comes_first() -> None:
    given = nodes(
        f"{FILLER[0]}\n{FOOTER}",
        f"{FACT}\n{FOOTER}",
        f"{FACT}  \n{FOOTER}",  # the same page again, spaced differently
    )
    kept = NodeCompressor().postprocess_nodes(given, query_str="When does the office open?")
    texts = [n.node.get_content() for n in kept]
    assert texts == [f"{FACT}\n{FOOTER}", FILLER[0]]  # footer once, duplicate gone
    assert [n.node.node_id for n in kept] == ["n1", "n0"]
    assert given[0].node.get_content() == f"{FILLER[0]}\n{FOOTER}"  # the index's node untouched


def test_budget_keeps_the_most_relevant_within_max_tokens() -> None:
    compressor = NodeCompressor(max_tokens=40)
    kept = compressor.postprocess_nodes(
        nodes(*FILLER[:4], FACT, *FILLER[4:]), QueryBundle("When does the office open?")
    )
    texts = [n.node.get_content() for n in kept]
    assert texts[0] == FACT
    assert sum(estimate_tokens(t) for t in texts) <= 40
    assert len(kept) < 9


def test_bad_budget_is_refused() -> None:
    with pytest.raises(ValueError, match="max_tokens"):
        NodeCompressor(max_tokens=0)


@pytest.fixture
def settings():
    saved = (Settings._llm, Settings._embed_model)
    Settings.embed_model = HashingEmbedding(dim=256)
    yield Settings
    Settings._llm, Settings._embed_model = saved


def _index() -> VectorStoreIndex:
    pages = [Document(text=f"{FACT}\n{FOOTER}"), Document(text=f"{FACT} \n{FOOTER}")]
    return VectorStoreIndex.from_documents(pages + [Document(text=t) for t in FILLER])


def test_query_engine_bills_the_removed_tokens_on_its_llm_call(settings) -> None:
    settings.llm = SimulatedLLM(model_name=MODEL)
    index = _index()
    question = "When does the office open?"
    with CostEventHandler() as plain:
        index.as_query_engine(similarity_top_k=10).query(question)
    with CostEventHandler() as handler, recording() as events:
        engine = index.as_query_engine(
            similarity_top_k=10, node_postprocessors=[NodeCompressor(max_tokens=30)]
        )
        response = engine.query(question)
    (event,) = events.of("PromptCompressedEvent")
    assert FACT in response.source_nodes[0].node.get_content()
    full, compressed = plain.to_dict(), handler.to_dict()
    removed_input = (
        full["models"][MODEL]["input_tokens"] - compressed["models"][MODEL]["input_tokens"]
    )
    assert removed_input > 0 and event.removed_tokens > 0
    # Priced at the answering model's input price, on its own line, once.
    assert compressed["saved_compression_usd"] == pytest.approx(event.removed_tokens * 1e-5)
    assert compressed["calls"] == 1
    assert "compression" in handler.report()


def test_outside_a_query_the_next_call_takes_the_tokens_once_and_a_cache_hit_none() -> None:
    llm = SimulatedLLM(model_name=MODEL)
    cached = SemanticCacheLLM(llm, embed_model=HashingEmbedding(dim=256))
    compressor = NodeCompressor(max_tokens=30)
    question = "When does the office open?"
    given = nodes(f"{FACT}\n{FOOTER}", f"{FACT} \n{FOOTER}", *FILLER)
    with CostEventHandler() as handler, recording() as events:
        cached.chat(user(question))  # fills the cache
        compressor.postprocess_nodes(given, query_str=question)
        llm.chat(user("the prompt built from the kept nodes"))  # takes the removed tokens
        llm.chat(user("a later, unrelated call"))  # takes nothing
        first = handler.to_dict()["saved_compression_usd"]
        compressor.postprocess_nodes(given, query_str=question)
        cached.chat(user(question))  # a cache hit: it saved the whole call already
        llm.chat(user("another unrelated call"))
        after = handler.to_dict()
    removed = events.of("PromptCompressedEvent")[0].removed_tokens
    assert first == pytest.approx(removed * 1e-5)
    assert after["saved_compression_usd"] == pytest.approx(first)
    assert after["saved_cache_usd"] > 0


@pytest.mark.parametrize(
    ("argument", "value"),
    [
        ("max_tokens", "5"),
        ("max_tokens", 5.0),
        ("max_tokens", True),
        ("near_duplicate_threshold", "0.5"),
        ("squeeze", "yes"),
        ("model", 4),
    ],
)
def test_node_compressor_rejects_a_wrong_type_naming_the_argument(argument, value) -> None:
    with pytest.raises(ValueError, match=argument):
        NodeCompressor(**{argument: value})


def test_a_misspelt_compressor_argument_is_refused_not_left_at_its_default() -> None:
    # max_token=5 left the compressor with no budget at all.
    with pytest.raises(TypeError, match=r"unexpected arguments \['max_token'\]"):
        NodeCompressor(max_token=5)
    assert NodeCompressor(max_tokens=5).max_tokens == 5
