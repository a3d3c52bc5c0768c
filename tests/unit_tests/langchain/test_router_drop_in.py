"""RouterChatModel used where a plain chat model is expected: agents, structured
output, token counting, copies, profiles and the tiers' own settings."""

from __future__ import annotations

import asyncio
import copy
import pickle
from collections.abc import Callable
from typing import Any

import pytest
from langchain.agents import create_agent
from langchain.agents.middleware import SummarizationMiddleware
from langchain.agents.structured_output import ProviderStrategy
from langchain_core.caches import InMemoryCache
from langchain_core.exceptions import OutputParserException
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, HumanMessage, trim_messages
from langchain_core.output_parsers import JsonOutputParser
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.rate_limiters import BaseRateLimiter
from langchain_core.utils.function_calling import convert_to_openai_tool
from pydantic import BaseModel, create_model

from langchain_costopt import RouterChatModel
from langchain_costopt.simulated import SimulatedChatModel, SimulatedProviderError


class Weather(BaseModel):
    city: str
    summary: str


def tiers() -> dict[str, SimulatedChatModel]:
    return {
        "cheap": SimulatedChatModel(model_name="gpt-4o-mini"),
        "strong": SimulatedChatModel(model_name="gpt-4o"),
    }


def test_an_agent_without_tools_gets_the_providers_structured_answer() -> None:
    agent = create_agent(
        RouterChatModel(models=tiers()), tools=[], response_format=ProviderStrategy(Weather)
    )
    result = agent.invoke({"messages": [HumanMessage("Weather in Paris?")]})
    assert isinstance(result["structured_response"], Weather)


def answer_schema(*fields: str) -> type[BaseModel]:
    """A schema named ``Answer`` with string ``fields``: one class, two deploys."""
    return create_model("Answer", **{name: (str, ...) for name in fields})  # type: ignore[call-overload]


@pytest.mark.parametrize("method", ["json_schema", "json_mode"])
def test_a_schema_that_gained_a_field_is_not_served_its_old_cached_answer(method: str) -> None:
    cache = InMemoryCache()
    old, new = answer_schema("city"), answer_schema("city", "summary")
    first = RouterChatModel(models=tiers(), cache=cache).with_structured_output(old, method=method)
    assert first.invoke("Weather in Paris?").city
    second = RouterChatModel(models=tiers(), cache=cache).with_structured_output(new, method=method)
    assert second.invoke("Weather in Paris?").summary


class WordCounting(SimulatedChatModel):
    """A tier with its own tokenizer: ``per_word`` tokens a word."""

    per_word: int = 1

    def get_token_ids(self, text: str) -> list[int]:
        return list(range(len(text.split()) * self.per_word))


def counting_router() -> RouterChatModel:
    return RouterChatModel(
        models={
            "cheap": WordCounting(model_name="gpt-4o-mini", per_word=1),
            "strong": WordCounting(model_name="gpt-4o", per_word=2),
        }
    )


def test_the_router_counts_tokens_as_its_strongest_tier() -> None:
    router, strong = counting_router(), WordCounting(model_name="gpt-4o", per_word=2)
    messages = [HumanMessage("hello world " * 20), AIMessage("ok"), HumanMessage("and now?")]
    assert router.get_token_ids("three small words") == strong.get_token_ids("three small words")
    assert router.get_num_tokens("three small words") == 6
    assert router.get_num_tokens_from_messages(messages) == (
        strong.get_num_tokens_from_messages(messages)
    )
    trimmed = trim_messages(messages, max_tokens=20, token_counter=router, strategy="last")
    assert [m.content for m in trimmed] == ["ok", "and now?"]


def test_a_custom_token_counter_on_the_router_wins() -> None:
    router = counting_router().model_copy(update={"custom_get_token_ids": lambda t: [0]})
    assert router.get_num_tokens("three small words") == 1


class PlainTier(BaseChatModel):
    """A tier that pickles (the simulator holds a lock): calls the first bound tool."""

    model_name: str

    @property
    def _llm_type(self) -> str:
        return "plain-tier"

    def bind_tools(self, tools: Any, **kwargs: Any) -> Any:
        return self.bind(tools=[convert_to_openai_tool(t) for t in tools], **kwargs)

    def _generate(
        self, messages: Any, stop: Any = None, run_manager: Any = None, **kwargs: Any
    ) -> ChatResult:
        tools = kwargs.get("tools") or []
        calls = [{"name": t["function"]["name"], "args": {}, "id": "c1"} for t in tools[:1]]
        reply = AIMessage("", tool_calls=calls, response_metadata={"model_name": self.model_name})
        return ChatResult(generations=[ChatGeneration(message=reply)])


@pytest.mark.parametrize(
    "duplicate",
    [
        lambda r: pickle.loads(pickle.dumps(r)),
        copy.deepcopy,
        lambda r: r.model_copy(deep=True),
    ],
    ids=["pickle", "deepcopy", "model_copy-deep"],
)
def test_a_router_copies_and_pickles_as_a_chat_model_does(
    duplicate: Callable[[RouterChatModel], RouterChatModel],
) -> None:
    plain = {"cheap": PlainTier(model_name="gpt-4o-mini"), "strong": PlainTier(model_name="gpt-4o")}
    router = RouterChatModel(models=plain, strategy="length")
    router.bind_tools([Weather]).invoke("Weather in Paris?")  # fills the binding cache
    twin = duplicate(router)
    reply = twin.bind_tools([Weather]).invoke("Weather in Paris?")
    assert reply.tool_calls[0]["name"] == "Weather"
    assert reply.response_metadata["routing"]["tier"] == "cheap"


