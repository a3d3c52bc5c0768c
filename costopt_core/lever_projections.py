"""What two more levers would save a month: a self-hosted tier (break-even against an
API) and a distilled cheap model taking a share of the strong tier's traffic.

Example:
    >>> from costopt_core.lever_projections import break_even, distillation_projection
    >>> from costopt_core.local_models import LocalHost
    >>> host = LocalHost(usd_per_hour=1.2, tokens_per_second=40, input_tokens_per_second=400)
    >>> be = break_even(host, 0.0345, 5000, 1000, 2000, api="claude-3.5-sonnet")
    >>> round(be.break_even_requests_per_day), be.hosts_needed, round(be.monthly_saving, 2)
    (835, 4, 1719.0)
    >>> d = distillation_projection(5000, 1000, 2000, strong_model="claude-3.5-sonnet",
    ...                             distilled_model="gpt-4o-mini", share=0.5)
    >>> round(d.monthly_cost_before, 2), round(d.monthly_cost_after, 2)
    (4950.0, 2576.25)

Both are arithmetic on catalog prices and the figures given: what they leave out (the
quality a local or distilled model keeps, engineering time) is for the user to weigh;
``costopt eval-router`` measures quality on labelled prompts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from costopt_core.local_models import LocalHost
from costopt_core.pricing import ModelPrice, PriceCatalog
from costopt_core.projection import DAYS_PER_MONTH, ProjectionRecord, check_number, monthly_cost


def _check_days(days: object) -> int:
    if isinstance(days, bool) or not isinstance(days, int) or days < 1:
        raise ValueError(f"days must be an int >= 1, got {days!r}")
    return days


# -- a self-hosted tier against an API ------------------------------------------------------


@dataclass(frozen=True)
class BreakEven(ProjectionRecord):
    """Where a self-hosted model's fixed hourly bill meets an API's per-request price."""

    api: str
    api_cost_per_request: float
    host: str
    host_daily_cost: float
    break_even_requests_per_day: float  # inf when the API costs nothing per request
    capacity_requests_per_day: float | None  # None: no speed given, capacity unknown
    reachable: bool  # one host can serve the break-even load
    requests_per_day: float
    hosts_needed: int
    days: int
    api_monthly_cost: float
    local_monthly_cost: float
    monthly_saving: float  # API minus local; negative when local costs more


def break_even(
    host: LocalHost,
    api_cost_per_request: float,
    requests_per_day: float,
    input_tokens: float,
    output_tokens: float,
    *,
    api: str = "API",
    days: int = DAYS_PER_MONTH,
) -> BreakEven:
    """Requests per day above which ``host`` (billed per hour, busy or idle) costs less
    than paying ``api_cost_per_request``, and the month at ``requests_per_day``.

    A host serves at most ``host.requests_per_day_capacity(...)`` such requests a day;
    more traffic needs more hosts, each billed in full. The break-even load is
    unreachable when one host at full load replaces less API spend than it costs.
    """
    cpr = check_number("api_cost_per_request", api_cost_per_request)
    rpd = check_number("requests_per_day", requests_per_day)
    days = _check_days(days)
    capacity = host.requests_per_day_capacity(input_tokens, output_tokens)
    daily = host.daily_cost
    if daily == 0:  # a host nobody bills beats any API
        point = 0.0
    elif cpr == 0:  # nothing beats a free API
        point = math.inf
    else:
        point = daily / cpr
    reachable = capacity is None or point <= capacity
    if capacity is None or capacity == math.inf or rpd == 0:
        hosts = 1 if rpd > 0 else 0
    else:
        hosts = math.ceil(rpd / capacity)
    return BreakEven(
        api=api,
        api_cost_per_request=cpr,
        host=host.label(),
        host_daily_cost=daily,
        break_even_requests_per_day=point,
        capacity_requests_per_day=capacity,
        reachable=reachable,
        requests_per_day=rpd,
        hosts_needed=hosts,
        days=days,
        api_monthly_cost=cpr * rpd * days,
        local_monthly_cost=hosts * daily * days,
        monthly_saving=cpr * rpd * days - hosts * daily * days,
    )


def format_break_even(be: BreakEven) -> str:
    """One paragraph: the break-even load, what one host can serve, the month."""
    if be.host_daily_cost == 0:
        head = (
            f"break-even: a self-hosted model at $0/h (hardware cost not counted) is "
            f"cheaper than {be.api} (${be.api_cost_per_request:.6f}/request) at any load"
        )
    elif be.break_even_requests_per_day == math.inf:
        head = f"break-even: never: {be.api} costs $0 per request"
    else:
        head = (
            f"break-even: a self-hosted model at ${be.host_daily_cost / 24:,.2f}/h "
            f"(${be.host_daily_cost * be.days:,.2f} per {be.days}-day month, busy or idle) "
            f"{'beats' if be.reachable else 'would beat'} {be.api} "
            f"(${be.api_cost_per_request:.6f}/request) from "
            f"{be.break_even_requests_per_day:,.0f} requests/day"
        )
    lines = [head]
    cap = be.capacity_requests_per_day
    if cap is not None and cap != math.inf:
        lines.append(f"  one host serves at most {cap:,.0f} such requests/day ({be.host})")
        if not be.reachable:
            lines.append(
                f"  -> unreachable on one host: at full load it replaces "
                f"${cap * be.api_cost_per_request:,.2f}/day of API calls, less than its "
                f"${be.host_daily_cost:,.2f}/day"
            )
    elif cap is None and be.host_daily_cost > 0:
        lines.append("  (no tokens/s given: one host is assumed to carry any load)")
    verdict = "saves" if be.monthly_saving >= 0 else "costs more by"
    lines.append(
        f"  at {be.requests_per_day:,.0f} requests/day: API ${be.api_monthly_cost:,.2f}, "
        f"{be.hosts_needed} host(s) ${be.local_monthly_cost:,.2f} per month: local "
        f"{verdict} ${abs(be.monthly_saving):,.2f}/month"
    )
    return "\n".join(lines)


# -- distillation ------------------------------------------------------------------------------


@dataclass(frozen=True)
class DistillationProjection(ProjectionRecord):
    """A month before and after a distilled model takes ``share`` of the strong tier."""

    strong_model: str
    distilled_model: str
    distilled_price_source: str
    share: float
    strong_requests_per_day: float
    moved_requests_per_day: float
    strong_cost_per_request: float
    distilled_cost_per_request: float
    days: int
    monthly_cost_before: float
    monthly_cost_after: float
    monthly_saving: float
    saving_fraction: float  # of the whole month's cost before
    training_usd: float
    payback_months: float | None  # None without training cost or without saving


def distillation_projection(
    requests_per_day: float,
    input_tokens: float,
    output_tokens: float,
    *,
    strong_model: str,
    distilled_model: str,
    share: float,
    strong_share: float = 1.0,
    other_monthly_cost: float = 0.0,
    distilled_price: ModelPrice | None = None,
    training_usd: float = 0.0,
    days: int = DAYS_PER_MONTH,
    catalog: PriceCatalog | None = None,
) -> DistillationProjection:
    """Move ``share`` of the strong tier's requests (``strong_share`` of all requests,
    on ``strong_model``) to ``distilled_model`` (priced by ``distilled_price``, else the
    catalog: register a fine-tune's own price with ``set_price``).

    ``other_monthly_cost`` is what the other tiers cost a month (unchanged);
    ``training_usd`` a one-off cost of making the distilled model, repaid by the saving.
    """
    share = check_number("share", share)
    strong_share = check_number("strong_share", strong_share)
    if share > 1 or strong_share > 1:
        raise ValueError(
            f"share and strong_share must be in [0, 1], got {share!r}, {strong_share!r}"
        )
    other = check_number("other_monthly_cost", other_monthly_cost)
    training = check_number("training_usd", training_usd)
    rpd = check_number("requests_per_day", requests_per_day)
    strong_rpd = rpd * strong_share
    strong = monthly_cost(
        strong_rpd, input_tokens, output_tokens, strong_model, days=days, catalog=catalog
    )
    distilled = monthly_cost(
        strong_rpd * share,
        input_tokens,
        output_tokens,
        distilled_model,
        days=days,
        price=distilled_price,
        catalog=catalog,
    )
    before = other + strong.monthly_cost
    after = other + strong.monthly_cost * (1 - share) + distilled.monthly_cost
    saving = before - after
    payback = training / saving if training > 0 and saving > 0 else None
    return DistillationProjection(
        strong_model=strong_model,
        distilled_model=distilled_model,
        distilled_price_source=distilled.price_source,
        share=share,
        strong_requests_per_day=strong_rpd,
        moved_requests_per_day=strong_rpd * share,
        strong_cost_per_request=strong.cost_per_request,
        distilled_cost_per_request=distilled.cost_per_request,
        days=strong.days,
        monthly_cost_before=before,
        monthly_cost_after=after,
        monthly_saving=saving,
        saving_fraction=saving / before if before else 0.0,
        training_usd=training,
        payback_months=payback,
    )


def format_distillation(d: DistillationProjection) -> str:
    lines = [
        f"distillation: moving {d.share:.0%} of {d.strong_model}'s "
        f"{d.strong_requests_per_day:,.0f} requests/day ({d.moved_requests_per_day:,.0f}/day) "
        f"to {d.distilled_model} (${d.distilled_cost_per_request:.6f} vs "
        f"${d.strong_cost_per_request:.6f}/request; price: {d.distilled_price_source})",
        f"  ${d.monthly_cost_before:,.2f} -> ${d.monthly_cost_after:,.2f} per {d.days}-day "
        f"month: saves ${d.monthly_saving:,.2f} ({d.saving_fraction:.1%})",
    ]
    if d.training_usd > 0:
        lines.append(
            f"  one-off training ${d.training_usd:,.2f}: "
            + (
                f"paid back in {d.payback_months:.1f} months"
                if d.payback_months is not None
                else "never paid back (no saving)"
            )
        )
    lines.append(
        "  assumes the distilled model answers the moved requests acceptably: check it on "
        "your own labelled prompts first"
    )
    return "\n".join(lines)


__all__ = [
    "BreakEven",
    "DistillationProjection",
    "break_even",
    "distillation_projection",
    "format_break_even",
    "format_distillation",
]
