"""A chat prompt is keyed exactly as LangChain's own ``loads`` reads it.

``SemanticLLMCache`` keys the ``dumps(messages)`` LangChain hands it without building
most of its messages (``langchain_costopt.prompt_key``: the fields the key reads, taken
from the JSON when the message class would keep them as written), and revives the rest
with ``langchain_costopt.revive.Revive`` (LangChain's ``Reviver`` with its class paths
resolved once, its walk done by ``json.loads``). These tests hold every shortcut to
LangChain's reading: the same key (hence the same hits), the same refusals.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from langchain_core.load import dumps, loads
from langchain_core.messages import (
    AIMessage,
    BaseMessage,
    ChatMessage,
    HumanMessage,
    HumanMessageChunk,
    SystemMessage,
    ToolMessage,
)
from langchain_core.outputs import Generation

from langchain_costopt import HashingEmbeddings, SemanticLLMCache
from langchain_costopt.cache import split_messages, split_prompt
from langchain_costopt.revive import Revive

pytestmark = pytest.mark.filterwarnings("ignore:The function `loads` is in beta")

MESSAGE_CLASSES: list[Any] = [
    AIMessage,
    ChatMessage,
    HumanMessage,
    HumanMessageChunk,
    SystemMessage,
    ToolMessage,
]

SYSTEM = SystemMessage("You are a helpful assistant. Answer briefly.")
TOOL_TURN = AIMessage(
    "",
    tool_calls=[{"name": "weather", "args": {"city": "Paris", "days": [1, 2]}, "id": "c1"}],
    usage_metadata={"input_tokens": 10, "output_tokens": 3, "total_tokens": 13},
    response_metadata={"model_name": "gpt-4o-mini", "finish_reason": "tool_calls"},
    id="run-1",
)
IMAGE = {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}

CONVERSATIONS: dict[str, list[BaseMessage]] = {
    "system and human": [SYSTEM, HumanMessage("How do I reset my password?")],
    "human only": [HumanMessage("How do I reset my password?")],
    "multi-turn": [
        SYSTEM,
        HumanMessage("Hi, I am Ana.", name="ana"),
        AIMessage("Hello Ana!", id="run-0"),
        HumanMessage("What is my name?"),
    ],
    "tool call": [
        SYSTEM,
        HumanMessage("Weather in Paris?"),
        TOOL_TURN,
        ToolMessage("sunny", tool_call_id="c1"),
    ],
    "failed tool": [
        HumanMessage("Weather?"),
        TOOL_TURN,
        ToolMessage("boom", tool_call_id="c1", status="error"),
    ],
    "multimodal": [SYSTEM, HumanMessage([{"type": "text", "text": "What is this?"}, IMAGE])],
    "chat role": [ChatMessage("Be terse.", role="critic"), HumanMessage("Rate my essay.")],
    "non-ASCII": [SystemMessage("Réponds en français."), HumanMessage("请翻译：早上好")],
    "control character": [HumanMessage("a\x01b")],  # written as \\u0001
    "human chunk": [HumanMessageChunk("a streamed question")],
    "AI turns without usage": [
        HumanMessage("hi"),
        AIMessage("hello", response_metadata={"finish_reason": "stop"}),
        HumanMessage("bye"),
        AIMessage("", tool_calls=[{"name": "f", "args": {}, "id": None}]),
    ],
    "tool calls in additional_kwargs": [
        HumanMessage("weather?"),
        AIMessage(
            "",
            additional_kwargs={
                "tool_calls": [
                    {
                        "id": "c1",
                        "type": "function",
                        "function": {"name": "weather", "arguments": '{"city": "Oslo"}'},
                    }
                ]
            },
        ),
    ],
    "legacy function call": [
        HumanMessage("weather?"),
        AIMessage("", additional_kwargs={"function_call": {"name": "weather", "arguments": "{}"}}),
    ],
    "content says lc": [HumanMessage("lc")],  # a "lc" string: the walk reads it
    "user dict with lc": [HumanMessage("q", additional_kwargs={"lc": 1, "type": "constructor"})],
    # dumps escapes a dict holding only the escape key: loads unescapes it once.
    "user dict like an escape": [HumanMessage("q", additional_kwargs={"k": {"__lc_escaped__": 1}})],
}


def reference(prompt: str) -> tuple[str, str]:
    """The key as LangChain's own loads() would have the cache compute it."""
    try:
        messages = loads(prompt, allowed_objects=MESSAGE_CLASSES)
    except Exception:
        return prompt, "text"
    if not (isinstance(messages, list) and messages):
        return prompt, "text"
    if not all(isinstance(m, BaseMessage) for m in messages):
        return prompt, "text"
    return split_messages(messages)


