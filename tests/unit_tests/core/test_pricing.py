"""Pricing catalog and the seed's estimate_cost."""

from __future__ import annotations

import json
import random

import pytest

from costopt_core.classify import estimate_cost
from costopt_core.pricing import (
    SEED_MODELS,
    ModelPrice,
    PriceCatalog,
    get_price,
    set_price,
)

# The seed's table, as printed (USD per 1K tokens).
SEED_TABLE = {
    "simple": ("deepseek-v3", 0.00014, 0.00028),
    "medium": ("gpt-4o-mini", 0.00015, 0.0006),
    "complex": ("claude-3.5-sonnet", 0.003, 0.015),
}


def seed_estimate_cost(prompt: str, tier: str, est_output_tokens: int = 500) -> dict:
    """The seed's ModelRouter.estimate_cost, given the tier its classify picked."""
    name, input_per_1k, output_per_1k = SEED_TABLE[tier]
    input_tokens = len(prompt) // 2
    input_cost = (input_tokens / 1000) * input_per_1k
    output_cost = (est_output_tokens / 1000) * output_per_1k
    return {
        "model": name,
        "input_tokens": input_tokens,
        "output_tokens": est_output_tokens,
        "total_cost": round(input_cost + output_cost, 6),
    }


TIER_HEADS = [("请翻译", "simple"), ("你好", "medium"), ("分析比较", "complex")]


def sampled_calls(head: str) -> list[tuple[str, int]]:
    rng = random.Random(7)
    return [
        (head + "字" * rng.randint(0, 3990), rng.choice([0, 1, 137, 500, 2000, 8191]))
        for _ in range(400)
    ]


@pytest.mark.parametrize(("head", "tier"), TIER_HEADS)
def test_estimate_cost_follows_the_seeds_formula(head: str, tier: str) -> None:
    for prompt, out in sampled_calls(head):
        ours, seeds = estimate_cost(prompt, out), seed_estimate_cost(prompt, tier, out)
        assert {k: v for k, v in ours.items() if k != "total_cost"} == {
            k: v for k, v in seeds.items() if k != "total_cost"
        }
        assert ours["total_cost"] == pytest.approx(seeds["total_cost"], abs=1.01e-6)
    assert estimate_cost(head)["output_tokens"] == 500


@pytest.mark.parametrize(("head", "tier"), TIER_HEADS)
def test_estimate_cost_equals_the_seed_to_the_last_digit(head: str, tier: str) -> None:
    for prompt, out in sampled_calls(head):
        assert estimate_cost(prompt, out) == seed_estimate_cost(prompt, tier, out), len(prompt)


def test_estimate_cost_of_a_long_prompt_uses_the_complex_model() -> None:
    prompt = "翻译" + "a" * 4000  # 4002 chars: over the seed's 2000-token limit
    assert estimate_cost(prompt) == seed_estimate_cost(prompt, "complex")


def test_estimate_cost_rejects_bad_output_tokens() -> None:
    with pytest.raises(ValueError, match="est_output_tokens"):
        estimate_cost("hi", -1)


def test_seed_models_are_the_seeds_table() -> None:
    for tier, (name, input_per_1k, output_per_1k) in SEED_TABLE.items():
        assert SEED_MODELS[tier]["model"] == name
        price = get_price(name)
        assert price is not None
        assert price.input * 1000 == pytest.approx(input_per_1k)
        assert price.output * 1000 == pytest.approx(output_per_1k)


@pytest.mark.parametrize(
    "model",
    [
        "gpt-4o",
        "gpt-4o-mini",
        "gpt-4.1",
        "o3",
        "o4-mini",
        "claude-sonnet-4-5",
        "claude-opus-4",
        "claude-3-5-haiku",
        "gemini-2.5-pro",
        "gemini-2.0-flash",
        "deepseek-chat",
        "deepseek-reasoner",
        "openai/gpt-4o",
    ],
)
def test_current_major_models_have_non_zero_prices(model: str) -> None:
    price = get_price(model)
    assert price is not None, model
    assert price.input > 0 and price.output > 0
    assert price.output >= price.input  # every major provider charges more for output
    assert price.source.startswith("genai-prices:")


