"""Router evaluation on labelled prompts: PGR, APGR, CPT, a dollar axis, calibration.

Example:
    >>> import numpy as np
    >>> from costopt_core.evaluation import RoutingData, evaluate_scores
    >>> data = RoutingData(
    ...     prompts=["a", "b", "c", "d"],
    ...     weak=np.array([1.0, 0.0, 1.0, 0.0]),
    ...     strong=np.array([1.0, 1.0, 1.0, 1.0]),
    ... )
    >>> result = evaluate_scores(np.array([0.1, 0.9, 0.2, 0.8]), data)
    >>> result.apgr, result.cpt50
    (0.75, 0.25)

The metrics are RouteLLM's (Ong et al., 2024, ``routellm/evals/evaluate.py``):

- A router gives every prompt a score; routing the top ``s`` share of prompts by score to
  the strong model yields a quality ``Q(s)``.
- ``PGR(s) = (Q(s) - Q_weak) / (Q_strong - Q_weak)``: the performance gap recovered.
- ``APGR``: the area under PGR over the strong-call share, by the trapezoid rule over
  11 evenly spaced shares 0, 0.1, ..., 1.0. Random routing has APGR 0.5.
- ``CPT(x)``: the smallest strong-call share at which PGR reaches ``x``.

Prompts with equal scores cannot be split by a threshold; a share that falls inside a
run of ties is reached by routing part of that run, and the curve takes the expected
value (linear between the achievable points). So a router that scores every prompt
the same is exactly random routing (APGR 0.5), and the figures never depend on row
order. RouteLLM interpolates CPT between its 11 points; here CPT is read on the full
curve, which is exact.

The dollar axis prices each call with the catalog (``costopt_core.pricing``): prompt
tokens from :func:`costopt_core.tokens.estimate_tokens` plus an assumed answer length,
unless the data carries per-row ``weak_cost`` / ``strong_cost`` columns (USD).
"""

from __future__ import annotations

import math
import random
import sys
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np

from costopt_core.datafiles import read_table
from costopt_core.pricing import ModelPrice, get_price
from costopt_core.prompt_template import shared_prefix
from costopt_core.tier_labels import check_tier_labels, needed_tier_labels
from costopt_core.tokens import estimate_tokens

#: RouteLLM's evenly spaced strong-call shares for APGR.
APGR_SHARES: tuple[float, ...] = tuple(i / 10 for i in range(11))
DEFAULT_WEAK_MODEL = "gpt-4o-mini"
DEFAULT_STRONG_MODEL = "gpt-4o"
DEFAULT_OUTPUT_TOKENS = 500  # the seed's estimate_cost default answer length
#: Quality levels (fractions of the strong model's quality) the dollar table reports.
QUALITY_LEVELS: tuple[float, ...] = (0.9, 0.95, 0.98, 1.0)

_TRUE = {"1", "true", "yes", "y", "t", "correct"}
_FALSE = {"0", "false", "no", "n", "f", "incorrect", "wrong"}


# -- data -------------------------------------------------------------------------------


@dataclass
class RoutingData:
    """Labelled prompts: each prompt's quality under the weak and the strong model.

    ``weak`` / ``strong`` hold 0/1 correctness or any numeric score (higher = better).
    ``weak_cost`` / ``strong_cost`` optionally hold each call's measured cost in USD.
    ``tier_labels`` optionally holds a label per tier (prompts x tiers, cheapest first;
    ``weak`` / ``strong`` are then its first and last columns), named ``tier_names``
    (see ``costopt_core.tier_labels``).
    """

    prompts: list[str]
    weak: np.ndarray
    strong: np.ndarray
    kind: str = "correct"
    weak_cost: np.ndarray | None = None
    strong_cost: np.ndarray | None = None
    source: str = ""
    tier_labels: np.ndarray | None = None
    tier_names: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        self.weak = np.asarray(self.weak, dtype=float)
        self.strong = np.asarray(self.strong, dtype=float)
        n = len(self.prompts)
        if n == 0:
            raise ValueError("routing data holds no prompts")
        for name in ("weak", "strong", "weak_cost", "strong_cost"):
            value = getattr(self, name)
            if value is None:
                continue
            value = np.asarray(value, dtype=float)
            setattr(self, name, value)
            if value.shape != (n,):
                raise ValueError(f"{name} must hold one number per prompt ({n}), got {value.shape}")
            if not np.all(np.isfinite(value)):
                raise ValueError(f"{name} holds a missing or non-finite value")
        if (self.weak_cost is None) != (self.strong_cost is None):
            raise ValueError("give both weak_cost and strong_cost, or neither")
        if self.tier_labels is not None:
            self.tier_labels = check_tier_labels(self.tier_labels, n)
            if len(self.tier_names) != self.tier_labels.shape[1]:
                raise ValueError(
                    f"tier_names: one name per tier_labels column "
                    f"({self.tier_labels.shape[1]}), got {list(self.tier_names)}"
                )

    def __len__(self) -> int:
        return len(self.prompts)

    def subset(self, indexes: Sequence[int] | np.ndarray) -> RoutingData:
        """The rows at ``indexes`` (e.g. one cross-validation fold)."""
        idx = np.asarray(indexes, dtype=int)
        return RoutingData(
            prompts=[self.prompts[i] for i in idx],
            weak=self.weak[idx],
            strong=self.strong[idx],
            kind=self.kind,
            weak_cost=None if self.weak_cost is None else self.weak_cost[idx],
            strong_cost=None if self.strong_cost is None else self.strong_cost[idx],
            source=self.source,
            tier_labels=None if self.tier_labels is None else self.tier_labels[idx],
            tier_names=self.tier_names,
        )

    def gain_labels(self) -> np.ndarray:
        """Per-prompt training label in [0, 1] for a learned router: the strong model's
        gain over the weak one, mapped from [-max, +max] onto [0, 1]. For 0/1 data:
        1 = strong right and weak wrong (the strong model was needed), 0.5 = no
        difference, 0 = the weak model did better. A neighbour average of these labels
        estimates the expected gain, which is what a routing curve ranks by.

        With a label per tier for three or more tiers: the needed tier as a fraction of
        the ladder (``costopt_core.tier_labels.needed_tier_labels``)."""
        if self.tier_labels is not None and self.tier_labels.shape[1] > 2:
            return needed_tier_labels(self.tier_labels)
        gain = self.strong - self.weak
        top = float(np.abs(gain).max())
        if top == 0:
            return np.full(len(self), 0.5)
        return (gain / top + 1.0) / 2.0


