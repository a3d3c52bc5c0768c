"""Defects an audit reproduced in the LlamaIndex face: a cache hit across different
images, output caps left out of the cache key, budgets that under-reserve, and a
wrapped LLM's own prompt settings dropped."""

from __future__ import annotations

from collections.abc import Sequence

from llama_index.core.base.llms.types import (
    ChatMessage,
    ImageBlock,
    MessageRole,
    TextBlock,
)
from pydantic import Field

from llamaindex_costopt import SemanticCacheLLM
from llamaindex_costopt.cache import llm_identity
from llamaindex_costopt.simulated import HashingEmbedding, SimulatedLLM


class _Vision(SimulatedLLM):
    """Describes the picture attached to the latest message."""

    def _answer_text(self, messages: Sequence[ChatMessage], question: str) -> str:
        images = [b for b in messages[-1].blocks if isinstance(b, ImageBlock)]
        return f"I see {images[0].url}" if images else "I see nothing"


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
