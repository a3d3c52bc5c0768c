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

from llamaindex_costopt import SemanticCacheLLM
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
