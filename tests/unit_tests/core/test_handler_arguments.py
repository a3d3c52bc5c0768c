"""Every face's cost handler (``CostHandlerBase``) names itself, not the base, when given
a keyword it does not take."""

from __future__ import annotations

import pytest

from costopt_core.accounting import CostHandlerBase, refuse_handler_arguments


class SupportBotHandler(CostHandlerBase):
    pass


def test_a_handler_subclass_is_named_in_the_error() -> None:
    with pytest.raises(TypeError) as refused:
        SupportBotHandler(monthly_budget=5.0)
    message = str(refused.value)
    assert message.startswith("SupportBotHandler got unexpected arguments ['monthly_budget']")
    assert "did you mean 'monthly_budget_usd' for 'monthly_budget'?" in message


def test_the_llamaindex_event_handler_is_named() -> None:
    pytest.importorskip("llama_index.core")
    from llamaindex_costopt.handlers import CostEventHandler

    with pytest.raises(TypeError, match=r"^CostEventHandler got unexpected arguments \['tagz'\]"):
        CostEventHandler(tagz={"app": "a"})


def test_a_face_passing_options_on_names_itself_with_its_own_arguments() -> None:
    with pytest.raises(TypeError, match=r"^BudgetMiddleware got .*'handler'"):
        refuse_handler_arguments({"handlr": None}, "BudgetMiddleware", also=("handler",))
    refuse_handler_arguments({}, "BudgetMiddleware")  # nothing unknown: no error


def test_a_bare_budget_amount_is_pointed_to_budget_usd() -> None:
    # Before: "did you mean 'budgets' for 'budget'?", and budgets takes Budget objects.
    for face in ("CostCallbackHandler", "CostEventHandler"):
        with pytest.raises(TypeError, match=r"did you mean 'budget_usd' for 'budget'\?"):
            refuse_handler_arguments({"budget": 1.0}, face)
    with pytest.raises(TypeError, match=r"did you mean 'budget_usd' for 'budget'\?"):
        SupportBotHandler(budget=1.0)
