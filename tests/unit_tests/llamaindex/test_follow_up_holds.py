"""RouterLLM under a budget keeps room for an agent's next call while its tools run
(costopt_core.follow_ups): concurrent agent runs on a budget for a few calls each got
their first call in and then none of their follow-ups fit (15 FunctionAgent runs: 0
answered, 79 % of the budget spent on runs that stopped)."""

from __future__ import annotations

import asyncio

import pytest
from llama_index.core.agent.workflow import FunctionAgent
from llama_index.core.base.llms.types import ChatMessage
from llama_index.core.tools import FunctionTool

from costopt_core.pricing import set_price
from llamaindex_costopt import RouterLLM
from llamaindex_costopt.simulated import SimulatedLLM

# llama-index's workflows read pydantic attributes on instances when building an agent.
pytestmark = pytest.mark.filterwarnings("ignore::pydantic.warnings.PydanticDeprecationWarning")

set_price("hold-cheap", input_per_token=1e-7, output_per_token=2e-7)
set_price("hold-strong", input_per_token=3e-6, output_per_token=1.5e-5)
COMPLEX = "请分析并比较: multiply {} by 7"  # seed rules: the strong tier


def multiply(a: int, b: int) -> int:
    """Multiply two integers a and b."""
    return a * b


TOOLS = [FunctionTool.from_defaults(fn=multiply)]


def router() -> RouterLLM:
    return RouterLLM(
        llms={
            "simple": SimulatedLLM(model_name="hold-cheap", max_tokens=64),
            "complex": SimulatedLLM(model_name="hold-strong", max_tokens=64),
        },
        strategy="rules",
    )


def test_a_tool_call_holds_room_until_its_follow_up_is_admitted(make_handler) -> None:
    handler = make_handler(budget_usd=1.0)
    llm = router()
    asked = llm.chat_with_tools(TOOLS, user_msg=COMPLEX.format(6))
    [call] = llm.get_tool_calls_from_response(asked)
    assert handler.ledger.reserved_usd > 0  # held for the follow-up
    result = ChatMessage(
        role="tool",
        content="42",
        additional_kwargs={"tool_call_id": call.tool_id, "name": "multiply"},
    )
    history = [ChatMessage(role="user", content=COMPLEX.format(6)), asked.message, result]
    llm.chat_with_tools(TOOLS, chat_history=history)
    assert handler.ledger.reserved_usd == 0 and len(handler.accountant.follow_ups) == 0


def test_an_answer_without_tool_calls_holds_nothing(make_handler) -> None:
    handler = make_handler(budget_usd=1.0)
    router().chat_with_tools(TOOLS, user_msg="请分析并比较这两种架构的优劣")
    assert handler.ledger.reserved_usd == 0


@pytest.mark.parametrize("streaming", [False, True])
async def test_concurrent_agent_runs_finish_within_the_budget(make_handler, streaming) -> None:
    budget = 0.006  # a few strong calls at their maximum
    handler = make_handler(budget_usd=budget, on_budget="raise")
    agent = FunctionAgent(tools=TOOLS, llm=router(), streaming=streaming)
    runs = await asyncio.gather(
        *(agent.run(user_msg=COMPLEX.format(i)) for i in range(15)), return_exceptions=True
    )
    answered = [r for r in runs if not isinstance(r, BaseException)]
    assert answered  # before: 0 of 15, every run stopped at its follow-up
    assert all(r.tool_calls and r.response.content for r in answered)  # tool, then answer
    assert handler.total_cost <= budget
    assert handler.ledger.reserved_usd == 0 and len(handler.accountant.follow_ups) == 0
