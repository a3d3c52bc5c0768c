"""The semantic cache's decision: serve a cached answer, ask a verifier, or miss.

Example:
    >>> import numpy as np
    >>> from costopt_core.cache_gate import CacheGate
    >>> gate = CacheGate(max_error_rate=0.02)
    >>> rng = np.random.default_rng(0)
    >>> for v in rng.standard_normal((64, 32)):  # the embedding's own distinct questions
    ...     gate.observe(v / np.linalg.norm(v))
    >>> round(gate.baseline, 2)  # mean cosine of unrelated questions under this embedding
    0.0
    >>> gate.judge("How do I reset my password?", "How can I reset my password?", 0.97).action
    'serve'
    >>> gate.judge("Is Python 3.12 supported?", "Is Python 3.11 supported?", 0.99).action
    'miss'
    >>> CacheGate(similarity_threshold=0.92).judge("a b", "c d", 0.92).action  # the seed's rule
    'serve'

Two modes:

* **Fixed** (``similarity_threshold`` given): the seed's rule exactly: serve the nearest
  stored question when its cosine is ``>= similarity_threshold``; nothing else is
  looked at. With a verifier, candidates up to :data:`FIXED_BAND` below the threshold
  are put to it (the rule above the threshold is unchanged).
* **Error-bounded** (the default): the decision is calibrated to the embedding it is
  given and keeps wrong answers near or below ``max_error_rate``:

  1. *Calibration*: a cosine means different things under different embedding models
     (one model's "unrelated" is 0.1, another's 0.8). The gate keeps a reservoir of
     the vectors the cache embeds (its own distinct questions) and measures their mean
     pairwise cosine, the *baseline*; cosines are rescaled to
     ``s = (cos - baseline) / (1 - baseline)``, 0 for unrelated and 1 for identical.
     Until :data:`MIN_CALIBRATION` questions were seen it assumes a crowded embedding
     (baseline at least :data:`COLD_BASELINE`): few hits, never many wrong ones.
  2. *Evidence*: a cosine of 1 between two differently worded questions
     (:data:`INDISTINCT_COSINE`) is no evidence: the embedding cannot tell them apart
     (a constant one, such as LlamaIndex's ``MockEmbedding``, gives every text the same
     vector; a bag of words gives it to every order of the same words). Such a match is
     never served without a verifier's yes, and the first one is logged as a warning;
     case, spacing and punctuation are no difference in wording.
     :func:`costopt_core.cache_evidence.compare` finds what a sentence embedding hardly
     sees: numbers, negation, dates, named entities or opposite words that differ. Such
     a *conflict* is never served without a verifier's yes (a hard
     veto). Content words only one side has lower the score a little
     (:data:`UNMATCHED_WEIGHT` per unit share), and a replaced word or two in an
     otherwise identical question (``books on economics`` / ``books on psychology``)
     a little more (:data:`SWAP_PENALTY`): then the cosine measures those words alone.
  3. *Thresholds* on the score, from ``max_error_rate`` (:func:`thresholds`): serve at
     or above ``accept``. With a verifier: serve above ``sure`` without asking (a
     replaced word needs :data:`SWAP_MARGIN` more), ask between ``ask`` and ``sure``
     (and about conflicts above ``ask``), miss below.
  4. *Verdicts teach* (vCache-style, per entry and per region): a "no" for an entry at
     score s means later candidates of that entry at or below s miss without asking;
     a "yes" at s means later ones of that entry at or above s are served without
     asking. Per region (score bins), a bin whose verdicts are nearly all "no" stops
     being asked, and one whose verdicts are nearly all "yes" is served. One lookup in
     :data:`EXPLORE_EVERY` of those the gate settles from verdicts is still asked, so
     it keeps learning when traffic changes. The share of lookups that need a verdict
     falls as traffic repeats.
  5. *A verifier budget*: at most about :data:`VERIFY_BUDGET` of lookups are put to the
     verifier. When traffic brings more uncertain candidates than that (many
     look-alikes), the lowest-scored ones, the least likely to be the same question,
     miss without asking; the floor is set from the verdicts lookups *wanted* over the
     last :data:`BUDGET_WINDOW` lookups, so it falls again when demand does.

Where the constants come from: ``benchmarks/cache_quality.py`` (GPTCache's paraphrase
pairs and one-word-edit look-alikes made from them; hashing, e5 and all-MiniLM-L6-v2
vectors), set with a margin; the calibration moves them to each embedding. The gate
costs microseconds per candidate (a few regular expressions, cached per text).

Thread-safe: one lock guards the reservoir and the verdict tables.
"""

