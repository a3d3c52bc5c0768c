"""What every learned router shares: embeddings, fitting checks, tier cut points
(calibration), batch scoring, and a plain-file format (``.npz`` or ``.json``, never pickle).

Example:
    >>> import tempfile, os
    >>> from costopt_core.hashing import HashingEmbedder
    >>> from costopt_core.knn import KNNStrategy
    >>> from costopt_core.learned import load_router
    >>> prompts = ["translate hello", "translate bye", "prove the theorem", "prove the lemma"]
    >>> router = KNNStrategy(HashingEmbedder(), k=2, tiers=("cheap", "strong"))
    >>> router = router.fit(prompts, [0, 0, 1, 1])
    >>> router = router.calibrate(prompts, strong_share=0.5)  # half the traffic goes strong
    >>> path = router.save(os.path.join(tempfile.mkdtemp(), "router.npz"))
    >>> again = load_router(path)
    >>> again.route("please prove this theorem").tier, again.thresholds == router.thresholds
    ('strong', True)

A learned strategy scores a prompt in [0, 1] (higher = needs a stronger tier) and cuts the
score into its ``tiers`` (cheapest first) at ``thresholds``: equal bands until it is
calibrated, then the cut points that send the wanted share of a sample of the user's
traffic to each tier. Training labels are in [0, 1]: 1 = the strong model was needed, 0 =
the weak one sufficed, anything between for graded labels (judge scores; see
:meth:`costopt_core.evaluation.RoutingData.gain_labels`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import sys
import threading
import weakref
import zipfile
from collections.abc import Sequence
from os import PathLike
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from costopt_core.decision import LADDER, RouteDecision
from costopt_core.embedding_cache import CachedEmbedder, default_embedding, model_identity
from costopt_core.hashing import HashingEmbedder
from costopt_core.prompt_template import shared_prefix, strip_prefix
from costopt_core.tier_labels import check_shares

logger = logging.getLogger(__name__)

FORMAT = "costopt-router"
#: 3: the state may hold ``TEMPLATE_PREFIX`` (older readers would ignore it and embed
#: every prompt's shared instruction: they must refuse the file instead).
VERSION = 3
#: Tokens of a prompt's head that learned routers embed by default. The bundled
#: multilingual-e5-small takes ~1.5 ms of CPU per token here (~55 ms per 32-token head,
#: ~37 engine tokens with E5's prefix), so whole ~100-token prompts would take a
#: 14k-prompt evaluation ~19 minutes on 2 cores and the head of 64 tokens ~15; at 32
#: tokens a cold 5-fold knn evaluation of 14k multiple-choice prompts took 7.4 minutes
#: (benchmarks/knn_wall_time.py; the embedding is 97% of it). The head still names the
#: topic, and knn's length combination sees the whole prompt (GSM8K dev, 5-fold knn:
#: APGR 0.654 whole, 0.647 at 64 tokens, 0.638 at 32; length alone 0.597).
DEFAULT_MAX_TOKENS = 32
#: The array of a router file holding a short hash of each training prompt: enough to
#: tell, without the prompts themselves, when an evaluation scores the router in-sample.
TRAINING_HASHES = "training_prompt_hashes"
#: The array of a fitted state holding the instruction text most training prompts began
#: with (:func:`~costopt_core.prompt_template.shared_prefix`, a 0-d string array; ``""``
#: = none), stripped before embedding when fitting and when routing. Kept in the state,
#: not beside it, so a concurrent fit never pairs one fit's arrays with another's prefix.
TEMPLATE_PREFIX = "template_prefix"
#: Fitting warns when the embedded texts (heads of the prompts, once a shared prefix is
#: stripped) are fewer than this share of the distinct prompts: most prompts then look
#: alike to the router.
FEW_TEXTS_SHARE = 0.5
#: ... on at least this many distinct prompts (a handful may well share their heads).
FEW_TEXTS_MIN_PROMPTS = 20
# Embedders already warned about (clones share one: a cross-validation warns once).
_WARNED: weakref.WeakSet[CachedEmbedder] = weakref.WeakSet()


def prompt_hashes(prompts: Sequence[str]) -> np.ndarray:
    """A 64-bit hash of each prompt (its exact text), as stored in a router file.

    Example:
        >>> a, b, again = prompt_hashes(["hi", "hello", "hi"])
        >>> bool(a == again), bool(a == b)
        (True, False)
    """
    digests = (
        hashlib.blake2b(p.encode("utf-8", "surrogatepass"), digest_size=8).digest() for p in prompts
    )
    return np.fromiter((int.from_bytes(d, "little") for d in digests), np.uint64, len(prompts))


class NotFittedError(RuntimeError):
    """A learned strategy was asked to route before ``fit`` (or ``load``)."""


def check_thresholds(thresholds: Sequence[float] | None, n_tiers: int) -> tuple[float, ...]:
    """Cut points for ``n_tiers`` tiers: ascending numbers in [0, 1]; None = equal bands.

    Example:
        >>> check_thresholds(None, 3)
        (0.3333333333333333, 0.6666666666666666)
    """
    if thresholds is None:
        return tuple(i / n_tiers for i in range(1, n_tiers))
    cuts = tuple(float(t) for t in thresholds)
    if len(cuts) != n_tiers - 1:
        raise ValueError(f"thresholds: {n_tiers} tiers need {n_tiers - 1} cut points, got {cuts}")
    if any(not 0.0 <= c <= 1.0 for c in cuts) or list(cuts) != sorted(cuts):
        raise ValueError(f"thresholds must be ascending numbers in [0, 1], got {list(cuts)}")
    return cuts


class LearnedStrategy:
    """Base of the learned strategies (see the module docs).

    Args:
        embeddings: any embedding model; None = the best offline one installed.
        tiers: tier names, cheapest first.
        thresholds: score cut points between tiers (``len(tiers) - 1``); None = equal
            bands, until :meth:`calibrate`.
        cache_dir: folder of the on-disk embedding cache; None = memory only.
        max_tokens: embed only the head of each prompt, about this many tokens (None = all
            of it). The head names the topic; the cost of a neural embedding grows with
            the text, and a router runs on every call (``DEFAULT_MAX_TOKENS``).
    """

    name: ClassVar[str] = "learned"
    #: The arrays a fitted strategy holds (what save writes and load checks).
    state_keys: ClassVar[tuple[str, ...]] = ()

    def __init__(
        self,
        embeddings: Any = None,
        *,
        tiers: Sequence[str] = LADDER,
        thresholds: Sequence[float] | None = None,
        cache_dir: str | PathLike[str] | None = None,
        max_tokens: int | None = DEFAULT_MAX_TOKENS,
    ) -> None:
        from costopt_core.strategies import check_tiers

        self.tiers = check_tiers(tiers)
        self.thresholds = check_thresholds(thresholds, len(self.tiers))
        self.cache_dir = cache_dir
        if embeddings is None:
            embeddings = _default_embedding_for_caller()
        # A clone shares its parent's embedder: cross-validation folds embed nothing twice.
        self._embed = (
            embeddings
            if isinstance(embeddings, CachedEmbedder)
            else CachedEmbedder(embeddings, cache_dir=cache_dir, max_tokens=max_tokens)
        )
        self._lock = threading.Lock()
        self._state: dict[str, np.ndarray] | None = None
        self.calibration: dict[str, Any] | None = None
        #: Hashes of the prompts it was fitted on (:func:`prompt_hashes`); None when not
        #: known (a file from before they were saved).
        self.training_hashes: np.ndarray | None = None

    # -- what a subclass defines -------------------------------------------------------

    def settings(self) -> dict[str, Any]:
        """The subclass's hyper-parameters (constructor keywords), for clone and save."""
        return {}

    def _fit(self, prompts: Sequence[str], x: np.ndarray, y: np.ndarray) -> dict[str, np.ndarray]:
        """The fitted arrays, from the prompts, their unit embeddings ``x`` and labels."""
        raise NotImplementedError

    def _scores(
        self, state: dict[str, np.ndarray], prompts: Sequence[str], x: np.ndarray
    ) -> np.ndarray:
        """Scores of ``prompts`` (embedded as ``x``) under the fitted ``state``."""
        raise NotImplementedError

    def _check_state(self, state: dict[str, np.ndarray], source: Path) -> dict[str, np.ndarray]:
        missing = [k for k in self.state_keys if k not in state]
        if missing:
            raise ValueError(f"{source}: a {self.name} router needs arrays {missing}")
        return {k: state[k] for k in self.state_keys}

    def _explain(self, state: dict[str, np.ndarray], x: np.ndarray, score: float) -> str:
        return f"{self.name}: score {score:.2f}"

    # -- training ----------------------------------------------------------------------

    @property
    def is_fitted(self) -> bool:
        return self._state is not None

    def clone(self) -> LearnedStrategy:
        """An unfitted strategy with the same settings and embedding model (shared, not
        copied: it may hold a client). Cross-validation fits one per fold."""
        return type(self)(
            self._embed, tiers=self.tiers, cache_dir=self.cache_dir, **self.settings()
        )

    def vectors(self, prompts: Sequence[str], *, template: str | None = None) -> np.ndarray:
        """Unit-length embeddings of ``prompts`` (each text embedded once, then cached),
        each without the shared instruction ``template`` (None = the one found by the
        last fit, none before a fit; see :data:`TEMPLATE_PREFIX`)."""
        if template is None:
            state = self._state
            template = "" if state is None else template_of(state)
        return self._vectors(prompts, template)

    def _vectors(self, prompts: Sequence[str], template: str) -> np.ndarray:
        if template:
            prompts = [strip_prefix(p, template) for p in prompts]
        x = self._embed(list(prompts))
        norms = np.linalg.norm(x, axis=1, keepdims=True)
        return (x / np.where(norms > 0, norms, 1.0)).astype(np.float32)

    def fit(self, prompts: Sequence[str], labels: Sequence[float] | np.ndarray) -> Any:
        """Learn from labelled prompts (label 1 = the strong model was needed, 0 = the weak
        one sufficed, graded values between); returns ``self``."""
        if isinstance(prompts, str) or not all(isinstance(p, str) for p in prompts):
            raise TypeError("prompts must be a sequence of str")
        y = np.asarray(labels, dtype=float).reshape(-1)
        if len(prompts) == 0:
            raise ValueError("fit needs at least one labelled prompt")
        if len(y) != len(prompts):
            raise ValueError(f"got {len(prompts)} prompts but {len(y)} labels")
        if not np.all(np.isfinite(y)) or y.min() < 0 or y.max() > 1:
            raise ValueError("labels must be numbers in [0, 1] (1 = strong model needed)")
        template = shared_prefix(prompts)
        self._warn_if_alike(prompts, template)
        state = self._fit(prompts, self._vectors(prompts, template), y)
        state[TEMPLATE_PREFIX] = np.array(template)
        hashes = prompt_hashes(prompts)
        with self._lock:
            self._state = state
            self.training_hashes = hashes
        return self

    def _warn_if_alike(self, prompts: Sequence[str], template: str) -> None:
        """Log a warning when far fewer distinct texts are embedded than there are
        distinct prompts (heads alike beyond a shared prefix: several templates, a long
        shared opening), once per embedding."""
        distinct = set(prompts)
        if len(distinct) < FEW_TEXTS_MIN_PROMPTS or self._embed in _WARNED:
            return
        texts = {self._embed.embedded_text(strip_prefix(p, template)) for p in distinct}
        if len(texts) >= FEW_TEXTS_SHARE * len(distinct):
            return
        _WARNED.add(self._embed)
        logger.warning(
            "%s: the %d distinct training prompts embed as only %d distinct texts (the "
            "router embeds the first %s tokens of each prompt, after any instruction most "
            "of them share): prompts that differ only further on look the same to it; "
            "embed more of each prompt with max_tokens=None (--option max_tokens=null)",
            self.name,
            len(distinct),
            len(texts),
            self._embed.max_tokens,
        )

    def trained_on(self, prompts: Sequence[str]) -> int | None:
        """How many of ``prompts`` it was fitted on (scores on those are in-sample, so
        flattered); None when its training prompts are not known.

        Example:
            >>> from costopt_core.hashing import HashingEmbedder
            >>> from costopt_core.knn import KNNStrategy
            >>> router = KNNStrategy(HashingEmbedder(), k=1).fit(["a b", "c d"], [0, 1])
            >>> router.trained_on(["a b", "e f", "c d"])
            2
        """
        known = self.training_hashes
        if known is None:
            return None
        return int(np.isin(prompt_hashes(prompts), known).sum())

    def _fitted(self) -> dict[str, np.ndarray]:
        state = self._state  # one read: a concurrent fit swaps the whole state
        if state is None:
            raise NotFittedError(
                f"{type(self).__name__} is not fitted: call fit(prompts, labels) or load a "
                "saved router before routing"
            )
        return state

    # -- routing -----------------------------------------------------------------------

    def scores(self, prompts: Sequence[str]) -> np.ndarray:
        """Scores of many prompts at once (what an evaluation uses)."""
        state = self._fitted()
        if isinstance(prompts, str):
            raise TypeError("scores takes a sequence of prompts; use score for one")
        if len(prompts) == 0:
            return np.zeros(0)
        x = self._vectors(prompts, template_of(state))
        return np.clip(self._scores(state, prompts, x), 0.0, 1.0)

    def score(self, text: str) -> float:
        """The score of ``text`` in [0, 1]."""
        if not isinstance(text, str):
            raise TypeError(f"text must be str, got {type(text).__name__}")
        return float(self.scores([text])[0])

    def tier_of(self, score: float) -> str:
        """The tier a score falls in (a score equal to a cut point goes up)."""
        return self.tiers[int(np.searchsorted(self.thresholds, score, side="right"))]

    def route(self, text: str) -> RouteDecision:
        if not isinstance(text, str):
            raise TypeError(f"text must be str, got {type(text).__name__}")
        state = self._fitted()
        x = self._vectors([text], template_of(state))
        score = float(np.clip(self._scores(state, [text], x)[0], 0.0, 1.0))
        return RouteDecision(self.tier_of(score), score, self._explain(state, x, score))

    def calibrate(
        self,
        prompts: Sequence[str] | None = None,
        strong_share: float | None = None,
        *,
        shares: Sequence[float] | None = None,
        scores: Sequence[float] | np.ndarray | None = None,
    ) -> Any:
        """Set the cut points from a sample of the user's traffic: ``strong_share`` of it
        goes to the strongest tier (two tiers), or ``shares[i]`` to tier ``i`` (any number
        of tiers, cheapest first, summing to 1). The sample is ``prompts`` (scored here) or
        their ``scores`` (e.g. out-of-fold scores, which are not flattered by the prompts
        the router was fitted on). Returns ``self``."""
        from costopt_core.evaluation import calibrate_threshold

        if (strong_share is None) == (shares is None):
            raise ValueError("pass either strong_share= (two tiers) or shares= (one per tier)")
        if (prompts is None) == (scores is None):
            raise ValueError("pass the sample as prompts or as scores=, not both or neither")
        if shares is None:
            if len(self.tiers) != 2:
                raise ValueError(f"strong_share= needs two tiers; use shares= for {self.tiers}")
            shares = (1.0 - float(strong_share), float(strong_share))  # type: ignore[arg-type]
        wanted = check_shares(shares, self.tiers)
        sample = self.scores(prompts) if scores is None else np.asarray(scores, dtype=float)
        # Cut i sends the top (shares[i+1] + ... ) of the sample above it.
        above = np.cumsum(wanted[::-1])[::-1][1:]
        cuts = [calibrate_threshold(sample, None, float(a)).threshold for a in above]
        self.thresholds = check_thresholds(sorted(cuts), len(self.tiers))
        self.calibration = {
            "shares": wanted,
            "thresholds": list(self.thresholds),
            "sample_size": len(sample),
            "sample_shares": [
                float(np.mean(np.searchsorted(self.thresholds, sample, side="right") == i))
                for i in range(len(self.tiers))
            ],
        }
        return self

    # -- persistence -------------------------------------------------------------------

    @classmethod
    def load(
        cls,
        path: str | PathLike[str],
        embeddings: Any = None,
        *,
        cache_dir: str | PathLike[str] | None = None,
    ) -> Any:
        """Read a router of this kind written by :meth:`save` (see :func:`load_router`)."""
        router = load_router(path, embeddings, cache_dir=cache_dir)
        if not isinstance(router, cls):
            raise ValueError(f"{path} holds a {router.name!r} router, not a {cls.name!r} one")
        return router

    def _header(self) -> dict[str, Any]:
        model = self._embed.model
        if isinstance(model, HashingEmbedder):
            embedder: dict[str, Any] = {"type": "hashing", "config": model.config()}
        else:
            embedder = {"type": "model", "id": self._embed.model_id, "name": self._embed.name}
        embedder["max_tokens"] = self._embed.max_tokens
        return {
            "format": FORMAT,
            "version": VERSION,
            "strategy": self.name,
            "settings": self.settings(),
            "tiers": list(self.tiers),
            "thresholds": list(self.thresholds),
            "calibration": self.calibration,
            "embedder": embedder,
        }

    def save(self, path: str | PathLike[str]) -> Path:
        """Write the fitted router to ``path``: ``.json`` (plain JSON) or ``.npz`` (numpy
        arrays plus a JSON header; the default when the suffix is neither). No pickle."""
        state = self._fitted()
        target = Path(path)
        if target.suffix not in (".json", ".npz"):
            target = target.with_name(target.name + ".npz")
        target.parent.mkdir(parents=True, exist_ok=True)
        header = self._header()
        if self.training_hashes is not None:
            state = {**state, TRAINING_HASHES: self.training_hashes}
        if target.suffix == ".json":
            arrays = {k: {"dtype": str(v.dtype), "data": v.tolist()} for k, v in state.items()}
            target.write_text(json.dumps({**header, "arrays": arrays}), encoding="utf-8")
        else:
            with target.open("wb") as handle:
                np.savez_compressed(handle, header=np.array(json.dumps(header)), **state)
        return target


