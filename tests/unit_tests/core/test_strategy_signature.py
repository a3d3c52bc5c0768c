"""strategy_signature (part of a router's cache key): strategies that route differently
get different signatures; equal strategies get equal ones, in any process."""

from __future__ import annotations

import functools
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from costopt_core import as_strategy, get_strategy, strategy_signature
from costopt_core.cascade import CascadeStrategy
from costopt_core.fingerprint import callable_fingerprint
from costopt_core.hashing import HashingEmbedder
from costopt_core.knn import KNNStrategy
from costopt_core.learned import load_router
from costopt_core.logistic import LogisticStrategy
from costopt_core.zero_shot import ZeroShotStrategy

PROMPTS = ["hi", "hello", "prove the theorem", "design a system", "thanks", "derive it"] * 3
EASY_IS_CHEAP = [0, 0, 1, 1, 0, 1] * 3
EASY_IS_STRONG = [1 - label for label in EASY_IS_CHEAP]


def signature_of(strategy: Any) -> str:
    return strategy_signature(as_strategy(strategy))


def tier_picker(tier: str) -> Any:
    return lambda text: tier


class Model:
    """Stands for anything a strategy may close over that is not plain data."""


def test_lambdas_that_pick_different_tiers_differ_and_equal_ones_agree() -> None:
    assert signature_of(lambda text: "cheap") != signature_of(lambda text: "strong")
    assert signature_of(lambda text: "cheap") == signature_of(lambda text: "cheap")
    assert signature_of(lambda t: t.lower()) != signature_of(lambda t: t.upper())


def test_closures_and_defaults_are_part_of_the_signature() -> None:
    assert signature_of(tier_picker("cheap")) != signature_of(tier_picker("strong"))
    assert signature_of(tier_picker("cheap")) == signature_of(tier_picker("cheap"))

    def pick(text: str, tier: str = "cheap") -> str:
        return tier

    assert signature_of(functools.partial(pick, tier="strong")) != signature_of(pick)
    assert signature_of(lambda text, tier="a": tier) != signature_of(lambda text, tier="b": tier)


def test_a_callable_over_an_object_is_unique_but_stays_equal_to_itself() -> None:
    def over(model: Model) -> Any:
        return lambda text: "cheap" if model else "strong"

    first, second = over(Model()), over(Model())
    assert callable_fingerprint(first) != callable_fingerprint(second)
    assert signature_of(first) == signature_of(first)


def test_a_strategys_callable_settings_count() -> None:
    def short(answer: str) -> bool:
        return len(answer) < 10

    def has_digit(answer: str) -> bool:
        return any(c.isdigit() for c in answer)

    assert signature_of(CascadeStrategy(short)) != signature_of(CascadeStrategy(has_digit))
    assert signature_of(CascadeStrategy(pattern="a+")) != signature_of(
        CascadeStrategy(pattern="b+")
    )


def test_dict_settings_count() -> None:
    assert signature_of(ZeroShotStrategy()) == signature_of(ZeroShotStrategy())
    assert signature_of(ZeroShotStrategy()) != signature_of(ZeroShotStrategy(weights={"code": 0}))


@pytest.mark.parametrize("kind", [KNNStrategy, LogisticStrategy])
def test_learned_strategies_fitted_on_different_labels_differ(kind: Any) -> None:
    def fitted(labels: list[int]) -> Any:
        return kind(HashingEmbedder(), tiers=("cheap", "strong")).fit(PROMPTS, labels)

    cheap, strong = fitted(EASY_IS_CHEAP), fitted(EASY_IS_STRONG)
    assert cheap.route("hello").tier != strong.route("hello").tier
    assert signature_of(cheap) != signature_of(strong)
    assert signature_of(cheap) == signature_of(fitted(EASY_IS_CHEAP))


def knn_file(folder: Path, suffix: str) -> Path:
    router = KNNStrategy(HashingEmbedder(), tiers=("cheap", "strong"))
    return router.fit(PROMPTS, EASY_IS_CHEAP).save(folder / f"router{suffix}")


@pytest.mark.parametrize("suffix", [".npz", ".json"])
def test_a_saved_router_loads_with_the_signature_it_was_fitted_with(
    tmp_path: Path, suffix: str
) -> None:
    path = knn_file(tmp_path, suffix)
    fitted = KNNStrategy(HashingEmbedder(), tiers=("cheap", "strong")).fit(PROMPTS, EASY_IS_CHEAP)
    assert signature_of(load_router(path)) == signature_of(fitted)


def test_signatures_are_the_same_in_another_process(tmp_path: Path) -> None:
    # What a persistent cache needs to hit after a restart: the same trained file, the
    # default strategy and the same function give the same signature there.
    path = knn_file(tmp_path, ".npz")
    script = (
        "import sys\n"
        "from costopt_core import as_strategy, get_strategy, strategy_signature\n"
        "from costopt_core.learned import load_router\n"
        "from tests.unit_tests.core.test_strategy_signature import tier_picker\n"
        "print(strategy_signature(load_router(sys.argv[1])))\n"
        "print(strategy_signature(get_strategy('default')))\n"
        "print(strategy_signature(as_strategy(tier_picker('cheap'))))\n"
    )
    printed = subprocess.run(
        [sys.executable, "-c", script, str(path)],
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONHASHSEED": "12345"},  # another seed: set order and str hashes differ
        cwd=Path(__file__).resolve().parents[3],
    ).stdout.splitlines()
    assert printed == [
        signature_of(load_router(path)),
        signature_of(get_strategy("default")),
        signature_of(tier_picker("cheap")),
    ]
