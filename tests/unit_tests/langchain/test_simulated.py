"""SimulatedChatModel: deterministic, offline, and shaped like a provider's answers."""

from __future__ import annotations

import json

import pytest
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langchain_core.tools import tool
from pydantic import BaseModel

from langchain_costopt.simulated import SimulatedChatModel, SimulatedProviderError


@tool
def get_weather(location: str) -> str:
    """Weather at a location."""
    return "sunny"


@tool
def scale(value: float, factor: int) -> float:
    """Multiply a value by an integer factor."""
    return value * factor


def test_answers_are_deterministic_and_depend_on_model_and_question() -> None:
    a = SimulatedChatModel(model_name="a")
    assert a.invoke("hello").content == a.invoke("hello").content
    assert a.invoke("hello").content != a.invoke("goodbye").content
    assert a.invoke("hello").content != SimulatedChatModel(model_name="b").invoke("hello").content


def test_usage_and_model_name() -> None:
    reply = SimulatedChatModel(model_name="gpt-4o-mini").invoke("What is 2 + 2?")
    usage = reply.usage_metadata
    assert usage["input_tokens"] > 0 and usage["output_tokens"] > 0
    assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"]
    assert reply.response_metadata["model_name"] == "gpt-4o-mini"
    longer = SimulatedChatModel(model_name="gpt-4o-mini").invoke("What is 2 + 2? " * 50)
    assert longer.usage_metadata["input_tokens"] > usage["input_tokens"]


def test_stop_sequences_and_max_tokens() -> None:
    model = SimulatedChatModel(answer="one two three four five")
    assert model.invoke("x", stop=["three"]).content == "one two "
    capped = SimulatedChatModel(answer="one two three four five", max_tokens=2).invoke("x")
    assert capped.content == "one two"
    assert capped.response_metadata["finish_reason"] == "length"


def test_stream_is_word_by_word_with_usage_on_the_last_chunk_only() -> None:
    model = SimulatedChatModel(model_name="m")
    chunks = list(model.stream("tell me something"))
    assert len(chunks) > 3
    assert all(c.usage_metadata is None for c in chunks[:-1])
    assert chunks[-1].usage_metadata is not None
    assert chunks[-1].chunk_position == "last"
    full = chunks[0]
    for chunk in chunks[1:]:
        full += chunk
    assert full.content == model.invoke("tell me something").content
    assert full.response_metadata["model_name"] == "m"


def test_numbers_fill_numeric_tool_args_in_order() -> None:
    bound = SimulatedChatModel().bind_tools([scale], tool_choice="any")
    (call,) = bound.invoke("scale 2.5 by 4").tool_calls
    assert call["name"] == "scale" and call["args"] == {"value": 2.5, "factor": 4}


def test_quoted_text_then_capitalised_names_fill_string_args() -> None:
    bound = SimulatedChatModel().bind_tools([get_weather], tool_choice="any")
    assert bound.invoke("How warm is 'Lyon' today?").tool_calls[0]["args"] == {"location": "Lyon"}
    assert bound.invoke("What is the weather in San Francisco, CA?").tool_calls[0]["args"] == {
        "location": "San Francisco, CA"
    }


def test_auto_tool_choice_calls_a_tool_only_when_the_question_is_about_it() -> None:
    bound = SimulatedChatModel().bind_tools([get_weather])
    assert bound.invoke("What is the weather in Rome?").tool_calls[0]["name"] == "get_weather"
    assert bound.invoke("Tell me a joke").tool_calls == []
    none = SimulatedChatModel().bind_tools([get_weather], tool_choice="none")
    assert none.invoke("What is the weather in Rome?").tool_calls == []


def test_a_tool_result_gets_a_text_answer() -> None:
    bound = SimulatedChatModel().bind_tools([get_weather], tool_choice="any")
    call = bound.invoke("weather in Rome?")
    reply = bound.invoke(
        [
            HumanMessage("weather in Rome?"),
            call,
            ToolMessage("sunny", tool_call_id=call.tool_calls[0]["id"]),
        ]
    )
    assert isinstance(reply, AIMessage) and not reply.tool_calls
    assert "sunny" in reply.content


class City(BaseModel):
    name: str
    population: int


@pytest.mark.parametrize("method", ["function_calling", "json_schema"])
def test_structured_output(method: str) -> None:
    out = (
        SimulatedChatModel()
        .with_structured_output(City, method=method)
        .invoke("'Oslo' has 709000 people")
    )
    assert out == City(name="Oslo", population=709000)


def test_json_schema_response_format_answers_json() -> None:
    schema = City.model_json_schema()
    fmt = {"type": "json_schema", "json_schema": {"name": "City", "schema": schema}}
    reply = SimulatedChatModel().invoke("'Oslo' 709000", response_format=fmt)
    assert json.loads(reply.content) == {"name": "Oslo", "population": 709000}


def test_fail_raises_and_model_override_renames() -> None:
    with pytest.raises(SimulatedProviderError, match="outage"):
        SimulatedChatModel(model_name="x", fail=True).invoke("hi")
    reply = SimulatedChatModel(model_name="x").invoke("hi", model="y")
    assert reply.response_metadata["model_name"] == "y"


def test_a_simulated_model_pickles_and_deep_copies_like_a_real_one() -> None:
    import copy
    import pickle

    from langchain_costopt import RouterChatModel

    model = SimulatedChatModel(model_name="gpt-4o-mini", prompt_cache="automatic")
    router = RouterChatModel(models={"a": model, "b": SimulatedChatModel(model_name="gpt-4o")})
    for clone in (pickle.loads(pickle.dumps(router)), copy.deepcopy(router)):
        assert clone.invoke("hi").response_metadata["routing"]["model"] == "gpt-4o-mini"