def template_of(state: dict[str, np.ndarray]) -> str:
    """The shared instruction a fitted ``state`` strips before embedding (``""``: none,
    as in files from before it was kept)."""
    template = state.get(TEMPLATE_PREFIX)
    return "" if template is None else str(template.item())


def _default_embedding_for_caller() -> Any:
    """:func:`default_embedding`, its warning (the fallback to the hashing embedding)
    pointed at the user's line that built the router, not at a line of this package."""
    return default_embedding(stacklevel=user_stacklevel() + 1)  # + default_embedding


def user_stacklevel() -> int:
    """The ``stacklevel`` that makes a ``warnings.warn`` in the calling function name the
    first line outside ``costopt_core`` (how deep the package's own calls go varies: a
    subclass's ``__init__``, a factory, the command line).

    Example:
        >>> import warnings
        >>> def check_ratio(ratio: float) -> None:
        ...     if ratio > 1:
        ...         warnings.warn("ratio above 1", UserWarning, stacklevel=user_stacklevel())
        >>> check_ratio(0.5)
    """
    frame = sys._getframe(1)  # the function that will warn: stacklevel 1
    level = 1
    while frame.f_back is not None and frame.f_globals.get("__name__", "").startswith(
        "costopt_core."
    ):
        frame = frame.f_back
        level += 1
    return level