@pytest.mark.parametrize("name", CONVERSATIONS)
def test_a_chat_prompt_revives_and_keys_as_langchain_reads_it(name: str) -> None:
    prompt = dumps(CONVERSATIONS[name])
    revive = Revive(MESSAGE_CLASSES)
    for _ in range(2):  # the second time the class paths come from revive's table
        assert revive(prompt) == loads(prompt, allowed_objects=MESSAGE_CLASSES)
        assert split_prompt(prompt) == reference(prompt)
    # Keyed as the messages themselves are (what the streaming path keys).
    assert split_prompt(prompt) == split_messages(CONVERSATIONS[name])


HUMAN_ID = ["langchain", "schema", "messages", "HumanMessage"]


def _human(kwargs: Any) -> dict[str, Any]:
    return {"lc": 1, "type": "constructor", "id": HUMAN_ID, "kwargs": kwargs}


OS_SYSTEM = {"lc": 1, "type": "constructor", "id": ["os", "system"], "kwargs": {}}

AI_ID = ["langchain", "schema", "messages", "AIMessage"]
TOOL_ID = ["langchain", "schema", "messages", "ToolMessage"]
CHAT_ID = ["langchain", "schema", "messages", "ChatMessage"]


def _message(ident: list[str], kwargs: Any) -> dict[str, Any]:
    return {"lc": 1, "type": "constructor", "id": ident, "kwargs": kwargs}


def _after_question(message: dict[str, Any]) -> str:
    return json.dumps([_human({"content": "q"}), message])


