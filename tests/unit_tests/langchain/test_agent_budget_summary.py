"""BudgetMiddleware with LangChain's SummarizationMiddleware in a real ``create_agent``
loop: the summary is a model call of another middleware's ``before_model`` node, which
``BudgetMiddleware`` cannot wrap. Covered (``budget.cover(summarization)``), the summary
is held to the budget and a refused one ends the agent as ``on_budget`` says."""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from langchain.agents import create_agent
from langchain.agents.middleware import AgentMiddleware, SummarizationMiddleware
from langchain.agents.middleware.types import ModelRequest
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.tools import tool
from langchain_core.utils.function_calling import convert_to_openai_tool

from costopt_core.pricing import set_price
from langchain_costopt import BudgetExceededError, CostCallbackHandler, cost_tracker
from langchain_costopt.callbacks import tracking
from langchain_costopt.messages import is_summary
from langchain_costopt.middleware import BudgetMiddleware
from langchain_costopt.middleware.budget_signals import is_budget_stop
from langchain_costopt.run_quotes import call_quote

set_price("summary-budget-model", input_per_token=1e-5, output_per_token=3e-5)
MODEL = "summary-budget-model"
QUESTION = {"messages": [("user", "What is the capital of France and its population?")]}
AGENTS = 30
# An async refusal leaves the other handlers' events unawaited (README, known limitations).
pytestmark = pytest.mark.filterwarnings("ignore:coroutine .* was never awaited:RuntimeWarning")


@pytest.fixture(autouse=True)
def quiet_refusals() -> Iterator[None]:
    # LangChain logs every refused call's handler error at WARNING (see the README).
    logging.disable(logging.WARNING)
    yield
    logging.disable(logging.NOTSET)


class ExactAgentModel(BaseChatModel):
    """Bills exactly what the budget reserves (the prompt as quoted, tools included, and
    ``max_tokens`` of output). With tools, after the user spoke: two tool calls."""

    model_name: str = MODEL
    max_tokens: int = 100

    @property
    def _llm_type(self) -> str:
        return "exact-agent"

    def bind_tools(self, tools: Any, **kwargs: Any) -> Any:
        return self.bind(tools=[convert_to_openai_tool(t) for t in tools], **kwargs)

    def _reply(self, messages: list[BaseMessage], tools: Any = None) -> ChatResult:
        quote = call_quote([messages], {"tools": tools} if tools else {})
        assert quote is not None
        usage = {
            "input_tokens": quote[1],
            "output_tokens": self.max_tokens,
            "total_tokens": quote[1] + self.max_tokens,
        }
        meta = {"model_name": self.model_name}
        if tools and isinstance(messages[-1], HumanMessage):
            calls = [
                {"name": "lookup", "args": {"q": f"part {i}"}, "id": f"c{i}", "type": "tool_call"}
                for i in range(2)
            ]
            message = AIMessage("", tool_calls=calls, usage_metadata=usage, response_metadata=meta)
        else:
            message = AIMessage("final " * 10, usage_metadata=usage, response_metadata=meta)
        return ChatResult(generations=[ChatGeneration(message=message)])

    def _generate(self, messages: Any, stop: Any = None, run_manager: Any = None, **kw: Any):
        return self._reply(messages, kw.get("tools"))

    async def _agenerate(self, messages: Any, stop: Any = None, run_manager: Any = None, **kw: Any):
        await asyncio.sleep(0.005)  # every agent's call in flight at once
        return self._reply(messages, kw.get("tools"))


@tool
def lookup(q: str) -> str:
    """Look up."""
    return "result " * 50


def summarization() -> SummarizationMiddleware:
    # After the tool calls: [question, tool calls, result, result] -> summary + 1 message.
    return SummarizationMiddleware(ExactAgentModel(), trigger=("messages", 3), keep=("messages", 1))


def agent(budget: BudgetMiddleware, middleware: AgentMiddleware | None = None) -> Any:
    covered = budget.cover(middleware or summarization())
    return create_agent(ExactAgentModel(), tools=[lookup], middleware=[covered, budget])


def outcome(messages: list[BaseMessage]) -> str:
    if not is_budget_stop(messages[-1]):
        return "answered"
    # Refused in the summarization hook: the turn was never folded into a summary.
    return "stopped" if any(is_summary(m) for m in messages) else "stopped in summary"


def run_async(graph: Any) -> list[str | BaseException]:
    async def one() -> str:
        return outcome((await graph.ainvoke(QUESTION))["messages"])

    async def every() -> list[str | BaseException]:
        return await asyncio.gather(*(one() for _ in range(AGENTS)), return_exceptions=True)

    return asyncio.run(every())


def run_threads(graph: Any) -> list[str | BaseException]:
    def one(_: int) -> str | BaseException:
        try:
            return outcome(graph.invoke(QUESTION)["messages"])
        except Exception as exc:  # counted, not raised: the test shows how many
            return exc

    # A thread started here does not inherit the cost_tracker() block: copy it in.
    with ThreadPoolExecutor(max_workers=8) as pool:
        jobs = [pool.submit(contextvars.copy_context().run, one, i) for i in range(AGENTS)]
        return [job.result() for job in jobs]


