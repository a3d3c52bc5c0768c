"""What the command line and learned routers say: warnings that point at the user's own
line, one list of strategy names, no "-0.0%"."""

from __future__ import annotations

import json
import re
import warnings

import numpy as np
import pytest

from costopt_core.cli import main
from costopt_core.commands.eval_router import format_report
from costopt_core.evaluation import RoutingData, evaluate_scores


@pytest.fixture(autouse=True)
def _no_neural_embedding(tmp_path, monkeypatch) -> None:
    # As on an install without the [embeddings] extra: learned routers fall back, warning.
    monkeypatch.setattr("costopt_core.embedding_cache.NEURAL_PROVIDERS", ())
    monkeypatch.setenv("COSTOPT_CACHE_DIR", str(tmp_path / "cache"))


def test_the_fallback_warning_points_at_the_users_line() -> None:
    from costopt_core.knn import KNNStrategy

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        KNNStrategy()
    assert [w.filename for w in caught] == [__file__]  # not costopt_core/learned.py


def test_the_command_line_prints_the_warning_as_one_plain_line(tmp_path, capsys) -> None:
    rows = [{"prompt": f"prove lemma {i}", "weak_score": 2, "strong_score": 9} for i in range(4)]
    rows += [{"prompt": f"say hi {i}", "weak_score": 8, "strong_score": 8} for i in range(4)]
    data = tmp_path / "d.jsonl"
    data.write_text("\n".join(json.dumps(r) for r in rows))
    assert (
        main(["eval-router", str(data), "--strategy", "knn", "--folds", "2", "--no-progress"]) == 0
    )
    err = capsys.readouterr().err
    assert "costopt eval-router: warning: no neural offline embedding" in err
    assert "CachedEmbedder(" not in err and "UserWarning" not in err


def test_unknown_strategy_names_the_same_choices_as_help(tmp_path, capsys) -> None:
    data = tmp_path / "d.csv"
    data.write_text("prompt,weak_correct,strong_correct\nhi,1,1\nprove it,0,1\n")
    with pytest.raises(SystemExit):
        main(["eval-router", "--help"])
    listed = re.search(r"one of (\[[^\]]*\])", " ".join(capsys.readouterr().out.split()))
    assert main(["eval-router", str(data), "--strategy", "nope"]) == 2
    err = capsys.readouterr().err
    assert "'random'" in err and listed is not None
    assert listed.group(1) in err


def test_a_zero_saving_is_not_printed_negative() -> None:
    # Float noise leaves the saving at full strong quality at -2.2e-16 on these prompts.
    lengths = [22, 31, 36, 7, 23, 28, 21, 39]
    data = RoutingData(
        prompts=["word " * n for n in lengths], weak=[0, 1, 1, 1, 0, 0, 0, 1], strong=[1] * 8
    )
    result = evaluate_scores(np.zeros(8), data, strategy="constant")
    assert min(r["saving_vs_all_strong"] for r in result.quality_levels()) < 0
    text = format_report(result, "constant", "d.csv", 200)
    assert "saving -0.0%" not in text and "saving 0.0%" in text


@pytest.mark.parametrize(
    ("extra", "says"),
    [
        (["--input-tokens", "-10"], "--input-tokens must be a finite number >= 0"),
        (["--days", "0"], "--days must be an int >= 1"),
        (["--local-usd-per-hour", "1", "--local-tokens-per-second", "-3"], "--local-tokens-per"),
        (["--distill-share", "2", "--distilled-model", "gpt-4o-mini"], "--distill-share (and"),
    ],
)
def test_estimate_errors_name_the_flags_the_user_typed(extra, says, capsys) -> None:
    base = ["estimate", "--model", "gpt-4o", "--requests-per-day", "5", "--output-tokens", "5"]
    args = [*base, *(["--input-tokens", "10"] if "--input-tokens" not in extra else []), *extra]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert f"costopt estimate: error: {says}" in err
