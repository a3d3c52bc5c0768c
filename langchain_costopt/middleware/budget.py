"""BudgetMiddleware: a LangChain agent stops cleanly before a model call that would not
fit its dollar budget.

Example:
    >>> from langchain.agents import create_agent
    >>> from langchain_costopt import set_price
    >>> from langchain_costopt.middleware import BudgetMiddleware
    >>> from langchain_costopt.simulated import SimulatedChatModel
    >>> _ = set_price("budget-doc-model", input_per_token=1e-5, output_per_token=3e-5)
    >>> model = SimulatedChatModel(model_name="budget-doc-model", max_tokens=100)
    >>> agent = create_agent(model, tools=[], middleware=[BudgetMiddleware(budget_usd=0.001)])
    >>> reply = agent.invoke({"messages": [("user", "hello")]})["messages"][-1]
    >>> reply.response_metadata["costopt_budget"]["stopped"], reply.content[:15]
    (True, 'I stopped here:')

Before each model call of the agent, the call's maximum cost (its prompt priced, plus its
model's ``max_tokens`` at the output price) is reserved against the budget, the same way
:class:`~langchain_costopt.CostCallbackHandler` reserves it (the middleware's handler is
one), atomically in its ledger, shared ledgers included. A call that does not fit:

* ``on_budget="end"``: never reaches the model; the agent ends with a final AI message
  that says the budget stopped it (``response_metadata["costopt_budget"]``), with tools
  or a ``response_format`` alike (then ``structured_response`` is ``None``);
* ``"raise"``: ``BudgetExceededError`` propagates out of the agent;
* ``"downgrade"``: a :class:`CostRoutingMiddleware` listed *after* this one (so it runs
  inside) sends the call to its cheapest tier; when not even that fits, the agent ends as
  with ``"end"``. With no routing inside it (the routing listed before it, or none), the
  agent ends as with ``"end"`` and a warning says why, once.

Model calls made inside the agent's tools (a sub-agent, a summarising tool) are checked
and recorded the same way; one that does not fit fails its tool call with an error tool
message the model reads (``"raise"``: ``BudgetExceededError`` propagates). Model calls
made by another middleware's own hooks (LangChain's ``SummarizationMiddleware`` summarises
in ``before_model``, a graph node of its own) are outside it: list that middleware as
``budget.cover(middleware)`` (:mod:`~langchain_costopt.middleware.budget_cover`), so that
its calls are checked and recorded with the agent's and one that does not fit ends the
agent the same way. Without it, they are neither checked nor recorded here, and a refusal
of one by a budget around the agent (``cost_tracker()``) escapes the agent as
``BudgetExceededError`` whatever ``on_budget`` says: no middleware can catch what
another's hook raises.

A refusal is a LangChain ``ModelError`` that is not retryable
(:class:`langchain_costopt.errors.BudgetExceededError`): LangChain's
``ModelRetryMiddleware`` / ``ToolRetryMiddleware``, wherever they are listed, give it up
at once instead of asking the budget again after a backoff.

The middleware's handler records every model call of the agent in ``ledger``; to report
from the same figures, pass your own handler as ``handler=`` instead of attaching it to
the same ledger twice.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any, Literal

from langchain.agents.middleware.types import (
    AgentMiddleware,
    AgentState,
    ModelRequest,
    hook_config,
)
from langchain_core.messages import AIMessage, ToolMessage
from langgraph.prebuilt.tool_node import ToolCallRequest
from langgraph.runtime import Runtime
from langgraph.types import Command

from costopt_core.accounting import refuse_handler_arguments
from costopt_core.ledger import BudgetExceededError, LedgerProtocol
from langchain_costopt.callbacks import CostCallbackHandler, tracking
from langchain_costopt.chat_models import RouterChatModel
from langchain_costopt.errors import budget_refusal
from langchain_costopt.middleware.budget_cover import CoveredMiddleware, covered
from langchain_costopt.middleware.budget_signals import (
    BUDGET_KEY,
    is_budget_stop,
    watching_routing,
)
from langchain_costopt.middleware.routing import ACallNext, CallNext, ModelResult

AgentOnBudget = Literal["end", "raise", "downgrade"]
ToolResult = ToolMessage | Command[Any]
AGENT_ON_BUDGET: tuple[str, ...] = ("end", "raise", "downgrade")
logger = logging.getLogger(__name__)


class BudgetMiddleware(AgentMiddleware):
    """Keep an agent's model calls within a budget (see the module doc).

    Args:
        budget_usd: the limit in USD (also ``daily_budget_usd=``, ``monthly_budget_usd=``
            and the other ``CostCallbackHandler`` arguments, passed on).
        on_budget: ``"end"`` | ``"raise"`` | ``"downgrade"``.
        ledger: where spend is kept (a shared ``PostgresLedger`` / ``SQLiteLedger``
            makes the budget shared); default in memory.
        handler: an existing ``CostCallbackHandler`` to enforce and record with, instead
            of the middleware's own (then give no budget or ledger here).
    """

    def __init__(
        self,
        budget_usd: float | None = None,
        on_budget: AgentOnBudget = "end",
        ledger: LedgerProtocol | None = None,
        *,
        handler: CostCallbackHandler | None = None,
        **handler_options: Any,
    ) -> None:
        super().__init__()
        # Checked here, so a misspelt option names BudgetMiddleware, not the handler it builds.
        refuse_handler_arguments(handler_options, "BudgetMiddleware", also=("handler",))
        if on_budget not in AGENT_ON_BUDGET:
            raise ValueError(f"on_budget must be one of {AGENT_ON_BUDGET}, got {on_budget!r}")
        if handler is not None:
            if not isinstance(handler, CostCallbackHandler):
                raise TypeError(
                    f"handler must be a CostCallbackHandler, got {type(handler).__name__}"
                )
            if budget_usd is not None or ledger is not None or handler_options:
                raise ValueError("give the budget and ledger to the handler, not both")
        else:
            handler = CostCallbackHandler(
                budget_usd=budget_usd,
                on_budget="downgrade" if on_budget == "downgrade" else "raise",
                ledger=ledger,
                **handler_options,
            )
        if not handler.budgets:
            raise ValueError("BudgetMiddleware needs a budget: budget_usd= (or a period budget)")
        self.handler = handler
        self.on_budget = on_budget
        self._warned_unrouted = False

    def cover(self, middleware: AgentMiddleware) -> CoveredMiddleware:
        """``middleware``, its own hooks' model calls held to this budget: list this in
        its place, and this ``BudgetMiddleware`` too (see the module doc).

        Example:
            >>> from langchain.agents import create_agent
            >>> from langchain.agents.middleware import SummarizationMiddleware
            >>> from langchain_costopt import set_price
            >>> from langchain_costopt.simulated import SimulatedChatModel
            >>> _ = set_price("cover-doc-model", input_per_token=1e-5, output_per_token=3e-5)
            >>> model = SimulatedChatModel(model_name="cover-doc-model", max_tokens=100)
            >>> budget = BudgetMiddleware(budget_usd=0.005)  # less than the summary's maximum
            >>> summary = budget.cover(
            ...     SummarizationMiddleware(model, trigger=("messages", 3), keep=("messages", 1))
            ... )
            >>> agent = create_agent(model, tools=[], middleware=[summary, budget])
            >>> turns = [("user", "hello"), ("ai", "hi"), ("user", "and now?")]
            >>> reply = agent.invoke({"messages": turns})["messages"][-1]
            >>> reply.content[:15], budget.handler.summary().calls
            ('I stopped here:', 0)
        """
        if isinstance(middleware, BudgetMiddleware):
            raise ValueError("middleware is a BudgetMiddleware: list it, do not cover it")
        return covered(middleware, self.handler, self._stopped, self._tool_stopped)

    def wrap_model_call(self, request: ModelRequest[Any], handler: CallNext) -> ModelResult:
        try:
            with tracking(self.handler), watching_routing() as routed:
                return handler(request)
        except BudgetExceededError as exc:
            self._check_downgrade(request, bool(routed))
            return self._stopped(exc)

    async def awrap_model_call(self, request: ModelRequest[Any], handler: ACallNext) -> ModelResult:
        try:
            with tracking(self.handler), watching_routing() as routed:
                return await handler(request)
        except BudgetExceededError as exc:
            self._check_downgrade(request, bool(routed))
            return self._stopped(exc)

    def _check_downgrade(self, request: ModelRequest[Any], routed: bool) -> None:
        """A refused call that nothing routed inside this middleware could not have been
        downgraded: with ``on_budget="downgrade"``, say once why the agent ends."""
        if (
            self.on_budget != "downgrade"
            or routed
            or self._warned_unrouted
            or isinstance(request.model, RouterChatModel)  # it downgrades on its own
        ):
            return
        self._warned_unrouted = True
        logger.warning(
            "BudgetMiddleware(on_budget='downgrade') ends the agent: no routing inside it "
            "could send the refused call to a cheaper tier. List CostRoutingMiddleware "
            "after BudgetMiddleware in middleware=[...] (or use a RouterChatModel as the "
            "agent's model)."
        )

    def wrap_tool_call(
        self, request: ToolCallRequest, handler: Callable[[ToolCallRequest], ToolResult]
    ) -> ToolResult:
        try:
            with tracking(self.handler):
                return handler(request)
        except BudgetExceededError as exc:
            return self._tool_stopped(request, exc)

    async def awrap_tool_call(
        self,
        request: ToolCallRequest,
        handler: Callable[[ToolCallRequest], Awaitable[ToolResult]],
    ) -> ToolResult:
        try:
            with tracking(self.handler):
                return await handler(request)
        except BudgetExceededError as exc:
            return self._tool_stopped(request, exc)

    @hook_config(can_jump_to=["end"])
    def after_model(self, state: AgentState[Any], runtime: Runtime[Any]) -> dict[str, Any] | None:
        """End the agent right after a stopped call (see :func:`jump_after_stop`)."""
        return jump_after_stop(state)

    @hook_config(can_jump_to=["end"])
    async def aafter_model(
        self, state: AgentState[Any], runtime: Runtime[Any]
    ) -> dict[str, Any] | None:
        """Async :meth:`after_model`."""
        return jump_after_stop(state)

    def _tool_stopped(self, request: ToolCallRequest, error: BudgetExceededError) -> ToolMessage:
        """A tool whose own model call did not fit: its call fails, the agent goes on."""
        if self.on_budget == "raise":
            raise budget_refusal(error)
        return ToolMessage(
            f"The tool could not run: its model call would not fit the cost budget ({error}).",
            tool_call_id=request.tool_call["id"],
            name=request.tool_call.get("name"),
            status="error",
            response_metadata={BUDGET_KEY: {"stopped": True, "reason": str(error)}},
        )

    def _stopped(self, error: BudgetExceededError) -> AIMessage:
        """The agent's last word: the message :func:`jump_after_stop` ends the agent on."""
        if self.on_budget == "raise":
            raise budget_refusal(error)
        spent = self.handler.total_cost
        return AIMessage(
            f"I stopped here: the next model call would not fit the cost budget ({error}).",
            response_metadata={
                BUDGET_KEY: {"stopped": True, "spent_usd": spent, "reason": str(error)},
            },
        )


def jump_after_stop(state: AgentState[Any]) -> dict[str, Any] | None:
    """``{"jump_to": "end"}`` when the agent's latest message is a budget stop.

    A message without tool calls ends only an agent with tools: one with a
    ``response_format`` and no tools goes back to the model until it has its structured
    answer, and would be stopped again, step after step, up to the recursion limit.
    ``jump_to`` is the agent's own way out of its loop, whatever its edges; it is read
    only by the edge of the node that sets it, hence an ``after_model`` hook, not the
    model call's response. (A ``BudgetMiddleware`` listed after another middleware with
    an ``after_model`` hook ends the agent before that hook sees the stop message.)

    Example:
        >>> stop = AIMessage("stopped", response_metadata={BUDGET_KEY: {"stopped": True}})
        >>> jump_after_stop({"messages": [stop]}), jump_after_stop({"messages": []})
        ({'jump_to': 'end'}, None)
    """
    messages = state.get("messages") or []
    return {"jump_to": "end"} if messages and is_budget_stop(messages[-1]) else None


__all__ = ["AGENT_ON_BUDGET", "BUDGET_KEY", "BudgetMiddleware", "is_budget_stop", "jump_after_stop"]