def _read(source: Path) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    try:
        return _read_arrays(source)
    except (ValueError, OSError, KeyError, TypeError, zipfile.BadZipFile) as exc:
        # numpy's own message for a file that is not an .npz suggests allow_pickle=,
        # which would be unsafe advice here: say what the file is not instead.
        raise ValueError(
            f"{source} is not a costopt router file (write one with costopt train-router "
            f"or LearnedStrategy.save): {type(exc).__name__}"
        ) from exc


def _read_arrays(source: Path) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    if source.suffix == ".json":
        raw = json.loads(source.read_text(encoding="utf-8"))
        arrays = raw.pop("arrays", None)
        if not isinstance(arrays, dict):
            raise ValueError(f"{source} is not a costopt router (no arrays)")
        state = {k: np.asarray(v["data"], dtype=v["dtype"]) for k, v in arrays.items()}
        return raw, state
    with np.load(source, allow_pickle=False) as data:
        if "header" not in data:
            raise ValueError(f"{source} is not a costopt router (no header)")
        header = json.loads(str(data["header"]))
        return header, {k: np.asarray(data[k]) for k in data.files if k != "header"}


def load_router(
    path: str | PathLike[str],
    embeddings: Any = None,
    *,
    cache_dir: str | PathLike[str] | None = None,
) -> LearnedStrategy:
    """Read a router written by :meth:`LearnedStrategy.save` (any learned strategy).

    A router fitted on the hashing embedding rebuilds it; one fitted on another model
    needs that model: passed as ``embeddings``, or the default offline one when it is
    the same model. ``cache_dir``: folder of the on-disk embedding cache, so prompts
    embedded by an earlier run (an evaluation, a training) are read, not embedded
    again; None = memory only.
    """
    from costopt_core.strategies import strategy_class

    source = Path(path)
    if not source.is_file() and source.with_name(source.name + ".npz").is_file():
        source = source.with_name(source.name + ".npz")
    if not source.is_file():
        raise FileNotFoundError(f"router file not found: {source}")
    header, state = _read(source)
    if header.get("format") != FORMAT:
        raise ValueError(f"{source} is not a costopt router file")
    if int(header.get("version", 0)) > VERSION:
        raise ValueError(f"{source} was written by a newer costopt (version {header['version']})")
    spec = header["embedder"]
    if embeddings is None:
        if spec["type"] == "hashing":
            embeddings = HashingEmbedder.from_config(spec["config"])
        else:
            candidate = default_embedding(warn=False)
            if model_identity(candidate) != spec.get("id"):
                # No neural embedding installed here (trained on a laptop with the extra,
                # deployed on a slim server without it): say which extra brings it.
                hint = (
                    ' (install it: pip install "costopt-llm[embeddings]")'
                    if isinstance(candidate, HashingEmbedder)
                    else ""
                )
                raise ValueError(
                    f"{source} was fitted with the embedding {spec.get('id') or spec.get('name')}"
                    f"{hint}; pass the same model as embeddings="
                )
            embeddings = candidate
    cls = strategy_class(header["strategy"])
    if not (isinstance(cls, type) and issubclass(cls, LearnedStrategy)):
        raise ValueError(f"{source}: {header['strategy']!r} is not a learned strategy")
    router = cls(
        embeddings,
        cache_dir=cache_dir,
        # Files from before the cap embedded whole prompts.
        max_tokens=spec.get("max_tokens"),
        tiers=header["tiers"],
        thresholds=header["thresholds"],
        **header.get("settings", {}),
    )
    hashes = state.pop(TRAINING_HASHES, None)
    template = state.pop(TEMPLATE_PREFIX, None)
    checked = router._check_state(state, source)
    if template is not None:
        if template.ndim != 0 or template.dtype.kind != "U":
            raise ValueError(f"{source}: {TEMPLATE_PREFIX} must be one string")
        checked[TEMPLATE_PREFIX] = template
    router._state = checked
    router.calibration = header.get("calibration")
    router.training_hashes = None if hashes is None else hashes.astype(np.uint64)
    return router


__all__ = [
    "DEFAULT_MAX_TOKENS",
    "TEMPLATE_PREFIX",
    "LearnedStrategy",
    "NotFittedError",
    "check_thresholds",
    "load_router",
    "prompt_hashes",
    "template_of",
    "user_stacklevel",
]
