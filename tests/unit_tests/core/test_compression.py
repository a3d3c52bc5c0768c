"""The compression engine: what a user sends after it (fewer tokens, nothing relevant lost,
no duplicate, code left runnable), and its bad-input errors."""

from __future__ import annotations

import pytest

from costopt_core.compression import (
    ChunkCompressor,
    cut_to_tokens,
    relevance_scores,
    squeeze_whitespace,
    trim_overlap,
)
from costopt_core.tokens import count_tokens, estimate_tokens, tokenizer_for

FACT = "The warranty covers battery defects for 24 months from the date of purchase."
FILLER = [
    f"Chapter {i}: the device ships in a recycled cardboard box with a printed manual {i}."
    for i in range(10)
]


def test_squeeze_keeps_indentation_and_line_breaks_that_carry_meaning() -> None:
    code = "def f(x):\n    if x:  \n        return   x\n\n\n\n    return None   "
    assert squeeze_whitespace(code) == "def f(x):\n    if x:\n        return x\n\n    return None"
    assert squeeze_whitespace("a\u200bb \u00a0 c") == "ab c"


FENCED = (
    "Fix   this:  \n\n\n\n"
    "```python\n"
    "def f():  \n"
    "    return 'a  b'\n\n\n\n"
    "    x =  1   # aligned\n"
    "```\n"
    "and  this:\n"
    "~~~~\n"
    "SELECT  a,   b\u200b\n"
    "```\n"  # a backtick line does not close a tilde fence
    "~~~~\n"
    "done  ."
)


def test_squeeze_leaves_fenced_code_byte_for_byte() -> None:
    assert squeeze_whitespace(FENCED) == (
        "Fix this:\n\n"
        + FENCED[FENCED.index("```python") : FENCED.index("and  this")]
        + "and this:\n"
        + FENCED[FENCED.index("~~~~") : FENCED.index("done")]
        + "done ."
    )
    # An unclosed fence runs to the end: nothing after its opening is touched.
    assert squeeze_whitespace("see:\n```\nreturn 'a  b'   ") == "see:\n```\nreturn 'a  b'   "


def test_squeeze_leaves_markdown_table_rows_unchanged() -> None:
    table = "| name  | qty |\n|-------|----:|\n| apple |   3 |\n"
    assert squeeze_whitespace("Stock  list:\n" + table + "\nEnd   .") == (
        "Stock list:\n" + table + "\nEnd ."
    )
    bare = "name  | qty\n----- | ---:\napple |   3\n"
    assert squeeze_whitespace(bare + "\nSo  a | b") == bare + "\nSo a | b"


def test_exact_and_near_duplicates_are_dropped_distinct_chunks_kept() -> None:
    window = " ".join(FILLER[0].split()[3:])  # an overlapping retrieval window
    result = ChunkCompressor().compress([FILLER[0], FILLER[0] + "  ", window, FILLER[1], FACT])
    assert result.kept == (0, 3, 4)
    assert result.tokens_after < result.tokens_before


def test_threshold_one_drops_only_copies() -> None:
    edited = FILLER[0].replace("recycled", "reused")
    result = ChunkCompressor(near_duplicate_threshold=1.0).compress([FILLER[0], edited, FILLER[0]])
    assert result.kept == (0, 1)


def test_a_text_splitters_overlap_is_sent_once() -> None:
    words = " ".join(f"w{i}" for i in range(200)).split()
    first, second = " ".join(words[:120]), " ".join(words[100:])  # 20 words of overlap
    result = ChunkCompressor().compress([first, second])
    assert result.texts == (first, " ".join(words[120:]))
    assert " ".join(result.texts).split() == words  # nothing lost, nothing repeated
    assert trim_overlap(" ".join(words[:110]), [" ".join(words[100:])]) == " ".join(words[:100])
    assert trim_overlap("w1 w2 w3", [first]) == "w1 w2 w3"  # too short to call an overlap


