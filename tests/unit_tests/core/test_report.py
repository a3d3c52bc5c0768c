"""``costopt report LEDGER``: spend and savings per model, tier, lever and day from a
SQLite or PostgreSQL ledger, as a table, CSV, a PNG chart and a self-contained HTML page."""

from __future__ import annotations

import csv
import io
import sys
import uuid

import pytest

from costopt_core.cli import main
from costopt_core.commands.report import LedgerReport, lever_of
from costopt_core.ledger import CostRecord
from costopt_core.stores.sqlite_ledger import SQLiteLedger

DAY = 86_400.0
T0 = 20_000 * DAY  # 2024-10-04, UTC midnight


def records() -> list[CostRecord]:
    return [
        # a routed call: saved against the dear baseline
        CostRecord("gpt-4o-mini", tier="medium", cost_usd=0.002, saved_usd=0.010,
                   baseline_model="claude-3.5-sonnet", baseline_cost_usd=0.012, timestamp=T0),
        # a routed cache hit: its saving is the call avoided, counted under cache only
        CostRecord("gpt-4o-mini", kind="cache_hit", tier="medium", cost_usd=0.0,
                   saved_usd=0.002, timestamp=T0 + 60),
        # a rejected cascade attempt: spend, negative saving
        CostRecord("deepseek-v3", kind="cascade_attempt", tier="simple", cost_usd=0.001,
                   saved_usd=-0.001, timestamp=T0 + DAY),
        # a plain call, usage estimated from text
        CostRecord("gpt-4o", cost_usd=0.004, estimated=True, timestamp=T0 + DAY),
        # an unpriced model with a NUL in its name
        CostRecord("my\x00tune", cost_usd=None, saved_usd=None, timestamp=T0 + 2 * DAY),
    ]  # fmt: skip


@pytest.fixture
def ledger_file(tmp_path) -> str:
    path = str(tmp_path / "spend.db")
    with SQLiteLedger(path) as ledger:
        for record in records():
            ledger.record(record)
    return path


def rows_of(text: str) -> dict[tuple[str, str], dict[str, str]]:
    return {(r["dimension"], r["key"]): r for r in csv.DictReader(io.StringIO(text))}


def test_each_record_has_one_lever_so_no_saving_is_counted_twice():
    assert [lever_of(r) for r in records()] == ["routing", "cache", "cascade", "direct", "direct"]
    report = LedgerReport.from_records(records())
    levers = {row.model: row for row in report.rows("lever")}
    total_saved = sum(row.saved_usd for row in levers.values())
    assert total_saved == pytest.approx(report.total.saved_usd) == pytest.approx(0.011)
    assert levers["cache"].saved_usd == pytest.approx(0.002)
    assert levers["routing"].saved_usd == pytest.approx(0.010)


def test_report_prints_and_writes_csv_per_model_tier_lever_and_day(ledger_file, tmp_path, capsys):
    out = tmp_path / "report.csv"
    assert main(["report", ledger_file, "--csv", str(out)]) == 0
    text = capsys.readouterr().out
    assert "spent $0.007000, saved $0.011000 (61.1% of $0.018000 without costopt)" in text
    assert "1 unpriced (cost unknown, not counted as $0); 1 with usage estimated" in text
    assert "my\\x00tune" in text  # shown escaped, never cut at the NUL
    rows = rows_of(out.read_text(encoding="utf-8"))
    assert rows["model", "gpt-4o-mini"]["cost_usd"] == "0.002"  # full precision: repr(float)
    assert rows["model", "gpt-4o-mini"]["saved_usd"] == "0.012"
    assert rows["model", "gpt-4o-mini"]["cache_hits"] == "1"
    assert rows["model", "my\\x00tune"]["cost_usd"] == "unknown"  # never a silent $0
    assert rows["tier", "(none)"]["events"] == "2"
    assert rows["lever", "cascade"]["saved_usd"] == "-0.001"
    assert rows["lever", "direct"]["estimated_events"] == "1"
    assert [k for d, k in rows if d == "day"] == ["2024-10-04", "2024-10-05", "2024-10-06"]
    assert rows["day", "2024-10-05"]["cost_usd"] == "0.005"
    assert rows["total", "total"]["events"] == "5"


def test_since_keeps_the_later_records(ledger_file, capsys):
    assert main(["report", ledger_file, "--since", "2024-10-05"]) == 0
    assert "costopt report: 3 events, 2024-10-05 to 2024-10-06" in capsys.readouterr().out
    assert main(["report", ledger_file, "--since", "yesterday"]) == 2
    assert "--since must be a date YYYY-MM-DD" in capsys.readouterr().err


