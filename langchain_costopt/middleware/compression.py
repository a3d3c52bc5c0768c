"""PromptCompressionMiddleware: every model call of a LangChain agent sends a squeezed
prompt trimmed to a token budget, and the saving shows in the cost report.

Example:
    >>> from langchain.agents import create_agent
    >>> from langchain_costopt import CostCallbackHandler, set_price
    >>> from langchain_costopt.middleware.compression import PromptCompressionMiddleware
    >>> from langchain_costopt.simulated import SimulatedChatModel
    >>> _ = set_price("agent-compress-doc", input_per_token=1e-5, output_per_token=3e-5)
    >>> model = SimulatedChatModel(model_name="agent-compress-doc")
    >>> agent = create_agent(model, tools=[], system_prompt="Be brief.",
    ...                      middleware=[PromptCompressionMiddleware(max_tokens=40)])
    >>> history = []
    >>> for i in range(10):
    ...     history += [("user", f"Old question number {i}?"), ("ai", f"Old answer {i}.")]
    >>> handler = CostCallbackHandler()
    >>> state = agent.invoke({"messages": [*history, ("user", "What now?")]},
    ...                      config={"callbacks": [handler]})
    >>> len(state["messages"]), handler.to_dict()["saved_compression_usd"] > 0
    (22, True)

The agent's state keeps the whole conversation (the middleware changes only what one
model call sends, as LangChain's ``ContextEditingMiddleware`` does); the system prompt
counts toward ``max_tokens`` and is always sent, as is the latest turn (from the last
human message on, its tool calls and their results included). The trimming and the
billing mark are those of :class:`langchain_costopt.compression.PromptCompressor`.
"""

from __future__ import annotations

from typing import Any

from langchain.agents.middleware.types import AgentMiddleware, ModelRequest
from langchain_core.messages import BaseMessage

from langchain_costopt.compression import PromptCompressor
from langchain_costopt.middleware.routing import ACallNext, CallNext, ModelResult


class PromptCompressionMiddleware(AgentMiddleware):
    """Compress the prompt of each model call of a ``create_agent`` agent (module doc).

    Args:
        max_tokens: the prompt's token budget, system prompt included; ``None``: only
            squeeze whitespace.
        squeeze: squeeze whitespace in every message's text.
        model: the model whose tokenizer counts tokens (``None``: the estimate).
    """

    def __init__(
        self, max_tokens: int | None = None, *, squeeze: bool = True, model: str | None = None
    ) -> None:
        super().__init__()
        self.compressor = PromptCompressor(max_tokens, squeeze=squeeze, model=model)

    def _compressed(self, request: ModelRequest[Any]) -> ModelRequest[Any]:
        if not request.messages:
            return request
        system = request.system_message
        prompt: list[BaseMessage] = [system, *request.messages] if system else request.messages
        kept, removed = self.compressor.compress(prompt)
        if not removed:
            return request
        if system is not None:
            # The system message is always kept, first (squeezed, perhaps).
            return request.override(system_message=kept[0], messages=kept[1:])
        return request.override(messages=kept)

    def wrap_model_call(self, request: ModelRequest[Any], handler: CallNext) -> ModelResult:
        return handler(self._compressed(request))

    async def awrap_model_call(self, request: ModelRequest[Any], handler: ACallNext) -> ModelResult:
        return await handler(self._compressed(request))


__all__ = ["PromptCompressionMiddleware"]
