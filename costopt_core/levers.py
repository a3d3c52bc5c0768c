"""Savings per lever: one rule that splits what an event saved, so no dollar counts twice.

Example:
    >>> from costopt_core.ledger import CostRecord
    >>> from costopt_core.levers import BATCH, lever_savings, saving_tags
    >>> record = CostRecord("gpt-4o-mini", tier="cheap", cost_usd=1.0, saved_usd=5.0,
    ...                     tags=saving_tags({BATCH: 1.0}))
    >>> lever_savings(record)
    {'routing': 4.0, 'batch': 1.0}

The rule (written once here, and in the README): a record's ``saved_usd`` is everything
the event saved against making the same request with no lever at all (the baseline
model, the full prompt, no provider cache, called directly). It is split by applying the
levers in a fixed order, each one's saving measured on what the previous ones left:

1. ``routing``: the baseline model's price minus the answering model's price, both on
   the uncompressed, uncached usage (0 for a call that was not routed);
2. ``compression``: the tokens a compressor removed, at the answering model's input price;
3. ``provider_cache``: the provider's cache-read (and cache-write) prices against plain
   input (negative when writing a cache costs more than it saved on that call);
4. ``batch``: the standard price minus the batch price the provider charged.

A cache hit saves the whole call it avoided: all of it is the ``cache`` lever (the
plugin's own cache, shown apart from the provider's). The parts other than routing and
cache are stored as ``CostRecord.tags`` (``costopt.saved.<lever>``), so every ledger
keeps them without a schema change; what the tags do not claim is routing (a call) or
cache (a cache hit). The report adds each lever up apart; their sum is ``total_saved``.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from typing import Final, Protocol

logger = logging.getLogger(__name__)

ROUTING: Final = "routing"
CACHE: Final = "cache"
COMPRESSION: Final = "compression"
PROVIDER_CACHE: Final = "provider_cache"
BATCH: Final = "batch"

#: Every lever, in the order the report prints them.
LEVERS: Final = (ROUTING, CACHE, COMPRESSION, PROVIDER_CACHE, BATCH)
#: The levers a record carries in its tags (routing and cache are the remainder).
TAGGED_LEVERS: Final = (COMPRESSION, PROVIDER_CACHE, BATCH)

#: ``CostRecord.tags`` key prefix of a lever's part of ``saved_usd``.
SAVING_TAG_PREFIX: Final = "costopt.saved."
_TAG_KEYS: Final = {lever: SAVING_TAG_PREFIX + lever for lever in TAGGED_LEVERS}


class SavedEvent(Protocol):
    """What :func:`lever_savings` reads of a record (``CostRecord`` is one)."""

    @property
    def kind(self) -> str: ...
    @property
    def saved_usd(self) -> float | None: ...
    @property
    def tags(self) -> Mapping[str, str]: ...


def saving_tags(parts: Mapping[str, float]) -> dict[str, str]:
    """The tags that store ``parts`` (tagged levers only; zero parts are left out).

    Each amount is written as its shortest ``repr``, which ``float()`` reads back to the
    same float and a person reads in a ledger or CSV (``0.00044``, where 17 fixed digits
    would write ``0.00044000000000000002``); formatting it this way costs about 3k
    instructions more per call that read cached tokens (``benchmarks/saving_tags_format.py``),
    0.3 % of a call: readability wins.

    Example:
        >>> tags = saving_tags({PROVIDER_CACHE: 0.1 + 0.2, BATCH: 0.0})
        >>> tags
        {'costopt.saved.provider_cache': '0.30000000000000004'}
        >>> float(tags[SAVING_TAG_PREFIX + PROVIDER_CACHE]) == 0.1 + 0.2
        True
    """
    tags: dict[str, str] = {}
    for lever, amount in parts.items():
        key = _TAG_KEYS.get(lever)
        if key is None:
            raise ValueError(f"lever must be one of {TAGGED_LEVERS}, got {lever!r}")
        if amount:
            tags[key] = repr(float(amount))
    return tags


def lever_savings(record: SavedEvent) -> dict[str, float]:
    """``record.saved_usd`` split by lever (see the module's rule); ``{}`` when unknown."""
    saved = record.saved_usd
    if saved is None:
        return {}
    rest = CACHE if record.kind == "cache_hit" else ROUTING
    parts: dict[str, float] = {}
    tags = record.tags
    if tags:
        for lever, key in _TAG_KEYS.items():
            text = tags.get(key)
            if text is None:
                continue
            try:
                amount = float(text)
            except ValueError:
                logger.warning("ignoring the malformed saving tag %s=%r", key, text)
                continue
            if math.isfinite(amount):
                parts[lever] = amount
    remainder = saved - sum(parts.values())
    out = {rest: remainder} if remainder or not parts else {}
    out.update(parts)
    return out


__all__ = [
    "BATCH",
    "CACHE",
    "COMPRESSION",
    "LEVERS",
    "PROVIDER_CACHE",
    "ROUTING",
    "SAVING_TAG_PREFIX",
    "TAGGED_LEVERS",
    "SavedEvent",
    "lever_savings",
    "saving_tags",
]
