"""The cost handler's base lives in ``costopt_core.cost_handler`` and builds a
``CostAccountant``, while ``costopt_core.accounting`` still hands out every name it
exported before the split: either module may be imported first."""

from __future__ import annotations

import subprocess
import sys

import pytest

import costopt_core.accounting as accounting
from costopt_core import cost_handler, model_warnings, usage

# Names the faces and tests imported from accounting before it was split, with the
# module that defines each now.
MOVED = {
    "HANDLER_ARGUMENTS": cost_handler,
    "AccountantViews": cost_handler,
    "CostHandlerBase": cost_handler,
    "refuse_handler_arguments": cost_handler,
    "CallText": usage,
    "UsageCounts": usage,
    "price_usage": usage,
    "usage_counts": usage,
    "usage_from_mapping": usage,
    "warn_unpriced": model_warnings,
    "warn_unmetered": model_warnings,
}


@pytest.mark.parametrize("name", sorted(MOVED))
def test_accounting_hands_out_the_defining_modules_object(name: str) -> None:
    assert getattr(accounting, name) is getattr(MOVED[name], name)
    assert name in accounting.__all__


def test_every_name_in_accounting_all_resolves() -> None:
    missing = [name for name in accounting.__all__ if not hasattr(accounting, name)]
    assert missing == []


@pytest.mark.parametrize(
    "first",
    ["costopt_core.cost_handler", "costopt_core.accounting", "costopt_core.usage"],
)
def test_either_module_can_be_imported_first(first: str) -> None:
    # A fresh interpreter: this one has both modules loaded already.
    code = (
        f"import {first}\n"
        "from costopt_core.accounting import CostHandlerBase, OnBudget\n"
        "from costopt_core.cost_handler import CostHandlerBase as Base\n"
        "assert CostHandlerBase is Base\n"
        "class Handler(Base): pass\n"
        "assert Handler(budget_usd=1.0).accountant.budgets[0].limit_usd == 1.0\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