# Messages LangChain's constructors change or refuse: read as LangChain reads them.
CRAFTED_PROMPTS = {
    "number tool id": _after_question(_message(TOOL_ID, {"content": "r", "tool_call_id": 7})),
    "no tool id": _after_question(_message(TOOL_ID, {"content": "r"})),
    "odd tool status": _after_question(
        _message(TOOL_ID, {"content": "r", "tool_call_id": "1", "status": "odd"})
    ),
    "error tool status": _after_question(
        _message(TOOL_ID, {"content": "r", "tool_call_id": "1", "status": "error"})
    ),
    "tool content blocks of numbers": _after_question(
        _message(TOOL_ID, {"content": [1, "a"], "tool_call_id": "1"})
    ),
    "chat without role": _after_question(_message(CHAT_ID, {"content": "c"})),
    "no content": json.dumps([_human({"name": "ana"})]),
    "null content": json.dumps([_human({"content": None})]),
    "number name": json.dumps([_human({"content": "q", "name": 5})]),
    "number id": json.dumps([_human({"content": "q", "id": 5})]),
    "extra field": json.dumps([_human({"content": "q", "role": "critic"})]),
    "additional_kwargs not a dict": json.dumps([_human({"content": "q", "additional_kwargs": 1})]),
    "no kwargs": json.dumps([{"lc": 1, "type": "constructor", "id": HUMAN_ID}]),
    "tool call without id": _after_question(
        _message(AI_ID, {"content": "", "tool_calls": [{"name": "f", "args": {}}]})
    ),
    "tool call with extras": _after_question(
        _message(
            AI_ID,
            {"content": "", "tool_calls": [{"name": "f", "args": {}, "id": "1", "extras": {}}]},
        )
    ),
    "tool call with an unknown key": _after_question(
        _message(
            AI_ID,
            {"content": "", "tool_calls": [{"name": "f", "args": {}, "id": "1", "foo": 1}]},
        )
    ),
    "tool calls only in additional_kwargs": _after_question(
        _message(
            AI_ID,
            {
                "content": "",
                "additional_kwargs": {
                    "tool_calls": [
                        {
                            "id": "c1",
                            "type": "function",
                            "function": {"name": "f", "arguments": "{}"},
                        }
                    ]
                },
            },
        )
    ),
    "invalid tool call with an unknown key": _after_question(
        _message(AI_ID, {"content": "", "invalid_tool_calls": [{"name": "f", "foo": 1}]})
    ),
    "list id": json.dumps([_human({"content": "q", "id": ["x"]})]),
    "tool call args not a dict": _after_question(
        _message(AI_ID, {"content": "", "tool_calls": [{"name": "f", "args": [], "id": "1"}]})
    ),
    "invalid tool calls": _after_question(
        _message(
            AI_ID,
            {
                "content": "",
                "invalid_tool_calls": [{"name": "f", "args": "{", "id": "1", "error": "bad"}],
            },
        )
    ),
    "bad usage": _after_question(
        _message(AI_ID, {"content": "a", "usage_metadata": {"input_tokens": "many"}})
    ),
    "good usage": _after_question(
        _message(
            AI_ID,
            {
                "content": "a",
                "usage_metadata": {"input_tokens": 1, "output_tokens": 2, "total_tokens": 3},
            },
        )
    ),
    "unknown class path": json.dumps([_message(["langchain", "messages", "HumanMessage"], {})]),
    "class path of a list": json.dumps([_message([["x"]], {"content": "q"})]),
}


@pytest.mark.parametrize("name", CRAFTED_PROMPTS)
def test_crafted_messages_are_keyed_as_langchain_reads_them(name: str) -> None:
    prompt = CRAFTED_PROMPTS[name]
    assert split_prompt(prompt) == reference(prompt)


def test_what_changes_the_answer_changes_the_key() -> None:
    def key(messages: list[BaseMessage]) -> str:
        return split_prompt(dumps(messages))[1]

    question = HumanMessage("Weather in Paris?")
    ok, failed = (ToolMessage("sunny", tool_call_id="c1", status=s) for s in ("success", "error"))
    assert key([question, TOOL_TURN, ok]) != key([question, TOOL_TURN, failed])
    other_args = AIMessage(
        "", tool_calls=[{"name": "weather", "args": {"city": "Rome"}, "id": "c1"}]
    )
    assert key([question, TOOL_TURN, ok]) != key([question, other_args, ok])
    assert key([SYSTEM, question]) != key([SystemMessage("Be verbose."), question])
    assert key([HumanMessage("hi", name="ana")]) != key([HumanMessage("hi", name="bob")])
    assert key([ChatMessage("c", role="critic"), question]) != key(
        [ChatMessage("c", role="editor"), question]
    )
    legacy = CONVERSATIONS["legacy function call"]
    assert key(legacy) != key([legacy[0], AIMessage("")])
    # Ids and provider metadata do not change an answer: the same key.
    assert key([question, AIMessage("a", id="run-1"), question]) == key(
        [question, AIMessage("a", id="run-2", response_metadata={"x": 1}), question]
    )


