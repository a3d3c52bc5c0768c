"""Framework-free accounting: usage parsing, exact prices, savings, budgets, reports."""

from __future__ import annotations

import csv
import io
import json
import logging
import time
import uuid

import pytest

from costopt_core import set_price
from costopt_core.accounting import (
    AccountantViews,
    BudgetWarning,
    CallText,
    CostAccountant,
    CostHandlerBase,
    build_budgets,
    usage_from_mapping,
)
from costopt_core.budget_gate import CallQuote
from costopt_core.cost_report import RecordBreakdown, format_report, report_dict
from costopt_core.ledger import (
    Budget,
    BudgetExceededError,
    CostLedger,
    CostRecord,
    TokenUsage,
    summarize,
)
from costopt_core.levers import (
    BATCH,
    COMPRESSION,
    LEVERS,
    PROVIDER_CACHE,
    ROUTING,
    lever_savings,
)

# Made-up models with round prices (USD per token), so every figure is exact by hand.
set_price(
    "acct-cheap",
    input_per_token=1e-6,
    output_per_token=4e-6,
    cache_read_per_token=1e-7,
    cache_write_per_token=2e-6,
    reasoning_per_token=8e-6,
)
set_price("acct-mid", input_per_token=3e-6, output_per_token=6e-6)
set_price("acct-strong", input_per_token=1e-5, output_per_token=3e-5)


def _unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


# -- usage parsing ------------------------------------------------------------------------


def test_langchain_usage_metadata_with_details() -> None:
    usage = usage_from_mapping(
        {
            "input_tokens": 1000,
            "output_tokens": 300,
            "total_tokens": 1300,
            "input_token_details": {"cache_read": 600, "cache_creation": 100},
            "output_token_details": {"reasoning": 200},
        }
    )
    assert usage == TokenUsage(1000, 300, 600, 100, 200)


def test_openai_token_usage() -> None:
    usage = usage_from_mapping(
        {
            "prompt_tokens": 50,
            "completion_tokens": 20,
            "total_tokens": 70,
            "prompt_tokens_details": {"cached_tokens": 30},
            "completion_tokens_details": {"reasoning_tokens": 5},
        }
    )
    assert usage == TokenUsage(50, 20, 30, 0, 5)


def test_anthropic_raw_usage_adds_cache_tokens_to_input() -> None:
    usage = usage_from_mapping(
        {
            "input_tokens": 10,
            "output_tokens": 4,
            "cache_read_input_tokens": 90,
            "cache_creation_input_tokens": 5,
        }
    )
    assert usage == TokenUsage(105, 4, 90, 5, 0)


def test_gemini_and_bedrock_usage() -> None:
    gemini = usage_from_mapping(
        {
            "prompt_token_count": 12,
            "candidates_token_count": 7,
            "thoughts_token_count": 3,
            "cached_content_token_count": 2,
        }
    )
    assert gemini == TokenUsage(12, 10, 2, 0, 3)
    assert usage_from_mapping({"inputTokens": 8, "outputTokens": 2}) == TokenUsage(8, 2)


def test_no_usage_and_impossible_details() -> None:
    assert usage_from_mapping(None) is None
    assert usage_from_mapping({}) is None
    assert usage_from_mapping({"finish_reason": "stop"}) is None
    clipped = usage_from_mapping(
        {
            "input_tokens": 5,
            "output_tokens": 1,
            "input_token_details": {"cache_read": 9},
            "output_token_details": {"reasoning": 4},
        }
    )
    assert clipped == TokenUsage(5, 1, 5, 0, 1)
    odd_details = usage_from_mapping(
        {
            "input_tokens": 10,
            "output_tokens": 2,
            "input_token_details": {"cache_read": None, "cache_creation": 3.0},
            "output_token_details": "not a mapping",
        }
    )
    assert odd_details == TokenUsage(10, 2, 0, 3, 0)
    # Counts that are not plain ints >= 0 are never priced as such.
    assert usage_from_mapping({"input_tokens": True, "output_tokens": 2}) == TokenUsage(0, 2)
    assert usage_from_mapping({"input_tokens": -4, "output_tokens": 2.0}) == TokenUsage(0, 2)


# -- pricing ------------------------------------------------------------------------------


