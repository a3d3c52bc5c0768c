"""The simulated models' shared behaviour: deterministic answers and tool arguments."""

from __future__ import annotations

from costopt_core.simulation import choose_tool, fill_schema, simulated_answer


def test_answers_are_deterministic_per_model_and_question() -> None:
    a = simulated_answer("gpt-4o-mini", "What is the capital of France?")
    assert a == simulated_answer("gpt-4o-mini", "What is the capital of France?")
    assert a != simulated_answer("claude-3-5-sonnet", "What is the capital of France?")
    assert a.startswith("gpt-4o-mini on 'What is the capital of France'")
    assert len(simulated_answer("m", "q", words=5).split(": ", 1)[1].split()) == 5


def test_tool_arguments_come_from_the_question_in_order() -> None:
    schema = {
        "properties": {
            "a": {"type": "integer"},
            "b": {"type": "number"},
            "city": {"type": "string"},
            "unit": {"enum": ["celsius", "fahrenheit"]},
            "tags": {"type": "array", "items": {"type": "string"}},
        },
        "required": ["a", "b", "city", "unit", "tags"],
    }
    args = fill_schema(schema, "Weather in 'San Francisco' for 3 days at 2.5 km?")
    assert args["a"] == 3 and args["b"] == 2.5
    assert args["city"] == "San Francisco"
    assert args["unit"] == "celsius"
    assert isinstance(args["tags"], list)


def test_optional_arguments_with_defaults_are_left_to_the_tool() -> None:
    schema = {"properties": {"x": {"type": "integer"}, "y": {"type": "integer", "default": 0}},
              "required": ["x"]}  # fmt: skip
    assert fill_schema(schema, "use 7") == {"x": 7}


def test_tool_choice_follows_provider_semantics() -> None:
    names = ["get_weather", "magic_function"]
    assert choose_tool(names, "what's the weather in Paris?", None) == "get_weather"
    assert choose_tool(names, "hello there", "auto") is None
    assert choose_tool(names, "what's the weather?", "none") is None
    assert choose_tool(names, "hello", "any") == "get_weather"
    assert choose_tool(names, "hello", "magic_function") == "magic_function"
    assert choose_tool(names, "hello", {"function": {"name": "magic_function"}}) == (
        "magic_function"
    )
    assert choose_tool([], "anything", "any") is None
