"""CostEventHandler and ``llm.as_structured_llm(...)``: one model call booked once.

A StructuredLLM's stream starts its inner model's stream only when it is drained, after
its own span closed; its own events used to be priced besides the inner call's (2.7x
the real cost, or a phantom unpriced 'router:...' call under RouterLLM). A cache hit
answering a StructuredLLM call used to be booked as spend. These tests go through real
LlamaIndex objects (StructuredLLM, SemanticCacheLLM, RouterLLM) with offline LLMs.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from llama_index.core.base.llms.types import (
    ChatMessage,
    ChatResponse,
    ChatResponseGen,
    LLMMetadata,
    MessageRole,
)
from llama_index.core.llms import LLM
from llama_index.core.llms.callbacks import llm_chat_callback, llm_completion_callback
from llama_index.core.llms.custom import CustomLLM
from pydantic import BaseModel

from costopt_core.pricing import set_price
from llamaindex_costopt import CostEventHandler, RouterLLM, SemanticCacheLLM
from llamaindex_costopt.handlers import usage_of_response
from llamaindex_costopt.simulated import HashingEmbedding, SimulatedLLM
from tests.unit_tests.llamaindex.fakes import EventRecorder, recording

CHEAP, STRONG = "li-structured-cheap", "li-structured-strong"
PRICES = {CHEAP: (1e-6, 2e-6), STRONG: (1e-5, 3e-5)}
for _name, (_inp, _out) in PRICES.items():
    set_price(_name, input_per_token=_inp, output_per_token=_out)


class City(BaseModel):
    name: str
    country: str


def user(text: str) -> list[ChatMessage]:
    return [ChatMessage(role=MessageRole.USER, content=text)]


PARIS = user("Paris is in France")


def model_cost(recorder: EventRecorder) -> float:
    """What the model calls the recorder saw cost, from the usage each answer reported
    (StructuredLLM's own answers are not model calls)."""
    total = 0.0
    for event in recorder.of("LLMChatEndEvent"):
        if event.span_id.startswith("StructuredLLM."):
            continue
        usage = usage_of_response(event.response)
        assert usage is not None
        model = event.response.raw["model"]
        price_in, price_out = PRICES[model]
        total += usage.input_tokens * price_in + usage.output_tokens * price_out
    return total


def plain() -> SimulatedLLM:
    return SimulatedLLM(model_name=CHEAP)


def routed() -> RouterLLM:
    return RouterLLM(
        llms={"simple": SimulatedLLM(model_name=CHEAP), "complex": SimulatedLLM(model_name=STRONG)},
        strategy="rules",
    )


def model_calls(llm: LLM) -> int:
    """Calls made to the model(s) behind ``llm`` (a SimulatedLLM or a router of them)."""
    tiers = llm.llms.values() if isinstance(llm, RouterLLM) else [llm]
    return sum(tier.calls for tier in tiers)


async def drain_async(sllm: LLM, messages: list[ChatMessage]) -> list[Any]:
    stream = await sllm.astream_chat(messages)
    return [chunk async for chunk in stream]


def ask(sllm: LLM, how: str, messages: list[ChatMessage] = PARIS) -> Any:
    """The structured answer's last message, through ``how``."""
    if how == "chat":
        return sllm.chat(messages)
    if how == "achat":
        return asyncio.run(sllm.achat(messages))
    if how == "stream_chat":
        return list(sllm.stream_chat(messages))[-1]
    return asyncio.run(drain_async(sllm, messages))[-1]


@pytest.fixture
def handler() -> Iterator[CostEventHandler]:
    with CostEventHandler() as registered:
        yield registered


HOWS = ["chat", "achat", "stream_chat", "astream_chat"]
LLMS: dict[str, Callable[[], LLM]] = {"plain": plain, "router": routed}


@pytest.mark.parametrize("how", HOWS)
@pytest.mark.parametrize("make", LLMS.values(), ids=LLMS.keys())
def test_a_structured_call_is_booked_once_at_the_real_calls_cost(handler, make, how):
    llm = make()
    with recording() as seen:
        ask(llm.as_structured_llm(City), how)
    figures = handler.to_dict()
    assert model_calls(llm) == 1
    assert figures["calls"] == 1
    assert handler.total_cost == pytest.approx(model_cost(seen), rel=1e-9)
    assert handler.total_cost > 0
    assert figures["estimated_calls"] == 0 and figures["unpriced_calls"] == 0
    answers = [e for e in seen.of("LLMChatEndEvent") if not e.span_id.startswith("Structured")]
    assert [r.model for r in handler._accountant.ledger.records()] == [
        e.response.raw["model"] for e in answers
    ]


@pytest.mark.parametrize("how", HOWS)
@pytest.mark.parametrize("make", LLMS.values(), ids=LLMS.keys())
def test_a_cache_hit_through_a_structured_llm_books_nothing_and_saves(handler, make, how):
    cache = SemanticCacheLLM(make(), embed_model=HashingEmbedding(), similarity_threshold=0.95)
    sllm = cache.as_structured_llm(City)
    with recording() as seen:
        ask(sllm, how)  # the miss: one model call
    spent, calls = handler.total_cost, handler.to_dict()["calls"]
    assert spent == pytest.approx(model_cost(seen), rel=1e-9) and calls == 1

    ask(sllm, how)  # the hit
    figures = handler.to_dict()
    assert cache.stats["hits"] == 1
    assert handler.total_cost == spent  # $0 for the hit
    assert handler.total_saved > 0
    assert figures["calls"] == calls
    assert figures["estimated_calls"] == 0 and figures["unpriced_calls"] == 0


def test_a_structured_stream_under_a_router_climbing_after_a_failed_tier_is_booked_once(
    handler,
):
    router = RouterLLM(
        llms={
            "simple": SimulatedLLM(model_name=CHEAP, fail=True),
            "complex": SimulatedLLM(model_name=STRONG),
        },
        strategy="rules",
    )
    with recording() as seen:
        list(router.as_structured_llm(City).stream_chat(PARIS))
    figures = handler.to_dict()
    assert figures["calls"] == 1 and figures["unpriced_calls"] == 0
    assert handler.total_cost == pytest.approx(model_cost(seen), rel=1e-9)
    assert handler.total_cost > 0
    assert {r.model for r in handler._accountant.ledger.records()} == {STRONG}


class BarrierLLM(SimulatedLLM):
    """Streams only once every thread holding the barrier has started its stream."""

    barrier: Any = None

    @llm_chat_callback()
    def stream_chat(self, messages: Any, **kwargs: Any) -> ChatResponseGen:
        def gen() -> ChatResponseGen:
            self.barrier.wait(timeout=10)
            response = self._reply(messages, kwargs.get("tools"), kwargs.get("tool_choice"))
            yield from self._chunks(response)

        return gen()


def test_structured_streams_in_two_threads_at_once_are_each_booked_once(handler):
    barrier = threading.Barrier(2)
    sllm = BarrierLLM(model_name=CHEAP, barrier=barrier).as_structured_llm(City)
    errors: list[BaseException] = []

    def drain(text: str) -> None:
        try:
            list(sllm.stream_chat(user(text)))
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    with recording() as seen:
        threads = [threading.Thread(target=drain, args=(t,)) for t in ("Paris", "Rome")]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=20)
    assert not errors
    assert handler.to_dict()["calls"] == 2
    assert handler.total_cost == pytest.approx(model_cost(seen), rel=1e-9)
    assert handler.total_cost > 0