def test_call_cost_includes_cache_and_reasoning_prices() -> None:
    acct = CostAccountant()
    record = acct.record_call("acct-cheap", TokenUsage(1000, 300, 600, 100, 200))
    # plain in 300 x 1e-6 + read 600 x 1e-7 + write 100 x 2e-6 + plain out 100 x 4e-6
    # + reasoning 200 x 8e-6
    expected = 300e-6 + 60e-6 + 200e-6 + 400e-6 + 1600e-6
    assert record.cost_usd == pytest.approx(expected, rel=1e-12)
    assert acct.total_cost == pytest.approx(0.00256, rel=1e-12)
    # Not routed: what it saved is the provider cache's part alone, against plain input
    # (1000 input tokens at 1e-6 = 1000e-6 against 560e-6 billed for the same input).
    assert record.saved_usd == pytest.approx(440e-6, rel=1e-9)
    assert lever_savings(record) == {PROVIDER_CACHE: pytest.approx(440e-6, rel=1e-9)}
    assert acct.to_dict()["saved_provider_cache_usd"] == pytest.approx(440e-6, rel=1e-9)
    assert acct.to_dict()["saved_routing_usd"] == 0.0
    plain = acct.record_call("acct-cheap", TokenUsage(1000, 300))
    assert plain.saved_usd == 0.0 and plain.baseline_model is None  # no lever, no saving


def test_each_lever_saving_is_counted_once_and_adds_up_to_the_total() -> None:
    # A routed call (cheap instead of strong) with 200 tokens compressed away, 600 of
    # its input read from the provider's cache, and sent through a batch API.
    acct = CostAccountant()
    usage = TokenUsage(1000, 300, 600)
    record = acct.record_call(
        "acct-cheap",
        usage,
        tier="cheap",
        router_models=["acct-cheap", "acct-strong"],
        compressed_tokens=200,
        batch=True,
    )
    cheap = acct.price_of("acct-cheap")
    strong = acct.price_of("acct-strong")
    assert cheap is not None and strong is not None
    full = TokenUsage(1200, 300)
    billed = cheap.cost(1000, 300, 600) * (1 - cheap.batch_discount)
    assert record.cost_usd == pytest.approx(billed, rel=1e-12)
    assert record.baseline_cost_usd == pytest.approx(strong.cost(1200, 300), rel=1e-12)
    parts = lever_savings(record)
    assert parts[ROUTING] == pytest.approx(strong.cost(1200, 300) - cheap.cost(1200, 300))
    assert parts[COMPRESSION] == pytest.approx(200 * cheap.input)
    assert parts[PROVIDER_CACHE] == pytest.approx(
        cheap.cost(1000, 300) - cheap.cost(1000, 300, 600)
    )
    assert parts[BATCH] == pytest.approx(cheap.cost(1000, 300, 600) - billed)
    assert sum(parts.values()) == pytest.approx(record.saved_usd)
    assert full.input_tokens == 1200
    data = acct.to_dict()
    levers = sum(data[f"saved_{lever}_usd"] for lever in LEVERS)
    assert levers == pytest.approx(data["total_saved"])
    assert "batch" in acct.report() and "compression" in acct.report()


@pytest.mark.parametrize("max_records", [0, 7, 1000])
def test_the_levers_add_up_to_the_total_after_old_records_are_dropped(max_records: int) -> None:
    # Past max_records the split per lever was read from the kept records only: 5,000
    # routed calls kept 1,000 and showed a fifth of the routing saving (audit).
    acct = CostAccountant(ledger=CostLedger(max_records=max_records))
    cheap = _unique("acct-lever")  # its "no usage" warning is its own (warned once)
    set_price(cheap, input_per_token=1e-6, output_per_token=2e-6, cache_read_per_token=1e-7)
    for i in range(40):
        acct.record_call(
            cheap,
            TokenUsage(100, 30),
            tier="cheap",
            router_models=[cheap, "acct-strong"],
        )
        acct.record_call_later(cheap, (100, 30, 60, 0, 0))  # a provider cache read
        if i % 4 == 0:
            acct.record_cache_hit(cheap, TokenUsage(100, 30))
            acct.record_call(cheap, None, text=CallText(["hello there"], "hi"))
    acct.ledger.records()  # the deferred ones built (and dropped past the limit)
    data = acct.to_dict()
    levers = {lever: data[f"saved_{lever}_usd"] for lever in LEVERS}
    assert levers[ROUTING] > 0 and levers[PROVIDER_CACHE] > 0 and levers["cache"] > 0
    assert sum(levers.values()) == pytest.approx(data["total_saved"], rel=1e-9)
    assert data["estimated_calls"] == 10 and data["breakdown_complete"] is True


def test_unpriced_model_is_reported_not_zero_and_warned_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    model = _unique("no-such-model")
    acct = CostAccountant()
    with caplog.at_level(logging.WARNING, logger="costopt_core.accounting"):
        first = acct.record_call(model, TokenUsage(10, 5))
        acct.record_call(model, TokenUsage(1, 1))
    assert first.cost_usd is None
    warnings_for_model = [r for r in caplog.records if model in r.getMessage()]
    assert len(warnings_for_model) == 1
    data = acct.to_dict()
    assert data["unpriced_models"] == [model]
    assert data["models"][model]["cost_usd"] is None
    assert data["models"][model]["status"] == "unpriced"
    assert data["models"][model]["input_tokens"] == 11
    report = acct.report()
    assert "unpriced" in report and model in report


