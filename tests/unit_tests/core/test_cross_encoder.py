"""CrossEncoderVerifier (extra [crossencoder]): a local folder, no download, no torch."""

from __future__ import annotations

import pytest

from costopt_core.cross_encoder import CrossEncoderVerifier, write_tiny_model


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return write_tiny_model(tmp_path_factory.mktemp("cross"))


def test_scores_are_probabilities_and_the_threshold_decides(model_dir):
    judge = CrossEncoderVerifier(model_dir, threshold=0.5)
    p = judge.score("is it open on sunday", "is it open sundays")
    assert 0.0 < p < 1.0
    assert (
        CrossEncoderVerifier(model_dir, threshold=min(0.999, p + 1e-6)).verify(
            "is it open on sunday", "is it open sundays", ""
        )
        is False
    )
    assert (
        CrossEncoderVerifier(model_dir, threshold=max(0.001, p - 1e-6)).verify(
            "is it open on sunday", "is it open sundays", ""
        )
        is True
    )


def test_pair_order_and_content_change_the_score(model_dir):
    judge = CrossEncoderVerifier(model_dir)
    assert judge.score("is it open", "the question") != judge.score("the question", "is it open")


@pytest.mark.parametrize("threshold", [0, 1, -0.2, True, "0.5"])
def test_bad_threshold(model_dir, threshold):
    with pytest.raises(ValueError, match="threshold"):
        CrossEncoderVerifier(model_dir, threshold=threshold)


def test_missing_files_are_named(tmp_path):
    with pytest.raises(ValueError, match=r"config\.json"):
        CrossEncoderVerifier(tmp_path)
