"""Through ``CostCallbackHandler``: a model behind an OpenAI-compatible URL that reports
no usage, capped at ``max_tokens=100``, is booked at most 100 output tokens a call, so
the booked spend stays within the budget its reservations kept (issue 16's audit:
134 tokens a call, total_cost 122 % of the budget)."""

from __future__ import annotations

import asyncio
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage
from langchain_core.outputs import ChatGeneration, ChatResult

from costopt_core.pricing import set_price
from costopt_core.tokens import quote_prompt_tokens
from langchain_costopt import CostCallbackHandler

set_price("capped-lc", input_per_token=2.7e-7, output_per_token=1.1e-6)
QUESTION = "请分析并比较两种架构"
ANSWER = "请分析并比较两种架构" * 20  # the cap's worth of tokens; 200 by the estimate


class NoUsageModel(BaseChatModel):
    """Answers at its output cap and reports no token usage (a stream without usage)."""

    max_tokens: int = 100

    @property
    def _llm_type(self) -> str:
        return "no-usage"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"model_name": "capped-lc", "max_tokens": self.max_tokens}

    def _generate(self, messages: Any, stop: Any = None, run_manager: Any = None, **kw: Any):
        message = AIMessage(ANSWER, response_metadata={"model_name": "capped-lc"})
        return ChatResult(generations=[ChatGeneration(message=message)])

    async def _agenerate(self, messages: Any, stop: Any = None, run_manager: Any = None, **kw: Any):
        await asyncio.sleep(0.005)
        return self._generate(messages)


async def test_calls_without_usage_are_booked_within_their_cap_and_the_budget() -> None:
    reserved = quote_prompt_tokens([QUESTION]) * 2.7e-7 + 100 * 1.1e-6
    budget = 10.5 * reserved
    handler = CostCallbackHandler(budget_usd=budget)
    model = NoUsageModel()
    config: Any = {"callbacks": [handler]}
    results = await asyncio.gather(
        *(model.ainvoke(QUESTION, config=config) for _ in range(100)), return_exceptions=True
    )
    assert sum(isinstance(r, AIMessage) for r in results) == 10
    records = handler.ledger.records()
    assert {r.output_tokens for r in records} == {100}  # before: 200, past the cap
    assert all(r.estimated for r in records)
    assert 0.8 * budget <= handler.total_cost <= budget


def test_an_unbudgeted_call_without_usage_is_also_held_to_its_cap() -> None:
    # No budget, so nothing was reserved: the cap comes from the run's own parameters.
    handler = CostCallbackHandler()
    NoUsageModel().invoke(QUESTION, config={"callbacks": [handler]})
    [record] = handler.ledger.records()
    assert record.estimated and record.output_tokens == 100
