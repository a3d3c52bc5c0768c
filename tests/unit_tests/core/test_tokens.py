"""costopt_core.tokens: what a budget reserves for a prompt never falls short of it."""

from __future__ import annotations

import base64
import json
import random
import uuid

import pytest

from costopt_core.tokens import (
    APPROXIMATE,
    IMAGE_TOKENS_BOUND,
    bound_tokens,
    count_tokens,
    quote_prompt_tokens,
)


def _samples() -> dict[str, str]:
    rng = random.Random(0)
    records = [
        {"id": str(uuid.UUID(int=rng.getrandbits(128))), "sku": rng.randrange(10**8)}
        for _ in range(40)
    ]
    return {
        "json with ids": json.dumps(records),
        "numbers": " ".join(str(rng.randrange(10**6)) for _ in range(300)),
        "code": "def f(x):\n    return {k: v for k, v in x.items() if v}\n" * 30,
        "prose": "The quick brown fox jumps over the lazy dog, again. " * 30,
        "thai": "ภาษาไทยเป็นภาษาที่มีระบบเสียงวรรณยุกต์ " * 30,
        "hindi": "यह हिंदी में एक उदाहरण पाठ है जिसे हम जांच रहे हैं। " * 30,
        "russian": "Это пример текста на русском языке для проверки. " * 30,
        "chinese": "请分析并比较这两种架构设计的优劣，然后给出详细的建议和理由。" * 20,
        "korean": "한국어 문장을 여기에 씁니다. 서울은 한국의 수도입니다. " * 20,
        "base64": base64.b64encode(bytes(rng.randrange(256) for _ in range(3000))).decode(),
        "hex ids": " ".join(uuid.UUID(int=rng.getrandbits(128)).hex for _ in range(60)),
        "emoji chat": "great job 🎉🎉 see you 👋 " * 40 + "🦩🪿🫎" * 30,
    }


@pytest.mark.parametrize("model", ["gpt-4o", "gpt-4"])  # o200k_base, cl100k_base
def test_what_a_budget_reserves_for_a_text_is_never_short_of_the_real_count(model: str) -> None:
    # The prose estimate ran 2.1x short on JSON with ids and 1.8x on Thai: concurrent
    # budgeted calls then spent up to 84 % past the budget (audit).
    pytest.importorskip("bpe_openai")
    for name, text in _samples().items():
        real, counter = count_tokens(text, model)
        assert counter != APPROXIMATE
        assert bound_tokens(text) >= real, name
    prose = _samples()["prose"]
    assert bound_tokens(prose) <= 1.3 * count_tokens(prose, "gpt-4o")[0]  # not wildly over


def test_an_image_is_reserved_as_an_image_whatever_its_url() -> None:
    text_only = quote_prompt_tokens(["What is in this picture?"])
    assert quote_prompt_tokens(["What is in this picture?"], images=2) == (
        text_only + 2 * IMAGE_TOKENS_BOUND
    )


def test_a_prompt_quoted_again_is_quoted_the_same_and_memory_stays_bounded() -> None:
    # An agent quotes its history again at every turn: a text seen before must get the
    # same bound, across thousands of distinct texts and one too long to keep.
    texts = [f"message {i}: " + "word " * (i % 50) for i in range(3000)]
    texts.append("x" * 5000)
    first = [quote_prompt_tokens([text], chat=False) for text in texts]
    assert first == [bound_tokens(text) for text in texts]
    assert [quote_prompt_tokens([text], chat=False) for text in reversed(texts)] == first[::-1]
    history = texts[:40]
    assert quote_prompt_tokens(history) == quote_prompt_tokens(list(history))