def test_html_page_is_self_contained(ledger_file, tmp_path):
    out = tmp_path / "report.html"
    assert main(["report", ledger_file, "--html", str(out)]) == 0
    page = out.read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>") and page.count("<svg xmlns") == 4
    for external in ("<script", "src=", "href=", "@import", "url("):
        assert external not in page
    assert "http" not in page.replace("http://www.w3.org/2000/svg", "")
    assert "my\\x00tune" in page and "\x00" not in page
    assert "-$0.0010 saved" in page  # the cascade's negative saving


def test_png_chart_is_written(ledger_file, tmp_path):
    pytest.importorskip("matplotlib")
    out = tmp_path / "report.png"
    assert main(["report", ledger_file, "--png", str(out)]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_png_without_the_plot_extra_names_it(ledger_file, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # as if not installed
    out = tmp_path / "report.png"
    assert main(["report", ledger_file, "--png", str(out), "--csv", str(tmp_path / "x")]) == 2
    captured = capsys.readouterr()
    assert 'pip install "costopt-llm[plot]"' in captured.err
    assert "nothing was written" in captured.err
    assert not out.exists() and not (tmp_path / "x").exists() and captured.out == ""


def test_write_png_without_the_plot_extra_names_it(tmp_path, monkeypatch):
    from costopt_core.commands.report_render import write_png

    # As if the [plot] extra were not installed: the library call, not only the CLI,
    # says what to install (a bare ModuleNotFoundError before).
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)
    report = LedgerReport.from_records([CostRecord("m", cost_usd=0.1)])
    out = tmp_path / "report.png"
    with pytest.raises(ImportError, match=r'needs matplotlib: pip install "costopt-llm\[plot\]"'):
        write_png(report, str(out))
    assert not out.exists()


def test_an_empty_ledger_says_so(tmp_path, capsys):
    path = str(tmp_path / "empty.db")
    SQLiteLedger(path).close()
    assert main(["report", path, "--html", str(tmp_path / "e.html")]) == 0
    assert "the ledger holds no records" in capsys.readouterr().out


def test_a_missing_or_foreign_file_is_an_error_not_a_new_ledger(tmp_path, capsys):
    missing = tmp_path / "typo.db"
    assert main(["report", str(missing)]) == 2
    assert "no ledger file" in capsys.readouterr().err and not missing.exists()
    other = tmp_path / "other.db"
    SQLiteLedger(other, table="mine").close()
    assert main(["report", str(other)]) == 2
    assert "holds no costopt ledger" in capsys.readouterr().err
    assert main(["report", str(other), "--table", "mine"]) == 0
    text_file = tmp_path / "notes.txt"
    text_file.write_text("not a database", encoding="utf-8")
    assert main(["report", str(text_file)]) == 2
    assert "not a SQLite file" in capsys.readouterr().err


def test_report_reads_a_postgres_ledger(pg_server, capsys):
    pytest.importorskip("psycopg")
    from costopt_core.stores.postgres import PostgresLedger

    table = f"rep_{uuid.uuid4().hex[:10]}"
    with PostgresLedger(pg_server.dsn, table=table) as ledger:
        for record in records():
            ledger.record(record)
    assert main(["report", pg_server.dsn, "--table", table]) == 0
    text = capsys.readouterr().out
    assert "spent $0.007000, saved $0.011000" in text and "my\\x00tune" in text


def test_a_saving_on_several_levers_is_split_by_the_one_rule(tmp_path, capsys):
    # A routed call through a batch API: routing and batch both saved on it.
    from costopt_core.accounting import CostAccountant
    from costopt_core.ledger import TokenUsage
    from costopt_core.pricing import set_price

    set_price("rep-cheap", input_per_token=1e-6, output_per_token=2e-6)
    set_price("rep-strong", input_per_token=1e-5, output_per_token=3e-5)
    path = str(tmp_path / "levers.db")
    with SQLiteLedger(path) as ledger:
        acct = CostAccountant(ledger=ledger)
        acct.record_call(
            "rep-cheap",
            TokenUsage(1000, 100),
            tier="cheap",
            router_models=["rep-cheap", "rep-strong"],
            batch=True,
        )
        data = acct.to_dict()
    assert main(["report", path]) == 0
    out = capsys.readouterr().out
    line = next(x for x in out.splitlines() if x.startswith("saved by lever:"))
    assert f"routing ${data['saved_routing_usd']:.6f}" in line
    assert f"batch ${data['saved_batch_usd']:.6f}" in line


ROUTER = ["gpt-4o-mini", "gpt-4o"]


def write_mixed_ledger(path: str) -> dict:
    """Routed calls, cache hits, calls without usage (estimated from text, or unpriced),
    an unpriced model and cascade attempts, as the cost handlers record them; returns
    the accountant's own ``to_dict()``."""
    from costopt_core.accounting import CallText, CostAccountant
    from costopt_core.ledger import TokenUsage

    with SQLiteLedger(path, durable=False) as ledger:
        acct = CostAccountant(ledger=ledger)
        for i in range(60):
            tokens, when = TokenUsage(137 + 31 * i, 11 + 7 * i), T0 + i * 5_000.0
            step = i % 6
            if step < 2:
                model, tier = ROUTER[step], ("cheap", "strong")[step]
                acct.record_call(model, tokens, tier=tier, router_models=ROUTER, timestamp=when)
            elif step == 2:
                acct.record_cache_hit("gpt-4o-mini", tokens, tier="cheap")
                acct.record_cache_hit("gpt-4o", tokens)
            elif step == 3:
                text = CallText([f"What is {i} squared?"], f"It is {i * i}.")
                acct.record_call("gpt-4o", None, text=text, timestamp=when)  # estimated
                acct.record_call("gpt-4o-mini", None, timestamp=when)  # cost unknown
            elif step == 4:
                acct.record_call("my-local-finetune-xyz", tokens, timestamp=when)
            else:
                acct.record_attempt("gpt-4o-mini", tokens, tier="cheap")
        return acct.to_dict()


def same(expected: object) -> object:
    """Equal but for the last bits of a float sum taken in another order."""
    return pytest.approx(expected, rel=1e-12, abs=0)


def test_a_streamed_report_has_the_figures_of_every_record_held(tmp_path, monkeypatch):
    from functools import partialmethod

    from costopt_core.commands.report import read_report

    path = str(tmp_path / "mixed.db")
    data = write_mixed_ledger(path)
    with SQLiteLedger(path, read_only=True) as ledger:
        held = LedgerReport.from_records(ledger.records())  # every record in memory
    # Chunks of 7 rows: records cross chunk boundaries in every dimension.
    chunked = partialmethod(SQLiteLedger.iter_records, chunk_rows=7)
    monkeypatch.setattr(SQLiteLedger, "iter_records", chunked)
    streamed = read_report(path)
    # Exact equality, float for float: the same records added in the same order.
    assert streamed.total == held.total and streamed.by == held.by
    assert streamed.saved_by_lever == held.saved_by_lever
    assert (streamed.first, streamed.last) == (held.first, held.last)
    assert streamed.to_text() == held.to_text()
    assert streamed.total.events == 80 and streamed.total.unpriced_events == 20
    # The handler's own figures (its sums run per model, so equal to the last bit or so).
    for name, figures in data["models"].items():
        row = streamed.by["model"][name]
        assert (row.calls, row.cache_hits, row.cascade_attempts) == (
            figures["calls"],
            figures["cache_hits"],
            figures["cascade_attempts"],
        )
        assert (row.unpriced_events, row.estimated_events) == (
            figures["unpriced_calls"],
            figures["estimated_calls"],
        )
        assert (row.cost_usd, row.saved_usd) == same(
            (figures["priced_cost_usd"], figures["saved_usd"])
        )
    assert streamed.total.cost_usd == same(data["total_cost"])
    assert streamed.total.saved_usd == same(data["total_saved"])
    assert streamed.saved_by_lever["cache"] == same(data["saved_cache_usd"])
    assert streamed.saved_by_lever["routing"] == same(data["saved_routing_usd"])


def _write_rows(path: str, count: int) -> None:
    """``count`` records written straight into a ledger file (as fast as SQLite goes)."""
    import json
    import sqlite3

    from costopt_core.stores.ledger_sql import RECORD_COLUMNS, record_values

    SQLiteLedger(path).close()
    columns = ", ".join(RECORD_COLUMNS)
    marks = ", ".join("?" * (len(RECORD_COLUMNS) + 1))
    rows = (
        (f"r{i}", *record_values(
            CostRecord(ROUTER[i % 2], tier="cheap", input_tokens=500, output_tokens=200,
                       cost_usd=0.0002, saved_usd=0.001, timestamp=T0 + i * 10.0,
                       tags={"app": "bot"}),
            tags=json.dumps,
        ))
        for i in range(count)
    )  # fmt: skip
    with sqlite3.connect(path) as conn:
        conn.executemany(f"INSERT INTO costopt_ledger (id, {columns}) VALUES ({marks})", rows)


def test_a_reports_memory_does_not_grow_with_the_ledger(tmp_path):
    import tracemalloc

    from costopt_core.commands.report import read_report

    peaks = []
    for count in (2_000, 8_000):
        path = str(tmp_path / f"rows{count}.db")
        _write_rows(path, count)
        tracemalloc.start()
        try:
            report = read_report(path)
            peaks.append(tracemalloc.get_traced_memory()[1])
        finally:
            tracemalloc.stop()
        assert report.total.events == count
    # Four times the rows: the records held would take four times the memory.
    assert peaks[1] < 1.5 * peaks[0], peaks


def test_png_texts_with_two_dollars_are_shown_as_written(tmp_path):
    pytest.importorskip("matplotlib")
    import matplotlib.pyplot as plt
    from matplotlib.text import Text

    from costopt_core.commands.report_render import chart

    # $0 local models: "spent $0.000000, saved $0.000000" holds exactly two "$", which
    # matplotlib would typeset as a formula (digits in italics, the words run together).
    report = LedgerReport.from_records(
        [
            CostRecord("llama3.1:8b", tier="up to $5/$10", cost_usd=0.0, saved_usd=0.0),
            CostRecord("my$local$model", cost_usd=0.0, saved_usd=0.0),
        ]
    )
    fig = chart(report)
    try:
        fig.canvas.draw()  # the tick labels as drawn
        shown = {t.get_text(): t.get_parse_math() for t in fig.findobj(Text) if "$" in t.get_text()}
    finally:
        plt.close(fig)
    title = "\n".join(report.headline()[:2])
    assert "spent $0.000000, saved $0.000000" in title
    assert {title, "up to $5/$10", "my$local$model"} <= set(shown)
    assert not any(shown.values()), shown  # no text of ours is parsed as mathtext


def test_a_negative_saving_reads_the_same_in_text_and_html(tmp_path, capsys):
    from costopt_core.commands.report_render import to_html

    attempt = CostRecord("m", kind="cascade_attempt", cost_usd=0.001, saved_usd=-0.001)
    report = LedgerReport.from_records([attempt])
    text = report.to_text()
    assert "saved -$0.001000" in text and "routing -$0.001000" in text
    assert "$-" not in text
    page = to_html(report)
    assert "saved -$0.001000" in page and "-$0.0010 saved" in page and "$-" not in page


def test_csv_keeps_every_dollar_the_table_rounds(tmp_path, capsys):
    # 1-token classifier calls on nano models: a few micro-dollars each, or less.
    path = str(tmp_path / "nano.db")
    costs = {"gpt-5-nano": 2.3e-06, "gpt-4.1-nano": 4.1e-07, "flash-lite": 3.75e-07}
    with SQLiteLedger(path) as ledger:
        for model, cost in costs.items():
            ledger.record(CostRecord(model, cost_usd=cost, saved_usd=cost / 3, timestamp=T0))
    out = tmp_path / "nano.csv"
    assert main(["report", path, "--csv", str(out)]) == 0
    table = capsys.readouterr().out
    assert "gpt-5-nano" in table and "0.000002" in table  # the table keeps its rounding
    rows = rows_of(out.read_text(encoding="utf-8"))
    for model, cost in costs.items():
        assert float(rows["model", model]["cost_usd"]) == cost  # never 0.000000
        assert float(rows["model", model]["saved_usd"]) == cost / 3
    assert rows["model", "gpt-5-nano"]["cost_usd"] == "2.3e-06"
    total = float(rows["total", "total"]["cost_usd"])
    assert total == sum(costs.values()) == pytest.approx(3.085e-06)


def test_a_file_of_named_ledgers_says_which_table_to_pass(tmp_path, capsys):
    import sqlite3

    path = tmp_path / "tb.db"
    with SQLiteLedger(path, table="team_a") as ledger:
        ledger.record(CostRecord("m", cost_usd=0.5, timestamp=T0))
    assert main(["report", str(path)]) == 2
    err = capsys.readouterr().err
    assert "holds no costopt ledger (no table 'costopt_ledger')" in err
    assert "it holds the ledger table 'team_a' (pass --table team_a)" in err
    SQLiteLedger(path, table="team_b").close()
    with sqlite3.connect(path) as conn:  # tables with a meta that are no ledger
        conn.execute("CREATE TABLE vectors (x)")
        conn.execute("CREATE TABLE vectors_meta (key TEXT PRIMARY KEY, value TEXT)")
        conn.execute("INSERT INTO vectors_meta VALUES ('kind', 'cache')")
        conn.execute("CREATE TABLE notes (x)")
        conn.execute("CREATE TABLE notes_meta (a, b)")
    assert main(["report", str(path)]) == 2
    err = capsys.readouterr().err
    assert "the ledger tables 'team_a', 'team_b' (pass --table team_a or --table team_b)" in err
    assert main(["report", str(path), "--table", "team_a"]) == 0
    assert "spent $0.500000" in capsys.readouterr().out
