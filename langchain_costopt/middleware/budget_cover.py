"""Another middleware's own model calls held to a :class:`BudgetMiddleware`'s budget:
``budget.cover(middleware)``.

Example:
    >>> from langchain.agents.middleware import SummarizationMiddleware
    >>> from langchain_costopt.middleware import BudgetMiddleware
    >>> from langchain_costopt.simulated import SimulatedChatModel
    >>> budget = BudgetMiddleware(budget_usd=0.50, on_budget="end")
    >>> summary = budget.cover(
    ...     SummarizationMiddleware(SimulatedChatModel(), trigger=("messages", 9))
    ... )
    >>> summary.name, type(summary).__name__, summary.trigger
    ('SummarizationMiddleware', 'CoveredSummarizationMiddleware', ('messages', 9))

LangChain's ``create_agent`` runs each middleware's ``before_agent`` / ``before_model`` /
``after_model`` / ``after_agent`` hook as a graph node of its own, outside every other
middleware's ``wrap_model_call``: a model call made there (``SummarizationMiddleware``'s
summary) is not checked by a ``BudgetMiddleware``, and no middleware can catch what such a
node raises, so a refusal by a budget around the agent (``cost_tracker()``) escapes the
agent whatever its ``on_budget``. The covered middleware runs each hook its class has
(sync and async alike, no other) under the budget's handler, so those calls are reserved,
checked and recorded with the agent's own; a hook that is refused (by any budget) ends
the agent as the budget ends it: ``"end"`` and ``"downgrade"`` with the budget's final AI
message (a ``before_*`` / ``after_model`` hook jumps to the end), ``"raise"`` with the
non-retryable ``BudgetExceededError``. A refused ``wrap_model_call`` answers with that
message (the ``BudgetMiddleware``, listed too, then ends the agent), a refused
``wrap_tool_call`` with the budget's error tool message. Anything else (``name``, state
schema, tools, attributes) is the covered middleware's.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from langchain.agents.middleware.types import AgentMiddleware, ModelRequest, hook_config
from langchain_core.messages import AIMessage, ToolMessage
from langgraph.prebuilt.tool_node import ToolCallRequest
from langgraph.runtime import Runtime
from langgraph.types import Command

from costopt_core.ledger import BudgetExceededError
from langchain_costopt.callbacks import CostCallbackHandler, tracking
from langchain_costopt.middleware.routing import ACallNext, CallNext, ModelResult

StopMessage = Callable[[BudgetExceededError], AIMessage]
ToolStop = Callable[[ToolCallRequest, BudgetExceededError], ToolMessage]
ToolResult = ToolMessage | Command[Any]
NodeHook = Callable[[Any, Any, Runtime[Any]], Any]

# The hooks create_agent makes a graph node of; a refusal in the first three can end the
# agent there (after_agent runs when it ends anyway).
NODE_HOOKS: tuple[str, ...] = ("before_agent", "before_model", "after_model", "after_agent")
JUMPING_HOOKS = frozenset({"before_agent", "before_model", "after_model"})


class CoveredMiddleware(AgentMiddleware):
    """``middleware`` held to a budget (see the module doc); made by
    :meth:`BudgetMiddleware.cover`, whose class has the covered one's hooks."""

    def __init__(
        self,
        middleware: AgentMiddleware,
        handler: CostCallbackHandler,
        stop: StopMessage,
        tool_stop: ToolStop,
    ) -> None:
        super().__init__()
        self.middleware = middleware
        self.budget_handler = handler
        self._stop = stop
        self._tool_stop = tool_stop

    # create_agent reads these from the middleware; AgentMiddleware has class defaults
    # for them, which __getattr__ would never get past.
    @property
    def name(self) -> str:
        return self.middleware.name

    @property
    def state_schema(self) -> Any:  # type: ignore[override]
        return self.middleware.state_schema

    @property
    def trace_policy(self) -> Any:  # type: ignore[override]
        return self.middleware.trace_policy

    @property
    def transformers(self) -> Sequence[Any]:  # type: ignore[override]
        return self.middleware.transformers

    def __getattr__(self, name: str) -> Any:
        # Only for names this object lacks: the covered middleware's tools, settings...
        if name == "middleware":  # not set yet (copy, unpickling): no recursion
            raise AttributeError(name)
        return getattr(self.middleware, name)

    def _ended(self, error: BudgetExceededError, *, jump: bool) -> dict[str, Any]:
        """The state update of a refused hook: the budget's final message (``"raise"``:
        its error propagates), and the jump to the end where the hook may jump."""
        update: dict[str, Any] = {"messages": [self._stop(error)]}
        if jump:
            update["jump_to"] = "end"
        return update


