"""Routing strategies: objects with ``route(text) -> RouteDecision``.

Example:
    >>> from costopt_core import as_strategy, get_strategy
    >>> get_strategy("rules").route("请翻译这句话").tier
    'simple'
    >>> as_strategy(None).route("Translate 'hello' into French").tier  # the default
    'simple'
    >>> router = get_strategy("length", threshold=0.5, tiers=("cheap", "strong"))
    >>> router.route("hi").tier
    'cheap'

Built-ins by name: ``"default"`` (what a router given no strategy uses: the seed's rules
on prompts with the seed's cue words, zero-shot on the rest), ``"rules"`` (the seed's rule
set, exactly), ``"length"``, ``"zero-shot"``, ``"knn"`` (needs ``fit``), ``"cascade"``.
Any strategy's score can be re-cut into tiers with ``threshold=`` (two tiers) or
``thresholds=`` (N-1 ascending cut points), which is how a user moves the cheap/strong
split.
"""

from __future__ import annotations

import bisect
import functools
import hashlib
import importlib
import inspect
import math
import re
import threading
import types
import uuid
import weakref
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from costopt_core.decision import LADDER, RouteDecision, RoutingStrategy
from costopt_core.tokens import estimate_tokens

StrategyLike = RoutingStrategy | Callable[[str], Any] | str | None


class CallableStrategy:
    """Adapts a plain ``text -> tier name`` (or ``-> RouteDecision``) callable."""

    def __init__(self, func: Callable[[str], Any]) -> None:
        if not callable(func):
            raise TypeError(f"strategy callable expected, got {type(func).__name__}")
        self.func = func
        self.name = getattr(func, "__name__", type(func).__name__)

    def route(self, text: str) -> RouteDecision:
        result = self.func(text)
        if isinstance(result, RouteDecision):
            return result
        if not isinstance(result, str):
            raise TypeError(
                f"strategy {self.name!r} must return a tier name (str) or RouteDecision, "
                f"got {type(result).__name__}"
            )
        score = LADDER.index(result) / (len(LADDER) - 1) if result in LADDER else 0.5
        return RouteDecision(result, score, f"callable {self.name}")


class LengthStrategy:
    """Longer prompts need stronger models: score = tokens / (tokens + midpoint)."""

    def __init__(self, midpoint_tokens: int = 150, tiers: Sequence[str] = LADDER) -> None:
        if midpoint_tokens < 1:
            raise ValueError(f"midpoint_tokens must be >= 1, got {midpoint_tokens!r}")
        self.midpoint_tokens = midpoint_tokens
        self.tiers = check_tiers(tiers)

    def route(self, text: str) -> RouteDecision:
        tokens = estimate_tokens(text)
        score = tokens / (tokens + self.midpoint_tokens)
        index = min(len(self.tiers) - 1, int(score * len(self.tiers)))
        return RouteDecision(self.tiers[index], score, f"~{tokens} tokens")


class ThresholdStrategy:
    """Re-cuts another strategy's score into tiers at user-chosen cut points."""

    def __init__(
        self,
        base: StrategyLike,
        thresholds: Sequence[float],
        tiers: Sequence[str] | None = None,
    ) -> None:
        self.base = as_strategy(base)
        cuts = [float(t) for t in thresholds]
        if not cuts or any(not 0.0 <= c <= 1.0 or math.isnan(c) for c in cuts):
            raise ValueError(f"thresholds must be numbers in [0, 1], got {list(thresholds)!r}")
        if cuts != sorted(cuts):
            raise ValueError(f"thresholds must be ascending, got {cuts!r}")
        if tiers is None:
            tiers = ("weak", "strong") if len(cuts) == 1 else LADDER
        self.tiers = check_tiers(tiers)
        if len(self.tiers) != len(cuts) + 1:
            raise ValueError(
                f"{len(cuts)} thresholds need {len(cuts) + 1} tiers, got {list(self.tiers)!r}"
            )
        self.thresholds = tuple(cuts)

    def route(self, text: str) -> RouteDecision:
        inner = self.base.route(text)
        tier = self.tiers[bisect.bisect_right(self.thresholds, inner.score)]
        return RouteDecision(tier, inner.score, f"{inner.reason}; score vs {self.thresholds}")

    def __getattr__(self, name: str) -> Any:
        # fit / save / check_answer etc. of the wrapped strategy stay reachable.
        if name == "base":
            raise AttributeError(name)
        return getattr(self.base, name)


