"""CostEventHandler on an LLM answering like LlamaIndex's ``OpenAIResponses``: the OpenAI
Responses API's usage in ``additional_kwargs["usage"]`` (the SDK's ``ResponseUsage``
object), its cached input tokens priced at the cache-read price."""

from __future__ import annotations

from typing import Any

import pytest
from llama_index.core.base.llms.types import ChatMessage, ChatResponse, MessageRole
from llama_index.core.llms.callbacks import llm_chat_callback
from pydantic import BaseModel

from costopt_core.pricing import set_price
from llamaindex_costopt import CostEventHandler
from llamaindex_costopt.simulated import SimulatedLLM

# gpt-4o's list prices under a name of this file's own: $2.50 / $1.25 cached / $10 per
# million input / cached / output tokens.
MODEL = "li-responses-gpt-4o"


class InputTokensDetails(BaseModel):
    cached_tokens: int
    cache_write_tokens: int = 0


class OutputTokensDetails(BaseModel):
    reasoning_tokens: int


class ResponseUsage(BaseModel):
    """The fields of ``openai.types.responses.ResponseUsage`` (openai is not installed)."""

    input_tokens: int
    input_tokens_details: InputTokensDetails
    output_tokens: int
    output_tokens_details: OutputTokensDetails
    total_tokens: int


class Response(BaseModel):
    """What ``OpenAIResponses`` keeps as the answer's ``raw``: the API's response."""

    model: str
    usage: ResponseUsage


USAGE = ResponseUsage(
    input_tokens=10_000,
    input_tokens_details=InputTokensDetails(cached_tokens=8_000),
    output_tokens=200,
    output_tokens_details=OutputTokensDetails(reasoning_tokens=0),
    total_tokens=10_200,
)


class ResponsesLikeLLM(SimulatedLLM):
    """Answers as ``OpenAIResponses.chat`` does, with the usage object given as ``shape``."""

    shape: str = "object"

    @llm_chat_callback()
    def chat(self, messages: Any, **kwargs: Any) -> ChatResponse:
        usage: Any = USAGE.model_dump() if self.shape == "dict" else USAGE
        raw = Response(model=self.model_name, usage=USAGE) if self.shape == "raw" else None
        return ChatResponse(
            message=ChatMessage(role=MessageRole.ASSISTANT, content="ok"),
            raw=raw,
            additional_kwargs={"usage": usage},
        )


@pytest.fixture
def handler():
    set_price(MODEL, input_per_token=2.5e-6, output_per_token=1e-5, cache_read_per_token=1.25e-6)
    made = CostEventHandler().register()
    yield made
    made.unregister()


@pytest.mark.parametrize("shape", ["object", "dict", "raw"])
def test_cached_responses_input_is_billed_at_the_cache_read_price(handler, shape) -> None:
    ResponsesLikeLLM(model_name=MODEL, shape=shape).chat(
        [ChatMessage(role=MessageRole.USER, content="q")]
    )
    figures = handler.to_dict()
    # 2,000 x $2.50 + 8,000 x $1.25 + 200 x $10 per million: $0.017 (it was booked
    # $0.027, every input token at the full price).
    assert handler.total_cost == pytest.approx(0.017)
    assert figures["cache_read_tokens"] == 8_000
    # OpenAI's prompt cache saved 8,000 x ($2.50 - $1.25) per million.
    assert figures["saved_provider_cache_usd"] == pytest.approx(0.01)