from __future__ import annotations

import logging
import math
import threading
import zlib
from collections import OrderedDict, deque
from dataclasses import dataclass, replace
from typing import Literal

import numpy as np

from costopt_core.cache_evidence import compare, wording_change

logger = logging.getLogger(__name__)

#: Distinct questions embedded before the measured baseline is trusted alone.
MIN_CALIBRATION = 32
#: Baseline assumed before calibration: that of a crowded (anisotropic) embedding.
COLD_BASELINE = 0.6
#: A cosine at or above this between two differently worded questions means the
#: embedding gave them the same vector (up to float32 rounding), which says nothing
#: about their meaning. A real sentence embedding stays far below: the closest pair of
#: differently worded texts of GPTCache's data (2,830 texts) is at 0.9995 under e5
#: ("a schema field with the ..." / "a schema field through the ...").
INDISTINCT_COSINE = 0.99999
#: Vectors kept to measure the baseline (reservoir sampling over all embedded texts).
RESERVOIR_SIZE = 256
#: Score lost per unit share of content words only one side has.
UNMATCHED_WEIGHT = 0.05
#: Score lost when the questions differ by a replaced word or two (``Evidence.swapped``):
#: then the cosine measures those words alone, and a different noun in an otherwise
#: identical sentence moves a sentence embedding by little.
SWAP_PENALTY = 0.02
#: Rescaled score served at ``max_error_rate=0.02`` (each halving of the rate adds
#: :data:`STEP_PER_HALVING`). With all-MiniLM-L6-v2 on everyday questions (baseline
#: about 0.1) it serves a pair with a third of its content words reworded from cosine
#: about 0.95; on the development data (``benchmarks/cache_quality.py``) it keeps wrong
#: answers under 1 % of lookups on paraphrase traffic.
BASE_ACCEPT = 0.928
STEP_PER_HALVING = 0.02
#: With a verifier: candidates this far below ``accept`` are asked...
ASK_BAND = 0.1
#: ...and ones this far above it are served without asking (part of the error budget is
#: left for the verifier's own mistakes).
SURE_MARGIN = 0.01
#: With a verifier, a swapped word (``Evidence.swapped``) is served without asking only
#: this far above ``sure``: the verifier sees the word the cosine barely weighs.
SWAP_MARGIN = 0.02
#: Similarity between the embeddings of the replaced phrases (``replaced_phrases``: the
#: differing words with a word of context), on the calibrated scale (0 unrelated, 1
#: identical), below which a swapped candidate is not served on the score alone. On the
#: development data (all-MiniLM-L6-v2, GPTCache pairs, baseline cosine ~0.19): true
#: duplicates' phrases raw cosine median 0.91 (10th percentile 0.75), one-noun
#: look-alikes' median 0.46 (90th percentile 0.70); 0.69 here is raw 0.75 there.
SWAP_PHRASE_FLOOR = 0.69
#: Fixed mode with a verifier: the band below ``similarity_threshold`` (raw cosine) asked.
FIXED_BAND = 0.06
#: Candidates a lookup considers, nearest first (a conflicting nearest one must not
#: hide the right answer just behind it).
CANDIDATES = 4
#: Score bin width of the per-region verdict table.
BIN_WIDTH = 0.01
#: Verdicts a bin needs before it is settled without asking.
MIN_BIN_VERDICTS = 20
#: A region is served without asking when at most this share of its verdicts said no
#: (judges err too: a perfect region still collects a few wrong "no"s).
REGION_MAX_NO_SHARE = 0.05
#: One in this many settled lookups is still asked (exploration).
EXPLORE_EVERY = 10
#: With a verifier: the share of lookups that may ask it. When uncertain candidates are
#: more common than that (traffic full of look-alikes), the lowest-scored ones miss
#: without asking, so the verifier's cost stays bounded whatever the traffic.
VERIFY_BUDGET = 0.22
#: Lookups over which the budget is measured, and how often its floor is refreshed.
BUDGET_WINDOW = 1000
BUDGET_EVERY = 8
#: Until this many lookups were seen the budget is measured as if there had been this
#: many (the first uncertain candidates are asked: the gate learns from them).
BUDGET_MIN_LOOKUPS = 50
#: Entries whose verdicts are remembered (least recently judged forgotten first).
MAX_ENTRY_VERDICTS = 100_000