def _parse_correct(value: Any, column: str, row: int, source: str) -> float:
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, int | float) and value in (0, 1):
        return float(value)
    text = str(value).strip().lower()
    if text in _TRUE:
        return 1.0
    if text in _FALSE:
        return 0.0
    try:
        number = float(text)
    except ValueError:
        number = math.nan
    if number in (0.0, 1.0):
        return number
    raise ValueError(f"{source}: row {row}: {column} must be 0/1 (or true/false), got {value!r}")


def _parse_number(value: Any, column: str, row: int, source: str) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    if not math.isfinite(number):
        raise ValueError(f"{source}: row {row}: {column} must be a finite number, got {value!r}")
    return number


def _label_columns(
    columns: list[str], named: tuple[str, ...] | None, source: str
) -> tuple[str, ...]:
    # The label columns, cheapest model first: the ones named, else the standard pair.
    if named is not None:
        for name in named:
            if name not in columns:
                raise ValueError(f"{source}: no column {name!r} (columns found: {columns})")
        return named
    for pair in (("weak_correct", "strong_correct"), ("weak_score", "strong_score")):
        if set(pair) <= set(columns):
            return pair
    raise ValueError(
        f"{source}: needs columns 'weak_correct,strong_correct' (0/1) or "
        f"'weak_score,strong_score' (numbers), or the weak and the strong model's columns "
        f"named (weak_column= / strong_column=, or tier_columns= for a label per tier; "
        f"costopt eval-router / train-router: --weak-column / --strong-column, "
        f"--tier-columns); columns found: {columns}"
    )


def _is_correctness(values: Iterable[Any]) -> bool:
    # 0/1 or true/false throughout: correctness labels, else graded scores. An empty cell
    # says neither (reading it then names its row).
    for value in values:
        if value is None or (isinstance(value, str) and not value.strip()):
            continue
        try:
            _parse_correct(value, "", 0, "")
        except ValueError:
            return False
    return True