def test_cached_input_is_cheaper_than_input_where_priced() -> None:
    for model in ("gpt-4o", "claude-sonnet-4-5", "gemini-2.5-pro"):
        price = get_price(model)
        assert price.cache_read is not None and 0 < price.cache_read < price.input
    assert get_price("claude-sonnet-4-5").cache_write > get_price("claude-sonnet-4-5").input


def test_unknown_model_has_no_price() -> None:
    assert get_price("no-such-model-anywhere-1234") is None
    assert get_price("") is None
    assert get_price(None) is None


def test_cost_follows_langchain_token_conventions() -> None:
    price = ModelPrice(input=1.0, output=10.0, cache_read=0.1, cache_write=2.0, reasoning=20.0)
    # 100 input tokens of which 30 cache reads and 10 cache writes; 50 output of which
    # 20 reasoning.
    cost = price.cost(100, 50, cache_read_tokens=30, cache_write_tokens=10, reasoning_tokens=20)
    assert cost == pytest.approx(60 * 1.0 + 30 * 0.1 + 10 * 2.0 + 30 * 10.0 + 20 * 20.0)
    plain = ModelPrice(input=1.0, output=10.0)  # cache and reasoning billed as input/output
    assert plain.cost(100, 50, cache_read_tokens=30, reasoning_tokens=20) == pytest.approx(600.0)


def test_model_price_rejects_negative_or_missing_prices() -> None:
    with pytest.raises(ValueError, match="input"):
        ModelPrice(input=-1.0, output=1.0)
    with pytest.raises(ValueError, match="output is required"):
        ModelPrice(input=1.0, output=None)  # type: ignore[arg-type]


def test_set_price_overrides_the_database_case_insensitively() -> None:
    catalog = PriceCatalog()
    assert catalog.get("gpt-4o").source.startswith("genai-prices")
    catalog.set_price("GPT-4o", input_per_token=1e-6, output_per_token=2e-6)
    price = catalog.get("gpt-4o")
    assert (price.input, price.output, price.source) == (1e-6, 2e-6, "user")
    catalog.clear_overrides()
    assert catalog.get("gpt-4o").source.startswith("genai-prices")
    with pytest.raises(ValueError, match="model"):
        catalog.set_price("  ", input_per_token=1.0, output_per_token=1.0)


def test_module_set_price_registers_a_model_for_the_process() -> None:
    assert get_price("costopt-test-finetune-7") is None
    set_price("costopt-test-finetune-7", input_per_token=1e-6, output_per_token=3e-6)
    assert get_price("costopt-test-finetune-7").cost(1000, 1000) == pytest.approx(0.004)


def test_litellm_json_loads_token_prices(tmp_path) -> None:
    data = {
        "sample_spec": {"input_cost_per_token": 0, "output_cost_per_token": 0},
        "my-llm": {
            "input_cost_per_token": 2e-6,
            "output_cost_per_token": 8e-6,
            "cache_read_input_token_cost": 5e-7,
            "cache_creation_input_token_cost": 2.5e-6,
            "output_cost_per_reasoning_token": 9e-6,
            "max_tokens": 8192,
        },
        "gpt-4o": {"input_cost_per_token": 9e-6, "output_cost_per_token": 9e-5},
        "some-image-model": {"output_cost_per_image": 0.04},
    }
    path = tmp_path / "model_prices_and_context_window.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    catalog = PriceCatalog()
    assert catalog.load_litellm_json(path) == 2
    mine = catalog.get("my-llm")
    assert (mine.input, mine.output, mine.cache_read, mine.cache_write, mine.reasoning) == (
        2e-6,
        8e-6,
        5e-7,
        2.5e-6,
        9e-6,
    )
    assert catalog.get("gpt-4o").input == 9e-6  # a loaded file overrides the database
    assert catalog.get("some-image-model") is None
    assert catalog.get("sample_spec") is None


