"""Router metrics against hand-computed cases, data loading, calibration, the CLI."""

from __future__ import annotations

import json
import random
import sys

import numpy as np
import pytest

from costopt_core.cli import main
from costopt_core.evaluation import (
    APGR_SHARES,
    RoutingCurve,
    RoutingData,
    calibrate_threshold,
    call_costs,
    cross_val_scores,
    evaluate_scores,
    kfold_indexes,
    load_routing_data,
)
from costopt_core.strategies import LengthStrategy, ThresholdStrategy


@pytest.fixture(autouse=True)
def _deterministic_default_embedding(monkeypatch) -> None:
    # Tests run on the deterministic hashing embedding even where the [embeddings]
    # extra is installed (the default would then be the neural model).
    monkeypatch.setattr("costopt_core.embedding_cache.NEURAL_PROVIDERS", ())


def _data(weak, strong, **kw) -> RoutingData:
    return RoutingData(prompts=[f"p{i}" for i in range(len(weak))], weak=weak, strong=strong, **kw)


# -- PGR / APGR / CPT on tiny cases --------------------------------------------------------


def test_perfect_order_hand_computed() -> None:
    # Gains: b and d need the strong model; the router ranks them first.
    curve = RoutingCurve.from_scores(
        [0.1, 0.9, 0.2, 0.8], np.array([1, 0, 1, 0.0]), np.array([1, 1, 1, 1.0])
    )
    # Q(s) = 0.5 + s for s <= 0.5, then 1: PGR(s) = 2s, then 1.
    assert curve.pgr_at(0.1) == pytest.approx(0.2)
    assert curve.pgr_at(0.25) == pytest.approx(0.5)
    assert curve.pgr_at(0.7) == pytest.approx(1.0)
    # Area: triangle 0.5 * 0.5 * 1 + rectangle 0.5 * 1.
    assert curve.apgr() == pytest.approx(0.75)
    assert curve.cpt(0.5) == pytest.approx(0.25)
    assert curve.cpt(0.8) == pytest.approx(0.4)


def test_worst_order_is_below_random() -> None:
    curve = RoutingCurve.from_scores(
        [0.9, 0.1, 0.8, 0.2], np.array([1, 0, 1, 0.0]), np.array([1, 1, 1, 1.0])
    )
    # PGR stays 0 up to share 0.5, then rises to 1: area 0.25.
    assert curve.apgr() == pytest.approx(0.25)
    assert curve.cpt(0.5) == pytest.approx(0.75)


def test_ties_count_as_random_split_and_constant_scores_are_random_routing() -> None:
    weak = np.array([0, 1, 1, 0.0])
    strong = np.array([1, 1, 1, 0.0])  # only prompt 0 gains
    curve = RoutingCurve.from_scores([0.9, 0.9, 0.1, 0.1], weak, strong)
    # Routing one of the two tied top prompts finds the gain half the time.
    assert curve.pgr_at(0.25) == pytest.approx(0.5)
    assert curve.apgr() == pytest.approx(0.75)
    assert curve.cpt(0.8) == pytest.approx(0.4)
    flat = RoutingCurve.from_scores([0.3] * 4, weak, strong)
    assert flat.apgr() == pytest.approx(0.5)
    assert flat.cpt(0.5) == pytest.approx(0.5)
    assert flat.cpt(0.8) == pytest.approx(0.8)


def test_row_order_does_not_change_figures() -> None:
    rng = np.random.default_rng(1)
    weak = rng.integers(0, 2, 200).astype(float)
    strong = np.maximum(weak, rng.integers(0, 2, 200))
    scores = np.round(rng.random(200), 1)  # many ties
    perm = rng.permutation(200)
    a = RoutingCurve.from_scores(scores, weak, strong)
    b = RoutingCurve.from_scores(scores[perm], weak[perm], strong[perm])
    assert a.apgr() == pytest.approx(b.apgr())
    assert a.cpt(0.5) == pytest.approx(b.cpt(0.5))


def test_pgr_above_one_and_quality_share() -> None:
    # Gains +1, +1, -1: routing the third prompt strong loses a correct answer.
    curve = RoutingCurve.from_scores([0.9, 0.8, 0.1], np.array([0, 0, 1.0]), np.array([1, 1, 0.0]))
    assert curve.pgr_at(2 / 3) == pytest.approx(2.0)
    assert curve.pgr_at(1.0) == pytest.approx(1.0)
    assert curve.cpt(0.8) == pytest.approx(0.8 / 3)
    # 95% of strong quality (2/3) = 0.6333 is reached at share 0.3.
    assert curve.share_for_quality(0.95) == pytest.approx(0.3)


