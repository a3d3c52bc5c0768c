"""Test helpers for the LlamaIndex face: an instrumentation event recorder and LLMs
that nest their own events (to check that nested calls are counted once).

The LLMs under test are ``llamaindex_costopt.simulated.SimulatedLLM`` (deterministic,
each endpoint implemented directly, one event pair per call).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from llama_index.core.base.llms.types import (
    ChatMessage,
    ChatResponse,
    CompletionResponse,
    LLMMetadata,
)
from llama_index.core.instrumentation import get_dispatcher
from llama_index.core.instrumentation.event_handlers import BaseEventHandler
from llama_index.core.llms.callbacks import llm_chat_callback, llm_completion_callback
from llama_index.core.llms.custom import CustomLLM
from pydantic import PrivateAttr

from llamaindex_costopt.simulated import SimulatedLLM

LLM_EVENTS = (
    "LLMChatStartEvent",
    "LLMChatEndEvent",
    "LLMCompletionStartEvent",
    "LLMCompletionEndEvent",
)


class EventRecorder(BaseEventHandler):
    """Keeps every instrumentation event it is given."""

    _events: list[Any] = PrivateAttr(default_factory=list)
    _lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)

    @classmethod
    def class_name(cls) -> str:
        return "EventRecorder"

    def handle(self, event: Any, **kwargs: Any) -> None:
        with self._lock:
            self._events.append(event)

    @property
    def events(self) -> list[Any]:
        with self._lock:
            return list(self._events)

    def names(self, *only: str) -> list[str]:
        names = [e.class_name() for e in self.events]
        return [n for n in names if not only or n in only]

    def llm_names(self) -> list[str]:
        return self.names(*LLM_EVENTS)

    def of(self, name: str) -> list[Any]:
        return [e for e in self.events if e.class_name() == name]

    def clear(self) -> None:
        with self._lock:
            self._events.clear()


@contextmanager
def recording() -> Iterator[EventRecorder]:
    """An EventRecorder on the root dispatcher for the duration of the block."""
    recorder = EventRecorder()
    root = get_dispatcher()
    root.add_event_handler(recorder)
    try:
        yield recorder
    finally:
        root.event_handlers = [h for h in root.event_handlers if h is not recorder]


class NestingWrapperLLM(CustomLLM):
    """A third-party style wrapper whose decorated methods call a decorated inner LLM:
    two nested LLM event pairs per call (the cost handler must count one)."""

    inner: SimulatedLLM

    @property
    def metadata(self) -> LLMMetadata:
        return LLMMetadata(is_chat_model=True, model_name="wrapper-of-" + self.inner.model_name)

    @llm_chat_callback()
    def chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        return self.inner.chat(messages, **kwargs)

    @llm_completion_callback()
    def complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        return self.inner.complete(prompt, formatted=formatted, **kwargs)

    @llm_completion_callback()
    def stream_complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> Any:
        return self.inner.stream_complete(prompt, formatted=formatted, **kwargs)


def tiers(*names: str, **options: Any) -> dict[str, SimulatedLLM]:
    """SimulatedLLMs named after the models they stand in for: two names are the
    "simple" and "complex" tiers, three add "medium" between them."""
    labels = ("simple", "complex") if len(names) == 2 else ("simple", "medium", "complex")
    return {
        tier: SimulatedLLM(model_name=name, **options)
        for tier, name in zip(labels, names, strict=True)
    }