ODD_PROMPTS = {
    "not JSON": "[not json",
    "numbers": "[1, 2]",
    "empty list": "[]",
    "a message and a number": json.dumps([_human({"content": "q"}), 1]),
    "class not allowed": json.dumps(
        [{"lc": 1, "type": "constructor", "id": ["langchain", "os", "system"], "kwargs": {}}]
    ),
    "bad content": json.dumps([_human({"content": 5})]),
    "wrong type field": json.dumps([_human({"content": "q", "type": "ai"})]),
    "jinja template": json.dumps([_human({"content": "q", "template_format": "jinja2"})]),
    "secret": json.dumps([{"lc": 1, "type": "secret", "id": ["OPENAI_API_KEY"]}]),
    "escaped dict": json.dumps([_human({"content": [{"__lc_escaped__": {"lc": 1, "x": 2}}]})]),
    # A message nested in another's content: loads revives it, and a message is not
    # valid content.
    "nested message": json.dumps([_human({"content": [_human({"content": "x"})]})]),
    # The same, its "lc" key spelled with a \\u escape.
    "hidden nested message": json.dumps([_human({"content": [_human({"content": "x"})]})])
    .replace('"lc"', '"\\u006cc"')
    .replace('"\\u006cc"', '"lc"', 1),
    # An escaped dict whose marker is spelled with a \\u escape, holding an object
    # that must not revive: the walk unescapes it and leaves it a plain dict.
    "escaped refused object": json.dumps(
        [_human({"content": "q", "additional_kwargs": {"__lc_escaped__": OS_SYSTEM}})]
    ).replace("__lc_escaped__", "\\u005f_lc_escaped__"),
    "escaped plain dict": json.dumps(
        [_human({"content": "q", "additional_kwargs": {"k": {"__lc_escaped__": {"x": 1}}}})]
    ).replace("__lc_escaped__", "\\u005f_lc_escaped__"),
    "too deep": json.dumps([_human({"content": [{"a": json.loads("[" * 210 + "]" * 210)}]})]),
}


def _loads_bounds_nesting() -> bool:
    # langchain-core >= 1.7.7 refuses JSON nested past 200 levels; older ones revive it.
    try:
        loads(ODD_PROMPTS["too deep"], allowed_objects=MESSAGE_CLASSES)
    except ValueError:
        return True
    return False


@pytest.mark.parametrize("name", ODD_PROMPTS)
def test_odd_json_is_keyed_as_langchain_reads_it(name: str) -> None:
    if name == "too deep" and not _loads_bounds_nesting():
        pytest.skip("this langchain-core has no nesting bound; the cache keeps its own")
    prompt = ODD_PROMPTS[name]
    revive = Revive(MESSAGE_CLASSES)
    revive(dumps([HumanMessage("warm up the class table")]))
    assert split_prompt(prompt) == reference(prompt)
    try:
        expected: Any = loads(prompt, allowed_objects=MESSAGE_CLASSES)
    except Exception as exc:
        with pytest.raises(type(exc)):
            revive(prompt)
    else:
        assert revive(prompt) == expected


def test_the_odd_cases_exercise_what_they_claim() -> None:
    hidden = ODD_PROMPTS["hidden nested message"]
    assert hidden.count('"lc"') == 1 and "\\u006cc" in hidden
    assert split_prompt(hidden) == (hidden, "text")  # loads refuses: plain text
    escaped = ODD_PROMPTS["escaped refused object"]
    assert "__lc_escaped__" not in escaped
    text, context = split_prompt(escaped)  # loads reads messages: a chat prompt
    assert text == "q" and context.startswith("messages:")
    assert split_prompt(ODD_PROMPTS["too deep"])[1] == "text"


def test_a_cached_chat_answer_is_served_for_the_same_conversation_only() -> None:
    cache = SemanticLLMCache(HashingEmbeddings(), similarity_threshold=0.9)
    served_for: dict[tuple[str, str], str] = {}  # conversations keyed alike share an entry
    for name, messages in CONVERSATIONS.items():
        cache.update(dumps(messages), "llm", [Generation(text=name)])
        served_for[split_prompt(dumps(messages))] = name
    assert len(served_for) >= len(CONVERSATIONS) - 1  # only the two user-dict cases meet
    for name, messages in CONVERSATIONS.items():
        hit = cache.lookup(dumps(messages), "llm")
        assert hit is not None, name
        assert hit[0].text == served_for[split_prompt(dumps(messages))]
    other = [SYSTEM, HumanMessage("Where is the nearest train station?")]
    assert cache.lookup(dumps(other), "llm") is None
