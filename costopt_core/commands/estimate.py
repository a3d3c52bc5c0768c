"""``costopt estimate``: monthly cost projections from prices or from observed usage.

Example:
    .. code-block:: console

        $ costopt estimate --requests-per-day 1000 --input-tokens 500 --output-tokens 200 \\
              --model deepseek-v3
        $ costopt estimate --requests-per-day 5000 --input-tokens 1000 --output-tokens 2000 \\
              --mix simple=0.6,medium=0.3,complex=0.1
        $ costopt estimate --seed-table
        $ costopt estimate --from-report tracker.json --requests-per-day 20000
        $ costopt estimate --model claude-3.5-sonnet --requests-per-day 5000 \\
              --input-tokens 1000 --output-tokens 2000 \\
              --local-usd-per-hour 1.2 --local-tokens-per-second 40
        $ costopt estimate --mix simple=0.6,medium=0.3,complex=0.1 --requests-per-day 5000 \\
              --input-tokens 1000 --output-tokens 2000 \\
              --distill-share 0.5 --distilled-model gpt-4o-mini

With ``--model`` or ``--mix`` two more lines can follow: the break-even of a self-hosted
model (``--local-usd-per-hour``) against that model or mix, and what a distilled model
(``--distilled-model``) taking ``--distill-share`` of the strong tier's traffic saves.
"""

from __future__ import annotations

import argparse
import json
import re
from typing import Any

from costopt_core.datafiles import load_json_object
from costopt_core.lever_projections import (
    break_even,
    distillation_projection,
    format_break_even,
    format_distillation,
)
from costopt_core.local_models import LocalHost
from costopt_core.pricing import ModelPrice
from costopt_core.projection import (
    DAYS_PER_MONTH,
    SEED_ASSUMED_MIX,
    SEED_TIER_MODELS,
    format_projection,
    format_seed_table,
    mixed_monthly_cost,
    monthly_cost,
    parse_mapping,
    parse_mix,
    project_report,
    seed_budget_table,
)


def register(subparsers: Any) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "estimate",
        help="project monthly LLM cost (one model, a routed tier mix, the seed's table, "
        "or a cost tracker's report)",
        description="Project monthly LLM cost over a 30-day month from catalog prices.",
    )
    parser.add_argument("--requests-per-day", type=float, help="average requests per day")
    parser.add_argument("--input-tokens", type=float, help="average input tokens per request")
    parser.add_argument("--output-tokens", type=float, help="average output tokens per request")
    parser.add_argument("--model", help="model to price (catalog name, e.g. gpt-4o-mini)")
    parser.add_argument(
        "--mix",
        help="routed tier mix, e.g. simple=0.6,medium=0.3,complex=0.1 (shares sum to 1); "
        "with --seed-table, the mix assumed for its routing row",
    )
    parser.add_argument(
        "--models",
        help="tier=model for --mix (default: the seed's tiers "
        + ",".join(f"{t}={m}" for t, m in SEED_TIER_MODELS.items())
        + ")",
    )
    parser.add_argument(
        "--seed-table",
        action="store_true",
        help="recompute the seed's monthly budget table and say where its figures do not "
        "follow from its own prices",
    )
    parser.add_argument(
        "--from-report",
        metavar="JSON",
        help="a cost tracker's to_dict()/to_json() file to extrapolate to a month",
    )
    parser.add_argument("--days", type=int, default=DAYS_PER_MONTH, help="days per month (30)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")
    _add_lever_arguments(parser)
    parser.set_defaults(func=run)
    return parser


