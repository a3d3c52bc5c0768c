"""DistillationEventHandler on RouterLLM: chat, stream, async, completion, cascades,
cache hits, redaction."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from llama_index.core.base.llms.types import ChatMessage, ImageBlock, MessageRole, TextBlock

from costopt_core.distillation import DistillationWriter, redact_pii
from costopt_core.strategies import RouteDecision
from llamaindex_costopt import RouterLLM, SemanticCacheLLM
from llamaindex_costopt.distillation import DistillationEventHandler, to_chat_messages
from llamaindex_costopt.simulated import HashingEmbedding, SimulatedLLM

from .fakes import NestingWrapperLLM

COMPLEX = "请分析并比较这两种架构设计的优劣"
SIMPLE = "请翻译: good morning"


def router(**kwargs: object) -> RouterLLM:
    llms = {
        "simple": SimulatedLLM(model_name="deepseek-v3"),
        "complex": SimulatedLLM(model_name="claude-3-5-sonnet"),
    }
    return RouterLLM(llms=llms, strategy="rules", **kwargs)  # type: ignore[arg-type]


def chat(text: str) -> list[ChatMessage]:
    return [
        ChatMessage(role=MessageRole.SYSTEM, content="Be brief."),
        ChatMessage(role=MessageRole.USER, content=text),
    ]


def rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "d.jsonl"


def test_chat_records_only_the_strong_tier(path: Path) -> None:
    llm = router()
    with DistillationEventHandler(path) as recorder:
        answer = llm.chat(chat(COMPLEX))
        llm.chat(chat(SIMPLE))
    assert rows(path) == [
        {
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": COMPLEX},
                {"role": "assistant", "content": answer.message.content},
            ]
        }
    ]
    assert recorder.stats["written"] == 1 and recorder.stats["other_tier"] == 1


def test_streams_record_the_whole_answer(path: Path) -> None:
    llm = router()
    with DistillationEventHandler(path):
        streamed = [c.delta for c in llm.stream_chat(chat(COMPLEX))]
        completed = [c.delta for c in llm.stream_complete(COMPLEX + "？")]
    written = rows(path)
    assert written[0]["messages"][-1]["content"] == "".join(streamed)
    assert written[1]["messages"] == [
        {"role": "user", "content": COMPLEX + "？"},
        {"role": "assistant", "content": "".join(completed)},
    ]


async def test_async_calls_record(path: Path) -> None:
    llm = router()
    with DistillationEventHandler(path) as recorder:
        await llm.achat(chat(COMPLEX))
        await llm.acomplete(COMPLEX + "!")
        async for _ in await llm.astream_chat(chat(COMPLEX + "?")):
            pass
    assert recorder.stats["written"] == 3
    assert [r["messages"][-2]["content"] for r in rows(path)] == [
        COMPLEX,
        COMPLEX + "!",
        COMPLEX + "?",
    ]


class RejectCheapAnswers:
    def route(self, text: str) -> RouteDecision:
        return RouteDecision("simple", 0.1, "cascade starts cheap")

    def accept(self, text: str, answer: str, tier: str) -> bool:
        return tier != "simple"


def test_a_cascade_records_the_accepted_answer_only(path: Path) -> None:
    llm = RouterLLM(
        llms={
            "simple": SimulatedLLM(model_name="cheap"),
            "complex": SimulatedLLM(model_name="strong"),
        },
        strategy=RejectCheapAnswers(),
    )
    with DistillationEventHandler(path, tiers=("simple", "complex")):
        answer = llm.chat(chat("anything"))
    assert [r["messages"][-1]["content"] for r in rows(path)] == [answer.message.content]
    assert answer.message.content.startswith("strong")


def test_a_nested_llm_records_its_chat_once(path: Path) -> None:
    llm = RouterLLM(
        llms={
            "simple": SimulatedLLM(model_name="cheap"),
            "complex": NestingWrapperLLM(inner=SimulatedLLM()),
        },
        strategy="rules",
    )
    with DistillationEventHandler(path) as recorder:
        llm.chat(chat(COMPLEX))
    assert recorder.stats["written"] == 1
    assert rows(path)[0]["messages"][0] == {"role": "system", "content": "Be brief."}


def test_cache_hits_are_not_recorded_and_redaction_applies(path: Path) -> None:
    llm = SemanticCacheLLM(
        router(), embed_model=HashingEmbedding(dim=64), similarity_threshold=0.99
    )
    question = COMPLEX + " 联系 ann@example.com"
    with DistillationEventHandler(path, redact=redact_pii) as recorder:
        llm.chat(chat(question))
        llm.chat(chat(question))  # served by the cache: no routed call at all
    assert recorder.stats["written"] == 1
    assert rows(path)[0]["messages"][1]["content"] == COMPLEX + " 联系 [EMAIL]"


def test_unrouted_calls_and_registration(path: Path) -> None:
    shared = DistillationWriter(path)
    recorder = DistillationEventHandler(shared)
    assert recorder.writer is shared
    recorder.register()
    recorder.register()  # once only
    try:
        SimulatedLLM().chat(chat(COMPLEX))  # not routed: ignored
        router().chat(chat(COMPLEX))
    finally:
        recorder.unregister()
    router().chat(chat(COMPLEX + "?"))  # after unregister: not seen
    assert shared.stats["written"] == 1


def test_message_conversion() -> None:
    image = ChatMessage(
        role=MessageRole.USER, blocks=[TextBlock(text="look"), ImageBlock(url="http://x/y.png")]
    )
    tool_call = ChatMessage(
        role=MessageRole.ASSISTANT, content="", additional_kwargs={"tool_calls": [{"id": "1"}]}
    )
    out = to_chat_messages([image, tool_call, ChatMessage(role="chatbot", content="hi")])
    assert out[0]["content"] is None
    assert out[1]["role"] == "assistant+tool_calls"
    assert out[2] == {"role": "assistant", "content": "hi"}
