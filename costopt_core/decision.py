"""What a routing strategy returns, and how a face maps it onto its own tiers."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol, runtime_checkable

# The seed's tier ladder, cheapest first; strategies that know no user tiers use it.
LADDER: tuple[str, ...] = ("simple", "medium", "complex")


@dataclass(frozen=True)
class RouteDecision:
    """A routing decision: which tier, how hard the prompt looked, and why.

    ``score`` is in [0, 1]; higher means the prompt needs a stronger tier.
    """

    tier: str
    score: float
    reason: str
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.tier, str) or not self.tier:
            raise TypeError(f"RouteDecision.tier must be a non-empty str, got {self.tier!r}")
        score = float(self.score)
        if not 0.0 <= score <= 1.0:
            raise ValueError(f"RouteDecision.score must be in [0, 1], got {self.score!r}")
        object.__setattr__(self, "score", score)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        extra = data.pop("extra")
        data.update(extra)
        return data


@runtime_checkable
class RoutingStrategy(Protocol):
    """Anything with ``route(text) -> RouteDecision``."""

    def route(self, text: str) -> RouteDecision: ...


def resolve_tier(decision: RouteDecision, tiers: Sequence[str]) -> str:
    """Map a decision onto a face's tiers (ordered cheapest first).

    An exact name wins. A ladder name ("simple" / "medium" / "complex") the user did
    not configure goes to the nearest configured ladder tier above it (quality first),
    else below; with no ladder names configured at all, to the tier at the same place
    on the user's ladder, rounded up (quality first again: in a two-tier router
    "medium" is the strong tier, whatever the tiers are called). Any other name is a
    ``ValueError`` naming the configured tiers.

    Example:
        >>> d = RouteDecision("medium", 0.3, "")
        >>> resolve_tier(d, ["cheap", "strong"]), resolve_tier(d, ["simple", "complex"])
        ('strong', 'complex')
        >>> simple = RouteDecision("simple", 0.9, "")
        >>> resolve_tier(d, ["s", "m", "l", "xl"]), resolve_tier(simple, ["a", "b"])
        ('l', 'a')
    """
    if decision.tier in tiers:
        return decision.tier
    if decision.tier in LADDER:
        rank = LADDER.index(decision.tier)
        present = [t for t in LADDER if t in tiers]
        if present:
            above = [t for t in present if LADDER.index(t) >= rank]
            return above[0] if above else present[-1]
        # The same place on the user's ladder, rounded up: rank / (ladder - 1) of the way.
        steps = len(LADDER) - 1
        index = -(-rank * (len(tiers) - 1) // steps)
        return tiers[index]
    # A typo ("Simple", "cheap") must not quietly send every call to some tier.
    raise ValueError(
        f"strategy chose tier {decision.tier!r}, which is not one of the configured tiers "
        f"{list(tiers)!r}"
    )


def check_tier_mapping(
    mapping: Any, *, argument: str, model_type: type, model_kind: str
) -> dict[str, Any]:
    """Validate a face's ``{tier: model}`` mapping (cheapest first, two or more tiers)
    and return it as a plain dict; errors name ``argument`` and what was expected."""
    if not isinstance(mapping, Mapping):
        raise TypeError(
            f"{argument} must be a mapping of tier name -> {model_kind}, got "
            f"{type(mapping).__name__}"
        )
    if len(mapping) < 2:
        raise ValueError(f"{argument} needs at least 2 tiers, got {len(mapping)}")
    for tier, model in mapping.items():
        if not isinstance(tier, str) or not tier:
            raise TypeError(f"tier names must be non-empty str, got {tier!r}")
        if not isinstance(model, model_type):
            raise TypeError(
                f"{argument}[{tier!r}] must be a {model_kind}, got {type(model).__name__}"
            )
    return dict(mapping)


def with_checked_tiers(data: Any, field: str, model_type: type, model_kind: str) -> Any:
    """A face's pydantic "before" validator: ``data[field]`` checked as a tier mapping
    (see :func:`check_tier_mapping`); anything but a dict passes unchanged."""
    if not isinstance(data, dict):
        return data
    mapping = check_tier_mapping(
        data.get(field), argument=field, model_type=model_type, model_kind=model_kind
    )
    return {**data, field: mapping}


def check_strategy_tiers(strategy: Any, tiers: Sequence[str], *, argument: str) -> dict[str, str]:
    """A strategy that names its own tiers (beyond the ladder) must name configured ones,
    or as many tiers as there are, any configured name in its own place: then they map
    by place, cheapest first (a router trained as weak / strong, ``costopt
    train-router``'s default, deploys on tiers named cheap / strong). Returns that
    mapping, empty when none is needed.

    Example:
        >>> from costopt_core.strategies import get_strategy
        >>> trained = get_strategy("length", threshold=0.5, tiers=("weak", "strong"))
        >>> check_strategy_tiers(trained, ("cheap", "premium"), argument="models")
        {'weak': 'cheap', 'strong': 'premium'}
    """
    declared = getattr(strategy, "tiers", None)
    if declared and not set(declared) <= set(LADDER):
        unknown = [t for t in declared if t not in tiers]
        if (
            unknown
            and len(declared) == len(tiers)
            and all(t == tier for t, tier in zip(declared, tiers, strict=True) if t in tiers)
        ):
            return dict(zip(declared, tiers, strict=True))
        if unknown:
            raise ValueError(
                f"strategy routes to tiers {unknown!r} that are not in {argument} ({list(tiers)!r})"
            )
    return {}


def routing_info(
    decision: RouteDecision, tier: str, model: str, fallback_from: str | None = None
) -> dict[str, Any]:
    """The routing record both faces publish with every answer: ``tier``, ``model``,
    ``score``, ``reason`` (``fallback_from`` when a fallback answered), plus the
    strategy's extra fields."""
    info: dict[str, Any] = {
        "tier": tier,
        "model": model,
        "score": decision.score,
        "reason": decision.reason,
    }
    if fallback_from is not None:
        info["fallback_from"] = fallback_from
    if decision.extra:
        info.update(decision.extra)
    return info
