"""The ledger contract (costopt_core.ledger.LedgerProtocol) on every ledger: in memory,
SQLite and PostgreSQL give the same totals, reservations and budgets; the persistent
ones keep spend across a restart and store any text losslessly (issue 16)."""

from __future__ import annotations

import time

import pytest

from costopt_core.ledger import Budget, CostLedger, CostRecord, period_start

LEDGERS = ("memory", "sqlite", "postgres")
PERSISTENT = ("sqlite", "postgres")
NUL = "\x00"


def sample_records(now: float) -> list[CostRecord]:
    return [
        CostRecord(model="a", tier="simple", input_tokens=100, output_tokens=50,
                   cache_read_tokens=20, reasoning_tokens=5, cost_usd=0.001,
                   saved_usd=0.004, baseline_model="b", baseline_cost_usd=0.005,
                   tags={"app": "bot"}, timestamp=now - 90_000, run_id="r1"),
        CostRecord(model="a", kind="cache_hit", input_tokens=100, output_tokens=50,
                   cost_usd=0.0, saved_usd=0.001, timestamp=now - 10),
        CostRecord(model="b", tier="complex", kind="cascade_attempt", input_tokens=10,
                   output_tokens=10, cost_usd=0.002, saved_usd=-0.002, timestamp=now - 5),
        CostRecord(model="a", input_tokens=40, output_tokens=9, cost_usd=0.0003,
                   estimated=True, timestamp=now - 3),
        CostRecord(model="unknown-model", input_tokens=7, output_tokens=3, cost_usd=None,
                   saved_usd=None, timestamp=now - 1),
    ]  # fmt: skip


@pytest.mark.parametrize("open_ledger", LEDGERS, indirect=True)
def test_totals_records_and_spend_equal_the_in_memory_ledger(open_ledger):
    ledger = open_ledger()
    now = time.time()
    memory = CostLedger()
    for record in sample_records(now):
        memory.record(record)
        ledger.record(record)
    assert ledger.records() == memory.records()
    for since in (None, now - 60):
        shared, local = ledger.summary(since), memory.summary(since)
        assert shared.models.keys() == local.models.keys()
        for name, totals in local.models.items():
            expected = totals.to_dict()
            got = shared.models[name].to_dict()
            assert got["tiers"] == expected.pop("tiers")
            assert {k: got[k] for k in expected} == pytest.approx(expected)
        assert shared.first_timestamp == local.first_timestamp
        assert ledger.spent_since(since) == pytest.approx(memory.spent_since(since))
        assert ledger.spent_since(now - 4) == pytest.approx(0.0003)  # not a day boundary
    assert ledger.summary().unpriced_models == ["unknown-model"]
    assert ledger.summary().models["a"].estimated_events == 1


@pytest.mark.parametrize("open_ledger", LEDGERS, indirect=True)
def test_reservations_count_until_settled_released_or_expired(open_ledger):
    ledger = open_ledger()
    budget = [Budget(0.010)]
    first = ledger.reserve(0.006, budget, now=100.0)
    assert first.allowed and ledger.reserve(0.006, budget, now=100.0).allowed is False
    ledger.release(first.reservation_id)
    second = ledger.reserve(0.006, budget, now=100.0, ttl_seconds=30)
    assert second.allowed
    # An abandoned reservation (its process died) stops counting after its TTL.
    assert ledger.reserve(0.006, budget, now=131.0).allowed
    ledger.record(CostRecord(model="m", cost_usd=0.009, timestamp=time.time()))
    refused = ledger.reserve(0.0, budget, now=200.0)
    assert not refused.allowed and refused.used_usd == pytest.approx(0.009 + 0.006)
    settled = ledger.reserve(0.001, [Budget(1.0)], now=time.time())
    ledger.record(CostRecord("m", cost_usd=0.001), reservation_id=settled.reservation_id)
    # Settled: its spend counts once, the reservation no more (the others have expired).
    again = ledger.reserve(0.0, [Budget(0.0095)], now=time.time())
    assert not again.allowed and again.used_usd == pytest.approx(0.010)
    ledger.release("not-a-reservation-of-this-ledger")  # ignored


@pytest.mark.parametrize("open_ledger", LEDGERS, indirect=True)
def test_day_and_month_budgets_read_their_period(open_ledger):
    ledger = open_ledger()
    now = time.time()
    ledger.record(CostRecord(model="m", cost_usd=5.0, timestamp=now - 40 * 86_400))
    ledger.record(CostRecord(model="m", cost_usd=0.25, timestamp=period_start("month", now)))
    assert ledger.reserve(0.5, [Budget(1.0, "day")], now=now).allowed
    assert ledger.reserve(0.5, [Budget(1.0, "month")], now=now).allowed is False  # 0.25 + 0.5 + 0.5
    assert not ledger.reserve(0.5, [Budget(1.0)], now=now).allowed


@pytest.mark.parametrize("open_ledger", PERSISTENT, indirect=True)
def test_a_monthly_budget_survives_a_restart(open_ledger):
    ledger = open_ledger()
    month = [Budget(0.05, "month")]
    for _ in range(4):
        check = ledger.reserve(0.01, month)
        assert check.allowed
        ledger.record(CostRecord("m", cost_usd=0.01), reservation_id=check.reservation_id)
    ledger.close()
    reopened = open_ledger()  # the process restarted
    assert reopened.spent_since(period_start("month")) == pytest.approx(0.04)
    assert reopened.reserve(0.01, month).allowed
    assert not reopened.reserve(0.01, month).allowed  # the first reservation is still live
    assert len(reopened.records()) == 4


@pytest.mark.parametrize("open_ledger", LEDGERS, indirect=True)
def test_text_with_nul_characters_is_stored_losslessly_and_spend_counted(open_ledger):
    ledger = open_ledger()
    odd = [f"evil{NUL}model", f"\ufdd0{NUL}%00%25", "plain 100%"]
    for i, text in enumerate(odd):
        ledger.record(
            CostRecord(model=text, tier=text, cost_usd=0.5, baseline_model=text, run_id=text,
                       tags={f"tenant{NUL}": text, "n": str(i)}, timestamp=1000.0 + i)
        )  # fmt: skip
    assert ledger.spent_since() == pytest.approx(1.5)  # no record dropped
    back = ledger.records()
    assert [r.model for r in back] == odd
    assert [r.tags for r in back] == [{f"tenant{NUL}": t, "n": str(i)} for i, t in enumerate(odd)]
    assert [(r.tier, r.baseline_model, r.run_id) for r in back] == [(t, t, t) for t in odd]
    summary = ledger.summary()
    assert sorted(summary.models) == sorted(odd)
    assert summary.models[odd[0]].tiers == {odd[0]: 1}


@pytest.mark.parametrize("open_ledger", LEDGERS, indirect=True)
def test_bad_arguments_are_refused_naming_them(open_ledger):
    ledger = open_ledger()
    with pytest.raises(TypeError, match="CostRecord"):
        ledger.record({"model": "m"})  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="estimate_usd"):
        ledger.reserve(float("nan"), [Budget(1.0)])
    assert ledger.records() == []
