"""The budget refusal as LangChain sees it: a non-retryable ``ModelError``.

Example:
    >>> from langchain_core.exceptions import ModelError
    >>> from costopt_core import ledger
    >>> engine_error = ledger.BudgetExceededError("cost budget exceeded", spent_usd=1.5)
    >>> error = budget_refusal(engine_error)
    >>> isinstance(error, ledger.BudgetExceededError), isinstance(error, ModelError)
    (True, True)
    >>> error.is_retryable, error.spent_usd, str(error)
    (False, 1.5, 'cost budget exceeded')

LangChain's retry middleware (``ModelRetryMiddleware``, ``ToolRetryMiddleware``) and
``SummarizationMiddleware`` retry every exception except a ``ModelError`` that says it is
not retryable. A budget refusal must not be retried: the retry is refused again after a
backoff sleep, and the agent ends as a failure instead of a budget stop (and
``on_budget="raise"`` never raises). The engine (``costopt_core``) knows nothing of
LangChain, so the LangChain face raises this subclass of the engine's error wherever it
lets a refusal out: ``except costopt_core.ledger.BudgetExceededError`` (the same class as
``langchain_costopt.BudgetExceededError``) still catches it.
"""

from __future__ import annotations

from langchain_core.exceptions import ModelError

from costopt_core import ledger


class BudgetExceededError(ledger.BudgetExceededError, ModelError):
    """The engine's ``BudgetExceededError``, also a LangChain ``ModelError`` that no
    retry middleware retries (``is_retryable = False``)."""

    is_retryable = False


def budget_refusal(error: ledger.BudgetExceededError) -> BudgetExceededError:
    """``error`` as the LangChain face raises it: itself when it already is one, else a
    copy with its message and fields, caused by it.

    Example:
        >>> error = budget_refusal(ledger.BudgetExceededError("over"))
        >>> budget_refusal(error) is error, type(error.__cause__).__module__
        (True, 'costopt_core.ledger')
    """
    if isinstance(error, BudgetExceededError):
        return error
    if not isinstance(error, ledger.BudgetExceededError):
        raise TypeError(f"error must be a BudgetExceededError, got {type(error).__name__}")
    refusal = BudgetExceededError(str(error), budget=error.budget, spent_usd=error.spent_usd)
    # Any field set on the engine's error after it was built (limit_usd, notes) too.
    refusal.__dict__.update(error.__dict__)
    refusal.__cause__ = error
    refusal.__suppress_context__ = True
    return refusal


__all__ = ["BudgetExceededError", "budget_refusal"]
