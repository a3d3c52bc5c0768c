"""``costopt report LEDGER``: spend and savings per model, tier, lever and day, from a
SQLite ledger file or a PostgreSQL ledger.

Example:
    >>> import os, tempfile
    >>> from costopt_core.cli import main
    >>> from costopt_core.ledger import CostRecord
    >>> from costopt_core.stores.sqlite_ledger import SQLiteLedger
    >>> path = os.path.join(tempfile.mkdtemp(), "spend.db")
    >>> with SQLiteLedger(path) as ledger:
    ...     ledger.record(CostRecord("gpt-4o-mini", tier="medium", cost_usd=0.002,
    ...                              saved_usd=0.008, timestamp=86_400.0))
    ...     ledger.record(CostRecord("gpt-4o-mini", kind="cache_hit", tier="medium",
    ...                              cost_usd=0.0, saved_usd=0.002, timestamp=86_400.0))
    >>> main(["report", path])
    costopt report: 2 events, 1970-01-02 to 1970-01-02
    spent $0.002000, saved $0.010000 (83.3% of $0.012000 without costopt)
    saved by lever: routing $0.008000, cache $0.002000
    <BLANKLINE>
    by lever     events   calls  cache hits  spend USD  saved USD  estimated  unpriced
    routing           1       1           0   0.002000   0.008000          0         0
    cache             1       0           1   0.000000   0.002000          0         0
    <BLANKLINE>
    by model     events   calls  cache hits  spend USD  saved USD  estimated  unpriced
    gpt-4o-mini       2       1           1   0.002000   0.010000          0         0
    ...
    0

LEDGER is a path to a ``SQLiteLedger`` file, or a PostgreSQL DSN
(``postgresql://...`` or ``host=... dbname=...``; extra ``[postgres]``). ``--table``
names the ledger's table when it is not the default.

Levers, one per record (:func:`lever_of`), so a saving is never counted twice: a cache
hit is ``cache`` (its saving is the call it avoided, routed or not), a routed call is
``routing`` (saving against the baseline model), a rejected cascade attempt is
``cascade`` (a negative saving), and a call made without any lever is ``direct``. A
call can save on several levers at once (a routed call through a batch API, with cached
prompt tokens): the "saved by lever" line splits every saving by the one rule of
:mod:`costopt_core.levers`, where the table files each record under one lever.
"Without costopt" is spend plus savings. Text that cannot be shown as it is (control
characters such as NUL in a model name) is shown escaped, as Python writes it.
"""

from __future__ import annotations

import argparse
import csv
import io
import re
import sqlite3
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from costopt_core.commands import add_command, require_plot
from costopt_core.ledger import CostRecord, LedgerProtocol, ModelTotals
from costopt_core.levers import LEVERS, lever_savings
from costopt_core.stores.ledger_sql import SQLLedger

#: The dimensions of a report, in the order they are shown.
DIMENSIONS = ("lever", "model", "tier", "day")

#: The figures of each row, in CSV and table order.
FIGURES = (
    "events",
    "calls",
    "cache_hits",
    "cost_usd",
    "saved_usd",
    "estimated_events",
    "unpriced_events",
)

_HEADERS = {
    "events": "events",
    "calls": "calls",
    "cache_hits": "cache hits",
    "cost_usd": "spend USD",
    "saved_usd": "saved USD",
    "estimated_events": "estimated",
    "unpriced_events": "unpriced",
}
_DAY = 86_400.0
_MICROSECOND = 1e-6
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_DSN = re.compile(r"^(postgres(ql)?://|\w+\s*=)")


def lever_of(record: CostRecord) -> str:
    """The lever a record's spend and saving belong to (see the module docstring).

    Example:
        >>> lever_of(CostRecord("m", kind="cache_hit", tier="simple"))
        'cache'
        >>> lever_of(CostRecord("m", tier="simple")), lever_of(CostRecord("m"))
        ('routing', 'direct')
    """
    if record.kind == "cache_hit":
        return "cache"
    if record.kind == "cascade_attempt":
        return "cascade"
    return "routing" if record.tier is not None else "direct"