class SlowLLM(SimulatedLLM):
    """Yields to the event loop before and while it streams (real interleaving)."""

    async def astream_chat(self, messages: Any, **kwargs: Any) -> Any:
        await asyncio.sleep(0.01)
        return await super().astream_chat(messages, **kwargs)


def test_structured_streams_in_two_tasks_at_once_are_each_booked_once(handler):
    sllm = SlowLLM(model_name=CHEAP).as_structured_llm(City)

    async def both() -> None:
        await asyncio.gather(drain_async(sllm, user("Paris")), drain_async(sllm, user("Rome")))

    with recording() as seen:
        asyncio.run(both())
    assert handler.to_dict()["calls"] == 2
    assert handler.total_cost == pytest.approx(model_cost(seen), rel=1e-9)
    assert handler.total_cost > 0


def test_structured_streams_started_together_and_drained_in_other_tasks_are_booked_once(
    handler,
):
    # As a web framework does: the handler returns the stream, another task reads it.
    sllm = SlowLLM(model_name=CHEAP).as_structured_llm(City)

    async def read(stream: Any) -> list[Any]:
        return [chunk async for chunk in stream]

    async def serve() -> None:
        first = await sllm.astream_chat(user("Paris"))
        second = await sllm.astream_chat(user("Rome"))
        await asyncio.gather(read(second), read(first))  # the later one read first

    with recording() as seen:
        asyncio.run(serve())
    assert handler.to_dict()["calls"] == 2
    assert handler.total_cost == pytest.approx(model_cost(seen), rel=1e-9)
    assert handler.total_cost > 0


