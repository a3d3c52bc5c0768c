"""A label per tier (three or more models judged on every prompt): loading, training
labels, routed quality, and train-router / eval-router with --tier-columns."""

from __future__ import annotations

import csv
import json
import random

import numpy as np
import pytest

from costopt_core import get_strategy
from costopt_core.cli import main
from costopt_core.evaluation import RoutingData, load_routing_data
from costopt_core.tier_labels import (
    bands_at_cuts,
    bands_at_shares,
    needed_shares,
    needed_tier_labels,
    needed_tiers,
    routed_quality,
)


@pytest.fixture(autouse=True)
def _offline_embedding(tmp_path, monkeypatch) -> None:
    # The deterministic hashing embedding, its cache under tmp (never the user's home).
    monkeypatch.setattr("costopt_core.embedding_cache.NEURAL_PROVIDERS", ())
    monkeypatch.setenv("COSTOPT_CACHE_DIR", str(tmp_path / "cache"))


_TOPICS = {  # words of a prompt -> the cheapest tier that answers it
    "hello thanks greetings": 0,
    "capital city weather": 0,
    "compute sum integral": 1,
    "prove theorem lemma": 2,
    "architect system tradeoffs": 2,
}


def _judged_file(tmp_path, n: int = 400, seed: int = 1):
    """Prompts judged under three models: each answers its topics 90 % of the time."""
    rng = random.Random(seed)
    path = tmp_path / "judged.csv"
    with path.open("w", newline="") as handle:
        out = csv.writer(handle)
        out.writerow(["prompt", "mini", "mid", "large"])
        for i in range(n):
            words, need = rng.choice(list(_TOPICS.items()))
            prompt = f"{' '.join(rng.sample(words.split(), 2))} question {i}"
            out.writerow([prompt, *(int(t >= need and rng.random() < 0.9) for t in range(3))])
    return path


def test_load_reads_a_label_per_tier_with_weak_and_strong_its_ends(tmp_path) -> None:
    path = tmp_path / "t.csv"
    path.write_text("prompt,a,b,c\nhi,True,True,True\nwhy,False,False,True\n")
    data = load_routing_data(path, tier_columns=["a", "b", "c"])
    assert data.kind == "correct" and data.tier_names == ("a", "b", "c")
    assert data.tier_labels.tolist() == [[1, 1, 1], [0, 0, 1]]
    assert data.weak.tolist() == [1, 0] and data.strong.tolist() == [1, 1]
    # Training labels: the needed tier as a fraction of the ladder.
    assert data.gain_labels().tolist() == [0.0, 1.0]
    assert data.subset([1]).tier_labels.tolist() == [[0, 0, 1]]
    scores = tmp_path / "s.csv"
    scores.write_text("prompt,a,b,c\nhi,7.5,9,9\nwhy,2,4,8.5\n")
    graded = load_routing_data(scores, tier_columns=["a", "b", "c"])
    assert graded.kind == "score" and needed_tiers(graded.tier_labels).tolist() == [1, 2]


def test_load_refuses_unclear_tier_columns(tmp_path) -> None:
    path = tmp_path / "t.csv"
    path.write_text("prompt,a,b,c\nhi,1,1,1\n")
    with pytest.raises(ValueError, match="tier_columns, or weak/strong_column"):
        load_routing_data(path, tier_columns=["a", "b"], weak_column="a", strong_column="b")
    with pytest.raises(ValueError, match="two or more distinct"):
        load_routing_data(path, tier_columns=["a"])
    with pytest.raises(ValueError, match="two or more distinct"):
        load_routing_data(path, tier_columns=["a", "a"])
    with pytest.raises(TypeError, match="not one string"):
        load_routing_data(path, tier_columns="a,b")
    with pytest.raises(ValueError, match="no column 'd'"):
        load_routing_data(path, tier_columns=["a", "d"])
    with pytest.raises(ValueError, match="one name per tier_labels column"):
        RoutingData(["x"], [1], [1], tier_labels=[[1, 1, 1]], tier_names=("a", "b"))


