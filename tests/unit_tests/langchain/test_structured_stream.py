"""Streaming ``RouterChatModel.with_structured_output``: what a user sees arrive, compared
with LangChain's own structured output for the same model and method."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Annotated, Any

import pytest
from langchain_core.exceptions import OutputParserException
from langchain_core.language_models import BaseChatModel
from langchain_core.language_models.chat_models import generate_from_stream
from langchain_core.messages import AIMessageChunk, BaseMessage
from langchain_core.outputs import ChatGenerationChunk, ChatResult
from langchain_core.runnables import Runnable
from pydantic import BaseModel, Field
from typing_extensions import TypedDict

from langchain_costopt import RouterChatModel
from langchain_costopt.simulated import SimulatedChatModel as Sim

QUESTION = 'Translate the weather for "Paris"'


class Weather(TypedDict):
    """Weather report."""

    city: Annotated[str, ..., "the city"]
    summary: Annotated[str, ..., "summary"]


class WeatherModel(BaseModel):
    """Weather report."""

    city: str
    summary: str


WEATHER_JSON = {
    "title": "Weather",
    "description": "Weather report.",
    "type": "object",
    "properties": {"city": {"type": "string"}, "summary": {"type": "string"}},
    "required": ["city", "summary"],
}
ANSWER = {"city": "Paris", "summary": "sunny and mild"}


class PieceModel(BaseChatModel):
    """Answers with a forced tool call when one is bound, else with ``text``, streamed a
    few characters at a time (tool-call arguments too), as providers stream them."""

    model_name: str = "piece-model"
    text: str = "Sorry, I cannot answer that."
    args: dict[str, Any] = Field(default_factory=lambda: dict(ANSWER))

    @property
    def _llm_type(self) -> str:
        return "piece-model"

    def bind_tools(self, tools: Any, **kwargs: Any) -> Runnable[Any, Any]:
        names = [tool["title"] if isinstance(tool, dict) else tool.__name__ for tool in tools]
        return self.bind(tool_names=names)

    def _generate(self, messages: list[BaseMessage], **kwargs: Any) -> ChatResult:
        return generate_from_stream(self._stream(messages, **kwargs))

    def _stream(
        self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None, **kwargs: Any
    ) -> Iterator[ChatGenerationChunk]:
        names = kwargs.get("tool_names")
        body = json.dumps(self.args) if names else self.text
        for start in range(0, len(body), 6):
            piece = body[start : start + 6]
            if names:
                first = start == 0  # later pieces carry only more arguments
                call = {
                    "name": names[0] if first else None,
                    "args": piece,
                    "id": "call-1" if first else None,
                    "index": 0,
                }
                chunk = AIMessageChunk(content="", tool_call_chunks=[call])
            else:
                chunk = AIMessageChunk(content=piece)
            yield ChatGenerationChunk(message=chunk)


def sim_router() -> RouterChatModel:
    return RouterChatModel(
        models={"cheap": Sim(model_name="gpt-4o-mini"), "strong": Sim(model_name="gpt-4o")}
    )


def router_over(model: type[PieceModel]) -> RouterChatModel:
    return RouterChatModel(models={"cheap": model(), "strong": model()})


async def collect(runnable: Runnable[Any, Any], asynchronous: bool) -> list[Any]:
    if asynchronous:
        return [part async for part in runnable.astream(QUESTION)]
    return list(runnable.stream(QUESTION))


@pytest.mark.parametrize("asynchronous", [False, True])
@pytest.mark.parametrize("schema", [Weather, WEATHER_JSON], ids=["typeddict", "json-schema"])
async def test_a_dict_answer_streams_growing_as_the_tier_models_own(
    schema: Any, asynchronous: bool
) -> None:
    own = Sim(model_name="gpt-4o-mini").with_structured_output(schema, method="json_schema")
    routed = sim_router().with_structured_output(schema, method="json_schema")
    expected = await collect(own, asynchronous)
    parts = await collect(routed, asynchronous)
    assert len(expected) > 2  # the answer arrives in pieces
    assert parts == expected
    assert parts[-1] == routed.invoke(QUESTION)


@pytest.mark.parametrize("asynchronous", [False, True])
async def test_a_dict_answer_given_as_a_tool_call_streams_its_growing_arguments(
    asynchronous: bool,
) -> None:
    # A tier without its own structured output answers json_mode as a forced tool call;
    # LangChain's own structured output streams that call's arguments as they arrive.
    own = PieceModel().with_structured_output(WEATHER_JSON)
    routed = router_over(PieceModel).with_structured_output(WEATHER_JSON, method="json_mode")
    expected = await collect(own, asynchronous)
    parts = await collect(routed, asynchronous)
    assert len(expected) > 2
    assert parts == expected
    assert parts[-1] == ANSWER


@pytest.mark.parametrize("method", ["json_schema", "json_mode"])
@pytest.mark.parametrize("asynchronous", [False, True])
async def test_a_pydantic_answer_streams_once_validated(method: str, asynchronous: bool) -> None:
    # No object is validated from half-streamed fields: the whole answer, once.
    routed = sim_router().with_structured_output(WeatherModel, method=method)
    parts = await collect(routed, asynchronous)
    assert parts == [routed.invoke(QUESTION)]
    assert isinstance(parts[0], WeatherModel)


class ProseModel(PieceModel):
    """Binds tools but never calls them: answers in prose."""

    def bind_tools(self, tools: Any, **kwargs: Any) -> Runnable[Any, Any]:
        return self.bind(ignored_tools=True)


@pytest.mark.parametrize("asynchronous", [False, True])
async def test_a_non_json_answer_fails_the_stream_as_it_fails_invoke(asynchronous: bool) -> None:
    # Nothing parses: the stream raises what invoke raises instead of ending empty.
    routed = router_over(ProseModel).with_structured_output(WEATHER_JSON, method="json_schema")
    with pytest.raises(OutputParserException):
        routed.invoke(QUESTION)
    with pytest.raises(OutputParserException):
        await collect(routed, asynchronous)


def test_include_raw_streams_the_raw_message_then_the_parsed_answer() -> None:
    routed = sim_router().with_structured_output(Weather, method="json_schema", include_raw=True)
    parts = list(routed.stream(QUESTION))
    assert [list(part) for part in parts] == [["raw"], ["parsed"], ["parsing_error"]]
    assert isinstance(parts[0]["raw"], AIMessageChunk)
    assert parts[1]["parsed"] == routed.invoke(QUESTION)["parsed"]
