"""Monthly cost projection: one model, a routed tier mix, the seed's budget table, and
a tracker's observed usage extrapolated to a month.

Example:
    >>> from costopt_core.projection import mixed_monthly_cost, monthly_cost
    >>> round(monthly_cost(1000, 500, 200, "deepseek-v3").monthly_cost, 2)
    3.78
    >>> mix = {"simple": 0.6, "medium": 0.3, "complex": 0.1}
    >>> round(mixed_monthly_cost(5000, 1000, 2000, mix).monthly_cost, 2)
    618.75

A month is 30 days. Prices come from the catalog (``costopt_core.pricing``): user
overrides, then genai-prices, then the seed's table.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from costopt_core.pricing import SEED_MODELS, ModelPrice, PriceCatalog, default_catalog

DAYS_PER_MONTH = 30

# The seed's tier -> model mapping, used when a mix names tiers without models.
SEED_TIER_MODELS: dict[str, str] = {tier: spec["model"] for tier, spec in SEED_MODELS.items()}

# The seed gives no tier mix for its "same + routing" row. We assume 60 % simple,
# 30 % medium, 10 % complex: most production traffic is short lookups/rewrites, and
# the seed's own classifier sends a prompt to COMPLEX only on >= 2 analysis cues or a
# very long prompt. It is also the mix under which the seed's ~600 follows from its
# prices (``implied_complex_share`` prints the exact share the figure needs).
SEED_ASSUMED_MIX: dict[str, float] = {"simple": 0.6, "medium": 0.3, "complex": 0.1}

# A "~" figure follows from its prices when within this relative distance.
SEED_TOLERANCE = 0.15


def check_number(name: str, value: Any, *, minimum: float = 0.0) -> float:
    """``value`` as a float if it is a finite number >= ``minimum``, else a ValueError
    naming ``name``: the check of every figure a projection takes."""
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value < minimum
    ):
        raise ValueError(f"{name} must be a finite number >= {minimum:g}, got {value!r}")
    return float(value)


def _price(model: str, catalog: PriceCatalog | None) -> ModelPrice:
    price = (catalog or default_catalog).get(model)
    if price is None:
        raise ValueError(
            f"no price known for model {model!r}; register one with "
            f"set_price({model!r}, input_per_token=..., output_per_token=...)"
        )
    return price


class ProjectionRecord:
    """``to_dict()`` of the frozen dataclasses of projections: their fields, JSON-ready."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)  # type: ignore[arg-type]


@dataclass(frozen=True)
class Projection(ProjectionRecord):
    """A single-model monthly projection (USD)."""

    model: str
    requests_per_day: float
    input_tokens: float
    output_tokens: float
    days: int
    cost_per_request: float
    daily_cost: float
    monthly_cost: float
    price_source: str


def monthly_cost(
    requests_per_day: float,
    input_tokens: float,
    output_tokens: float,
    model: str,
    *,
    days: int = DAYS_PER_MONTH,
    price: ModelPrice | None = None,
    catalog: PriceCatalog | None = None,
) -> Projection:
    """Monthly cost of ``requests_per_day`` calls averaging the given tokens on ``model``.

    ``price`` overrides the catalog (e.g. the seed's own 2024 prices).
    """
    rpd = check_number("requests_per_day", requests_per_day)
    inp = check_number("input_tokens", input_tokens)
    out = check_number("output_tokens", output_tokens)
    if isinstance(days, bool) or not isinstance(days, int) or days < 1:
        raise ValueError(f"days must be an int >= 1, got {days!r}")
    price = price if price is not None else _price(model, catalog)
    per_request = inp * price.input + out * price.output
    return Projection(
        model=model,
        requests_per_day=rpd,
        input_tokens=inp,
        output_tokens=out,
        days=days,
        cost_per_request=per_request,
        daily_cost=per_request * rpd,
        monthly_cost=per_request * rpd * days,
        price_source=price.source,
    )