def test_a_call_without_usage_has_unknown_cost_not_zero(
    caplog: pytest.LogCaptureFixture,
) -> None:
    acct = CostAccountant()
    with caplog.at_level(logging.WARNING, logger="costopt_core.accounting"):
        record = acct.record_call("acct-cheap", None)
        acct.record_call("acct-cheap", None)
    assert record.cost_usd is None and record.input_tokens == 0
    assert len([r for r in caplog.records if "no token usage" in r.getMessage()]) == 1
    assert acct.to_dict()["unpriced_models"] == ["acct-cheap"]


# -- savings ------------------------------------------------------------------------------


def test_routed_call_saves_against_the_most_expensive_router_tier() -> None:
    acct = CostAccountant()
    record = acct.record_call(
        "acct-cheap",
        TokenUsage(1000, 500),
        tier="simple",
        router_models=["acct-cheap", "acct-mid", "acct-strong"],
    )
    assert record.baseline_model == "acct-strong"
    assert record.baseline_cost_usd == pytest.approx(0.025)
    assert record.saved_usd == pytest.approx(0.025 - 0.003)
    assert acct.total_saved == pytest.approx(0.022)


def test_named_baseline_wins_and_can_show_a_loss() -> None:
    acct = CostAccountant(baseline_model="acct-mid")
    record = acct.record_call(
        "acct-strong",
        TokenUsage(1000, 500),
        tier="complex",
        router_models=["acct-cheap", "acct-strong"],
    )
    assert record.baseline_model == "acct-mid"
    assert record.saved_usd == pytest.approx(0.006 - 0.025)  # routing up cost more


def test_without_router_tiers_the_baseline_is_the_most_expensive_model_seen() -> None:
    acct = CostAccountant()
    acct.record_call("acct-strong", TokenUsage(10, 10))  # unrouted: seen, saves nothing
    record = acct.record_call("acct-cheap", TokenUsage(1000, 500), tier="simple")
    assert record.baseline_model == "acct-strong"
    assert record.saved_usd == pytest.approx(0.022)


def test_cache_hit_is_saved_never_spent() -> None:
    acct = CostAccountant()
    hit = acct.record_cache_hit("acct-mid", TokenUsage(1000, 500))
    assert hit.cost_usd == 0.0 and hit.saved_usd == pytest.approx(0.006)
    hinted = acct.record_cache_hit("acct-mid", None, saved_hint_usd=0.5)
    assert hinted.saved_usd == 0.5
    unknown = acct.record_cache_hit("acct-mid", None)
    assert unknown.saved_usd is None
    summary = acct.summary()
    assert acct.total_cost == 0.0
    assert summary.cache_hits == 3 and summary.calls == 0
    assert acct.total_saved == pytest.approx(0.506)


def test_cascade_attempt_is_spend_and_negative_saving() -> None:
    acct = CostAccountant()
    attempt = acct.record_attempt("acct-cheap", TokenUsage(1000, 500), tier="simple")
    final = acct.record_call(
        "acct-strong",
        TokenUsage(1000, 500),
        tier="complex",
        router_models=["acct-cheap", "acct-strong"],
    )
    assert attempt.kind == "cascade_attempt"
    assert attempt.saved_usd == pytest.approx(-0.003)
    assert final.saved_usd == pytest.approx(0.0)
    assert acct.total_cost == pytest.approx(0.028)
    assert acct.total_saved == pytest.approx(-0.003)


# -- budgets ------------------------------------------------------------------------------


def test_constructor_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="on_budget"):
        CostAccountant(on_budget="stop")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="budget_usd"):
        CostAccountant(budget_usd=-1)
    with pytest.raises(ValueError, match="daily_budget_usd"):
        build_budgets(daily_budget_usd=float("inf"))
    with pytest.raises(TypeError, match="ledger"):
        CostAccountant(ledger=object())  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="Budget"):
        build_budgets(budgets=[1.0])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="baseline_model"):
        CostAccountant(baseline_model="")
    # These were accepted, then every call failed (catalog) or a record did (tags).
    with pytest.raises(TypeError, match="catalog must be a PriceCatalog"):
        CostAccountant(catalog={"gpt-4o-mini": 1})  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="budgets must be a list"):
        build_budgets(budgets=5)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="tags must be a mapping of str to str"):
        CostAccountant(tags=["team"])  # type: ignore[arg-type]


