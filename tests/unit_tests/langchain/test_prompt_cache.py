"""PromptCacheMiddleware on a real create_agent loop with a simulated provider cache."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
from langchain.agents import create_agent
from langchain.agents.middleware.types import ModelRequest
from langchain_core.messages import HumanMessage, SystemMessage
from langchain_core.tools import tool
from pydantic import Field

from langchain_costopt import CostCallbackHandler, RouterChatModel, set_price
from langchain_costopt.middleware import PromptCacheMiddleware
from langchain_costopt.middleware.prompt_cache import needs_cache_mark
from langchain_costopt.simulated import SimulatedChatModel

set_price(
    "pcm-claude",
    input_per_token=3e-6,
    output_per_token=1.5e-5,
    cache_read_per_token=3e-7,
    cache_write_per_token=3.75e-6,
)
set_price("pcm-gpt", input_per_token=2.5e-6, output_per_token=1e-5, cache_read_per_token=1.25e-6)

SYSTEM = "You are the support agent of ACME Parcels. Answer briefly and politely. " * 25


@tool
def track(order: int) -> str:
    """Track an order by its number."""
    return f"order {order} is on its way"


@tool
def refund(order: int) -> str:
    """Refund an order by its number."""
    return f"order {order} refunded"


def _claude(**kwargs: Any) -> SimulatedChatModel:
    return SimulatedChatModel(
        model_name="pcm-claude", prompt_cache="explicit", prompt_cache_min_tokens=200, **kwargs
    )


def _ask(agent: Any, handler: CostCallbackHandler, questions: list[str]) -> None:
    for question in questions:
        agent.invoke({"messages": [("user", question)]}, {"callbacks": [handler]})


def test_anthropic_agent_reads_its_prefix_from_the_provider_cache_and_the_saving_shows() -> None:
    middleware = PromptCacheMiddleware()
    agent = create_agent(_claude(), tools=[], system_prompt=SYSTEM, middleware=[middleware])
    handler = CostCallbackHandler()
    _ask(agent, handler, ["Where is my parcel?", "How do I return it?", "Do you ship to Oslo?"])
    records = [r for r in handler.ledger.records() if r.kind == "call"]
    assert len(records) == 3
    assert records[0].cache_write_tokens > 0 and records[0].cache_read_tokens == 0
    assert all(r.cache_read_tokens > 200 for r in records[1:])  # the system prompt, read back
    data = handler.to_dict()
    read = sum(r.cache_read_tokens for r in records)
    written = sum(r.cache_write_tokens for r in records)
    expected = read * (3e-6 - 3e-7) - written * (3.75e-6 - 3e-6)
    assert data["saved_provider_cache_usd"] == pytest.approx(expected, rel=1e-9)
    assert data["saved_provider_cache_usd"] > 0
    assert data["total_saved"] == pytest.approx(data["saved_provider_cache_usd"])
    assert "provider cache" in handler.report()
    assert f"{read:,} input tokens read, {written:,} written" in handler.report()
    assert middleware.stats() == {"calls": 3, "prefix_changes": 0, "stable_share": 1.0}


def test_without_the_middleware_an_anthropic_model_caches_nothing() -> None:
    agent = create_agent(_claude(), tools=[], system_prompt=SYSTEM)
    handler = CostCallbackHandler()
    _ask(agent, handler, ["Where is my parcel?", "How do I return it?"])
    assert handler.to_dict()["saved_provider_cache_usd"] == 0.0
    assert all(r.cache_read_tokens == 0 for r in handler.ledger.records())


def test_async_agent_gets_the_mark_too() -> None:
    agent = create_agent(
        _claude(), tools=[], system_prompt=SYSTEM, middleware=[PromptCacheMiddleware()]
    )
    handler = CostCallbackHandler()

    async def run() -> None:
        for question in ("Where is my parcel?", "How do I return it?"):
            await agent.ainvoke({"messages": [("user", question)]}, {"callbacks": [handler]})

    asyncio.run(run())
    assert handler.to_dict()["saved_provider_cache_usd"] > 0


def _request(model: Any, system: str = SYSTEM, tools: list[Any] | None = None) -> ModelRequest:
    return ModelRequest(
        model=model,
        messages=[HumanMessage("hi")],
        system_message=SystemMessage(system),
        tools=tools or [],
    )


def test_only_models_whose_provider_needs_a_mark_get_one() -> None:
    middleware = PromptCacheMiddleware()
    gpt = SimulatedChatModel(model_name="pcm-gpt")
    assert "cache_control" not in middleware.prepare(_request(gpt)).model_settings
    marked = middleware.prepare(_request(_claude())).model_settings
    assert marked["cache_control"] == {"type": "ephemeral", "ttl": "5m"}
    # A router with one Anthropic tier is marked; the tiers that take no mark never see it.
    router = RouterChatModel(models={"cheap": gpt, "strong": _claude()})
    assert needs_cache_mark(router) and not needs_cache_mark(gpt)
    assert "cache_control" in middleware.prepare(_request(router)).model_settings
    none = PromptCacheMiddleware(provider="none").prepare(_request(_claude()))
    assert "cache_control" not in none.model_settings


def test_tools_are_handed_over_in_one_order() -> None:
    middleware = PromptCacheMiddleware()
    first = middleware.prepare(_request(_claude(), tools=[track, refund]))
    second = middleware.prepare(_request(_claude(), tools=[refund, track]))
    assert [t.name for t in first.tools] == [t.name for t in second.tools] == ["refund", "track"]
    assert middleware.stats()["prefix_changes"] == 0


def test_a_timestamp_in_the_system_prompt_is_reported_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    middleware = PromptCacheMiddleware()
    caplog.set_level(logging.WARNING, logger="costopt_core.prompt_prefix")
    for minute in range(10, 14):
        middleware.prepare(_request(_claude(), system=f"Now: 2026-12-07 09:{minute}. {SYSTEM}"))
    warnings = [r for r in caplog.records if "changed at character" in r.getMessage()]
    assert len(warnings) == 1
    assert "2026-12-07 09:11" in warnings[0].getMessage()
    assert middleware.stats() == {"calls": 4, "prefix_changes": 3, "stable_share": 0.0}


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"provider": "openai"}, "provider"),
        ({"ttl": "10m"}, "ttl"),
        ({"min_messages_to_cache": -1}, "min_messages_to_cache"),
    ],
)
def test_bad_arguments_name_themselves(kwargs: dict[str, Any], name: str) -> None:
    with pytest.raises(ValueError, match=name):
        PromptCacheMiddleware(**kwargs)


class _Recording(SimulatedChatModel):
    """Remembers the keyword arguments of each call (what the provider would be sent)."""

    calls: list[dict[str, Any]] = Field(default_factory=list)

    def _generate(self, messages: Any, stop: Any = None, run_manager: Any = None, **kw: Any) -> Any:
        self.calls.append(kw)
        return super()._generate(messages, stop, run_manager, **kw)


def test_a_router_hands_the_mark_only_to_tiers_whose_provider_takes_it() -> None:
    gpt = _Recording(model_name="pcm-gpt")
    claude = _Recording(model_name="pcm-claude")
    router = RouterChatModel(models={"cheap": gpt, "strong": claude}, strategy="default")
    mark = {"type": "ephemeral"}
    router.invoke("hi", cache_control=mark)  # a short prompt: the cheap (OpenAI-like) tier
    router.invoke("请分析并比较两种数据库架构设计的优劣", cache_control=mark)  # the strong tier
    assert gpt.calls and "cache_control" not in gpt.calls[-1]
    assert claude.calls and claude.calls[-1]["cache_control"] == mark


def test_tools_bound_with_the_mark_reach_only_the_tier_that_takes_it() -> None:
    # create_agent hands its model settings (the cache mark) to bind_tools.
    gpt = _Recording(model_name="pcm-gpt")
    claude = _Recording(model_name="pcm-claude")
    router = RouterChatModel(models={"cheap": gpt, "strong": claude}, strategy="default")
    bound = router.bind_tools([track], cache_control={"type": "ephemeral"})
    bound.invoke("hi")
    bound.invoke("请分析并比较两种数据库架构设计的优劣")
    assert gpt.calls and "cache_control" not in gpt.calls[-1]
    assert claude.calls[-1].get("cache_control") == {"type": "ephemeral"}


def test_an_agent_on_a_router_with_the_middleware_keeps_its_cheap_tier() -> None:
    gpt = _Recording(model_name="pcm-gpt")
    router = RouterChatModel(models={"cheap": gpt, "strong": _claude()}, strategy="default")
    agent = create_agent(router, tools=[track], middleware=[PromptCacheMiddleware()])
    reply = agent.invoke({"messages": [("user", "hi")]})["messages"][-1]
    assert reply.response_metadata["routing"]["tier"] == "cheap"
    assert "fallback_from" not in reply.response_metadata["routing"]
    assert gpt.calls and "cache_control" not in gpt.calls[-1]