@dataclass(frozen=True)
class MixedProjection(ProjectionRecord):
    """A routed projection: each tier's share of requests on its model."""

    requests_per_day: float
    input_tokens: float
    output_tokens: float
    days: int
    tiers: list[dict[str, Any]] = field(default_factory=list)

    @property
    def monthly_cost(self) -> float:
        return sum(t["monthly_cost"] for t in self.tiers)

    def to_dict(self) -> dict[str, Any]:
        data = super().to_dict()
        data["monthly_cost"] = self.monthly_cost
        return data


def parse_mapping(text: str, *, what: str) -> dict[str, str]:
    """``"a=1,b=2"`` -> ``{"a": "1", "b": "2"}`` with a clear error naming ``what``."""
    out: dict[str, str] = {}
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        key, sep, value = part.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise ValueError(f"{what} must look like 'name=value,name=value', got {text!r}")
        out[key.strip()] = value.strip()
    if not out:
        raise ValueError(f"{what} is empty")
    return out


def parse_mix(text: str) -> dict[str, float]:
    """``"simple=0.6,medium=0.3,complex=0.1"`` -> shares (validated by ``check_mix``).

    Example:
        >>> parse_mix("simple=0.6,medium=0.3,complex=0.1")
        {'simple': 0.6, 'medium': 0.3, 'complex': 0.1}
        >>> parse_mix("simple=0.6,complex=0.6")
        Traceback (most recent call last):
        ...
        ValueError: mix shares must sum to 1, got 1.2 ({'simple': 0.6, 'complex': 0.6})
    """
    raw = parse_mapping(text, what="--mix")
    try:
        mix = {k: float(v) for k, v in raw.items()}
    except ValueError:
        raise ValueError(f"--mix shares must be numbers, got {text!r}") from None
    return check_mix(mix)


def check_mix(mix: Mapping[str, float]) -> dict[str, float]:
    if not mix:
        raise ValueError("mix must name at least one tier")
    for tier, share in mix.items():
        if isinstance(share, bool) or not isinstance(share, int | float) or not 0 <= share <= 1:
            raise ValueError(f"mix share for {tier!r} must be in [0, 1], got {share!r}")
    total = sum(mix.values())
    if abs(total - 1.0) > 1e-6:
        raise ValueError(f"mix shares must sum to 1, got {total:g} ({dict(mix)!r})")
    return {k: float(v) for k, v in mix.items()}


def mixed_monthly_cost(
    requests_per_day: float,
    input_tokens: float,
    output_tokens: float,
    mix: Mapping[str, float],
    models: Mapping[str, str] | None = None,
    *,
    days: int = DAYS_PER_MONTH,
    prices: Mapping[str, ModelPrice] | None = None,
    catalog: PriceCatalog | None = None,
) -> MixedProjection:
    """Monthly cost when a router sends ``mix[tier]`` of the requests to ``models[tier]``.

    ``models`` defaults to the seed's tiers (simple: deepseek-v3, medium: gpt-4o-mini,
    complex: claude-3.5-sonnet); ``prices`` (model -> price) overrides the catalog.
    """
    mix = check_mix(mix)
    models = dict(models) if models is not None else dict(SEED_TIER_MODELS)
    missing = [t for t in mix if t not in models]
    if missing:
        raise ValueError(f"no model given for tier(s) {missing!r}; known: {sorted(models)!r}")
    tiers = []
    for tier, share in mix.items():
        model = models[tier]
        price = (prices or {}).get(model)
        single = monthly_cost(
            requests_per_day * share,
            input_tokens,
            output_tokens,
            model,
            days=days,
            price=price,
            catalog=catalog,
        )
        tiers.append(
            {
                "tier": tier,
                "model": model,
                "share": share,
                "monthly_cost": single.monthly_cost,
                "cost_per_request": single.cost_per_request,
                "price_source": single.price_source,
            }
        )
    return MixedProjection(
        requests_per_day=float(requests_per_day),
        input_tokens=float(input_tokens),
        output_tokens=float(output_tokens),
        days=days,
        tiers=tiers,
    )


# -- the seed's budget table ---------------------------------------------------------------