def load_routing_data(
    path: str | PathLike[str] | Sequence[str | PathLike[str]],
    *,
    prompt_column: str = "prompt",
    weak_column: str | None = None,
    strong_column: str | None = None,
    tier_columns: Sequence[str] | None = None,
) -> RoutingData:
    """Read CSV / TSV / JSONL files of labelled prompts (one path or several, read in
    order as one set).

    Columns: ``prompt`` and either ``weak_correct,strong_correct`` (0/1) or
    ``weak_score,strong_score`` (numbers); optional ``weak_cost,strong_cost`` (USD).
    Files laid out otherwise name their columns: ``prompt_column``, and ``weak_column``
    with ``strong_column`` (e.g. RouteLLM's, one column per model), or ``tier_columns``
    (a label per tier, cheapest first: ``RoutingData.tier_labels``; the weak and strong
    labels are then its first and last): their values are read as correctness when
    every one is 0/1 or true/false, else as scores.

    Example:
        >>> import tempfile, pathlib
        >>> file = pathlib.Path(tempfile.mkdtemp()) / "mmlu_x.csv"
        >>> _ = file.write_text("prompt,small,big\\nWhy?,False,True\\n2+2?,True,True\\n")
        >>> data = load_routing_data(file, weak_column="small", strong_column="big")
        >>> data.kind, data.weak.tolist(), data.strong.tolist()
        ('correct', [0.0, 1.0], [1.0, 1.0])
    """
    if (weak_column is None) != (strong_column is None):
        raise ValueError("weak_column and strong_column go together: name both or neither")
    named: tuple[str, ...] | None = None
    if tier_columns is not None:
        if weak_column is not None:
            raise ValueError("name the label columns once: tier_columns, or weak/strong_column")
        if isinstance(tier_columns, str):
            raise TypeError("tier_columns must be a sequence of column names, not one string")
        named = tuple(tier_columns)
        if len(named) < 2 or len(set(named)) != len(named):
            raise ValueError(
                f"tier_columns: two or more distinct columns, cheapest tier first, got {named}"
            )
    elif weak_column is not None and strong_column is not None:
        named = (weak_column, strong_column)
    paths = [path] if isinstance(path, str | PathLike) else list(path)
    if not paths:
        raise ValueError("load_routing_data needs at least one file")
    tables = []
    for each in paths:
        file = Path(each)
        if not file.is_file():
            raise FileNotFoundError(f"routing data file not found: {file}")
        rows, columns = read_table(file)
        source = str(file)
        if not rows:
            raise ValueError(f"{source}: no rows")
        if prompt_column not in columns:
            raise ValueError(
                f"{source}: missing column {prompt_column!r} (columns found: {columns})"
            )
        labels = _label_columns(columns, named, source)
        costs = {"weak_cost", "strong_cost"} <= set(columns)
        tables.append((source, rows, labels, costs))
    if len({labels for _, _, labels, _ in tables}) > 1:
        raise ValueError(
            "the files label their prompts with different columns: "
            + ", ".join(f"{source}: {','.join(labels)}" for source, _, labels, _ in tables)
        )
    label_cols = tables[0][2]
    weak_col = label_cols[0]
    if weak_col == "weak_correct":
        kind = "correct"
    elif weak_col == "weak_score":
        kind = "score"
    else:
        every = (row.get(col) for _, rows, _, _ in tables for row in rows for col in label_cols)
        kind = "correct" if _is_correctness(every) else "score"
    parse = _parse_correct if kind == "correct" else _parse_number
    has_cost = all(costs for *_, costs in tables)
    if not has_cost and any(costs for *_, costs in tables):
        lacking = [source for source, *_, costs in tables if not costs]
        raise ValueError(
            f"some files have weak_cost,strong_cost and these do not: {lacking} "
            "(give every file its costs, or none)"
        )
    prompts: list[str] = []
    label_rows: list[list[float]] = []
    weak_cost: list[float] = []
    strong_cost: list[float] = []
    for source, rows, _, _ in tables:
        for i, row in enumerate(rows, 1):
            prompt = row.get(prompt_column)
            if not isinstance(prompt, str):
                raise ValueError(f"{source}: row {i}: {prompt_column} must be text, got {prompt!r}")
            prompts.append(prompt)
            label_rows.append([parse(row.get(col), col, i, source) for col in label_cols])
            if has_cost:
                weak_cost.append(_parse_number(row.get("weak_cost"), "weak_cost", i, source))
                strong_cost.append(_parse_number(row.get("strong_cost"), "strong_cost", i, source))
    matrix = np.array(label_rows, dtype=float)
    return RoutingData(
        prompts=prompts,
        weak=matrix[:, 0],
        strong=matrix[:, -1],
        kind=kind,
        weak_cost=np.array(weak_cost) if has_cost else None,
        strong_cost=np.array(strong_cost) if has_cost else None,
        source=tables[0][0] if len(tables) == 1 else f"{tables[0][0]} (+{len(tables) - 1} files)",
        tier_labels=matrix if tier_columns is not None else None,
        tier_names=label_cols if tier_columns is not None else (),
    )


# -- scoring ------------------------------------------------------------------------------


_BLOCK = 256


#: Set once the hint to install the progress bar has been printed (once per process).
_progress_hinted = threading.Event()


def _progress(
    items: Iterable[Any],
    total: int,
    desc: str,
    enabled: bool,
    unit: str = "prompt",
    leave: bool = False,
) -> Iterable[Any]:
    if not enabled:
        return items
    try:
        from tqdm import tqdm
    except ImportError:  # the bar is the optional extra [progress]; plain lines without it
        return _plain_progress(items, total, desc, unit)
    return tqdm(items, total=total, desc=desc, unit=unit, leave=leave)


def _plain_progress(items: Iterable[Any], total: int, desc: str, unit: str) -> Iterator[Any]:
    """``items``, with a line on stderr at the start and after each tenth of them: a long
    evaluation without the [progress] extra must not look hung."""
    from costopt_core.exports import install_hint

    if not _progress_hinted.is_set():
        _progress_hinted.set()
        print(f"(for a progress bar: {install_hint('progress')})", file=sys.stderr)
    step = max(1, math.ceil(total / 10))
    print(f"{desc}: 0/{total} {unit}s", file=sys.stderr, flush=True)
    for done, item in enumerate(items, 1):
        yield item  # the caller's work on ``item`` runs before the line below
        if done % step == 0 or done == total:
            print(f"{desc}: {done}/{total} {unit}s", file=sys.stderr, flush=True)


def answer_judged(name: str) -> str:
    """Why strategy ``name``, which judges the cheaper model's answer (a cascade), cannot
    be evaluated from prompts and labels."""
    return (
        f"strategy {name!r} escalates after the cheaper model answers (a check on the "
        "answer), so it cannot be scored from prompts and labels alone: every prompt "
        "would score the same, which is random routing (APGR 0.500). Evaluate the "
        "strategy it starts from instead (e.g. 'default', or a learned one by "
        "cross-validation: costopt eval-router DATA --strategy knn --folds 5), and "
        "measure the cascade on real answers: its rejected attempts show in "
        "costopt report under the lever 'cascade'"
    )


