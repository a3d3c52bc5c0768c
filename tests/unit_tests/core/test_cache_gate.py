"""The error-bounded cache decision: evidence, calibration, verifier, learning."""

from __future__ import annotations

import asyncio
import threading
import time

import numpy as np
import pytest

from costopt_core.cache import SemanticCache
from costopt_core.cache_evidence import compare
from costopt_core.cache_gate import (
    COLD_BASELINE,
    MIN_BIN_VERDICTS,
    MIN_CALIBRATION,
    VERIFY_BUDGET,
    CacheGate,
    thresholds,
)
from costopt_core.hashing import HashingEmbedder

EMBED = HashingEmbedder(dim=512).embed_one


def calibrated(gate: CacheGate, baseline_noise: int = 64, dim: int = 64) -> CacheGate:
    rng = np.random.default_rng(1)
    for v in rng.standard_normal((baseline_noise, dim)):
        gate.observe(v / np.linalg.norm(v))
    return gate


# -- evidence ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("a", "b", "conflict"),
    [
        ("What was the revenue in 2023?", "What was the revenue in 2024?", "numbers"),
        ("How do I install version 2.1?", "How do I install version two?", "numbers"),
        ("Is the API free?", "Is the API not free?", "negation"),
        ("Why can't I log in?", "Why can I log in?", "negation"),
        ("What happened on Monday?", "What happened on Friday?", "dates"),
        ("How do I deploy to AWS?", "How do I deploy to Azure?", "entities"),
        ("How do I increase the timeout?", "How do I decrease the timeout?", "opposites"),
        ("我应该买这只股票吗？", "我不应该买这只股票吗？", "negation"),
        ("上传文件的大小限制是多少？", "下载文件的大小限制是多少？", "opposites"),
        ("今年的预算是多少？", "去年的预算是多少？", "dates"),
        ("三个人需要多少钱？", "五个人需要多少钱？", "numbers"),
    ],
)
def test_meaning_flips_are_conflicts(a, b, conflict):
    assert conflict in compare(a, b).conflicts
    assert conflict in compare(b, a).conflicts


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("How do I reset my password?", "How can I reset my password?"),
        ("No, it doesn't exist in v2.", "It does not exist in v2."),
        ("What is Hugging Face?", "What is HuggingFace?"),
        ("How do I load datasets?", "How do I load a dataset?"),
        ("如何重置密码？", "怎样重置密码？"),
    ],
)
def test_paraphrases_have_no_conflict(a, b):
    assert compare(a, b).conflicts == ()


def test_unmatched_share_grows_with_new_content_words():
    close = compare("How do I reset my password?", "How can I reset my password?")
    far = compare("How do I reset my password?", "How do I bake sourdough bread?")
    assert close.unmatched < far.unmatched <= 1.0


# -- calibration and thresholds ------------------------------------------------------------


def test_threshold_validation_names_the_argument():
    for bad in (0, -0.1, 0.6, True, "0.02"):
        with pytest.raises(ValueError, match="max_error_rate"):
            CacheGate(max_error_rate=bad)


def test_stricter_error_rate_means_higher_bar():
    assert thresholds(0.005).accept > thresholds(0.02).accept > thresholds(0.1).accept


def test_cold_gate_assumes_a_crowded_embedding_until_calibrated():
    gate = CacheGate()
    assert gate.baseline == COLD_BASELINE
    calibrated(gate, baseline_noise=MIN_CALIBRATION)
    assert abs(gate.baseline) < 0.1  # random directions are unrelated


def test_same_cosine_means_less_under_a_crowded_embedding():
    """An embedding whose unrelated questions sit at cosine 0.8 needs a higher cosine
    for the same confidence: the decision follows the embedding, not a fixed number."""
    spread, crowded = calibrated(CacheGate()), CacheGate()
    rng = np.random.default_rng(2)
    common = rng.standard_normal(64)
    for v in rng.standard_normal((64, 64)) * 0.4 + common:
        crowded.observe(v / np.linalg.norm(v))
    assert crowded.baseline > 0.6
    question, cached = "How do I reset my password?", "How can I reset my password?"
    assert spread.judge(question, cached, 0.965).action == "serve"
    assert crowded.judge(question, cached, 0.965).action == "miss"
    assert crowded.search_floor() > spread.search_floor()


def test_conflicts_never_served_without_a_verifier():
    gate = calibrated(CacheGate())
    decision = gate.judge("Is Python 3.12 supported?", "Is Python 3.11 supported?", 0.999)
    assert decision.action == "miss" and "numbers" in decision.reason


def test_fixed_threshold_is_the_seeds_rule_exactly():
    gate = CacheGate(similarity_threshold=0.92)
    # Conflicting numbers or not, the seed serves at >= 0.92 and never below.
    assert gate.judge("Is Python 3.12 out?", "Is Python 3.11 out?", 0.92).action == "serve"
    assert gate.judge("a", "b", 0.9199999).action == "miss"
    assert gate.search_floor() == 0.92