SEED_BUDGET_ROWS: tuple[dict[str, Any], ...] = (
    {
        "scenario": "internal tool",
        "requests_per_day": 1000,
        "input_tokens": 500,
        "output_tokens": 200,
        "model": "deepseek-v3",
        "seed_usd": 3.0,
    },
    {
        "scenario": "support bot",
        "requests_per_day": 10_000,
        "input_tokens": 800,
        "output_tokens": 300,
        "model": "gpt-4o-mini",
        "seed_usd": 45.0,
    },
    {
        "scenario": "content generation",
        "requests_per_day": 5000,
        "input_tokens": 1000,
        "output_tokens": 2000,
        "model": "claude-3.5-sonnet",
        "seed_usd": 2700.0,
    },
    {
        "scenario": "same + routing",
        "requests_per_day": 5000,
        "input_tokens": 1000,
        "output_tokens": 2000,
        "model": None,
        "seed_usd": 600.0,
    },
)


def seed_prices() -> dict[str, ModelPrice]:
    """The seed's own 2024 prices (USD per 1K tokens in the text, here per token)."""
    return {
        spec["model"]: ModelPrice(
            spec["input_per_1k"] / 1000,
            spec["output_per_1k"] / 1000,
            source="seed",
            model=spec["model"],
        )
        for spec in SEED_MODELS.values()
    }


def implied_complex_share(
    target_monthly: float,
    requests_per_day: float,
    input_tokens: float,
    output_tokens: float,
    mix: Mapping[str, float],
    *,
    prices: Mapping[str, ModelPrice] | None = None,
    models: Mapping[str, str] | None = None,
    days: int = DAYS_PER_MONTH,
) -> float | None:
    """The complex-tier share that makes the routed cost equal ``target_monthly``, the
    other tiers keeping their proportions from ``mix``; ``None`` if none in [0, 1] does."""
    models = dict(models) if models is not None else dict(SEED_TIER_MODELS)
    prices = prices or {}

    def per_request(tier: str) -> float:
        model = models[tier]
        p = prices.get(model) or _price(model, None)
        return input_tokens * p.input + output_tokens * p.output

    rest = {t: s for t, s in mix.items() if t != "complex"}
    rest_total = sum(rest.values())
    if "complex" not in models or rest_total <= 0:
        return None
    cheap = sum(per_request(t) * s / rest_total for t, s in rest.items())
    strong = per_request("complex")
    needed = target_monthly / (requests_per_day * days)
    if strong == cheap:
        return None
    share = (needed - cheap) / (strong - cheap)
    return share if 0 <= share <= 1 else None


@dataclass(frozen=True)
class SeedRow(ProjectionRecord):
    scenario: str
    requests_per_day: int
    input_tokens: int
    output_tokens: int
    model: str
    seed_usd: float
    seed_prices_usd: float
    catalog_usd: float
    follows: bool
    note: str


def _verdict(seed_usd: float, computed: float, tolerance: float) -> tuple[bool, float]:
    ratio = seed_usd / computed if computed else math.inf
    return abs(ratio - 1) <= tolerance, ratio