def score_prompts(
    strategy: Any, prompts: Sequence[str], *, progress: bool = False, desc: str = "scoring"
) -> np.ndarray:
    """Each prompt's routing score in [0, 1] (higher = needs the stronger model).

    A strategy that judges answers (``accept``: a cascade) is refused with a
    ``ValueError``: its decision waits for the weak model's answer, so its scores from
    prompts alone would only ever measure random routing."""
    from costopt_core.strategies import as_strategy

    router = as_strategy(strategy)
    if callable(getattr(router, "accept", None)):
        raise ValueError(answer_judged(getattr(router, "name", None) or type(router).__name__))
    scores = np.empty(len(prompts))
    batch = getattr(router, "scores", None)
    if callable(batch):
        # Learned strategies embed and score many prompts at once: far faster than one by
        # one. Blocks keep the progress bar moving.
        starts = range(0, len(prompts), _BLOCK)
        for start in _progress(starts, len(starts), desc, progress, unit="block"):
            scores[start : start + _BLOCK] = batch(list(prompts[start : start + _BLOCK]))
        return scores
    for i, prompt in enumerate(_progress(prompts, len(prompts), desc, progress)):
        scores[i] = router.route(prompt).score
    return scores


def embed_all(strategy: Any, prompts: Sequence[str], *, progress: bool = False) -> None:
    """Embed ``prompts`` once, up front, with a progress bar, so that fitting and scoring
    (every fold of a cross-validation too) read the vectors from the embedding cache.
    Strategies that embed nothing are left alone."""
    from costopt_core.learned import LearnedStrategy

    vectors = getattr(strategy, "vectors", None)
    if not callable(vectors):
        return
    embed = vectors
    if isinstance(strategy, LearnedStrategy):
        # Fitting strips the instruction its prompts share before embedding (every
        # fold finds the same one): embed those texts, not the template's words.
        template = shared_prefix(prompts)

        def embed(block: list[str]) -> Any:
            return strategy.vectors(block, template=template)

    starts = range(0, len(prompts), _BLOCK)
    for start in _progress(starts, len(starts), "embedding", progress, unit="block"):
        embed(list(prompts[start : start + _BLOCK]))


def prompt_key(prompt: str) -> str:
    """What makes two prompts the same one for cross-validation: the text stripped,
    case-folded, its whitespace runs made one space.

    Example:
        >>> prompt_key("  What is 2+2? ") == prompt_key("what is  2+2?")
        True
    """
    return " ".join(prompt.split()).casefold()


def kfold_indexes(
    n: int, folds: int, seed: int = 0, *, groups: Sequence[Any] | None = None
) -> list[np.ndarray]:
    """``folds`` disjoint test index sets covering ``range(n)``, shuffled with ``seed``.
    Rows with equal ``groups`` keys (e.g. :func:`prompt_key`) fall in one fold, so a
    router is never scored on a copy of a prompt it was fitted on.

    Example:
        >>> parts = kfold_indexes(4, 2, groups=["a", "b", "a", "b"])
        >>> sorted(sorted(p.tolist()) for p in parts)
        [[0, 2], [1, 3]]
    """
    if not isinstance(folds, int) or folds < 2:
        raise ValueError(f"folds must be an int >= 2, got {folds!r}")
    if groups is None:
        group_of = np.arange(n)
    else:
        if len(groups) != n:
            raise ValueError(f"groups: one key per row ({n}), got {len(groups)}")
        # Numbered by first appearance: with no repeats the folds are the row folds.
        first: dict[Any, int] = {}
        group_of = np.array([first.setdefault(g, len(first)) for g in groups], dtype=np.int64)
    distinct = int(group_of.max()) + 1 if n else 0
    if folds > distinct:
        what = "prompts" if distinct == n else f"distinct prompts ({n} rows)"
        raise ValueError(f"folds ({folds}) cannot exceed the number of {what} ({distinct})")
    order = np.random.default_rng(seed).permutation(distinct)
    fold_of_group = np.empty(distinct, dtype=np.int64)
    for fold, part in enumerate(np.array_split(order, folds)):
        fold_of_group[part] = fold
    fold_of_row = fold_of_group[group_of]
    return [np.flatnonzero(fold_of_row == fold) for fold in range(folds)]


def cross_val_scores(
    factory: Callable[[], Any],
    data: RoutingData,
    folds: int = 5,
    *,
    seed: int = 0,
    progress: bool = False,
) -> np.ndarray:
    """Out-of-fold scores of a learned strategy: for each fold, a fresh strategy from
    ``factory()`` is fitted on the other folds (labels from :meth:`RoutingData.gain_labels`)
    and scores the held-out prompts. Folds are drawn by distinct prompt
    (:func:`prompt_key`): every copy of a prompt is in one fold."""
    labels = data.gain_labels()
    scores = np.full(len(data), np.nan)
    # Copies of one prompt in the training and the test side would score it in-sample.
    groups = [prompt_key(p) for p in data.prompts]
    parts = kfold_indexes(len(data), folds, seed, groups=groups)
    # One bar over the folds, kept when done: a bar per fold (a block or two of prompts,
    # scored in well under tqdm's refresh interval) never moved off 0 in a log.
    for test in _progress(parts, folds, "cross-validation", progress, unit="fold", leave=True):
        train = np.setdiff1d(np.arange(len(data)), test)
        strategy = factory()
        strategy.fit([data.prompts[i] for i in train], labels[train])
        scores[test] = score_prompts(strategy, [data.prompts[i] for i in test])
    return scores


