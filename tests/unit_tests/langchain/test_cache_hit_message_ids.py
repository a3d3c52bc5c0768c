"""A cache hit is a new message: in a LangGraph thread it is appended, never written over
the earlier message whose answer it replays (add_messages merges messages by id)."""

from __future__ import annotations

import uuid
from typing import Any

from langchain.agents import create_agent
from langchain_core.caches import InMemoryCache
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.tools import tool
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import START, MessagesState, StateGraph

from langchain_costopt import HashingEmbeddings, RouterChatModel, SemanticLLMCache
from langchain_costopt.cache_stream import cache_key
from langchain_costopt.cache_stream import stream as stream_through
from langchain_costopt.middleware import PromptCompressionMiddleware
from langchain_costopt.simulated import SimulatedChatModel

REFUNDS = "What is your refund policy?"
SHIPPING = "Thanks. And how long does shipping take?"


def semantic_cache() -> SemanticLLMCache:
    return SemanticLLMCache(HashingEmbeddings(), similarity_threshold=0.9)


def latest_turn_chatbot(model: SimulatedChatModel) -> Any:
    """A chatbot that sends the model only the latest message (a trimmed window)."""
    graph = StateGraph(MessagesState)
    graph.add_node("chat", lambda state: {"messages": [model.invoke(state["messages"][-1:])]})
    graph.add_edge(START, "chat")
    return graph.compile(checkpointer=InMemorySaver())


def ask_in_one_thread(app: Any, questions: list[str]) -> list[Any]:
    config = {"configurable": {"thread_id": "t"}}
    for question in questions:
        state = app.invoke({"messages": [HumanMessage(question)]}, config)
    return state["messages"]


def assert_every_turn_answered(messages: list[Any], questions: list[str]) -> None:
    assert [type(m) for m in messages] == [HumanMessage, AIMessage] * len(questions)
    assert [m.content for m in messages[::2]] == questions
    assert len({m.id for m in messages}) == len(messages)


def test_a_repeated_question_in_a_graph_thread_is_answered_and_the_first_answer_kept() -> None:
    model = SimulatedChatModel(model_name="gpt-4o-mini", cache=semantic_cache())
    questions = [REFUNDS, SHIPPING, REFUNDS]
    messages = ask_in_one_thread(latest_turn_chatbot(model), questions)
    assert_every_turn_answered(messages, questions)
    first, repeated = messages[1], messages[5]
    assert repeated.content == first.content
    assert repeated.response_metadata["costopt_cache"]["hit"] is True  # no model call
    assert "costopt_cache" not in first.response_metadata


def test_an_agent_whose_compressed_prompt_repeats_keeps_every_answer() -> None:
    model = SimulatedChatModel(model_name="gpt-4o-mini", cache=semantic_cache())
    # A window this small sends each turn's question alone: the third prompt is the first.
    compress = PromptCompressionMiddleware(max_tokens=12)
    agent = create_agent(model, tools=[], checkpointer=InMemorySaver(), middleware=[compress])
    questions = [REFUNDS, SHIPPING, REFUNDS]
    messages = ask_in_one_thread(agent, questions)
    assert_every_turn_answered(messages, questions)
    assert messages[5].response_metadata["costopt_cache"]["hit"] is True


def test_a_hit_served_by_invoke_does_not_carry_the_stored_answers_id() -> None:
    model = SimulatedChatModel(model_name="gpt-4o-mini", cache=semantic_cache())
    first = model.invoke(REFUNDS)
    hits = [model.invoke(REFUNDS), model.invoke(REFUNDS)]
    assert all(h.response_metadata["costopt_cache"]["hit"] for h in hits)
    assert all(h.content == first.content for h in hits)
    assert first.id is not None and all(h.id != first.id for h in hits)


def test_a_streamed_hit_carries_its_own_run_id_with_any_cache() -> None:
    for cache in (semantic_cache(), InMemoryCache()):
        model = SimulatedChatModel(model_name="gpt-4o-mini")
        live = list(stream_through(cache, model, REFUNDS))  # miss: stored when complete
        replayed = list(stream_through(cache, model, REFUNDS))
        assert "".join(c.content for c in replayed) == "".join(c.content for c in live)
        ids = {c.id for c in replayed}
        assert len(ids) == 1 and ids != {c.id for c in live}
        (replay_id,) = ids
        assert replay_id is not None and replay_id.startswith("lc_run-")


