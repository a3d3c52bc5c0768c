"""PromptCompressor, PromptCompressionMiddleware and ChunkDocumentCompressor: what the model
receives (system prompt, latest turn and tool pairs intact, fewer tokens), what the
caller keeps (untouched messages, the agent's whole state), and the compression line
of the cost report."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import pytest
from langchain.agents import create_agent
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.documents import Document
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import (
    AIMessage,
    BaseMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import RunnableLambda
from langchain_core.tools import tool
from pydantic import PrivateAttr

from costopt_core.metadata_keys import COMPRESSED_TOKENS_KEY
from costopt_core.pricing import set_price
from costopt_core.tokens import estimate_tokens
from langchain_costopt import CostCallbackHandler
from langchain_costopt.compression import (
    DOCUMENTS_COMPRESSED_EVENT,
    ChunkDocumentCompressor,
    PromptCompressor,
    documents_compressed_tokens,
    message_tokens,
)
from langchain_costopt.messages import message_text
from langchain_costopt.middleware.compression import PromptCompressionMiddleware

MODEL = "lc-compress-model"
INPUT_PRICE = 2e-6
set_price(MODEL, input_per_token=INPUT_PRICE, output_per_token=8e-6)

SYSTEM = SystemMessage("You are a support agent for a bicycle shop.")


@tool
def stock(item: str) -> str:
    """How many of an item are in stock."""
    return f"{item}: 3 in stock"


class RecordingModel(BaseChatModel):
    """Calls ``stock`` once per human turn, then answers; reports the prompt it received
    as its input usage (its estimated tokens) and keeps every prompt it received."""

    model_name: str = MODEL
    _prompts: list[list[BaseMessage]] = PrivateAttr(default_factory=list)

    @property
    def _llm_type(self) -> str:
        return "recording-model"

    @property
    def prompts(self) -> list[list[BaseMessage]]:
        return self._prompts

    def bind_tools(self, tools: Sequence[Any], **kwargs: Any) -> Any:
        return self.bind(tools_bound=True)

    def _generate(self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None,
                  **kwargs: Any) -> ChatResult:  # fmt: skip
        self._prompts.append(list(messages))
        calls = []
        if kwargs.get("tools_bound") and messages[-1].type == "human":
            calls = [{"name": "stock", "args": {"item": "bell"}, "id": f"c{len(self._prompts)}"}]
        tokens = sum(estimate_tokens(message_text(m)) for m in messages)
        message = AIMessage(
            content="" if calls else "We have 3 bells.",
            tool_calls=calls,
            usage_metadata={"input_tokens": tokens, "output_tokens": 5, "total_tokens": tokens + 5},
            response_metadata={"model_name": self.model_name},
        )
        return ChatResult(generations=[ChatGeneration(message=message)])


def conversation(turns: int) -> list[BaseMessage]:
    """A system prompt and ``turns`` past turns, each with a tool call and its result."""
    messages: list[BaseMessage] = [SYSTEM]
    for i in range(turns):
        messages += [
            HumanMessage(f"Turn {i}: do you   have red bells   in stock for my bike?"),
            AIMessage("", tool_calls=[{"name": "stock", "args": {"item": "bell"}, "id": f"t{i}"}]),
            ToolMessage(f"bell: {i} in stock", tool_call_id=f"t{i}"),
            AIMessage(f"Yes, we have {i} red bells in stock right now."),
        ]
    return messages


def assert_tool_pairs_whole(messages: Sequence[BaseMessage]) -> None:
    called: set[str] = set()
    for message in messages:
        if isinstance(message, AIMessage):
            called.update(call["id"] for call in message.tool_calls)
        if isinstance(message, ToolMessage):
            assert message.tool_call_id in called, "a tool result lost its tool call"


def test_history_is_trimmed_oldest_first_keeping_system_and_latest_turn() -> None:
    history = [*conversation(10), HumanMessage("And blue ones?")]
    snapshot = [m.model_copy(deep=True) for m in history]
    sent = PromptCompressor(max_tokens=120).invoke(history)
    assert sent[0] == SYSTEM and sent[-1].content == "And blue ones?"
    assert sent[1].type == "human" and len(sent) < len(history)
    assert sum(message_tokens(m) for m in sent) <= 120
    assert_tool_pairs_whole(sent)
    # The mark sits on a copy: the caller's messages are as they were.
    assert sent[-1].response_metadata[COMPRESSED_TOKENS_KEY] == (
        sum(message_tokens(m) for m in history) - sum(message_tokens(m) for m in sent)
    )
    assert history == snapshot and COMPRESSED_TOKENS_KEY not in history[-1].response_metadata


@pytest.mark.parametrize("budget", [40, 60, 90, 150, 250])
def test_tool_calls_and_results_are_never_separated(budget: int) -> None:
    sent = PromptCompressor(max_tokens=budget).invoke([*conversation(6), HumanMessage("Bye?")])
    assert_tool_pairs_whole(sent)
    assert sent[0] == SYSTEM and sent[-1].content == "Bye?"


def test_a_latest_turn_over_the_budget_is_sent_whole() -> None:
    latest = [
        HumanMessage("Check bells."),
        AIMessage("", tool_calls=[{"name": "stock", "args": {"item": "bell"}, "id": "x"}]),
        ToolMessage("bell: 3 in stock. " * 50, tool_call_id="x"),
    ]
    sent = PromptCompressor(max_tokens=30).invoke([*conversation(3), *latest])
    assert [m.content for m in sent] == [SYSTEM.content, *(m.content for m in latest[:2]),
                                         latest[2].content.strip()]  # fmt: skip


def test_nothing_to_remove_leaves_the_prompt_unmarked() -> None:
    prompt = [SYSTEM, HumanMessage("Hi")]
    sent = PromptCompressor(max_tokens=1000).invoke(prompt)
    assert sent == prompt and COMPRESSED_TOKENS_KEY not in sent[-1].response_metadata


def test_chain_sends_less_and_the_report_shows_the_compression_saving() -> None:
    history = [*conversation(12), HumanMessage("And blue ones?")]
    model = RecordingModel()
    full = CostCallbackHandler()
    model.invoke(history, config={"callbacks": [full]})
    handler = CostCallbackHandler()
    compressor = PromptCompressor(max_tokens=100)
    (compressor | model).invoke(history, config={"callbacks": [handler]})
    received = model.prompts[-1]
    removed = received[-1].response_metadata[COMPRESSED_TOKENS_KEY]
    assert len(received) < len(history)
    assert handler.total_cost < full.total_cost
    data = handler.to_dict()
    assert data["saved_compression_usd"] == pytest.approx(removed * INPUT_PRICE, rel=1e-12)
    assert data["total_saved"] == pytest.approx(data["saved_compression_usd"])
    assert "compression" in handler.report()


def test_strings_prompt_values_and_async_are_accepted() -> None:
    compressor = PromptCompressor()
    assert compressor.invoke("too   many   spaces")[0].content == "too many spaces"
    template = ChatPromptTemplate.from_messages([("system", "Be  brief."), ("human", "{q}")])
    sent = (template | compressor).invoke({"q": "hello   there"})
    assert [m.content for m in sent] == ["Be brief.", "hello there"]
    assert sent[-1].response_metadata[COMPRESSED_TOKENS_KEY] > 0
    assert asyncio.run(compressor.ainvoke("a   b"))[0].content == "a b"
    handler = CostCallbackHandler()
    chain = PromptCompressor() | RecordingModel()
    asyncio.run(chain.ainvoke("too   many   spaces", config={"callbacks": [handler]}))
    assert handler.to_dict()["saved_compression_usd"] > 0
    with pytest.raises(TypeError, match="PromptCompressor input"):
        compressor.invoke(42)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="max_tokens"):
        PromptCompressor(max_tokens=-5)


def test_two_compressors_in_a_row_add_up_their_marks() -> None:
    history = [*conversation(8), HumanMessage("And   blue   ones?")]
    first = PromptCompressor()  # squeeze only
    second = PromptCompressor(max_tokens=80)
    once = first.invoke(history)[-1].response_metadata[COMPRESSED_TOKENS_KEY]
    both = (first | second).invoke(history)
    total = sum(message_tokens(m) for m in history) - sum(message_tokens(m) for m in both)
    assert both[-1].response_metadata[COMPRESSED_TOKENS_KEY] == total > once


def _agent_run(middleware: list[Any], turns: int = 4, *, run_async: bool = False):
    model = RecordingModel()
    agent = create_agent(model, tools=[stock], system_prompt=SYSTEM.content, middleware=middleware)
    handler = CostCallbackHandler()
    state: dict[str, Any] = {"messages": []}
    for i in range(turns):
        messages = [*state["messages"], HumanMessage(f"Question {i}: any bells?  " * 5)]
        config = {"callbacks": [handler]}
        if run_async:
            state = asyncio.run(agent.ainvoke({"messages": messages}, config=config))
        else:
            state = agent.invoke({"messages": messages}, config=config)
    return model, handler, state


@pytest.mark.parametrize("run_async", [False, True])
def test_agent_middleware_trims_each_call_and_bills_it(run_async: bool) -> None:
    plain_model, plain, plain_state = _agent_run([], run_async=run_async)
    model, handler, state = _agent_run(
        [PromptCompressionMiddleware(max_tokens=120)], run_async=run_async
    )
    # The agent's state keeps the whole conversation; only what was sent is shorter.
    assert len(state["messages"]) == len(plain_state["messages"]) == 16
    last = model.prompts[-1]
    assert len(last) < len(plain_model.prompts[-1])
    assert last[0].content == SYSTEM.content and last[-1].type == "tool"
    for prompt in model.prompts:
        assert_tool_pairs_whole(prompt)
    data = handler.to_dict()
    assert data["saved_compression_usd"] > 0
    assert handler.total_cost < plain.total_cost
    assert plain.to_dict()["saved_compression_usd"] == 0


def test_middleware_rejects_a_bad_budget() -> None:
    with pytest.raises(ValueError, match="max_tokens"):
        PromptCompressionMiddleware(max_tokens=0)


class EventRecorder(BaseCallbackHandler):
    def __init__(self) -> None:
        self.events: list[tuple[str, Any]] = []

    def on_custom_event(self, name: str, data: Any, **kwargs: Any) -> None:
        self.events.append((name, data))


def test_document_compressor_dedups_cuts_and_announces_the_saving() -> None:
    fact = "Our bells are made of brass and ring for ten seconds."
    docs = [
        Document("Opening hours: 9 to 5. We also sell bells in red."),
        Document(fact, metadata={"source": "a"}),
        Document(fact + "  ", metadata={"source": "b"}),  # the same passage again
    ]
    compressor = ChunkDocumentCompressor(max_tokens=24)
    recorder = EventRecorder()
    run = RunnableLambda(lambda q: compressor.compress_documents(docs, q))
    kept = run.invoke("What are the bells made of?", config={"callbacks": [recorder]})
    # Most relevant first; of the other, its sentence about bells fits the budget.
    assert [d.page_content for d in kept] == [fact, "We also sell bells in red."]
    assert sum(estimate_tokens(d.page_content) for d in kept) <= 24
    ((name, data),) = recorder.events
    removed = sum(estimate_tokens(d.page_content) for d in docs) - sum(
        estimate_tokens(d.page_content) for d in kept
    )
    assert name == DOCUMENTS_COMPRESSED_EVENT and data == {"removed_tokens": removed}
    assert kept[0].metadata[COMPRESSED_TOKENS_KEY] == documents_compressed_tokens(kept) == removed
    # Outside any run there is nobody to tell, and that is no error.
    assert len(compressor.compress_documents(docs, "bells")) == 2


def test_prompt_compressor_keeps_code_in_a_message_as_written() -> None:
    code = "```python\nreturn 'a  b'\n```"
    out = PromptCompressor().invoke([HumanMessage(f"Why   does\n{code}\nfail?")])
    assert out[-1].content == f"Why does\n{code}\nfail?"


@pytest.mark.parametrize(
    ("argument", "value"),
    [
        ("max_tokens", "5"),
        ("max_tokens", 5.0),
        ("near_duplicate_threshold", "0.5"),
        ("squeeze", "no"),
    ],
)
def test_document_compressor_rejects_a_wrong_type_naming_the_argument(argument, value) -> None:
    with pytest.raises(ValueError, match=argument):
        ChunkDocumentCompressor(**{argument: value})
