"""The cost report: the JSON-ready dict of a ledger summary, its table, and CSV.

Example:
    >>> from costopt_core.cost_report import format_report, report_dict
    >>> from costopt_core.ledger import CostRecord, summarize
    >>> records = [CostRecord("gpt-4o-mini", tier="cheap", cost_usd=0.001, saved_usd=0.004)]
    >>> report = report_dict(summarize(records), breakdown=RecordBreakdown.of(records,
    ...                      summarize(records)))
    >>> report["total_cost"], report["saved_routing_usd"]
    (0.001, 0.004)
    >>> print(format_report(report).splitlines()[-1])  # doctest: +ELLIPSIS
    saved: routing 0.004000 USD (calls made on a cheaper tier, against the baseline), cache ...

Rendering only: ``CostAccountant.to_dict()`` / ``report()`` build it from their ledger,
``costopt report LEDGER`` from a ledger file. Savings are split by lever with the one
rule of :mod:`costopt_core.levers`, read from the records at report time.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from costopt_core.ledger import (
    CostRecord,
    DroppedRecords,
    LedgerSummary,
    ModelTotals,
    is_estimated,
)
from costopt_core.levers import (
    BATCH,
    CACHE,
    COMPRESSION,
    LEVERS,
    PROVIDER_CACHE,
    ROUTING,
    lever_savings,
)

#: A model's status in a report when no price is known for it.
UNPRICED = "unpriced"

_COUNT_FIELDS = (
    "calls",
    "cache_hits",
    "cascade_attempts",
    "input_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "output_tokens",
    "reasoning_tokens",
)


def _model_row(totals: ModelTotals) -> dict[str, Any]:
    row = totals.to_dict()
    row["cost_usd"] = totals.cost_usd if totals.priced else None
    row["status"] = "priced" if totals.priced else UNPRICED
    return row


@dataclass(slots=True)
class _ModelBreakdown:
    estimated_calls: int = 0
    saved: dict[str, float] = field(default_factory=dict)  # lever -> USD

    def add(self, parts: Mapping[str, float]) -> None:
        for lever, amount in parts.items():
            self.saved[lever] = self.saved.get(lever, 0.0) + amount

    @property
    def saved_routing_usd(self) -> float:
        return self.saved.get(ROUTING, 0.0)

    @property
    def saved_cache_usd(self) -> float:
        return self.saved.get(CACHE, 0.0)

    def lever_fields(self) -> dict[str, float]:
        """``saved_<lever>_usd`` for every lever (0.0 where it saved nothing)."""
        return {f"saved_{lever}_usd": self.saved.get(lever, 0.0) for lever in LEVERS}


@dataclass(slots=True)
class RecordBreakdown:
    """What a ledger summary does not split: savings per lever and estimated calls.

    Read from the records at report time (never on the per-call path), by the one rule
    of :mod:`costopt_core.levers`. ``complete`` is false when the ledger kept fewer
    records than its totals count (an in-memory ledger drops its oldest records past
    ``max_records``): the split then covers the kept ones.

    Example:
        >>> from costopt_core.ledger import CostRecord, summarize
        >>> records = [
        ...     CostRecord("m", tier="simple", cost_usd=1.0, saved_usd=3.0),
        ...     CostRecord("m", kind="cache_hit", cost_usd=0.0, saved_usd=1.0),
        ...     CostRecord("m", cost_usd=0.5, tags={"usage": "estimated"}),
        ... ]
        >>> b = RecordBreakdown.of(records, summarize(records))
        >>> t = b.total()
        >>> t.saved_routing_usd, t.saved_cache_usd, t.estimated_calls, b.complete
        (3.0, 1.0, 1, True)
    """

    models: dict[str, _ModelBreakdown]
    complete: bool = True

    @classmethod
    def of(
        cls,
        records: Iterable[CostRecord],
        summary: LedgerSummary,
        dropped: DroppedRecords | None = None,
    ) -> RecordBreakdown:
        """Read from ``records``, plus what the records the ledger dropped said
        (``dropped``, from a ``DroppingLedger``): then the split covers every event."""
        models: dict[str, _ModelBreakdown] = {}
        seen = 0
        for record in records:
            seen += 1
            row = models.get(record.model)
            if row is None:
                row = models[record.model] = _ModelBreakdown()
            row.add(lever_savings(record))
            if record.kind != "cache_hit" and is_estimated(record):
                row.estimated_calls += 1
        if dropped is not None:
            seen += dropped.records
            for model in dropped.saved.keys() | dropped.estimated_calls.keys():
                row = models.setdefault(model, _ModelBreakdown())
                row.add(dropped.saved.get(model, {}))
                row.estimated_calls += dropped.estimated_calls.get(model, 0)
        events = sum(m.calls + m.cache_hits + m.cascade_attempts for m in summary.models.values())
        return cls(models, seen >= events)

    def total(self) -> _ModelBreakdown:
        """The figures of every model added up."""
        out = _ModelBreakdown()
        for row in self.models.values():
            out.estimated_calls += row.estimated_calls
            out.add(row.saved)
        return out


def report_dict(
    summary: LedgerSummary,
    *,
    baseline_model: str | None = None,
    budgets: list[dict[str, Any]] | None = None,
    on_budget: str | None = None,
    breakdown: RecordBreakdown | None = None,
) -> dict[str, Any]:
    """The JSON-ready report of a summary (what ``to_dict()`` returns).

    ``models[name]["cost_usd"]`` is ``None`` for an unpriced model (its priced part, if
    some records were priced, stays in ``priced_cost_usd``); totals add priced spend.
    ``unpriced_calls`` counts the events whose cost is unknown. With a ``breakdown``
    (``to_dict()`` always passes one): ``estimated_calls`` (usage counted from the
    text, the provider reported none) and the savings per lever (``saved_routing_usd``,
    ``saved_cache_usd``, ``saved_compression_usd``, ``saved_provider_cache_usd``,
    ``saved_batch_usd``: :mod:`costopt_core.levers`), whose sum is ``total_saved``.
    """
    models: dict[str, Any] = {}
    for name in sorted(summary.models):
        totals = summary.models[name]
        row = _model_row(totals)
        row["priced_cost_usd"] = totals.cost_usd
        row["unpriced_calls"] = totals.unpriced_events
        if breakdown is not None:
            split = breakdown.models.get(name) or _ModelBreakdown()
            row["estimated_calls"] = split.estimated_calls
            row.update(split.lever_fields())
        models[name] = row
    totals_row = {
        field: sum(getattr(m, field) for m in summary.models.values()) for field in _COUNT_FIELDS
    }
    split_row: dict[str, Any] = {}
    if breakdown is not None:
        total = breakdown.total()
        split_row = {
            "estimated_calls": total.estimated_calls,
            **total.lever_fields(),
            "breakdown_complete": breakdown.complete,
        }
    return {
        "total_cost": summary.total_cost,
        "total_saved": summary.total_saved,
        **split_row,
        "unpriced_calls": sum(m.unpriced_events for m in summary.models.values()),
        "baseline_cost": sum((m.baseline_cost_usd for m in summary.models.values()), 0.0),
        "baseline_model": baseline_model,
        **totals_row,
        "unpriced_models": summary.unpriced_models,
        "models": models,
        "first_timestamp": summary.first_timestamp,
        "last_timestamp": summary.last_timestamp,
        "budgets": budgets or [],
        "on_budget": on_budget,
    }


def _money(value: float | None) -> str:
    return UNPRICED if value is None else f"{value:.6f}"


_TOKEN_COLUMNS = ("input_tokens", "cache_read_tokens", "output_tokens", "reasoning_tokens")


def _report_cells(
    label: str, figures: Mapping[str, Any], spend: str, saved: str
) -> tuple[str, ...]:
    """One line of the report table: a model's figures, or the totals."""
    return (
        label,
        str(figures["calls"] + figures["cascade_attempts"]),
        str(figures["cache_hits"]),
        *(f"{figures[column]:,}" for column in _TOKEN_COLUMNS),
        spend,
        saved,
    )


