"""usage_counts / usage_from_mapping on the OpenAI Responses API's usage, beside the
formats it already read (their own tests are in test_accounting.py)."""

from __future__ import annotations

from types import MappingProxyType

import pytest

from costopt_core.accounting import price_usage, usage_counts, usage_from_mapping
from costopt_core.ledger import TokenUsage
from costopt_core.pricing import set_price

# gpt-4o's list prices under a name of this file's own, so the figures cannot drift with
# the catalog: $2.50 / $1.25 cached / $10 per million input / cached / output tokens.
MODEL = "usage-formats-gpt-4o"
PRICE = set_price(
    MODEL, input_per_token=2.5e-6, output_per_token=1e-5, cache_read_per_token=1.25e-6
)

# What ResponseUsage.model_dump() gives (openai's Responses API): 10,000 input tokens,
# 8,000 of them read from OpenAI's prompt cache, and 200 output tokens.
RESPONSES_USAGE = {
    "input_tokens": 10_000,
    "input_tokens_details": {"cached_tokens": 8_000, "cache_write_tokens": 0},
    "output_tokens": 200,
    "output_tokens_details": {"reasoning_tokens": 50},
    "total_tokens": 10_200,
}


def test_responses_usage_bills_cached_input_at_the_cache_read_price() -> None:
    usage = usage_from_mapping(RESPONSES_USAGE)
    assert usage == TokenUsage(10_000, 200, cache_read_tokens=8_000, reasoning_tokens=50)
    # 2,000 x $2.50 + 8,000 x $1.25 + 200 x $10 per million: $0.017, not $0.027.
    assert price_usage(PRICE, usage) == pytest.approx(0.017)


@pytest.mark.parametrize(
    "usage",
    [
        # Not a dict: a read-only mapping, details included.
        MappingProxyType(
            {
                **RESPONSES_USAGE,
                "input_tokens_details": MappingProxyType({"cached_tokens": 8_000}),
                "output_tokens_details": MappingProxyType({"reasoning_tokens": 50}),
            }
        ),
        # Counts that are not plain ints take the general path.
        {**RESPONSES_USAGE, "input_tokens": 10_000.0, "output_tokens": 200.0},
    ],
    ids=["mapping-proxy", "float-counts"],
)
def test_responses_usage_in_other_shapes(usage) -> None:
    assert usage_counts(usage) == (10_000, 200, 8_000, 0, 50)


def test_responses_details_are_not_added_to_langchains_copy_of_them() -> None:
    # LangChain's OpenAI integration copies cached_tokens into input_token_details.cache_read
    # (and reasoning_tokens into output_token_details.reasoning): one count, never two.
    both = {
        **RESPONSES_USAGE,
        "input_token_details": {"cache_read": 3_000},
        "output_token_details": {"reasoning": 20},
        "input_tokens_details": {"cached_tokens": 3_000},
        "output_tokens_details": {"reasoning_tokens": 20},
    }
    assert usage_counts(both) == (10_000, 200, 3_000, 0, 20)
    assert usage_counts({**both, "input_tokens": 10_000.0}) == (10_000, 200, 3_000, 0, 20)
    # LangChain's details win when they are there at all, even for one side only.
    one_side = {**RESPONSES_USAGE, "output_token_details": {"reasoning": 20}}
    assert usage_counts(one_side) == (10_000, 200, 0, 0, 20)


def test_odd_responses_details_never_price_impossible_tokens() -> None:
    # Optional details left out (None) by an OpenAI-compatible server.
    absent = {"input_tokens": 50, "output_tokens": 5, "input_tokens_details": None}
    assert usage_counts({**absent, "output_tokens_details": None}) == (50, 5, 0, 0, 0)
    odd = {
        "input_tokens": 50,
        "output_tokens": 5,
        "input_tokens_details": {"cached_tokens": 80},  # above the input: clamped
        "output_tokens_details": {"reasoning_tokens": -3},
    }
    assert usage_counts(odd) == (50, 5, 50, 0, 0)
    assert usage_counts({**odd, "output_tokens_details": "n/a"}) == (50, 5, 50, 0, 0)
    only_out = {
        "input_tokens": 50,
        "output_tokens": 5,
        "output_tokens_details": {"reasoning_tokens": 2.0},
    }
    assert usage_counts(only_out) == (50, 5, 0, 0, 2)


@pytest.mark.parametrize(
    ("usage", "expected"),
    [
        # LangChain usage_metadata: with details, without any.
        ({"input_tokens": 120, "output_tokens": 40, "total_tokens": 160}, (120, 40, 0, 0, 0)),
        (
            {
                "input_tokens": 120,
                "output_tokens": 40,
                "input_token_details": {"cache_read": 60, "cache_creation": 10},
                "output_token_details": {"reasoning": 5},
            },
            (120, 40, 60, 10, 5),
        ),
        # Anthropic: cache tokens apart from input_tokens.
        (
            {
                "input_tokens": 10,
                "output_tokens": 4,
                "cache_read_input_tokens": 90,
                "cache_creation_input_tokens": 5,
            },
            (105, 4, 90, 5, 0),
        ),
        # OpenAI Chat Completions.
        (
            {
                "prompt_tokens": 50,
                "completion_tokens": 20,
                "prompt_tokens_details": {"cached_tokens": 30},
                "completion_tokens_details": {"reasoning_tokens": 5},
            },
            (50, 20, 30, 0, 5),
        ),
        ({}, None),
        (MappingProxyType({}), None),
        ({"finish_reason": "stop"}, None),
    ],
    ids=["lc-bare", "lc-details", "anthropic", "chat-completions", "empty", "empty-proxy", "none"],
)
def test_the_other_formats_read_as_before(usage, expected) -> None:
    assert usage_counts(usage) == expected