def test_a_copy_with_other_tiers_names_the_model_that_answered() -> None:
    router = RouterChatModel(models=tiers(), strategy="length")
    claude = {
        "cheap": SimulatedChatModel(model_name="claude-3-5-haiku"),
        "strong": SimulatedChatModel(model_name="claude-3-5-sonnet"),
    }
    reply = router.model_copy(update={"models": claude}).invoke("hi")
    assert reply.response_metadata["model_name"] == "claude-3-5-haiku"
    assert reply.response_metadata["routing"]["model"] == "claude-3-5-haiku"
    assert router.invoke("hi").response_metadata["routing"]["model"] == "gpt-4o-mini"


def test_a_copy_with_another_strategy_or_fallback_routes_by_it() -> None:
    router = RouterChatModel(models=tiers(), strategy="length")
    strong = router.model_copy(update={"strategy": lambda text: "strong"})
    assert strong.invoke("hi").response_metadata["routing"]["tier"] == "strong"
    failing = {**tiers(), "cheap": SimulatedChatModel(model_name="gpt-4o-mini", fail=True)}
    broken = RouterChatModel(models=failing, strategy="length")
    assert broken.invoke("hi").response_metadata["routing"]["fallback_from"] == "cheap"
    with pytest.raises(SimulatedProviderError):
        broken.model_copy(update={"fallback": False}).invoke("hi")


def profiled_tiers() -> dict[str, SimulatedChatModel]:
    return {
        "cheap": SimulatedChatModel(
            model_name="gpt-4o-mini",
            profile={"max_input_tokens": 128_000, "structured_output": True, "image_inputs": True},
        ),
        "strong": SimulatedChatModel(
            model_name="claude-sonnet-4",
            profile={"max_input_tokens": 200_000, "structured_output": True, "pdf_inputs": False},
        ),
    }


def test_the_routers_profile_is_what_every_tier_can_do() -> None:
    router = RouterChatModel(models=profiled_tiers())
    assert router.profile == {
        "max_input_tokens": 128_000,
        "structured_output": True,
        "pdf_inputs": False,
    }
    assert RouterChatModel(models=tiers()).profile is None  # no tier has one
    given = RouterChatModel(models=profiled_tiers(), profile={"max_input_tokens": 1000})
    assert given.profile == {"max_input_tokens": 1000}
    smaller = {**profiled_tiers(), "cheap": SimulatedChatModel(profile={"max_input_tokens": 8000})}
    assert router.model_copy(update={"models": smaller}).profile == {
        "max_input_tokens": 8000,
        "pdf_inputs": False,
    }


def test_middleware_sizes_prompts_by_the_routers_profile() -> None:
    router = RouterChatModel(models=profiled_tiers())
    middleware = SummarizationMiddleware(model=router, trigger=("fraction", 0.8))
    small = [HumanMessage("hello")]
    assert middleware.before_model({"messages": small}, runtime=None) is None  # type: ignore[arg-type]


def test_an_agent_asks_the_routers_tiers_for_their_native_structured_output() -> None:
    agent = create_agent(RouterChatModel(models=profiled_tiers()), response_format=Weather)
    result = agent.invoke({"messages": [HumanMessage("Weather in Paris?")]})
    assert isinstance(result["structured_response"], Weather)
    replies = [m for m in result["messages"] if isinstance(m, AIMessage)]
    assert [m.tool_calls for m in replies] == [[]]  # a JSON answer, not a forced tool call


class RefusingTier(BaseChatModel):
    """A tier with a JSON mode of its own that answers plain text anyway."""

    @property
    def _llm_type(self) -> str:
        return "refusing-tier"

    def with_structured_output(self, schema: Any, **kwargs: Any) -> Any:
        return self.bind(response_format={"type": "json_object"}) | JsonOutputParser()

    def _generate(
        self, messages: Any, stop: Any = None, run_manager: Any = None, **kwargs: Any
    ) -> ChatResult:
        reply = AIMessage("Sorry, I cannot answer in JSON")
        return ChatResult(generations=[ChatGeneration(message=reply)])


@pytest.mark.parametrize("method", ["json_schema", "json_mode"])
def test_an_answer_that_is_not_json_raises_langchains_parser_error(method: str) -> None:
    router = RouterChatModel(models={"cheap": RefusingTier(), "strong": RefusingTier()})
    with pytest.raises(OutputParserException) as raised:
        router.with_structured_output(Weather, method=method).invoke("Weather in Paris?")
    assert raised.value.llm_output == "Sorry, I cannot answer in JSON"


class CountingLimiter(BaseRateLimiter):
    """Lets every request through, counting them."""

    def __init__(self) -> None:
        self.acquired = 0

    def acquire(self, *, blocking: bool = True) -> bool:
        self.acquired += 1
        return True

    async def aacquire(self, *, blocking: bool = True) -> bool:
        self.acquired += 1
        return True


def test_a_tiers_own_rate_limiter_paces_the_calls_routed_to_it() -> None:
    limiter = CountingLimiter()
    limited = {
        **tiers(),
        "cheap": SimulatedChatModel(model_name="gpt-4o-mini", rate_limiter=limiter),
    }
    router = RouterChatModel(models=limited, strategy=lambda text: "cheap")

    async def asynchronous() -> None:
        await router.ainvoke("hi")
        assert [c async for c in router.astream("hi")]

    router.invoke("hi")
    assert list(router.stream("hi"))
    asyncio.run(asynchronous())
    assert limiter.acquired == 4
    router.model_copy(update={"strategy": lambda text: "strong"}).invoke("hi")
    assert limiter.acquired == 4  # another tier's calls are not its own
