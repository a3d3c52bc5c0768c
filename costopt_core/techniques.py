"""The seed's table of seven cost techniques, beside what this project measured.

Example:
    >>> from costopt_core.techniques import TECHNIQUES, technique_rows
    >>> [t.key for t in TECHNIQUES]  # doctest: +NORMALIZE_WHITESPACE
    ['routing', 'semantic_cache', 'prompt_compression', 'batch', 'quantisation',
     'distillation', 'kv_cache']
    >>> rows = technique_rows({"techniques": {"routing": {"saving": 0.334, "at": "95%",
    ...                         "data": "d.csv", "method": "m", "script": "s.py"}}})
    >>> rows[0].measured, rows[0].within_claim
    ('33.4%', False)
    >>> rows[2].measured
    'not measured'

The seed's figures are claims (the chapter names no data or method for them). A measured
figure is only ever read from the record a benchmark script wrote
(``costopt_core/data/techniques_measured.json``, by ``benchmarks/techniques.py``); each
entry names its data, method and script, and a technique without an entry reads
"not measured". Nothing here computes or guesses a saving.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: Where benchmark scripts record measured savings (shipped with the package).
MEASURED_PATH = Path(__file__).resolve().parent / "data" / "techniques_measured.json"


@dataclass(frozen=True)
class Technique:
    """One row of the seed's table: its claimed saving range (fractions) and notes."""

    key: str
    name: str
    claim_low: float
    claim_high: float
    latency: str
    difficulty: str
    quality: str
    lever: str  # where this project offers it (or that it does not)

    @property
    def claim(self) -> str:
        return f"{self.claim_low:.0%}-{self.claim_high:.0%}"


TECHNIQUES: tuple[Technique, ...] = (
    Technique("routing", "downgrade routing", 0.40, 0.70, "lower", "medium", "slight loss",
              "RouterChatModel / RouterLLM"),
    Technique("semantic_cache", "semantic cache", 0.30, 0.60, "much lower", "medium", "none",
              "SemanticLLMCache / SemanticCacheLLM"),
    Technique("prompt_compression", "prompt compression", 0.20, 0.40, "lower", "low",
              "may drop",
              "PromptCompressor, ChunkDocumentCompressor, NodeCompressor, middleware"),
    Technique("batch", "batch inference", 0.30, 0.50, "higher (more throughput)", "low", "none",
              "provider batch APIs: deferred_batch, router.batch(deferred=True)"),
    Technique("quantisation", "quantisation INT8/INT4", 0.50, 0.75, "lower", "medium",
              "slight loss", "local tiers: set_hourly_cost; costopt estimate --local-usd-per-hour"),
    Technique("distillation", "distillation", 0.60, 0.80, "lower", "high", "medium loss",
              "DistillationRecorder; costopt estimate --distill-share"),
    Technique("kv_cache", "KV-cache optimisation", 0.20, 0.30, "lower", "high", "none",
              "provider prompt caching: PromptCacheMiddleware"),
)  # fmt: skip


def load_measured(path: Path | str | None = None) -> dict[str, Any]:
    """The recorded measurements (``{}`` when the shipped record is absent: nothing
    measured; a record the caller names must exist)."""
    target = Path(path) if path is not None else MEASURED_PATH
    if path is None and not target.exists():
        return {}
    try:
        data = json.loads(target.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(
            f"{target}: not a JSON record of measurements (written by "
            f"benchmarks/techniques.py --write): {exc}"
        ) from None
    if not isinstance(data, dict):
        raise ValueError(f"{target}: expected a JSON object of recorded measurements")
    return data


@dataclass(frozen=True)
class TechniqueRow:
    technique: Technique
    measured: str  # "33.4%" or "not measured"
    saving: float | None
    within_claim: bool | None  # None when not measured
    at: str
    data: str
    method: str
    script: str


def technique_rows(record: Mapping[str, Any]) -> list[TechniqueRow]:
    """One row per seed technique, with its measurement from ``record`` if any."""
    entries = record.get("techniques") or {}
    rows = []
    for tech in TECHNIQUES:
        entry = entries.get(tech.key)
        if not isinstance(entry, Mapping) or not isinstance(entry.get("saving"), int | float):
            rows.append(TechniqueRow(tech, "not measured", None, None, "", "", "", ""))
            continue
        saving = float(entry["saving"])
        within = tech.claim_low <= saving <= tech.claim_high
        rows.append(
            TechniqueRow(
                tech,
                percent_beside_claim(saving, tech.claim_low, tech.claim_high),
                saving,
                within,
                str(entry.get("at", "")),
                str(entry.get("data", "")),
                str(entry.get("method", "")),
                str(entry.get("script", "")),
            )
        )
    return rows


def percent_beside_claim(saving: float, low: float, high: float) -> str:
    """``saving`` as a percentage with one decimal, or more when one would round it onto
    the other side of a claim's bound (the figure shown must agree with the verdict).

    Example:
        >>> percent_beside_claim(0.334, 0.4, 0.7), percent_beside_claim(0.1996, 0.2, 0.4)
        ('33.4%', '19.96%')
    """
    within = low <= saving <= high
    for digits in range(1, 6):
        text = f"{saving:.{digits}%}"
        shown = float(text[:-1]) / 100
        if (low <= shown <= high) == within:
            break
    return text


def _verdict(row: TechniqueRow) -> str:
    if row.saving is None:
        return ""
    if row.within_claim:
        return "within the claim"
    side = "below" if row.saving < row.technique.claim_low else "above"
    return f"{side} the claim"


def format_techniques(record: Mapping[str, Any], *, verbose: bool = False) -> str:
    """The table as text: one line per technique, then where each figure came from."""
    rows = technique_rows(record)
    header = ("technique", "seed claims", "measured here", "verdict", "in costopt")
    body = [
        (r.technique.name, r.technique.claim, r.measured, _verdict(r), r.technique.lever)
        for r in rows
    ]
    widths = [max(len(line[i]) for line in [header, *body]) for i in range(len(header))]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
        for line in [header, *body]
    ]
    lines.insert(1, "-" * len(lines[0]))
    out = ["The seed's techniques table: claimed saving vs measured here", *lines, ""]
    for row in rows:
        if row.saving is None:
            continue
        out.append(f"- {row.technique.name}: {row.measured} ({row.at})")
        out.append(f"    data: {row.data}")
        out.append(f"    how: {row.method}")
        out.append(f"    reproduce: python {row.script} --write")
        if verbose and row.saving is not None:
            details = (record.get("techniques") or {}).get(row.technique.key, {}).get("details")
            if details:
                out.append(f"    details: {json.dumps(details, sort_keys=True)}")
    when = record.get("measured_on")
    out.append(
        "'not measured': no benchmark of this project has recorded a figure for it"
        + (f"; figures recorded {when}" if when else "")
        + ". The seed's ranges are its own claims: it names no data or method."
    )
    return "\n".join(out)


__all__ = [
    "MEASURED_PATH",
    "TECHNIQUES",
    "Technique",
    "TechniqueRow",
    "format_techniques",
    "load_measured",
    "percent_beside_claim",
    "technique_rows",
]
