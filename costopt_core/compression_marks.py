"""Tokens a compressor removed, waiting for the model call that reads its output.

A document compressor runs before the prompt is built, in another step of the same
request: its saving belongs to the next priced model call of that request. The faces
say what a request is (LangChain: the root run; LlamaIndex: the root span) and keep the
removed tokens here under that key until a call takes them.

Example:
    >>> marks = CompressionMarks()
    >>> marks.add("query-1", 120)
    >>> marks.add("query-1", 30)
    >>> bool(marks), marks.take("query-1"), marks.take("query-1"), bool(marks)
    (True, 150, 0, False)
    >>> CompressionMarks.root_of(["span-2", "span-1", "query-1"])
    'query-1'
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Hashable, Sequence
from typing import Generic, TypeVar

#: Requests whose marks no call took yet (compressed, then failed or never called a
#: model) are forgotten oldest first beyond this many.
MARKS_MEMORY = 4096

K = TypeVar("K", bound=Hashable)


class CompressionMarks(Generic[K]):
    """Removed tokens per request, bounded (oldest forgotten first) and thread-safe.

    ``take`` costs one truth test when nothing is pending (the usual case: it runs on
    every model call); ``bool(marks)`` tells whether anything is.

    Example:
        >>> marks = CompressionMarks(memory=2)
        >>> for request in ("a", "b", "c"):
        ...     marks.add(request, 10)
        >>> marks.take("a"), marks.take("c")
        (0, 10)
    """

    __slots__ = ("_lock", "_memory", "_pending")

    def __init__(self, memory: int = MARKS_MEMORY) -> None:
        if type(memory) is not int or memory < 1:
            raise ValueError(f"memory must be an int >= 1, got {memory!r}")
        self._lock = threading.Lock()
        self._memory = memory
        self._pending: OrderedDict[K, int] = OrderedDict()

    @staticmethod
    def root_of(ancestors: Sequence[K]) -> K | None:
        """The request (root) of a step whose open ancestors, nearest first, are given."""
        return ancestors[-1] if ancestors else None

    def __bool__(self) -> bool:
        return bool(self._pending)

    def __len__(self) -> int:
        """How many requests have tokens pending."""
        return len(self._pending)

    def add(self, request: K, removed: int) -> None:
        """Keep ``removed`` more tokens for ``request``'s next model call."""
        if type(removed) is not int or removed <= 0:
            return
        with self._lock:
            self._pending[request] = self._pending.get(request, 0) + removed
            while len(self._pending) > self._memory:
                self._pending.popitem(last=False)

    def take(self, request: K) -> int:
        """The tokens pending for ``request`` (0 if none), forgotten once taken."""
        if not self._pending:
            return 0
        with self._lock:
            return self._pending.pop(request, 0)


__all__ = ["MARKS_MEMORY", "CompressionMarks"]
