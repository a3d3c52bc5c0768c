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
import importlib
import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from costopt_core.decision import LADDER, RouteDecision, RoutingStrategy
from costopt_core.fingerprint import (
    PLAIN_SCALARS,
    arrays_in,
    callable_fingerprint,
    plain_text,
    state_digest,
)
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
        found = arrays_in(key, value)
        if found:
            arrays.extend(found)
            continue
        if key.startswith("_"):
            continue
        if callable(getattr(value, "route", None)):
            settings[key] = strategy_signature(value)
        elif callable(value):
            settings[key] = callable_fingerprint(value)
        elif isinstance(value, PLAIN_SCALARS) or (
            isinstance(value, tuple) and all(isinstance(v, PLAIN_SCALARS) for v in value)
        ):
            settings[key] = value  # as it is: signatures of such settings stay as they were
        elif (described := plain_text(value)) is not None:
            settings[key] = described
    if isinstance(strategy, CallableStrategy):
        settings["func"] = callable_fingerprint(strategy.func)
    if arrays:
        settings["state"] = state_digest(arrays)
    return f"{cls.__module__}.{cls.__qualname__}{settings}"


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
