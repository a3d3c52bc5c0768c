"""Keyword arguments that several functions take, defined once as a frozen dataclass.

Example:
    >>> import inspect
    >>> from dataclasses import dataclass
    >>> @dataclass(frozen=True)
    ... class Paging(KeywordOptions):
    ...     page_size: int = 10
    >>> @Paging.keywords()
    ... def fetch(query: str, **options: Any) -> int:
    ...     return Paging.of(options, "fetch").page_size
    >>> fetch("x", page_size=5), list(inspect.signature(fetch).parameters)
    (5, ['query', 'page_size'])
    >>> fetch("x", size=5)
    Traceback (most recent call last):
    ...
    TypeError: fetch() got unexpected keyword arguments: ['size']

A sync function and its async twin (or two faces of one engine call) that take the same
long list of keywords would otherwise repeat it in each signature and again in each
forwarding call. They take ``**options`` instead, read them with :meth:`of` (or
:meth:`split`, when the other keywords mean something else), and :meth:`keywords` shows
the fields in the function's signature, so ``help()`` and ``inspect`` list them as if
they were written out.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable, Mapping
from typing import Any, Self, TypeVar

F = TypeVar("F", bound=Callable[..., Any])


class KeywordOptions:
    """Base of a frozen dataclass whose fields are keyword arguments of some functions."""

    @classmethod
    def split(cls, keywords: Mapping[str, Any]) -> tuple[Self, dict[str, Any]]:
        """The options among ``keywords``, and the keywords that are not options."""
        names = {f.name for f in dataclasses.fields(cls) if f.init}  # type: ignore[arg-type]
        mine = {k: v for k, v in keywords.items() if k in names}
        rest = {k: v for k, v in keywords.items() if k not in names}
        return cls(**mine), rest

    @classmethod
    def of(cls, keywords: Mapping[str, Any], function: str) -> Self:
        """The options in ``keywords``; any other keyword is a TypeError naming ``function``."""
        options, rest = cls.split(keywords)
        if rest:
            raise TypeError(f"{function}() got unexpected keyword arguments: {sorted(rest)}")
        return options

    @classmethod
    def keywords(cls, *, more: bool = False) -> Callable[[F], F]:
        """Decorator: the function's signature lists the fields as keyword-only arguments,
        in place of its ``**`` argument (kept after them with ``more=True``: keywords that
        are not options, e.g. sent on with a request)."""
        fields = [f for f in dataclasses.fields(cls) if f.init]  # type: ignore[arg-type]

        def sign(func: F) -> F:
            signature = inspect.signature(func)
            own = list(signature.parameters.values())
            rest = [p for p in own if p.kind is inspect.Parameter.VAR_KEYWORD]
            listed = [
                inspect.Parameter(
                    f.name, inspect.Parameter.KEYWORD_ONLY, default=_default(f), annotation=f.type
                )
                for f in fields
                if f.name not in signature.parameters
            ]
            plain = [p for p in own if p.kind is not inspect.Parameter.VAR_KEYWORD]
            func.__signature__ = signature.replace(  # type: ignore[attr-defined]
                parameters=[*plain, *listed, *(rest if more else [])]
            )
            return func

        return sign


def _default(field: dataclasses.Field[Any]) -> Any:
    if field.default is not dataclasses.MISSING:
        return field.default
    if field.default_factory is not dataclasses.MISSING:
        return field.default_factory()
    return inspect.Parameter.empty


__all__ = ["KeywordOptions"]