def test_raise_mode_refuses_the_call_that_would_pass_the_limit() -> None:
    acct = CostAccountant(budget_usd=0.007)
    for _ in range(2):
        reservation = acct.before_call()
        acct.record_call("acct-cheap", TokenUsage(1000, 500), reservation_id=reservation)
    # 0.006 spent; the next call is estimated at the largest call seen (0.003).
    with pytest.raises(BudgetExceededError) as info:
        acct.before_call()
    assert info.value.limit_usd == 0.007
    assert acct.total_cost == pytest.approx(0.006)


def test_warn_mode_warns_once_per_crossing_and_lets_calls_go() -> None:
    acct = CostAccountant(budget_usd=0.001, on_budget="warn")
    acct.record_call("acct-cheap", TokenUsage(1000, 500))
    with pytest.warns(BudgetWarning, match="budget exceeded"):
        assert acct.before_call() is None
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        acct.before_call()  # no second warning


def test_downgrade_admits_a_routed_call_on_its_cheapest_quote_never_past_the_budget() -> None:
    ledger = CostLedger()
    acct = CostAccountant(budget_usd=0.02, on_budget="downgrade", ledger=ledger)
    tiers = [CallQuote("acct-cheap", 1000, 500), CallQuote("acct-strong", 1000, 500)]
    # The strong tier's maximum ($0.025) cannot fit; the cheap one's ($0.003) can.
    reservation, downgraded = acct.admit(tiers, routed=True)
    assert reservation is not None and downgraded and acct.downgrade
    assert ledger.reserved_usd == pytest.approx(0.003)
    # A call that cannot be moved to a cheaper model is refused, never let through.
    with pytest.raises(BudgetExceededError):
        acct.admit(tiers[1:])
    ledger.record(CostRecord(model="acct-cheap", cost_usd=0.0185), reservation_id=reservation)
    with pytest.raises(BudgetExceededError):  # not even the cheap maximum is left
        acct.admit(tiers, routed=True)
    ledger.clear()
    assert acct.admit(tiers, routed=True)[1] is True  # the strong maximum never fits $0.02
    roomy = CostAccountant(budget_usd=0.03, on_budget="downgrade", ledger=ledger)
    assert roomy.admit(tiers, routed=True)[1] is False and roomy.downgrade is False


def test_raise_mode_refuses_the_maximum_before_the_call() -> None:
    acct = CostAccountant(budget_usd=0.02)
    with pytest.raises(BudgetExceededError, match=r"next call is estimated at \$0.025"):
        acct.admit([CallQuote("acct-strong", 1000, 500)])
    assert acct.admit([CallQuote("acct-cheap", 1000, 500)])[0] is not None


def test_a_failing_ledger_lets_calls_go_when_allowed(caplog: pytest.LogCaptureFixture) -> None:
    # on_ledger_error="allow": the old fail-open, chosen by the user (the default refuses:
    # see test_ledger_errors.py).
    class BrokenLedger(CostLedger):
        def reserve(self, *args, **kwargs):  # type: ignore[no-untyped-def]
            raise ConnectionError("database down")

    acct = CostAccountant(budget_usd=1.0, ledger=BrokenLedger(), on_ledger_error="allow")
    with caplog.at_level(logging.ERROR):
        for _ in range(50):
            assert acct.before_call() is None
            assert acct.admit_call("acct-cheap", 100, 10) is None
    # A ledger that stays down is logged in full once, not a traceback per call.
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1
    assert "budget check failed; the call goes ahead: database down" in errors[0].getMessage()


def test_budget_status_and_shared_ledger() -> None:
    ledger = CostLedger()
    one = CostAccountant(ledger=ledger, daily_budget_usd=1.0)
    two = CostAccountant(ledger=ledger)
    two.record_call("acct-strong", TokenUsage(1000, 500))
    assert one.total_cost == pytest.approx(0.025)
    (status,) = one.budget_status()
    assert status["period"] == "day" and status["remaining_usd"] == pytest.approx(0.975)
    assert not status["exceeded"]


def test_explicit_budgets_and_cancel() -> None:
    acct = CostAccountant(budgets=[Budget(0.01, "month")])
    reservation = acct.before_call()
    acct.cancel(reservation)
    acct.cancel(None)
    assert acct.ledger.reserved_usd == 0.0  # type: ignore[attr-defined]


# -- reports ------------------------------------------------------------------------------


def _sample() -> CostAccountant:
    acct = CostAccountant(baseline_model="acct-strong", budget_usd=1.0)
    acct.record_call("acct-cheap", TokenUsage(1000, 300, 600, 100, 200), tier="simple")
    acct.record_call("acct-mid", TokenUsage(1000, 500), tier="medium")
    acct.record_cache_hit("acct-mid", TokenUsage(1000, 500))
    return acct