def label(text: str) -> str:
    """``text`` for a table cell: control characters escaped (``'a\\x00b'`` -> ``a\\x00b``).

    Example:
        >>> label("evil\\x00model")
        'evil\\\\x00model'
    """
    return _CONTROL.sub(lambda m: repr(m.group())[1:-1], text)


def day_of(timestamp: float) -> str:
    """The UTC calendar day of an epoch timestamp, ``YYYY-MM-DD``."""
    return datetime.fromtimestamp(timestamp, tz=UTC).strftime("%Y-%m-%d")


#: A row of a report: the totals of one key of a dimension (a lever, model, tier or day,
#: held in its ``model`` field), added up as the ledger's own per-model totals are.
Row = ModelTotals


@dataclass
class LedgerReport:
    """Spend and savings per dimension (:data:`DIMENSIONS`) and in total."""

    total: Row = field(default_factory=lambda: Row("total"))
    by: dict[str, dict[str, Row]] = field(default_factory=lambda: {d: {} for d in DIMENSIONS})
    first: float | None = None
    last: float | None = None
    #: Savings split by lever with the one rule of :mod:`costopt_core.levers` (a routed
    #: batch call saves on routing and batch both; the table above files the record once).
    saved_by_lever: dict[str, float] = field(default_factory=dict)
    #: Ledger rows skipped because they hold no cost record (damaged, written by hand).
    skipped_rows: int = 0
    #: The start of the records read (``--since``), epoch seconds; ``None``: all.
    since: float | None = None
    _days: dict[float, str] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_records(cls, records: Iterable[CostRecord]) -> LedgerReport:
        report = cls()
        for record in records:
            report.add(record)
        return report

    def add(self, record: CostRecord) -> None:
        self.total.add(record)
        for lever, amount in lever_savings(record).items():
            self.saved_by_lever[lever] = self.saved_by_lever.get(lever, 0.0) + amount
        keys = {
            "lever": lever_of(record),
            "model": label(record.model),
            "tier": "(none)" if record.tier is None else label(record.tier),
            "day": self._day_of(record.timestamp),
        }
        for dimension, key in keys.items():
            rows = self.by[dimension]
            row = rows.get(key)
            if row is None:
                row = rows[key] = Row(key)
            row.add(record)
        ts = record.timestamp
        self.first = ts if self.first is None else min(self.first, ts)
        self.last = ts if self.last is None else max(self.last, ts)

    def _day_of(self, timestamp: float) -> str:
        """:func:`day_of`, named once per UTC day: formatting a date for each record
        was a fifth of a long ledger's fold."""
        start = timestamp // _DAY * _DAY
        # Within a microsecond of midnight, datetime's rounding of the timestamp picks
        # the day: ask it, so the figures stay those of day_of.
        if not _MICROSECOND <= timestamp - start <= _DAY - _MICROSECOND:
            return day_of(timestamp)
        day = self._days.get(start)
        if day is None:
            day = self._days[start] = day_of(timestamp)
        return day

    def rows(self, dimension: str) -> list[Row]:
        """The rows of ``dimension``: days in date order, the others by spend, largest first."""
        rows = list(self.by[dimension].values())
        if dimension == "day":
            return sorted(rows, key=lambda r: r.model)
        return sorted(rows, key=lambda r: (-r.cost_usd, -r.saved_usd, r.model))

    def headline(self) -> list[str]:
        """The two opening lines: what the ledger holds, and spend against savings."""
        t = self.total
        if not t.events:
            if self.since is not None:  # the ledger may hold older ones
                return [f"costopt report: no records since {day_of(self.since)}"]
            return ["costopt report: the ledger holds no records"]
        span = f"{day_of(self.first or 0.0)} to {day_of(self.last or 0.0)}"
        lines = [f"costopt report: {t.events} events, {span}"]
        without = t.cost_usd + t.saved_usd  # what the same calls cost without costopt
        saved = f"saved {money(t.saved_usd)}"
        if without > 0:
            saved += f" ({t.saved_usd / without:.1%} of {money(without)} without costopt)"
        lines.append(f"spent {money(t.cost_usd)}, {saved}")
        notes = []
        if t.unpriced_events:
            notes.append(f"{t.unpriced_events} unpriced (cost unknown, not counted as $0)")
        if t.estimated_events:
            notes.append(f"{t.estimated_events} with usage estimated from text")
        if notes:
            lines.append("of which " + "; ".join(notes))
        if self.skipped_rows:
            lines.append(
                f"{self.skipped_rows} malformed ledger row(s) skipped (not a cost record; "
                "the first is logged)"
            )
        parts = [
            f"{lever.replace('_', ' ')} {money(self.saved_by_lever[lever])}"
            for lever in LEVERS
            if self.saved_by_lever.get(lever)
        ]
        if parts:
            lines.append("saved by lever: " + ", ".join(parts))
        return lines

    def to_text(self) -> str:
        lines = self.headline()
        if not self.total.events:
            return "\n".join(lines)
        # One key width for every table, so their columns line up.
        width = max(len(k) for d in DIMENSIONS for k in (f"by {d}", *self.by[d]))
        for dimension in DIMENSIONS:
            rows = self.rows(dimension)
            head = f"by {dimension}".ljust(width)
            head += "".join(f"  {_HEADERS[f]:>{_width(f)}}" for f in FIGURES)
            lines += ["", head]
            for row in rows:
                cells = "".join(f"  {cell(row, f):>{_width(f)}}" for f in FIGURES)
                lines.append(row.model.ljust(width) + cells)
        return "\n".join(lines)

    def to_csv(self) -> str:
        """One line per dimension and key (``dimension,key,<figures>``), then the total;
        dollars at full precision (``2.3e-06``, see :func:`cell`)."""
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(["dimension", "key", *FIGURES])
        for dimension in DIMENSIONS:
            for row in self.rows(dimension):
                writer.writerow([dimension, row.model, *_exact_cells(row)])
        writer.writerow(["total", "total", *_exact_cells(self.total)])
        return out.getvalue()