Action = Literal["serve", "ask", "miss"]


@dataclass(frozen=True)
class Decision:
    """What the gate decided for one candidate, and why (``reason`` is for logs and
    ``CacheHit.metadata``)."""

    action: Action
    score: float
    reason: str
    #: The questions differ by a replaced word or two (``Evidence.swapped``), or only in
    #: the parts after a long shared context (``Evidence.shared_context``): a "serve"
    #: holds only if the replaced phrases mean the same (:meth:`CacheGate.judge_swap`).
    swapped: bool = False


@dataclass(frozen=True)
class Thresholds:
    """Rescaled-score thresholds: ``ask`` <= ``accept`` <= ``sure``."""

    ask: float
    accept: float
    sure: float


def thresholds(max_error_rate: float) -> Thresholds:
    """The rescaled-score thresholds that keep wrong answers near ``max_error_rate``.

    Example:
        >>> t = thresholds(0.02)
        >>> t.ask < t.accept < t.sure, t.accept
        (True, 0.928)
        >>> thresholds(0.01).accept > t.accept > thresholds(0.05).accept
        True
    """
    accept = BASE_ACCEPT + STEP_PER_HALVING * math.log2(0.02 / max_error_rate)
    accept = min(0.995, max(0.5, accept))
    return Thresholds(
        ask=round(accept - ASK_BAND, 6),
        accept=round(accept, 6),
        sure=round(accept + SURE_MARGIN, 6),
    )


def number_in(value: object, low: float, high: float) -> bool:
    """Whether ``value`` is a real number (not a bool) with ``low < value <= high``.

    Example:
        >>> number_in(0.5, 0, 1), number_in(True, 0, 1), number_in(float("nan"), 0, 1)
        (True, False, False)
    """
    return not isinstance(value, bool) and isinstance(value, int | float) and low < value <= high


def check_error_rate(max_error_rate: float) -> float:
    """``max_error_rate`` validated: a number in (0, 0.5]."""
    if not number_in(max_error_rate, 0, 0.5):
        raise ValueError(
            f"max_error_rate must be a number in (0, 0.5] (share of lookups answered "
            f"wrongly), got {max_error_rate!r}"
        )
    return float(max_error_rate)


class _Bin:
    __slots__ = ("no", "yes")

    def __init__(self) -> None:
        self.yes = 0
        self.no = 0


