"""RouterLLM(hold_follow_ups=True) under a budget keeps room for an agent's next call
while its tools run (costopt_core.follow_ups): concurrent agent runs on a budget for a
few calls each got their first call in and then none of their follow-ups fit (15
FunctionAgent runs: 0 answered, 79 % of the budget spent on runs that stopped). Off by
default; a hold nobody will claim is never made or is given back."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from llama_index.core.agent.workflow import FunctionAgent
from llama_index.core.base.llms.types import ChatMessage, ChatResponse
from llama_index.core.llms.callbacks import llm_chat_callback
from llama_index.core.prompts import PromptTemplate
from llama_index.core.tools import FunctionTool
from pydantic import BaseModel

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


def router(hold: bool = True) -> RouterLLM:
    return RouterLLM(
        llms={
            "simple": SimulatedLLM(model_name="hold-cheap", max_tokens=64),
            "complex": SimulatedLLM(model_name="hold-strong", max_tokens=64),
        },
        strategy="rules",
        hold_follow_ups=hold,
    )


def follow_up(asked: ChatResponse, llm: RouterLLM, question: str) -> list[ChatMessage]:
    [call] = llm.get_tool_calls_from_response(asked)
    extra = {"tool_call_id": call.tool_id, "name": "multiply"}
    result = ChatMessage(role="tool", content="42", additional_kwargs=extra)
    return [ChatMessage(role="user", content=question), asked.message, result]


def test_a_tool_call_holds_room_until_its_follow_up_is_admitted(make_handler) -> None:
    handler = make_handler(budget_usd=1.0)
    llm = router()
    asked = llm.chat_with_tools(TOOLS, user_msg=COMPLEX.format(6))
    assert handler.ledger.reserved_usd > 0  # held for the follow-up
    llm.chat_with_tools(TOOLS, chat_history=follow_up(asked, llm, COMPLEX.format(6)))
    assert handler.ledger.reserved_usd == 0 and len(handler.accountant.follow_ups) == 0


def test_holds_are_off_by_default(make_handler) -> None:
    handler = make_handler(budget_usd=1.0)
    router(hold=False).chat_with_tools(TOOLS, user_msg=COMPLEX.format(6))
    assert handler.ledger.reserved_usd == 0


def test_a_follow_up_through_another_router_gives_the_hold_back(make_handler) -> None:
    # Each agent of a multi-agent workflow with its own router.
    handler = make_handler(budget_usd=1.0)
    first = router()
    asked = first.chat_with_tools(TOOLS, user_msg=COMPLEX.format(6))
    router(hold=False).chat_with_tools(
        TOOLS, chat_history=follow_up(asked, first, COMPLEX.format(6))
    )
    assert handler.ledger.reserved_usd == 0 and len(handler.accountant.follow_ups) == 0


def test_structured_output_holds_nothing(make_handler) -> None:
    # structured_predict forces its one tool and never sends the result back.
    class Invoice(BaseModel):
        amount: int
        customer: str

    handler = make_handler(budget_usd=1.0)
    llm = router()
    for i in range(3):
        llm.structured_predict(Invoice, PromptTemplate("Extract: {text}"), text=f"Bob owes {i}")
    assert handler.ledger.reserved_usd == 0


async def test_a_cancelled_call_gives_its_hold_back(make_handler) -> None:
    class Slow(SimulatedLLM):
        @llm_chat_callback()
        async def achat(self, messages: Any, **kwargs: Any) -> ChatResponse:
            await asyncio.sleep(0.2)
            return self.chat(messages, **kwargs)

    handler = make_handler(budget_usd=1.0)
    llm = RouterLLM(
        llms={"simple": Slow(model_name="hold-cheap"), "complex": Slow(model_name="hold-strong")},
        strategy="rules",
        hold_follow_ups=True,
    )
    for _ in range(2):
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(llm.achat_with_tools(TOOLS, user_msg=COMPLEX.format(6)), 0.05)
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