def covered(
    middleware: AgentMiddleware,
    handler: CostCallbackHandler,
    stop: StopMessage,
    tool_stop: ToolStop,
) -> CoveredMiddleware:
    """``middleware`` covered by the budget of ``handler`` (see the module doc)."""
    if not isinstance(middleware, AgentMiddleware):
        raise TypeError(
            f"middleware must be a LangChain AgentMiddleware, got {type(middleware).__name__}"
        )
    return covered_class(type(middleware))(middleware, handler, stop, tool_stop)


@functools.cache
def covered_class(cls: type[AgentMiddleware]) -> type[CoveredMiddleware]:
    """The covered class of middleware class ``cls``: the hooks ``cls`` overrides, no
    other (create_agent adds a graph node, or a wrapper, for each hook a class has)."""
    namespace: dict[str, Any] = {"__doc__": f"{cls.__name__} held to a budget."}
    for hook in NODE_HOOKS:
        for name, make in ((hook, node_hook), (f"a{hook}", anode_hook)):
            if overrides(cls, name):
                jumps = [*jump_targets(cls, name), "end"] if hook in JUMPING_HOOKS else None
                namespace[name] = make(name, jumps)
    wrappers = {
        "wrap_model_call": wrap_model_call,
        "awrap_model_call": awrap_model_call,
        "wrap_tool_call": wrap_tool_call,
        "awrap_tool_call": awrap_tool_call,
    }
    namespace.update({name: hook for name, hook in wrappers.items() if overrides(cls, name)})
    return type(f"Covered{cls.__name__}", (CoveredMiddleware,), namespace)


def overrides(cls: type[AgentMiddleware], name: str) -> bool:
    """Whether ``cls`` has hook ``name`` of its own (create_agent's own test)."""
    return getattr(cls, name) is not getattr(AgentMiddleware, name)


def jump_targets(cls: type[AgentMiddleware], name: str) -> list[str]:
    """Where ``cls``'s hook ``name`` may already jump (``@hook_config(can_jump_to=)``)."""
    return [t for t in getattr(getattr(cls, name), "__can_jump_to__", ()) if t != "end"]


def node_hook(name: str, jumps: list[str] | None) -> NodeHook:
    """A sync node hook that calls the covered one under the budget."""

    def hook(self: CoveredMiddleware, state: Any, runtime: Runtime[Any]) -> Any:
        try:
            with tracking(self.budget_handler):
                return getattr(self.middleware, name)(state, runtime)
        except BudgetExceededError as exc:
            return self._ended(exc, jump=jumps is not None)

    return named(hook, name, jumps)


def anode_hook(name: str, jumps: list[str] | None) -> NodeHook:
    """An async node hook that awaits the covered one under the budget."""

    async def hook(self: CoveredMiddleware, state: Any, runtime: Runtime[Any]) -> Any:
        try:
            with tracking(self.budget_handler):
                return await getattr(self.middleware, name)(state, runtime)
        except BudgetExceededError as exc:
            return self._ended(exc, jump=jumps is not None)

    return named(hook, name, jumps)


def named(hook: NodeHook, name: str, jumps: list[str] | None) -> NodeHook:
    hook.__name__ = hook.__qualname__ = name
    return hook_config(can_jump_to=jumps)(hook) if jumps else hook  # type: ignore[arg-type]


def wrap_model_call(
    self: CoveredMiddleware, request: ModelRequest[Any], handler: CallNext
) -> ModelResult:
    try:
        with tracking(self.budget_handler):
            return self.middleware.wrap_model_call(request, handler)
    except BudgetExceededError as exc:
        return self._stop(exc)


async def awrap_model_call(
    self: CoveredMiddleware, request: ModelRequest[Any], handler: ACallNext
) -> ModelResult:
    try:
        with tracking(self.budget_handler):
            return await self.middleware.awrap_model_call(request, handler)
    except BudgetExceededError as exc:
        return self._stop(exc)


def wrap_tool_call(
    self: CoveredMiddleware,
    request: ToolCallRequest,
    handler: Callable[[ToolCallRequest], ToolResult],
) -> ToolResult:
    try:
        with tracking(self.budget_handler):
            return self.middleware.wrap_tool_call(request, handler)
    except BudgetExceededError as exc:
        return self._tool_stop(request, exc)


async def awrap_tool_call(
    self: CoveredMiddleware,
    request: ToolCallRequest,
    handler: Callable[[ToolCallRequest], Awaitable[ToolResult]],
) -> ToolResult:
    try:
        with tracking(self.budget_handler):
            return await self.middleware.awrap_tool_call(request, handler)
    except BudgetExceededError as exc:
        return self._tool_stop(request, exc)


__all__ = ["CoveredMiddleware", "covered", "covered_class"]
