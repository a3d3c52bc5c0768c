"""Break-even of a self-hosted tier and the distillation projection, engine and CLI."""

from __future__ import annotations

import json
import math

import pytest

from costopt_core.cli import main
from costopt_core.lever_projections import (
    break_even,
    distillation_projection,
    format_break_even,
    format_distillation,
)
from costopt_core.local_models import LocalHost
from costopt_core.pricing import ModelPrice, set_price

HOST = LocalHost(usd_per_hour=1.0, tokens_per_second=100, input_tokens_per_second=1000)


@pytest.fixture(autouse=True)
def _prices() -> None:
    set_price("lever-strong", input_per_token=10e-6, output_per_token=30e-6)
    set_price("lever-cheap", input_per_token=1e-6, output_per_token=2e-6)


def test_break_even_is_daily_host_cost_over_api_price() -> None:
    # 1000 in + 200 out: host 1 s + 2 s = 3 s/request -> 28,800 requests/day capacity.
    be = break_even(HOST, 0.012, 5000, 1000, 200, api="lever-strong")
    assert be.break_even_requests_per_day == pytest.approx(24 / 0.012)
    assert be.capacity_requests_per_day == pytest.approx(28_800)
    assert be.reachable and be.hosts_needed == 1
    assert be.api_monthly_cost == pytest.approx(0.012 * 5000 * 30)
    assert be.local_monthly_cost == pytest.approx(24 * 30)
    assert be.monthly_saving == pytest.approx(1800 - 720)
    text = format_break_even(be)
    assert "beats lever-strong ($0.012000/request) from 2,000 requests/day" in text
    assert "local saves $1,080.00/month" in text


def test_more_traffic_than_one_host_serves_needs_more_hosts() -> None:
    be = break_even(HOST, 0.012, 60_000, 1000, 200)
    assert be.hosts_needed == 3  # 60,000 / 28,800 rounded up
    assert be.local_monthly_cost == pytest.approx(3 * 24 * 30)


def test_unreachable_break_even_is_said() -> None:
    be = break_even(HOST, 0.0005, 1000, 1000, 200)  # 48,000/day needed, 28,800 served
    assert not be.reachable
    text = format_break_even(be)
    assert "would beat" in text and "unreachable on one host" in text
    assert "local costs more by" in text


def test_free_host_and_free_api_edges() -> None:
    free = break_even(LocalHost(), 0.01, 100, 10, 10)
    assert free.break_even_requests_per_day == 0 and free.local_monthly_cost == 0
    assert "at any load" in format_break_even(free)
    never = break_even(HOST, 0.0, 100, 10, 10)
    assert never.break_even_requests_per_day == math.inf and not never.reachable
    assert "never" in format_break_even(never)
    with pytest.raises(ValueError, match="api_cost_per_request must be"):
        break_even(HOST, -1, 100, 10, 10)
    with pytest.raises(ValueError, match="days must be an int >= 1"):
        break_even(HOST, 0.1, 100, 10, 10, days=0)


def test_distillation_moves_a_share_of_the_strong_tier() -> None:
    strong = 1000 * 10e-6 + 200 * 30e-6  # 0.016
    cheap = 1000 * 1e-6 + 200 * 2e-6  # 0.0014
    d = distillation_projection(
        1000,
        1000,
        200,
        strong_model="lever-strong",
        distilled_model="lever-cheap",
        share=0.25,
        strong_share=0.2,
        other_monthly_cost=50.0,
        training_usd=100.0,
    )
    assert d.strong_requests_per_day == pytest.approx(200)
    assert d.moved_requests_per_day == pytest.approx(50)
    assert d.monthly_cost_before == pytest.approx(50 + strong * 200 * 30)
    assert d.monthly_saving == pytest.approx((strong - cheap) * 50 * 30)
    assert d.payback_months == pytest.approx(100 / ((strong - cheap) * 50 * 30))
    assert "paid back in" in format_distillation(d)


def test_distilled_price_overrides_the_catalog_and_bad_shares_are_refused() -> None:
    d = distillation_projection(
        100,
        1000,
        0,
        strong_model="lever-strong",
        distilled_model="my-finetune",
        share=1.0,
        distilled_price=ModelPrice(20e-6, 0.0, source="given"),
        training_usd=10.0,
    )
    assert d.monthly_saving < 0 and d.payback_months is None
    assert d.distilled_price_source == "given"
    assert "never paid back" in format_distillation(d)
    with pytest.raises(ValueError, match="share and strong_share must be in"):
        distillation_projection(
            1, 1, 1, strong_model="lever-strong", distilled_model="lever-cheap", share=1.5
        )
    with pytest.raises(ValueError, match="no price known for model 'nope'"):
        distillation_projection(
            1, 1, 1, strong_model="lever-strong", distilled_model="nope", share=0.5
        )


BASE = ["estimate", "--requests-per-day", "1000", "--input-tokens", "1000"]


def test_cli_break_even_and_distillation_lines(capsys: pytest.CaptureFixture[str]) -> None:
    args = [*BASE, "--output-tokens", "200", "--model", "lever-strong"]
    assert main([*args, "--local-usd-per-hour", "1", "--local-tokens-per-second", "100"]) == 0
    out = capsys.readouterr().out
    assert "break-even: a self-hosted model at $1.00/h" in out
    assert main([*args, "--distill-share", "0.5", "--distilled-model", "lever-cheap"]) == 0
    assert "distillation: moving 50% of lever-strong's 1,000 requests/day" in (
        capsys.readouterr().out
    )


def test_cli_mix_distils_the_last_tier_and_prints_json(
    capsys: pytest.CaptureFixture[str],
) -> None:
    args = [
        *BASE,
        "--output-tokens",
        "200",
        "--mix",
        "cheap=0.8,strong=0.2",
        "--models",
        "cheap=lever-cheap,strong=lever-strong",
        "--distill-share",
        "0.5",
        "--distilled-model",
        "lever-cheap",
        "--local-usd-per-hour",
        "0",
        "--json",
    ]
    assert main(args) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["distillation"]["strong_model"] == "lever-strong"
    assert data["distillation"]["strong_requests_per_day"] == pytest.approx(200)
    assert data["break_even"]["break_even_requests_per_day"] == 0
    assert data["monthly_cost"] == pytest.approx(data["distillation"]["monthly_cost_before"])


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--model", "lever-strong", "--local-tokens-per-second", "5"], "needs --local-usd"),
        (["--model", "lever-strong", "--distill-share", "0.5"], "needs --distill-share and"),
        (
            [
                "--model",
                "lever-strong",
                "--distill-share",
                "1",
                "--distilled-model",
                "x",
                "--distilled-price",
                "cheap",
            ],
            "--distilled-price must be 'IN,OUT'",
        ),
        (
            [
                "--mix",
                "a=1",
                "--models",
                "a=lever-cheap",
                "--strong-tier",
                "b",
                "--distill-share",
                "1",
                "--distilled-model",
                "lever-cheap",
            ],
            "--strong-tier 'b'",
        ),
        (["--model", "lever-strong", "--local-usd-per-hour", "2"], "tokens_per_second is needed"),
    ],
)
def test_cli_lever_errors_exit_2(
    extra: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([*BASE, "--output-tokens", "200", *extra]) == 2
    assert message in capsys.readouterr().err


def test_cli_lever_options_need_a_model_or_mix(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["estimate", "--seed-table", "--distill-share", "0.5"]) == 2
    assert "go with --model or --mix" in capsys.readouterr().err
