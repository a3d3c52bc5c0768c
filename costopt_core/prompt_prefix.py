"""Provider prompt caching: which providers need a mark, and whether a prefix stays stable.

Example:
    >>> from costopt_core.prompt_prefix import PrefixWatch, caching_rule
    >>> caching_rule("claude-sonnet-4-5").needs_mark, caching_rule("gpt-4o").needs_mark
    (True, False)
    >>> watch = PrefixWatch()
    >>> watch.observe("m", "You are a helpful assistant.") is None
    True
    >>> watch.observe("m", "You are a helpful assistant.") is None
    True
    >>> change = watch.observe("m", "Today is 2026-12-07 09:14. You are a helpful assistant.")
    >>> change.volatile
    ['2026-12-07 09:14']
    >>> watch.stats()["stable_share"]
    0.5

Providers bill a cached prompt prefix (the system prompt, the tools, the earlier turns)
at a fraction of the input price, but only while the prefix is byte-for-byte the same:
one timestamp or request id at the top of a system prompt makes every call a miss.
Anthropic caches only what a ``cache_control`` mark covers; OpenAI and Gemini cache long
prefixes by themselves. :class:`PrefixWatch` remembers a fingerprint of each model's
stable part and says, once, what changed when it changes, so the user can move the
changing text after the stable part. The saving itself is read from the usage the
provider reports (cache-read tokens) and shown apart in the cost report
(:mod:`costopt_core.levers`).
"""

from __future__ import annotations

import hashlib
import logging
import re
import threading
from dataclasses import dataclass
from typing import Any

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class CachingRule:
    """How a provider caches prompt prefixes.

    ``needs_mark``: only prefixes marked cacheable (Anthropic's ``cache_control``) are
    cached. ``min_tokens``: shorter prefixes are never cached.
    """

    provider: str
    needs_mark: bool
    min_tokens: int


ANTHROPIC = CachingRule("anthropic", needs_mark=True, min_tokens=1024)
ANTHROPIC_HAIKU = CachingRule("anthropic", needs_mark=True, min_tokens=2048)
OPENAI = CachingRule("openai", needs_mark=False, min_tokens=1024)
GOOGLE = CachingRule("google", needs_mark=False, min_tokens=1024)
NONE = CachingRule("unknown", needs_mark=False, min_tokens=0)


def caching_rule(model: str | None, llm_type: str | None = None) -> CachingRule:
    """The prompt-caching rule of ``model`` (its name, or its LangChain ``_llm_type``)."""
    text = f"{model or ''} {llm_type or ''}".lower()
    if "claude" in text or "anthropic" in text:
        return ANTHROPIC_HAIKU if "haiku" in text else ANTHROPIC
    if "gemini" in text or "google" in text:
        return GOOGLE
    if re.search(r"\b(gpt-|o\d|openai|chatgpt)", text):
        return OPENAI
    return NONE


#: The call argument that marks a prompt cacheable (Anthropic; LangChain's
#: ``AnthropicPromptCachingMiddleware`` and :class:`PromptCacheMiddleware` set it).
CACHE_MARK = "cache_control"


def settings_for(
    model: str | None, llm_type: str | None, settings: dict[str, Any]
) -> dict[str, Any]:
    """``settings`` without the cache mark for a model whose provider does not take it
    (OpenAI and others reject the argument), unchanged otherwise.

    Example:
        >>> settings_for("gpt-4o-mini", "openai-chat", {"cache_control": {}, "temperature": 0})
        {'temperature': 0}
    """
    if CACHE_MARK not in settings or caching_rule(model, llm_type).needs_mark:
        return settings
    return {key: value for key, value in settings.items() if key != CACHE_MARK}


# Text that changes from call to call and so breaks a cached prefix: timestamps, dates,
# times, UUIDs, long hex ids.
_VOLATILE = re.compile(
    r"\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?)?"
    r"|\b\d{1,2}:\d{2}(?::\d{2})?\b"
    r"|\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b"
    r"|\b[0-9a-f]{16,}\b"
    r"|\b1\d{9}(?:\.\d+)?\b",  # a Unix time
    re.IGNORECASE,
)