_LEVER_NOTES = {
    ROUTING: "calls made on a cheaper tier, against the baseline",
    CACHE: "{cache_hits} hits, the avoided calls' price; this plugin's cache",
    COMPRESSION: "input tokens a compressor removed",
    PROVIDER_CACHE: "the provider's prompt cache, against plain input",
    BATCH: "batch API rates, against direct calls",
}


def _savings_line(report: Mapping[str, Any]) -> str:
    # Routing and cache always show (a user looks for them); the others once they saved.
    parts = []
    # An unpriced model's calls and hits saved an unknown amount: a lower bound, marked
    # as the spend total is, never a silent 0.000000.
    bound = "+" if report.get("unpriced_models") else ""
    for lever in LEVERS:
        amount = report.get(f"saved_{lever}_usd", 0.0)
        if amount or lever in (ROUTING, CACHE):
            note = _LEVER_NOTES[lever].format(cache_hits=report.get("cache_hits", 0))
            parts.append(f"{lever.replace('_', ' ')} {amount:.6f}{bound} USD ({note})")
    partial = "" if report.get("breakdown_complete", True) else " (of the records kept)"
    return "saved: " + ", ".join(parts) + partial


def format_report(report: Mapping[str, Any]) -> str:
    """Render ``report_dict`` output as a fixed-width table."""
    header = (
        "model",
        "calls",
        "hits",
        "input",
        "cached",
        "output",
        "reasoning",
        "spend USD",
        "saved USD",
    )
    rows = [
        _report_cells(
            name,
            m,
            _money(m["cost_usd"]),
            # An unpriced model's savings are unknown as well: never a silent 0.000000.
            _money(None if m["status"] == UNPRICED and not m["saved_usd"] else m["saved_usd"]),
        )
        for name, m in report["models"].items()
    ]
    spent = _money(report["total_cost"]) + ("+" if report["unpriced_models"] else "")
    total = _report_cells("TOTAL", report, spent, _money(report["total_saved"]))
    table = [header, *rows, total]
    widths = [max(len(r[i]) for r in table) for i in range(len(header))]

    def line(cells: tuple[str, ...]) -> str:
        first = cells[0].ljust(widths[0])
        rest = "  ".join(c.rjust(w) for c, w in zip(cells[1:], widths[1:], strict=True))
        return f"{first}  {rest}"

    rule = "-" * len(line(header))
    out = [line(header), rule, *(line(r) for r in rows), rule, line(total)]
    tiers: dict[str, dict[str, int]] = {}
    for name, m in report["models"].items():
        for tier, count in (m.get("tiers") or {}).items():
            tiers.setdefault(tier, {})[name] = count
    if tiers:
        out.append(
            "routed: "
            + "; ".join(
                f"{tier} " + ", ".join(f"{n} x{c}" for n, c in models.items())
                for tier, models in tiers.items()
            )
        )
    if "saved_routing_usd" in report:
        out.append(_savings_line(report))
    if report.get("cache_write_tokens"):
        # The table's "cached" column is reads; writes bill above plain input and explain
        # a provider-cache saving below zero.
        out.append(
            f"provider cache: {report['cache_read_tokens']:,} input tokens read, "
            f"{report['cache_write_tokens']:,} written (writes bill above plain input)"
        )
    if report.get("baseline_model"):
        out.append(f"routing savings against baseline model: {report['baseline_model']}")
    if report.get("baseline_unpriced"):
        out.append(
            f"routing savings unknown: no price for baseline model {report['baseline_model']!r}"
            " (register one with set_price); the routing figure above counts none of them"
        )
    if report.get("estimated_calls"):
        out.append(
            f"estimated: {report['estimated_calls']} calls reported no token usage; their "
            "tokens were counted from the prompt and answer text"
        )
    if report.get("local_models"):
        out.append(
            "local (self-hosted, priced per hour or at $0): " + ", ".join(report["local_models"])
        )
    if report["unpriced_models"]:
        out.append(
            f"unpriced: {report.get('unpriced_calls', 0)} calls (no price known, or no usage "
            "and no text; counted, cost unknown, excluded from the spend total): "
            + ", ".join(report["unpriced_models"])
        )
    for budget in report.get("budgets", []):
        label = "total" if budget["period"] is None else f"per {budget['period']}"
        state = "EXCEEDED" if budget["exceeded"] else f"{budget['remaining_usd']:.6f} left"
        out.append(
            f"budget ({label}): {budget['spent_usd']:.6f} of {budget['limit_usd']:.6f} USD, "
            f"{state} [on_budget={report.get('on_budget')}]"
        )
    return "\n".join(out)