def _add_lever_arguments(parser: argparse.ArgumentParser) -> None:
    local = parser.add_argument_group(
        "self-hosted break-even (with --model or --mix)",
        "when a local model billed per hour beats the API model or mix",
    )
    local.add_argument("--local-usd-per-hour", type=float, metavar="USD", help="host cost per hour")
    local.add_argument(
        "--local-tokens-per-second",
        type=float,
        metavar="N",
        help="host's generation throughput (sets its daily capacity)",
    )
    local.add_argument(
        "--local-input-tokens-per-second",
        type=float,
        metavar="N",
        help="host's prompt-processing speed (default: the generation speed)",
    )
    distill = parser.add_argument_group(
        "distillation (with --model or --mix)",
        "a distilled cheap model takes a share of the strong tier's requests",
    )
    distill.add_argument(
        "--distill-share", type=float, metavar="SHARE", help="share of strong-tier requests moved"
    )
    distill.add_argument("--distilled-model", help="catalog name of the distilled model")
    distill.add_argument(
        "--distilled-price",
        metavar="IN,OUT",
        help="the distilled model's USD per 1M input,output tokens (instead of the catalog)",
    )
    distill.add_argument(
        "--distill-training-usd", type=float, default=0.0, metavar="USD", help="one-off cost"
    )
    distill.add_argument(
        "--strong-tier", help="with --mix: the tier distilled (default: the last, dearest)"
    )


def _need(args: argparse.Namespace, *names: str) -> None:
    missing = [n for n in names if getattr(args, n) is None]
    if missing:
        flags = ", ".join("--" + n.replace("_", "-") for n in missing)
        raise ValueError(f"missing {flags}")


#: The engine's names for what the command's flags set: its errors name the flag.
_FLAGS = {
    "requests_per_day": "--requests-per-day",
    "input_tokens": "--input-tokens",
    "output_tokens": "--output-tokens",
    "days": "--days",
    "usd_per_hour": "--local-usd-per-hour",
    "tokens_per_second": "--local-tokens-per-second",
    "input_tokens_per_second": "--local-input-tokens-per-second",
    "share and strong_share": "--distill-share (and the strong tier's share)",
    "training_usd": "--distill-training-usd",
}
_LEADING_NAME = re.compile(r"^(share and strong_share|\w+)(?= must be )")


def run(args: argparse.Namespace) -> int:
    try:
        return _run(args)
    except ValueError as exc:
        # "input_tokens must be >= 0" -> "--input-tokens must be >= 0": the user typed flags.
        message = _LEADING_NAME.sub(lambda m: _FLAGS.get(m[1], m[1]), str(exc), count=1)
        raise ValueError(message) from None


def _run(args: argparse.Namespace) -> int:
    # With --seed-table, --mix replaces the tier mix assumed for the routing row.
    mix_mode = bool(args.mix) and not args.seed_table
    modes = [bool(args.seed_table), bool(args.from_report), mix_mode, bool(args.model)]
    if sum(modes) != 1:
        raise ValueError("give exactly one of --model, --mix, --seed-table, --from-report")
    if (_wants_local(args) or _wants_distill(args)) and not (mix_mode or args.model):
        raise ValueError("--local-* and --distill-* options go with --model or --mix")
    data: dict[str, Any] | list[dict[str, Any]]
    if args.seed_table:
        mix = parse_mix(args.mix) if args.mix else SEED_ASSUMED_MIX
        rows = seed_budget_table(mix, days=args.days)
        data, text = [r.to_dict() for r in rows], format_seed_table(rows)
    elif args.from_report:
        report = load_json_object(args.from_report, "a JSON object (a tracker's to_dict())")
        data = project_report(report, requests_per_day=args.requests_per_day, days=args.days)
        text = format_projection(data)
    elif args.mix:
        _need(args, "requests_per_day", "input_tokens", "output_tokens")
        models = parse_mapping(args.models, what="--models") if args.models else None
        mixed = mixed_monthly_cost(
            args.requests_per_day,
            args.input_tokens,
            args.output_tokens,
            parse_mix(args.mix),
            models,
            days=args.days,
        )
        data = mixed.to_dict()
        lines = [
            f"{t['tier']:<10} {t['model']:<28} {t['share']:>6.1%}  ${t['monthly_cost']:,.2f}"
            for t in mixed.tiers
        ]
        text = "\n".join(
            [
                *lines,
                f"{'total':<10} {'':<28} {'':>6}  ${mixed.monthly_cost:,.2f} per "
                f"{args.days}-day month",
            ]
        )
        strong_tier = args.strong_tier or mixed.tiers[-1]["tier"]
        strong = next((t for t in mixed.tiers if t["tier"] == strong_tier), None)
        if strong is None and args.distill_share is not None:
            raise ValueError(f"--strong-tier {strong_tier!r} is not in --mix")
        extra = _levers(
            args,
            api="the routed mix",
            api_cost_per_request=mixed.monthly_cost / (args.requests_per_day * args.days)
            if args.requests_per_day
            else 0.0,
            strong_model=strong["model"] if strong else "",
            strong_share=strong["share"] if strong else 0.0,
            other_monthly_cost=mixed.monthly_cost - (strong["monthly_cost"] if strong else 0),
        )
        data.update(extra[0])
        text = "\n".join([text, *extra[1]])
    else:
        _need(args, "requests_per_day", "input_tokens", "output_tokens")
        single = monthly_cost(
            args.requests_per_day,
            args.input_tokens,
            args.output_tokens,
            args.model,
            days=args.days,
        )
        data = single.to_dict()
        text = (
            f"{single.model}: ${single.cost_per_request:.6f}/request, "
            f"${single.daily_cost:,.2f}/day, ${single.monthly_cost:,.2f} per {single.days}-day "
            f"month (price: {single.price_source})"
        )
        extra = _levers(
            args,
            api=single.model,
            api_cost_per_request=single.cost_per_request,
            strong_model=single.model,
            strong_share=1.0,
            other_monthly_cost=0.0,
        )
        data.update(extra[0])
        text = "\n".join([text, *extra[1]])
    print(json.dumps(data, indent=2) if args.json else text)
    return 0