def volatile_parts(text: str) -> list[str]:
    """The parts of ``text`` that look like they change per call (dates, ids, times)."""
    return [m.group(0) for m in _VOLATILE.finditer(text)]


@dataclass(frozen=True, slots=True)
class PrefixChange:
    """A model's stable prefix changed: where, and what in it looks volatile."""

    key: str
    offset: int  # first character that differs from the previous prefix
    volatile: list[str]
    text: str = ""  # the new prefix from ``offset`` on (at most 40 characters)

    def describe(self) -> str:
        where = (
            f"it contains {', '.join(repr(v) for v in self.volatile[:3])}, which changes per call"
            if self.volatile
            else f"new text there: {self.text!r}"
        )
        return (
            f"the stable prompt prefix of {self.key!r} (system prompt and tools) changed at "
            f"character {self.offset}, so provider prompt caching cannot reuse it: {where}. "
            "Keep changing text after the stable part (e.g. in the latest user turn)."
        )


class PrefixWatch:
    """Remembers each model's stable prefix (system prompt + tools) and notices changes.

    Thread-safe. Keeps one fingerprint and the last prefix per key (bounded: ``max_keys``).
    """

    def __init__(self, max_keys: int = 256) -> None:
        if isinstance(max_keys, bool) or not isinstance(max_keys, int) or max_keys < 1:
            raise ValueError(f"max_keys must be an int >= 1, got {max_keys!r}")
        self._max_keys = max_keys
        self._last: dict[str, tuple[bytes, str]] = {}
        self._lock = threading.Lock()
        self._warned: set[str] = set()
        self.calls = 0
        self.repeats = 0  # calls whose prefix was the same as the previous one of its key
        self.changes = 0

    def observe(self, key: str, prefix: str) -> PrefixChange | None:
        """Record ``prefix`` for ``key``; a :class:`PrefixChange` when it differs from the
        previous one (logged once per key as a warning)."""
        digest = hashlib.blake2b(prefix.encode("utf-8", "surrogatepass"), digest_size=16)
        fingerprint = digest.digest()
        with self._lock:
            self.calls += 1
            last = self._last.get(key)
            if last is None and len(self._last) >= self._max_keys:
                self._last.pop(next(iter(self._last)))
            self._last[key] = (fingerprint, prefix)
            if last is None:
                return None
            if last[0] == fingerprint:
                self.repeats += 1
                return None
            self.changes += 1
            first_warning = key not in self._warned
            self._warned.add(key)
        before = last[1]
        offset = next(
            (i for i, (a, b) in enumerate(zip(before, prefix, strict=False)) if a != b),
            min(len(before), len(prefix)),
        )
        # The changed token may start before the first differing character ("09:11"
        # after "09:10" differs at its last digit): take matches that reach past it.
        volatile = [m.group(0) for m in _VOLATILE.finditer(prefix) if m.end() > offset]
        change = PrefixChange(key, offset, volatile, prefix[offset : offset + 40])
        if first_warning:
            logger.warning("%s", change.describe())
        return change

    def stats(self) -> dict[str, Any]:
        """Calls seen, prefix changes, and the share of later calls (not a key's first)
        whose prefix was unchanged: the calls a provider cache could serve."""
        with self._lock:
            calls, repeats, changes = self.calls, self.repeats, self.changes
        later = repeats + changes
        return {
            "calls": calls,
            "prefix_changes": changes,
            "stable_share": repeats / later if later else 1.0,
        }


__all__ = [
    "ANTHROPIC",
    "CACHE_MARK",
    "GOOGLE",
    "OPENAI",
    "CachingRule",
    "PrefixChange",
    "PrefixWatch",
    "caching_rule",
    "settings_for",
    "volatile_parts",
]