def strategy_signature(strategy: Any) -> str:
    """A stable description of a strategy for a router's cache key: routers that route
    differently never share cached answers.

    Example:
        >>> a = strategy_signature(as_strategy(lambda text: "simple"))
        >>> b = strategy_signature(as_strategy(lambda text: "complex"))
        >>> a == b, a == strategy_signature(as_strategy(lambda text: "simple"))
        (False, True)

    It holds the class and its public settings (nested strategies by their own
    signature, callables by :func:`callable_fingerprint`), and the content hash of any
    trained state (numpy arrays, public or private: a learned strategy's fitted arrays),
    so two routers fitted on different labels differ, and the same trained file loaded
    in another process gives the same signature (a persistent cache still hits).
    """
    cls = type(strategy)
    settings: dict[str, Any] = {}
    arrays: list[tuple[str, np.ndarray]] = []
    for key, value in sorted(getattr(strategy, "__dict__", {}).items()):
        found = _arrays_in(key, value)
        if found:
            arrays.extend(found)
            continue
        if key.startswith("_"):
            continue
        if callable(getattr(value, "route", None)):
            settings[key] = strategy_signature(value)
        elif callable(value):
            settings[key] = callable_fingerprint(value)
        elif isinstance(value, _PLAIN_SCALARS) or (
            isinstance(value, tuple) and all(isinstance(v, _PLAIN_SCALARS) for v in value)
        ):
            settings[key] = value  # as it is: signatures of such settings stay as they were
        elif (described := _plain(value)) is not None:
            settings[key] = described
    if isinstance(strategy, CallableStrategy):
        settings["func"] = callable_fingerprint(strategy.func)
    if arrays:
        settings["state"] = _state_digest(arrays)
    return f"{cls.__module__}.{cls.__qualname__}{settings}"


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
        args, keywords = _plain(func.args), _plain(dict(func.keywords))
        if inner is None or args is None or keywords is None:
            return None
        return _digest(f"partial({inner}, {args}, {keywords})")
    if isinstance(func, types.FunctionType):
        return _function_fingerprint(func, depth)
    call = inspect.getattr_static(type(func), "__call__", None)
    if isinstance(call, types.FunctionType) and not isinstance(func, type):
        # A callable object: its class's __call__ and its own (plain) settings.
        own = _plain(getattr(func, "__dict__", {}))
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
        described = _plain(value)
        if described is None and callable(value):
            described = _fingerprint(value, depth + 1)
        if described is None:
            return None
        parts.append(described)
    constants = {
        name: described
        for name in code.co_names
        if (described := _plain(func.__globals__.get(name, _ABSENT), constant=True)) is not None
    }
    return _digest(f"{func.__module__}.{func.__qualname__}|{_code_text(code)}|{parts}|{constants}")


def _code_text(code: types.CodeType) -> str:
    """The bytecode, names and constants of ``code`` (nested code included), without
    anything that varies between processes (addresses, set order)."""
    constants = [
        _code_text(c) if isinstance(c, types.CodeType) else (_plain(c) or repr(type(c)))
        for c in code.co_consts
    ]
    return f"{code.co_code.hex()}|{code.co_names}|{constants}"


_ABSENT = object()
_MAX_DEPTH = 8
_PLAIN_SCALARS = (str, int, float, bool, bytes, complex, type(None), type(Ellipsis))


def _plain(value: Any, *, constant: bool = False) -> str | None:
    """``value`` as text that is equal in any process for equal plain data (str,
    numbers, None, tuples, lists, sets and str-keyed dicts of them, compiled patterns);
    ``None`` for anything else. ``constant``: None itself does not count either."""
    if value is _ABSENT or (constant and value is None):
        return None
    if isinstance(value, _PLAIN_SCALARS):
        return repr(value)
    if isinstance(value, re.Pattern):
        return f"re({value.pattern!r}, {value.flags})"
    if isinstance(value, tuple | list):
        items = [_plain(v) for v in value]
        return None if None in items else f"{type(value).__name__}({', '.join(items)})"  # type: ignore[arg-type]
    if isinstance(value, set | frozenset):
        members = [_plain(v) for v in value]
        return None if None in members else f"set({', '.join(sorted(members))})"  # type: ignore[arg-type]
    if isinstance(value, dict):
        pairs = [(_plain(k), _plain(v)) for k, v in value.items()]
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


