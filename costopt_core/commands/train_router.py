"""``costopt train-router``: fit a learned router on labelled prompts, calibrate it, save it.

Example:
    .. code-block:: console

        $ costopt train-router data.csv --strategy knn --out router.npz --target-share 0.3
        $ costopt train-router data.csv --strategy logistic --out router.json \\
              --tiers small,mid,large --shares 0.5,0.3,0.2
        $ costopt train-router judged.csv --tier-columns mini,mid,large --out router.npz
        $ costopt eval-router new_data.csv --load router.npz

The router is fitted on every row of DATA (labels from the weak and strong columns: 1 =
the strong model was needed, graded for scores; with a label column per tier, the
cheapest tier that does as well as any, and by default each tier gets the share of
prompts it is needed for, named after its column). Its cut points are calibrated on
out-of-fold scores (``--calibration-folds``), so they hold on new traffic rather than on
the prompts the router has already seen. The file is plain ``.npz`` or ``.json`` (no
pickle); ``get_strategy(name, path=...)`` or ``load_router(path)`` reads it back.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from costopt_core.commands import add_command
from costopt_core.commands.eval_router import (
    add_data_arguments,
    build_strategy,
    check_strategy_name,
    learned_strategy_names,
    load_data,
    tier_report,
)
from costopt_core.evaluation import RoutingData, cross_val_scores, embed_all
from costopt_core.tier_labels import check_shares, needed_shares

SUMMARY = "fit, calibrate and save a learned router (knn, logistic)"
DESCRIPTION = (
    "Fit a learned routing strategy on a labelled CSV / JSONL file, calibrate "
    "its tier cut points on out-of-fold scores, and save it as .npz or .json."
)


def register(subparsers: Any) -> argparse.ArgumentParser:
    parser = add_command(subparsers, "train-router", SUMMARY, DESCRIPTION, run)
    add_data_arguments(
        parser, default_strategy="knn", extra_choices=[], strategies=learned_strategy_names()
    )
    parser.add_argument("--out", required=True, metavar="ROUTER", help="file to write")
    parser.add_argument(
        "--tiers", metavar="A,B[,C...]", help="tier names, cheapest first (default weak,strong)"
    )
    share = parser.add_mutually_exclusive_group()
    share.add_argument(
        "--target-share", type=float, metavar="SHARE", help="share of calls to the strongest tier"
    )
    share.add_argument(
        "--shares", metavar="S1,S2[,...]", help="share of calls per tier, cheapest first"
    )
    parser.add_argument(
        "--calibration-folds",
        type=int,
        default=5,
        help="folds for the out-of-fold scores the cut points are calibrated on (5)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed for the folds (0)")
    return parser


def _tiers_and_shares(
    args: argparse.Namespace, data: RoutingData
) -> tuple[list[str], list[float] | None]:
    if args.tiers is not None:
        tiers = [t.strip() for t in args.tiers.split(",")]
    else:  # a label per tier names the tiers after its columns
        tiers = list(data.tier_names) or ["weak", "strong"]
    if data.tier_labels is not None and len(tiers) != data.tier_labels.shape[1]:
        raise ValueError(
            f"--tiers names {len(tiers)} tiers {tiers}, --tier-columns "
            f"{data.tier_labels.shape[1]} {list(data.tier_names)}: one name per column"
        )
    if args.shares is not None:
        try:
            shares = [float(s) for s in args.shares.split(",")]
        except ValueError:
            raise ValueError(
                f"--shares must be numbers separated by commas, got {args.shares!r}"
            ) from None
        if len(shares) != len(tiers):
            raise ValueError(f"--shares needs one share per tier {tiers}, got {shares}")
        try:
            return tiers, check_shares(shares, tiers)
        except ValueError as exc:
            raise ValueError(f"--shares: {exc}") from None
    if args.target_share is not None:
        if not 0.0 <= args.target_share <= 1.0:
            raise ValueError(f"--target-share must be in [0, 1], got {args.target_share}")
        if len(tiers) != 2:
            raise ValueError(f"--target-share needs two tiers; use --shares for {tiers}")
        return tiers, [1.0 - args.target_share, args.target_share]
    if data.tier_labels is not None:  # each tier gets the share of prompts it is needed for
        return tiers, needed_shares(data.tier_labels)
    return tiers, None


#: A tier's calibrated share this far from the one asked for is worth a warning.
_SHARE_MISS = 0.05


def _warn_if_shares_missed(calibration: dict[str, Any], tiers: list[str]) -> None:
    # Cut points cannot split prompts that score the same: tied scores (an embedding that
    # tells few of them apart) can leave a tier with far less than its share, or none.
    missed = [
        f"{tier} {got:.1%} (wanted {wanted:.1%})"
        for tier, got, wanted in zip(
            tiers, calibration["sample_shares"], calibration["shares"], strict=True
        )
        if abs(got - wanted) > _SHARE_MISS
    ]
    if missed:
        print(
            f"costopt train-router: warning: the scores tie too often to cut at these shares: "
            f"{', '.join(missed)}; an embedding that tells the prompts apart (the default "
            "one, extra [embeddings]) or fewer tiers fits them better",
            file=sys.stderr,
        )


def run(args: argparse.Namespace) -> int:
    check_strategy_name(args)
    if args.calibration_folds < 2:
        raise ValueError(f"--calibration-folds must be >= 2, got {args.calibration_folds}")
    if Path(args.out).suffix not in ("", ".npz", ".json"):
        raise ValueError(f"--out: a router file ends in .npz or .json, got {args.out!r}")
    data = load_data(args)
    tiers, shares = _tiers_and_shares(args, data)
    args.option = [*args.option, f"tiers={tiers!r}".replace("'", '"')]
    strategy = build_strategy(args)
    if not callable(getattr(strategy, "fit", None)) or not callable(
        getattr(strategy, "save", None)
    ):
        raise ValueError(f"strategy {args.strategy!r} is not trained; choose knn or logistic")
    progress = not args.no_progress
    embed_all(strategy, data.prompts, progress=progress)
    strategy.fit(data.prompts, data.gain_labels())
    oof = None
    if shares is not None:
        oof = cross_val_scores(
            strategy.clone, data, args.calibration_folds, seed=args.seed, progress=progress
        )
        strategy.calibrate(scores=oof, shares=shares)
    path = strategy.save(args.out)
    cuts = ", ".join(f"{t:.4f}" for t in strategy.thresholds)
    how = "calibrated on out-of-fold scores" if shares is not None else "equal bands"
    print(
        f"trained {strategy.name} on {len(data)} prompts; tiers {tiers}, cut points [{cuts}] "
        f"({how}); saved to {path}"
    )
    if strategy.calibration:
        got = ", ".join(f"{s:.1%}" for s in strategy.calibration["sample_shares"])
        wanted = ", ".join(f"{s:.1%}" for s in shares or [])
        print(f"out-of-fold shares per tier: {got} (wanted {wanted})")
        _warn_if_shares_missed(strategy.calibration, tiers)
    if oof is not None and data.tier_labels is not None:
        print("out-of-fold quality at these cut points (each tier's labels):")
        print("\n".join(tier_report(data, oof, thresholds=strategy.thresholds).lines()))
    return 0


__all__ = ["register", "run"]
