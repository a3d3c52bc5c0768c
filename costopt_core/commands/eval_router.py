"""``costopt eval-router``: how much quality a router keeps for how much spend.

Example:
    .. code-block:: console

        $ costopt eval-router data.csv --strategy zero-shot --json out.json --plot out.png
        $ costopt eval-router data.jsonl --strategy knn --folds 5
        $ costopt eval-router data.csv --strategy knn --folds 5 --option max_tokens=null
        $ costopt eval-router data.csv --strategy length --target-share 0.3
        $ costopt eval-router data.csv --strategy knn --folds 5 --shuffle-labels  # control
        $ costopt eval-router data.csv --load router.npz   # a router from train-router

Learned strategies embed the first 32 tokens of each prompt by default (``max_tokens``;
``null`` = whole prompts, slower on long ones).

DATA is CSV or JSONL with ``prompt`` and ``weak_correct,strong_correct`` (0/1) or
``weak_score,strong_score``. The table shows quality and PGR at RouteLLM's 11 strong-call
shares, then APGR, CPT(50%), CPT(80%), the same on a dollar axis, and the share of calls
needed for 95% of the strong model's quality. ``--json`` writes ``{"strategy", "n",
"apgr", "cpt50", "cpt80", "pgr": [[share, pgr], ...]}`` plus more keys; ``--plot``
draws quality against cost beside random routing (needs ``costopt-llm[plot]``).
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from costopt_core.commands import add_command, require_plot
from costopt_core.embedding_cache import default_cache_dir
from costopt_core.evaluation import (
    DEFAULT_OUTPUT_TOKENS,
    DEFAULT_STRONG_MODEL,
    DEFAULT_WEAK_MODEL,
    RouterEvaluation,
    RoutingData,
    answer_judged,
    call_costs,
    cross_val_scores,
    embed_all,
    evaluate_scores,
    holdout_calibration,
    load_routing_data,
    prompt_key,
    random_scores,
    require_price,
    score_prompts,
)
from costopt_core.exports import install_hint
from costopt_core.hashing import HashingEmbedder
from costopt_core.learned import LearnedStrategy, load_router
from costopt_core.strategies import available_strategies, get_strategy, strategy_class
from costopt_core.tier_labels import TierQuality, needed_shares, routed_quality

RANDOM = "random"


SUMMARY = "measure a routing strategy on labelled prompts (PGR, APGR, CPT, cost)"
DESCRIPTION = (
    "Evaluate a routing strategy on a labelled CSV / JSONL file with "
    "RouteLLM's metrics, on a strong-call axis and a dollar axis."
)


def register(subparsers: Any) -> argparse.ArgumentParser:
    parser = add_command(subparsers, "eval-router", SUMMARY, DESCRIPTION, run)
    add_data_arguments(
        parser,
        default_strategy="default",
        extra_choices=[RANDOM],
        strategies=prompt_scored_strategy_names(),
    )
    parser.add_argument(
        "--folds",
        type=int,
        help="train a learned strategy (knn, logistic) by K-fold "
        "cross-validation and report out-of-fold figures",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed for folds / random (0)")
    parser.add_argument(
        "--load", metavar="ROUTER", help="evaluate a router saved by train-router (.npz / .json)"
    )
    parser.add_argument(
        "--shuffle-labels",
        action="store_true",
        help="control run: shuffle the labels across prompts first (a learned router "
        "should then score near APGR 0.5)",
    )
    parser.add_argument("--json", metavar="OUT", help="write the figures as JSON ('-' = stdout)")
    parser.add_argument("--plot", metavar="OUT.png", help="PNG of quality vs cost (extra [plot])")
    parser.add_argument(
        "--weak-model",
        help=f"catalog model priced as the weak one ({DEFAULT_WEAK_MODEL}; with "
        "--tier-models, its first)",
    )
    parser.add_argument(
        "--strong-model",
        help=f"catalog model priced as the strong one ({DEFAULT_STRONG_MODEL}; with "
        "--tier-models, its last)",
    )
    parser.add_argument(
        "--tier-models",
        metavar="A,B[,C...]",
        help="with --tier-columns: the catalog model of each tier, cheapest first, to price "
        "the table of all tiers (and the curves: the first and the last)",
    )
    parser.add_argument(
        "--output-tokens",
        type=int,
        default=DEFAULT_OUTPUT_TOKENS,
        help=f"assumed answer tokens per call ({DEFAULT_OUTPUT_TOKENS})",
    )
    parser.add_argument(
        "--target-share",
        type=float,
        metavar="SHARE",
        help="calibrate a threshold for this strong-call share (0-1) on "
        "half the prompts and report the share realised on the other half",
    )
    return parser


def prompt_scored_strategy_names() -> list[str]:
    """The built-in strategies that can be scored from prompts and labels (what
    eval-router takes): all but those that judge the cheaper model's answer (a cascade).

    Example:
        >>> "cascade" in prompt_scored_strategy_names(), "default" in prompt_scored_strategy_names()
        (False, True)
    """
    return [
        name
        for name in available_strategies()
        if not callable(getattr(strategy_class(name), "accept", None))
    ]


def learned_strategy_names() -> list[str]:
    """The built-in strategies that learn from labelled prompts (what train-router fits).

    Example:
        >>> learned_strategy_names()
        ['knn', 'logistic']
    """
    names = []
    for name in available_strategies():
        cls = strategy_class(name)
        if isinstance(cls, type) and issubclass(cls, LearnedStrategy):
            names.append(name)
    return names


def load_data(args: argparse.Namespace) -> RoutingData:
    """The labelled prompts ``add_data_arguments``' arguments name."""
    tier_columns = None
    if args.tier_columns is not None:
        tier_columns = [name.strip() for name in args.tier_columns.split(",")]
    return load_routing_data(
        args.data,
        prompt_column=args.prompt_column,
        weak_column=args.weak_column,
        strong_column=args.strong_column,
        tier_columns=tier_columns,
    )