_CSV_FIELDS = ("model", "status", *_COUNT_FIELDS, "cost_usd", "saved_usd", "baseline_cost_usd")


def report_csv(report: Mapping[str, Any]) -> str:
    """Per-model CSV rows and a TOTAL row; an unpriced model's cost cell is "unpriced"."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(_CSV_FIELDS)
    for name, m in report["models"].items():
        writer.writerow(
            [
                name,
                m["status"],
                *(m[f] for f in _COUNT_FIELDS),
                UNPRICED if m["cost_usd"] is None else repr(m["cost_usd"]),
                repr(m["saved_usd"]),
                repr(m["baseline_cost_usd"]),
            ]
        )
    writer.writerow(
        [
            "TOTAL",
            "partial" if report["unpriced_models"] else "priced",
            *(report[f] for f in _COUNT_FIELDS),
            repr(report["total_cost"]),
            repr(report["total_saved"]),
            repr(report["baseline_cost"]),
        ]
    )
    return buf.getvalue()


_RECORD_FIELDS = tuple(CostRecord.__dataclass_fields__)


def records_csv(records: Iterable[CostRecord]) -> str:
    """Every record as one CSV row (tags as JSON); an unpriced cost reads "unpriced"."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(_RECORD_FIELDS)
    for record in records:
        data = record.to_dict()
        data["tags"] = json.dumps(data["tags"], sort_keys=True)
        if data["cost_usd"] is None:
            data["cost_usd"] = UNPRICED
        writer.writerow(["" if data[f] is None else data[f] for f in _RECORD_FIELDS])
    return buf.getvalue()


__all__ = [
    "UNPRICED",
    "RecordBreakdown",
    "format_report",
    "records_csv",
    "report_csv",
    "report_dict",
]
