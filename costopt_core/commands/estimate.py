"""``costopt estimate``: monthly cost projections from prices or from observed usage.

Example:
    .. code-block:: console

        $ costopt estimate --requests-per-day 1000 --input-tokens 500 --output-tokens 200 \\
              --model deepseek-v3
        $ costopt estimate --requests-per-day 5000 --input-tokens 1000 --output-tokens 2000 \\
              --mix simple=0.6,medium=0.3,complex=0.1
        $ costopt estimate --seed-table
        $ costopt estimate --from-report tracker.json --requests-per-day 20000
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from costopt_core.datafiles import load_json_object
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
    parser.set_defaults(func=run)
    return parser


def _need(args: argparse.Namespace, *names: str) -> None:
    missing = [n for n in names if getattr(args, n) is None]
    if missing:
        flags = ", ".join("--" + n.replace("_", "-") for n in missing)
        raise ValueError(f"missing {flags}")


def run(args: argparse.Namespace) -> int:
    # With --seed-table, --mix replaces the tier mix assumed for the routing row.
    mix_mode = bool(args.mix) and not args.seed_table
    modes = [bool(args.seed_table), bool(args.from_report), mix_mode, bool(args.model)]
    if sum(modes) != 1:
        raise ValueError("give exactly one of --model, --mix, --seed-table, --from-report")
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
    print(json.dumps(data, indent=2) if args.json else text)
    return 0
