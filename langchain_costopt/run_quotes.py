"""The most a LangChain run can cost, read from its start: what a budget reserves.

Example:
    >>> from langchain_core.messages import HumanMessage
    >>> call_quote([[HumanMessage("Hello, world!")]], {"model": "m", "max_tokens": 64})
    ('m', 12, 64)

A run names its model in its invocation params (or LangChain's ``ls_model_name``
metadata) and its output cap there too; a ``RouterChatModel`` run names its tiers and the
tier it was routed to. The prompt is counted by ``costopt_core.tokens.quote_prompt_tokens``
(never short of a real tokenizer on ordinary text), an image as an image, bound tools as
their schemas.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from costopt_core.budget_gate import OUTPUT_LIMIT_KEYS, CallQuote, output_limit_in
from costopt_core.metadata_keys import ROUTED_TIER_PARAM, model_name_in
from costopt_core.tokens import estimate_schema_tokens, quote_message_tokens, quote_prompt_tokens

_EMPTY: Mapping[str, Any] = MappingProxyType({})
_OUTPUT_LIMIT_KEYS = frozenset(OUTPUT_LIMIT_KEYS)


def is_map(value: Any) -> bool:
    """Whether ``value`` is a mapping (LangChain's params and metadata)."""
    # Metadata is nearly always a plain dict: skip the slower ABC check for it.
    return type(value) is dict or (value is not None and isinstance(value, Mapping))


def call_quotes(
    messages: list[list[Any]],
    params: Mapping[str, Any] | None,
    metadata: Mapping[str, Any] | None = None,
) -> tuple[list[CallQuote], bool]:
    """The most a run can cost, as quotes, and whether it is a router's own run.

    A ``RouterChatModel`` run names its tiers (cheapest first) in its invocation params,
    and the tier it was routed to: its quotes are the cheapest tier's and that tier's (a
    climb to another tier reserves more then). Any other run names its model there or in
    LangChain's ``ls_model_name`` metadata. The output limit is the call's ``max_tokens``
    (or a provider's equivalent, or LangChain's ``ls_max_tokens``), else the tier's own
    setting, else the engine's default.
    """
    quote = call_quote(messages, params, metadata)
    if quote is not None:
        return [CallQuote(*quote)], False
    quotes = router_quotes(messages, params)
    tiers = list(quotes.values())
    routed = quotes.get(params.get(ROUTED_TIER_PARAM)) if params else None  # type: ignore[arg-type]
    if routed is not None and tiers:
        tiers = [tiers[0]] if routed is tiers[0] else [tiers[0], routed]
    return tiers, True


def router_quotes(
    messages: list[list[Any]], params: Mapping[str, Any] | None
) -> dict[str, CallQuote]:
    """The quote of each tier of a ``RouterChatModel`` run, by tier, cheapest first."""
    params = params if is_map(params) else _EMPTY
    tokens = _prompt_tokens(messages, params)
    limit = output_limit_in(params)
    return {
        tier: CallQuote(model_name_in(spec), tokens, limit or output_limit_in(spec))
        for tier, spec in params["models"].items()
        if is_map(spec)
    }


def call_quote(
    messages: list[list[Any]],
    params: Mapping[str, Any] | None,
    metadata: Mapping[str, Any] | None = None,
) -> tuple[str | None, int, int | None] | None:
    """The quote of a run that is not a router's (see :func:`call_quotes`), else None:
    ``CallQuote``'s fields as a plain tuple (building the named tuple cost more than
    the reservation's arithmetic, before every budgeted call).

    Example:
        >>> from langchain_core.messages import HumanMessage
        >>> call_quote([[HumanMessage("Hello, world!")]], {"model": "m", "max_tokens": 64})
        ('m', 12, 64)
        >>> call_quote([[HumanMessage("hi")]], {"models": {"cheap": {"model": "m"}}}) is None
        True
    """
    if type(params) is not dict and not is_map(params):
        params = _EMPTY
    models = params.get("models")
    if models is not None and is_map(models):
        return None
    prompt = messages[0] if messages else ()
    content = getattr(prompt[0], "content", None) if len(prompt) == 1 else None
    if type(content) is str and not params.get("tools"):
        tokens = quote_message_tokens(content)  # one text message, the usual call
    else:
        tokens = _prompt_tokens(messages, params)
    # Most calls set no output cap: one C-level test of the keys instead of five reads
    # (this runs before every budgeted call). model_name_in's usual answer likewise
    # first; anything unusual (an invalid first value) is left to it.
    limit = None if _OUTPUT_LIMIT_KEYS.isdisjoint(params) else output_limit_in(params)
    model = (
        params.get("model_name")
        or params.get("model")
        or params.get("model_id")
        or params.get("deployment_name")
    )
    if model is not None and type(model) is not str:
        model = model_name_in(params)
    if metadata is not None and (type(metadata) is dict or is_map(metadata)):
        model = model or metadata.get("ls_model_name")
        if limit is None:
            ls_limit = metadata.get("ls_max_tokens")
            limit = ls_limit if type(ls_limit) is int and ls_limit > 0 else None
    return model, tokens, limit


_IMAGE_BLOCKS = frozenset({"image_url", "image", "input_image"})


def _is_image(block: Any) -> bool:
    return isinstance(block, dict) and block.get("type") in _IMAGE_BLOCKS


def _prompt_tokens(messages: list[list[Any]], params: Mapping[str, Any]) -> int:
    """What a budget reserves for the prompt: its messages' text (``bound_tokens``: never
    short of the real count), its images and any bound tools."""
    texts = []
    images = 0
    for item in messages[0] if messages else ():
        content = item if isinstance(item, str) else getattr(item, "content", "")
        if isinstance(content, list):
            # An image is billed as an image, whatever its URL or data's length.
            kept = [b for b in content if not _is_image(b)]
            images += len(content) - len(kept)
            content = kept
        texts.append(content if isinstance(content, str) else json.dumps(content, default=str))
    tokens = quote_prompt_tokens(texts, images=images)
    # Bound tools are part of the prompt.
    tools = params.get("tools")
    if tools:
        tokens += estimate_schema_tokens(tools)
    return tokens


__all__ = ["call_quote", "call_quotes", "is_map", "router_quotes"]