def test_random_scores_give_apgr_near_half() -> None:
    rng = np.random.default_rng(7)
    weak = rng.integers(0, 2, 20000).astype(float)
    strong = np.maximum(weak, rng.integers(0, 2, 20000))
    result = evaluate_scores(rng.random(20000), _data(weak, strong))
    assert abs(result.apgr - 0.5) < 0.02
    assert abs(result.cpt50 - 0.5) < 0.03


def test_pgr_undefined_when_strong_is_not_better() -> None:
    with pytest.raises(ValueError, match="strong model is not better"):
        evaluate_scores([0.1, 0.2], _data([1, 0], [0, 1]))


def test_dollar_axis_hand_computed() -> None:
    data = _data([0, 0], [1, 0], weak_cost=[1.0, 1.0], strong_cost=[3.0, 11.0])
    result = evaluate_scores([0.9, 0.1], data)
    c = result.curve
    assert (c.weak_cost, c.strong_cost) == (1.0, 7.0)
    # Half the gap at share 0.25 costs 1 + 0.5 * (3 - 1) / 2 = 1.5: 1/12 of the extra 6.
    assert c.cpt_cost(0.5) == pytest.approx(1 / 12)
    # PGR(f) = 6f up to f = 1/6, then 1: points 0, 0.6, 1, ..., 1 -> 0.03 + 0.08 + 0.8.
    assert c.apgr_cost() == pytest.approx(0.91)
    dollar = result.to_dict()["dollar"]
    assert dollar["cpt50_usd_per_call"] == pytest.approx(1.5)


def test_call_costs_use_catalog_and_reject_unknown_models() -> None:
    cheap = call_costs(["hello world"], "gpt-4o-mini", output_tokens=100)
    dear = call_costs(["hello world"], "gpt-4o", output_tokens=100)
    assert 0 < cheap[0] < dear[0]
    with pytest.raises(ValueError, match="no price known"):
        call_costs(["x"], "no-such-model-xyz")


def test_to_dict_has_fixed_keys_and_eleven_shares() -> None:
    result = evaluate_scores([0.1, 0.9, 0.2, 0.8], _data([1, 0, 1, 0], [1, 1, 1, 1]))
    out = result.to_dict()
    assert {"strategy", "n", "apgr", "cpt50", "cpt80", "pgr"} <= set(out)
    assert [s for s, _ in out["pgr"]] == list(APGR_SHARES)
    assert out["n"] == 4 and out["apgr"] == pytest.approx(0.75)


# -- loading ----------------------------------------------------------------------------------


def test_load_csv_and_jsonl(tmp_path) -> None:
    csv_file = tmp_path / "d.csv"
    csv_file.write_text('prompt,weak_correct,strong_correct\n"a, b",1,1\nc,0,true\n')
    data = load_routing_data(csv_file)
    assert data.prompts == ["a, b", "c"] and list(data.strong) == [1.0, 1.0]
    jsonl = tmp_path / "d.jsonl"
    jsonl.write_text(
        '{"prompt": "x", "weak_score": 3.5, "strong_score": 8}\n\n'
        '{"prompt": "y", "weak_score": 7, "strong_score": 7.5}\n'
    )
    data = load_routing_data(jsonl)
    assert data.kind == "score" and list(data.weak) == [3.5, 7.0]
    labels = data.gain_labels()
    assert labels[0] == pytest.approx(1.0) and 0.5 < labels[1] < 1.0


def test_load_errors_name_the_problem(tmp_path) -> None:
    missing = tmp_path / "m.csv"
    missing.write_text("prompt,weak_correct\nhi,1\n")
    with pytest.raises(ValueError, match="weak_correct,strong_correct"):
        load_routing_data(missing)
    bad = tmp_path / "b.csv"
    bad.write_text("prompt,weak_correct,strong_correct\nhi,1,maybe\n")
    with pytest.raises(ValueError, match="row 1: strong_correct"):
        load_routing_data(bad)
    no_prompt = tmp_path / "n.jsonl"
    no_prompt.write_text('{"text": "x", "weak_correct": 1, "strong_correct": 1}\n')
    with pytest.raises(ValueError, match="missing column 'prompt'"):
        load_routing_data(no_prompt)
    with pytest.raises(FileNotFoundError):
        load_routing_data(tmp_path / "absent.csv")
    with pytest.raises(ValueError, match="unsupported file type"):
        load_routing_data(bad.rename(tmp_path / "b.xlsx"))


