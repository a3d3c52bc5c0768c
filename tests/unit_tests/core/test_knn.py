"""KNNStrategy: learning from labelled prompts, persistence, embeddings of any framework."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from costopt_core.hashing import HashingEmbedder
from costopt_core.knn import KNNStrategy, NotFittedError, auto_k, embedding_function

pytestmark = pytest.mark.filterwarnings("ignore:no neural offline embedding")

HARD = [f"prove that the sum of {i} consecutive odd numbers is a square" for i in range(8)]
EASY = [f"translate the word number {i} into french" for i in range(8)]
PROMPTS = HARD + EASY
LABELS = [1.0] * 8 + [0.0] * 8


@pytest.fixture(autouse=True)
def _deterministic_default_embedding(monkeypatch) -> None:
    # Tests run on the deterministic hashing embedding even where the [embeddings]
    # extra is installed (the default would then be the neural model).
    monkeypatch.setattr("costopt_core.embedding_cache.NEURAL_PROVIDERS", ())


def test_neighbours_decide_the_score() -> None:
    router = KNNStrategy(k=5).fit(PROMPTS, LABELS)
    hard = router.route("prove that the sum of two odd numbers is even")
    easy = router.route("translate the word cat into french")
    assert hard.score > 0.7 > 0.3 > easy.score
    assert (hard.tier, easy.tier) == ("complex", "simple")
    assert "nearest labelled prompts" in hard.reason


def test_graded_labels_and_smoothing() -> None:
    graded = [0.9] * 8 + [0.2] * 8  # judge-score gains, not 0/1
    # The neighbours' estimate alone (no combination with length or a linear direction).
    raw = KNNStrategy(HashingEmbedder(), k=4, prior_strength=0, use_length=False, use_linear=False)
    raw = raw.fit(PROMPTS, graded)
    assert raw.score(HARD[0]) == pytest.approx(0.9)  # its neighbours' mean label
    router = KNNStrategy(HashingEmbedder(), k=4, use_length=False, use_linear=False).fit(
        PROMPTS, graded
    )
    assert 0.55 < router.score(HARD[0]) < 0.9  # pulled towards the mean label, 0.55
    flat = KNNStrategy(
        HashingEmbedder(), k=4, prior_strength=1000, use_length=False, use_linear=False
    )
    flat = flat.fit(PROMPTS, graded)
    assert flat.score(HARD[0]) == pytest.approx(0.55, abs=0.01)  # all prior: the mean label
    assert [auto_k(n) for n in (5, 2500, 10**6)] == [10, 100, 100]


def test_route_before_fit_is_a_clear_error() -> None:
    with pytest.raises(NotFittedError, match="fit"):
        KNNStrategy().route("anything")
    with pytest.raises(NotFittedError):
        KNNStrategy().save("/tmp/never.npz")


def test_fit_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="2 prompts but 1 labels"):
        KNNStrategy().fit(["a", "b"], [1])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        KNNStrategy().fit(["a"], [2.0])
    with pytest.raises(TypeError, match="sequence of str"):
        KNNStrategy().fit("ab", [1, 0])
    with pytest.raises(ValueError, match="k must be"):
        KNNStrategy(k=0)
    with pytest.raises(TypeError, match="embeddings must be"):
        KNNStrategy(embeddings=42)


def test_save_load_round_trip(tmp_path) -> None:
    router = KNNStrategy(HashingEmbedder(dim=128), k=4, tiers=("cheap", "strong")).fit(
        PROMPTS, LABELS
    )
    path = router.save(tmp_path / "model")  # suffix added
    assert path.name == "model.npz"
    loaded = KNNStrategy.load(tmp_path / "model")
    probes = ["prove the sum of squares", "translate hello", "something else entirely"]
    for probe in probes:
        assert loaded.route(probe) == router.route(probe)
    assert loaded.tiers == ("cheap", "strong") and loaded.k == 4
    # No pickle inside: numpy can read it with pickles disallowed.
    with np.load(path, allow_pickle=False) as data:
        assert {"header", "vectors", "labels", "combine_weights"} <= set(data.files)


def test_load_errors(tmp_path) -> None:
    with pytest.raises(FileNotFoundError):
        KNNStrategy.load(tmp_path / "absent.npz")
    other = tmp_path / "other.npz"
    np.savez(other, x=np.zeros(3))
    with pytest.raises(ValueError, match="not a costopt router"):
        KNNStrategy.load(other)
    custom = KNNStrategy(lambda texts: HashingEmbedder(dim=64).embed(texts)).fit(PROMPTS, LABELS)
    path = custom.save(tmp_path / "custom.npz")
    with pytest.raises(ValueError, match="pass the same model as embeddings="):
        KNNStrategy.load(path)
    again = KNNStrategy.load(path, embeddings=HashingEmbedder(dim=64))
    assert again.route(HARD[0]).score == pytest.approx(custom.route(HARD[0]).score, abs=1e-6)
    wrong_dim = KNNStrategy.load(path, embeddings=HashingEmbedder(dim=32))
    with pytest.raises(ValueError, match="dimension"):
        wrong_dim.route("x")


def test_deterministic_across_instances() -> None:
    a = KNNStrategy().fit(PROMPTS, LABELS)
    b = KNNStrategy().fit(list(PROMPTS), list(LABELS))
    assert [a.score(p) for p in PROMPTS] == [b.score(p) for p in PROMPTS]


class _LangChainLike:
    def __init__(self) -> None:
        self.inner = HashingEmbedder(dim=64)
        self.document_calls = 0

    def embed_documents(self, texts):
        self.document_calls += 1
        return self.inner.embed(texts).tolist()

    def embed_query(self, text):  # pragma: no cover - prompts are embedded as documents
        raise AssertionError("prompt-to-prompt similarity uses the document side")


class _LlamaIndexLike:
    def __init__(self) -> None:
        self.inner = HashingEmbedder(dim=64)

    def get_text_embedding_batch(self, texts):
        return self.inner.embed(texts).tolist()


def test_duck_typed_embeddings_agree() -> None:
    lc = _LangChainLike()
    scores = []
    for emb in (lc, _LlamaIndexLike(), HashingEmbedder(dim=64), HashingEmbedder(dim=64).embed):
        router = KNNStrategy(emb, k=3).fit(PROMPTS, LABELS)
        scores.append(router.score("prove that odd numbers are odd"))
    assert scores == pytest.approx([scores[0]] * 4, abs=1e-6)
    assert lc.document_calls == 2  # one batch for fit, one for the new prompt
    fn, name = embedding_function(_LlamaIndexLike())
    assert fn(["a", "b"]).shape == (2, 64) and name == "_LlamaIndexLike"


def test_bad_embedding_output_is_reported() -> None:
    with pytest.raises(ValueError, match="shape"):
        KNNStrategy(lambda texts: np.zeros(3)).fit(["a", "b"], [0, 1])


def test_concurrent_routing_while_refitting() -> None:
    router = KNNStrategy(k=3).fit(PROMPTS, LABELS)
    errors: list[BaseException] = []

    def work() -> None:
        try:
            for _ in range(30):
                assert 0.0 <= router.route(HARD[1]).score <= 1.0
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for _ in range(5):
        router.fit(PROMPTS[::-1], LABELS[::-1])
    for t in threads:
        t.join()
    assert not errors


def test_clone_is_unfitted_with_the_same_settings() -> None:
    emb = HashingEmbedder(dim=64)
    router = KNNStrategy(emb, k=2, tiers=("a", "b")).fit(PROMPTS, LABELS)
    twin = router.clone()
    assert not twin.is_fitted and twin.k == 2 and twin.tiers == ("a", "b")
    assert twin.fit(PROMPTS, LABELS).score(HARD[0]) == router.score(HARD[0])


def test_length_is_combined_with_the_neighbours() -> None:
    # Same words, different lengths: the neighbours cannot tell the prompts apart, the
    # length can. Long prompts needed the strong model.
    prompts = [("check this order " * n).strip() for n in range(1, 41)]
    labels = [float(n > 20) for n in range(1, 41)]
    with_length = KNNStrategy(HashingEmbedder(), k=10).fit(prompts, labels)
    alone = KNNStrategy(HashingEmbedder(), k=10, use_length=False, use_linear=False).fit(
        prompts, labels
    )
    short, long = "check this order", ("check this order " * 35).strip()
    assert with_length.score(long) - with_length.score(short) > 0.5
    assert abs(alone.score(long) - alone.score(short)) < 0.1
    assert "and length" in with_length.route(long).reason


def test_a_linear_direction_reaches_what_neighbours_blur() -> None:
    # The label rides on one faint coordinate; the neighbourhoods are set by loud noise.
    rng = np.random.default_rng(0)
    texts = [f"prompt {i}" for i in range(400)]
    signs = rng.choice([-1.0, 1.0], 400)
    noise = rng.standard_normal((400, 30))
    rows = {t: np.append(noise[i], 0.4 * signs[i]) for i, t in enumerate(texts)}

    def embed(batch: list[str]) -> np.ndarray:
        return np.stack([rows[t] for t in batch])

    train, test = texts[:300], texts[300:]
    labels = (signs[:300] > 0).astype(float)

    def separation(router: KNNStrategy) -> float:
        scores = router.fit(train, labels).scores(test)
        return float(scores[signs[300:] > 0].mean() - scores[signs[300:] < 0].mean())

    linear = separation(KNNStrategy(embed, use_length=False))
    alone = separation(KNNStrategy(embed, use_length=False, use_linear=False))
    assert linear > 0.3 and linear > 2 * alone