# -- verdicts teach ---------------------------------------------------------------------------


def test_verdicts_settle_an_entry_without_asking_again():
    gate = calibrated(CacheGate(has_verifier=True))
    t = thresholds(0.02)
    entry = ("p", "How can I reset my password?")
    mid = (t.ask + t.accept) / 2  # rescaled; baseline ~0 so cosine ~ score
    cos = gate.baseline + mid * (1 - gate.baseline)
    question = "How do I reset my password?"
    assert gate.judge(question, entry[1], cos, entry).action == "ask"
    gate.learn(entry, gate.judge(question, entry[1], cos, entry).score, False)
    assert gate.judge(question, entry[1], cos, entry).action in ("miss", "ask")
    assert gate.judge(question, entry[1], cos - 0.001, entry).reason.startswith(
        ("entry", "explore")
    )


def test_region_of_all_yes_is_served_without_asking():
    gate = calibrated(CacheGate(has_verifier=True))
    t = thresholds(0.02)
    score = (t.ask + t.accept) / 2
    for i in range(25):
        gate.learn(("p", f"q{i}"), score, True)
    cos = gate.baseline + score * (1 - gate.baseline)
    decisions = [
        gate.judge(f"How do I reset password {w}?", f"How can I reset password {w}?", cos).action
        for w in ("alpha", "beta", "gamma", "delta", "omega", "sigma", "kappa", "theta")
    ]
    assert decisions.count("serve") >= 6  # a few are still asked (exploration)


# -- through the engine: one verdict per lookup, failures are "no" ---------------------------


class Judge:
    def __init__(self, verdict=True, delay=0.0, error=None):
        self.verdict, self.delay, self.error = verdict, delay, error
        self.calls: list[tuple[str, str, str]] = []
        self.lock = threading.Lock()

    def __call__(self, question, cached_question, cached_answer):
        with self.lock:
            self.calls.append((question, cached_question, cached_answer))
        if self.delay:
            time.sleep(self.delay)
        if self.error:
            raise self.error
        return self.verdict


def engine(verifier=None, **kw) -> SemanticCache:
    cache = SemanticCache(EMBED, verifier=verifier, **kw)
    for text in DISTINCT:  # the embedding's own distinct questions calibrate the gate
        cache.gate.observe(EMBED(text))
    return cache


_WORDS = [
    "apple",
    "river",
    "engine",
    "castle",
    "violin",
    "orbit",
    "pepper",
    "glacier",
    "tunnel",
    "harbor",
    "lantern",
    "saddle",
    "marble",
    "cactus",
    "falcon",
    "meadow",
    "quartz",
    "rocket",
    "spider",
    "thunder",
    "velvet",
    "walnut",
    "yogurt",
    "zebra",
    "anchor",
    "bishop",
    "candle",
    "dragon",
    "ember",
    "forest",
    "goblin",
    "hammer",
    "island",
    "jungle",
    "kettle",
    "ladder",
]
DISTINCT = [
    f"{_WORDS[i % 36]} {_WORDS[(i * 7 + 3) % 36]} {_WORDS[(i * 13 + 5) % 36]}?" for i in range(48)
]


PART = "p"
Q = "How do I reset my account password quickly?"
NEAR = "How can I reset my account password quickly?"


def _seeded(verifier=None, **kw) -> SemanticCache:
    cache = engine(verifier, **kw)
    cache.update(PART, Q, "Use the reset link.")
    return cache


def test_verifier_asked_only_when_uncertain_and_its_yes_serves():
    judge = Judge(True)
    cache = _seeded(judge)
    hit = cache.lookup(PART, NEAR)  # uncertain: asked, and the yes serves
    assert hit is not None and hit.response == "Use the reset link."
    assert hit.metadata["gate"]["reason"] == "verifier: uncertain"
    assert judge.calls == [(NEAR, Q, "Use the reset link.")]
    assert cache.lookup(PART, Q).exact  # exact: never asked
    assert cache.lookup(PART, "What is the capital of Mongolia?") is None  # far: never asked
    assert len(judge.calls) == 1
    assert cache.stats["verifier_calls"] == cache.stats["verifier_yes"] == 1


def test_without_verifier_the_uncertain_candidate_misses():
    cache = _seeded()
    assert cache.lookup(PART, NEAR) is None
    assert cache.lookup(PART, "how do I reset my account password quickly").exact is False