def test_a_routers_streamed_hit_is_a_new_message() -> None:
    tiers = {
        "cheap": SimulatedChatModel(model_name="gpt-4o-mini"),
        "strong": SimulatedChatModel(model_name="gpt-4o"),
    }
    router = RouterChatModel(models=tiers, strategy=lambda text: "cheap", cache=InMemoryCache())
    first = list(router.stream(REFUNDS))
    replayed = list(router.stream(REFUNDS))
    assert "".join(c.content for c in replayed) == "".join(c.content for c in first)
    assert {c.id for c in replayed}.isdisjoint({c.id for c in first})


class _ToolCaller(SimulatedChatModel):
    """Asks for the stock price when the human spoke last, else answers from the tool."""

    def bind_tools(self, tools: Any, **kwargs: Any) -> _ToolCaller:
        return self

    def _generate(self, messages: Any, stop: Any = None, run_manager: Any = None, **kw: Any) -> Any:
        if isinstance(messages[-1], HumanMessage):
            call = {"name": "stock", "args": {"sym": "ACME"}, "id": f"call_{uuid.uuid4().hex[:8]}"}
            message = AIMessage("", tool_calls=[call])
        else:
            message = AIMessage(f"final: {messages[-1].content}")
        return ChatResult(generations=[ChatGeneration(message=message)])


@tool
def stock(sym: str) -> str:
    """The price of a stock."""
    return f"{sym} 101"


def test_a_replayed_tool_call_gets_a_fresh_id_so_a_thread_never_holds_one_twice() -> None:
    model = _ToolCaller(model_name="gpt-4o-mini", cache=semantic_cache())
    compress = PromptCompressionMiddleware(max_tokens=12)
    agent = create_agent(model, tools=[stock], checkpointer=InMemorySaver(), middleware=[compress])
    questions = [
        "What's the price of ACME?",
        "thanks, and the weather?",
        "What's the price of ACME?",
    ]
    messages = ask_in_one_thread(agent, questions)
    calls = [c["id"] for m in messages if isinstance(m, AIMessage) for c in m.tool_calls]
    answered = [m.tool_call_id for m in messages if isinstance(m, ToolMessage)]
    hits = [m for m in messages if m.response_metadata.get("costopt_cache", {}).get("hit")]
    assert hits and any(m.tool_calls for m in hits)  # the repeated turn's call was a hit
    assert len(calls) == len(set(calls)) == 3 and answered == calls
    assert all(c.startswith("call_") for c in calls)


def test_a_streamed_hit_of_a_tool_call_carries_a_fresh_tool_call_id() -> None:
    model = _ToolCaller(model_name="gpt-4o-mini")
    cache = InMemoryCache()
    stored = AIMessage("", tool_calls=[{"name": "stock", "args": {}, "id": "call_stored"}])
    cache.update(*cache_key(model, [HumanMessage(REFUNDS)], None), [ChatGeneration(message=stored)])
    replays = [list(stream_through(cache, model, REFUNDS)) for _ in range(2)]
    ids = [[c["id"] for c in sum(chunks[1:], chunks[0]).tool_calls] for chunks in replays]
    assert all(len(i) == 1 and i[0].startswith("call_") for i in ids)
    assert len({"call_stored", ids[0][0], ids[1][0]}) == 3


def test_a_responses_api_function_call_block_gets_the_calls_new_id() -> None:
    # OpenAI's Responses API output: the block names its call by call_id (and its stored
    # output item by id). With the old call_id the next turn sent an unanswered call.
    from langchain_costopt.served_answer import as_new_answer

    block = {"type": "function_call", "id": "fc_1", "call_id": "call_abc", "name": "w"}
    stored = AIMessage([block], tool_calls=[{"name": "w", "args": {}, "id": "call_abc"}])
    served = as_new_answer(stored)
    (call,) = served.tool_calls
    (served_block,) = served.content
    assert isinstance(served_block, dict) and served_block["call_id"] == call["id"] != "call_abc"
    assert "id" not in served_block


def test_a_streamed_hit_replays_each_tool_call_once() -> None:
    model = _ToolCaller(model_name="gpt-4o-mini")
    cache = InMemoryCache()
    calls = [{"name": "stock", "args": {"sym": s}, "id": f"call_{s}"} for s in ("ACME", "FOO")]
    raw = [
        {"id": c["id"], "type": "function", "function": {"name": "stock", "arguments": "{}"}}
        for c in calls
    ]
    stored = AIMessage("", tool_calls=calls, additional_kwargs={"tool_calls": raw})
    cache.update(*cache_key(model, [HumanMessage(REFUNDS)], None), [ChatGeneration(message=stored)])
    chunks = list(stream_through(cache, model, REFUNDS))
    assert len(sum(chunks[1:], chunks[0]).tool_calls) == 2