def test_sentence_granularity_keeps_relevant_sentences_from_every_chunk() -> None:
    noise = " ".join(f"Filler sentence {i} about shipping boxes." for i in range(6))
    chunks = [f"{noise} {FACT}", f"Every battery is tested twice. {noise}"]
    query = "warranty battery defects"
    fine = ChunkCompressor(max_tokens=30).compress(chunks, query)
    assert fine.texts == (FACT, "Every battery is tested twice.")
    coarse = ChunkCompressor(max_tokens=40, granularity="chunk").compress(chunks, query)
    assert len(coarse.texts) == 1 and FACT in coarse.texts[0]  # the best chunk, cut
    assert fine.tokens_after <= 30 and coarse.tokens_after <= 40
    with pytest.raises(ValueError, match="granularity"):
        ChunkCompressor(granularity="word")  # type: ignore[arg-type]


def test_boilerplate_lines_repeated_across_chunks_are_kept_once() -> None:
    footer = "Copyright 2024 Example Corp, all rights reserved."
    chunks = [f"{FILLER[0]}\n{footer}\nOK", f"{FACT}\n{footer}\nOK"]
    result = ChunkCompressor().compress(chunks)
    assert result.texts == (f"{FILLER[0]}\n{footer}\nOK", f"{FACT}\nOK")  # short lines stay
    kept_all = ChunkCompressor(drop_repeated_lines=False).compress(chunks)
    assert kept_all.texts[1] == f"{FACT}\n{footer}\nOK"


def test_budget_keeps_the_most_relevant_chunk_first_and_is_never_exceeded() -> None:
    chunks = [*FILLER[:6], FACT, *FILLER[6:]]
    result = ChunkCompressor(max_tokens=50).compress(chunks, query="How long is the warranty?")
    assert result.texts[0] == FACT and result.kept[0] == 6
    assert result.tokens_after == sum(estimate_tokens(t) for t in result.texts) <= 50
    assert result.saved_tokens == result.tokens_before - result.tokens_after > 0
    assert 0 < result.ratio < 1


def test_without_a_query_the_retriever_order_is_kept() -> None:
    result = ChunkCompressor(max_tokens=45).compress([*FILLER[:3], FACT])
    assert result.kept == (0, 1)


def test_the_chunk_that_does_not_fit_is_cut_at_a_sentence_end() -> None:
    long = " ".join(f"Sentence number {i} says something about the warranty." for i in range(20))
    result = ChunkCompressor(max_tokens=40).compress([long])
    (text,) = result.texts
    assert text.endswith("warranty.") and long.startswith(text)
    assert estimate_tokens(text) <= 40 < estimate_tokens(long)
    assert cut_to_tokens("abcdefghij " * 30, 10) == ("abcdefghij " * 3).strip()


def test_relevance_is_bm25_on_the_chunk_set_and_reads_cjk() -> None:
    scores = relevance_scores("warranty battery", [FILLER[0], FACT, "battery only"])
    assert scores[1] > scores[2] > scores[0] == 0.0
    cjk = relevance_scores("保修期多长", ["本产品保修期为两年。", "包装盒可回收。"])
    assert cjk[0] > cjk[1]


def test_token_counts_use_the_models_tokenizer_when_installed() -> None:
    if tokenizer_for("gpt-4o") is None:
        pytest.skip("the [tokenizers] extra is not installed")
    result = ChunkCompressor(model="gpt-4o").compress([FACT])
    assert result.tokens_before == count_tokens(FACT, "gpt-4o")[0] != estimate_tokens(FACT)


def test_empty_input_and_bad_arguments() -> None:
    assert ChunkCompressor(max_tokens=10).compress([]).texts == ()
    with pytest.raises(ValueError, match="max_tokens"):
        ChunkCompressor(max_tokens=0)
    with pytest.raises(ValueError, match="max_tokens"):
        ChunkCompressor(max_tokens=True)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="near_duplicate_threshold"):
        ChunkCompressor(near_duplicate_threshold=0)
    with pytest.raises(TypeError, match="chunks"):
        ChunkCompressor().compress("one string")  # type: ignore[arg-type]