def money(amount: float, digits: int = 6) -> str:
    """Dollars as the report writes them, the sign before the ``$``.

    Example:
        >>> money(0.0025), money(-0.001), money(-0.00012, 4), money(-0.0)
        ('$0.002500', '-$0.001000', '-$0.0001', '$0.000000')
    """
    sign = "-" if amount < 0 else ""
    return f"{sign}${abs(amount):.{digits}f}"


def _exact_cells(row: Row) -> list[str]:
    return [cell(row, f, exact=True) for f in FIGURES]


def _width(figure: str) -> int:
    return max(len(_HEADERS[figure]), 9 if figure.endswith("_usd") else 6)


def cell(row: Row, figure: str, *, exact: bool = False) -> str:
    """A figure of a row as shown in tables (dollars to the micro-dollar) or, ``exact``,
    written to CSV (dollars as Python's shortest exact float, so a $2.3e-06 call is
    never read back as 0.000002 or $0). The spend of a row whose every event is
    unpriced is ``unknown``, never ``0.000000``.

    Example:
        >>> row = Row("m", calls=1, cost_usd=2.3e-06)
        >>> cell(row, "cost_usd"), cell(row, "cost_usd", exact=True), cell(row, "calls")
        ('0.000002', '2.3e-06', '1')
    """
    if figure == "cost_usd" and row.unpriced_events == row.events > 0:
        return "unknown"
    value = getattr(row, figure)
    if not figure.endswith("_usd"):
        return str(value)
    return repr(float(value)) if exact else f"{value:.6f}"


# -- the ledger to read --------------------------------------------------------------


def open_ledger(spec: str, table: str | None = None) -> SQLLedger:
    """The ledger named by ``spec``: a PostgreSQL DSN, or the path of an existing
    SQLite ledger file, opened read-only (never created here: a mistyped path is an
    error, and so is a file that holds no costopt ledger)."""
    options = {} if table is None else {"table": table}
    # Read-only: a report never creates tables (or switches a SQLite journal mode), so
    # a ledger on a read-only disk, a mistyped path or table name, is read or refused.
    if _DSN.match(spec):
        from costopt_core.stores.postgres import PostgresLedger

        return PostgresLedger(spec, read_only=True, **options)
    from costopt_core.stores.sqlite_ledger import LedgerTableNotFound, SQLiteLedger

    try:
        return SQLiteLedger(spec, read_only=True, **options)
    except LedgerTableNotFound as exc:  # name the file's ledgers as this command takes them
        raise ValueError(exc.explain("--table")) from None


