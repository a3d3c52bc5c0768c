"""A RouterLLM / SemanticCacheLLM call cancelled inside its model call (``asyncio.wait_for``
around it, as an agent step's timeout does) leaves nothing behind in the cost handler,
with or without a budget: thousands of timeouts must not grow its memory."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from llama_index.core.base.llms.types import ChatMessage, ChatResponse
from llama_index.core.llms.callbacks import llm_chat_callback

from costopt_core.pricing import set_price
from llamaindex_costopt import CostEventHandler, RouterLLM, SemanticCacheLLM
from llamaindex_costopt.simulated import HashingEmbedding, SimulatedLLM

set_price("cancel-li-cheap", input_per_token=1e-7, output_per_token=4e-7)
set_price("cancel-li-strong", input_per_token=1e-6, output_per_token=4e-6)
MESSAGES = [ChatMessage(role="user", content="Tell me a long story about Paris please")]


class SlowLLM(SimulatedLLM):
    """Takes 0.2 s to answer asynchronously, so a timeout lands inside the call."""

    @llm_chat_callback()
    async def achat(self, messages: Any, **kwargs: Any) -> ChatResponse:
        await asyncio.sleep(0.2)
        return self.chat(messages, **kwargs)


def _wrapper(cached: bool) -> Any:
    router = RouterLLM(
        llms={
            "simple": SlowLLM(model_name="cancel-li-cheap"),
            "complex": SlowLLM(model_name="cancel-li-strong"),
        }
    )
    return SemanticCacheLLM(router, embed_model=HashingEmbedding()) if cached else router


def _held(handler: CostEventHandler) -> dict[str, int]:
    maps = {"gates": handler._gates, "open": handler._open, "pending": handler._pending}
    return {name: len(held) for name, held in maps.items() if held}


@pytest.mark.parametrize("cached", [False, True])
@pytest.mark.parametrize("budget", [None, 1.0])
async def test_a_cancelled_wrapper_call_leaves_nothing_held(make_handler, cached, budget) -> None:
    handler = make_handler(budget_usd=budget)
    llm = _wrapper(cached)
    for _ in range(3):
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(llm.achat(MESSAGES), 0.05)
    assert _held(handler) == {}  # was {'gates': 3} without a budget
    assert handler.ledger.reserved_usd == 0.0
    reply = await llm.achat(MESSAGES)  # and the next call is counted as usual
    assert reply.message.content and handler.summary().calls == 1
