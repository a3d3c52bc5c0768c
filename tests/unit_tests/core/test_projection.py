"""Monthly projections, the seed's budget table, and ``costopt estimate``."""

from __future__ import annotations

import json

import pytest

from costopt_core import set_price
from costopt_core.cli import main
from costopt_core.ledger import TokenUsage
from costopt_core.projection import (
    check_mix,
    format_seed_table,
    implied_complex_share,
    mixed_monthly_cost,
    monthly_cost,
    parse_mix,
    project_report,
    seed_budget_table,
    seed_prices,
)

set_price("proj-model", input_per_token=2e-6, output_per_token=5e-6)


def test_single_model_month_is_thirty_days_of_requests() -> None:
    p = monthly_cost(1000, 500, 200, "proj-model")
    assert p.cost_per_request == pytest.approx(500 * 2e-6 + 200 * 5e-6)
    assert p.daily_cost == pytest.approx(2.0)
    assert p.monthly_cost == pytest.approx(60.0)
    assert monthly_cost(1000, 500, 200, "proj-model", days=31).monthly_cost == pytest.approx(62)


def test_seed_rows_from_the_seed_prices() -> None:
    own = seed_prices()
    internal = monthly_cost(1000, 500, 200, "deepseek-v3", price=own["deepseek-v3"])
    assert internal.monthly_cost == pytest.approx(1000 * 30 * (500 * 0.14 + 200 * 0.28) / 1e6)
    support = monthly_cost(10_000, 800, 300, "gpt-4o-mini", price=own["gpt-4o-mini"])
    assert support.monthly_cost == pytest.approx(90.0)
    content = monthly_cost(5000, 1000, 2000, "claude-3.5-sonnet", price=own["claude-3.5-sonnet"])
    assert content.monthly_cost == pytest.approx(4950.0)


def test_mixed_routing_projection() -> None:
    mix = {"simple": 0.6, "medium": 0.3, "complex": 0.1}
    mixed = mixed_monthly_cost(5000, 1000, 2000, mix, prices=seed_prices())
    by_tier = {t["tier"]: t["monthly_cost"] for t in mixed.tiers}
    assert by_tier["simple"] == pytest.approx(63.0)
    assert by_tier["medium"] == pytest.approx(60.75)
    assert by_tier["complex"] == pytest.approx(495.0)
    assert mixed.monthly_cost == pytest.approx(618.75)
    custom = mixed_monthly_cost(100, 1000, 0, {"a": 1.0}, {"a": "proj-model"})
    assert custom.monthly_cost == pytest.approx(100 * 30 * 1000 * 2e-6)


def test_seed_table_says_which_figures_follow_from_the_seeds_prices() -> None:
    rows = seed_budget_table()
    assert [r.scenario for r in rows] == [
        "internal tool",
        "support bot",
        "content generation",
        "same + routing",
    ]
    assert [r.follows for r in rows] == [False, False, False, True]
    assert [round(r.seed_prices_usd, 2) for r in rows] == [3.78, 90.0, 4950.0, 618.75]
    assert "does NOT follow" in rows[1].note and "0.50x" in rows[1].note
    assert rows[3].note.startswith("follows under an assumed tier mix")
    # A mix under which the seed's figure does not follow says so in plain words.
    other = seed_budget_table(mix={"simple": 0.5, "medium": 0.3, "complex": 0.2})[3]
    assert other.note.startswith("does NOT follow from the assumed tier mix (the seed gives")
    text = format_seed_table(rows)
    assert "~2,700" in text and "4,950.00" in text


def test_implied_complex_share_reproduces_the_seed_figure() -> None:
    share = implied_complex_share(
        600, 5000, 1000, 2000, {"simple": 0.6, "medium": 0.3, "complex": 0.1}, prices=seed_prices()
    )
    assert share == pytest.approx(0.0961, abs=1e-4)
    rest = (1 - share) * (2 / 3 * 0.0007 + 1 / 3 * 0.00135)
    assert 5000 * 30 * (share * 0.033 + rest) == pytest.approx(600)


