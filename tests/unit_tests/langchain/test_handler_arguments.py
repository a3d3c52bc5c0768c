"""A misspelt keyword to a cost handler names the class the user built and the argument
meant (issue 16's new-user audit: ``CostCallbackHandler(baseline=...)`` read
``CostHandlerBase.__init__() got an unexpected keyword argument 'baseline'``)."""

from __future__ import annotations

import inspect

import pytest

from costopt_core.accounting import HANDLER_ARGUMENTS, CostHandlerBase
from langchain_costopt import CostCallbackHandler, cost_tracker


def test_a_misspelt_keyword_names_the_handler_and_the_argument_meant() -> None:
    with pytest.raises(TypeError) as refused:
        CostCallbackHandler(baseline="gpt-4o", budget_usd=1.0)
    message = str(refused.value)
    assert message.startswith("CostCallbackHandler got unexpected arguments ['baseline']")
    assert "did you mean 'baseline_model' for 'baseline'?" in message
    assert "CostHandlerBase" not in message


def test_cost_tracker_names_the_handler_too() -> None:
    tracker = cost_tracker(dayly_budget_usd=1.0)
    with pytest.raises(TypeError, match=r"CostCallbackHandler got unexpected arguments \['dayly"):
        tracker.__enter__()


def test_budget_middleware_names_itself() -> None:
    from langchain_costopt.middleware import BudgetMiddleware

    with pytest.raises(TypeError) as refused:
        BudgetMiddleware(budget_usd=1.0, dayly_budget_usd=1.0)
    message = str(refused.value)
    assert message.startswith("BudgetMiddleware got unexpected arguments ['dayly_budget_usd']")
    assert "'daily_budget_usd'" in message


def test_a_keyword_with_no_close_match_lists_what_the_handler_takes() -> None:
    with pytest.raises(TypeError, match=r"\['colour'\]; it takes \['baseline_model'"):
        CostCallbackHandler(colour="red")


def test_the_handler_arguments_are_the_base_constructor_s() -> None:
    parameters = inspect.signature(CostHandlerBase).parameters
    assert tuple(parameters) == HANDLER_ARGUMENTS
    assert CostCallbackHandler(budget_usd=1.0, on_ledger_error="allow").budget_usd == 1.0