def test_report_table_lists_models_totals_and_budget() -> None:
    text = _sample().report()
    lines = text.splitlines()
    assert lines[0].split()[:3] == ["model", "calls", "hits"]
    cheap = next(line for line in lines if line.startswith("acct-cheap"))
    assert cheap.split()[-2] == "0.002560"
    mid = next(line for line in lines if line.startswith("acct-mid"))
    assert mid.split()[1:3] == ["1", "1"] and mid.split()[-2] == "0.006000"
    total = next(line for line in lines if line.startswith("TOTAL"))
    assert total.split()[-2] == "0.008560"
    assert "baseline model: acct-strong" in text
    assert "budget (total): 0.008560 of 1.000000 USD" in text


def test_to_dict_json_and_csv_agree(tmp_path) -> None:  # type: ignore[no-untyped-def]
    acct = _sample()
    data = acct.to_dict()
    assert data["total_cost"] == pytest.approx(0.00856)
    # saved: cheap 0.025-ish baseline minus cost, mid 0.025 - 0.006, the hit 0.006
    baseline_cheap = 1000 * 1e-5 + 300 * 3e-5
    expected_saved = (baseline_cheap - 0.00256) + (0.025 - 0.006) + 0.006
    assert data["total_saved"] == pytest.approx(expected_saved)
    assert data["calls"] == 2 and data["cache_hits"] == 1
    path = tmp_path / "report.json"
    acct.to_json(path)
    assert json.loads(path.read_text()) == json.loads(json.dumps(data))
    rows = list(csv.DictReader(io.StringIO(acct.to_csv())))
    assert [r["model"] for r in rows] == ["acct-cheap", "acct-mid", "TOTAL"]
    assert float(rows[-1]["cost_usd"]) == pytest.approx(0.00856)
    records = list(csv.DictReader(io.StringIO(acct.to_csv(records=True))))
    assert [r["kind"] for r in records] == ["call", "call", "cache_hit"]
    csv_path = tmp_path / "report.csv"
    acct.to_csv(csv_path)
    assert csv_path.read_text().startswith("model,status,calls")


def test_project_month_from_observed_usage() -> None:
    acct = _sample()
    projection = acct.project_month(requests_per_day=1000)
    # 3 requests (2 calls + 1 hit) cost 0.00856: per request 0.00856 / 3.
    assert projection["monthly_cost"] == pytest.approx(0.00856 / 3 * 1000 * 30)


# -- AccountantViews: the figures every handler shows -----------------------------------


class _ViewsOverPrivate(AccountantViews):
    """A handler keeping its accountant private, exposing it as a property (like
    the LlamaIndex handler): the views must read through ``accountant``."""

    def __init__(self, accountant: CostAccountant) -> None:
        self._acct = accountant

    @property
    def accountant(self) -> CostAccountant:
        return self._acct


def test_accountant_views_read_through_the_accountant(tmp_path) -> None:  # type: ignore[no-untyped-def]
    acct = CostAccountant(
        budget_usd=2.0, daily_budget_usd=1.0, on_budget="downgrade", baseline_model="acct-strong"
    )
    views = _ViewsOverPrivate(acct)
    acct.record_call("acct-cheap", TokenUsage(1000, 500), tier="simple")
    assert views.total_cost == pytest.approx(0.003)
    assert views.total_saved == pytest.approx(0.025 - 0.003)
    assert (views.budget_usd, views.on_budget, views.baseline_model) == (
        2.0,
        "downgrade",
        "acct-strong",
    )
    assert [b.period for b in views.budgets] == [None, "day"]
    assert views.ledger is acct.ledger
    assert views.summary().calls == 1
    assert views.to_dict() == acct.to_dict()
    assert views.report() == acct.report()
    assert json.loads(views.to_json(tmp_path / "r.json")) == acct.to_dict()
    assert views.to_csv(records=True).count("\n") == 2
    assert views.project_month(requests_per_day=10)["requests_per_day"] == 10
    assert repr(views) == "_ViewsOverPrivate(total_cost=0.003000, total_saved=0.022000)"
    assert views.downgrade_requested is False
    acct.record_call("acct-strong", TokenUsage(100_000, 0))  # $1.00: the daily budget is spent
    with pytest.raises(BudgetExceededError):
        acct.before_call()
    assert views.downgrade_requested is True
    assert views.budget_status()[1]["exceeded"] is True


def test_accountant_views_are_read_only() -> None:
    views = _ViewsOverPrivate(CostAccountant())
    with pytest.raises(AttributeError, match="accountant"):
        views.total_cost = 1.0  # type: ignore[misc]
    assert views.total_cost == 0.0


class _Handler(CostHandlerBase):
    """A framework handler stand-in: its state comes from a base later in the MRO."""