def assert_ended_cleanly(results: list[str | BaseException], spent: float, budget: float) -> None:
    errors = [r for r in results if isinstance(r, BaseException)]
    assert errors == [], f"{len(errors)} of {AGENTS} agents raised: {errors[:1]}"
    assert "stopped in summary" in results  # the hook's refusal was met, and ended cleanly
    assert spent <= budget + 1e-12


BUDGET = 0.05  # about a third of what the 30 agents' 90 calls would cost


@pytest.mark.parametrize("run", [run_async, run_threads])
def test_thirty_agents_end_cleanly_when_their_summary_does_not_fit(run: Any) -> None:
    budget = BudgetMiddleware(budget_usd=BUDGET, on_budget="end")
    with cost_tracker() as seen:  # every call, budgeted or not
        results = run(agent(budget))
    assert_ended_cleanly(results, seen.total_cost, BUDGET)
    # The summaries are the budget's calls: nothing was spent outside it.
    assert seen.total_cost == pytest.approx(budget.handler.total_cost)
    assert seen.summary().calls == budget.handler.summary().calls
    assert budget.handler.total_cost >= 0.9 * BUDGET


def test_the_readme_remedies_around_a_covered_summary_end_cleanly() -> None:
    # One handler for the agent and every call around it.
    handler = CostCallbackHandler(budget_usd=BUDGET)
    budget = BudgetMiddleware(handler=handler)
    with tracking(handler):
        results = run_async(agent(budget))
    assert_ended_cleanly(results, handler.total_cost, BUDGET)
    # A budget of its own around the agent: its refusal ends the agent too.
    budget = BudgetMiddleware(budget_usd=1.0)
    with cost_tracker(budget_usd=BUDGET) as tracker:
        results = run_async(agent(budget))
    assert_ended_cleanly(results, tracker.total_cost, BUDGET)


def one_agent_run(budget_usd: float, on_budget: str = "end") -> tuple[list[BaseMessage], Any]:
    budget = BudgetMiddleware(budget_usd=budget_usd, on_budget=on_budget)  # type: ignore[arg-type]
    return agent(budget).invoke(QUESTION)["messages"], budget.handler


def test_a_summary_that_does_not_fit_ends_the_agent_with_the_budget_message() -> None:
    # Enough for the first call (two tool calls), not for the summary's maximum too.
    messages, handler = one_agent_run(0.0045)
    stop = messages[-1]
    assert outcome(messages) == "stopped in summary"
    assert stop.content.startswith("I stopped here: the next model call would not fit")
    assert stop.response_metadata["costopt_budget"]["spent_usd"] == handler.total_cost > 0
    assert handler.summary().calls == 1
    # With room for it, the summary is recorded on the budget next to the agent's calls.
    messages, handler = one_agent_run(1.0)
    assert outcome(messages) == "answered" and handler.summary().calls == 3


def test_raise_still_raises_a_non_retryable_refusal() -> None:
    with pytest.raises(BudgetExceededError) as refused:
        one_agent_run(0.0045, on_budget="raise")
    assert refused.value.is_retryable is False


class JudgeFirst(AgentMiddleware):
    """Asks a model of its own before the agent and before each model call."""

    def __init__(self) -> None:
        super().__init__()
        self.judge = ExactAgentModel()

    def before_agent(self, state: Any, runtime: Any) -> None:
        self.judge.invoke("Is this question safe to answer?")

    def wrap_model_call(self, request: ModelRequest[Any], handler: Any) -> Any:
        self.judge.invoke("Is the next call worth making?")
        return handler(request)


def test_any_covered_hook_is_held_to_the_budget() -> None:
    # Room for the two judge calls of before_agent and the first wrap_model_call only.
    budget = BudgetMiddleware(budget_usd=0.0075)
    messages = agent(budget, JudgeFirst()).invoke(QUESTION)["messages"]
    assert [m.type for m in messages] == ["human", "ai"] and is_budget_stop(messages[-1])
    assert budget.handler.summary().calls == 2


def test_a_covered_middleware_is_the_same_middleware_to_create_agent() -> None:
    budget = BudgetMiddleware(budget_usd=1.0)
    original = summarization()
    covered = budget.cover(original)
    assert covered.name == original.name and covered.state_schema is original.state_schema
    assert covered.trigger == original.trigger  # its settings read through
    graph = create_agent(ExactAgentModel(), tools=[lookup], middleware=[covered, budget])
    plain = create_agent(ExactAgentModel(), tools=[lookup], middleware=[original, budget])
    assert set(graph.get_graph().nodes) == set(plain.get_graph().nodes)
    assert type(budget.cover(summarization())) is type(covered)  # one class per class


def test_cover_refuses_what_it_cannot_cover() -> None:
    budget = BudgetMiddleware(budget_usd=1.0)
    with pytest.raises(TypeError, match="middleware must be a LangChain AgentMiddleware"):
        budget.cover(lookup)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="middleware is a BudgetMiddleware"):
        budget.cover(BudgetMiddleware(budget_usd=1.0))
