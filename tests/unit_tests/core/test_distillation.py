"""Distillation data: what the writer keeps, redaction, the JSONL format."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from costopt_core.distillation import STAT_KEYS, DistillationWriter, redact_pii, writer_for

CHAT = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Compare A, B"}]


def lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_written_in_the_chat_fine_tuning_format(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    with DistillationWriter(path, tiers=("complex", "medium")) as writer:
        assert writer.record(CHAT, "A is faster.", tier="complex")
        assert writer.record(
            [{"role": "user", "content": "比较 A 和 B"}], "A 更快。", tier="medium"
        )
    rows = lines(path)
    assert rows[0] == {"messages": [*CHAT, {"role": "assistant", "content": "A is faster."}]}
    assert set(rows[0]) == {"messages"}  # nothing a fine-tuning API would reject
    assert "比较" in path.read_text(encoding="utf-8")  # UTF-8, not \\u escapes
    # Appends: a second writer on the same file adds to it.
    DistillationWriter(path).record(CHAT, "B is cheaper.", tier="complex")
    assert len(lines(path)) == 3


@pytest.mark.parametrize(
    ("messages", "answer", "kwargs", "reason"),
    [
        (CHAT, "x", {"tier": "simple"}, "other_tier"),
        (CHAT, "x", {"tier": None}, "other_tier"),
        (CHAT, "x", {"tier": "complex", "cached": True}, "cache_hit"),
        ([*CHAT, {"role": "tool", "content": "42"}], "x", {"tier": "complex"}, "not_text"),
        ([{"role": "user", "content": None}], "x", {"tier": "complex"}, "not_text"),
        (CHAT, "", {"tier": "complex"}, "empty"),
        (
            [{"role": "system", "content": "only a system prompt"}],
            "x",
            {"tier": "complex"},
            "empty",
        ),
    ],
)
def test_skipped_records_are_counted_by_reason(
    tmp_path: Path, messages: list, answer: str, kwargs: dict, reason: str
) -> None:
    path = tmp_path / "d.jsonl"
    writer = DistillationWriter(path)
    assert writer.record(messages, answer, **kwargs) is False
    assert writer.stats == {**dict.fromkeys(STAT_KEYS, 0), reason: 1}
    assert not path.exists()  # nothing is created until something is written


def test_duplicates_are_written_once(tmp_path: Path) -> None:
    writer = DistillationWriter(tmp_path / "d.jsonl")
    assert writer.record(CHAT, "same", tier="complex")
    assert not writer.record(CHAT, "same", tier="complex")
    assert writer.stats["duplicate"] == 1
    again = DistillationWriter(tmp_path / "e.jsonl", tiers="complex")
    again.dedupe = False
    assert again.record(CHAT, "same", tier="complex") and again.record(CHAT, "same", tier="complex")


def test_redactor_runs_on_every_text_and_a_failing_one_drops_the_record(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    writer = DistillationWriter(path, redact=str.upper)
    writer.record(CHAT, "answer", tier="complex")
    assert [m["content"] for m in lines(path)[0]["messages"]] == [
        "BE BRIEF.",
        "COMPARE A, B",
        "ANSWER",
    ]

    def broken(text: str) -> str:
        raise RuntimeError("boom")

    failing = DistillationWriter(tmp_path / "f.jsonl", redact=broken)
    assert not failing.record(CHAT, "secret", tier="complex")
    assert failing.stats["redact_failed"] == 1 and not (tmp_path / "f.jsonl").exists()
    wrong_type = DistillationWriter(tmp_path / "g.jsonl", redact=lambda text: None)  # type: ignore[arg-type,return-value]
    assert not wrong_type.record(CHAT, "secret", tier="complex")
    assert wrong_type.stats["redact_failed"] == 1


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("mail ann.o'neil+x@sub.example.co.uk now", "mail ann.o'[EMAIL] now"),
        ("Visa 4111-1111-1111-1111 exp 12/26", "Visa [CARD] exp 12/26"),
        ("Amex 378282246310005", "Amex [CARD]"),
        ("tel: +44 20 7946 0958", "tel: [PHONE]"),
        ("call (415) 555-0134", "call [PHONE]"),
        ("手机 13800138000", "手机 [PHONE]"),
        ("order 1234567812345678", "order 1234567812345678"),  # fails Luhn: not a card
        ("total 1234567 dollars on 2024-05-03, pi 3.14159265", None),
        ("version 1.2.3, 12,345,678 rows", None),
    ],
)
def test_default_redactor(text: str, expected: str | None) -> None:
    assert redact_pii(text) == (text if expected is None else expected)


def test_redactor_and_arguments_are_checked(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="text must be a str"):
        redact_pii(None)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="path's folder does not exist"):
        DistillationWriter(tmp_path / "nope" / "d.jsonl")
    with pytest.raises(TypeError, match="path must be a file path"):
        DistillationWriter(3)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="tiers must be one or more"):
        DistillationWriter(tmp_path / "d.jsonl", tiers=())
    with pytest.raises(TypeError, match="tiers must be tier names"):
        DistillationWriter(tmp_path / "d.jsonl", tiers=5)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="redact must be a callable"):
        DistillationWriter(tmp_path / "d.jsonl", redact="yes")  # type: ignore[arg-type]
    shared = DistillationWriter(tmp_path / "d.jsonl")
    assert writer_for(shared, tiers=("x",), redact=None) is shared


def test_concurrent_records_are_whole_lines(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    writer = DistillationWriter(path)

    def work(n: int) -> None:
        for i in range(50):
            chat = [{"role": "user", "content": f"q{n}-{i} " + "x" * 500}]
            writer.record(chat, "a" * 300, tier="complex")

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    writer.close()
    assert len(lines(path)) == 400 == writer.stats["written"]