def seed_budget_table(
    mix: Mapping[str, float] | None = None,
    *,
    tolerance: float = SEED_TOLERANCE,
    days: int = DAYS_PER_MONTH,
) -> list[SeedRow]:
    """The seed's monthly budget table recomputed row by row.

    Each row carries the seed's figure, the figure its own 2024 prices give, the figure
    today's catalog gives, and whether the seed's figure follows from its own prices
    (within ``tolerance``, relative). The routing row uses ``mix`` (default
    ``SEED_ASSUMED_MIX``).

    Example:
        >>> rows = seed_budget_table()
        >>> [(r.scenario, r.follows) for r in rows]  # doctest: +NORMALIZE_WHITESPACE
        [('internal tool', False), ('support bot', False), ('content generation', False),
         ('same + routing', True)]
        >>> rows[0].seed_usd, round(rows[0].seed_prices_usd, 2)  # seed says ~3, its prices 3.78
        (3.0, 3.78)
    """
    mix = check_mix(mix if mix is not None else SEED_ASSUMED_MIX)
    own = seed_prices()
    rows: list[SeedRow] = []
    for spec in SEED_BUDGET_ROWS:
        rpd, inp, out = spec["requests_per_day"], spec["input_tokens"], spec["output_tokens"]
        seed_usd = spec["seed_usd"]
        if spec["model"] is not None:
            model = spec["model"]
            at_seed = monthly_cost(rpd, inp, out, model, days=days, price=own[model]).monthly_cost
            at_catalog = monthly_cost(rpd, inp, out, model, days=days).monthly_cost
            follows, ratio = _verdict(seed_usd, at_seed, tolerance)
            per_request = at_seed / (rpd * days)
            formula = (
                f"{rpd:,}/day x {days} x ({inp} x ${own[model].input * 1e6:g} + "
                f"{out} x ${own[model].output * 1e6:g}) / 1M = ${at_seed:,.2f} "
                f"(${per_request:.6f}/request)"
            )
            if follows:
                note = f"follows: {formula}"
            else:
                note = (
                    f"does NOT follow: {formula}; the seed's ~{seed_usd:,.0f} is {ratio:.2f}x that"
                )
        else:
            model = "mixed: " + "/".join(f"{t} {s:.0%}" for t, s in mix.items())
            at_seed = mixed_monthly_cost(rpd, inp, out, mix, days=days, prices=own).monthly_cost
            at_catalog = mixed_monthly_cost(rpd, inp, out, mix, days=days).monthly_cost
            follows, ratio = _verdict(seed_usd, at_seed, tolerance)
            implied = implied_complex_share(seed_usd, rpd, inp, out, mix, prices=own, days=days)
            implied_text = (
                f"the seed's ~{seed_usd:,.0f} needs {implied:.1%} of calls on the complex "
                "tier (other tiers in the assumed proportions)"
                if implied is not None
                else f"no complex share gives the seed's ~{seed_usd:,.0f}"
            )
            verdict = (
                "follows under an assumed tier mix"
                if follows
                else "does NOT follow from the assumed tier mix"
            )
            note = (
                f"{verdict} (the seed gives none): {implied_text}; "
                f"at the seed's prices this mix costs ${at_seed:,.2f}"
            )
            unrouted = next(
                (
                    r
                    for r in rows
                    if r.requests_per_day == rpd
                    and r.input_tokens == inp
                    and r.output_tokens == out
                ),
                None,
            )
            if unrouted is not None and unrouted.seed_prices_usd and unrouted.seed_usd:
                note += (
                    f"; saving vs the unrouted row: seed {1 - seed_usd / unrouted.seed_usd:.0%}"
                    f" (~{unrouted.seed_usd:,.0f} -> ~{seed_usd:,.0f}), at its own prices "
                    f"{1 - at_seed / unrouted.seed_prices_usd:.1%}"
                )
        rows.append(
            SeedRow(
                spec["scenario"], rpd, inp, out, model, seed_usd, at_seed, at_catalog, follows, note
            )
        )
    return rows


def format_seed_table(rows: list[SeedRow]) -> str:
    header = (
        "scenario",
        "req/day",
        "in/out",
        "model",
        "seed says",
        "seed prices",
        "catalog",
        "follows?",
    )
    body = [
        (
            r.scenario,
            f"{r.requests_per_day:,}",
            f"{r.input_tokens}/{r.output_tokens}",
            r.model,
            f"~{r.seed_usd:,.0f}",
            f"{r.seed_prices_usd:,.2f}",
            f"{r.catalog_usd:,.2f}",
            "yes" if r.follows else "NO",
        )
        for r in rows
    ]
    table = [header, *body]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    right = {1, 4, 5, 6}
    lines = [
        "  ".join(
            c.rjust(w) if i in right else c.ljust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=True))
        ).rstrip()
        for row in table
    ]
    lines.insert(1, "-" * len(lines[0]))
    out = ["Seed monthly budget table (USD/month, 30-day month), recomputed", *lines, ""]
    out += [f"- {r.scenario}: {r.note}" for r in rows]
    out.append(
        f"'seed prices' = the seed's own 2024 table; 'catalog' = today's catalog "
        f"(genai-prices, else the seed's table); 'follows' = seed figure within "
        f"{SEED_TOLERANCE:.0%} of what its own prices give."
    )
    return "\n".join(out)


