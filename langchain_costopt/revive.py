"""LangChain's ``loads`` restricted to a fixed allow-list, without its per-call setup.

Example:
    >>> from langchain_core.load import dumps
    >>> from langchain_core.messages import AIMessage, HumanMessage
    >>> revive = Revive([AIMessage, HumanMessage])
    >>> revive(dumps([HumanMessage("hi"), AIMessage("hello")]))[1].content
    'hello'

Why: ``langchain_core.load.loads(text, allowed_objects=[...])`` builds a new ``Reviver``
on every call, and building one resolves the allow-list against all of LangChain's
serialization mappings: about 1 ms, more than the whole vector search of a cache lookup
at 100k entries. The cache revives every prompt it keys and every answer it serves, so
it builds the ``Reviver`` once and walks the JSON as ``langchain_core.load.load`` does
(escaped user dicts are unescaped, not revived; nesting is bounded). Same allow-list,
same result, no arbitrary objects.

Two more savings, same results (``tests/unit_tests/langchain/test_cache_prompt_keys.py``
holds them to ``loads``): per object, the ``Reviver`` checks the class path against the
allow-list and the trusted namespaces and imports the class (~5 us of its ~11 us);
those steps depend on the path only, so a path it accepted once is resolved from a
table afterwards (the ``init_validator`` and the class's own validation still run on
every object). And the walk runs as ``json.loads``'s ``object_hook``, which visits the
dicts in the walk's order (values first) from C, when the text cannot nest past the
bound and holds no escaped dict; otherwise, or when an object does not revive, the
Python walk decides. A two-message chat prompt: ~32 -> ~21 us; a chat answer
(``ChatGeneration``): ~43 -> ~29 us.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

from langchain_core.load import loads
from langchain_core.load.load import Reviver

try:  # the walk's two helpers are private to langchain-core: fall back to loads()
    from langchain_core.load._validation import _is_escaped_dict, _unescape_value
except ImportError:  # pragma: no cover - a langchain-core that moved them
    _is_escaped_dict = _unescape_value = None  # type: ignore[assignment]

#: langchain_core.load.load's nesting bound (langchain-core >= 1.7.7; earlier 1.7 releases have
#: none, and a prompt nested deeper is keyed as plain text here on every version).
MAX_DEPTH = 200

_ESCAPE_KEY = '"__lc_escaped__"'

# A \u escape of an ASCII character: how a JSON text could spell "lc" or the escape
# key without those letters (LangChain's dumps never does).
_ASCII_ESCAPE = re.compile(r"\\u00[0-7]")

# What json.loads builds that the walk descends into (a tuple: ``dict | list`` would
# build a union object on every test).
_CONTAINERS = (dict, list)


class _UseWalk(Exception):
    """Decoding met what the walk must decide: an escaped user dict, or an object that
    does not revive (it may sit inside an escaped dict, which the walk leaves alone)."""


class Revive:
    """``Revive(classes)(text)``: ``loads(text, allowed_objects=classes)``, faster."""

    def __init__(self, classes: Sequence[Any]) -> None:
        self._classes = list(classes)
        self._reviver = Reviver(self._classes)
        # Class path -> class, for paths the Reviver accepted (written once per path).
        self._resolved: dict[tuple[str, ...], type] = {}

    def __call__(self, text: str) -> Any:
        if _is_escaped_dict is None:  # pragma: no cover
            return loads(text, allowed_objects=self._classes)
        # Cannot nest deeper than the bound, holds no escaped dict (as dumps writes one):
        # JSON's own parser does the walk, in C.
        if text.count("{") + text.count("[") <= MAX_DEPTH and _ESCAPE_KEY not in text:
            try:
                return json.loads(text, object_hook=self._decoded)
            except _UseWalk:
                pass
        return self._walk(json.loads(text), 0)

    def _decoded(self, obj: dict[str, Any]) -> Any:
        """The walk's step for one dict, as the decoder finishes it (its values first,
        as the walk goes)."""
        if _is_escaped_dict(obj):  # spelled with \u escapes: the walk unescapes it
            raise _UseWalk
        if obj.get("lc") != 1:
            return obj
        try:
            return self._revive(obj)
        except Exception as exc:
            raise _UseWalk from exc

    def _walk(self, obj: Any, depth: int) -> Any:
        if depth > MAX_DEPTH:
            raise ValueError(f"Cannot load object nested more than {MAX_DEPTH} levels deep.")
        if isinstance(obj, dict):
            if _is_escaped_dict(obj):
                return _unescape_value(obj)
            walked = {
                k: self._walk(v, depth + 1) if isinstance(v, _CONTAINERS) else v
                for k, v in obj.items()
            }
            # The Reviver changes only {"lc": 1, ...} dicts; skip its checks on the rest
            # (kwargs, metadata: most of the dicts in a message).
            return self._revive(walked) if walked.get("lc") == 1 else walked
        if isinstance(obj, list):
            return [
                self._walk(item, depth + 1) if isinstance(item, _CONTAINERS) else item
                for item in obj
            ]
        return obj

    def revive_object(self, value: dict[str, Any]) -> Any:
        """The object of one decoded ``{"lc": 1, ...}`` dict of a document that
        :func:`flat_objects` accepts: what ``loads`` gives for it there."""
        return self._revive(value)

    def _revive(self, value: dict[str, Any]) -> Any:
        """``self._reviver(value)``; a constructor of a class path accepted before skips
        the Reviver's path checks and import, which would give the same class again."""
        path = _constructor_path(value)
        cls = None if path is None else self._resolved.get(path)
        if cls is None:
            revived = self._reviver(value)
            if path is not None and type(revived) in self._classes:
                self._resolved[path] = type(revived)
            return revived
        kwargs = value.get("kwargs", {})
        if self._reviver.init_validator is not None:
            self._reviver.init_validator(path, kwargs)
        return cls(**kwargs)


def flat_objects(text: str, value: Any) -> bool:
    """Whether ``value`` (``json.loads(text)``) is a list of ``{"lc": 1, ...}`` dicts that
    hold no other ``"lc"`` key and no escaped dict, nested less than :data:`MAX_DEPTH`
    deep (a chat prompt as LangChain's ``dumps`` writes it): then ``loads`` gives each
    one's :meth:`Revive.revive_object`, and its kwargs are as they were written. Read
    off the text: counting in C is cheaper than walking the dicts.

    Example:
        >>> from langchain_core.load import dumps
        >>> from langchain_core.messages import HumanMessage
        >>> text = dumps([HumanMessage("hi")])
        >>> flat_objects(text, json.loads(text)), flat_objects("[1]", [1])
        (True, False)
    """
    return (
        isinstance(value, list)
        and all(isinstance(item, dict) and item.get("lc") == 1 for item in value)
        and text.count('"lc"') == len(value)
        and text.count("{") + text.count("[") <= MAX_DEPTH
        and _ESCAPE_KEY not in text
        and _ASCII_ESCAPE.search(text) is None
    )


def _constructor_path(value: dict[str, Any]) -> tuple[str, ...] | None:
    """The class path of a ``{"lc": 1, "type": "constructor", "id": [...]}`` dict."""
    ident = value.get("id")
    if value.get("type") != "constructor" or not isinstance(ident, list):
        return None
    if not all(isinstance(part, str) for part in ident):
        return None
    return tuple(ident)


__all__ = ["Revive", "flat_objects"]
