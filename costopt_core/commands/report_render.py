"""Pictures of a ``costopt report``: a PNG chart (matplotlib, extra ``[plot]``) and a
self-contained HTML page (inline SVG bar charts and tables; no script, no external
asset, no extra needed).

Example:
    >>> from costopt_core.commands.report import LedgerReport
    >>> from costopt_core.commands.report_render import to_html
    >>> from costopt_core.ledger import CostRecord
    >>> report = LedgerReport.from_records([CostRecord("m<1>", tier="simple", cost_usd=0.5,
    ...                                                saved_usd=1.5, timestamp=0.0)])
    >>> page = to_html(report)
    >>> page.startswith("<!DOCTYPE html>"), "<svg" in page, "m&lt;1&gt;" in page
    (True, True, True)
    >>> "http" in page.replace("http://www.w3.org/2000/svg", "")  # nothing fetched
    False
"""

from __future__ import annotations

import html
from typing import Any

from costopt_core.commands.report import DIMENSIONS, FIGURES, LedgerReport, Row, cell, money
from costopt_core.exports import require_extra

SPEND_COLOR = "#d62728"
SAVED_COLOR = "#2ca02c"

_TITLES = {
    "lever": "by lever",
    "model": "by model",
    "tier": "by tier",
    "day": "by day (UTC)",
}

# -- PNG -----------------------------------------------------------------------------


def write_png(report: LedgerReport, path: str) -> None:
    """Spend and savings per lever, model, tier and day as a 2x2 chart in ``path``."""
    # Before the import below: without matplotlib the error names the [plot] extra.
    require_extra("matplotlib", "plot", "costopt report --png")
    import matplotlib.pyplot as plt

    fig = chart(report)
    try:
        fig.savefig(path, dpi=110)
    finally:
        plt.close(fig)


def chart(report: LedgerReport) -> Any:
    """The matplotlib ``Figure`` :func:`write_png` saves (close it with
    ``matplotlib.pyplot.close``). Every text of ours is shown as written: a line with
    two ``$`` (``spent $0.000000, saved $0.000000``) is never read as mathtext.

    Example:
        >>> import matplotlib.pyplot as plt
        >>> from costopt_core.ledger import CostRecord
        >>> fig = chart(LedgerReport.from_records([CostRecord("llama3.1:8b", cost_usd=0.0)]))
        >>> [(t.get_text().splitlines()[1], t.get_parse_math()) for t in fig.texts]
        [('spent $0.000000, saved $0.000000', False)]
        >>> plt.close(fig)
    """
    require_extra("matplotlib", "plot", "costopt report --png")
    import matplotlib

    matplotlib.use("Agg")  # files only, never a window
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(13, 9))
    for ax, dimension in zip(axes.flat, DIMENSIONS, strict=True):
        rows = report.rows(dimension)
        _bars(ax, rows, _TITLES[dimension], vertical=dimension == "day")
    fig.suptitle("\n".join(report.headline()[:2]), fontsize=11, parse_math=False)
    handles = [
        plt.Rectangle((0, 0), 1, 1, color=SPEND_COLOR),
        plt.Rectangle((0, 0), 1, 1, color=SAVED_COLOR),
    ]
    fig.legend(handles, ["spend (USD)", "saved (USD)"], loc="lower center", ncol=2)
    fig.tight_layout(rect=(0, 0.04, 1, 0.95))
    return fig