@pytest.mark.parametrize(
    "judge", [Judge(error=RuntimeError("down")), Judge(delay=0.5), Judge(verdict="yes")]
)
def test_failing_slow_or_odd_verifier_is_a_no_and_never_fails(judge, caplog):
    cache = _seeded(judge, verifier_timeout=0.05)
    question = "How do I not reset my account password quickly?"  # conflict: always asked
    assert cache.lookup(PART, question) is None
    assert cache.stats["verifier_calls"] == 1 and cache.stats["verifier_yes"] == 0
    assert asyncio.run(cache.alookup(PART, question)) is None


def test_async_verifier_and_sync_path_agree():
    async def ajudge(question, cached_question, cached_answer):
        return True

    question = "How do I not reset my account password quickly?"
    sync_cache = _seeded(Judge(True))
    async_cache = _seeded(ajudge)
    sync_hit = sync_cache.lookup(PART, question)
    async_hit = asyncio.run(async_cache.alookup(PART, question))
    assert (sync_hit is None) == (async_hit is None)
    assert sync_cache.stats["verifier_calls"] == async_cache.stats["verifier_calls"] == 1


def test_bad_verifier_and_timeout_arguments():
    with pytest.raises(TypeError, match="verifier"):
        SemanticCache(EMBED, verifier=42)
    with pytest.raises(ValueError, match="verifier_timeout"):
        SemanticCache(EMBED, verifier_timeout=0)


def test_explicit_092_answers_exactly_as_the_seeds_scan():
    """The seed's get(): the most similar entry serves when its cosine >= 0.92."""
    rng = np.random.default_rng(7)
    stored = rng.standard_normal((200, 16))
    stored /= np.linalg.norm(stored, axis=1, keepdims=True)
    queries = stored[rng.integers(0, 200, 300)] + rng.normal(0, 0.12, (300, 16))
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    vectors = {f"s{i}": v for i, v in enumerate(stored)} | {
        f"q{i}?": v for i, v in enumerate(queries)
    }
    cache = SemanticCache(vectors.__getitem__, similarity_threshold=0.92)
    for i in range(200):
        cache.update("p", f"s{i}", f"answer {i}")
    served = 0
    for i, q in enumerate(queries):
        sims = stored @ q
        best = int(np.argmax(sims))
        expected = f"answer {best}" if sims[best] >= 0.92 else None
        hit = cache.lookup("p", f"q{i}?")
        assert (hit.response if hit else None) == expected
        served += hit is not None
    assert 0 < served < 300  # both sides of the threshold were exercised


def test_repeated_traffic_needs_fewer_verdicts():
    gate = calibrated(CacheGate(has_verifier=True))
    t = thresholds(0.02)
    cos = gate.baseline + (t.ask + t.accept) / 2 * (1 - gate.baseline)
    pairs = [(f"How do I reset password {w}?", f"How can I reset password {w}?") for w in _WORDS]

    def one_pass() -> int:
        asked = 0
        for question, cached in pairs:
            decision = gate.judge(question, cached, cos, ("p", cached))
            if decision.action == "ask":
                asked += 1
                gate.learn(("p", cached), decision.score, True)
        return asked

    first, second = one_pass(), one_pass()
    # The region learns within the first pass, each entry by the second.
    assert MIN_BIN_VERDICTS <= first < len(pairs) and second <= 0.2 * len(pairs)


# -- what the tuned decision adds ---------------------------------------------------------


def test_a_replaced_word_is_told_apart_from_a_rewording():
    assert compare("Books on economics for students?", "Books on psychology for students?").swapped
    assert not compare("How do I reset my password?", "How can I reset my password?").swapped
    assert not compare("How do I reset my password?", "Recipe for sourdough bread?").swapped


def test_verifier_calls_stay_within_the_budget_and_skip_the_least_likely():
    """Traffic where every lookup has an uncertain candidate: only about VERIFY_BUDGET
    of lookups are put to the verifier, and those it skips score lower."""
    gate = calibrated(CacheGate(has_verifier=True))
    t = thresholds(0.02)
    rng = np.random.default_rng(3)
    asked, skipped = [], []
    for i in range(2000):
        gate.begin_lookup()  # the cache starts each lookup so
        score = rng.uniform(t.ask, t.accept)
        cos = gate.baseline + score * (1 - gate.baseline)
        word = _WORDS[i % len(_WORDS)]
        decision = gate.judge(f"Where is the {word} {i}?", f"Where's the {word} {i}?", cos)
        (asked if decision.action == "ask" else skipped).append(decision.score)
    assert len(asked) <= (VERIFY_BUDGET + 0.03) * 2000
    assert len(asked) >= (VERIFY_BUDGET - 0.05) * 2000  # the budget is used, not wasted
    assert np.mean(asked) > np.mean(skipped)


