"""Defects an audit reproduced in the LlamaIndex face: a cache hit across different
images, output caps left out of the cache key, budgets that under-reserve, and a
wrapped LLM's own prompt settings dropped."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import pytest
from llama_index.core import PromptTemplate
from llama_index.core.base.llms.types import (
    ChatMessage,
    CompletionResponse,
    ImageBlock,
    LLMMetadata,
    MessageRole,
    TextBlock,
)
from llama_index.core.llms.callbacks import llm_completion_callback
from llama_index.core.llms.custom import CustomLLM
from llama_index.core.llms.mock import MockLLM
from llama_index.core.tools import FunctionTool
from pydantic import Field

from costopt_core.ledger import BudgetExceededError
from llamaindex_costopt import CostEventHandler, RouterLLM, SemanticCacheLLM
from llamaindex_costopt.cache import llm_identity
from llamaindex_costopt.simulated import HashingEmbedding, SimulatedLLM


class _Vision(SimulatedLLM):
    """Describes the picture attached to the latest message."""

    def _answer_text(self, messages: Sequence[ChatMessage], question: str) -> str:
        images = [b for b in messages[-1].blocks if isinstance(b, ImageBlock)]
        return f"I see {images[0].url}" if images else "I see nothing"


def user(text: str) -> list[ChatMessage]:
    return [ChatMessage(role=MessageRole.USER, content=text)]


def _about(url: str) -> list[ChatMessage]:
    return [
        ChatMessage(
            role=MessageRole.USER,
            blocks=[TextBlock(text="What is in this picture?"), ImageBlock(url=url)],
        )
    ]


def test_the_same_question_about_another_picture_is_not_served_the_first_answer():
    llm = SemanticCacheLLM(_Vision(model_name="gpt-4o"), embed_model=HashingEmbedding())
    assert llm.chat(_about("https://example.com/cat.png")).message.content == (
        "I see https://example.com/cat.png"
    )
    dog = llm.chat(_about("https://example.com/dog.png"))
    assert dog.message.content == "I see https://example.com/dog.png"
    assert "cache" not in dog.additional_kwargs
    again = llm.chat(_about("https://example.com/cat.png"))
    assert again.message.content == "I see https://example.com/cat.png"
    assert again.additional_kwargs["cache"]["hit"]


class _Capped(SimulatedLLM):
    """A HuggingFace-style output cap that the metadata does not show."""

    max_new_tokens: int = 2000
    hf_token: str = "hf_secret-1"
    additional_kwargs: dict = Field(default_factory=dict)

    def _answer_text(self, messages: Sequence[ChatMessage], question: str) -> str:
        full = "Paris is the capital of France, on the Seine, with 2.1 million people."
        return " ".join(full.split()[: self.max_new_tokens])


def test_raising_the_output_cap_is_not_served_the_truncated_answer():
    inner = _Capped(max_new_tokens=3)
    cache = SemanticCacheLLM(inner, embed_model=HashingEmbedding())
    assert cache.complete("Tell me about Paris").text == "Paris is the"
    inner.max_new_tokens = 2000
    answer = cache.complete("Tell me about Paris")
    assert answer.text.endswith("2.1 million people.")
    assert "cache" not in answer.additional_kwargs


def test_output_caps_are_in_the_key_and_credentials_are_not():
    llm = _Capped(additional_kwargs={"max_completion_tokens": 99, "access_token": "tok-2"})
    identity = llm_identity(llm)
    assert '"max_new_tokens": 2000' in identity
    assert '"max_completion_tokens": 99' in identity
    assert "secret" not in identity and "tok-2" not in identity


# -- budgets reserve what the call can really cost ----------------------------------------


def add(a: int, b: int) -> int:
    return a + b


# A tool whose schema is ~5,000 tokens: billed as input on every call that binds it.
_RULES = " ".join(f"Rule {i}: when adding, remember guideline {i} carefully." for i in range(300))
_LONG_TOOL = FunctionTool.from_defaults(add, description="Adds two integers. " + _RULES)


def _router(**tier_settings) -> RouterLLM:
    return RouterLLM(
        llms={
            "simple": SimulatedLLM(model_name="gpt-4o", **tier_settings),
            "complex": SimulatedLLM(model_name="gpt-4o", **tier_settings),
        }
    )


def test_a_call_binding_large_tools_is_refused_before_it_overshoots_the_budget():
    router = _router(max_tokens=64)
    with CostEventHandler(budget_usd=0.01, on_budget="raise") as handler:
        with pytest.raises(BudgetExceededError):
            router.chat_with_tools([_LONG_TOOL], user_msg="What is 2 plus 2?")
        assert [llm.calls for llm in router.llms.values()] == [0, 0]
        assert handler.total_cost == 0
        router.chat(user("What is 2 plus 2?"))  # the same call without the tool fits


def test_the_calls_own_output_cap_is_what_the_budget_reserves():
    with CostEventHandler(budget_usd=0.06, on_budget="raise"):
        router = _router()  # no cap of its own: the engine's default would fit
        with pytest.raises(BudgetExceededError):
            router.chat(user("Write a long essay"), max_tokens=16_000)
        assert [llm.calls for llm in router.llms.values()] == [0, 0]
    with CostEventHandler(budget_usd=0.01, on_budget="raise"):
        # the engine's default cap (4,096 tokens) would not fit; 100 tokens do
        router.chat(user("Write a short note"), max_tokens=100)


class _WithExtras(SimulatedLLM):
    additional_kwargs: dict = Field(default_factory=dict)


def test_a_cached_llms_additional_kwargs_cap_is_what_the_budget_reserves():
    inner = _WithExtras(model_name="gpt-4o", additional_kwargs={"max_completion_tokens": 16_000})
    cache = SemanticCacheLLM(inner, embed_model=HashingEmbedding())
    with CostEventHandler(budget_usd=0.06, on_budget="raise"):
        with pytest.raises(BudgetExceededError):
            cache.chat(user("Write a long essay"))
        assert inner.calls == 0


# -- the answering LLM's own prompt settings apply, as when it is used plainly -------------


class _Seeing(SimulatedLLM):
    """Keeps the messages of its last call."""

    seen: list = Field(default_factory=list, exclude=True)

    def _answer_text(self, messages: Sequence[ChatMessage], question: str) -> str:
        self.seen[:] = list(messages)
        return "Bonjour"


class _Completion(CustomLLM):
    """A completion model (as llama.cpp / HuggingFace local models are): keeps its prompt."""

    model_name: str = "gpt-4o-mini"
    seen: list = Field(default_factory=list, exclude=True)

    @property
    def metadata(self) -> LLMMetadata:
        return LLMMetadata(model_name=self.model_name, is_chat_model=False)

    @llm_completion_callback()
    def complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        self.seen[:] = [prompt]
        return CompletionResponse(text="ok")

    @llm_completion_callback()
    def stream_complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> Any:
        self.seen[:] = [prompt]
        return iter([CompletionResponse(text="ok", delta="ok")])


FRENCH = "Always answer in French."
TEMPLATE = PromptTemplate("Translate {query_str}")


def _system_texts(messages: Sequence[ChatMessage]) -> list[str]:
    return [m.content for m in messages if m.role == MessageRole.SYSTEM]


@pytest.mark.parametrize("wrap", ["router", "cache"])
def test_a_wrapped_chat_llms_system_prompt_reaches_it_from_predict_and_stream(wrap):
    def wrapped(llm):
        if wrap == "router":
            return RouterLLM(llms={"simple": llm, "complex": llm.model_copy()})
        return SemanticCacheLLM(llm, embed_model=HashingEmbedding())

    for ask in ("predict", "stream", "apredict"):
        inner = _Seeing(model_name="gpt-4o-mini", system_prompt=FRENCH)
        llm = wrapped(inner)
        if ask == "predict":
            llm.predict(TEMPLATE, query_str=f"hello {wrap}")
        elif ask == "stream":
            "".join(llm.stream(TEMPLATE, query_str=f"hello {wrap}"))
        else:
            asyncio.run(llm.apredict(TEMPLATE, query_str=f"hello {wrap}"))
        seen = inner.seen or llm.llms["complex"].seen
        assert _system_texts(seen) == [FRENCH], ask
    # a plain chat call is passed on as it is, as the plain LLM takes it
    inner = _Seeing(model_name="gpt-4o-mini", system_prompt=FRENCH)
    wrapped(inner).chat(user("hello"))
    assert _system_texts(inner.seen or []) == []


def _inst(prompt: str) -> str:
    return f"<s>[INST] {prompt} [/INST]"


def test_a_completion_tier_formats_predicts_prompt_its_own_way():
    settings = {
        "completion_to_prompt": _inst,
        "query_wrapper_prompt": PromptTemplate("Q: {query_str}"),
    }
    plain = _Completion(**settings)
    plain.predict(TEMPLATE, query_str="hello")
    tier = _Completion(**settings)
    router = RouterLLM(
        llms={"simple": tier, "complex": _Completion(model_name="gpt-4o", **settings)}
    )
    router.predict(TEMPLATE, query_str="hello")
    assert tier.seen == plain.seen == ["Q: <s>[INST] Translate hello [/INST]"]


def test_llms_that_format_prompts_differently_do_not_share_cache_entries():
    first = SemanticCacheLLM(_Completion(), embed_model=HashingEmbedding())
    first.predict(TEMPLATE, query_str="hello")
    inner = _Completion(completion_to_prompt=_inst)
    second = SemanticCacheLLM(inner, embed_model=HashingEmbedding(), store=first.cache.store)
    second.predict(TEMPLATE, query_str="hello")
    assert inner.seen == ["<s>[INST] Translate hello [/INST]"]  # asked, not served


@pytest.mark.parametrize("routed", [False, True], ids=["cache", "cache-over-router"])
def test_a_hit_replaying_an_estimated_call_is_marked_estimated_as_the_call_was(routed):
    # MockLLM reports no usage: its call is costed from its text, and so is its replay.
    def mock(tokens: int) -> MockLLM:
        return MockLLM(max_tokens=tokens)

    inner = RouterLLM(llms={"simple": mock(8), "complex": mock(32)}) if routed else mock(8)
    llm = SemanticCacheLLM(inner, embed_model=HashingEmbedding())
    with CostEventHandler() as handler:
        llm.chat(user("What is the capital of France?"))
        llm.chat(user("What is the capital of France?"))
    call, hit = handler.ledger.records()
    assert (call.kind, hit.kind) == ("call", "cache_hit")
    assert call.estimated and hit.estimated
    assert hit.input_tokens > 0
    assert handler.to_dict()["estimated_calls"] == 1  # a hit is no call
