"""Values to and from PostgreSQL rows: text as it was given, and cache entries read back.

PostgreSQL's ``text`` and ``jsonb`` refuse the NUL character (``\\x00``, ``\\u0000``),
which a model name, a tenant, a prompt or an answer may contain: such text is stored
escaped and read back as it was.

Example:
    >>> from costopt_core.stores.postgres.text import from_db, to_db
    >>> to_db("gpt-4o")  # text without NUL is stored as it is
    'gpt-4o'
    >>> stored = to_db("evil\\x00model 100%")
    >>> "\\x00" in stored, from_db(stored) == "evil\\x00model 100%"
    (False, True)

The escape: a text holding a NUL, or starting with the marker ``U+FDD0`` (a Unicode
noncharacter, never in real text), is stored as the marker followed by the text with
``%`` written ``%25`` and NUL written ``%00``. Every ``%`` of the escaped part is then
followed by ``25`` or ``00``, so reading back is unambiguous; any other text is stored
unchanged, so existing rows, SQL filters and indexes see plain text.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from typing import Any

from costopt_core.stores.base import CacheEntry, MalformedRow, MalformedRows

_MARK = "\ufdd0"
_ESCAPED = re.compile("%(25|00)")


def to_db(text: str) -> str:
    """``text`` in a form PostgreSQL stores (see the module docstring)."""
    if "\x00" not in text and not text.startswith(_MARK):
        return text
    return _MARK + text.replace("%", "%25").replace("\x00", "%00")


def from_db(stored: str) -> str:
    """The text :func:`to_db` was given."""
    if not stored.startswith(_MARK):
        return stored
    return _ESCAPED.sub(lambda m: "%" if m.group(1) == "25" else "\x00", stored[len(_MARK) :])


def json_to_db(value: Any) -> Any:
    """``value`` (JSON data) with every string, keys included, passed through :func:`to_db`.

    Example:
        >>> json_from_db(json_to_db({"tenant\\x00": ["a\\x00b", 1]}))
        {'tenant\\x00': ['a\\x00b', 1]}
    """
    return _walk(value, to_db)


def json_from_db(value: Any) -> Any:
    """``value`` read back from a ``jsonb`` column written with :func:`json_to_db`."""
    return _walk(value, from_db)


def _walk(value: Any, convert: Any) -> Any:
    if isinstance(value, str):
        return convert(value)
    if isinstance(value, dict):
        return {
            convert(k) if isinstance(k, str) else k: _walk(v, convert) for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [_walk(v, convert) for v in value]
    return value


def text_hash(text: str) -> bytes:
    """The key a text is indexed by (texts can be longer than a btree entry allows)."""
    return hashlib.sha256(text.encode("utf-8")).digest()


def entry_from_row(
    partition: str, row: Sequence[Any], malformed: MalformedRows
) -> CacheEntry | None:
    """The entry of an "exact" or "search" row (text, response, created_at, last_used_at,
    hit_count, metadata), or ``None`` (counted) when it does not hold one."""
    text, response, created, used, hits, metadata = row[:6]
    try:
        if type(text) is not str or type(response) is not str:
            raise MalformedRow("text and response must be text")
        if not isinstance(metadata, dict):  # jsonb arrives decoded: valid JSON, another kind
            raise MalformedRow(f"metadata is not a JSON object: {metadata!r:.60}")
        return CacheEntry.from_row(
            partition, from_db(text), from_db(response), created, used, hits, json_from_db(metadata)
        )
    except MalformedRow as exc:
        malformed.skip((partition, text), exc)
        return None


__all__ = ["entry_from_row", "from_db", "json_from_db", "json_to_db", "text_hash", "to_db"]
