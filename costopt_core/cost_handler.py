"""What every cost handler shares, whatever its framework: the constructor arguments,
the accountant it builds, and the figures it shows (read through to that accountant).

Example:
    >>> from costopt_core.cost_handler import CostHandlerBase
    >>> class Handler(CostHandlerBase):
    ...     pass
    >>> h = Handler(budget_usd=1.0)
    >>> h.total_cost, h.budget_usd, h.downgrade_requested
    (0.0, 1.0, False)

``CostCallbackHandler`` (LangChain) and ``CostEventHandler`` (LlamaIndex) inherit
``CostHandlerBase``; a class that shows an accountant it builds otherwise inherits
``AccountantViews``. ``refuse_handler_arguments`` turns a misspelt keyword into a
``TypeError`` that names the user's class and the closest argument it takes.
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Generic, Self, TypeVar, overload

from costopt_core.accounting import (
    DEFAULT_RESERVATION_TTL,
    CostAccountant,
    OnBudget,
    OnLedgerError,
)
from costopt_core.arguments import refuse_unknown_arguments
from costopt_core.budget_gate import CallQuote
from costopt_core.ledger import Budget, LedgerProtocol, LedgerSummary
from costopt_core.pricing import PriceCatalog

T = TypeVar("T")


class _FromAccountant(Generic[T]):
    """A read-only handler attribute that is its accountant's attribute ``source``
    (default: the same name). Methods come back bound to the accountant."""

    def __init__(self, doc: str, source: str = "") -> None:
        self.__doc__ = doc
        self.source = source

    def __set_name__(self, owner: type, name: str) -> None:
        self.source = self.source or name

    @overload
    def __get__(self, handler: None, owner: type | None = None) -> Self: ...
    @overload
    def __get__(self, handler: object, owner: type | None = None) -> T: ...
    def __get__(self, handler: object, owner: type | None = None) -> T | Self:
        if handler is None:
            return self
        return getattr(handler.accountant, self.source)  # type: ignore[attr-defined]

    def __set__(self, handler: object, value: object) -> None:
        raise AttributeError(f"{self.source} is the accountant's: set it on handler.accountant")


class AccountantViews:
    """The read-only face of a ``CostAccountant`` that every cost handler shows.

    A framework's handler class inherits this and exposes its accountant as the
    attribute (or property) ``accountant``; every figure here reads through it, so the
    LangChain and LlamaIndex handlers report, budget and export the same way. The
    mixin defines no fields and no ``__init__`` (safe on pydantic models as well).

    Example:
        >>> from costopt_core.accounting import CostAccountant
        >>> from costopt_core.cost_handler import AccountantViews
        >>> class Handler(AccountantViews):
        ...     def __init__(self) -> None:
        ...         self.accountant = CostAccountant(budget_usd=2.0)
        >>> h = Handler()
        >>> h.total_cost, h.budget_usd, h.on_budget, h.downgrade_requested
        (0.0, 2.0, 'raise', False)
        >>> h
        Handler(total_cost=0.000000, total_saved=0.000000)
    """

    __slots__ = ()

    if TYPE_CHECKING:
        accountant: CostAccountant

    # The accountant's own attributes and methods, under the same names (the docs are
    # what ``help()`` shows for the handler's class).
    ledger = _FromAccountant[LedgerProtocol](
        "Where the records go (a private CostLedger by default)."
    )
    baseline_model = _FromAccountant[str | None]("The model routed calls are compared against.")
    budgets = _FromAccountant[tuple[Budget, ...]](
        "Every budget enforced (total, day, month, given)."
    )
    on_budget = _FromAccountant[str]("What a spent budget does: raise, warn or downgrade.")
    total_cost = _FromAccountant[float]("USD spent (priced calls and cascade attempts).")
    total_saved = _FromAccountant[float]("USD saved: cache hits plus routing savings.")
    downgrade_requested = _FromAccountant[bool](
        "True while over budget with on_budget='downgrade' (``DowngradeSignal``).", "downgrade"
    )
    summary = _FromAccountant[Callable[..., LedgerSummary]]("The ledger's totals per model.")
    budget_status = _FromAccountant[Callable[[], list[dict[str, Any]]]](
        "Each budget with its period start, spend so far and what is left."
    )
    to_dict = _FromAccountant[Callable[[], dict[str, Any]]](
        "Totals, per-model figures and budget status as JSON-ready data."
    )
    report = _FromAccountant[Callable[[], str]]("A readable table of calls, tokens, spend, saved.")
    to_json = _FromAccountant[Callable[..., str]]("The report as JSON, written to a path if given.")
    to_csv = _FromAccountant[Callable[..., str]](
        "Per-model rows and a TOTAL row (or every record)."
    )
    project_month = _FromAccountant[Callable[..., dict[str, Any]]](
        "Observed usage extrapolated to a month."
    )

    @property
    def budget_usd(self) -> float | None:
        """The lifetime limit (``budget_usd``), if one was given."""
        for budget in self.accountant.budgets:
            if budget.period is None:
                return budget.limit_usd
        return None

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(total_cost={self.total_cost:.6f}, "
            f"total_saved={self.total_saved:.6f})"
        )


class CostHandlerBase(AccountantViews):
    """The constructor and figures every cost handler shares, whatever its framework.

    A face's handler inherits it before its framework's handler class, e.g.
    ``class CostCallbackHandler(CostHandlerBase, BaseCallbackHandler)``: the arguments
    below are then the handler's, the same in every face. ``__init__`` runs the next
    ``__init__()`` in the class's MRO without arguments (the framework base, or a face
    base holding its own state) and then builds the ``CostAccountant``, kept as
    ``_accountant`` (a pydantic handler declares it as a private attribute).

    Example:
        >>> class Handler(CostHandlerBase):
        ...     pass
        >>> h = Handler(budget_usd=2.0, on_budget="downgrade")
        >>> h.total_cost, h.budget_usd, h.on_budget, h.accountant.ledger is h.ledger
        (0.0, 2.0, 'downgrade', True)
    """

    __slots__ = ()

    def __init__(
        self,
        baseline_model: str | None = None,
        budget_usd: float | None = None,
        on_budget: OnBudget = "raise",
        ledger: LedgerProtocol | None = None,
        *,
        daily_budget_usd: float | None = None,
        monthly_budget_usd: float | None = None,
        budgets: Iterable[Budget] = (),
        tags: Mapping[str, str] | None = None,
        catalog: PriceCatalog | None = None,
        call_estimate_usd: float | None = None,
        reservation_ttl_seconds: float = DEFAULT_RESERVATION_TTL,
        on_ledger_error: OnLedgerError = "refuse",
        **unknown: Any,
    ) -> None:
        """
        Args:
            baseline_model: the model routed calls are compared against (default: the
                most expensive tier of the router, else the most expensive model seen).
            budget_usd: limit in USD over the ledger's life (this handler's, unless a
                shared ``ledger`` is given).
            on_budget: ``"raise"`` (``BudgetExceededError`` before the next call),
                ``"warn"`` (warn once per crossing, the call goes ahead) or
                ``"downgrade"`` (routers then answer with their cheapest tier).
            ledger: a shared ledger (e.g. ``SQLiteLedger``, ``PostgresLedger``); totals
                and budgets are then the ledger's. Default: a private in-memory
                ``CostLedger``.
            daily_budget_usd / monthly_budget_usd: limits per UTC calendar day / month.
            budgets: further ``costopt_core.ledger.Budget`` objects.
            tags: stored on every record (e.g. ``{"app": "support-bot"}``).
            catalog: price catalog (default: the process-wide one, see ``set_price``).
            call_estimate_usd: reserved against the budgets before each call (default:
                the largest of the last 32 calls; see ``CostAccountant``).
            reservation_ttl_seconds: how long a call's reservation holds if the call
                never ends (default 300; see ``CostAccountant``).
            on_ledger_error: what a budgeted call does when the ledger cannot check its
                budget (a SQLite file locked past its timeout, a PostgreSQL pool with no
                free connection, a server down): ``"refuse"`` (default:
                ``BudgetExceededError`` saying why) or ``"allow"`` (the call goes
                ahead unbudgeted, the fault logged). ``on_budget="warn"`` lets it go.

        Any other keyword is a ``TypeError`` naming the handler's class (the one the
        user built, e.g. ``CostCallbackHandler``) and the closest argument it takes.
        """
        if unknown:
            refuse_handler_arguments(unknown, type(self).__name__)
        super().__init__()
        self._accountant = CostAccountant(
            baseline_model=baseline_model,
            budget_usd=budget_usd,
            daily_budget_usd=daily_budget_usd,
            monthly_budget_usd=monthly_budget_usd,
            budgets=budgets,
            on_budget=on_budget,
            ledger=ledger,
            catalog=catalog,
            tags=tags,
            call_estimate_usd=call_estimate_usd,
            reservation_ttl_seconds=reservation_ttl_seconds,
            on_ledger_error=on_ledger_error,
        )

    @property
    def accountant(self) -> CostAccountant:
        """The engine accountant: every figure of the handler reads it."""
        return self._accountant

    # -- budget_gate.FollowUpHold: room for an agent's next call (see follow_ups) ------

    def hold_follow_up(self, keys: Sequence[str], quote: CallQuote) -> bool:
        """An agent's call was admitted: keep room for the call after its tools."""
        return self._accountant.follow_ups.hold(keys, quote)

    def move_follow_up(self, key: str, keys: Sequence[str]) -> None:
        """The call held under ``key`` answered with the tool calls ``keys``."""
        self._accountant.follow_ups.move(key, keys)

    def release_follow_up(self, keys: Sequence[str]) -> None:
        """The follow-up of ``keys`` is about to be admitted (or its call failed)."""
        self._accountant.follow_ups.release(keys)


