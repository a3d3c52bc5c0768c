"""Reading a call's token usage: the provider's own report, or its text counted.

Example:
    >>> from costopt_core.usage import price_usage, usage_counts, usage_from_mapping
    >>> usage_counts({"prompt_tokens": 100, "completion_tokens": 20})
    (100, 20, 0, 0, 0)
    >>> usage = usage_from_mapping({"input_tokens": 1000, "output_tokens": 500})
    >>> from costopt_core.pricing import ModelPrice
    >>> round(price_usage(ModelPrice(input=1e-6, output=2e-6), usage), 6)
    0.002

:func:`usage_counts` / :func:`usage_from_mapping` read the usage dicts of the usual
providers and frameworks (LangChain, OpenAI chat and Responses, Anthropic, Gemini,
Bedrock) into LangChain's conventions; :class:`CallText` counts the usage of a call whose
provider reported none from its prompt and answer. ``usage_counts`` runs on every LLM
call a cost handler sees, so its usual case is a few dict reads.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from costopt_core.ledger import TokenUsage
from costopt_core.pricing import ModelPrice
from costopt_core.tokens import count_prompt_tokens, count_tokens


@dataclass(frozen=True, slots=True)
class CallText:
    """What a call said, kept by a face to cost a call whose provider reported no usage.

    ``prompt`` holds the texts of the prompt's messages (or the one completion prompt,
    with ``chat=False``), including any bound tools' JSON; ``answer`` the answer's text
    (and its tool calls' JSON).

    Example:
        >>> usage, counter = CallText(["Be brief.", "Hello, world!"], "Hi!").usage(None)
        >>> usage.input_tokens, usage.output_tokens, counter
        (16, 1, 'approximate')
    """

    prompt: Sequence[str]
    answer: str
    chat: bool = True
    #: The call's output limit (its ``max_tokens``), when the face knows it: a provider
    #: never bills more output, so a count from text (an estimate) is kept below it.
    max_output_tokens: int | None = field(default=None, repr=False)

    def usage(self, model: str | None) -> tuple[TokenUsage, str]:
        """The call's usage counted on ``model``'s tokenizer (see ``costopt_core.tokens``)
        and the counter that gave it (the answer's count at most ``max_output_tokens``).

        Example:
            >>> CallText(["Hi"], "word " * 500, max_output_tokens=100).usage(None)[0].output_tokens
            100
        """
        prompt, counter = count_prompt_tokens(self.prompt, model, chat=self.chat)
        answer, _ = count_tokens(self.answer, model)
        return TokenUsage(prompt, capped_output(answer, self.max_output_tokens)), counter


def capped_output(tokens: int, cap: int | None) -> int:
    """``tokens`` of output, at most ``cap`` (a call's ``max_tokens``: a provider never
    bills more) when that is a positive int.

    Example:
        >>> capped_output(134, 100), capped_output(134, None), capped_output(134, 0)
        (100, 134, 134)
    """
    return tokens if cap is None or type(cap) is not int or cap <= 0 else min(tokens, cap)


# -- usage parsing ------------------------------------------------------------------------


def _int(value: Any) -> int:
    if type(value) is int:
        return value if value >= 0 else 0
    if isinstance(value, bool) or value is None:
        return 0
    if isinstance(value, int):
        return max(0, value)
    if isinstance(value, float) and math.isfinite(value):
        return max(0, int(value))
    return 0


def _get(mapping: Mapping[str, Any], *keys: str) -> Any:
    for key in keys:
        value = mapping.get(key)
        if value is not None:
            return value
    return None


def _responses_details(usage: Mapping[str, Any]) -> tuple[int, int]:
    # OpenAI's Responses API usage (``ResponseUsage`` or its ``model_dump()``) keeps its
    # cached input and reasoning tokens under their own keys. LangChain's OpenAI
    # integration copies the same two counts into input/output_token_details, so a usage
    # carrying LangChain's details is read from those alone: the counts are never added.
    details_in = usage.get("input_tokens_details")
    details_out = usage.get("output_tokens_details")
    read = reasoning = 0
    if type(details_in) is dict or isinstance(details_in, Mapping):
        read = details_in.get("cached_tokens", 0)
        if type(read) is not int or read < 0:
            read = _int(read)
    if type(details_out) is dict or isinstance(details_out, Mapping):
        reasoning = details_out.get("reasoning_tokens", 0)
        if type(reasoning) is not int or reasoning < 0:
            reasoning = _int(reasoning)
    return read, reasoning


def usage_from_mapping(usage: Mapping[str, Any] | None) -> TokenUsage | None:
    """Token usage from a provider or framework usage dict, or ``None`` if it has none.

    Understands LangChain ``usage_metadata`` (``input_token_details.cache_read`` /
    ``cache_creation``, ``output_token_details.reasoning``), OpenAI ``token_usage``
    (``prompt_tokens``, ``prompt_tokens_details.cached_tokens``,
    ``completion_tokens_details.reasoning_tokens``), the OpenAI Responses API's usage
    (``input_tokens``, ``input_tokens_details.cached_tokens``,
    ``output_tokens_details.reasoning_tokens``; read only when LangChain's details are
    absent, as LangChain copies these counts into its own), Anthropic (whose ``input_tokens``
    *exclude* ``cache_read_input_tokens`` / ``cache_creation_input_tokens``), Gemini
    (``prompt_token_count``; ``thoughts_token_count`` billed as output) and Bedrock
    (``inputTokens``). Results follow LangChain conventions (input includes cache
    tokens, output includes reasoning).

    Example:
        >>> usage_from_mapping({"prompt_tokens": 100, "completion_tokens": 20,
        ...     "prompt_tokens_details": {"cached_tokens": 60}})
        TokenUsage(input_tokens=100, output_tokens=20, cache_read_tokens=60, \
cache_write_tokens=0, reasoning_tokens=0)
        >>> usage_from_mapping({"input_tokens": 10_000, "output_tokens": 200,
        ...     "input_tokens_details": {"cached_tokens": 8_000},
        ...     "output_tokens_details": {"reasoning_tokens": 50}})
        TokenUsage(input_tokens=10000, output_tokens=200, cache_read_tokens=8000, \
cache_write_tokens=0, reasoning_tokens=50)
    """
    counts = usage_counts(usage)
    return None if counts is None else TokenUsage(*counts)


#: A call's token counts as :func:`usage_counts` reads them: input, output, cache read,
#: cache write and reasoning tokens (the fields of ``TokenUsage``, in its order).
UsageCounts = tuple[int, int, int, int, int]


def usage_counts(usage: Mapping[str, Any] | None) -> UsageCounts | None:
    """:func:`usage_from_mapping`'s counts as a plain tuple (``TokenUsage``'s fields, in
    order), for the call path, which needs no object.

    Example:
        >>> usage_counts({"input_tokens": 120, "output_tokens": 40,
        ...     "input_token_details": {"cache_read": 60}})
        (120, 40, 60, 0, 0)
    """
    if type(usage) is not dict and not isinstance(usage, Mapping):
        return None
    # An empty usage falls through both paths to None: not tested here, to spare every call.
    # LangChain's usage_metadata (what nearly every chat model now reports) first: it is
    # read on every call, so its all-int case skips the generic parsing below.
    inp = usage.get("input_tokens")
    out = usage.get("output_tokens")
    if (
        type(inp) is int
        and type(out) is int
        and inp >= 0
        and out >= 0
        and "cache_read_input_tokens" not in usage
        and "cache_creation_input_tokens" not in usage
    ):
        details_in = usage.get("input_token_details")
        details_out = usage.get("output_token_details")
        read = write = reasoning = 0
        if details_in and (type(details_in) is dict or isinstance(details_in, Mapping)):
            read = details_in.get("cache_read", 0)
            write = details_in.get("cache_creation", 0)
            if type(read) is not int or type(write) is not int or read < 0 or write < 0:
                read, write = _int(read), _int(write)
        elif not details_out:
            if "input_tokens_details" not in usage and "output_tokens_details" not in usage:
                return inp, out, 0, 0, 0  # no details at all: nothing to clamp either
            read, reasoning = _responses_details(usage)
        if details_out and (type(details_out) is dict or isinstance(details_out, Mapping)):
            reasoning = details_out.get("reasoning", 0)
            if type(reasoning) is not int or reasoning < 0:
                reasoning = _int(reasoning)
        if read + write > inp or reasoning > out:  # details above the totals: clamp
            read = min(read, inp)
            write = min(write, inp - read)
            reasoning = min(reasoning, out)
        return inp, out, read, write, reasoning
    details_in = usage.get("input_token_details")
    details_out = usage.get("output_token_details")
    if "input_tokens" in usage and (
        "cache_read_input_tokens" in usage or "cache_creation_input_tokens" in usage
    ):
        # Anthropic's raw usage: cache tokens are counted apart from input_tokens.
        read = _int(usage.get("cache_read_input_tokens"))
        write = _int(usage.get("cache_creation_input_tokens"))
        inp = _int(usage.get("input_tokens")) + read + write
        out = _int(usage.get("output_tokens"))
        reasoning = 0
    elif "input_tokens" in usage or "output_tokens" in usage:
        inp = _int(usage.get("input_tokens"))
        out = _int(usage.get("output_tokens"))
        read = write = reasoning = 0
        if details_in and isinstance(details_in, Mapping):
            read = _int(details_in.get("cache_read"))
            write = _int(details_in.get("cache_creation"))
        elif not details_out:
            read, reasoning = _responses_details(usage)
        if details_out and isinstance(details_out, Mapping):
            reasoning = _int(details_out.get("reasoning"))
    elif "prompt_tokens" in usage or "completion_tokens" in usage:
        inp = _int(usage.get("prompt_tokens"))
        out = _int(usage.get("completion_tokens"))
        p_details = usage.get("prompt_tokens_details")
        c_details = usage.get("completion_tokens_details")
        read = _int(p_details.get("cached_tokens")) if isinstance(p_details, Mapping) else 0
        write = 0
        reasoning = _int(c_details.get("reasoning_tokens")) if isinstance(c_details, Mapping) else 0
    elif "prompt_token_count" in usage or "candidates_token_count" in usage:
        inp = _int(usage.get("prompt_token_count"))
        reasoning = _int(usage.get("thoughts_token_count"))
        out = _int(usage.get("candidates_token_count")) + reasoning
        read = _int(usage.get("cached_content_token_count"))
        write = 0
    elif "inputTokens" in usage or "outputTokens" in usage:
        inp = _int(usage.get("inputTokens"))
        out = _int(usage.get("outputTokens"))
        read = _int(usage.get("cacheReadInputTokens"))
        write = _int(usage.get("cacheWriteInputTokens"))
        inp += read + write
        reasoning = 0
    else:
        return None
    # Providers occasionally report details above the totals; never price negative tokens.
    read = min(read, inp)
    write = min(write, inp - read)
    reasoning = min(reasoning, out)
    return inp, out, read, write, reasoning


def price_usage(price: ModelPrice, usage: TokenUsage) -> float:
    """Dollar cost of ``usage`` at ``price``.

    Example:
        >>> price = ModelPrice(input=1e-6, output=2e-6)
        >>> round(price_usage(price, TokenUsage(1000, 500)), 6)
        0.002
    """
    return price.cost(
        usage.input_tokens,
        usage.output_tokens,
        usage.cache_read_tokens,
        usage.cache_write_tokens,
        usage.reasoning_tokens,
    )


__all__ = [
    "CallText",
    "UsageCounts",
    "capped_output",
    "price_usage",
    "usage_counts",
    "usage_from_mapping",
]
