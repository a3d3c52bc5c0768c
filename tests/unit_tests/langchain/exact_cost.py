"""A chat model that bills exactly what a budget reserves for it, for budget tests: the
prompt as the budget quotes it (per-message overhead included) and ``max_tokens`` of
output, answered after a short wait so concurrent calls are all in flight at once."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult

from costopt_core.tokens import quote_prompt_tokens


def reply_at_cap(
    messages: list[BaseMessage], max_tokens: int, model_name: str, text: str = "answer"
) -> ChatResult:
    """An answer billed the prompt as a budget quotes it and ``max_tokens`` of output,
    named after ``model_name``."""
    texts = [m.content if isinstance(m.content, str) else json.dumps(m.content) for m in messages]
    prompt = quote_prompt_tokens(texts)
    usage = {
        "input_tokens": prompt,
        "output_tokens": max_tokens,
        "total_tokens": prompt + max_tokens,
    }
    message = AIMessage(text, usage_metadata=usage, response_metadata={"model_name": model_name})
    return ChatResult(generations=[ChatGeneration(message=message)])


class ExactCostModel(BaseChatModel):
    """``fail``: a provider that is down; ``during``: called while a call runs (e.g.
    another process takes a lock); ``sync_delay_s``: the sync path's wait."""

    model_name: str
    max_tokens: int = 100
    fail: bool = False
    during: Any = None
    sync_delay_s: float = 0.0

    @property
    def _llm_type(self) -> str:
        return "exact-cost"

    def _reply(self, messages: list[BaseMessage]) -> ChatResult:
        if self.during is not None:
            self.during()
        if self.fail:
            raise ConnectionError(f"{self.model_name} is down")
        return reply_at_cap(messages, self.max_tokens, self.model_name)

    def _generate(self, messages: Any, stop: Any = None, run_manager: Any = None, **kw: Any):
        if self.sync_delay_s:
            time.sleep(self.sync_delay_s)
        return self._reply(messages)

    async def _agenerate(self, messages: Any, stop: Any = None, run_manager: Any = None, **kw: Any):
        await asyncio.sleep(0.005)  # every call is in flight at once
        return self._reply(messages)