def _per_model_files(tmp_path):
    # Laid out as RouteLLM's response files: one true/false column per model, one file
    # per subject.
    first, second = tmp_path / "subject_a.csv", tmp_path / "subject_b.csv"
    first.write_text("prompt,small/model-7b,big-model\nWhy?,False,True\nHow?,True,True\n")
    second.write_text("prompt,small/model-7b,big-model\nWho?,False,False\n")
    return first, second


def test_load_named_columns_from_several_files(tmp_path) -> None:
    first, second = _per_model_files(tmp_path)
    with pytest.raises(ValueError, match="--weak-column / --strong-column"):
        load_routing_data(first)
    data = load_routing_data(
        [first, second], weak_column="small/model-7b", strong_column="big-model"
    )
    assert data.prompts == ["Why?", "How?", "Who?"] and data.kind == "correct"
    assert list(data.weak) == [0.0, 1.0, 0.0] and list(data.strong) == [1.0, 1.0, 0.0]
    graded = tmp_path / "judged.jsonl"
    graded.write_text('{"q": "x", "a": 3, "b": 9}\n{"q": "y", "a": 1, "b": 0}\n')
    data = load_routing_data(graded, prompt_column="q", weak_column="a", strong_column="b")
    assert data.kind == "score" and list(data.strong) == [9.0, 0.0]
    with pytest.raises(ValueError, match="name both or neither"):
        load_routing_data(first, weak_column="small/model-7b")
    with pytest.raises(ValueError, match="no column 'gpt-5'"):
        load_routing_data(first, weak_column="small/model-7b", strong_column="gpt-5")
    correct, scored = tmp_path / "c.csv", tmp_path / "s.csv"
    correct.write_text("prompt,weak_correct,strong_correct\nhi,1,1\n")
    scored.write_text("prompt,weak_score,strong_score\nhi,2,8\n")
    with pytest.raises(ValueError, match="different columns"):
        load_routing_data([correct, scored])


def test_load_names_the_empty_cell_and_files_without_costs(tmp_path) -> None:
    gap = tmp_path / "gap.csv"
    gap.write_text("prompt,small,big\nWhy?,True,False\nHow?,False,True\nWho?,,True\n")
    with pytest.raises(ValueError, match="row 3: small must be 0/1"):
        load_routing_data(gap, weak_column="small", strong_column="big")
    priced, unpriced = tmp_path / "p.csv", tmp_path / "u.csv"
    priced.write_text("prompt,weak_correct,strong_correct,weak_cost,strong_cost\nhi,1,1,0.1,1\n")
    unpriced.write_text("prompt,weak_correct,strong_correct\nho,0,1\n")
    with pytest.raises(ValueError, match=r"and these do not: .*u\.csv"):
        load_routing_data([priced, unpriced])


def test_eval_router_reads_named_columns_from_several_files(tmp_path, capsys) -> None:
    first, second = _per_model_files(tmp_path)
    out = tmp_path / "out.json"
    code = main(
        [
            "eval-router",
            str(first),
            str(second),
            "--weak-column",
            "small/model-7b",
            "--strong-column",
            "big-model",
            "--strategy",
            "length",
            "--json",
            str(out),
        ]
    )
    assert code == 0
    figures = json.loads(out.read_text())
    assert figures["n"] == 3
    assert "subject_a.csv (+1 files)" in capsys.readouterr().out


def test_gain_labels_for_correctness() -> None:
    data = _data([0, 1, 0, 1], [1, 1, 0, 0])
    assert list(data.gain_labels()) == [1.0, 0.5, 0.5, 0.0]


# -- cross-validation ------------------------------------------------------------------------


class _Memorizer:
    """Scores 1 for prompts it was trained on: leaks would show as score 1."""

    def fit(self, prompts, labels):
        self.seen = set(prompts)
        return self

    def route(self, text):
        from costopt_core.decision import RouteDecision

        return RouteDecision("weak", 1.0 if text in self.seen else 0.0, "memo")