# -- the curve ----------------------------------------------------------------------------


def _crossing(x: np.ndarray, y: np.ndarray, target: float, eps: float = 1e-12) -> float | None:
    """Smallest x at which the piecewise-linear curve (x, y) reaches ``target``
    (``eps`` absorbs float noise in the sums, e.g. a PGR of 0.9999999999999998)."""
    if y[0] >= target - eps:
        return float(x[0])
    for i in range(1, len(x)):
        if y[i] >= target - eps > y[i - 1]:
            t = min(1.0, max(0.0, (target - y[i - 1]) / (y[i] - y[i - 1])))
            return float(x[i - 1] + t * (x[i] - x[i - 1]))
    return None


@dataclass
class RoutingCurve:
    """The achievable (share, quality, cost) points of a router, best-scored first.

    Point ``k`` routes the ``k`` highest-scoring groups of equal-score prompts to the
    strong model; between points the curve is linear (ties split at random, in
    expectation). ``cost`` is the mean USD per call.
    """

    share: np.ndarray
    quality: np.ndarray
    cost: np.ndarray
    weak_quality: float
    strong_quality: float
    weak_cost: float
    strong_cost: float

    @classmethod
    def from_scores(
        cls,
        scores: Sequence[float] | np.ndarray,
        weak: np.ndarray,
        strong: np.ndarray,
        weak_cost: np.ndarray | None = None,
        strong_cost: np.ndarray | None = None,
    ) -> RoutingCurve:
        s = np.asarray(scores, dtype=float)
        weak = np.asarray(weak, dtype=float)
        strong = np.asarray(strong, dtype=float)
        n = len(s)
        if n == 0 or weak.shape != (n,) or strong.shape != (n,):
            raise ValueError(
                f"scores, weak and strong must be equally long and non-empty, got "
                f"{n}, {weak.shape}, {strong.shape}"
            )
        if not np.all(np.isfinite(s)):
            raise ValueError("scores must be finite numbers")
        wc = np.zeros(n) if weak_cost is None else np.asarray(weak_cost, dtype=float)
        sc = np.zeros(n) if strong_cost is None else np.asarray(strong_cost, dtype=float)
        # Round away float noise so scores meant to be equal form one tie group.
        keys = np.round(s, 12)
        order = np.argsort(-keys, kind="stable")
        sorted_keys = keys[order]
        ends = np.flatnonzero(np.diff(sorted_keys) != 0) + 1
        boundaries = np.concatenate(([0], ends, [n]))
        gain = np.concatenate(([0.0], np.cumsum((strong - weak)[order])))
        extra = np.concatenate(([0.0], np.cumsum((sc - wc)[order])))
        weak_q = float(weak.mean())
        weak_c = float(wc.mean())
        return cls(
            share=boundaries / n,
            quality=weak_q + gain[boundaries] / n,
            cost=weak_c + extra[boundaries] / n,
            weak_quality=weak_q,
            strong_quality=float(strong.mean()),
            weak_cost=weak_c,
            strong_cost=float(sc.mean()),
        )

    def quality_at(self, share: float) -> float:
        """Quality when a ``share`` of calls goes to the strong model."""
        _check_unit(share)
        return float(np.interp(share, self.share, self.quality))

    def cost_at(self, share: float) -> float:
        """Mean USD per call when a ``share`` of calls goes to the strong model."""
        _check_unit(share)
        return float(np.interp(share, self.share, self.cost))

    @property
    def gap(self) -> float:
        """Strong minus weak quality: PGR's unit."""
        return _positive_span(self.weak_quality, self.strong_quality, _NO_GAP)

    def pgr_at(self, share: float) -> float:
        return (self.quality_at(share) - self.weak_quality) / self.gap

    def pgr_curve(self, shares: Sequence[float] = APGR_SHARES) -> list[tuple[float, float]]:
        return [(float(s), self.pgr_at(s)) for s in shares]

    def apgr(self, shares: Sequence[float] = APGR_SHARES) -> float:
        """Area under PGR over the strong-call share (trapezoid rule, RouteLLM)."""
        return _area(shares, self.pgr_at)

    @property
    def pgr_points(self) -> np.ndarray:
        """Each point's PGR."""
        return (self.quality - self.weak_quality) / self.gap

    def cpt(self, pgr: float) -> float:
        """Strong-call share needed to recover ``pgr`` of the gap (CPT)."""
        _check_unit(pgr, "pgr")
        found = _crossing(self.share, self.pgr_points, pgr)
        return 1.0 if found is None else found

    def share_for_quality(self, fraction_of_strong: float = 0.95) -> float | None:
        """Strong-call share needed to reach ``fraction_of_strong`` of the strong model's
        quality (None if even routing every call to it falls short)."""
        return _crossing(self.share, self.quality, fraction_of_strong * self.strong_quality)

    # -- the same on a dollar axis --

    @property
    def cost_span(self) -> float:
        """Strong minus weak USD per call: the dollar axis's unit."""
        return _positive_span(self.weak_cost, self.strong_cost, _NO_DOLLAR_AXIS)

    @property
    def cost_fraction(self) -> np.ndarray:
        """Each point's extra spend as a fraction of the all-strong extra spend."""
        return (self.cost - self.weak_cost) / self.cost_span

    def pgr_at_cost(self, fraction: float) -> float:
        """PGR reached when the extra spend is ``fraction`` of routing everything strong.

        Extra spend can be non-monotone in the share only if some strong call is cheaper
        than its weak call; the best PGR within that budget is taken."""
        _check_unit(fraction)
        frac = self.cost_fraction
        pgr = self.pgr_points
        best = -math.inf
        for i in range(len(frac)):
            if frac[i] <= fraction + 1e-12:
                best = max(best, pgr[i])
            if i and frac[i - 1] < fraction < frac[i]:
                t = (fraction - frac[i - 1]) / (frac[i] - frac[i - 1])
                best = max(best, pgr[i - 1] + t * (pgr[i] - pgr[i - 1]))
        return float(best)

    def apgr_cost(self, fractions: Sequence[float] = APGR_SHARES) -> float:
        """Area under PGR over the extra-spend fraction (as :meth:`apgr`)."""
        return _area(fractions, self.pgr_at_cost)

    def cpt_cost(self, pgr: float) -> float:
        """Fraction of the all-strong extra spend needed to recover ``pgr`` of the gap."""
        share = self.cpt(pgr)
        return float((self.cost_at(share) - self.weak_cost) / self.cost_span)