class CacheGate:
    """Serve / ask / miss for a candidate found by the vector search (see the module).

    Args:
        similarity_threshold: ``None`` for the error-bounded gate, or a cosine in
            (0, 1]: the seed's fixed rule.
        max_error_rate: share of lookups that may be answered wrongly, in (0, 0.5].
        has_verifier: whether the cache can ask a verifier (widens the band it considers).
    """

    def __init__(
        self,
        similarity_threshold: float | None = None,
        max_error_rate: float = 0.02,
        *,
        has_verifier: bool = False,
    ) -> None:
        self.similarity_threshold = similarity_threshold
        self.max_error_rate = check_error_rate(max_error_rate)
        self.has_verifier = has_verifier
        self.thresholds = thresholds(self.max_error_rate)
        self._lock = threading.Lock()
        self._reservoir: list[np.ndarray] = []
        self._seen = 0
        self._rng = np.random.default_rng(0)
        self._baseline: float | None = None
        self._entries: OrderedDict[tuple[str, str], list[float]] = OrderedDict()
        self._bins: dict[int, _Bin] = {}
        self._settled = 0
        # Verifier budget: lookups seen, and (lookup index, score) of those that wanted a
        # verdict; the score under which a wanted verdict is not asked.
        self._lookups = 0
        self._wanted: deque[list[float]] = deque()  # [lookup index, best score]
        self._budget_floor = -math.inf
        self._local = threading.local()
        self._indistinct_count = 0  # matches refused because the embedding gave the same vector

    @property
    def fixed(self) -> bool:
        return self.similarity_threshold is not None

    # -- calibration ----------------------------------------------------------------

    def observe(self, vector: np.ndarray) -> None:
        """Take one embedded question (unit vector) into the calibration reservoir."""
        if self.fixed:
            return
        with self._lock:
            self._seen += 1
            if len(self._reservoir) < RESERVOIR_SIZE:
                self._reservoir.append(vector)
            else:
                slot = int(self._rng.integers(0, self._seen))
                if slot >= RESERVOIR_SIZE:
                    return
                self._reservoir[slot] = vector
            # Re-measure at powers of two, then every 64 vectors: cheap and current.
            n = self._seen
            if n & (n - 1) == 0 or n % 64 == 0:
                self._baseline = None

    @property
    def baseline(self) -> float:
        """Mean cosine between unrelated questions under this embedding (calibrated)."""
        with self._lock:
            if self._baseline is None:
                self._baseline = self._measure()
            return self._baseline

    def _measure(self) -> float:
        n = len(self._reservoir)
        if n < 2:
            return COLD_BASELINE
        # The mean off-diagonal cosine without the n x n Gram matrix (a threaded BLAS call
        # that cost tens of ms on a busy machine): sum of all pairs = |sum|^2 - sum |v|^2.
        m = np.stack(self._reservoir)
        total = m.sum(axis=0)
        mean = float((total @ total - float(np.einsum("ij,ij->", m, m))) / (n * (n - 1)))
        mean = min(0.98, max(-0.5, mean))
        return mean if self._seen >= MIN_CALIBRATION else max(mean, COLD_BASELINE)

    def rescale(self, cosine: float) -> float:
        """``cosine`` on the calibrated scale: 0 unrelated, 1 identical."""
        base = self.baseline
        return (cosine - base) / (1.0 - base)

    def begin_lookup(self) -> None:
        """A lookup starts: counted for the verifier budget (:data:`VERIFY_BUDGET`)."""
        if self.has_verifier and self.similarity_threshold is None:
            self._local.wanted = None
            with self._lock:
                self._lookups += 1
                if self._lookups % BUDGET_EVERY == 0:
                    self._refresh_budget()

    def search_floor(self) -> float:
        """The lowest raw cosine a candidate needs to matter (the store's search floor)."""
        if self.similarity_threshold is not None:
            band = FIXED_BAND if self.has_verifier else 0.0
            return max(-1.0, self.similarity_threshold - band)
        low = self.thresholds.ask if self.has_verifier else self.thresholds.accept
        base = self.baseline
        return base + low * (1.0 - base)

    # -- the decision ---------------------------------------------------------------

    def judge(
        self, question: str, cached_question: str, cosine: float, entry: tuple[str, str] = ("", "")
    ) -> Decision:
        """Serve, ask or miss for ``cached_question`` (the store's ``entry`` key) found at
        ``cosine`` for ``question``."""
        if self.similarity_threshold is not None:
            if cosine >= self.similarity_threshold:
                return Decision("serve", cosine, "threshold")
            if self.has_verifier and cosine >= self.search_floor():
                return Decision("ask", cosine, "below threshold")
            return Decision("miss", cosine, "below threshold")
        evidence = compare(question, cached_question)
        score = self.rescale(cosine) - UNMATCHED_WEIGHT * evidence.unmatched
        if evidence.swapped:
            score -= SWAP_PENALTY
        # Prompts sharing a long context are judged again on their differing parts (the
        # whole prompts' cosine is the context's), where this check applies in turn.
        if cosine >= INDISTINCT_COSINE and not evidence.shared_context:
            change = wording_change(question, cached_question)
            if change != "none":
                return self._indistinct(change, score)
        t = self.thresholds
        # A serve stands only if the differing words, or the differing parts after a long
        # shared context, mean the same (judge_swap, on their own embeddings).
        swapped = evidence.swapped or evidence.shared_context
        if not self.has_verifier:
            if evidence.conflicts:
                return Decision("miss", score, "conflict: " + ", ".join(evidence.conflicts))
            if score >= t.accept:
                return Decision("serve", score, "score", swapped)
            return Decision("miss", score, "score")
        if score < t.ask:
            return Decision("miss", score, "score")
        if evidence.conflicts:
            reason = "conflict: " + ", ".join(evidence.conflicts)
            return self._within_budget(Decision("ask", score, reason))
        if score >= t.sure + (SWAP_MARGIN if evidence.swapped else 0.0):
            return Decision("serve", score, "score", swapped)
        decision = self._within_budget(self._from_verdicts(question, entry, score))
        if swapped and decision.action == "serve":
            return replace(decision, swapped=True)
        return decision

    def _indistinct(self, change: str, score: float) -> Decision:
        """A miss (with a verifier, a question for it) for a candidate whose cosine is
        that of the same vector although its wording differs (``change``)."""
        with self._lock:
            self._indistinct_count += 1
            first = self._indistinct_count == 1
        if first:
            _warn_indistinct(change)
        reason = f"embedding cannot tell apart (different {change})"
        if self.has_verifier:
            return self._within_budget(Decision("ask", score, reason))
        return Decision("miss", score, reason)

    def judge_swap(self, decision: Decision, phrase_similarity: float) -> Decision:
        """A swapped "serve" ``decision`` once the cosine between the replaced phrases'
        embeddings is known: it stands when they mean the same; otherwise a miss, or
        with a verifier a question for it."""
        # On the calibrated scale, as the questions' cosine: an embedding whose unrelated
        # texts sit at cosine 0.8 would otherwise pass every pair of phrases.
        similarity = self.rescale(phrase_similarity)
        if similarity >= SWAP_PHRASE_FLOOR:
            return decision
        reason = f"replaced words differ ({similarity:.2f})"
        if self.has_verifier:
            return self._within_budget(Decision("ask", decision.score, reason))
        return Decision("miss", decision.score, reason)

    def _within_budget(self, decision: Decision) -> Decision:
        """``decision``, or a miss for a verdict the budget cannot afford. Only the first
        verdict a lookup wants is counted (the cache asks one per lookup at most)."""
        if decision.action != "ask":
            return decision
        # The lookup asks if any of its candidates clears the floor: its best one counts.
        mine: list[float] | None = getattr(self._local, "wanted", None)
        if mine is None:
            mine = [self._lookups, decision.score]
            self._local.wanted = mine
            with self._lock:
                self._wanted.append(mine)
        elif decision.score > mine[1]:
            mine[1] = decision.score
        if decision.score <= self._budget_floor:
            return Decision("miss", decision.score, "verifier budget")
        return decision

    def _refresh_budget(self) -> None:
        # Open loop: the floor comes from the verdicts lookups *wanted*, not from those
        # asked, so raising it does not hide the demand that made it rise.
        oldest = self._lookups - BUDGET_WINDOW
        while self._wanted and self._wanted[0][0] <= oldest:
            self._wanted.popleft()
        window = max(min(self._lookups, BUDGET_WINDOW), BUDGET_MIN_LOOKUPS)
        allowed = int(VERIFY_BUDGET * window)
        if len(self._wanted) <= allowed:
            self._budget_floor = -math.inf
            return
        scores = sorted((score for _, score in self._wanted), reverse=True)
        self._budget_floor = scores[allowed]

    def _from_verdicts(self, question: str, entry: tuple[str, str], score: float) -> Decision:
        with self._lock:
            seen = self._entries.get(entry)
            region = self._bins.get(_bin(score))
        settled: Decision | None = None
        if seen is not None:
            lowest_yes, highest_no = seen
            if score <= highest_no:
                settled = Decision("miss", score, "entry: no at a higher score")
            elif score >= lowest_yes:
                settled = Decision("serve", score, "entry: yes at a lower score")
        if settled is None and region is not None:
            total = region.yes + region.no
            if total >= MIN_BIN_VERDICTS:
                if region.yes <= 0.2 * total:
                    settled = Decision("miss", score, "region: mostly no")
                elif region.no <= REGION_MAX_NO_SHARE * total:
                    settled = Decision("serve", score, "region: nearly all yes")
        if settled is None:
            return Decision("ask", score, "uncertain")
        # Deterministic exploration: the same question is settled the same way.
        if zlib.crc32(question.encode("utf-8")) % EXPLORE_EVERY == 0:
            return Decision("ask", score, "explore")
        return settled

    def learn(self, entry: tuple[str, str], score: float, verdict: bool) -> None:
        """Record a verifier's verdict on ``entry`` at ``score`` (see the module)."""
        if self.fixed:
            return
        with self._lock:
            seen = self._entries.pop(entry, None) or [math.inf, -math.inf]
            if verdict:
                seen[0] = min(seen[0], score)
            else:
                seen[1] = max(seen[1], score)
                if seen[0] <= seen[1]:  # a "no" above an earlier "yes": trust the no
                    seen[0] = math.inf
            self._entries[entry] = seen
            while len(self._entries) > MAX_ENTRY_VERDICTS:
                self._entries.popitem(last=False)
            region = self._bins.setdefault(_bin(score), _Bin())
            if verdict:
                region.yes += 1
            else:
                region.no += 1

    def describe(self) -> dict[str, float | int | None]:
        """Calibration figures for ``stats``: baseline, questions seen, thresholds (raw
        cosine at the current calibration)."""
        if self.similarity_threshold is not None:
            return {"mode": "fixed", "similarity_threshold": self.similarity_threshold}
        base = self.baseline
        t = self.thresholds
        return {
            "mode": "error-bounded",
            "max_error_rate": self.max_error_rate,
            "baseline_cosine": round(base, 4),
            "calibration_questions": self._seen,
            "accept_cosine": round(base + t.accept * (1 - base), 4),
            "ask_cosine": round(base + t.ask * (1 - base), 4) if self.has_verifier else None,
            "indistinct_matches": self._indistinct_count,
        }


def _warn_indistinct(change: str) -> None:
    # Once per cache: the cause is the embedding's, and every lookup would repeat it.
    if change == "order":
        cause = (
            "the same words in another order: the embedding ignores word order (a bag of "
            "words such as HashingEmbeddings), and 'from Paris to London' is not 'from "
            "London to Paris'"
        )
    else:
        cause = (
            "different words: the embedding looks constant or degenerate, e.g. LlamaIndex's "
            "MockEmbedding or another test stub, and would match every question to every "
            "cached one; give the cache a real embedding model for semantic hits"
        )
    logger.warning(
        "semantic cache: its embedding gives two differently worded questions the same "
        "vector, so it cannot tell them apart; such a match is not served on the cosine "
        "(exact repeats still hit; stats['gate']['indistinct_matches'] counts them; logged "
        "once per cache). The two questions have %s.",
        cause,
    )


def _bin(score: float) -> int:
    return math.floor(score / BIN_WIDTH)


__all__ = ["CacheGate", "Decision", "Thresholds", "check_error_rate", "thresholds"]
