"""A CostRecord holds only figures that can be: one NaN or negative cost would poison
every total and budget read from a ledger, in memory and in every database."""

from __future__ import annotations

import math

import numpy as np
import pytest

from costopt_core.ledger import CostLedger, CostRecord

NAN, INF = math.nan, math.inf


@pytest.mark.parametrize(
    ("field", "value", "error", "allowed"),
    [
        ("cost_usd", NAN, ValueError, "finite number >= 0"),
        ("cost_usd", INF, ValueError, "finite number >= 0"),
        ("cost_usd", -5.0, ValueError, "finite number >= 0"),
        ("cost_usd", "0.5", TypeError, "finite number >= 0"),
        ("saved_usd", NAN, ValueError, "finite number"),
        ("saved_usd", -INF, ValueError, "finite number"),
        ("baseline_cost_usd", -1.0, ValueError, "finite number >= 0"),
        ("baseline_cost_usd", INF, ValueError, "finite number >= 0"),
        ("timestamp", NAN, ValueError, "finite number"),
        ("timestamp", "yesterday", TypeError, "finite number"),
        ("input_tokens", -3, ValueError, "int >= 0"),
        ("output_tokens", "12", TypeError, "int >= 0"),
        ("reasoning_tokens", 1.5, TypeError, "int >= 0"),
        ("cache_read_tokens", True, TypeError, "int >= 0"),
    ],
)
def test_impossible_figures_are_refused_naming_the_field_and_the_range(
    field, value, error, allowed
):
    with pytest.raises(error, match=f"CostRecord.{field} must be an? .*{allowed}"):
        CostRecord("m", **{field: value})


def test_figures_a_ledger_legitimately_holds_are_kept():
    # A routed call that cost more than the baseline and a rejected cascade attempt
    # save a negative amount; an unpriced call has no cost; a hit costs 0.
    records = [
        CostRecord("m", cost_usd=0.3, saved_usd=-0.1, baseline_cost_usd=0.2, timestamp=0),
        CostRecord("m", kind="cascade_attempt", cost_usd=0.01, saved_usd=-0.01),
        CostRecord("m", cost_usd=None, saved_usd=None, input_tokens=np.int64(7)),
        CostRecord("m", kind="cache_hit", cost_usd=0, saved_usd=0.002),
    ]
    assert records[2].input_tokens == 7 and type(records[2].input_tokens) is int
    ledger = CostLedger()
    for record in records:
        ledger.record(record)
    assert ledger.spent_since(None) == pytest.approx(0.31)
    assert ledger.summary().models["m"].saved_usd == pytest.approx(-0.108)