def _check_unit(value: float, name: str = "share") -> None:
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be in [0, 1], got {value!r}")


_NO_GAP = (
    "PGR is undefined: the strong model is not better than the weak one on "
    "this data (strong {strong:.4g} vs weak {weak:.4g})"
)
_NO_DOLLAR_AXIS = (
    "no dollar axis: the strong model is not dearer than the weak one "
    "(${strong:.3g} vs ${weak:.3g} per call)"
)


def _positive_span(weak: float, strong: float, undefined: str) -> float:
    """``strong - weak``; when not positive, ``ValueError(undefined)`` (a template that
    may name ``{strong}`` and ``{weak}``)."""
    span = strong - weak
    if span <= 0:
        raise ValueError(undefined.format(strong=strong, weak=weak))
    return span


def _area(xs: Sequence[float], f: Callable[[float], float]) -> float:
    """Area under ``f`` over the points ``xs`` by the trapezoid rule (RouteLLM's APGR)."""
    x = np.asarray(xs, dtype=float)
    y = np.array([f(v) for v in x])
    return float(np.sum((x[1:] - x[:-1]) * (y[1:] + y[:-1]) / 2))


# -- pricing the calls ------------------------------------------------------------------------


def require_price(model: str) -> ModelPrice:
    """The catalog price of ``model``, or a ValueError saying how to register one."""
    price = get_price(model)
    if price is None:
        raise ValueError(
            f"no price known for model {model!r}; register it with "
            "costopt_core.set_price(model, input_per_token=..., output_per_token=...)"
        )
    return price


def call_costs(
    prompts: Sequence[str], model: str, output_tokens: int = DEFAULT_OUTPUT_TOKENS
) -> np.ndarray:
    """USD per call of ``model`` on each prompt: catalog price x estimated tokens."""
    if not isinstance(output_tokens, int) or output_tokens < 0:
        raise ValueError(f"output_tokens must be an int >= 0, got {output_tokens!r}")
    price = require_price(model)
    return np.array(
        [price.cost(input_tokens=estimate_tokens(p), output_tokens=output_tokens) for p in prompts]
    )


# -- one evaluation ---------------------------------------------------------------------------