def test_cost_handler_base_builds_the_accountant_from_the_public_arguments() -> None:
    ledger = CostLedger()
    handler = _Handler(
        "acct-strong",
        2.0,
        "downgrade",
        ledger,
        daily_budget_usd=1.0,
        tags={"app": "t"},
        call_estimate_usd=0.5,
    )
    acct = handler.accountant
    assert (acct.baseline_model, acct.on_budget, acct.ledger) == (
        "acct-strong",
        "downgrade",
        ledger,
    )
    assert [b.period for b in handler.budgets] == [None, "day"]
    assert (handler.budget_usd, acct.tags, acct.call_estimate_usd) == (2.0, {"app": "t"}, 0.5)
    record = acct.record_call("acct-cheap", TokenUsage(10, 5))
    assert record.tags == {"app": "t"} and handler.summary().calls == 1
    with pytest.raises(ValueError, match="on_budget"):
        _Handler(on_budget="explode")  # type: ignore[arg-type]


def test_accountant_views_without_lifetime_budget() -> None:
    views = _ViewsOverPrivate(CostAccountant(daily_budget_usd=1.0))
    assert views.budget_usd is None


def test_an_unpriced_baseline_is_warned_about_when_the_accountant_is_built(
    caplog: pytest.LogCaptureFixture,
) -> None:
    name = f"no-such-baseline-{uuid.uuid4().hex[:6]}"
    with caplog.at_level(logging.WARNING, logger="costopt_core.accounting"):
        CostAccountant(baseline_model=name)
    assert any(name in r.getMessage() and "unpriced" in r.getMessage() for r in caplog.records)


# -- calls without usage ----------------------------------------------------------------------


def test_a_call_without_usage_is_costed_from_its_text_and_tagged_estimated() -> None:
    acct = CostAccountant()
    text = CallText(["You are terse.", "Name three colours."], "Red, green, blue.")
    rec = acct.record_call("acct-mid", None, text=text, tags={"app": "x"})
    usage, counter = text.usage("acct-mid")
    assert counter == "approximate"  # no tokenizer for this made-up family
    assert (rec.input_tokens, rec.output_tokens) == (usage.input_tokens, usage.output_tokens)
    assert rec.cost_usd == pytest.approx(usage.input_tokens * 3e-6 + usage.output_tokens * 6e-6)
    assert rec.cost_usd > 0
    assert rec.tags == {"app": "x", "usage": "estimated", "token_counter": "approximate"}
    data = acct.to_dict()
    assert (data["estimated_calls"], data["unpriced_calls"]) == (1, 0)
    assert data["models"]["acct-mid"]["estimated_calls"] == 1


def test_without_usage_or_text_the_cost_is_unknown_never_zero() -> None:
    acct = CostAccountant()
    rec = acct.record_call("acct-mid", None)
    assert rec.cost_usd is None and "usage" not in rec.tags
    data = acct.to_dict()
    assert (data["estimated_calls"], data["unpriced_calls"]) == (0, 1)
    assert "unpriced: 1 calls" in acct.report()


def test_a_cascade_attempt_without_usage_is_estimated_too() -> None:
    acct = CostAccountant()
    rec = acct.record_attempt("acct-mid", None, text=CallText(["hi"], "hello"))
    assert rec.cost_usd is not None and rec.cost_usd > 0 and rec.saved_usd == -rec.cost_usd
    assert rec.tags["usage"] == "estimated" and acct.to_dict()["estimated_calls"] == 1


def test_a_failing_token_count_leaves_the_call_unpriced_not_zero() -> None:
    class Broken(CallText):
        def usage(self, model: str | None) -> tuple[TokenUsage, str]:
            raise RuntimeError("boom")

    rec = CostAccountant().record_call("acct-mid", None, text=Broken([], ""))
    assert rec.cost_usd is None


# -- one truth for savings ----------------------------------------------------------------------


def test_savings_are_split_by_lever_and_a_routed_hit_counts_only_the_cache() -> None:
    acct = CostAccountant()
    usage = TokenUsage(1000, 500)
    models = ["acct-mid", "acct-strong"]
    call = acct.record_call("acct-mid", usage, tier="simple", router_models=models)
    cache_figure = 1000 * 3e-6 + 500 * 6e-6  # what the cache reports for this hit
    hit = acct.record_cache_hit("acct-mid", usage, saved_hint_usd=cache_figure, tier="simple")
    attempt = acct.record_attempt("acct-mid", TokenUsage(100, 10), tier="simple")
    routing = (1000 * 1e-5 + 500 * 3e-5) - cache_figure
    assert call.saved_usd == pytest.approx(routing)
    assert hit.saved_usd == cache_figure and hit.baseline_model is None  # no routing saving
    data = acct.to_dict()
    assert data["saved_cache_usd"] == pytest.approx(cache_figure)
    assert data["saved_routing_usd"] == pytest.approx(routing + attempt.saved_usd)
    assert data["total_saved"] == pytest.approx(data["saved_cache_usd"] + data["saved_routing_usd"])
    assert data["breakdown_complete"] is True
    row = data["models"]["acct-mid"]
    assert row["saved_cache_usd"] == pytest.approx(cache_figure)
    assert f"cache {cache_figure:.6f} USD (1 hits" in acct.report()


