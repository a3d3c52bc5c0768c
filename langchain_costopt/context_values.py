"""A context variable set for the length of a ``with`` block.

Example:
    >>> from contextvars import ContextVar
    >>> var: ContextVar[str] = ContextVar("var", default="outside")
    >>> with holding(var, "inside"):
    ...     var.get()
    'inside'
    >>> var.get()
    'outside'
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar
from typing import TypeVar

T = TypeVar("T")


@contextlib.contextmanager
def holding(var: ContextVar[T], value: T) -> Iterator[None]:
    """``var`` holds ``value`` inside the block and what it held before after it."""
    token = var.set(value)
    try:
        yield
    finally:
        # A generator closed from another context cannot reset; nothing to undo then.
        with contextlib.suppress(ValueError):
            var.reset(token)


__all__ = ["holding"]