def test_litellm_json_must_be_an_object(tmp_path) -> None:
    path = tmp_path / "prices.json"
    path.write_text("[1, 2]", encoding="utf-8")
    with pytest.raises(ValueError, match="JSON object"):
        PriceCatalog().load_litellm_json(path)


BAD_PRICES = [float("nan"), float("inf"), -float("inf"), -1e-6, "1e-6", True, None]
PRICE_ARGUMENTS = (
    "input_per_token",
    "output_per_token",
    "cache_read_per_token",
    "cache_write_per_token",
    "reasoning_per_token",
)


@pytest.mark.parametrize("argument", PRICE_ARGUMENTS)
@pytest.mark.parametrize("bad", BAD_PRICES, ids=repr)
def test_set_price_refuses_nan_infinite_or_negative_prices_naming_the_argument(
    argument: str, bad: object
) -> None:
    catalog = PriceCatalog(use_genai_prices=False)
    prices = {"input_per_token": 1e-6, "output_per_token": 2e-6, argument: bad}
    if bad is None and argument not in ("input_per_token", "output_per_token"):
        catalog.set_price("m", **prices)  # an optional price left out: billed as input/output
        return
    with pytest.raises(ValueError, match=rf"^{argument} must be a finite number >= 0"):
        catalog.set_price("m", **prices)
    assert catalog.get("m") is None  # nothing half-registered


def test_module_set_price_refuses_nan_so_totals_never_become_nan() -> None:
    with pytest.raises(ValueError, match="input_per_token"):
        set_price("costopt-test-nan-model", input_per_token=float("nan"), output_per_token=1e-6)
    assert get_price("costopt-test-nan-model") is None


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -1.0])
def test_model_price_refuses_non_finite_prices(bad: float) -> None:
    with pytest.raises(ValueError, match=r"ModelPrice\.output must be a finite number"):
        ModelPrice(input=1e-6, output=bad)


@pytest.mark.parametrize("bad", ["NaN", "Infinity", "-1e-06"])
def test_litellm_json_with_a_bad_price_is_refused_naming_the_model(tmp_path, bad: str) -> None:
    path = tmp_path / "prices.json"
    path.write_text(
        '{"good": {"input_cost_per_token": 1e-06, "output_cost_per_token": 2e-06},'
        f' "broken": {{"input_cost_per_token": {bad}, "output_cost_per_token": 2e-06}}}}',
        encoding="utf-8",
    )
    with pytest.raises(ValueError, match=r"model 'broken': input_per_token must be a finite"):
        PriceCatalog(use_genai_prices=False).load_litellm_json(path)


def test_a_price_pickled_without_its_resolved_rates_still_prices_calls() -> None:
    # Prices pickled by an earlier version hold no resolved rates (unpickling skips
    # __post_init__): they must price a call as a fresh one does.
    import copyreg
    import io
    import pickle

    price = ModelPrice(input=1e-6, output=2e-6, cache_read=1e-7, reasoning=3e-6)
    buffer = io.BytesIO()
    pickler = pickle.Pickler(buffer)
    pickler.dispatch_table = {
        ModelPrice: lambda p: (
            copyreg.__newobj__,
            (ModelPrice,),
            {k: v for k, v in vars(p).items() if k != "_rates"},
        )
    }
    pickler.dump(price)
    old = pickle.loads(buffer.getvalue())
    assert old == price
    assert old.cost(1000, 200, 400, 0, 50) == price.cost(1000, 200, 400, 0, 50)
    assert old.bill((1000, 200, 400, 0, 50)) == price.bill((1000, 200, 400, 0, 50))