def test_a_cache_hit_takes_the_caches_figure_over_its_own_pricing() -> None:
    acct = CostAccountant()
    # The cache priced the avoided call (e.g. with its usage's cache-read split); the
    # tracker shows that same number rather than a second computation.
    hit = acct.record_cache_hit("acct-mid", TokenUsage(1000, 500), saved_hint_usd=0.0042)
    assert hit.saved_usd == 0.0042
    bad = acct.record_cache_hit("acct-mid", TokenUsage(1000, 500), saved_hint_usd=float("nan"))
    assert bad.saved_usd == pytest.approx(1000 * 3e-6 + 500 * 6e-6)


def test_the_breakdown_says_when_it_covers_only_the_records_kept() -> None:
    # The in-memory ledger remembers what its dropped records said: complete. A split
    # read from some records alone says so.
    acct = CostAccountant(ledger=CostLedger(max_records=1))
    acct.record_call("acct-mid", TokenUsage(10, 10))
    acct.record_call("acct-mid", TokenUsage(10, 10))
    assert acct.to_dict()["breakdown_complete"] is True
    assert "(of the records kept)" not in acct.report()
    records = [CostRecord("acct-mid", cost_usd=1.0), CostRecord("acct-mid", cost_usd=1.0)]
    partial = RecordBreakdown.of(records[:1], summarize(records))
    report = report_dict(summarize(records), breakdown=partial)
    assert report["breakdown_complete"] is False
    assert "(of the records kept)" in format_report(report)


def test_a_self_hosted_model_at_zero_dollars_is_reported_as_local_not_as_a_gap() -> None:
    from costopt_core.local_models import set_hourly_cost

    set_hourly_cost("acct-local-llama", usd_per_hour=0.0)
    acct = CostAccountant()
    acct.record_call("acct-local-llama", TokenUsage(100, 50))
    report = acct.to_dict()
    assert report["local_models"] == ["acct-local-llama"]
    assert report["unpriced_models"] == [] and report["total_cost"] == 0.0
    assert "local (self-hosted" in acct.report()


def test_saving_tags_read_back_exactly_and_old_repr_tags_still_parse() -> None:
    from costopt_core.ledger import CostRecord
    from costopt_core.levers import PROVIDER_CACHE, SAVING_TAG_PREFIX, lever_savings, saving_tags

    amounts = [0.1 + 0.2, 1e-9 / 3, 2.5, 123456.789e-7]
    for amount in amounts:
        tags = saving_tags({PROVIDER_CACHE: amount})
        record = CostRecord("m", cost_usd=1.0, saved_usd=amount, tags=tags)
        assert lever_savings(record) == {PROVIDER_CACHE: amount}  # no remainder: exact
        # A record written before (shortest repr) reads the same.
        old = {SAVING_TAG_PREFIX + PROVIDER_CACHE: repr(amount)}
        assert lever_savings(CostRecord("m", cost_usd=1.0, saved_usd=amount, tags=old)) == {
            PROVIDER_CACHE: amount
        }


def test_an_unpriced_baseline_says_routing_savings_are_unknown_not_zero() -> None:
    acct = CostAccountant(baseline_model="acct-no-such-model")
    acct.record_call("acct-cheap", TokenUsage(100, 10), tier="cheap", router_models=["acct-cheap"])
    assert acct.to_dict()["baseline_unpriced"] is True
    assert "routing savings unknown: no price for baseline model 'acct-no-such-model'" in (
        acct.report()
    )
    assert "baseline_unpriced" not in CostAccountant().to_dict()


def test_a_routed_call_on_an_unpriced_tier_marks_the_savings_as_a_lower_bound() -> None:
    # The tier's saving is unknown: the saved line must not read a plain 0.000000.
    acct = CostAccountant()
    acct.record_call(
        "acct-unknown-cheap",
        TokenUsage(100, 10),
        tier="cheap",
        router_models=["acct-unknown-cheap", "acct-strong"],
    )
    report = acct.report()
    assert "routing 0.000000+ USD" in report
    assert "unpriced: 1 calls" in report