def _arrays_in(key: str, value: Any) -> list[tuple[str, np.ndarray]]:
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


def _state_digest(arrays: list[tuple[str, np.ndarray]]) -> str:
    return _digest("|".join(f"{name}={_array_digest(a)}" for name, a in arrays))


def check_tiers(tiers: Sequence[str]) -> tuple[str, ...]:
    """A strategy's own tier names as a tuple: two or more distinct non-empty str."""
    if isinstance(tiers, str) or not all(isinstance(t, str) and t for t in tiers):
        raise TypeError(f"tiers must be a sequence of non-empty str, got {tiers!r}")
    if len(tiers) < 2 or len(set(tiers)) != len(tiers):
        raise ValueError(f"tiers must hold at least 2 distinct names, got {list(tiers)!r}")
    return tuple(tiers)


# name -> "module:attribute"; modules load lazily so heavy strategies cost nothing unused.
_REGISTRY: dict[str, str] = {
    "default": "costopt_core.default_strategy:DefaultStrategy",
    "rules": "costopt_core.classify:ComplexityClassifier",
    "length": "costopt_core.strategies:LengthStrategy",
    "zero-shot": "costopt_core.zero_shot:ZeroShotStrategy",
    "knn": "costopt_core.knn:KNNStrategy",
    "logistic": "costopt_core.logistic:LogisticStrategy",
    "cascade": "costopt_core.cascade:CascadeStrategy",
}


def available_strategies() -> list[str]:
    return sorted(_REGISTRY)


def strategy_class(name: str) -> Any:
    """The class (or factory) behind a built-in strategy name."""
    if not isinstance(name, str):
        raise TypeError(f"strategy name must be str, got {type(name).__name__}")
    key = name.strip().lower().replace("_", "-")
    if key == "zeroshot":
        key = "zero-shot"
    if key not in _REGISTRY:
        raise ValueError(f"unknown strategy {name!r}; choose one of {available_strategies()}")
    module_name, attr = _REGISTRY[key].split(":")
    return getattr(importlib.import_module(module_name), attr)


def get_strategy(name: str = "default", **options: Any) -> RoutingStrategy:
    """Build a built-in strategy by name.

    ``path=`` loads a trained router saved by ``costopt train-router`` or ``.save()``
    (``embeddings=`` may accompany it). ``threshold=`` (one cut, two tiers) or
    ``thresholds=`` (ascending cuts) with an optional ``tiers=`` wrap the strategy in a
    :class:`ThresholdStrategy`.
    """
    factory = strategy_class(name)
    path = options.pop("path", None)
    if path is not None:
        loader = getattr(factory, "load", None)
        if not callable(loader):
            raise ValueError(f"strategy {name!r} is not trained, so path= has nothing to load")
        return loader(path, **options)  # type: ignore[no-any-return]
    threshold = options.pop("threshold", None)
    thresholds = options.pop("thresholds", None)
    if threshold is not None and thresholds is not None:
        raise ValueError("pass either threshold= or thresholds=, not both")
    tiers = options.pop("tiers", None) if (threshold, thresholds) != (None, None) else None
    strategy = factory(**options)
    if threshold is not None:
        thresholds = [threshold]
    if thresholds is not None:
        return ThresholdStrategy(strategy, thresholds, tiers)
    return strategy


def as_strategy(strategy: StrategyLike) -> RoutingStrategy:
    """Accept a strategy object, a built-in name, a plain callable, or None (the default
    strategy, see :mod:`costopt_core.default_strategy`)."""
    if strategy is None:
        return get_strategy("default")
    if isinstance(strategy, str):
        return get_strategy(strategy)
    if callable(getattr(strategy, "route", None)):
        return strategy  # type: ignore[return-value]
    if callable(strategy):
        return CallableStrategy(strategy)
    raise TypeError(
        "strategy must be a name, an object with .route(text), or a callable text -> tier; "
        f"got {type(strategy).__name__}"
    )