def add_data_arguments(
    parser: argparse.ArgumentParser,
    default_strategy: str,
    extra_choices: list[str],
    *,
    strategies: list[str] | None = None,
) -> None:
    """The arguments eval-router and train-router share; ``strategies``: the built-in
    strategies ``--strategy`` takes (None = all of them)."""
    parser.add_argument(
        "data",
        metavar="DATA",
        nargs="+",
        help="CSV, TSV or JSONL files of labelled prompts (several are read as one set)",
    )
    parser.add_argument(
        "--prompt-column", default="prompt", metavar="NAME", help="the prompts' column (prompt)"
    )
    parser.add_argument(
        "--weak-column",
        metavar="NAME",
        help="the weak model's labels (0/1, true/false or scores), when the file does not "
        "use weak_correct / weak_score (e.g. RouteLLM's files: one column per model)",
    )
    parser.add_argument(
        "--strong-column", metavar="NAME", help="the strong model's labels (see --weak-column)"
    )
    parser.add_argument(
        "--tier-columns",
        metavar="A,B[,C...]",
        help="a label column per tier, cheapest first (three or more models judged on every "
        "prompt), instead of --weak-column / --strong-column",
    )
    # One list of names for --help and for the error on an unknown one.
    choices = [*(available_strategies() if strategies is None else strategies), *extra_choices]
    parser.set_defaults(default_strategy=default_strategy, strategy_choices=choices)
    parser.add_argument(
        "--strategy",
        default=default_strategy,
        help=f"one of {choices} (default: {default_strategy})",
    )
    parser.add_argument(
        "--option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="strategy option (repeatable), VALUE as JSON if it parses, e.g. k=20",
    )
    parser.add_argument(
        "--embedding",
        choices=["default", "hashing"],
        default="default",
        help="embedding of learned strategies: the best offline one installed (default; "
        "the [embeddings] extra's neural model when present) or the lexical hashing one",
    )
    parser.add_argument(
        "--embedding-cache",
        metavar="DIR",
        default=None,
        help=f"folder of the on-disk embedding cache (default {default_cache_dir()})",
    )
    parser.add_argument(
        "--no-embedding-cache", action="store_true", help="keep embeddings in memory only"
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def check_strategy_name(args: argparse.Namespace) -> None:
    """Refuse an unknown ``--strategy`` naming the same choices as ``--help``."""
    name = args.strategy.strip().lower()
    if name in args.strategy_choices:
        return
    try:
        cls = strategy_class(name)  # a spelling it also takes, such as zero_shot
    except ValueError:
        raise ValueError(
            f"unknown strategy {args.strategy!r}; choose one of {args.strategy_choices}"
        ) from None
    known = set(available_strategies())
    if any(strategy_class(choice) is cls for choice in args.strategy_choices if choice in known):
        return
    # A strategy this command does not take: (eval-router) one that judges answers, a
    # cascade; (train-router) one that learns nothing.
    if args.command == "eval-router" and callable(getattr(cls, "accept", None)):
        raise ValueError(answer_judged(name))
    raise ValueError(
        f"strategy {args.strategy!r} is not trained (it learns nothing from labels), so "
        f"{args.command} cannot use it; choose one of {args.strategy_choices}"
    )


def build_strategy(args: argparse.Namespace) -> Any:
    """The strategy named by ``--strategy`` / ``--option``; a learned one gets the
    embedding cache folder. Its warnings are printed as one plain line each."""
    name = args.strategy.strip().lower()
    options = parse_options(args.option)
    cls = strategy_class(name)
    learned = isinstance(cls, type) and issubclass(cls, LearnedStrategy)
    if learned and "cache_dir" not in options:
        options["cache_dir"] = embedding_cache_dir(args)
    if learned and args.embedding == "hashing" and "embeddings" not in options:
        options["embeddings"] = HashingEmbedder()
    # On the command line a warning's source line would point into costopt itself.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            strategy = get_strategy(name, **options)
        except TypeError as exc:  # an option the strategy does not take
            raise ValueError(f"strategy {name!r}: {exc}") from None
    for warning in caught:
        print(f"costopt {args.command}: warning: {warning.message}", file=sys.stderr)
    return strategy


def embedding_cache_dir(args: argparse.Namespace) -> str | Path | None:
    """The on-disk embedding cache folder ``--embedding-cache`` / ``--no-embedding-cache``
    name (None = memory only)."""
    if args.no_embedding_cache:
        return None
    return args.embedding_cache or default_cache_dir()


def parse_options(pairs: list[str]) -> dict[str, Any]:
    """``["k=20", "tiers=[\\"a\\",\\"b\\"]"]`` -> ``{"k": 20, "tiers": ["a", "b"]}``."""
    options: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--option must look like KEY=VALUE, got {pair!r}")
        try:
            value: Any = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        options[key.strip().replace("-", "_")] = value
    return options


def _scores(
    args: argparse.Namespace, data: RoutingData, progress: bool
) -> tuple[np.ndarray, str, int | None]:
    """The strategy's scores on DATA, a label saying how they were made, and the folds."""
    name = args.strategy.strip().lower()
    if name == RANDOM:
        if args.option or args.load or args.folds:
            raise ValueError("the random baseline takes no options, router or folds")
        return random_scores(len(data), args.seed), "random routing (baseline)", None
    if args.load:
        router = load_router(args.load, cache_dir=embedding_cache_dir(args))
        warn_in_sample(router, data.prompts)
        embed_all(router, data.prompts, progress=progress)
        scores = score_prompts(router, data.prompts, progress=progress)
        print(saved_cuts(router, scores), file=sys.stderr)
        return scores, f"{router.name} loaded from {args.load}", None
    strategy = build_strategy(args)
    learned = callable(getattr(strategy, "fit", None))
    if learned and args.folds is None:
        raise ValueError(
            f"strategy {name!r} is learned: pass --folds K to evaluate it by K-fold "
            "cross-validation, or --load ROUTER to evaluate one saved by train-router"
        )
    if learned:
        note_repeated_prompts(data.prompts)
        embed_all(strategy, data.prompts, progress=progress)
        factory = getattr(strategy, "clone", None) or (lambda: build_strategy(args))
        scores = cross_val_scores(factory, data, args.folds, seed=args.seed, progress=progress)
        label = f"{name} ({args.folds}-fold cross-validation, out-of-fold scores)"
        return scores, label, args.folds
    if args.folds is not None:
        print(f"note: {name!r} is not trained; --folds has no effect", file=sys.stderr)
    return score_prompts(strategy, data.prompts, progress=progress), name, None


def saved_cuts(router: LearnedStrategy, scores: np.ndarray) -> str:
    """What a saved router's own cut points do on these prompts: the share each tier
    gets, beside the shares it was calibrated for (``train-router --target-share`` /
    ``--shares``), so a user sees whether the deployed cut holds on new traffic.

    Example:
        >>> from costopt_core.knn import KNNStrategy
        >>> router = KNNStrategy(tiers=("cheap", "strong"), thresholds=[0.5])
        >>> saved_cuts(router, np.array([0.1, 0.2, 0.7, 0.9]))
        'saved cut points [0.5000] (not calibrated): on these prompts cheap 50.0%, strong 50.0%'
    """
    tiers = np.searchsorted(router.thresholds, scores, side="right")
    shares = ", ".join(
        f"{tier} {_pct(float(np.mean(tiers == i)) if len(scores) else None)}"
        for i, tier in enumerate(router.tiers)
    )
    calibration = router.calibration or {}
    wanted = calibration.get("shares")
    meant = "not calibrated"
    if wanted and len(wanted) == len(router.tiers):
        pairs = zip(router.tiers, wanted, strict=True)
        meant = "calibrated for " + ", ".join(f"{tier} {_pct(w)}" for tier, w in pairs)
    cuts = ", ".join(f"{cut:.4f}" for cut in router.thresholds)
    return f"saved cut points [{cuts}] ({meant}): on these prompts {shares}"


def note_repeated_prompts(prompts: list[str]) -> None:
    """Say on stderr how many rows repeat a prompt (up to case and spacing): the folds
    keep every copy together, so there are fewer independent prompts than rows."""
    distinct = len({prompt_key(p) for p in prompts})
    if distinct < len(prompts):
        print(
            f"note: {len(prompts) - distinct} of {len(prompts)} rows repeat a prompt "
            f"({distinct} distinct, up to case and spacing); each prompt's copies are kept "
            "in one fold",
            file=sys.stderr,
        )


def warn_in_sample(router: LearnedStrategy, prompts: list[str]) -> None:
    """Say on stderr when a loaded router is scored on prompts it was trained on (its
    figures on those are in-sample, so flattered), or that it cannot tell."""
    seen = router.trained_on(prompts)
    if seen is None:
        print(
            "note: this router file does not record its training prompts; scored on the "
            "prompts it was trained on, its figures are in-sample (flattered): evaluate "
            "on held-out prompts, or the strategy itself with --strategy NAME --folds K",
            file=sys.stderr,
        )
    elif seen:
        print(
            f"warning: {seen} of {len(prompts)} prompts ({seen / len(prompts):.0%}) are "
            "ones the router was trained on: its figures on them are in-sample "
            "(flattered); evaluate on held-out prompts, or the strategy itself with "
            f"--strategy {router.name} --folds K",
            file=sys.stderr,
        )


def check_output_folder(flag: str, path: str | None) -> None:
    """Refuse an output file whose folder does not exist, before any work is done."""
    if path is not None and not Path(path).resolve().parent.is_dir():
        raise ValueError(f"{flag}: folder {str(Path(path).parent)!r} does not exist")


def _resolve_models(args: argparse.Namespace) -> None:
    # Every priced model is checked before the (possibly long) scoring: a misspelt name
    # fails at once. The curves are priced with the first and last of --tier-models.
    if args.output_tokens < 0:
        raise ValueError(f"--output-tokens must be >= 0, got {args.output_tokens}")
    tiers = None
    if args.tier_models is not None:
        tiers = [name.strip() for name in args.tier_models.split(",")]
        if args.tier_columns is None:
            raise ValueError("--tier-models prices the tiers of --tier-columns: name those too")
        for flag, given, model in (
            ("--weak-model", args.weak_model, tiers[0]),
            ("--strong-model", args.strong_model, tiers[-1]),
        ):
            if given is not None and given != model:
                raise ValueError(f"{flag} {given!r} contradicts --tier-models ({model!r})")
    args.tier_model_names = tiers
    args.weak_model = args.weak_model or (tiers[0] if tiers else DEFAULT_WEAK_MODEL)
    args.strong_model = args.strong_model or (tiers[-1] if tiers else DEFAULT_STRONG_MODEL)
    for model in (args.weak_model, args.strong_model, *(tiers or ())):
        require_price(model)


def _tier_costs(args: argparse.Namespace, data: RoutingData) -> np.ndarray | None:
    # USD per call of each prompt on each tier's model (--tier-models), prompts x tiers.
    models = args.tier_model_names
    if models is None:
        return None
    if data.weak_cost is not None:
        # One output, one price list: the curves would read the file's costs, the tier
        # table the catalog's.
        raise ValueError(
            "--tier-models prices from the catalog, but the file's weak_cost / strong_cost "
            "columns price the curves: drop --tier-models (or the cost columns)"
        )
    if len(models) != len(data.tier_names):
        raise ValueError(
            f"--tier-models names {len(models)} models, --tier-columns "
            f"{len(data.tier_names)} tiers: one model per tier"
        )
    return np.stack([call_costs(data.prompts, m, args.output_tokens) for m in models], axis=1)


def tier_report(
    data: RoutingData,
    scores: np.ndarray,
    shares: list[float] | None = None,
    thresholds: tuple[float, ...] | None = None,
    costs: np.ndarray | None = None,
) -> TierQuality:
    """How routing on ``scores`` keeps quality over the tiers DATA labels one by one."""
    if data.tier_labels is None:
        raise ValueError(f"{data.source} has no label per tier (--tier-columns)")
    return routed_quality(
        data.tier_labels, scores, shares, thresholds=thresholds, tiers=data.tier_names, costs=costs
    )


def shuffled(data: RoutingData, seed: int) -> RoutingData:
    """``data`` with each prompt's labels (and costs) taken from another prompt: the
    control under which no router can learn anything real."""
    order = np.random.default_rng(seed + 1).permutation(len(data))
    moved = data.subset(order)
    moved.prompts = list(data.prompts)
    return moved


def run(args: argparse.Namespace) -> int:
    check_strategy_name(args)
    if args.plot:  # before any work: a missing extra must not cost a whole evaluation
        require_plot("--plot")
    if args.load and (
        args.option or args.folds is not None or args.strategy != args.default_strategy
    ):
        # The saved router is evaluated as it is: these would be ignored in silence.
        raise ValueError("--load evaluates the saved router: drop --strategy, --option and --folds")
    if args.folds is not None and args.folds < 2:
        raise ValueError(f"--folds must be >= 2, got {args.folds}")
    if args.target_share is not None and not 0.0 <= args.target_share <= 1.0:
        raise ValueError(f"--target-share must be in [0, 1], got {args.target_share}")
    check_output_folder("--json", None if args.json == "-" else args.json)
    check_output_folder("--plot", args.plot)
    _resolve_models(args)
    data = load_data(args)
    tier_costs = _tier_costs(args, data)
    if args.shuffle_labels:
        data = shuffled(data, args.seed)
    scores, label, folds = _scores(args, data, progress=not args.no_progress)
    if args.shuffle_labels:
        label += " [labels shuffled: a control]"
    result = evaluate_scores(
        scores,
        data,
        strategy=args.strategy,
        weak_model=args.weak_model,
        strong_model=args.strong_model,
        output_tokens=args.output_tokens,
        folds=folds,
    )
    if args.target_share is not None:
        result.calibration = holdout_calibration(scores, data, args.target_share, args.seed)
    # With --json - the JSON owns stdout, so the table goes to stderr.
    report_stream = sys.stderr if args.json == "-" else sys.stdout
    print(
        format_report(result, label, Path(data.source).name, args.output_tokens), file=report_stream
    )
    figures = result.to_dict()
    if data.tier_labels is not None:
        tiers = tier_report(data, scores, needed_shares(data.tier_labels), costs=tier_costs)
        figures["tiers"] = tiers.to_dict()
        print(
            f"\nAll {len(data.tier_names)} tiers (the curves above: {data.tier_names[0]} vs "
            f"{data.tier_names[-1]}), cut at the share of prompts each tier is needed for:",
            file=report_stream,
        )
        print("\n".join(tiers.lines()), file=report_stream)
    if args.json:
        text = json.dumps(figures, indent=2)
        if args.json == "-":
            print(text)
        else:
            Path(args.json).write_text(text + "\n", encoding="utf-8")
            print(f"figures written to {args.json}")
    if args.plot:
        plot_quality_vs_cost(result, args.plot, title=f"{label} on {Path(data.source).name}")
        print(f"plot written to {args.plot}")
    return 0


def _pct(value: float | None) -> str:
    if value is None:
        return "n/a"
    # ``or 0.0``: a saving of -1e-16 (float noise) is 0.0%, never "-0.0%".
    return f"{round(value * 100, 1) or 0.0:.1f}%"


def format_report(result: RouterEvaluation, label: str, source: str, output_tokens: int) -> str:
    """The human-readable table."""
    c = result.curve
    lines = [
        f"router: {label}",
        f"data:   {source}: {result.n} prompts; weak quality {c.weak_quality:.3f}, "
        f"strong quality {c.strong_quality:.3f}",
        "",
        f"{'strong calls':>12}  {'quality':>8}  {'PGR':>7}  {'USD / 1k calls':>14}",
    ]
    for share, pgr in result.pgr:
        lines.append(
            f"{share * 100:>11.0f}%  {c.quality_at(share):>8.3f}  {pgr:>7.3f}  "
            f"{c.cost_at(share) * 1000:>14.4f}"
        )
    lines += [
        "",
        f"APGR {result.apgr:.3f}   CPT(50%) {_pct(result.cpt50)}   CPT(80%) {_pct(result.cpt80)}"
        "   (random routing: APGR 0.500, CPT(50%) 50.0%, CPT(80%) 80.0%)",
    ]
    share95 = c.share_for_quality(0.95)
    cost95 = "" if share95 is None else f" (USD {c.cost_at(share95) * 1000:.4f} per 1k calls)"
    lines.append(f"95% of the strong model's quality: {_pct(share95)} strong calls{cost95}")
    if c.strong_cost > c.weak_cost:
        lines.append(
            f"dollar axis ({result.weak_model} -> {result.strong_model}, prompt tokens + "
            f"{output_tokens} answer tokens): APGR {c.apgr_cost():.3f}, CPT(50%) "
            f"{_pct(c.cpt_cost(0.5))} of the extra spend (USD "
            f"{c.cost_at(result.cpt50) * 1000:.4f} / 1k calls), CPT(80%) "
            f"{_pct(c.cpt_cost(0.8))} (USD {c.cost_at(result.cpt80) * 1000:.4f} / 1k calls); "
            f"all weak USD {c.weak_cost * 1000:.4f}, all strong USD {c.strong_cost * 1000:.4f}"
        )
    if c.strong_cost > c.weak_cost:
        lines.append("dollars at each quality level (vs all calls to the strong model):")
        for row in result.quality_levels():
            level = f"{row['fraction_of_strong_quality']:.0%} of strong quality"
            if row["strong_share"] is None:
                lines.append(f"  {level:>26}: out of reach")
                continue
            lines.append(
                f"  {level:>26}: {_pct(row['strong_share'])} strong calls, USD "
                f"{row['usd_per_1k_calls']:.4f} / 1k calls, saving "
                f"{_pct(row['saving_vs_all_strong'])}"
            )
    if result.calibration:
        cal = result.calibration
        pgr = cal.get("heldout_pgr")
        lines.append(
            f"calibration: threshold {cal['threshold']:.4f} for a {_pct(cal['target_share'])} "
            f"target sends {_pct(cal['sample_share'])} of {cal['sample_size']} sample prompts "
            f"and {_pct(cal['heldout_share'])} of {cal['heldout_size']} held-out prompts to the "
            f"strong model (held-out PGR {'n/a' if pgr is None else f'{pgr:.3f}'})"
        )
    return "\n".join(lines)


def plot_quality_vs_cost(result: RouterEvaluation, path: str, title: str = "") -> None:
    """Write a PNG of quality against USD per 1k calls, with random routing beside it."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise ImportError(f"--plot needs matplotlib: {install_hint('plot')}") from None
    c = result.curve
    fig, ax = plt.subplots(figsize=(8, 5))
    ax.plot(
        c.cost * 1000,
        c.quality,
        "-",
        color="C0",
        label=f"{result.strategy} (APGR {result.apgr:.3f})",
    )
    marks = [s for s, _ in result.pgr]
    ax.plot(
        [c.cost_at(s) * 1000 for s in marks],
        [c.quality_at(s) for s in marks],
        "o",
        color="C0",
        markersize=4,
    )
    ax.plot(
        [c.weak_cost * 1000, c.strong_cost * 1000],
        [c.weak_quality, c.strong_quality],
        "--",
        color="grey",
        label="random routing",
    )
    ax.axhline(c.weak_quality, color="C2", linestyle=":", label=f"all weak ({result.weak_model})")
    ax.axhline(
        c.strong_quality, color="C3", linestyle=":", label=f"all strong ({result.strong_model})"
    )
    ax.set_xlabel("USD per 1k calls")
    ax.set_ylabel("quality (mean correctness / score)")
    ax.set_title(title or f"{result.strategy}: quality vs cost")
    ax.legend(loc="lower right")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


__all__ = [
    "add_data_arguments",
    "build_strategy",
    "check_output_folder",
    "check_strategy_name",
    "embedding_cache_dir",
    "format_report",
    "learned_strategy_names",
    "note_repeated_prompts",
    "parse_options",
    "plot_quality_vs_cost",
    "register",
    "run",
    "shuffled",
    "tier_report",
    "warn_in_sample",
]