def test_two_tier_columns_train_as_weak_and_strong_do(tmp_path) -> None:
    path = tmp_path / "t.csv"
    path.write_text("prompt,a,b\nhi,1,1\nwhy,0,1\nno,1,0\n")
    tiered = load_routing_data(path, tier_columns=["a", "b"])
    pair = load_routing_data(path, weak_column="a", strong_column="b")
    assert tiered.gain_labels().tolist() == pair.gain_labels().tolist() == [0.5, 1.0, 0.0]


def test_needed_tier_is_the_cheapest_reaching_the_best_label() -> None:
    labels = np.array([[0, 1, 1], [0, 0, 0], [1, 0, 1], [0.5, 0.8, 0.8000000000001]])
    assert needed_tiers(labels).tolist() == [1, 0, 0, 1]
    assert needed_tier_labels(labels).tolist() == [0.5, 0.0, 0.0, 0.5]
    assert needed_shares(labels) == [0.5, 0.5, 0.0]


def test_routed_quality_at_shares_and_at_cut_points_agree() -> None:
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, size=(200, 3)).astype(float)
    scores = rng.random(200)
    by_shares = bands_at_shares(scores, [0.5, 0.3, 0.2])
    assert np.bincount(by_shares).tolist() == [100, 60, 40]
    cuts = (np.sort(scores)[99] + 1e-9, np.sort(scores)[159] + 1e-9)
    assert bands_at_cuts(scores, cuts).tolist() == by_shares.tolist()
    shares = routed_quality(labels, scores, [0.5, 0.3, 0.2])
    at_cuts = routed_quality(labels, scores, thresholds=cuts)
    assert shares == at_cuts and shares.shares == (0.5, 0.3, 0.2)
    with pytest.raises(ValueError, match="either shares= or thresholds="):
        routed_quality(labels, scores)
    with pytest.raises(ValueError, match="sum to 1"):
        routed_quality(labels, scores, [0.5, 0.3, 0.3])
    with pytest.raises(ValueError, match="one name per label column"):
        routed_quality(labels, scores, [0.5, 0.3, 0.2], tiers=["a", "b"])


@pytest.mark.filterwarnings("ignore:no neural offline embedding")
def test_train_router_on_a_label_per_tier_routes_each_prompt_to_the_tier_it_needs(
    tmp_path, capsys
) -> None:
    data = _judged_file(tmp_path)
    model = tmp_path / "router.npz"
    args = ["train-router", str(data), "--tier-columns", "mini,mid,large", "--out", str(model)]
    assert main([*args, "--no-progress"]) == 0
    printed = capsys.readouterr().out
    # Tiers are named after the columns; each gets the share of prompts it is needed for.
    assert "tiers ['mini', 'mid', 'large']" in printed
    labels = load_routing_data(data, tier_columns=["mini", "mid", "large"]).tier_labels
    wanted = needed_shares(labels)
    assert f"wanted {', '.join(f'{s:.1%}' for s in wanted)}" in printed
    routed = float(printed.split("routed quality ")[1].split(":")[0])
    at_random = float(printed.split("at random ")[1].split(",")[0])
    assert routed > at_random + 0.15  # out of fold: the router learned who needs what
    router = get_strategy("knn", path=model)
    assert router.tiers == ("mini", "mid", "large")
    assert router.route("hello greetings question 9999").tier == "mini"
    assert router.route("compute integral question 9999").tier == "mid"
    assert router.route("prove lemma question 9999").tier == "large"
    # Names for the tiers must match the columns one for one.
    assert main([*args, "--tiers", "a,b", "--no-progress"]) == 2
    assert "one name per column" in capsys.readouterr().err


