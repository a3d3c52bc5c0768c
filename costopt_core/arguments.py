"""Constructor keywords a face's pydantic model does not know: refused by name, because a
misspelt or misplaced argument dropped in silence leaves the setting at its default.

Example:
    >>> from costopt_core.arguments import refuse_unknown_arguments
    >>> refuse_unknown_arguments({"ttl_seconds": 5}, {"ttl_seconds"}, "Cache")
    >>> refuse_unknown_arguments({"ttl": 5}, {"ttl_seconds"}, "Cache")
    Traceback (most recent call last):
    ...
    TypeError: Cache got unexpected arguments ['ttl']; it takes ['ttl_seconds']
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

#: Connection settings LangChain and LlamaIndex pass to any provider model; a router has
#: no connection of its own, so it accepts them and leaves them to its tiers.
TIER_CONNECTION_SETTINGS = frozenset(
    {"timeout", "request_timeout", "max_retries", "api_key", "base_url", "streaming"}
)

#: What a router's error adds: the options people most often put there belong elsewhere.
STRATEGY_HINT = (
    "a strategy's options go to the strategy, e.g. strategy=get_strategy('default', threshold=0.4)"
)

# LlamaIndex's serialised components carry their class name among their fields.
_SERIALISATION_KEYS = frozenset({"class_name"})


def refuse_unknown_arguments(
    data: Any,
    known: Iterable[str],
    owner: str,
    *,
    hint: str | None = None,
    allowed: Iterable[str] = (),
) -> None:
    """A ``TypeError`` naming the keywords of ``data`` (a constructor's input) that are not
    ``known`` (nor ``allowed``, nor serialisation keys); ``hint`` ends the message
    (else the known names are listed)."""
    if not isinstance(data, Mapping):
        return
    known = set(known)
    unknown = sorted(set(data) - known - set(allowed) - _SERIALISATION_KEYS)
    if unknown:
        tail = hint if hint is not None else f"it takes {sorted(known)}"
        raise TypeError(f"{owner} got unexpected arguments {unknown}; {tail}")


__all__ = ["STRATEGY_HINT", "TIER_CONNECTION_SETTINGS", "refuse_unknown_arguments"]