# -- projection from observed usage -----------------------------------------------------------


def project_report(
    report: Mapping[str, Any],
    *,
    requests_per_day: float | None = None,
    days: int = DAYS_PER_MONTH,
) -> dict[str, Any]:
    """Extrapolate a tracker's ``to_dict()`` report to a month.

    A request is a call or a cache hit (cascade attempts are part of their call). The
    average spend and saving per request, per model, are scaled to
    ``requests_per_day`` (default: the rate observed between the first and last record,
    which needs a span of at least a minute to mean anything).
    """
    models = report.get("models")
    if not isinstance(models, Mapping):
        raise ValueError("report must be a cost tracker's to_dict() output (no 'models' key)")
    requests = sum(int(m.get("calls", 0)) + int(m.get("cache_hits", 0)) for m in models.values())
    if requests == 0:
        raise ValueError("the report holds no requests to project from")
    span = None
    first, last = report.get("first_timestamp"), report.get("last_timestamp")
    if isinstance(first, int | float) and isinstance(last, int | float):
        span = max(0.0, float(last) - float(first))
    if requests_per_day is None:
        if span is None or span < 60:
            raise ValueError(
                "the report spans less than a minute; pass requests_per_day to project it"
            )
        rate = requests / (span / 86_400)
        basis = f"observed rate over {span / 3600:.2f} h"
    else:
        rate = check_number("requests_per_day", requests_per_day)
        basis = "given"
    scale = rate * days / requests
    per_model = {}
    for name, m in models.items():
        model_requests = int(m.get("calls", 0)) + int(m.get("cache_hits", 0))
        cost = m.get("priced_cost_usd", m.get("cost_usd")) or 0.0
        per_model[name] = {
            "share_of_requests": model_requests / requests,
            "monthly_cost": cost * scale,
            "monthly_saved": (m.get("saved_usd") or 0.0) * scale,
            "priced": m.get("status", "priced") != "unpriced",
        }
    return {
        "days": days,
        "requests_observed": requests,
        "requests_per_day": rate,
        "rate_basis": basis,
        "cost_per_request": float(report.get("total_cost", 0.0)) / requests,
        "monthly_cost": float(report.get("total_cost", 0.0)) * scale,
        "monthly_saved": float(report.get("total_saved", 0.0)) * scale,
        "unpriced_models": list(report.get("unpriced_models", [])),
        "models": per_model,
    }


def format_projection(projection: Mapping[str, Any]) -> str:
    rate = float(projection["requests_per_day"])
    lines = [
        f"observed requests: {projection['requests_observed']:,} "
        f"-> {rate:,.{0 if rate.is_integer() else 1}f}/day ({projection['rate_basis']})",
        f"cost per request: ${projection['cost_per_request']:.6f}",
        f"projected {projection['days']}-day month: ${projection['monthly_cost']:,.2f} spent, "
        f"${projection['monthly_saved']:,.2f} saved",
    ]
    for name, m in projection["models"].items():
        tag = "" if m["priced"] else " (unpriced: excluded)"
        lines.append(
            f"  {name}: {m['share_of_requests']:.1%} of requests, "
            f"${m['monthly_cost']:,.2f}/month{tag}"
        )
    return "\n".join(lines)


__all__ = [
    "DAYS_PER_MONTH",
    "SEED_ASSUMED_MIX",
    "MixedProjection",
    "Projection",
    "ProjectionRecord",
    "SeedRow",
    "check_mix",
    "check_number",
    "format_projection",
    "format_seed_table",
    "implied_complex_share",
    "mixed_monthly_cost",
    "monthly_cost",
    "parse_mapping",
    "parse_mix",
    "project_report",
    "seed_budget_table",
]
