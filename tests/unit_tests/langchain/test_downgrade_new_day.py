"""A router under a spent daily budget with ``on_budget="downgrade"`` answers on its
strong tier again on a new UTC day, from the day's first batch (issue 16's audit: every
day-2 batch stayed on the cheapest tier, the new day's budget untouched)."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import Any

import pytest
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult

from costopt_core.pricing import set_price
from costopt_core.tokens import quote_prompt_tokens
from langchain_costopt import CostCallbackHandler, RouterChatModel

set_price("day-cheap", input_per_token=1e-6, output_per_token=4e-6)
set_price("day-strong", input_per_token=1e-5, output_per_token=3e-5)
QUESTION = "请分析并比较两种架构"  # the seed's rules: complex
DAY_ONE = datetime(2026, 3, 14, 12, tzinfo=UTC).timestamp()
DAY_TWO = datetime(2026, 3, 15, 0, 0, 5, tzinfo=UTC).timestamp()


class ExactCostModel(BaseChatModel):
    """Bills exactly what the budget reserves: the prompt as quoted, 100 tokens out."""

    model_name: str
    max_tokens: int = 100

    @property
    def _llm_type(self) -> str:
        return "exact-cost"

    def _generate(self, messages: list[BaseMessage], stop: Any = None, **kw: Any) -> ChatResult:
        texts = [
            m.content if isinstance(m.content, str) else json.dumps(m.content) for m in messages
        ]
        prompt = quote_prompt_tokens(texts)
        usage = {"input_tokens": prompt, "output_tokens": 100, "total_tokens": prompt + 100}
        message = AIMessage(
            "answer", usage_metadata=usage, response_metadata={"model_name": self.model_name}
        )
        return ChatResult(generations=[ChatGeneration(message=message)])


def cost(model: str) -> float:
    prompt = quote_prompt_tokens([QUESTION])
    return {"day-cheap": prompt * 1e-6 + 400e-6, "day-strong": prompt * 1e-5 + 3000e-6}[model]


def tiers(replies: list[Any]) -> list[str]:
    return [
        r.response_metadata["routing"]["tier"] if isinstance(r, AIMessage) else "refused"
        for r in replies
    ]


def test_the_first_batch_of_a_new_day_is_routed_as_usual(monkeypatch) -> None:
    clock = [DAY_ONE]
    monkeypatch.setattr(time, "time", lambda: clock[0])
    router = RouterChatModel(
        models={
            "simple": ExactCostModel(model_name="day-cheap"),
            "complex": ExactCostModel(model_name="day-strong"),
        },
        strategy="rules",
    )
    budget = 3 * cost("day-strong") + 2 * cost("day-cheap")
    handler = CostCallbackHandler(daily_budget_usd=budget, on_budget="downgrade")
    config: Any = {"callbacks": [handler]}
    day_one = [router.invoke(QUESTION, config=config) for _ in range(5)]
    assert tiers(day_one) == ["complex"] * 3 + ["simple"] * 2
    clock[0] = DAY_TWO
    # Before: ['simple'] * 3, and every later batch of the day stayed on the cheap tier.
    assert tiers(router.batch([QUESTION] * 3, config=config)) == ["complex"] * 3
    rest = router.batch([QUESTION] * 3, config=config, return_exceptions=True)
    assert tiers(rest) == ["simple", "simple", "refused"]  # then the day's budget is spent
    assert handler.budget_status()[0]["spent_usd"] == pytest.approx(budget)