def test_cross_validation_scores_each_prompt_out_of_fold() -> None:
    data = _data([0, 1] * 10, [1, 1] * 10)
    scores = cross_val_scores(_Memorizer, data, folds=4)
    assert np.all(scores == 0.0)
    folds = kfold_indexes(20, 4)
    assert sorted(np.concatenate(folds).tolist()) == list(range(20))
    with pytest.raises(ValueError, match="folds"):
        kfold_indexes(3, 5)


class _LooseMemorizer(_Memorizer):
    """Scores 1 for prompts it was trained on, whatever their case and spacing (as an
    embedding nearly does)."""

    def fit(self, prompts, labels):
        return super().fit([" ".join(p.split()).lower() for p in prompts], labels)

    def route(self, text):
        return super().route(" ".join(text.split()).lower())


def test_copies_of_a_prompt_are_never_scored_by_a_router_fitted_on_them() -> None:
    # Each prompt three times (once re-typed with other case and spacing): a row split
    # put a copy on the training side of most folds, and a memoriser then scored it 1.
    prompts = [f"What is {i} plus {i}?" for i in range(30)] * 2
    prompts += [f"  what is {i}  PLUS {i}?\n" for i in range(30)]
    data = RoutingData(prompts=prompts, weak=[0, 1] * 45, strong=[1, 1] * 45)
    for seed in range(3):
        assert np.all(cross_val_scores(_LooseMemorizer, data, folds=5, seed=seed) == 0.0)


def test_folds_by_prompt_are_deterministic_and_match_row_folds_without_repeats() -> None:
    groups = [i % 7 for i in range(40)]
    parts = kfold_indexes(40, 3, seed=4, groups=groups)
    assert [p.tolist() for p in parts] == [
        p.tolist() for p in kfold_indexes(40, 3, seed=4, groups=groups)
    ]
    fold_of = {int(i): f for f, part in enumerate(parts) for i in part}
    assert all(fold_of[i] == fold_of[i % 7] for i in range(40))
    assert sorted(fold_of) == list(range(40))
    assert [
        p.tolist() for p in kfold_indexes(20, 4, seed=1, groups=list("abcdefghijklmnopqrst"))
    ] == [p.tolist() for p in kfold_indexes(20, 4, seed=1)]
    with pytest.raises(ValueError, match=r"folds \(3\) cannot exceed the number of distinct"):
        kfold_indexes(6, 3, groups=["a", "b"] * 3)


def test_cli_says_how_many_rows_repeat_a_prompt(tmp_path, capsys) -> None:
    rows = [json.loads(line) for line in _knn_rows(tmp_path).read_text().splitlines()]
    data = tmp_path / "twice.jsonl"
    data.write_text("\n".join(json.dumps(r) for r in rows + rows[:4]))
    args = ["eval-router", str(data), "--strategy", "knn", "--folds", "3", "--no-progress"]
    assert main([*args, "--embedding", "hashing", "--no-embedding-cache"]) == 0
    assert "4 of 16 rows repeat a prompt (12 distinct" in capsys.readouterr().err


# -- calibration -----------------------------------------------------------------------------


def _traffic(rng: random.Random, n: int) -> list[str]:
    words = ["apple", "train", "price", "sum", "why", "total", "each", "report", "plan"]
    return [" ".join(rng.choice(words) for _ in range(rng.randint(2, 120))) for _ in range(n)]


@pytest.mark.parametrize("target", [0.1, 0.3, 0.5, 0.8])
def test_calibration_holds_within_five_points_on_new_traffic(target: float) -> None:
    rng = random.Random(42)
    strategy = LengthStrategy()
    cal = calibrate_threshold(strategy, _traffic(rng, 400), target)
    assert abs(cal.sample_share - target) <= 0.01
    fresh = _traffic(rng, 3000)
    router = cal.strategy(strategy)
    realised = np.mean([router.route(p).tier == "strong" for p in fresh])
    assert abs(realised - target) <= 0.05


