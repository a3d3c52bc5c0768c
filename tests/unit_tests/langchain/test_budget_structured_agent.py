"""BudgetMiddleware(on_budget="end") ends an agent that answers in a ``response_format``
(no tools) as cleanly as one with tools, in a real ``create_agent`` loop."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import pytest
from langchain.agents import create_agent
from langchain.agents.middleware import AgentMiddleware
from langchain.agents.structured_output import ToolStrategy
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.tools import tool
from pydantic import BaseModel, PrivateAttr

from costopt_core.pricing import set_price
from langchain_costopt.middleware import BudgetMiddleware

set_price("budget-so-model", input_per_token=1e-5, output_per_token=3e-5)


class Verdict(BaseModel):
    answer: str


class StructuredModel(BaseChatModel):
    """Answers with the ``Verdict`` tool when it is bound; counts its calls."""

    model_name: str = "budget-so-model"
    max_tokens: int = 100
    _calls: list[int] = PrivateAttr(default_factory=list)

    @property
    def _llm_type(self) -> str:
        return "structured-fake"

    @property
    def calls(self) -> int:
        return len(self._calls)

    def bind_tools(self, tools: Sequence[Any], **kwargs: Any) -> Any:
        return self.bind(tool_names=[getattr(t, "name", None) or t.__name__ for t in tools])

    def _generate(self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None,
                  **kwargs: Any) -> ChatResult:  # fmt: skip
        self._calls.append(1)
        calls = [{"name": "Verdict", "args": {"answer": "yes"}, "id": f"call-{self.calls}"}] * (
            "Verdict" in kwargs.get("tool_names", [])
        )
        message = AIMessage(
            "" if calls else json.dumps({"answer": "yes"}),
            tool_calls=calls,
            usage_metadata={"input_tokens": 10, "output_tokens": 5, "total_tokens": 15},
            response_metadata={"model_name": self.model_name},
        )
        return ChatResult(generations=[ChatGeneration(message=message)])


class Watcher(AgentMiddleware):
    """Another middleware with an ``after_model`` hook (it changes the agent's edges)."""

    def after_model(self, state: Any, runtime: Any) -> None:
        return None


@tool
def lookup(term: str) -> str:
    """Look a term up."""
    return term


def stopped_agent(model: StructuredModel, *, tools: list[Any], others: list[Any]) -> Any:
    # $0.0001 cannot hold one call (100 output tokens at $3e-5 reserve $0.003).
    budget = BudgetMiddleware(budget_usd=0.0001, on_budget="end")
    return create_agent(
        model, tools=tools, response_format=ToolStrategy(Verdict), middleware=[budget, *others]
    )


def assert_stopped_once(result: dict[str, Any], model: StructuredModel) -> None:
    stops = [m for m in result["messages"] if "costopt_budget" in m.response_metadata]
    assert model.calls == 0  # the call that did not fit never reached the model
    assert len(stops) == 1 and result["messages"][-1] is stops[0]
    assert stops[0].content.startswith("I stopped here")
    assert result.get("structured_response") is None


# A low recursion limit makes the old endless loop fail fast instead of after 9,999 steps.
LIMIT = {"recursion_limit": 12}


@pytest.mark.parametrize("tools", [[], [lookup]], ids=["no-tools", "tools"])
@pytest.mark.parametrize("others", [[], [Watcher()]], ids=["alone", "with-after-model"])
def test_a_budget_stop_ends_a_structured_output_agent_after_one_model_step(
    tools: list[Any], others: list[Any]
) -> None:
    model = StructuredModel()
    result = stopped_agent(model, tools=tools, others=others).invoke(
        {"messages": [("user", "is it raining?")]}, LIMIT
    )
    assert_stopped_once(result, model)


async def test_the_async_loop_ends_the_same_way() -> None:
    model = StructuredModel()
    result = await stopped_agent(model, tools=[], others=[]).ainvoke(
        {"messages": [("user", "is it raining?")]}, LIMIT
    )
    assert_stopped_once(result, model)


def test_an_agent_within_its_budget_still_gets_its_structured_answer() -> None:
    model = StructuredModel()
    agent = create_agent(
        model,
        tools=[],
        response_format=ToolStrategy(Verdict),
        middleware=[BudgetMiddleware(budget_usd=1.0, on_budget="end")],
    )
    result = agent.invoke({"messages": [("user", "is it raining?")]}, LIMIT)
    assert result["structured_response"] == Verdict(answer="yes") and model.calls == 1