@dataclass
class RouterEvaluation:
    """Figures of one router on one data set; :meth:`to_dict` is the CLI's ``--json``."""

    strategy: str
    n: int
    curve: RoutingCurve
    weak_model: str
    strong_model: str
    folds: int | None = None
    calibration: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def apgr(self) -> float:
        return self.curve.apgr()

    @property
    def cpt50(self) -> float:
        return self.curve.cpt(0.5)

    @property
    def cpt80(self) -> float:
        return self.curve.cpt(0.8)

    @property
    def pgr(self) -> list[tuple[float, float]]:
        return self.curve.pgr_curve()

    def quality_levels(
        self, fractions: Sequence[float] = QUALITY_LEVELS
    ) -> list[dict[str, float | None]]:
        """Dollars at each quality level: for each fraction of the strong model's quality,
        the strong-call share this router needs, its USD per 1k calls, and the saving
        against sending every call to the strong model (None: out of reach)."""
        c = self.curve
        rows: list[dict[str, float | None]] = []
        for fraction in fractions:
            share = c.share_for_quality(fraction)
            usd = None if share is None else c.cost_at(share) * 1000
            saving = None
            if usd is not None and c.strong_cost > 0:
                saving = 1.0 - usd / (c.strong_cost * 1000)
            rows.append(
                {
                    "fraction_of_strong_quality": fraction,
                    "strong_share": share,
                    "usd_per_1k_calls": usd,
                    "saving_vs_all_strong": saving,
                }
            )
        return rows

    def to_dict(self) -> dict[str, Any]:
        c = self.curve
        share95 = c.share_for_quality(0.95)
        out: dict[str, Any] = {
            "strategy": self.strategy,
            "n": self.n,
            "apgr": round(self.apgr, 6),
            "cpt50": round(self.cpt50, 6),
            "cpt80": round(self.cpt80, 6),
            "pgr": [[round(s, 6), round(p, 6)] for s, p in self.pgr],
            "weak_quality": round(c.weak_quality, 6),
            "strong_quality": round(c.strong_quality, 6),
            "share_for_95pct_strong_quality": None if share95 is None else round(share95, 6),
            "folds": self.folds,
            "weak_model": self.weak_model,
            "strong_model": self.strong_model,
        }
        if c.strong_cost > c.weak_cost:
            out["dollar"] = {
                "weak_usd_per_call": c.weak_cost,
                "strong_usd_per_call": c.strong_cost,
                "apgr": round(c.apgr_cost(), 6),
                "cpt50_cost_fraction": round(c.cpt_cost(0.5), 6),
                "cpt80_cost_fraction": round(c.cpt_cost(0.8), 6),
                "cpt50_usd_per_call": c.cost_at(self.cpt50),
                "cpt80_usd_per_call": c.cost_at(self.cpt80),
                "usd_per_call_for_95pct_strong_quality": (
                    None if share95 is None else c.cost_at(share95)
                ),
                "at_quality": self.quality_levels(),
            }
        if self.calibration is not None:
            out["calibration"] = self.calibration
        if self.notes:
            out["notes"] = list(self.notes)
        return out


def evaluate_scores(
    scores: Sequence[float] | np.ndarray,
    data: RoutingData,
    *,
    strategy: str = "scores",
    weak_model: str = DEFAULT_WEAK_MODEL,
    strong_model: str = DEFAULT_STRONG_MODEL,
    output_tokens: int = DEFAULT_OUTPUT_TOKENS,
    folds: int | None = None,
) -> RouterEvaluation:
    """Evaluate precomputed routing scores against ``data``."""
    if data.weak_cost is not None and data.strong_cost is not None:
        weak_cost, strong_cost = data.weak_cost, data.strong_cost
        weak_model, strong_model = "(weak_cost column)", "(strong_cost column)"
    else:
        weak_cost = call_costs(data.prompts, weak_model, output_tokens)
        strong_cost = call_costs(data.prompts, strong_model, output_tokens)
    curve = RoutingCurve.from_scores(scores, data.weak, data.strong, weak_cost, strong_cost)
    _ = curve.gap  # fail early, with the reason, when PGR is undefined
    return RouterEvaluation(
        strategy=strategy,
        n=len(data),
        curve=curve,
        weak_model=weak_model,
        strong_model=strong_model,
        folds=folds,
    )


def evaluate_router(
    strategy: Any,
    data: RoutingData,
    *,
    name: str | None = None,
    folds: int | None = None,
    factory: Callable[[], Any] | None = None,
    seed: int = 0,
    progress: bool = False,
    weak_model: str = DEFAULT_WEAK_MODEL,
    strong_model: str = DEFAULT_STRONG_MODEL,
    output_tokens: int = DEFAULT_OUTPUT_TOKENS,
) -> RouterEvaluation:
    """Score ``data`` with ``strategy`` and compute every figure.

    With ``folds`` the strategy is learned: ``factory()`` builds a fresh one per fold,
    fitted on the other folds (default: the strategy's ``clone()``, else its class
    called with no arguments).

    Example:
        >>> from costopt_core import get_strategy
        >>> data = RoutingData(
        ...     prompts=["hi", "translate 'cat'", "prove that sqrt(2) is irrational", "2+2?"],
        ...     weak=[1, 1, 0, 1],
        ...     strong=[1, 1, 1, 1],
        ... )
        >>> result = evaluate_router(get_strategy("zero-shot"), data)
        >>> result.strategy, result.n, result.cpt50
        ('zero-shot', 4, 0.125)
        >>> round(result.apgr, 3)
        0.87
        >>> sorted(result.to_dict())[:5]
        ['apgr', 'cpt50', 'cpt80', 'dollar', 'folds']
    """
    label = name or getattr(strategy, "name", None) or type(strategy).__name__
    if folds is not None:
        if not callable(getattr(strategy, "fit", None)):
            raise ValueError(f"strategy {label!r} cannot be trained (no fit); drop folds")
        if factory is None:
            clone = getattr(strategy, "clone", None)
            factory = clone if callable(clone) else type(strategy)
        scores = cross_val_scores(factory, data, folds, seed=seed, progress=progress)
    else:
        scores = score_prompts(strategy, data.prompts, progress=progress)
    return evaluate_scores(
        scores,
        data,
        strategy=label,
        weak_model=weak_model,
        strong_model=strong_model,
        output_tokens=output_tokens,
        folds=folds,
    )


def random_scores(n: int, seed: int = 0) -> np.ndarray:
    """Scores of random routing (a baseline whose APGR is 0.5 in expectation)."""
    return np.random.default_rng(seed).random(n)