def test_calibration_with_ties_takes_nearest_reachable_share() -> None:
    cal = calibrate_threshold([0.2] * 6 + [0.9] * 4, None, 0.3)
    assert cal.sample_share == pytest.approx(0.4)
    assert cal.share_of([0.9, 0.2]) == 0.5
    zero = calibrate_threshold([0.2, 0.5], None, 0.0)
    assert zero.sample_share == 0.0
    assert isinstance(zero.strategy(LengthStrategy()), ThresholdStrategy)
    with pytest.raises(ValueError, match="target_share"):
        calibrate_threshold([0.1], None, 1.5)


# -- the command line ------------------------------------------------------------------------

_CSV = (
    "prompt,weak_correct,strong_correct\n"
    "hi,1,1\n"
    "what is two plus two,1,1\n"
    '"A train leaves at 3 pm at 60 mph, a second at 4 pm at 80 mph; when does it catch up '
    'and how far from the station, if both keep their speed?",0,1\n'
    '"Tom has 3 apples, buys twice as many, gives 2 to each of 4 friends, then sells the '
    'rest at $2 each. How much money does he make in total?",0,1\n'
    "name a colour,1,0\n"
    "translate cat into French,1,1\n"
)


def _labels_csv(tmp_path):
    """The labelled prompts of these CLI tests, written where the CLI reads them."""
    data = tmp_path / "d.csv"
    data.write_text(_CSV)
    return data


def test_cli_csv_writes_fixed_json(tmp_path, capsys) -> None:
    data = _labels_csv(tmp_path)
    out = tmp_path / "out.json"
    rc = main(
        [
            "eval-router",
            str(data),
            "--strategy",
            "length",
            "--json",
            str(out),
            "--no-progress",
            "--target-share",
            "0.5",
        ]
    )
    assert rc == 0
    printed = capsys.readouterr().out
    assert "APGR" in printed and "CPT(50%)" in printed and "dollar axis" in printed
    figures = json.loads(out.read_text())
    assert figures["strategy"] == "length" and figures["n"] == 6
    assert [s for s, _ in figures["pgr"]] == list(APGR_SHARES)
    assert all(0.0 <= s <= 1.0 for s, _ in figures["pgr"])
    # The two long prompts are the ones that need the strong model: length finds them.
    assert figures["apgr"] > 0.5
    assert "heldout_share" in figures["calibration"]


def test_cli_jsonl_knn_needs_folds_then_cross_validates(tmp_path, capsys) -> None:
    data = _knn_rows(tmp_path)
    assert main(["eval-router", str(data), "--strategy", "knn", "--no-progress"]) == 2
    assert "--folds" in capsys.readouterr().err
    out = tmp_path / "knn.json"
    rc = main(
        [
            "eval-router",
            str(data),
            "--strategy",
            "knn",
            "--folds",
            "3",
            "--json",
            str(out),
            "--no-progress",
            "--option",
            "k=3",
        ]
    )
    assert rc == 0
    figures = json.loads(out.read_text())
    assert figures["folds"] == 3
    # Neighbours of a "prove" prompt are "prove" prompts, which needed the strong model:
    # the optimal order, whose APGR with half the prompts gaining is 0.75.
    assert figures["apgr"] == pytest.approx(0.75)


@pytest.fixture(autouse=True)
def _embedding_cache_in_tmp(tmp_path, monkeypatch) -> None:
    # The CLI caches embeddings on disk by default: never in the user's home from tests.
    monkeypatch.setenv("COSTOPT_CACHE_DIR", str(tmp_path / "cache"))


@pytest.mark.filterwarnings("ignore:no neural offline embedding")
@pytest.mark.parametrize("suffix", [".npz", ".json"])
def test_cli_train_router_then_eval_the_saved_router(tmp_path, capsys, suffix) -> None:
    data = _labels_csv(tmp_path)
    model = tmp_path / f"router{suffix}"
    args = ["train-router", str(data), "--strategy", "knn", "--out", str(model)]
    rc = main([*args, "--target-share", "0.5", "--calibration-folds", "2", "--no-progress"])
    assert rc == 0 and model.is_file()
    printed = capsys.readouterr().out
    assert "calibrated on out-of-fold scores" in printed and "out-of-fold shares" in printed
    assert main(["eval-router", str(data), "--load", str(model), "--no-progress"]) == 0
    printed = capsys.readouterr()
    assert "knn loaded from" in printed.out
    # The saved cut point is shown with the share it was calibrated for and the share
    # it gives on these prompts: does the deployed cut hold on new traffic?
    assert "saved cut points [" in printed.err and "calibrated for " in printed.err
    assert "strong 50.0%" in printed.err.split("calibrated for ")[1]
    assert list((tmp_path / "cache" / "embeddings").glob("*.sqlite"))  # embedded once, kept
    # --load reads and fills the cache --embedding-cache names, as training does.
    cache = tmp_path / "load-cache"
    load = ["eval-router", str(data), "--load", str(model), "--no-progress"]
    assert main([*load, "--embedding-cache", str(cache)]) == 0
    assert list(cache.glob("*.sqlite"))
    # A strategy beside --load would be ignored in silence: refused instead.
    load = ["eval-router", str(data), "--load", str(model), "--no-progress"]
    assert main([*load, "--strategy", "logistic"]) == 2
    assert "--load evaluates the saved router" in capsys.readouterr().err