def test_bad_inputs_are_clear_errors() -> None:
    with pytest.raises(ValueError, match="sum to 1"):
        check_mix({"simple": 0.5, "complex": 0.4})
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        check_mix({"simple": 1.5, "complex": -0.5})
    with pytest.raises(ValueError, match="--mix"):
        parse_mix("simple:0.5")
    with pytest.raises(ValueError, match="no price known"):
        monthly_cost(1, 1, 1, "proj-unknown-model")
    with pytest.raises(ValueError, match="requests_per_day"):
        monthly_cost(-1, 1, 1, "proj-model")
    with pytest.raises(ValueError, match="no model given"):
        mixed_monthly_cost(1, 1, 1, {"tiny": 1.0})


def _report(span_seconds: float) -> dict:
    return {
        "total_cost": 3.0,
        "total_saved": 1.5,
        "unpriced_models": [],
        "first_timestamp": 1000.0,
        "last_timestamp": 1000.0 + span_seconds,
        "models": {
            "a": {
                "calls": 2,
                "cache_hits": 1,
                "cost_usd": 1.0,
                "saved_usd": 1.5,
                "status": "priced",
            },
            "b": {
                "calls": 3,
                "cache_hits": 0,
                "cost_usd": 2.0,
                "saved_usd": 0.0,
                "status": "priced",
            },
        },
    }


def test_project_report_at_a_given_rate() -> None:
    p = project_report(_report(10), requests_per_day=600)
    assert p["cost_per_request"] == pytest.approx(0.5)
    assert p["monthly_cost"] == pytest.approx(0.5 * 600 * 30)
    assert p["monthly_saved"] == pytest.approx(0.25 * 600 * 30)
    assert p["models"]["a"]["share_of_requests"] == pytest.approx(0.5)


def test_project_report_at_the_observed_rate() -> None:
    p = project_report(_report(86_400 / 100))  # 6 requests in 1/100 day
    assert p["requests_per_day"] == pytest.approx(600)
    with pytest.raises(ValueError, match="requests_per_day"):
        project_report(_report(5))
    with pytest.raises(ValueError, match="to_dict"):
        project_report({"total_cost": 1})


# -- the command line ----------------------------------------------------------------------


def test_cli_seed_table(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["estimate", "--seed-table"]) == 0
    out = capsys.readouterr().out
    assert "internal tool" in out and "3.78" in out and "NO" in out
    assert main(["estimate", "--seed-table", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows[3]["follows"] is True and rows[0]["seed_usd"] == 3.0
    # Another assumed mix changes only the routing row: all-complex is the unrouted cost.
    assert main(["estimate", "--seed-table", "--mix", "complex=1", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows[3]["seed_prices_usd"] == pytest.approx(4950.0) and not rows[3]["follows"]


def test_cli_single_model_and_mix(capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        main(
            [
                "estimate",
                "--requests-per-day",
                "1000",
                "--input-tokens",
                "500",
                "--output-tokens",
                "200",
                "--model",
                "proj-model",
                "--json",
            ]
        )
        == 0
    )
    assert json.loads(capsys.readouterr().out)["monthly_cost"] == pytest.approx(60.0)
    assert (
        main(
            [
                "estimate",
                "--requests-per-day",
                "100",
                "--input-tokens",
                "1000",
                "--output-tokens",
                "0",
                "--mix",
                "a=0.5,b=0.5",
                "--models",
                "a=proj-model,b=proj-model",
            ]
        )
        == 0
    )
    assert "$6.00" in capsys.readouterr().out


def test_cli_from_a_tracker_report(tmp_path, capsys: pytest.CaptureFixture[str]) -> None:  # type: ignore[no-untyped-def]
    from costopt_core.accounting import CostAccountant

    acct = CostAccountant()
    acct.record_call("proj-model", TokenUsage(1000, 200))
    path = tmp_path / "tracker.json"
    acct.to_json(path)
    assert (
        main(["estimate", "--from-report", str(path), "--requests-per-day", "100", "--json"]) == 0
    )
    data = json.loads(capsys.readouterr().out)
    assert data["monthly_cost"] == pytest.approx(0.003 * 100 * 30)


def test_cli_errors_exit_2(capsys: pytest.CaptureFixture[str], tmp_path) -> None:  # type: ignore[no-untyped-def]
    assert main(["estimate", "--model", "proj-model"]) == 2
    assert "--requests-per-day" in capsys.readouterr().err
    assert main(["estimate"]) == 2
    assert "exactly one" in capsys.readouterr().err
    bad = tmp_path / "bad.json"
    bad.write_text("not json")
    assert main(["estimate", "--from-report", str(bad)]) == 2
    assert "not JSON" in capsys.readouterr().err