def _wants_local(args: argparse.Namespace) -> bool:
    return any(
        getattr(args, name) is not None
        for name in (
            "local_usd_per_hour",
            "local_tokens_per_second",
            "local_input_tokens_per_second",
        )
    )


def _wants_distill(args: argparse.Namespace) -> bool:
    return any(
        getattr(args, name) is not None
        for name in ("distill_share", "distilled_model", "distilled_price", "strong_tier")
    ) or bool(args.distill_training_usd)


def _distilled_price(text: str | None, model: str) -> ModelPrice | None:
    """``--distilled-price "0.3,1.2"`` (USD per 1M tokens) as a price."""
    if text is None:
        return None
    parts = [p.strip() for p in text.split(",")]
    try:
        inp, out = (float(p) / 1e6 for p in parts)
    except ValueError:
        raise ValueError(
            f"--distilled-price must be 'IN,OUT' in USD per 1M tokens, got {text!r}"
        ) from None
    return ModelPrice(inp, out, source="--distilled-price", model=model)


def _levers(
    args: argparse.Namespace,
    *,
    api: str,
    api_cost_per_request: float,
    strong_model: str,
    strong_share: float,
    other_monthly_cost: float,
) -> tuple[dict[str, Any], list[str]]:
    """The break-even and distillation lines asked for, as (JSON keys, text lines)."""
    data: dict[str, Any] = {}
    lines: list[str] = []
    if _wants_local(args):
        if args.local_usd_per_hour is None:
            raise ValueError("--local-tokens-per-second needs --local-usd-per-hour")
        host = LocalHost(
            usd_per_hour=args.local_usd_per_hour,
            tokens_per_second=args.local_tokens_per_second,
            input_tokens_per_second=args.local_input_tokens_per_second,
        )
        be = break_even(
            host,
            api_cost_per_request,
            args.requests_per_day,
            args.input_tokens,
            args.output_tokens,
            api=api,
            days=args.days,
        )
        data["break_even"] = be.to_dict()
        lines.append(format_break_even(be))
    if _wants_distill(args):
        if args.distill_share is None or args.distilled_model is None:
            raise ValueError("distillation needs --distill-share and --distilled-model")
        projection = distillation_projection(
            args.requests_per_day,
            args.input_tokens,
            args.output_tokens,
            strong_model=strong_model,
            distilled_model=args.distilled_model,
            share=args.distill_share,
            strong_share=strong_share,
            other_monthly_cost=other_monthly_cost,
            distilled_price=_distilled_price(args.distilled_price, args.distilled_model),
            training_usd=args.distill_training_usd,
            days=args.days,
        )
        data["distillation"] = projection.to_dict()
        lines.append(format_distillation(projection))
    return data, lines