@pytest.mark.filterwarnings("ignore:no neural offline embedding")
def test_cli_train_router_with_three_tiers(tmp_path, capsys) -> None:
    data = _labels_csv(tmp_path)
    model = tmp_path / "r.npz"
    args = ["train-router", str(data), "--strategy", "knn", "--out", str(model)]
    rc = main([*args, "--tiers", "s,m,l", "--shares", "0.5,0.3,0.2", "--no-progress"])
    assert rc == 0
    from costopt_core import get_strategy

    router = get_strategy("knn", path=model)
    assert router.tiers == ("s", "m", "l") and len(router.thresholds) == 2
    assert main([*args, "--shares", "0.5,0.5,0.2", "--tiers", "s,m,l"]) == 2
    assert "sum to 1" in capsys.readouterr().err
    assert main([*args, "--target-share", "0.3", "--tiers", "s,m,l"]) == 2
    assert main(["train-router", str(data), "--strategy", "length", "--out", str(model)]) == 2
    assert "not trained" in capsys.readouterr().err


@pytest.mark.filterwarnings("ignore:no neural offline embedding")
def test_cli_shuffled_labels_are_a_control(tmp_path, capsys) -> None:
    rows = [
        {"prompt": f"prove lemma {i} about primes", "weak_score": 2, "strong_score": 9}
        for i in range(20)
    ]
    rows += [{"prompt": f"say hello to friend {i}", "weak_score": 8, "strong_score": 8}
             for i in range(20)]  # fmt: skip
    data = tmp_path / "d.jsonl"
    data.write_text("\n".join(json.dumps(r) for r in rows))
    figures = {}
    for control in (False, True):
        out = tmp_path / f"{control}.json"
        args = ["eval-router", str(data), "--strategy", "knn", "--folds", "4", "--json", str(out)]
        args += ["--embedding", "hashing"]
        assert main([*args, "--no-progress", *(["--shuffle-labels"] if control else [])]) == 0
        figures[control] = json.loads(out.read_text())["apgr"]
    assert figures[False] == pytest.approx(0.75)  # the best order possible on this data
    assert figures[True] < 0.65
    assert "labels shuffled" in capsys.readouterr().out


def test_cli_bad_input(tmp_path, capsys) -> None:
    data = _labels_csv(tmp_path)
    assert main(["eval-router", str(data), "--strategy", "nope", "--no-progress"]) == 2
    assert "unknown strategy" in capsys.readouterr().err
    assert main(["eval-router", str(tmp_path / "x.csv")]) == 2
    assert main(["eval-router", str(data), "--option", "bogus=1", "--no-progress"]) == 2
    assert (
        main(["eval-router", str(data), "--weak-model", "no-such-model-xyz", "--no-progress"]) == 2
    )
    assert "no price known" in capsys.readouterr().err


