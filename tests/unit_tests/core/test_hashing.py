"""HashingEmbedder: deterministic, normalised, similar texts closer."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from costopt_core.hashing import HashingEmbedder


def test_unit_vectors_and_similarity_order() -> None:
    emb = HashingEmbedder(dim=256)
    a, b, c = emb.embed(
        [
            "How many apples does Tom have?",
            "how many apples has tom",
            "Schedule a meeting for Monday",
        ]
    )
    assert np.linalg.norm(a) == pytest.approx(1.0, abs=1e-6)
    assert a @ b > 0.5 > a @ c
    assert emb.embed([""])[0].tolist() == [0.0] * 256


def test_chinese_text_gets_ngrams() -> None:
    emb = HashingEmbedder()
    a, b, c = emb.embed(["请翻译这句话", "请翻译这段话", "分析数据库架构"])
    assert a @ b > a @ c


def test_same_vector_in_another_process() -> None:
    code = (
        "from costopt_core.hashing import HashingEmbedder;"
        "print(HashingEmbedder(dim=32).embed_one('stable text').round(6).tolist())"
    )
    other = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONHASHSEED": "123"},
    )
    here = HashingEmbedder(dim=32).embed_one("stable text").round(6).tolist()
    assert other.stdout.strip() == str(here)


def test_config_round_trip_and_bad_arguments() -> None:
    emb = HashingEmbedder(dim=64, ngram_range=(2, 4), word_weight=1.0)
    again = HashingEmbedder.from_config(emb.config())
    assert np.array_equal(again.embed_one("x y z"), emb.embed_one("x y z"))
    with pytest.raises(ValueError, match="dim"):
        HashingEmbedder(dim=4)
    with pytest.raises(ValueError, match="ngram_range"):
        HashingEmbedder(ngram_range=(3, 2))
    with pytest.raises(TypeError, match="sequence of texts"):
        emb.embed("one string")
