"""Local (self-hosted) tiers: $0 or hourly prices, marked local, counted in savings."""

from __future__ import annotations

import math

import pytest

from costopt_core.accounting import CostAccountant
from costopt_core.ledger import TokenUsage
from costopt_core.local_models import (
    LOCAL_SOURCE,
    LocalHost,
    is_local,
    price_status,
    set_hourly_cost,
)
from costopt_core.pricing import ModelPrice, PriceCatalog


@pytest.fixture
def catalog() -> PriceCatalog:
    return PriceCatalog(use_genai_prices=False)


def test_zero_cost_model_is_local_not_unpriced(catalog: PriceCatalog) -> None:
    price = set_hourly_cost("llama3.1:8b", catalog=catalog)
    assert (price.input, price.output, price.source) == (0.0, 0.0, LOCAL_SOURCE)
    assert catalog.get("llama3.1:8b") == price
    assert price_status(price) == "local"
    assert price_status(catalog.get("nobody-knows")) == "unpriced"
    user = catalog.set_price("api-model", input_per_token=1e-6, output_per_token=2e-6)
    assert price_status(user) == "priced" and not is_local(user)


def test_hourly_cost_spread_over_busy_tokens(catalog: PriceCatalog) -> None:
    # $3.60/h = $0.001/s; 100 tok/s out, 1000 tok/s in.
    price = set_hourly_cost(
        "m", usd_per_hour=3.6, tokens_per_second=100, input_tokens_per_second=1000, catalog=catalog
    )
    assert math.isclose(price.output, 1e-5) and math.isclose(price.input, 1e-6)
    assert price.source == "local: $3.60/h, 100 tok/s out, 1000 tok/s in"
    half_busy = set_hourly_cost(
        "m2", usd_per_hour=3.6, tokens_per_second=100, utilization=0.5, catalog=catalog
    )
    # An idle half costs the same: each busy token carries twice the price.
    assert math.isclose(half_busy.output, 2e-5) and math.isclose(half_busy.input, 2e-5)
    assert half_busy.source.endswith("busy 50%")
    # One request's price equals the host seconds it takes, at the hourly rate.
    host = LocalHost(3.6, 100, 1000)
    seconds = host.seconds_per_request(2000, 300)
    assert math.isclose(price.cost(input_tokens=2000, output_tokens=300), seconds * 0.001)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"usd_per_hour": -1}, "usd_per_hour must be a finite number >= 0"),
        ({"usd_per_hour": float("nan")}, "usd_per_hour must be a finite number >= 0"),
        ({"usd_per_hour": True}, "usd_per_hour must be a finite number >= 0"),
        ({"usd_per_hour": 2.0}, "tokens_per_second is needed"),
        ({"usd_per_hour": 2.0, "tokens_per_second": 0}, "tokens_per_second must be"),
        ({"usd_per_hour": 2.0, "tokens_per_second": "fast"}, "tokens_per_second must be"),
        ({"tokens_per_second": 5, "input_tokens_per_second": -3}, "input_tokens_per_second"),
        ({"input_tokens_per_second": 30}, "input_tokens_per_second needs tokens_per_second"),
        ({"usd_per_hour": 1, "tokens_per_second": 5, "utilization": 0}, "utilization must be"),
        ({"usd_per_hour": 1, "tokens_per_second": 5, "utilization": 1.5}, r"utilization must"),
    ],
)
def test_bad_arguments_name_themselves(catalog: PriceCatalog, kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        set_hourly_cost("m", catalog=catalog, **kwargs)
    assert catalog.get("m") is None


def test_set_price_source_is_checked(catalog: PriceCatalog) -> None:
    with pytest.raises(ValueError, match="source must be a non-empty str"):
        catalog.set_price("m", input_per_token=0, output_per_token=0, source="")
    assert catalog.set_price("m", input_per_token=0, output_per_token=0).source == "user"


def test_capacity_and_daily_cost() -> None:
    host = LocalHost(usd_per_hour=1.2, tokens_per_second=40, input_tokens_per_second=400)
    assert host.daily_cost == pytest.approx(28.8)
    assert host.requests_per_day_capacity(1000, 200) == pytest.approx(86_400 / 7.5)
    assert LocalHost().requests_per_day_capacity(1000, 200) is None
    assert LocalHost(0.0, 10).requests_per_day_capacity(0, 0) == math.inf


def test_routing_to_a_local_tier_saves_the_baseline_cost(catalog: PriceCatalog) -> None:
    catalog.set_price("api-strong", input_per_token=3e-6, output_per_token=15e-6)
    set_hourly_cost("local-8b", catalog=catalog)
    acct = CostAccountant(catalog=catalog)
    record = acct.record_call(
        "local-8b",
        TokenUsage(1000, 500),
        tier="local",
        router_models=["local-8b", "api-strong"],
    )
    assert record.cost_usd == 0.0  # priced (local), not None (unpriced)
    assert record.saved_usd == pytest.approx(1000 * 3e-6 + 500 * 15e-6)
    report = acct.to_dict()
    assert report["unpriced_models"] == []
    assert report["models"]["local-8b"]["cost_usd"] == 0.0


def test_model_price_of_a_local_model_round_trips() -> None:
    price = ModelPrice(0.0, 0.0, source=LocalHost().label(), model="x")
    assert is_local(price) and price_status(price) == "local"
    assert not is_local(ModelPrice(0.0, 0.0, source="localish"))
