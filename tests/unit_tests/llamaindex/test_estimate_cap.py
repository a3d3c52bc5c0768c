"""Through ``CostEventHandler``: an LLM that reports no usage and caps its answers at
``max_tokens=100`` is booked at most 100 output tokens a call (the LangChain face's rule,
issue 16's audit: 134 tokens a call past a cap of 100), and a plain call under a budget
reserves its prompt and that cap on its model's price, as the wrappers' calls do; a
wrapper (a cache tier, a StructuredLLM) is quoted on the cap of the LLM it wraps."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from llama_index.core.base.llms.types import CompletionResponse, LLMMetadata
from llama_index.core.llms import ChatMessage, CustomLLM, MockLLM
from llama_index.core.llms.callbacks import llm_completion_callback
from pydantic import BaseModel, Field

from costopt_core.pricing import set_price
from llamaindex_costopt import RouterLLM, SemanticCacheLLM
from llamaindex_costopt.simulated import HashingEmbedding, SimulatedLLM
from llamaindex_costopt.wrapper import CompleteRequest, output_limit, prompt_tokens

PRICE_IN, PRICE_OUT = 2.7e-7, 1.1e-6
set_price("capped-li", input_per_token=PRICE_IN, output_per_token=PRICE_OUT)
QUESTION = "请分析并比较两种架构"
ANSWER = "请分析并比较两种架构" * 20  # well past the cap by any count from its text


class NoUsageLLM(CustomLLM):
    """Answers at its output cap and reports no token usage (a stream without usage)."""

    max_tokens: int | None = 100
    seen_reserved: list[float] = Field(default_factory=list)
    handler: Any = None

    @property
    def metadata(self) -> LLMMetadata:
        return LLMMetadata(model_name="capped-li")

    @llm_completion_callback()
    def complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        if self.handler is not None:
            self.seen_reserved.append(self.handler.ledger.reserved_usd)
        return CompletionResponse(text=ANSWER, raw={"model": "capped-li"})

    @llm_completion_callback()
    def stream_complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> Any:
        def chunks() -> Iterator[CompletionResponse]:
            text = ""
            for character in ANSWER:
                text += character
                yield CompletionResponse(text=text, delta=character)

        return chunks()


def test_a_plain_call_without_usage_is_booked_at_most_its_cap(make_handler) -> None:
    handler = make_handler()
    NoUsageLLM().complete(QUESTION)
    [record] = handler.ledger.records()
    assert record.estimated and record.output_tokens == 100  # before: past the cap


def test_the_call_cap_given_to_the_call_holds_too(make_handler) -> None:
    handler = make_handler()
    NoUsageLLM(max_tokens=None).complete(QUESTION, max_tokens=40)
    [record] = handler.ledger.records()
    assert record.estimated and record.output_tokens == 40


def test_a_routed_call_without_usage_is_booked_at_most_its_tiers_cap(make_handler) -> None:
    handler = make_handler()
    RouterLLM(llms={"simple": NoUsageLLM(), "complex": NoUsageLLM()}).complete(QUESTION)
    [record] = handler.ledger.records()
    assert record.estimated and record.output_tokens == 100


def test_a_plain_budgeted_call_reserves_its_prompt_and_cap(make_handler) -> None:
    handler = make_handler(budget_usd=1.0)
    llm = NoUsageLLM(handler=handler, seen_reserved=[])
    llm.complete(QUESTION)
    prompt = prompt_tokens(CompleteRequest(QUESTION, False, {}))
    assert llm.seen_reserved == [pytest.approx(prompt * PRICE_IN + 100 * PRICE_OUT)]
    assert handler.ledger.reserved_usd == 0.0  # settled by the answer


def test_a_set_call_estimate_still_stands_in_for_the_quote(make_handler) -> None:
    handler = make_handler(budget_usd=1.0, call_estimate_usd=0.01)
    llm = NoUsageLLM(handler=handler, seen_reserved=[])
    llm.complete(QUESTION)
    assert llm.seen_reserved == [pytest.approx(0.01)]


def test_chat_messages_are_quoted_as_the_wrappers_quote_them(make_handler) -> None:
    handler = make_handler(budget_usd=1.0)
    llm = NoUsageLLM(handler=handler, seen_reserved=[])
    llm.chat([ChatMessage(role="user", content=QUESTION)])  # CustomLLM chats via complete
    assert len(llm.seen_reserved) == 1 and llm.seen_reserved[0] > 100 * PRICE_OUT


@pytest.mark.parametrize("budget", [None, 1.0])
def test_a_streamed_call_without_usage_is_booked_at_most_its_cap(make_handler, budget) -> None:
    # A stream's span closes when its generator is returned, before its end event.
    handler = make_handler(budget_usd=budget)
    llm = NoUsageLLM()
    list(llm.stream_complete(QUESTION))
    list(llm.stream_chat([ChatMessage(role="user", content=QUESTION)]))
    assert [r.output_tokens for r in handler.ledger.records()] == [100, 100]


def test_an_unpriced_plain_call_does_not_hold_what_is_left_of_the_budget(make_handler) -> None:
    # The budget cannot stop a plain call (LlamaIndex swallows what a handler raises):
    # holding the budget's rest for it would only refuse the wrappers' calls meanwhile.
    class Local(NoUsageLLM):
        @property
        def metadata(self) -> LLMMetadata:
            return LLMMetadata(model_name="unpriced-local-li")

    handler = make_handler(budget_usd=0.05)  # less than its maximum at the dearest prices
    llm = Local(handler=handler, seen_reserved=[])
    llm.complete(QUESTION)
    assert llm.seen_reserved[0] < 0.01  # was 0.05: the whole budget


def test_a_tier_behind_a_cache_keeps_its_cap_in_the_routers_quote(make_handler) -> None:
    # The budget fits the tiers' capped maximum (64 output tokens), not 4,096 tokens.
    set_price("capped-li-strong", input_per_token=2.5e-6, output_per_token=1e-5)
    handler = make_handler(budget_usd=0.01, on_budget="raise")
    tiers = {
        "simple": SimulatedLLM(model_name="capped-li", max_tokens=64),
        "complex": SimulatedLLM(model_name="capped-li-strong", max_tokens=64),
    }
    cached = {
        tier: SemanticCacheLLM(llm, embed_model=HashingEmbedding()) for tier, llm in tiers.items()
    }
    router = RouterLLM(llms=cached, strategy="rules")
    assert output_limit(router) == output_limit(cached["complex"]) == 64
    router.complete("请分析并比较两种架构设计的优缺点")  # refused before: $0.04 reserved
    assert 0 < handler.total_cost <= 0.01


def test_a_structured_llm_is_quoted_on_its_inner_llms_cap() -> None:
    class Answer(BaseModel):
        text: str

    assert output_limit(MockLLM(max_tokens=9).as_structured_llm(Answer)) == 9