def _bars(ax: Any, rows: list[Row], title: str, *, vertical: bool) -> None:
    # Keys are the application's text (a tier named "$5 plan"): no mathtext for any of
    # ours, where two "$" on a line would be typeset as a formula.
    ax.set_title(title, parse_math=False)
    if not rows:
        ax.text(
            0.5,
            0.5,
            "no records",
            ha="center",
            va="center",
            transform=ax.transAxes,
            parse_math=False,
        )
        return
    keys = [_short(r.model) for r in rows]
    spend = [r.cost_usd for r in rows]
    saved = [r.saved_usd for r in rows]
    positions = list(range(len(rows)))
    width = 0.4
    if vertical:  # days: time runs left to right
        ax.bar([p - width / 2 for p in positions], spend, width, color=SPEND_COLOR)
        ax.bar([p + width / 2 for p in positions], saved, width, color=SAVED_COLOR)
        step = max(1, len(keys) // 10)  # at most ~10 date labels
        ax.set_xticks(
            positions[::step], keys[::step], rotation=30, ha="right", fontsize=8, parse_math=False
        )
        ax.set_ylabel("USD")
    else:  # largest spend on top
        ax.barh([p - width / 2 for p in positions], spend, width, color=SPEND_COLOR)
        ax.barh([p + width / 2 for p in positions], saved, width, color=SAVED_COLOR)
        ax.set_yticks(positions, keys, fontsize=8, parse_math=False)
        ax.invert_yaxis()
        ax.set_xlabel("USD")
    if vertical:
        ax.axhline(0, color="#888", linewidth=0.6)
        return
    ax.axvline(0, color="#888", linewidth=0.6)
    for position, row in zip(positions, rows, strict=True):
        if row.unpriced_events:  # an unknown cost is said, never drawn as a $0 bar
            ax.annotate(
                f"  {row.unpriced_events} unpriced",
                (max(row.cost_usd, 0.0), position - width / 2),
                va="center",
                fontsize=8,
                color="#555",
                parse_math=False,
            )


def _short(key: str, limit: int = 28) -> str:
    return key if len(key) <= limit else key[: limit - 1] + "…"


# -- HTML ----------------------------------------------------------------------------

_STYLE = (
    """
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; max-width: 70em; }
h1 { font-size: 1.4em; } h2 { font-size: 1.1em; margin-top: 2em; }
table { border-collapse: collapse; margin-top: .5em; font-size: .9em; }
th, td { padding: .2em .8em; border-bottom: 1px solid #ddd; }
td.n, th.n { text-align: right; font-variant-numeric: tabular-nums; }
.key { font-family: ui-monospace, monospace; }
svg text { font-size: 11px; }
"""
    + f".spend {{ fill: {SPEND_COLOR}; }} .saved {{ fill: {SAVED_COLOR}; }}"
)


def to_html(report: LedgerReport) -> str:
    """The report as one HTML page: headline, then per dimension a bar chart and a table."""
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8"><title>costopt report</title>',
        f"<style>{_STYLE}</style></head><body>",
        "<h1>costopt report</h1>",
        *(f"<p>{html.escape(line)}</p>" for line in report.headline()),
    ]
    if report.total.events:
        parts.append(
            '<p><svg width="14" height="10"><rect class="spend" width="14" height="10"/></svg>'
            ' spend &nbsp; <svg width="14" height="10"><rect class="saved" width="14"'
            ' height="10"/></svg> saved</p>'
        )
        for dimension in DIMENSIONS:
            rows = report.rows(dimension)
            parts += [f"<h2>{_TITLES[dimension]}</h2>", _svg(rows), _table(dimension, rows)]
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def _svg(rows: list[Row], bar: int = 9, label_width: int = 220, plot_width: int = 420) -> str:
    """Horizontal bars, spend above saved, scaled to the largest amount; negative
    savings (cascade attempts) extend left of the zero line."""
    lowest = min([0.0, *(r.saved_usd for r in rows)])
    highest = max([0.0, *(r.cost_usd for r in rows), *(r.saved_usd for r in rows)])
    span = (highest - lowest) or 1.0
    zero = label_width + plot_width * (-lowest / span)
    row_height = 2 * bar + 8
    height = row_height * len(rows) + 4
    width = label_width + plot_width + 260
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}">']
    for i, row in enumerate(rows):
        y = i * row_height + 2
        out.append(
            f'<text x="{label_width - 6}" y="{y + bar + 3}" text-anchor="end">'
            f"{html.escape(_short(row.model, 32))}</text>"
        )
        # Only unpriced calls: the spend is unknown, as in the table, never "$0".
        unknown = cell(row, "cost_usd") == "unknown"
        for offset, amount, css in ((0, row.cost_usd, "spend"), (bar, row.saved_usd, "saved")):
            length = plot_width * abs(amount) / span
            x = zero if amount >= 0 else zero - length
            tip = f"{css} unknown" if unknown and css == "spend" else f"{css} {money(amount)}"
            out.append(
                f'<rect class="{css}" x="{x:.1f}" y="{y + offset}" width="{length:.1f}"'
                f' height="{bar - 1}"><title>{tip}</title></rect>'
            )
        end = zero + plot_width * max(row.cost_usd, row.saved_usd, 0.0) / span
        note = f", {row.unpriced_events} unpriced" if row.unpriced_events else ""
        spent = "spend unknown" if unknown else f"{money(row.cost_usd, 4)} spent"
        out.append(
            f'<text x="{end + 4:.1f}" y="{y + bar + 3}">{spent}, '
            f"{money(row.saved_usd, 4)} saved{note}</text>"
        )
    out.append(f'<line x1="{zero:.1f}" y1="0" x2="{zero:.1f}" y2="{height}" stroke="#888"/>')
    out.append("</svg>")
    return "".join(out)


def _table(dimension: str, rows: list[Row]) -> str:
    head = "".join(f'<th class="n">{html.escape(f.replace("_", " "))}</th>' for f in FIGURES)
    lines = [f"<table><tr><th>{dimension}</th>{head}</tr>"]
    for row in rows:
        cells = "".join(f'<td class="n">{cell(row, f)}</td>' for f in FIGURES)
        lines.append(f'<tr><td class="key">{html.escape(row.model)}</td>{cells}</tr>')
    lines.append("</table>")
    return "\n".join(lines)


__all__ = ["chart", "to_html", "write_png"]
