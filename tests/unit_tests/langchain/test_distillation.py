"""DistillationRecorder on RouterChatModel: invoke, stream, batch, cache hits, tools."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from langchain_core.globals import set_llm_cache
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.tools import tool

from costopt_core.distillation import DistillationWriter, redact_pii
from langchain_costopt import HashingEmbeddings, RouterChatModel, SemanticLLMCache
from langchain_costopt.distillation import DistillationRecorder, to_chat_messages
from langchain_costopt.simulated import SimulatedChatModel

COMPLEX = "请分析并比较这两种架构设计的优劣"
SIMPLE = "请翻译: good morning"


def router(**kwargs: object) -> RouterChatModel:
    return RouterChatModel(
        models={
            "simple": SimulatedChatModel(model_name="deepseek-v3"),
            "complex": SimulatedChatModel(model_name="claude-3-5-sonnet"),
        },
        strategy="rules",
        **kwargs,  # type: ignore[arg-type]
    )


def rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_invoke_records_only_the_strong_tier_with_the_system_prompt(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    recorder = DistillationRecorder(path)
    prompt = ChatPromptTemplate.from_messages([("system", "Be brief."), ("human", "{q}")])
    chain = prompt | router()
    answer = chain.invoke({"q": COMPLEX}, config={"callbacks": [recorder]})
    chain.invoke({"q": SIMPLE}, config={"callbacks": [recorder]})
    recorder.close()
    assert rows(path) == [
        {
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": COMPLEX},
                {"role": "assistant", "content": answer.text},
            ]
        }
    ]
    # The inner tier call carries no routing record: only the router's answer counts.
    assert recorder.stats["written"] == 1 and recorder.stats["other_tier"] == 1


def test_stream_and_async_record_the_whole_answer(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    recorder = DistillationRecorder(path)
    model = router(callbacks=[recorder])
    streamed = "".join(chunk.text for chunk in model.stream(COMPLEX))
    recorder.close()
    assert rows(path)[0]["messages"][-1] == {"role": "assistant", "content": streamed}


async def test_ainvoke_records(tmp_path: Path) -> None:
    recorder = DistillationRecorder(tmp_path / "d.jsonl")
    answer = await router(callbacks=[recorder]).ainvoke(COMPLEX + "?")
    recorder.close()
    assert rows(tmp_path / "d.jsonl")[0]["messages"][-1]["content"] == answer.text


@pytest.mark.parametrize("method", ["batch", "abatch"])
async def test_grouped_batch_records_each_strong_answer_once(tmp_path: Path, method: str) -> None:
    path = tmp_path / "d.jsonl"
    recorder = DistillationRecorder(path)
    model = router(callbacks=[recorder])
    inputs = [COMPLEX, SIMPLE, COMPLEX + "（第二个）", SIMPLE + "!"]
    if method == "batch":
        answers = model.batch(inputs)
    else:
        answers = await model.abatch(inputs)
    recorder.close()
    written = rows(path)
    assert [r["messages"][0]["content"] for r in written] == [inputs[0], inputs[2]]
    assert [r["messages"][1]["content"] for r in written] == [answers[0].text, answers[2].text]


def test_redaction_and_tier_choice(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    recorder = DistillationRecorder(path, tiers=("simple",), redact=redact_pii)
    router(callbacks=[recorder]).invoke(SIMPLE + " — reply to amy@example.com")
    recorder.close()
    assert rows(path)[0]["messages"][0]["content"] == SIMPLE + " — reply to [EMAIL]"


def test_cache_hits_are_not_recorded(tmp_path: Path) -> None:
    recorder = DistillationRecorder(tmp_path / "d.jsonl")
    set_llm_cache(SemanticLLMCache(HashingEmbeddings(dim=64), similarity_threshold=0.99))
    try:
        model = router(callbacks=[recorder])
        model.invoke(COMPLEX)
        model.invoke(COMPLEX)
    finally:
        set_llm_cache(None)
    assert recorder.stats["written"] == 1 and recorder.stats["cache_hit"] == 1


def test_tool_calls_are_skipped(tmp_path: Path) -> None:
    @tool
    def add(a: int, b: int) -> int:
        """Add a and b."""
        return a + b

    recorder = DistillationRecorder(tmp_path / "d.jsonl")
    model = router(callbacks=[recorder]).bind_tools([add], tool_choice="add")
    message = model.invoke(COMPLEX + " 2 3")
    assert message.tool_calls
    assert recorder.stats["written"] == 0 and recorder.stats["not_text"] == 1


def test_message_conversion_marks_non_text() -> None:
    chat = to_chat_messages(
        [
            SystemMessage("s"),
            HumanMessage([{"type": "text", "text": "a"}, "b"]),
            HumanMessage([{"type": "image_url", "image_url": {"url": "data:"}}]),
            AIMessage("", tool_calls=[{"name": "f", "args": {}, "id": "1"}]),
            ToolMessage("42", tool_call_id="1"),
        ]
    )
    assert chat[0] == {"role": "system", "content": "s"}
    assert chat[1] == {"role": "user", "content": "a\nb"}
    assert chat[2]["content"] is None
    assert [c["role"] for c in chat[3:]] == ["assistant+tool_calls", "tool"]


def test_a_shared_writer_and_a_failing_handler_never_break_the_call(tmp_path: Path) -> None:
    writer = DistillationWriter(tmp_path / "d.jsonl")
    recorder = DistillationRecorder(writer)
    assert recorder.writer is writer

    def broken(*args: object, **kwargs: object) -> bool:
        raise RuntimeError("disk full")

    writer.record = broken  # type: ignore[method-assign]
    assert router(callbacks=[recorder]).invoke(COMPLEX).text


def test_a_misspelt_recorder_argument_names_the_recorder(tmp_path: Path) -> None:
    unknown = r"DistillationRecorder got unexpected arguments \['tier'\]"
    with pytest.raises(TypeError, match=unknown):
        DistillationRecorder(tmp_path / "d.jsonl", tier=["strong"])
