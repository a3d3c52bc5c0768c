"""Fingerprints of what a strategy routes by, for its signature in a router's cache key
(:func:`costopt_core.strategies.strategy_signature`): callables by their code and the
plain data they read, trained state by the content hash of its arrays. Equal in any
process for equal strategies, so a persistent cache still hits after a restart.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import re
import threading
import types
import uuid
import weakref
from typing import Any

import numpy as np


def callable_fingerprint(func: Any) -> str:
    """What a callable routes by, for :func:`strategy_signature`.

    Example:
        >>> def pick(text: str) -> str:
        ...     return "simple"
        >>> callable_fingerprint(pick) == callable_fingerprint(pick)
        True
        >>> callable_fingerprint(pick) == callable_fingerprint(lambda text: "simple")
        False

    A function is named by its qualified name and a hash of its code (bytecode,
    constants, names, nested code) and of the values it reads that are plain data
    (defaults, closure cells, module constants): equal for the same source in any
    process. One that closes over anything else (a model, an object) is unique: it gets
    a random token of its own, never equal to another callable's, nor across processes.
    """
    return _fingerprint(func, depth=0) or _unique_token(func)


def _fingerprint(func: Any, depth: int) -> str | None:
    """A content fingerprint, or ``None`` when ``func`` depends on more than plain data."""
    if depth > _MAX_DEPTH:
        return None
    if isinstance(func, types.BuiltinFunctionType):
        return f"{getattr(func, '__module__', None)}.{func.__qualname__}"
    if isinstance(func, functools.partial):
        inner = _fingerprint(func.func, depth + 1)
        args, keywords = plain_text(func.args), plain_text(dict(func.keywords))
        if inner is None or args is None or keywords is None:
            return None
        return _digest(f"partial({inner}, {args}, {keywords})")
    if isinstance(func, types.FunctionType):
        return _function_fingerprint(func, depth)
    call = inspect.getattr_static(type(func), "__call__", None)
    if isinstance(call, types.FunctionType) and not isinstance(func, type):
        # A callable object: its class's __call__ and its own (plain) settings.
        own = plain_text(getattr(func, "__dict__", {}))
        body = _function_fingerprint(call, depth)
        if own is None or body is None:
            return None
        return _digest(f"{body}{own}")
    return None


def _function_fingerprint(func: types.FunctionType, depth: int) -> str | None:
    code = func.__code__
    read: list[Any] = [func.__defaults__, func.__kwdefaults__]
    for cell in func.__closure__ or ():
        try:
            value = cell.cell_contents
        except ValueError:  # an empty cell (a name assigned later)
            value = None
        read.append(value)
    parts: list[str] = []
    for value in read:
        described = plain_text(value)
        if described is None and callable(value):
            described = _fingerprint(value, depth + 1)
        if described is None:
            return None
        parts.append(described)
    constants = {
        name: described
        for name in code.co_names
        if (described := plain_text(func.__globals__.get(name, _ABSENT), constant=True)) is not None
    }
    return _digest(f"{func.__module__}.{func.__qualname__}|{_code_text(code)}|{parts}|{constants}")


def _code_text(code: types.CodeType) -> str:
    """The bytecode, names and constants of ``code`` (nested code included), without
    anything that varies between processes (addresses, set order)."""
    constants = [
        _code_text(c) if isinstance(c, types.CodeType) else (plain_text(c) or repr(type(c)))
        for c in code.co_consts
    ]
    return f"{code.co_code.hex()}|{code.co_names}|{constants}"


_ABSENT = object()
_MAX_DEPTH = 8
PLAIN_SCALARS = (str, int, float, bool, bytes, complex, type(None), type(Ellipsis))


def plain_text(value: Any, *, constant: bool = False) -> str | None:
    """``value`` as text that is equal in any process for equal plain data (str,
    numbers, None, tuples, lists, sets and str-keyed dicts of them, compiled patterns);
    ``None`` for anything else. ``constant``: None itself does not count either."""
    if value is _ABSENT or (constant and value is None):
        return None
    if isinstance(value, PLAIN_SCALARS):
        return repr(value)
    if isinstance(value, re.Pattern):
        return f"re({value.pattern!r}, {value.flags})"
    if isinstance(value, tuple | list):
        items = [plain_text(v) for v in value]
        return None if None in items else f"{type(value).__name__}({', '.join(items)})"  # type: ignore[arg-type]
    if isinstance(value, set | frozenset):
        members = [plain_text(v) for v in value]
        return None if None in members else f"set({', '.join(sorted(members))})"  # type: ignore[arg-type]
    if isinstance(value, dict):
        pairs = [(plain_text(k), plain_text(v)) for k, v in value.items()]
        if any(k is None or v is None for k, v in pairs):
            return None
        return "{" + ", ".join(f"{k}: {v}" for k, v in sorted(pairs)) + "}"  # type: ignore[arg-type]
    return None


def _digest(text: str) -> str:
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=12).hexdigest()


# Callables that depend on more than plain data: a random token each, for their lifetime.
_TOKENS: weakref.WeakKeyDictionary[Any, str] = weakref.WeakKeyDictionary()
_TOKENS_LOCK = threading.Lock()


def _unique_token(func: Any) -> str:
    name = getattr(func, "__qualname__", type(func).__qualname__)
    try:
        with _TOKENS_LOCK:
            token = _TOKENS.get(func)
            if token is None:
                token = _TOKENS[func] = uuid.uuid4().hex
    except TypeError:  # not weak-referenceable or not hashable: unique for this call
        token = uuid.uuid4().hex
    return f"{name}#{token}"


def arrays_in(key: str, value: Any) -> list[tuple[str, np.ndarray]]:
    """The trained arrays an attribute holds: an array, or a dict of arrays."""
    if isinstance(value, np.ndarray):
        return [(key, value)]
    if isinstance(value, dict) and value and all(isinstance(v, np.ndarray) for v in value.values()):
        return [(f"{key}.{k}", v) for k, v in sorted(value.items())]
    return []


# id(array) -> (weak reference, content hash): each fitted array is hashed once, when a
# router first takes the signature of the strategy holding it (fitted arrays are
# replaced by a new fit or load, never changed in place).
_ARRAY_DIGESTS: dict[int, tuple[weakref.ref[np.ndarray], str]] = {}


def _array_digest(array: np.ndarray) -> str:
    known = _ARRAY_DIGESTS.get(id(array))
    if known is not None and known[0]() is array:
        return known[1]
    content = np.ascontiguousarray(array)
    hasher = hashlib.blake2b(digest_size=12)
    hasher.update(f"{content.dtype.str}{content.shape}".encode())
    hasher.update(content.view(np.uint8).reshape(-1) if content.size else b"")
    digest = hasher.hexdigest()
    key = id(array)
    _ARRAY_DIGESTS[key] = (
        weakref.ref(array, lambda _, key=key: _ARRAY_DIGESTS.pop(key, None)),
        digest,
    )
    return digest


def state_digest(arrays: list[tuple[str, np.ndarray]]) -> str:
    return _digest("|".join(f"{name}={_array_digest(a)}" for name, a in arrays))


__all__ = [
    "PLAIN_SCALARS",
    "arrays_in",
    "callable_fingerprint",
    "plain_text",
    "state_digest",
]
