"""A budget refusal next to LangChain's retry middleware, in a real ``create_agent`` loop:
the refusal is never retried (no second attempt, no backoff sleep), so the agent ends as a
budget stop and ``on_budget="raise"`` raises."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from langchain.agents import create_agent
from langchain.agents.middleware import ModelRetryMiddleware, ToolRetryMiddleware
from langchain_core.exceptions import ModelError
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langchain_core.tools import tool
from pydantic import PrivateAttr

from costopt_core.ledger import BudgetExceededError as EngineBudgetError
from costopt_core.pricing import set_price
from langchain_costopt import (
    BudgetExceededError,
    CostCallbackHandler,
    RouterChatModel,
    cost_tracker,
)
from langchain_costopt.errors import budget_refusal
from langchain_costopt.middleware import BudgetMiddleware
from langchain_costopt.middleware.budget import is_budget_stop
from langchain_costopt.simulated import SimulatedChatModel

set_price("retry-agent", input_per_token=1e-7, output_per_token=4e-7)
set_price("retry-sub", input_per_token=1e-5, output_per_token=1e-5)
QUESTION = "Use get_weather for Paris."


class Counted(SimulatedChatModel):
    """Counts the calls that reach the model."""

    _calls: list[int] = PrivateAttr(default_factory=list)

    def _generate(self, *args: Any, **kwargs: Any) -> Any:
        self._calls.append(1)
        return super()._generate(*args, **kwargs)


SUB = Counted(model_name="retry-sub", max_tokens=100)


@tool
def get_weather(city: str) -> str:
    """The weather in a city (a sub-model describes it)."""
    return SUB.invoke(f"Describe the weather in {city}").content


def fast_retry(kind: type, **options: Any) -> Any:
    # A small backoff anyway: if a refusal were retried, the test stays fast and the
    # recorded sleeps show it.
    return kind(max_retries=2, initial_delay=0.01, jitter=False, **options)


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The backoff sleeps of LangChain's retry middleware."""
    slept: list[float] = []
    sleep, asleep = time.sleep, asyncio.sleep

    def recorded(delay: float) -> None:
        slept.append(delay)
        sleep(delay)

    async def arecorded(delay: float, *args: Any) -> Any:
        if delay:  # asyncio.sleep(0) is how a coroutine yields, not a backoff
            slept.append(delay)
        return await asleep(delay, *args)

    monkeypatch.setattr(time, "sleep", recorded)
    monkeypatch.setattr(asyncio, "sleep", arecorded)
    return slept


def run(agent: Any, asynchronous: bool) -> list[Any]:
    question = {"messages": [HumanMessage(QUESTION)]}
    if asynchronous:
        return asyncio.run(agent.ainvoke(question))["messages"]
    return agent.invoke(question)["messages"]


def test_the_face_error_is_the_engines_error_and_a_non_retryable_model_error() -> None:
    engine = EngineBudgetError("cost budget exceeded (total)", spent_usd=2.0)
    engine.add_note("why")
    error = budget_refusal(engine)
    assert isinstance(error, BudgetExceededError)  # what users catch
    assert isinstance(error, ModelError) and error.is_retryable is False
    assert (str(error), error.spent_usd, error.__notes__) == (str(engine), 2.0, ["why"])
    assert error.__cause__ is engine and budget_refusal(error) is error
    with pytest.raises(TypeError, match="error must be a BudgetExceededError"):
        budget_refusal(ValueError("x"))  # type: ignore[arg-type]


@pytest.mark.parametrize("asynchronous", [False, True])
@pytest.mark.parametrize("retry_first", [False, True])
def test_a_refused_agent_call_ends_as_a_budget_stop_without_a_retry(
    asynchronous: bool, retry_first: bool, sleeps: list[float]
) -> None:
    model = Counted(model_name="retry-agent", max_tokens=50)
    budget = BudgetMiddleware(budget_usd=1e-6)  # not even the first call fits
    retry = fast_retry(ModelRetryMiddleware)
    middleware = [retry, budget] if retry_first else [budget, retry]
    agent = create_agent(model, tools=[get_weather], middleware=middleware)
    messages = run(agent, asynchronous)
    assert is_budget_stop(messages[-1])
    assert messages[-1].content.startswith("I stopped here")
    assert (len(model._calls), sleeps) == (0, [])


@pytest.mark.parametrize("asynchronous", [False, True])
def test_on_budget_raise_raises_through_the_retry_middleware(
    asynchronous: bool, sleeps: list[float]
) -> None:
    model = Counted(model_name="retry-agent", max_tokens=50)
    middleware = [
        fast_retry(ModelRetryMiddleware),
        BudgetMiddleware(budget_usd=1e-6, on_budget="raise"),
    ]
    agent = create_agent(model, tools=[get_weather], middleware=middleware)
    with pytest.raises(BudgetExceededError) as raised:
        run(agent, asynchronous)
    assert isinstance(raised.value, ModelError) and not raised.value.is_retryable
    assert (len(model._calls), sleeps) == (0, [])


def test_a_tracker_that_raises_is_not_retried(sleeps: list[float]) -> None:
    model = Counted(model_name="retry-agent", max_tokens=50)
    agent = create_agent(model, tools=[], middleware=[fast_retry(ModelRetryMiddleware)])
    with cost_tracker(budget_usd=1e-6, on_budget="raise"), pytest.raises(BudgetExceededError):
        agent.invoke({"messages": [HumanMessage("hello")]})
    assert (len(model._calls), sleeps) == (0, [])


@pytest.mark.parametrize("asynchronous", [False, True])
@pytest.mark.parametrize("retry_first", [False, True])
def test_a_refused_model_call_inside_a_tool_fails_the_tool_call_once(
    asynchronous: bool, retry_first: bool, sleeps: list[float]
) -> None:
    model = Counted(model_name="retry-agent", max_tokens=50)
    # The agent's calls (~$0.00003 each) fit; the tool's sub-model call (~$0.0011) not.
    budget = BudgetMiddleware(budget_usd=0.0005)
    retry = fast_retry(ToolRetryMiddleware)
    middleware = [retry, budget] if retry_first else [budget, retry]
    agent = create_agent(model, tools=[get_weather], middleware=middleware)
    calls_before = len(SUB._calls)
    messages = run(agent, asynchronous)
    result = next(m for m in messages if isinstance(m, ToolMessage))
    assert result.status == "error"
    assert result.content.startswith("The tool could not run: its model call would not fit")
    assert isinstance(messages[-1], AIMessage) and not is_budget_stop(messages[-1])
    assert (len(SUB._calls) - calls_before, sleeps) == (0, [])


def test_a_router_climb_the_budget_refuses_is_a_non_retryable_model_error() -> None:
    # The cheap tier is down; the fallback to the strong tier does not fit the budget.
    set_price("retry-strong", input_per_token=1e-3, output_per_token=1e-3)
    router = RouterChatModel(
        models={
            "cheap": SimulatedChatModel(model_name="retry-agent", max_tokens=50, fail=True),
            "strong": SimulatedChatModel(model_name="retry-strong", max_tokens=50),
        },
        strategy=lambda text: "cheap",
    )
    handler = CostCallbackHandler(budget_usd=0.001, on_budget="raise")
    with pytest.raises(BudgetExceededError) as raised:
        router.invoke("hello", config={"callbacks": [handler]})
    assert isinstance(raised.value, ModelError) and not raised.value.is_retryable