def test_lever_parts_kept_as_numbers_read_like_tags_in_every_ledger(tmp_path) -> None:
    from costopt_core.levers import PROVIDER_CACHE, SAVING_TAG_PREFIX, SavingTags, lever_savings
    from costopt_core.stores.sqlite_ledger import SQLiteLedger

    acct = CostAccountant(ledger=SQLiteLedger(tmp_path / "l.db"), tags={"team": "search"})
    memory = CostAccountant(tags={"team": "search"})
    usage = TokenUsage(1000, 10, cache_read_tokens=800)
    for accountant in (acct, memory):
        accountant.record_call("acct-cheap", usage)
    kept = memory.ledger.records()[0]
    stored = acct.ledger.records()[0]
    assert type(kept.tags) is SavingTags  # formatted only when read
    assert dict(kept.tags) == dict(stored.tags)
    assert kept.tags["team"] == "search" and SAVING_TAG_PREFIX + PROVIDER_CACHE in kept.tags
    assert lever_savings(kept) == lever_savings(stored) == {PROVIDER_CACHE: kept.saved_usd}
    assert kept.to_dict()["tags"] == stored.to_dict()["tags"]


def _without_time(record: CostRecord) -> dict[str, object]:
    data = record.to_dict()
    del data["timestamp"]
    return data


@pytest.mark.parametrize("usage", [(1000, 500, 0, 0, 0), (1200, 300, 800, 100, 50)])
def test_a_call_recorded_later_reads_as_the_same_record_as_one_recorded_now(usage) -> None:
    now, later = CostAccountant(tags={"app": "a"}), CostAccountant(tags={"app": "a"})
    run_id = uuid.uuid4()
    eager = now.record_call("acct-cheap", TokenUsage(*usage), run_id=str(run_id))
    later.record_call_later("acct-cheap", usage, run_id=run_id)
    # Counted at once, built when read: the same figures, the run id as text.
    assert later.total_cost == now.total_cost == eager.cost_usd
    # The totals, saving and baseline included, are kept before the record is built.
    assert later.ledger.summary().models == now.ledger.summary().models
    (deferred,) = later.ledger.records()
    assert _without_time(deferred) == _without_time(eager)
    assert later.to_dict()["models"] == now.to_dict()["models"]


def test_a_call_recorded_later_goes_to_a_ledger_that_cannot_wait_at_once(tmp_path) -> None:
    from costopt_core.stores.sqlite_ledger import SQLiteLedger

    acct = CostAccountant(ledger=SQLiteLedger(tmp_path / "ledger.db"), budget_usd=1.0)
    reservation = acct.admit_call("acct-cheap", 1000, 500)
    acct.record_call_later("acct-cheap", (1000, 500, 0, 0, 0), reservation_id=reservation)
    (record,) = acct.ledger.records()
    assert record.cost_usd == pytest.approx(0.003)
    assert acct.budget_status()[0]["remaining_usd"] == pytest.approx(0.997)


def test_calls_recorded_later_keep_no_object_the_cyclic_gc_must_track() -> None:
    # A container kept per call makes Python's GC pass run every few hundred calls
    # (measured: ~7k instructions per LangChain invoke); the figures are kept flat.
    import gc

    acct = CostAccountant(budget_usd=1e9)
    usage = (1200, 300, 800, 0, 0)  # with provider cache reads: saving and baseline kept
    ids = [uuid.uuid4() for _ in range(2000)]
    acct.record_call_later("acct-cheap", usage, run_id=ids[0])
    gc.collect()
    before = len(gc.get_objects())
    for run_id in ids[1:]:
        acct.record_call_later("acct-cheap", usage, run_id=run_id)
    del run_id
    gc.collect()
    assert len(gc.get_objects()) - before < 20  # not one per call
    assert acct.summary().calls == 2000
    last = acct.ledger.records()[-1]
    assert last.run_id == str(ids[-1]) and last.saved_usd > 0


def test_a_reservation_holds_for_reservation_ttl_seconds() -> None:
    # A call that never ends (a killed process) holds its share of a shared budget for
    # this long: 300 s fixed blocked a crashed worker's budget for 5 minutes.
    ledger = CostLedger()
    held = CostAccountant(budget_usd=0.03, ledger=ledger, reservation_ttl_seconds=0.05)
    other = CostAccountant(budget_usd=0.03, ledger=ledger)
    assert held.admit([CallQuote("acct-strong", 1000, 500)])[0] is not None  # $0.025
    with pytest.raises(BudgetExceededError):
        other.admit([CallQuote("acct-strong", 1000, 500)])
    time.sleep(0.1)
    assert other.admit([CallQuote("acct-strong", 1000, 500)])[0] is not None


@pytest.mark.parametrize("bad", [0, -1, float("inf"), float("nan"), "60", True])
def test_reservation_ttl_seconds_must_be_a_positive_number(bad: object) -> None:
    with pytest.raises(ValueError, match="reservation_ttl_seconds must be"):
        CostAccountant(reservation_ttl_seconds=bad)  # type: ignore[arg-type]
