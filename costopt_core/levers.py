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
from collections.abc import Iterator, Mapping
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


class SavingTags(Mapping[str, str]):
    """A record's tags holding its lever parts as numbers until someone reads them.

    Reads as ``{**base, **saving_tags(parts)}``; the parts are written as text (a float
    ``repr`` per part) only on first read. Every call that reads provider-cached tokens
    carries a part, and few records are ever read one by one: formatting them when
    recorded cost ~1 us per such call, paid by every call and read by nobody.

    Example:
        >>> tags = SavingTags({"team": "search"}, {PROVIDER_CACHE: 0.25, BATCH: 0.0})
        >>> dict(tags)
        {'team': 'search', 'costopt.saved.provider_cache': '0.25'}
        >>> tags == {"team": "search", "costopt.saved.provider_cache": "0.25"}
        True
        >>> lever_savings_of(tags)
        {'provider_cache': 0.25}
    """

    __slots__ = ("_base", "_parts", "_text")

    def __init__(self, base: Mapping[str, str], parts: Mapping[str, float]) -> None:
        self._base = base
        self._parts = parts
        self._text: dict[str, str] | None = None

    def _tags(self) -> dict[str, str]:
        text = self._text
        if text is None:
            # Two threads may both build it: they build the same dict, and the second
            # assignment replaces the first whole.
            text = {**self._base, **saving_tags(self._parts)}
            self._text = text
        return text

    def __getitem__(self, key: str) -> str:
        return self._tags()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._tags())

    def __len__(self) -> int:
        return len(self._tags())

    def __bool__(self) -> bool:
        # Without it, truth would call __len__ and format the parts.
        return bool(self._base) or any(self._parts.values())

    def __repr__(self) -> str:
        return repr(self._tags())

    def parts(self) -> dict[str, float]:
        """The lever parts as numbers (zero and non-finite parts left out, as when read
        back from text), without formatting them."""
        return {
            lever: float(amount)
            for lever, amount in self._parts.items()
            if amount and math.isfinite(amount)
        }


def lever_savings_of(tags: Mapping[str, str]) -> dict[str, float]:
    """The tagged levers' parts that ``tags`` holds (malformed ones logged and skipped)."""
    if type(tags) is SavingTags:
        return tags.parts()
    parts: dict[str, float] = {}
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
    return parts


def lever_savings(record: SavedEvent) -> dict[str, float]:
    """``record.saved_usd`` split by lever (see the module's rule); ``{}`` when unknown."""
    saved = record.saved_usd
    if saved is None:
        return {}
    rest = CACHE if record.kind == "cache_hit" else ROUTING
    tags = record.tags
    parts = lever_savings_of(tags) if tags else {}
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
    "SavingTags",
    "lever_savings",
    "lever_savings_of",
    "saving_tags",
]
