"""``costopt techniques``: the seed's seven techniques, its claimed saving beside the
saving this project measured (or "not measured"), and the data each figure came from.

Example:
    .. code-block:: console

        $ costopt techniques
        $ costopt techniques --json
        $ costopt techniques --record my_figures.json --verbose

The figures are read from the record ``benchmarks/techniques.py --write`` keeps in
``costopt_core/data/techniques_measured.json`` (see :mod:`costopt_core.techniques`).
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from costopt_core.techniques import format_techniques, load_measured, technique_rows


def register(subparsers: Any) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "techniques",
        help="the seed's cost techniques: claimed saving vs measured here, and on what data",
        description="The seed's seven techniques, one line each: its claimed saving, the "
        "saving this project measured on its bundled benchmarks (or 'not measured'), and "
        "where each figure came from.",
    )
    parser.add_argument(
        "--record",
        metavar="JSON",
        help="a measurements file written by benchmarks/techniques.py (default: the "
        "one shipped with the package)",
    )
    parser.add_argument("--verbose", action="store_true", help="also print each run's details")
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace) -> int:
    record = load_measured(args.record)
    if args.json:
        rows = [
            {
                "key": r.technique.key,
                "technique": r.technique.name,
                "seed_claim": [r.technique.claim_low, r.technique.claim_high],
                "measured_saving": r.saving,
                "within_claim": r.within_claim,
                "at": r.at or None,
                "data": r.data or None,
                "method": r.method or None,
                "script": r.script or None,
                "in_costopt": r.technique.lever,
            }
            for r in technique_rows(record)
        ]
        print(json.dumps({"measured_on": record.get("measured_on"), "techniques": rows}, indent=2))
    else:
        print(format_techniques(record, verbose=args.verbose))
    return 0