def test_calls_made_while_a_structured_stream_is_read_are_booked_on_their_own(handler):
    other = SimulatedLLM(model_name=STRONG)
    with recording() as seen:
        for _ in plain().as_structured_llm(City).stream_chat(PARIS):
            other.chat(user("and Rome?"))
    assert handler.to_dict()["calls"] == 1 + other.calls
    assert handler.total_cost == pytest.approx(model_cost(seen), rel=1e-9)


def test_an_unread_or_failed_structured_stream_leaves_later_calls_booked_as_usual(handler):
    sllm = plain().as_structured_llm(City)
    unread = sllm.stream_chat(PARIS)  # never read: no model call
    del unread
    failing = SimulatedLLM(model_name=CHEAP, fail=True).as_structured_llm(City)
    with pytest.raises(Exception, match="simulated provider outage"):
        list(failing.stream_chat(PARIS))
    assert handler.to_dict()["calls"] == 0 and handler.total_cost == 0

    with recording() as seen:
        SimulatedLLM(model_name=STRONG).chat(user("and Rome?"))
        list(sllm.stream_chat(PARIS))
        asyncio.run(drain_async(sllm, PARIS))
    assert handler.to_dict()["calls"] == 3
    assert handler.total_cost == pytest.approx(model_cost(seen), rel=1e-9)
    # Nothing about those streams is kept once they are over.
    assert not handler._structured


def test_a_structured_stream_that_ended_or_failed_is_forgotten(handler):
    sllm = plain().as_structured_llm(City)
    list(sllm.stream_chat(PARIS))
    asyncio.run(drain_async(sllm, PARIS))
    with pytest.raises(Exception, match="simulated provider outage"):
        list(SimulatedLLM(model_name=CHEAP, fail=True).as_structured_llm(City).stream_chat(PARIS))
    assert not handler._structured and not handler._covered and not handler._open


def test_two_handlers_registered_at_once_each_book_a_structured_stream_once(handler):
    with CostEventHandler() as second, recording() as seen:
        list(plain().as_structured_llm(City).stream_chat(PARIS))
        asyncio.run(drain_async(plain().as_structured_llm(City), PARIS))
    for each in (handler, second):
        assert each.to_dict()["calls"] == 2
        assert each.total_cost == pytest.approx(model_cost(seen), rel=1e-9)


class WrapperLLM(CustomLLM):
    """A third-party style wrapper LLM whose decorated chat calls the LLM it wraps."""

    inner: Any

    @property
    def metadata(self) -> LLMMetadata:
        return LLMMetadata(is_chat_model=True, model_name="wrapper-model")

    @llm_chat_callback()
    def chat(self, messages: Any, **kwargs: Any) -> ChatResponse:
        return self.inner.chat(messages, **kwargs)

    @llm_completion_callback()
    def complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> Any:
        raise NotImplementedError

    @llm_completion_callback()
    def stream_complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> Any:
        raise NotImplementedError


def test_a_cache_hit_through_a_wrapper_llm_books_nothing(handler):
    cache = SemanticCacheLLM(plain(), embed_model=HashingEmbedding(), similarity_threshold=0.95)
    wrapper = WrapperLLM(inner=cache)
    wrapper.chat(PARIS)
    spent = handler.total_cost
    wrapper.chat(PARIS)
    assert cache.stats["hits"] == 1
    assert handler.total_cost == spent and handler.total_saved > 0
    assert handler.to_dict()["calls"] == 1
