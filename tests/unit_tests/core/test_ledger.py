"""The cost ledger: records, per-model totals, periods and the atomic budget check."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime

import pytest

from costopt_core import BudgetExceededError, CostLedger
from costopt_core.ledger import (
    Budget,
    CostRecord,
    LedgerProtocol,
    TokenUsage,
    period_start,
    summarize,
)


def _ts(*args: int) -> float:
    return datetime(*args, tzinfo=UTC).timestamp()


def test_public_names_map_to_the_ledger_module() -> None:
    import costopt_core.ledger as ledger_module

    assert CostLedger is ledger_module.CostLedger
    assert BudgetExceededError is ledger_module.BudgetExceededError
    assert isinstance(CostLedger(), LedgerProtocol)


def test_token_usage_rejects_negative_and_non_int_counts() -> None:
    with pytest.raises(ValueError, match="input_tokens"):
        TokenUsage(input_tokens=-1)
    with pytest.raises(ValueError, match="output_tokens"):
        TokenUsage(output_tokens=1.5)  # type: ignore[arg-type]
    assert (TokenUsage(1, 2, 0, 0, 1) + TokenUsage(3, 4)).total_tokens == 10


def test_record_validates_kind_and_model_and_round_trips() -> None:
    with pytest.raises(ValueError, match="kind"):
        CostRecord(model="m", kind="refund")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="model"):
        CostRecord(model="")
    record = CostRecord(
        model="m", tier="simple", input_tokens=10, cost_usd=None, tags={"app": "bot"}, timestamp=5.0
    )
    assert CostRecord.from_dict(record.to_dict()) == record
    assert record.priced is False
    # None given for tags or timestamp (callers pass optional values through) means the
    # default, as omitting them does.
    before = time.time()
    passed_none = CostRecord("m", "call", None, 1, 2, 0, 0, 0, 0.1, 0.0, None, None, None, None)
    assert passed_none.tags == {} and before <= passed_none.timestamp <= time.time()
    assert passed_none.usage == TokenUsage(1, 2)


def test_summary_keeps_per_model_totals_and_separates_cache_hits() -> None:
    ledger = CostLedger()
    ledger.record(
        CostRecord(
            model="a",
            tier="simple",
            input_tokens=100,
            output_tokens=10,
            cache_read_tokens=40,
            reasoning_tokens=3,
            cost_usd=0.25,
        )
    )
    ledger.record(
        CostRecord(
            model="a",
            kind="cache_hit",
            input_tokens=100,
            output_tokens=10,
            cost_usd=0.0,
            saved_usd=0.25,
        )
    )
    ledger.record(
        CostRecord(model="a", kind="cascade_attempt", input_tokens=5, cost_usd=0.5, saved_usd=-0.5)
    )
    ledger.record(
        CostRecord(model="b", input_tokens=7, output_tokens=1, cost_usd=None, saved_usd=None)
    )
    summary = ledger.summary()
    a, b = summary.models["a"], summary.models["b"]
    assert (a.calls, a.cache_hits, a.cascade_attempts) == (1, 1, 1)
    # Cache-hit tokens were not billed: only the call and the attempt count.
    assert (a.input_tokens, a.output_tokens, a.cache_read_tokens, a.reasoning_tokens) == (
        105,
        10,
        40,
        3,
    )
    assert a.cost_usd == 0.75 and a.saved_usd == -0.25 and a.tiers == {"simple": 1}
    assert b.priced is False and b.input_tokens == 7 and b.cost_usd == 0.0
    assert summary.unpriced_models == ["b"]
    assert summary.total_cost == 0.75 and summary.calls == 2 and summary.cache_hits == 1
    assert ledger.spent_since(None) == 0.75
    # The summary returned is a copy: mutating it leaves the ledger alone.
    a.calls = 99
    assert ledger.summary().models["a"].calls == 1


def test_period_start_is_the_utc_calendar_day_and_month() -> None:
    now = _ts(2026, 3, 17, 15, 4, 5)
    assert period_start("day", now) == _ts(2026, 3, 17)
    assert period_start("month", now) == _ts(2026, 3, 1)
    assert period_start(None, now) is None
    with pytest.raises(ValueError, match="period"):
        period_start("week", now)  # type: ignore[arg-type]


def test_spent_since_counts_only_the_period() -> None:
    ledger = CostLedger()
    ledger.record(CostRecord(model="m", cost_usd=1.0, timestamp=_ts(2026, 2, 27, 12)))
    ledger.record(CostRecord(model="m", cost_usd=2.0, timestamp=_ts(2026, 3, 16, 23)))
    ledger.record(CostRecord(model="m", cost_usd=4.0, timestamp=_ts(2026, 3, 17, 1)))
    now = _ts(2026, 3, 17, 9)
    assert ledger.spent_since(Budget(1, "day").start(now)) == 4.0
    assert ledger.spent_since(Budget(1, "month").start(now)) == 6.0
    assert ledger.spent_since(None) == 7.0
    # A since that is not day-aligned is answered from the records.
    assert ledger.spent_since(_ts(2026, 3, 16, 23, 30)) == 4.0
    assert [r.cost_usd for r in ledger.records(since=_ts(2026, 3, 1))] == [2.0, 4.0]
    assert ledger.summary(since=_ts(2026, 3, 17)).total_cost == 4.0
    # Within and after the newest day: a partial day counts only the later records.
    assert ledger.spent_since(_ts(2026, 3, 17, 0, 30)) == 4.0
    assert ledger.spent_since(_ts(2026, 3, 17, 2)) == 0.0
    assert ledger.spent_since(_ts(2026, 3, 18)) == 0.0
    # A back-dated record lands in its own day, not the newest one.
    ledger.record(CostRecord(model="m", cost_usd=8.0, timestamp=_ts(2026, 3, 16, 1)))
    assert ledger.spent_since(Budget(1, "day").start(now)) == 4.0
    assert ledger.spent_since(_ts(2026, 3, 16)) == 14.0


def test_budget_validation() -> None:
    with pytest.raises(ValueError, match="limit_usd"):
        Budget(-1)
    with pytest.raises(ValueError, match="limit_usd"):
        Budget(float("nan"))
    with pytest.raises(ValueError, match="period"):
        Budget(1.0, "year")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="estimate_usd"):
        CostLedger().reserve(-0.1, [Budget(1.0)])


def test_reserve_admits_while_something_is_left_and_the_estimate_fits() -> None:
    ledger = CostLedger()
    budget = Budget(1.0)
    first = ledger.reserve(0.4, [budget])
    assert first.allowed and first.reservation_id
    # The live reservation counts: 0.4 reserved + 0.7 estimated > 1.0.
    refused = ledger.reserve(0.7, [budget])
    assert not refused.allowed and refused.budget is budget and refused.used_usd == 0.4
    assert ledger.reserve(0.6, [budget]).allowed  # 0.4 + 0.6 fits exactly
    assert ledger.reserved_usd == pytest.approx(1.0)
    ledger.record(CostRecord(model="m", cost_usd=0.3), reservation_id=first.reservation_id)
    # The record settled the first reservation: 0.3 spent + 0.6 reserved.
    assert ledger.reserved_usd == pytest.approx(0.6)
    error = ledger.reserve(0.2, [budget]).error()
    assert isinstance(error, BudgetExceededError) and error.limit_usd == 1.0
    assert "not made" in str(error)


def test_reserve_id_holds_what_fits_and_nothing_else() -> None:
    ledger = CostLedger()
    budgets = [Budget(1.0), Budget(0.5, period="day")]
    held = ledger.reserve_id(0.3, budgets)
    assert isinstance(held, str) and ledger.reserved_usd == pytest.approx(0.3)
    # 0.3 + 0.3 passes the day budget: refused by it, and nothing more is held.
    budget, used = ledger.reserve_id(0.3, budgets)
    assert budget is budgets[1] and used == pytest.approx(0.3)
    assert ledger.reserved_usd == pytest.approx(0.3)
    refused = ledger.reserve(0.3, budgets)  # the same answer as a BudgetCheck
    assert not refused.allowed and refused.budget is budgets[1]
    ledger.release(held)
    assert ledger.reserved_usd == 0.0
    with pytest.raises(ValueError, match="estimate_usd"):
        ledger.reserve_id(-1.0, budgets)

    class Strict(CostLedger):  # changes reserve(): reserve_id asks it
        def reserve(self, estimate_usd, budgets, **kwargs):  # type: ignore[no-untyped-def]
            return super().reserve(estimate_usd * 10, budgets, **kwargs)

    assert Strict().reserve_id(0.3, budgets) == (budgets[0], 0.0)  # 3.0 > 1.0


def test_release_and_expiry_free_a_reservation() -> None:
    ledger = CostLedger()
    budget = Budget(1.0)
    check = ledger.reserve(1.0, [budget], ttl_seconds=10, now=1000.0)
    assert not ledger.reserve(0.1, [budget], now=1005.0).allowed
    assert ledger.reserve(0.1, [budget], now=1011.0).allowed  # the first one expired
    again = ledger.reserve(0.8, [budget], now=1012.0)
    ledger.release(again.reservation_id)
    ledger.release(check.reservation_id)  # already gone: a no-op
    assert ledger.reserve(0.8, [budget], now=1013.0).allowed


def test_reservations_settle_to_exactly_nothing_and_expire_one_by_one() -> None:
    ledger = CostLedger()
    budget = Budget(1.0)
    ids = [ledger.reserve(0.1, [budget]).reservation_id for _ in range(3)]
    for rid in ids:
        ledger.release(rid)
    # No float residue once every reservation is gone (0.1 + 0.1 + 0.1 - 0.1 - 0.1 - 0.1
    # is 2.8e-17 in floats): a zero budget sees exactly nothing used.
    assert ledger.reserve(0.0, [Budget(0.0)]).used_usd == 0.0
    assert ledger.reserved_usd == 0.0
    assert ledger.reserve(1.0, [budget], ttl_seconds=5, now=1000.0).allowed
    ledger.clear()
    short = ledger.reserve(0.5, [budget], ttl_seconds=5, now=1000.0)
    assert short.allowed
    assert ledger.reserve(0.5, [budget], ttl_seconds=60, now=1001.0).allowed
    assert not ledger.reserve(0.1, [budget], now=1002.0).allowed
    # The short one expired, the long one still holds 0.5.
    assert ledger.reserve(0.5, [budget], now=1006.0).allowed
    assert not ledger.reserve(0.1, [budget], now=1007.0).allowed


def test_a_spent_budget_refuses_even_a_zero_estimate() -> None:
    ledger = CostLedger()
    ledger.record(CostRecord(model="m", cost_usd=1.0))
    assert not ledger.reserve(0.0, [Budget(1.0)]).allowed
    assert ledger.reserve(0.0, [Budget(1.01)]).allowed


def test_every_budget_must_admit() -> None:
    ledger = CostLedger()
    now = _ts(2026, 3, 17, 12)
    ledger.record(CostRecord(model="m", cost_usd=5.0, timestamp=_ts(2026, 3, 16, 12)))
    budgets = [Budget(100.0), Budget(1.0, "day")]
    assert ledger.reserve(0.5, budgets, now=now).allowed  # yesterday's 5.0 is not today's
    refused = ledger.reserve(0.5, [Budget(5.2)], now=now)
    assert not refused.allowed and refused.used_usd == pytest.approx(5.5)


def test_day_and_month_budgets_follow_the_checks_clock_across_days_and_months() -> None:
    # The ledger works out each period's start once per day: checks that jump between
    # days and months, forwards and back, must each see their own period's spend.
    ledger = CostLedger()
    day, month = Budget(1.0, "day"), Budget(3.0, "month")
    ledger.record(CostRecord(model="m", cost_usd=0.9, timestamp=_ts(2026, 3, 31, 12)))
    ledger.record(CostRecord(model="m", cost_usd=1.5, timestamp=_ts(2026, 3, 30, 12)))
    ledger.record(CostRecord(model="m", cost_usd=0.5, timestamp=_ts(2026, 4, 1, 9)))

    def fits(estimate: float, budget: Budget, *when: int) -> bool:
        check = ledger.reserve(estimate, [budget], now=_ts(*when))
        if check.reservation_id is not None:
            ledger.release(check.reservation_id)
        return check.allowed

    assert fits(0.5, day, 2026, 4, 1, 10)  # 0.5 spent on April 1st
    assert not fits(0.6, day, 2026, 4, 1, 23)
    assert not fits(0.0, day, 2026, 3, 31, 13)  # 0.9 that day, and 0.5 after it
    assert fits(1.0, day, 2026, 4, 2, 0)  # a new day: nothing spent yet
    assert fits(0.5, day, 2026, 4, 1, 12) and not fits(0.6, day, 2026, 4, 1, 12)
    assert fits(2.5, month, 2026, 4, 1, 11) and not fits(2.6, month, 2026, 4, 1, 11)
    assert fits(0.1, month, 2026, 3, 31, 14)  # from March 1st: 2.9 of 3.0
    assert not fits(0.2, month, 2026, 3, 31, 14)


def test_max_records_bounds_memory_but_not_totals() -> None:
    ledger = CostLedger(max_records=3)
    for _ in range(10):
        ledger.record(CostRecord(model="m", cost_usd=0.5))
    assert len(ledger.records()) == 3
    assert ledger.summary().models["m"].calls == 10
    assert ledger.spent_since(None) == 5.0
    with pytest.raises(ValueError, match="max_records"):
        CostLedger(max_records=-1)
    ledger.clear()
    assert ledger.spent_since(None) == 0.0 and ledger.records() == []


def test_eight_threads_recording_lose_nothing() -> None:
    ledger = CostLedger()

    def work(worker: int) -> None:
        for _ in range(1000):
            ledger.record(
                CostRecord(model=f"m{worker % 2}", input_tokens=3, output_tokens=2, cost_usd=0.25)
            )

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    summary = ledger.summary()
    assert summary.calls == 8000
    assert sum(m.input_tokens for m in summary.models.values()) == 24_000
    assert ledger.spent_since(None) == 2000.0  # 0.25 sums exactly in binary


def test_concurrent_spenders_never_pass_the_limit() -> None:
    ledger = CostLedger()
    budget = Budget(1.0)
    refused = []

    def spend() -> None:
        while True:
            check = ledger.reserve(0.0625, [budget])
            if not check.allowed:
                refused.append(check)
                return
            ledger.record(
                CostRecord(model="m", cost_usd=0.0625), reservation_id=check.reservation_id
            )

    threads = [threading.Thread(target=spend) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert ledger.spent_since(None) == 1.0
    assert ledger.summary().calls == 16 and len(refused) == 8


def test_summarize_folds_records() -> None:
    summary = summarize(
        [
            CostRecord(model="x", cost_usd=0.5, timestamp=3.0),
            CostRecord(model="x", cost_usd=0.25, timestamp=1.0),
        ]
    )
    assert summary.total_cost == 0.75
    assert (summary.first_timestamp, summary.last_timestamp) == (1.0, 3.0)


def test_old_day_buckets_fold_away_without_changing_answers() -> None:
    ledger = CostLedger()
    for day in range(100):
        ledger.record(CostRecord(model="m", cost_usd=1.0, timestamp=day * 86_400.0 + 60))
    now = 99 * 86_400.0 + 120
    assert ledger.spent_since(Budget(1, "day").start(now)) == 1.0
    assert ledger.spent_since(None) == 100.0
    # Older than the kept buckets: answered from the records, still exact.
    assert ledger.spent_since(10 * 86_400.0) == 90.0


_NO_TOKENS = (0, 0, 0, 0, 0)


def test_deferred_records_count_at_once_and_read_in_order_with_the_others() -> None:
    ledger = CostLedger()
    check = ledger.reserve(1.0, [Budget(2.0)])
    built: list[str] = []

    def build(name: str, timestamp: float, counts: object, cost: float, key: object) -> CostRecord:
        built.append(name)
        return CostRecord(name, cost_usd=cost, timestamp=timestamp)

    reservation = check.reservation_id
    ledger.record_deferred("a", 0.5, 10.0, _NO_TOKENS, build, 0.5, None, reservation)
    # Spend and the settled reservation are counted before anything is built.
    assert ledger.spent_since(None) == 0.5
    assert ledger.reserved_usd == 0.0
    assert not ledger.reserve(1.6, [Budget(2.0)]).allowed
    assert built == []
    ledger.record(CostRecord("b", cost_usd=0.25, timestamp=11.0))
    ledger.record_deferred("c", 0.125, 12.0, _NO_TOKENS, build, 0.125, None)
    assert [r.model for r in ledger.records()] == ["a", "b", "c"]
    assert built == ["a", "c"]
    assert ledger.summary().total_cost == ledger.spent_since(None) == 0.875
    ledger.records()
    assert built == ["a", "c"]  # built once


def test_totals_of_deferred_records_are_read_without_building_them() -> None:
    built: list[int] = []

    def build(model: str, timestamp: float, counts: object, context: object, i: int) -> CostRecord:
        built.append(i)
        saved, baseline = (0.125, 0.375) if i % 2 else (0.0, None)  # odd: a cache read
        return CostRecord(
            "m",
            cost_usd=0.25,
            timestamp=10.0 + i,
            input_tokens=i,
            output_tokens=1,
            cache_read_tokens=i % 2,
            saved_usd=saved,
            baseline_model="m" if i % 2 else None,
            baseline_cost_usd=baseline,
        )

    ledger = CostLedger(max_records=100)
    eager = CostLedger(max_records=100)
    for i in range(1000):
        counts = (i, 1, i % 2, 0, 0)
        if i % 2:
            ledger.record_deferred("m", 0.25, 10.0 + i, counts, build, None, i, None, 0.125, 0.375)
        else:
            ledger.record_deferred("m", 0.25, 10.0 + i, counts, build, None, i)
        eager.record(build("m", 10.0 + i, counts, None, i))
        if i % 97 == 0:  # a cache hit between them, recorded at once
            hit = CostRecord("m", kind="cache_hit", cost_usd=0.0, saved_usd=0.5, timestamp=10.0 + i)
            ledger.record(hit)
            eager.record(hit)
    built.clear()
    assert ledger.summary() == eager.summary()
    assert built == []  # the totals came from the counts
    totals = ledger.summary().models["m"]
    assert (totals.calls, totals.cache_hits, totals.input_tokens) == (1000, 11, sum(range(1000)))
    # Only the newest max_records are ever built: the others were pushed out unread.
    assert ledger.records() == eager.records()
    assert len(built) <= 100 and built[-1] == 999


def test_a_deferred_record_whose_builder_fails_keeps_its_spend() -> None:
    ledger = CostLedger()

    def broken(*_: object) -> CostRecord:
        raise RuntimeError("bug")

    ledger.record_deferred("m", 0.5, 10.0, (3, 2, 0, 0, 0), broken, None, None)
    (record,) = ledger.records()
    assert (record.model, record.cost_usd, record.timestamp) == ("m", 0.5, 10.0)
    assert (record.input_tokens, record.output_tokens) == (3, 2)
    assert ledger.summary().total_cost == 0.5


def test_a_subclass_that_changes_record_gets_deferred_records_through_it() -> None:
    seen: list[CostRecord] = []

    class Mirrored(CostLedger):
        def record(self, record: CostRecord, reservation_id: str | None = None) -> None:
            seen.append(record)
            super().record(record, reservation_id)

    ledger = Mirrored()

    def build(*_: object) -> CostRecord:
        return CostRecord("m", cost_usd=0.5)

    ledger.record_deferred("m", 0.5, 10.0, _NO_TOKENS, build, None, None)
    assert [r.cost_usd for r in seen] == [0.5]
    assert ledger.spent_since(None) == 0.5


def test_a_read_builds_deferred_records_without_holding_up_the_calls_being_counted() -> None:
    import threading

    ledger = CostLedger()
    building, release = threading.Event(), threading.Event()

    def slow_build(model: str, timestamp: float, counts: object, context: object, key: object):
        building.set()
        assert release.wait(5)
        return CostRecord(model, cost_usd=0.5, timestamp=timestamp)

    ledger.record_deferred("first", 0.5, 10.0, _NO_TOKENS, slow_build, None, None)
    reader = threading.Thread(target=ledger.records)
    reader.start()
    assert building.wait(5)
    # While the reader builds: calls are reserved, counted and recorded, not blocked.
    check = ledger.reserve(0.25, [Budget(2.0)])
    ledger.record(CostRecord("second", cost_usd=0.25, timestamp=11.0), check.reservation_id)

    def build(model: str, timestamp: float, counts: object, context: object, key: object):
        return CostRecord(model, cost_usd=0.125, timestamp=timestamp)

    ledger.record_deferred("third", 0.125, 12.0, _NO_TOKENS, build, None, None)
    assert ledger.spent_since(None) == 0.875
    assert ledger.spent_since(5.0) == 0.875  # not a day start: read from the entries
    release.set()
    reader.join(5)
    assert [r.model for r in ledger.records()] == ["first", "second", "third"]
    assert ledger.summary().total_cost == 0.875


def test_budgets_of_different_handlers_on_one_ledger_each_hold_their_own_limit() -> None:
    # Far below every limit one sum settles a check; handlers sharing a ledger bring
    # other budgets, and each check must still be held to its own lowest limit.
    ledger = CostLedger()
    ledger.record(CostRecord(model="m", cost_usd=0.6))
    generous, tight = (Budget(10.0), Budget(1.0, "day")), (Budget(0.5),)
    for _ in range(3):  # alternating: neither handler's limit may stand in for the other's
        assert ledger.reserve_id(0.1, generous) is not None
        assert ledger.reserve_id(0.1, tight) == (tight[0], pytest.approx(0.6 + 0.1 * (_ + 1)))
    # The day budget: 0.6 spent + 0.3 held + 0.2 asked is 1.1 > 1.0.
    refused = ledger.reserve(0.2, generous)
    assert not refused.allowed and refused.budget == generous[1]


def test_yesterdays_spend_does_not_refuse_a_day_budget_today() -> None:
    # The whole spend passes the day's limit; today's part does not: the check must
    # look at the day's own spend, not refuse on the whole.
    ledger = CostLedger()
    now = _ts(2026, 3, 17, 12)
    ledger.record(CostRecord(model="m", cost_usd=5.0, timestamp=_ts(2026, 3, 16, 12)))
    ledger.record(CostRecord(model="m", cost_usd=0.5, timestamp=_ts(2026, 3, 17, 9)))
    assert ledger.reserve(0.4, [Budget(1.0, "day")], now=now).allowed
    assert not ledger.reserve(0.2, [Budget(1.0, "day")], now=now).allowed


def test_a_budgets_list_changed_in_place_or_given_once_as_a_generator_still_binds() -> None:
    # A handler's budgets are a tuple; a list set on its accountant can change in place,
    # and a generator can be read only once: each check must see the budgets as they are.
    ledger = CostLedger()
    ledger.record(CostRecord(model="m", cost_usd=0.5))
    budgets = [Budget(10.0)]
    assert isinstance(ledger.reserve_id(0.01, budgets), str)
    budgets.append(Budget(0.1))
    assert ledger.reserve_id(0.01, budgets) == (budgets[1], pytest.approx(0.51))
    refused = ledger.reserve(0.01, (b for b in [Budget(10.0), Budget(0.1)]))
    assert not refused.allowed and refused.budget == Budget(0.1)