@pytest.mark.filterwarnings("ignore:no neural offline embedding")
def test_eval_router_judges_all_tiers_beside_the_two_tier_curve(tmp_path, capsys) -> None:
    data = _judged_file(tmp_path)
    out = tmp_path / "figures.json"
    args = ["eval-router", str(data), "--tier-columns", "mini,mid,large", "--json", str(out)]
    assert main([*args, "--strategy", "knn", "--folds", "3", "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "All 3 tiers (the curves above: mini vs large)" in printed
    figures = json.loads(out.read_text())
    tiers = figures["tiers"]
    assert tiers["tiers"] == ["mini", "mid", "large"]
    assert tiers["quality"] > tiers["random_quality"] + 0.15
    assert tiers["quality"] <= tiers["oracle_quality"]
    assert figures["apgr"] > 0.6  # the curve of mini vs large, from the first and last columns
    assert tiers["usd_per_1k"] is None  # no models named: no dollars made up


@pytest.mark.filterwarnings("ignore:no neural offline embedding")
def test_eval_router_prices_all_tiers_with_their_models(tmp_path, capsys) -> None:
    data = _judged_file(tmp_path, n=60)
    out = tmp_path / "figures.json"
    args = ["eval-router", str(data), "--tier-columns", "mini,mid,large", "--json", str(out)]
    models = "gpt-4o-mini,gpt-4.1-mini,gpt-4o"
    assert main([*args, "--strategy", "length", "--tier-models", models]) == 0
    assert "routed cost USD" in capsys.readouterr().out
    tiers = json.loads(out.read_text())["tiers"]
    cheap, mid, top = tiers["tier_usd_per_1k"]
    assert 0 < cheap < mid < top
    # The routed calls cost the share-weighted tiers' calls, here within the tiers' range.
    assert cheap < tiers["usd_per_1k"] < top
    assert main([*args, "--strategy", "length", "--tier-models", "gpt-4o-mini,gpt-4o"]) == 2
    assert "one model per tier" in capsys.readouterr().err
    plain = ["eval-router", str(data), "--weak-column", "mini", "--strong-column", "large"]
    assert main([*plain, "--strategy", "length", "--tier-models", models]) == 2
    assert "--tier-models prices the tiers of --tier-columns" in capsys.readouterr().err


def test_tier_models_price_the_curves_too_and_contradictions_are_refused(tmp_path, capsys) -> None:
    data = _judged_file(tmp_path, n=60)
    args = ["eval-router", str(data), "--tier-columns", "mini,mid,large", "--strategy", "length"]
    models = "gpt-4o-mini,gpt-4.1-mini,claude-3-5-sonnet"
    assert main([*args, "--tier-models", models]) == 0
    out = capsys.readouterr().out
    # One output, one top-tier price: the curves are priced with the first and last tier.
    assert "dollar axis (gpt-4o-mini -> claude-3-5-sonnet" in out
    top = out.split("all strong USD ")[1].split()[0]
    assert f"the top tier alone {top}" in out
    assert main([*args, "--tier-models", models, "--strong-model", "gpt-4o"]) == 2
    assert "--strong-model 'gpt-4o' contradicts --tier-models" in capsys.readouterr().err


def test_calibration_that_cannot_split_tied_scores_says_so(tmp_path, capsys) -> None:
    path = tmp_path / "tied.csv"
    rows = [("what is it", 1, 1, 1), ("prove it now", 0, 0, 1), ("sum these", 0, 1, 1)]
    path.write_text("prompt,a,b,c\n" + "".join(f"{p},{x},{y},{z}\n" for p, x, y, z in rows * 20))
    args = ["train-router", str(path), "--tier-columns", "a,b,c", "--out", str(tmp_path / "r")]
    # 60 rows but three distinct prompts: out-of-fold scores tie in three groups at most.
    shares = ["--shares", "0.5,0.25,0.25", "--calibration-folds", "2"]
    assert main([*args, *shares, "--no-progress", "--option", "k=5"]) == 0
    err = capsys.readouterr().err
    assert "the scores tie too often to cut at these shares" in err
    assert (tmp_path / "r.npz").is_file()


def test_tier_models_are_refused_beside_measured_cost_columns(tmp_path, capsys) -> None:
    path = tmp_path / "costed.csv"
    path.write_text(
        "prompt,mini,mid,large,weak_cost,strong_cost\nhi,1,1,1,0.001,0.05\nwhy,0,1,1,0.001,0.05\n"
    )
    args = ["eval-router", str(path), "--tier-columns", "mini,mid,large", "--strategy", "length"]
    assert main([*args, "--tier-models", "gpt-4o-mini,gpt-4.1-mini,gpt-4o"]) == 2
    assert "cost columns price the curves" in capsys.readouterr().err
    assert main(args) == 0  # without --tier-models: the file's own costs