def test_cli_plot_writes_png(tmp_path) -> None:
    pytest.importorskip("matplotlib")
    data = _labels_csv(tmp_path)
    png = tmp_path / "p.png"
    assert (
        main(
            ["eval-router", str(data), "--strategy", "random", "--plot", str(png), "--no-progress"]
        )
        == 0
    )
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_plot_without_matplotlib_names_the_extra(tmp_path, capsys, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import now raises ImportError
    data = _labels_csv(tmp_path)
    out = tmp_path / "out.json"
    args = ["eval-router", str(data), "--plot", str(tmp_path / "p.png"), "--json", str(out)]
    assert main([*args, "--no-progress"]) == 2
    captured = capsys.readouterr()
    assert "costopt-llm[plot]" in captured.err
    # Refused before any work: no evaluation printed, no JSON written.
    assert captured.out == "" and not out.exists()


def test_evaluate_router_cross_validates_a_configured_learned_strategy() -> None:
    from costopt_core.evaluation import evaluate_router
    from costopt_core.hashing import HashingEmbedder
    from costopt_core.knn import KNNStrategy

    prompts = [f"prove lemma {i}" for i in range(5)] + [f"say hi {i}" for i in range(5)]
    data = RoutingData(prompts=prompts, weak=[0] * 5 + [1] * 5, strong=[1] * 10)
    result = evaluate_router(KNNStrategy(HashingEmbedder(dim=64), k=2), data, folds=5)
    assert result.folds == 5 and result.apgr == pytest.approx(0.75)
    with pytest.raises(ValueError, match="cannot be trained"):
        evaluate_router(LengthStrategy(), data, folds=2)


def test_cli_json_to_stdout_stays_parseable(tmp_path, capsys) -> None:
    data = _labels_csv(tmp_path)
    assert (
        main(["eval-router", str(data), "--strategy", "zero-shot", "--json", "-", "--no-progress"])
        == 0
    )
    captured = capsys.readouterr()
    assert json.loads(captured.out)["strategy"] == "zero-shot"
    assert "APGR" in captured.err


def _knn_rows(tmp_path):
    rows = [
        {"prompt": f"prove lemma {i} about primes", "weak_score": 2, "strong_score": 9}
        for i in range(6)
    ] + [
        {"prompt": f"say hello to friend {i}", "weak_score": 8, "strong_score": 8} for i in range(6)
    ]
    data = tmp_path / "d.jsonl"
    data.write_text("\n".join(json.dumps(r) for r in rows))
    return data


def test_cli_progress_without_tqdm_prints_plain_lines_and_one_hint(
    tmp_path, capsys, monkeypatch
) -> None:
    import threading

    monkeypatch.setitem(sys.modules, "tqdm", None)  # as if the [progress] extra were missing
    monkeypatch.setattr("costopt_core.evaluation._progress_hinted", threading.Event())
    args = ["eval-router", str(_knn_rows(tmp_path)), "--strategy", "knn", "--folds", "3"]
    for _ in range(2):
        assert main([*args, "--embedding", "hashing"]) == 0
    err = capsys.readouterr().err
    # A long run is never silent: each stage says where it is, and how to get a bar.
    assert "embedding: 1/1 blocks" in err and "cross-validation: 3/3 folds" in err
    assert err.count('pip install "costopt-llm[progress]"') == 1


def test_cli_progress_bar_over_folds_reaches_the_end(tmp_path, capsys) -> None:
    pytest.importorskip("tqdm")
    args = ["eval-router", str(_knn_rows(tmp_path)), "--strategy", "knn", "--folds", "3"]
    assert main([*args, "--embedding", "hashing"]) == 0
    err = capsys.readouterr().err
    # The folds' bar is kept at its end (per-fold bars were left at 0/2 in logs).
    assert "cross-validation: 100%" in err and "3/3" in err
    assert "progress]" not in err


def test_cli_cascade_is_refused_not_scored_as_random(tmp_path, capsys) -> None:
    data = _labels_csv(tmp_path)
    assert main(["eval-router", str(data), "--strategy", "cascade", "--no-progress"]) == 2
    captured = capsys.readouterr()
    # No table that looks like a measurement (it read APGR 0.500, random routing's).
    assert "APGR" not in captured.out
    assert "cannot be scored from prompts" in captured.err and "--folds" in captured.err


def test_cli_eval_router_help_lists_only_strategies_it_can_score(capsys) -> None:
    with pytest.raises(SystemExit):
        main(["eval-router", "--help"])
    listed = capsys.readouterr().out.split("--strategy STRATEGY", 2)[-1]
    assert "'zero-shot'" in listed and "'knn'" in listed and "'cascade'" not in listed


@pytest.mark.filterwarnings("ignore:no neural offline embedding")
def test_cli_eval_of_a_router_on_its_training_prompts_warns(tmp_path, capsys) -> None:
    data = _labels_csv(tmp_path)
    model = tmp_path / "router.json"
    train = ["train-router", str(data), "--strategy", "knn", "--out", str(model)]
    assert main([*train, "--embedding", "hashing", "--no-progress"]) == 0
    capsys.readouterr()
    assert main(["eval-router", str(data), "--load", str(model), "--no-progress"]) == 0
    assert "6 of 6 prompts (100%) are ones the router was trained on" in capsys.readouterr().err
    fresh = tmp_path / "fresh.csv"
    head, *rows = _CSV.splitlines()
    other = [f'"also, {r[1:]}' if r.startswith('"') else f"also {r}" for r in rows]
    fresh.write_text("\n".join([head, *other]))
    assert main(["eval-router", str(fresh), "--load", str(model), "--no-progress"]) == 0
    err = capsys.readouterr().err
    assert "trained on" not in err and "in-sample" not in err
    # A file that does not record its training prompts: a one-line note instead.
    from costopt_core.learned import load_router

    router = load_router(model)
    router.training_hashes = None
    router.save(tmp_path / "old.json")
    assert (
        main(["eval-router", str(data), "--load", str(tmp_path / "old.json"), "--no-progress"]) == 0
    )
    assert "does not record its training prompts" in capsys.readouterr().err


def test_a_csv_saved_by_excel_with_a_byte_order_mark_is_read(tmp_path) -> None:
    path = tmp_path / "labels.csv"
    path.write_text("prompt,weak_correct,strong_correct\nhi,1,1\nprove it,0,1\n", "utf-8-sig")
    data = load_routing_data(path)
    assert data.prompts == ["hi", "prove it"] and list(data.strong) == [1.0, 1.0]


def test_a_binary_data_file_is_refused_naming_it(tmp_path) -> None:
    path = tmp_path / "labels.csv"
    path.write_bytes(b"prompt,weak_correct,strong_correct\n\xff\xfe\x00binary,1,1\n")
    with pytest.raises(ValueError, match=r"labels\.csv: not UTF-8 text"):
        load_routing_data(path)


def test_train_router_offers_and_takes_only_strategies_it_can_train(tmp_path, capsys) -> None:
    with pytest.raises(SystemExit):
        main(["train-router", "--help"])
    helped = capsys.readouterr().out
    assert "one of ['knn', 'logistic']" in helped and "rules" not in helped
    data = _labels_csv(tmp_path)
    for name in ("default", "rules", "zero_shot"):
        args = ["train-router", str(data), "--strategy", name, "--out", str(tmp_path / "r")]
        assert main(args) == 2
        err = capsys.readouterr().err
        assert f"strategy {name!r} is not trained (it learns nothing from labels)" in err
        assert "choose one of ['knn', 'logistic']" in err and "TypeError" not in err
        assert "tiers" not in err
    assert not list(tmp_path.glob("r*"))


def test_cli_refuses_bad_flags_before_any_scoring(tmp_path, capsys, monkeypatch) -> None:
    # A typo found after minutes of embedding and cross-validation wastes them all.
    def scored(*args, **kwargs):
        raise AssertionError("scored before the flags were checked")

    monkeypatch.setattr("costopt_core.commands.eval_router._scores", scored)
    monkeypatch.setattr("costopt_core.commands.train_router.embed_all", scored)
    data = _labels_csv(tmp_path)
    base = ["eval-router", str(data), "--no-progress"]
    for extra, says in (
        (["--weak-model", "gpt4o-mini"], "no price known for model 'gpt4o-mini'"),
        (["--json", str(tmp_path / "nodir" / "o.json")], "--json: folder"),
        (["--plot", str(tmp_path / "nodir" / "o.png")], "--plot: folder"),
        (["--output-tokens", "-1"], "--output-tokens must be >= 0"),
        (["--tier-models", "gpt-4o-mini,gpt-4o"], "--tier-models prices the tiers"),
    ):
        assert main([*base, *extra]) == 2
        assert says in capsys.readouterr().err
    train = ["train-router", str(data), "--no-progress", "--out"]
    assert main([*train, str(tmp_path / "r.npz"), "--shares", "0.5,0.6"]) == 2
    assert "--shares: shares must sum to 1" in capsys.readouterr().err
    assert main([*train, str(tmp_path / "r.pkl")]) == 2
    assert "a router file ends in .npz or .json" in capsys.readouterr().err
