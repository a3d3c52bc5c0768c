"""``LLMVerifier``: a cheap LlamaIndex LLM judges the cache's uncertain hits.

Example:
    >>> from llama_index.core.llms.mock import MockLLM
    >>> from llamaindex_costopt.verifiers import LLMVerifier
    >>> judge = LLMVerifier(MockLLM())  # MockLLM echoes the prompt: never a "yes"
    >>> judge("Is it open on Sunday?", "Is it open Sundays?", "Yes, 9 to 5.")
    False
    >>> judge.stats["calls"]
    1

Use it as ``SemanticCacheLLM(llm, embed_model, verifier=LLMVerifier(cheap_llm))``. The
prompt and the reading of the reply are the engine's (:mod:`costopt_core.cache_judge`):
only a reply starting with "yes" serves. Its spend is tallied apart from the user's calls
in ``.stats`` (calls, tokens, ``cost_usd`` priced with the costopt catalog; ``None``
while a model has no known price). A ``CostEventHandler`` on the root dispatcher also
sees its LLM events, as it sees every LLM's.
"""

from __future__ import annotations

import threading
from typing import Any

from llama_index.core.base.llms.types import ChatMessage, MessageRole
from llama_index.core.llms.llm import LLM

from costopt_core.accounting import price_usage
from costopt_core.cache_judge import judge_messages, parse_verdict
from costopt_core.ledger import TokenUsage
from costopt_core.pricing import get_price
from costopt_core.tokens import estimate_tokens
from llamaindex_costopt.handlers import model_of_response, usage_of_response
from llamaindex_costopt.wrapper import llm_model_name


class LLMVerifier:
    """``verifier(question, cached_question, cached_answer) -> bool`` on a LlamaIndex LLM."""

    def __init__(self, llm: LLM) -> None:
        if not isinstance(llm, LLM):
            raise TypeError(f"llm must be a LlamaIndex LLM, got {type(llm).__name__}")
        self.llm = llm
        self._lock = threading.Lock()
        self._stats: dict[str, Any] = {
            "calls": 0,
            "input_tokens": 0,
            "output_tokens": 0,
            "cost_usd": 0.0,
            "unpriced_calls": 0,
        }

    @property
    def stats(self) -> dict[str, Any]:
        with self._lock:
            return dict(self._stats)

    @staticmethod
    def _messages(question: str, cached_question: str, cached_answer: str) -> list[ChatMessage]:
        system, user = judge_messages(question, cached_question, cached_answer)
        return [
            ChatMessage(role=MessageRole.SYSTEM, content=system),
            ChatMessage(role=MessageRole.USER, content=user),
        ]

    def _book(self, messages: list[ChatMessage], response: Any) -> bool:
        reply = str(response.message.content or "")
        usage = usage_of_response(response) or TokenUsage(
            sum(estimate_tokens(str(m.content)) for m in messages), estimate_tokens(reply)
        )
        model = model_of_response(response) or llm_model_name(self.llm)
        price = get_price(model) if model else None
        with self._lock:
            s = self._stats
            s["calls"] += 1
            s["input_tokens"] += usage.input_tokens
            s["output_tokens"] += usage.output_tokens
            if price is None:
                s["unpriced_calls"] += 1
            else:
                s["cost_usd"] += price_usage(price, usage)
        return parse_verdict(reply)

    def verify(self, question: str, cached_question: str, cached_answer: str) -> bool:
        messages = self._messages(question, cached_question, cached_answer)
        return self._book(messages, self.llm.chat(messages))

    async def averify(self, question: str, cached_question: str, cached_answer: str) -> bool:
        messages = self._messages(question, cached_question, cached_answer)
        return self._book(messages, await self.llm.achat(messages))

    __call__ = verify


__all__ = ["LLMVerifier"]