def _declared_signature(init: Callable[..., None]) -> inspect.Signature:
    # What help() and pydantic (a LlamaIndex handler's signature) show: ``**unknown`` is
    # there only to name the handler's class when a keyword is misspelt.
    signature = inspect.signature(init)
    return signature.replace(
        parameters=[
            p for p in signature.parameters.values() if p.kind is not inspect.Parameter.VAR_KEYWORD
        ]
    )


CostHandlerBase.__init__.__signature__ = _declared_signature(CostHandlerBase.__init__)  # type: ignore[attr-defined]

#: The keyword arguments every cost handler takes (``CostHandlerBase``'s), e.g. for a
#: face that passes its own options on to a handler it builds.
HANDLER_ARGUMENTS: tuple[str, ...] = tuple(
    name for name in inspect.signature(CostHandlerBase.__init__).parameters if name != "self"
)


def _closest_argument(name: str, known: Sequence[str]) -> str | None:
    # A bare amount (budget=1.0) is the limit in dollars: difflib finds 'budgets' (a
    # list of Budget objects) closer to 'budget' than 'budget_usd', and a user who
    # follows that hint gets a TypeError about Budget objects next.
    if f"{name}_usd" in known:
        return f"{name}_usd"
    match = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
    return match[0] if match else None


def refuse_handler_arguments(
    unknown: Mapping[str, Any], owner: str, also: Iterable[str] = ()
) -> None:
    """A ``TypeError`` naming ``owner`` (the class the user built), the keywords of
    ``unknown`` that neither a cost handler (:data:`HANDLER_ARGUMENTS`) nor ``owner``
    itself (``also``) takes, and the closest names it does take.

    Example:
        >>> try:
        ...     refuse_handler_arguments({"baseline": "gpt-4o"}, "Mine")
        ... except TypeError as exc:
        ...     print(str(exc).split("? ")[0])
        Mine got unexpected arguments ['baseline']; did you mean 'baseline_model' for 'baseline'
    """
    # Without this a misspelt keyword read "CostHandlerBase.__init__() got an unexpected
    # keyword argument 'baseline'": a class the user never built, and no way out.
    known = sorted({*HANDLER_ARGUMENTS, *also})
    close = [
        f"{match!r} for {name!r}"
        for name in sorted(unknown)
        if (match := _closest_argument(name, known))
    ]
    hint = f"did you mean {', '.join(close)}? It takes {known}" if close else None
    refuse_unknown_arguments(unknown, known, owner, hint=hint)


__all__ = [
    "HANDLER_ARGUMENTS",
    "AccountantViews",
    "CostHandlerBase",
    "refuse_handler_arguments",
]