class _PhraseEmbedding:
    """HashingEmbedder, except for the texts given: each pair of questions embeds nearly
    alike (cosine ~0.995, which the score alone serves), and their replaced phrases as
    told (unrelated for another noun, close for a synonym)."""

    def __init__(self) -> None:
        rng = np.random.default_rng(7)

        def unit(v: np.ndarray) -> list[float]:
            return (v / np.linalg.norm(v)).tolist()

        self.table: dict[str, list[float]] = {}
        for a, b, phrase_a, phrase_b, phrase_cos in [
            ("Books on economics for students?", "Books on psychology for students?",
             "on economics for", "on psychology for", 0.2),
            ("How do I lose weight fast?", "How do I lose weight quickly?",
             "weight fast", "weight quickly", 0.95),
        ]:  # fmt: skip
            base = rng.standard_normal(512)
            self.table[a] = unit(base)
            self.table[b] = unit(base + 0.1 * rng.standard_normal(512))
            p = rng.standard_normal(512)
            q = rng.standard_normal(512)
            q -= (q @ p) / (p @ p) * p  # orthogonal to p: mix to the cosine wanted
            p, q = p / np.linalg.norm(p), q / np.linalg.norm(q)
            self.table[phrase_a] = unit(p)
            self.table[phrase_b] = unit(phrase_cos * p + np.sqrt(1 - phrase_cos**2) * q)
        self.calls: list[str] = []

    def __call__(self, text: str) -> list[float]:
        self.calls.append(text)
        return self.table[text] if text in self.table else list(EMBED(text))


def _calibrated(embed) -> SemanticCache:
    """A cache whose gate has seen the distinct questions (its calibration)."""
    cache = SemanticCache(embed)
    for text in DISTINCT:
        cache.gate.observe(np.asarray(EMBED(text)))
    return cache


@pytest.mark.parametrize("run", ["sync", "async"])
def test_a_replaced_word_is_served_only_when_the_replaced_phrases_mean_the_same(run):
    embed = _PhraseEmbedding()
    cache = _calibrated(embed)
    cache.update(PART, "Books on psychology for students?", "Try these psychology books.")
    cache.update(PART, "How do I lose weight quickly?", "Eat less, move more.")

    def lookup(text: str):
        if run == "sync":
            return cache.lookup(PART, text)
        return asyncio.run(cache.alookup(PART, text))

    # The sentences embed alike, but "economics" is not "psychology": no answer.
    assert lookup("Books on economics for students?") is None
    assert "on economics for" in embed.calls and "on psychology for" in embed.calls
    # A synonym swapped in: the phrases agree and the cached answer is served.
    hit = lookup("How do I lose weight fast?")
    assert hit is not None and hit.response == "Eat less, move more."
    assert cache.stats["gate_rejections"] >= 1


# -- prompts that share a long context (RAG): judged by the parts that differ ---------------

CONTEXT = (
    "Context:\nAcme Corp was founded in 1987 by Jane Doe in Springfield. It makes industrial "
    "pumps and valves, employs 4,200 people, and moved to Chicago in 2005. Revenue in 2023 "
    "was $1.2 billion.\n\nQuestion: "
)


class _PartsEmbedding(_PhraseEmbedding):
    """Hashing, except for a question reworded over the context: the two prompts, and
    their differing parts, embed nearly alike (as a sentence embedding would embed "who
    founded" / "who was the founder")."""

    def __init__(self) -> None:
        super().__init__()
        rng = np.random.default_rng(3)
        for pair in [
            (CONTEXT + "Who founded Acme Corp?", CONTEXT + "Who was the founder of Acme Corp?"),
            ("Who founded Acme", "Who was the founder of Acme"),
        ]:
            base = rng.standard_normal(512)
            near = base + 0.05 * rng.standard_normal(512)
            self.table[pair[0]] = (base / np.linalg.norm(base)).tolist()
            self.table[pair[1]] = (near / np.linalg.norm(near)).tolist()


@pytest.mark.parametrize("run", ["sync", "async"])
def test_questions_over_one_long_context_are_told_apart_by_the_question(run):
    # The whole prompts' cosine is the context's (0.99+): every new question over the
    # same context was served the first question's answer.
    embed = _PartsEmbedding()
    cache = _calibrated(embed)
    cache.update(PART, CONTEXT + "Who founded Acme Corp?", "Jane Doe.")

    def lookup(text: str):
        if run == "sync":
            return cache.lookup(PART, text)
        return asyncio.run(cache.alookup(PART, text))

    others = [
        "What was Acme's revenue in 2023?",
        "How many people does Acme employ?",
        "When was Acme Corp founded?",
        "Who founded Acme Corp? Answer in French.",
    ]
    for other in others:
        assert lookup(CONTEXT + other) is None, other
    assert lookup(CONTEXT + "Who founded Acme Corp?").response == "Jane Doe."  # the same
    hit = lookup(CONTEXT + "Who was the founder of Acme Corp?")  # the same, reworded
    assert hit is not None and hit.response == "Jane Doe."
