"""Learned routers (knn, logistic): graded labels, tiers, calibration, plain-file save/load,
embeddings computed once and cached on disk."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest

from costopt_core import get_strategy
from costopt_core.embedding_cache import CachedEmbedder, default_embedding
from costopt_core.hashing import HashingEmbedder
from costopt_core.knn import KNNStrategy
from costopt_core.learned import NotFittedError, load_router
from costopt_core.logistic import LogisticStrategy


@pytest.fixture(autouse=True)
def _deterministic_default_embedding(monkeypatch) -> None:
    # Tests run on the deterministic hashing embedding even where the [embeddings]
    # extra is installed (the default would then be the neural model).
    monkeypatch.setattr("costopt_core.embedding_cache.NEURAL_PROVIDERS", ())


HARD = [f"prove that the sum of {i} consecutive odd numbers is a square" for i in range(10)]
EASY = [f"translate the word number {i} into french" for i in range(10)]
MID = [f"summarise chapter {i} of the novel and list its characters" for i in range(10)]
PROMPTS = HARD + MID + EASY
LABELS = [1.0] * 10 + [0.5] * 10 + [0.0] * 10


@pytest.fixture(params=["knn", "logistic"])
def learned(request):
    cls = {"knn": KNNStrategy, "logistic": LogisticStrategy}[request.param]
    return cls(HashingEmbedder(dim=128), tiers=("small", "mid", "large"))


def test_three_tiers_from_graded_labels(learned) -> None:
    router = learned.fit(PROMPTS, LABELS)
    hard = router.score("prove that the sum of two odd numbers is even")
    mid = router.score("summarise chapter 12 of the novel")
    easy = router.score("translate the word cat into french")
    assert hard > mid > easy
    router.calibrate(PROMPTS, shares=[1 / 3, 1 / 3, 1 / 3])
    tiers = [router.route(p).tier for p in PROMPTS]
    assert tiers == ["large"] * 10 + ["mid"] * 10 + ["small"] * 10
    assert router.calibration["sample_shares"] == pytest.approx([1 / 3] * 3)


@pytest.mark.parametrize("suffix", [".npz", ".json"])
def test_train_once_deploy_anywhere(learned, tmp_path, suffix: str) -> None:
    router = learned.fit(PROMPTS, LABELS).calibrate(PROMPTS, shares=[0.5, 0.3, 0.2])
    path = router.save(tmp_path / f"router{suffix}")
    loaded = get_strategy(router.name, path=path)
    assert type(loaded) is type(router)
    for probe in ("prove the lemma", "translate hello", "something else entirely"):
        assert loaded.route(probe).tier == router.route(probe).tier
        assert loaded.score(probe) == pytest.approx(router.score(probe), abs=1e-6)
    assert loaded.thresholds == router.thresholds and loaded.calibration == router.calibration
    if suffix == ".json":
        assert json.loads(path.read_text())["strategy"] == router.name  # plain JSON
    else:
        with np.load(path, allow_pickle=False) as data:  # no pickle inside
            assert "header" in data.files


def test_load_refuses_what_it_cannot_rebuild(tmp_path) -> None:
    custom = KNNStrategy(lambda texts: HashingEmbedder(dim=64).embed(texts), k=3)
    path = custom.fit(PROMPTS, LABELS).save(tmp_path / "custom.npz")
    with pytest.raises(ValueError, match="pass the same model as embeddings="):
        load_router(path)
    assert load_router(path, embeddings=HashingEmbedder(dim=64)).route(HARD[0]).tier
    with pytest.raises(ValueError, match="not a 'logistic' one"):
        LogisticStrategy.load(path, embeddings=HashingEmbedder(dim=64))
    with pytest.raises(ValueError, match="is not trained"):
        get_strategy("zero-shot", path=path)
    with pytest.raises(FileNotFoundError):
        load_router(tmp_path / "absent.json")


def test_bad_arguments_are_named(learned) -> None:
    with pytest.raises(NotFittedError):
        learned.route("x")
    learned.fit(PROMPTS, LABELS)
    with pytest.raises(ValueError, match=r"either strong_share= .* or shares="):
        learned.calibrate(PROMPTS)
    with pytest.raises(ValueError, match="strong_share= needs two tiers"):
        learned.calibrate(PROMPTS, strong_share=0.3)
    with pytest.raises(ValueError, match="sum to 1"):
        learned.calibrate(PROMPTS, shares=[0.5, 0.5, 0.5])
    with pytest.raises(ValueError, match="2 cut points"):
        KNNStrategy(HashingEmbedder(), tiers=("a", "b", "c"), thresholds=[0.5])
    with pytest.raises(ValueError, match="l2 must be"):
        LogisticStrategy(HashingEmbedder(), l2=0)


def test_embeddings_are_computed_once_per_text_and_kept_on_disk(tmp_path) -> None:
    seen: list[str] = []

    class Model:
        model = "counting-v1"  # its identity: the cache file is keyed by it

        def embed_documents(self, texts):
            seen.extend(texts)
            return HashingEmbedder(dim=64).embed(texts).tolist()

    router = KNNStrategy(Model(), k=3, cache_dir=tmp_path).fit(PROMPTS, LABELS)
    router.scores([*PROMPTS, "a new prompt"])
    assert sorted(seen) == sorted([*PROMPTS, "a new prompt"])  # each text once
    seen.clear()
    KNNStrategy(Model(), k=3, cache_dir=tmp_path).fit(PROMPTS, LABELS)  # a later run
    assert seen == []
    assert CachedEmbedder(Model(), cache_dir=tmp_path).path.parent == tmp_path


def test_the_default_embedding_is_the_neural_one_when_its_extra_is_installed(
    monkeypatch,
) -> None:
    import types

    fake = types.ModuleType("fake_neural")

    class Neural:
        MODEL = "fake-neural-v1"

        def embed_one(self, text):
            return np.ones(4, dtype=np.float32)

    def missing():
        raise ImportError("extra not installed")

    fake.Neural, fake.missing = Neural, missing
    monkeypatch.setitem(__import__("sys").modules, "fake_neural", fake)
    monkeypatch.setattr(
        "costopt_core.embedding_cache.NEURAL_PROVIDERS",
        ("fake_neural:missing", "fake_neural:Neural"),
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no fallback warning
        router = KNNStrategy(k=1).fit(["a", "b"], [0, 1])
    assert "fake-neural-v1" in router._embed.model_id


def test_the_default_embedding_says_when_it_falls_back_to_hashing() -> None:
    with pytest.warns(UserWarning, match="hashing embedding"):
        model = default_embedding()
    assert isinstance(model, HashingEmbedder)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        default_embedding(warn=False)


class _Spy:
    """An embedding model that notes every text it is asked to embed."""

    def __init__(self, model: str, seen: list[str]) -> None:
        self.model = model
        self._seen = seen

    def embed(self, texts):
        self._seen.extend(texts)
        return HashingEmbedder(dim=64).embed(texts)


def test_only_the_head_of_a_long_prompt_is_embedded(tmp_path) -> None:
    seen: list[str] = []
    router = KNNStrategy(_Spy("spy-v1", seen), k=3, max_tokens=8).fit(PROMPTS, LABELS)
    long_prompt = "prove that the sum of odd numbers is a square " + "and more words " * 500
    router.route(long_prompt)
    assert len(seen[-1]) <= 8 * 4 and long_prompt.startswith(seen[-1])
    # The cap travels with the saved router.
    again = load_router(router.save(tmp_path / "r.npz"), embeddings=_Spy("spy-v1", seen))
    assert again.route(long_prompt) == router.route(long_prompt)
    assert len(seen[-1]) <= 8 * 4
    uncapped = KNNStrategy(_Spy("spy-v1", seen), k=3, max_tokens=None).fit(PROMPTS, LABELS)
    uncapped.route(long_prompt)
    assert seen[-1] == long_prompt
    with pytest.raises(ValueError, match="max_tokens"):
        KNNStrategy(_Spy("spy-v1", seen), max_tokens=0)


def test_a_file_that_is_not_a_router_says_so_and_never_suggests_pickle(tmp_path) -> None:
    csv = tmp_path / "labels.csv"
    csv.write_text("prompt,weak_score,strong_score\nhi,1,2\n", encoding="utf-8")
    with pytest.raises(ValueError, match="not a costopt router file") as info:
        load_router(csv)
    assert "pickle" not in str(info.value)


def test_loading_a_neural_router_without_the_embeddings_extra_names_it(
    tmp_path, monkeypatch
) -> None:
    # Trained where a neural embedding is installed, deployed on a slim server without.
    class Neural:
        model = "multilingual-e5-small-q4"

        def embed(self, texts):
            return HashingEmbedder(dim=64).embed(texts)

    path = KNNStrategy(Neural(), k=3).fit(PROMPTS, LABELS).save(tmp_path / "r.npz")
    monkeypatch.setattr("costopt_core.learned.default_embedding", lambda warn: HashingEmbedder())
    with pytest.raises(ValueError, match=r'pip install "costopt-llm\[embeddings\]"'):
        load_router(path)


# A ~40-token instruction ahead of every prompt: longer than the embedded head.
TEMPLATE = (
    "You are a careful assistant. Read the request below, think it through step by step, "
    "and answer it as well as you can in plain English.\n\nRequest: "
)


def test_a_shared_instruction_does_not_blind_the_router(learned) -> None:
    # Behind the template every prompt's first 32 tokens are the same words: the
    # router must still tell hard from easy, exactly as it does without the template.
    # Topic words only (no task cue such as "prove" that a prompt feature could read).
    prompts = [f"notes on the zebra {i} herd" for i in range(10)]
    prompts += [f"notes on the cello {i} show" for i in range(10)]
    labels = [1.0] * 10 + [0.0] * 10
    templated = learned.fit([TEMPLATE + p for p in prompts], labels)
    hard, easy = "notes on the zebra 42 herd", "notes on the cello 42 show"
    assert templated.score(TEMPLATE + hard) - templated.score(TEMPLATE + easy) > 0.3
    plain = learned.clone().fit(prompts, labels)
    assert (templated.score(TEMPLATE + hard) > templated.score(TEMPLATE + easy)) == (
        plain.score(hard) > plain.score(easy)
    )


@pytest.mark.parametrize("suffix", [".npz", ".json"])
def test_the_shared_instruction_is_saved_with_the_router(learned, tmp_path, suffix) -> None:
    router = learned.fit([TEMPLATE + p for p in PROMPTS], LABELS)
    loaded = load_router(router.save(tmp_path / f"r{suffix}"))
    probes = [TEMPLATE + "prove the lemma", TEMPLATE + "translate hello", "no template here"]
    assert loaded.scores(probes) == pytest.approx(router.scores(probes), abs=1e-6)
    assert loaded.score(probes[0]) > loaded.score(probes[1])


def test_a_router_file_from_before_the_shared_instruction_still_loads(tmp_path) -> None:
    router = KNNStrategy(HashingEmbedder(dim=64), k=3).fit(PROMPTS, LABELS)
    path = router.save(tmp_path / "r.npz")
    with np.load(path, allow_pickle=False) as data:
        arrays = {k: data[k] for k in data.files if k != "template_prefix"}
    header = json.loads(str(arrays.pop("header")))
    header["version"] = 2  # as written before the template was kept
    old = tmp_path / "old.npz"
    np.savez_compressed(old, header=np.array(json.dumps(header)), **arrays)
    assert load_router(old).scores(PROMPTS) == pytest.approx(router.scores(PROMPTS))


def test_prompts_that_embed_alike_are_warned_about_once(caplog) -> None:
    # Three instructions, each on a third of the prompts: no prefix most of them share,
    # and the embedded heads are the instructions' words alone.
    heads = [TEMPLATE, "Please consider this user message with great care, then reply " * 2]
    heads.append("Below is a task from our support queue; handle it as policy says. " * 2)
    prompts = [heads[i % 3] + p for i, p in enumerate(PROMPTS)]
    router = KNNStrategy(HashingEmbedder(dim=64), k=3)
    with caplog.at_level("WARNING", logger="costopt_core.learned"):
        router.fit(prompts, LABELS)
        router.clone().fit(prompts[::-1], LABELS[::-1])  # a second fold: no second warning
    warned = [r for r in caplog.records if "distinct texts" in r.getMessage()]
    assert len(warned) == 1
    assert "30 distinct training prompts embed as only 3" in warned[0].getMessage()
    assert "max_tokens=None" in warned[0].getMessage()
    caplog.clear()
    with caplog.at_level("WARNING", logger="costopt_core.learned"):
        KNNStrategy(HashingEmbedder(dim=64), k=3).fit([TEMPLATE + p for p in PROMPTS], LABELS)
    assert not caplog.records  # one template is stripped: nothing to warn about


def test_a_loaded_router_reads_embeddings_cached_by_earlier_runs(tmp_path) -> None:
    seen: list[str] = []
    router = KNNStrategy(_Spy("spy-cache-v1", seen), k=3, cache_dir=tmp_path / "cache").fit(
        PROMPTS, LABELS
    )
    path = router.save(tmp_path / "r.npz")
    seen.clear()
    # A later process (the deployed router, eval-router --load): nothing embedded again.
    loaded = load_router(path, embeddings=_Spy("spy-cache-v1", seen), cache_dir=tmp_path / "cache")
    assert loaded.scores(PROMPTS) == pytest.approx(router.scores(PROMPTS))
    assert seen == []
    again = KNNStrategy.load(
        path, embeddings=_Spy("spy-cache-v1", seen), cache_dir=tmp_path / "cache"
    )
    again.scores(PROMPTS)
    assert seen == []
    # Without a cache folder (the default), memory only, as before.
    load_router(path, embeddings=_Spy("spy-cache-v1", seen)).scores(PROMPTS[:2])
    assert seen == PROMPTS[:2]