# -- calibration ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Calibration:
    """A threshold that sends ``target_share`` of calls to the strong tier: a prompt goes
    strong when its score is ``>= threshold`` (as :class:`ThresholdStrategy` cuts)."""

    threshold: float
    target_share: float
    sample_share: float
    sample_size: int

    def strategy(self, base: Any, tiers: Sequence[str] = ("weak", "strong")) -> Any:
        """``base`` re-cut at this threshold into two tiers (cheap first)."""
        from costopt_core.strategies import ThresholdStrategy

        return ThresholdStrategy(base, [self.threshold], tiers)

    def share_of(self, scores: Sequence[float] | np.ndarray) -> float:
        """Realised strong share of this threshold on other scores."""
        values = np.asarray(scores, dtype=float)
        return float(np.mean(values >= self.threshold)) if len(values) else 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def calibrate_threshold(
    strategy_or_scores: Any,
    prompts: Sequence[str] | None = None,
    target_share: float = 0.3,
) -> Calibration:
    """Choose a score threshold so that ``target_share`` of calls go to the strong tier.

    Pass a strategy and a sample of the user's prompts, or the sample's scores directly.
    The threshold is the midpoint between the scores just inside and just outside the
    target quantile, so new prompts from the same traffic land on the same side as
    their sample neighbours. When ties make the exact share unreachable, the reachable
    share closest to the target is taken (``sample_share`` says which).

    Example:
        >>> from costopt_core import get_strategy
        >>> cal = calibrate_threshold(get_strategy("length"), ["hi", "a" * 400, "b" * 900], 1 / 3)
        >>> cal.sample_share
        0.3333333333333333
    """
    if not isinstance(target_share, int | float) or not 0.0 <= target_share <= 1.0:
        raise ValueError(f"target_share must be a number in [0, 1], got {target_share!r}")
    if prompts is None:
        scores = np.asarray(strategy_or_scores, dtype=float)
    else:
        if isinstance(prompts, str):
            raise TypeError("prompts must be a sequence of str, not one str")
        scores = score_prompts(strategy_or_scores, prompts)
    if scores.ndim != 1 or len(scores) == 0:
        raise ValueError("calibration needs a non-empty sample of prompts (or scores)")
    n = len(scores)
    desc = np.sort(scores)[::-1]
    distinct = np.unique(desc)[::-1]  # high to low
    # Candidate thresholds: above every score (share 0), then each distinct score.
    best: tuple[float, float] | None = None
    for i, value in enumerate(distinct):
        share = float(np.mean(scores >= value))
        below = distinct[i + 1] if i + 1 < len(distinct) else None
        # Midpoint to the next lower score: same realised share on the sample.
        threshold = float(value if below is None else (value + below) / 2)
        if best is None or abs(share - target_share) < abs(best[1] - target_share):
            best = (threshold, share)
    top = float(distinct[0])
    none_threshold = min(1.0, top + (1.0 - top) / 2) if top < 1.0 else math.nextafter(1.0, 2.0)
    if best is None or abs(0.0 - target_share) < abs(best[1] - target_share):
        best = (none_threshold, 0.0)
    threshold, share = best
    # A ThresholdStrategy accepts cut points in [0, 1]; 1.0 itself routes score-1 prompts
    # strong, which is only wrong if the target was 0 and some prompt scored exactly 1.
    threshold = min(max(threshold, 0.0), 1.0)
    return Calibration(
        threshold=threshold,
        target_share=float(target_share),
        sample_share=float(np.mean(scores >= threshold)),
        sample_size=n,
    )


def _shuffled_halves(n: int, seed: int) -> tuple[list[int], list[int]]:
    order = list(range(n))
    random.Random(seed).shuffle(order)
    half = n // 2
    return sorted(order[:half]), sorted(order[half:])


def holdout_calibration(
    scores: np.ndarray, data: RoutingData, target_share: float, seed: int = 0
) -> dict[str, Any]:
    """Calibrate on a random half of the prompts, then measure the other half: the
    realised strong share and the quality reached there."""
    if len(data) < 4:
        raise ValueError("calibration check needs at least 4 prompts")
    sample, rest = _shuffled_halves(len(data), seed)
    cal = calibrate_threshold(scores[sample], None, target_share)
    rest_scores = scores[rest]
    strong_mask = rest_scores >= cal.threshold
    held = data.subset(rest)
    quality = float(np.where(strong_mask, held.strong, held.weak).mean())
    gap = float(held.strong.mean() - held.weak.mean())
    out = cal.to_dict()
    out["heldout_size"] = len(rest)
    out["heldout_share"] = float(strong_mask.mean())
    out["heldout_quality"] = quality
    out["heldout_pgr"] = (quality - float(held.weak.mean())) / gap if gap > 0 else None
    return out


__all__ = [
    "APGR_SHARES",
    "DEFAULT_OUTPUT_TOKENS",
    "DEFAULT_STRONG_MODEL",
    "DEFAULT_WEAK_MODEL",
    "Calibration",
    "RouterEvaluation",
    "RoutingCurve",
    "RoutingData",
    "calibrate_threshold",
    "call_costs",
    "cross_val_scores",
    "embed_all",
    "evaluate_router",
    "evaluate_scores",
    "holdout_calibration",
    "kfold_indexes",
    "load_routing_data",
    "prompt_key",
    "random_scores",
    "require_price",
    "score_prompts",
]