def read_report(spec: str, table: str | None = None, since: float | None = None) -> LedgerReport:
    """The report of the ledger named by ``spec`` (see :func:`open_ledger`), from ``since``."""
    ledger = open_ledger(spec, table)
    try:
        report = LedgerReport.from_records(records_of(ledger, since))
        report.skipped_rows = ledger.malformed_rows
        report.since = since
    finally:
        ledger.close()
    return report


def records_of(ledger: LedgerProtocol, since: float | None = None) -> Iterable[CostRecord]:
    """``ledger``'s records from ``since``, oldest first: streamed when the ledger can
    (``SQLiteLedger.iter_records``, flat memory however long the ledger), else its list.

    Example:
        >>> from costopt_core.ledger import CostLedger
        >>> ledger = CostLedger()
        >>> ledger.record(CostRecord("m", cost_usd=0.5, timestamp=10.0))
        >>> [r.cost_usd for r in records_of(ledger, since=5.0)]
        [0.5]
    """
    stream = getattr(ledger, "iter_records", None)
    return ledger.records(since) if stream is None else stream(since)


def _since(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return datetime.strptime(value, "%Y-%m-%d").replace(tzinfo=UTC).timestamp()
    except ValueError:
        raise ValueError(f"--since must be a date YYYY-MM-DD, got {value!r}") from None


# -- the command ---------------------------------------------------------------------


SUMMARY = "spend and savings per model, tier, lever and day from a ledger"
DESCRIPTION = (
    "Spend and savings per model, tier, lever (routing, cache, cascade, "
    "direct) and day, from a SQLite ledger file or a PostgreSQL DSN."
)


def register(subparsers: Any) -> argparse.ArgumentParser:
    parser = add_command(subparsers, "report", SUMMARY, DESCRIPTION, run)
    parser.add_argument("ledger", metavar="LEDGER", help="SQLiteLedger file or PostgreSQL DSN")
    parser.add_argument("--table", help="the ledger's table (default costopt_ledger)")
    parser.add_argument("--since", metavar="YYYY-MM-DD", help="only records from this UTC day")
    outputs = {
        "--csv": "the figures as CSV",
        "--html": "a self-contained HTML page",
        "--png": "a chart (extra [plot])",
    }
    for flag, what in outputs.items():
        parser.add_argument(flag, metavar="OUT", help=f"write {what}")
    return parser


def run(args: argparse.Namespace) -> int:
    if args.png:  # as eval-router --plot: a missing extra is refused before any file
        require_plot("--png")
    since = _since(args.since)
    try:
        report = read_report(args.ledger, args.table, since)
    except (ConnectionError, sqlite3.Error) as exc:
        # The server down or the file unreadable: the command's error line, no traceback.
        raise ValueError(" ".join(str(exc).split())) from None
    _write(report, args)  # a reader that leaves (``| head``): see cli.main
    return 0


def _write(report: LedgerReport, args: argparse.Namespace) -> None:
    """Print the report and write the files the command line asked for."""
    if args.png:
        from costopt_core.commands.report_render import write_png

        write_png(report, args.png)
    print(report.to_text())
    if args.csv:
        with open(args.csv, "w", encoding="utf-8", newline="") as fh:
            fh.write(report.to_csv())
        print(f"CSV written to {args.csv}")
    if args.html:
        from costopt_core.commands.report_render import to_html

        with open(args.html, "w", encoding="utf-8") as fh:
            fh.write(to_html(report))
        print(f"HTML written to {args.html}")
    if args.png:
        print(f"chart written to {args.png}")
    sys.stdout.flush()  # a closed pipe fails here, inside the handler above


__all__ = [
    "DIMENSIONS",
    "FIGURES",
    "LedgerReport",
    "Row",
    "cell",
    "day_of",
    "label",
    "lever_of",
    "money",
    "open_ledger",
    "read_report",
    "records_of",
    "register",
    "run",
]
