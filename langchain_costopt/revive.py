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
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from langchain_core.load import loads
from langchain_core.load.load import Reviver

try:  # the walk's two helpers are private to langchain-core: fall back to loads()
    from langchain_core.load._validation import _is_escaped_dict, _unescape_value
except ImportError:  # pragma: no cover - a langchain-core that moved them
    _is_escaped_dict = _unescape_value = None  # type: ignore[assignment]

#: langchain_core.load.load's nesting bound.
MAX_DEPTH = 200


class Revive:
    """``Revive(classes)(text)``: ``loads(text, allowed_objects=classes)``, faster."""

    def __init__(self, classes: Sequence[Any]) -> None:
        self._classes = list(classes)
        self._reviver = Reviver(self._classes)

    def __call__(self, text: str) -> Any:
        if _is_escaped_dict is None:  # pragma: no cover
            return loads(text, allowed_objects=self._classes)
        return self._walk(json.loads(text), 0)

    def _walk(self, obj: Any, depth: int) -> Any:
        if depth > MAX_DEPTH:
            raise ValueError(f"Cannot load object nested more than {MAX_DEPTH} levels deep.")
        if isinstance(obj, dict):
            if _is_escaped_dict(obj):
                return _unescape_value(obj)
            walked = {
                k: self._walk(v, depth + 1) if isinstance(v, dict | list) else v
                for k, v in obj.items()
            }
            # The Reviver changes only {"lc": 1, ...} dicts; skip its checks on the rest
            # (kwargs, metadata: most of the dicts in a message).
            return self._reviver(walked) if walked.get("lc") == 1 else walked
        if isinstance(obj, list):
            return [
                self._walk(item, depth + 1) if isinstance(item, dict | list) else item
                for item in obj
            ]
        return obj


__all__ = ["Revive"]
