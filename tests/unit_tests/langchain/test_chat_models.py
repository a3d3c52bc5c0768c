"""RouterChatModel: routing, drop-in behaviour, one run per call, fallback, tools."""

from __future__ import annotations

from typing import Any

import pytest
from langchain_core.caches import InMemoryCache
from langchain_core.callbacks import AsyncCallbackHandler, BaseCallbackHandler
from langchain_core.globals import set_llm_cache
from langchain_core.language_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage
from langchain_core.outputs import LLMResult
from langchain_core.tools import tool
from langchain_core.utils.function_calling import convert_to_openai_tool
from pydantic import BaseModel, PrivateAttr

from costopt_core import ComplexityClassifier
from costopt_core.decision import RouteDecision
from costopt_core.strategies import LengthStrategy, ThresholdStrategy
from langchain_costopt import RouterChatModel
from langchain_costopt.simulated import SimulatedChatModel, SimulatedProviderError

pytestmark = pytest.mark.allow_hosts([])

SIMPLE_ZH = "请把这句话翻译成英文"
COMPLEX_ZH = "请分析并比较这两种系统架构"
MEDIUM_ZH = "今天天气怎么样"


class CountingSim(SimulatedChatModel):
    """A simulated model that records its batch calls and the kwargs it is called with."""

    _batches: list[int] = PrivateAttr(default_factory=list)
    _calls: list[dict[str, Any]] = PrivateAttr(default_factory=list)
    _binds: list[int] = PrivateAttr(default_factory=list)
    _structured: list[str] = PrivateAttr(default_factory=list)
    _bound_tools: list[Any] = PrivateAttr(default_factory=list)

    def batch(self, inputs: list[Any], config: Any = None, **kwargs: Any) -> list[Any]:
        self._batches.append(len(inputs))
        return super().batch(inputs, config, **kwargs)

    async def abatch(self, inputs: list[Any], config: Any = None, **kwargs: Any) -> list[Any]:
        self._batches.append(len(inputs))
        return await super().abatch(inputs, config, **kwargs)

    def bind_tools(self, tools: Any, **kwargs: Any) -> Any:
        self._binds.append(len(tools))
        self._bound_tools = list(tools)
        return super().bind_tools(tools, **kwargs)

    def with_structured_output(self, schema: Any, **kwargs: Any) -> Any:
        self._structured.append(kwargs.get("method", "function_calling"))
        return super().with_structured_output(schema, **kwargs)

    def _generate(self, messages: Any, stop: Any = None, run_manager: Any = None, **kw: Any):
        self._calls.append(kw)
        return super()._generate(messages, stop, run_manager, **kw)


class AnthropicStyleSim(SimulatedChatModel):
    """A provider that formats tools its own way: ``{"name", "description",
    "input_schema"}`` under its own request key."""

    _seen: list[dict[str, Any]] = PrivateAttr(default_factory=list)

    def bind_tools(self, tools: Any, *, tool_choice: Any = None, **kwargs: Any) -> Any:
        specs = [convert_to_openai_tool(t)["function"] for t in tools]
        formatted = [
            {"name": s["name"], "description": s.get("description", ""),
             "input_schema": s.get("parameters", {})}
            for s in specs
        ]  # fmt: skip
        choice = {"type": "any"} if tool_choice in ("any", "required") else tool_choice
        return self.bind(anthropic_tools=formatted, anthropic_tool_choice=choice)

    def _generate(self, messages: Any, stop: Any = None, run_manager: Any = None, **kw: Any):
        self._seen.append(dict(kw))
        tools = [
            {"type": "function", "function": {"name": t["name"], "parameters": t["input_schema"]}}
            for t in kw.pop("anthropic_tools", [])
        ]
        choice = kw.pop("anthropic_tool_choice", None)
        if tools:
            kw["tools"] = tools
            kw["tool_choice"] = "any" if choice == {"type": "any"} else choice
        return super()._generate(messages, stop, run_manager, **kw)


class RunCounter(BaseCallbackHandler):
    def __init__(self) -> None:
        self.starts: list[dict[str, Any]] = []
        self.ends: list[LLMResult] = []
        self.tokens = 0

    def on_chat_model_start(self, serialized: Any, messages: Any, **kwargs: Any) -> None:
        self.starts.append(kwargs)

    def on_llm_new_token(self, token: str, **kwargs: Any) -> None:
        self.tokens += 1

    def on_llm_end(self, response: LLMResult, **kwargs: Any) -> None:
        self.ends.append(response)


class AsyncRunCounter(AsyncCallbackHandler):
    def __init__(self) -> None:
        self.starts = 0
        self.ends = 0

    async def on_chat_model_start(self, serialized: Any, messages: Any, **kwargs: Any) -> None:
        self.starts += 1

    async def on_llm_end(self, response: LLMResult, **kwargs: Any) -> None:
        self.ends += 1


class OverBudget(BaseCallbackHandler):
    """What a cost handler with on_budget="downgrade" looks like once over budget."""

    downgrade_requested = True


def three_tiers(**overrides: Any) -> dict[str, SimulatedChatModel]:
    models: dict[str, SimulatedChatModel] = {
        "simple": CountingSim(model_name="deepseek-v3"),
        "medium": CountingSim(model_name="gpt-4o-mini"),
        "complex": CountingSim(model_name="claude-3.5-sonnet"),
    }
    models.update(overrides)
    return models


@pytest.fixture
def router() -> RouterChatModel:
    return RouterChatModel(models=three_tiers(), strategy="rules")


@pytest.fixture
def cache() -> Any:
    cache = InMemoryCache()
    set_llm_cache(cache)
    yield cache
    set_llm_cache(None)


def tier_of(message: Any) -> str:
    return message.response_metadata["routing"]["tier"]


def aggregate(chunks: list[Any]) -> Any:
    full = chunks[0]
    for chunk in chunks[1:]:
        full = full + chunk
    return full


# -- routing ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("prompt", "tier", "model"),
    [
        (SIMPLE_ZH, "simple", "deepseek-v3"),
        (MEDIUM_ZH, "medium", "gpt-4o-mini"),
        (COMPLEX_ZH, "complex", "claude-3.5-sonnet"),
    ],
)
def test_seed_cues_pick_the_tier_and_that_tier_answers(
    router: RouterChatModel, prompt: str, tier: str, model: str
) -> None:
    reply = router.invoke(prompt)
    routing = reply.response_metadata["routing"]
    assert routing["tier"] == tier and routing["model"] == model
    assert reply.response_metadata["model_name"] == model
    assert set(routing) >= {"tier", "model", "score", "reason"}
    assert 0.0 <= routing["score"] <= 1.0 and routing["reason"]
    assert len(router.models[tier]._calls) == 1
    assert sum(len(m._calls) for m in router.models.values()) == 1


@pytest.mark.parametrize(
    ("prompt", "tier"),
    [
        ("Translate this paragraph into French", "simple"),
        ("Please summarize the meeting notes", "simple"),
        ("Analyze the trade-offs and compare both designs", "complex"),
        ("What is the capital of Peru?", "medium"),
        ("Give me more information about the venue", "medium"),  # "format" inside a word
    ],
)
def test_english_cues_route_with_both_languages(prompt: str, tier: str) -> None:
    router = RouterChatModel(
        models=three_tiers(), strategy=ComplexityClassifier(languages=("zh", "en"))
    )
    assert tier_of(router.invoke(prompt)) == tier


def test_default_rules_are_the_seeds_chinese_only(router: RouterChatModel) -> None:
    assert tier_of(router.invoke("Translate this paragraph into French")) == "medium"


def test_two_tiers_send_a_medium_prompt_up_to_the_stronger_tier() -> None:
    router = RouterChatModel(
        models={"simple": CountingSim(model_name="a"), "complex": CountingSim(model_name="b")},
        strategy="rules",
    )
    assert tier_of(router.invoke(SIMPLE_ZH)) == "simple"
    assert tier_of(router.invoke(MEDIUM_ZH)) == "complex"
    assert tier_of(router.invoke(COMPLEX_ZH)) == "complex"


def test_four_tiers_by_length() -> None:
    names = ("nano", "mini", "base", "pro")
    models = {n: CountingSim(model_name=f"m-{n}") for n in names}
    router = RouterChatModel(models=models, strategy=LengthStrategy(150, tiers=names))
    prompts = ["word " * 8, "word " * 80, "word " * 240, "word " * 1000]
    assert [tier_of(router.invoke(p)) for p in prompts] == list(names)


def test_callable_strategy_names_the_tier() -> None:
    router = RouterChatModel(
        models=three_tiers(), strategy=lambda text: "complex" if "?" in text else "simple"
    )
    assert tier_of(router.invoke("why?")) == "complex"
    assert tier_of(router.invoke("ok")) == "simple"


# -- configuration errors --------------------------------------------------------------


def test_bad_configuration_fails_at_construction() -> None:
    with pytest.raises(ValueError, match="at least 2 tiers"):
        RouterChatModel(models={}, strategy="rules")
    with pytest.raises(ValueError, match="at least 2 tiers"):
        RouterChatModel(models={"only": CountingSim()}, strategy="rules")
    with pytest.raises(TypeError, match="mapping"):
        RouterChatModel(models=[CountingSim(), CountingSim()], strategy="rules")
    with pytest.raises(TypeError, match=r"models\['complex'\] must be a LangChain chat model"):
        RouterChatModel(models={"simple": CountingSim(), "complex": "gpt-4o"}, strategy="rules")
    with pytest.raises(TypeError, match="non-empty str"):
        RouterChatModel(models={"": CountingSim(), "complex": CountingSim()}, strategy="rules")
    with pytest.raises(ValueError, match="unknown strategy"):
        RouterChatModel(models=three_tiers(), strategy="no-such-strategy")


def test_strategy_routing_to_unknown_tiers_is_rejected() -> None:
    weak_strong = ThresholdStrategy("length", [0.5])  # routes to "weak" / "strong"
    with pytest.raises(ValueError, match=r"strategy routes to tiers \['weak', 'strong'\]"):
        RouterChatModel(models=three_tiers(), strategy=weak_strong)
    ok = RouterChatModel(
        models={"weak": CountingSim(), "strong": CountingSim()}, strategy=weak_strong
    )
    assert ok.tiers == ("weak", "strong")


def test_a_callable_returning_an_unknown_tier_fails_loudly() -> None:
    router = RouterChatModel(models=three_tiers(), strategy=lambda text: "gold")
    with pytest.raises(ValueError, match=r"'gold', which is not one of the configured tiers"):
        router.invoke("hi")


# -- every entry point routes ------------------------------------------------------------


def test_invoke_stream_batch_route(router: RouterChatModel) -> None:
    assert tier_of(router.invoke(COMPLEX_ZH)) == "complex"
    assert tier_of(aggregate(list(router.stream(SIMPLE_ZH)))) == "simple"
    assert [tier_of(r) for r in router.batch([SIMPLE_ZH, COMPLEX_ZH, MEDIUM_ZH])] == [
        "simple",
        "complex",
        "medium",
    ]


async def test_async_entry_points_route(router: RouterChatModel) -> None:
    assert tier_of(await router.ainvoke(COMPLEX_ZH)) == "complex"
    chunks = [c async for c in router.astream(SIMPLE_ZH)]
    assert len(chunks) > 1 and tier_of(aggregate(chunks)) == "simple"
    replies = await router.abatch([SIMPLE_ZH, COMPLEX_ZH, SIMPLE_ZH])
    assert [tier_of(r) for r in replies] == ["simple", "complex", "simple"]


def test_batch_calls_each_tier_once_with_its_group(router: RouterChatModel) -> None:
    counter = RunCounter()
    prompts = [SIMPLE_ZH, COMPLEX_ZH, SIMPLE_ZH, MEDIUM_ZH, SIMPLE_ZH]
    replies = router.batch(prompts, config={"callbacks": [counter]})
    assert [tier_of(r) for r in replies] == ["simple", "complex", "simple", "medium", "simple"]
    assert router.models["simple"]._batches == [3]
    assert router.models["medium"]._batches == [1]
    assert router.models["complex"]._batches == [1]
    # One run per input, each carrying the decision in its metadata.
    assert len(counter.starts) == len(prompts) == len(counter.ends)
    tiers = sorted(s["metadata"]["costopt_routing"]["tier"] for s in counter.starts)
    assert tiers == ["complex", "medium", "simple", "simple", "simple"]
    # Callbacks also learn every tier's model, to price the routing saving against.
    names = {tier: m.model_name for tier, m in router.models.items()}
    assert all(s["metadata"]["costopt_routing"]["tier_models"] == names for s in counter.starts)


async def test_abatch_calls_each_tier_once(router: RouterChatModel) -> None:
    await router.abatch([SIMPLE_ZH, COMPLEX_ZH, SIMPLE_ZH, COMPLEX_ZH])
    assert router.models["simple"]._batches == [2]
    assert router.models["complex"]._batches == [2]
    assert router.models["medium"]._batches == []


def test_batch_output_matches_invoke_in_v1_output() -> None:
    router = RouterChatModel(models=three_tiers(), output_version="v1", strategy="rules")
    invoked = router.invoke(SIMPLE_ZH)
    batched = router.batch([SIMPLE_ZH, COMPLEX_ZH])
    assert isinstance(invoked.content, list) and invoked.content[0]["type"] == "text"
    assert batched[0].content[0]["text"] == invoked.content[0]["text"]
    assert batched[0].response_metadata["output_version"] == "v1"


def test_a_router_with_its_own_cache_batches_through_its_own_runs() -> None:
    own = InMemoryCache()
    router = RouterChatModel(models=three_tiers(), cache=own, strategy="rules")
    router.batch([SIMPLE_ZH, COMPLEX_ZH])
    assert len(own._cache) == 2  # the router's cache saw both calls
    assert router.models["simple"]._batches == []  # not bypassed through the inner models


def test_answers_cached_by_invoke_hit_in_batch_under_a_global_cache() -> None:
    router = RouterChatModel(models=three_tiers(), strategy="rules")
    set_llm_cache(InMemoryCache())
    try:
        first = router.invoke(SIMPLE_ZH)
        calls_before = sum(len(m._calls) for m in router.models.values())
        batched = router.batch([SIMPLE_ZH, COMPLEX_ZH])
        calls_after = sum(len(m._calls) for m in router.models.values())
    finally:
        set_llm_cache(None)
    assert batched[0].content == first.content
    assert calls_after - calls_before == 1  # only the uncached question reached a model


def test_batch_keeps_the_routers_own_callbacks() -> None:
    counter = RunCounter()
    router = RouterChatModel(models=three_tiers(), callbacks=[counter], strategy="rules")
    router.batch([SIMPLE_ZH, COMPLEX_ZH])
    assert len(counter.starts) == 2 and len(counter.ends) == 2


# -- one LangChain run per call ------------------------------------------------------------


def test_invoke_is_one_run_with_the_decision_in_llm_output(router: RouterChatModel) -> None:
    counter = RunCounter()
    reply = router.invoke(COMPLEX_ZH, config={"callbacks": [counter]})
    assert len(counter.starts) == 1 and len(counter.ends) == 1
    (result,) = counter.ends
    assert result.llm_output["routing"] == reply.response_metadata["routing"]
    assert result.llm_output["routing"]["tier"] == "complex"


def test_stream_is_one_run_streaming_the_chosen_models_chunks(router: RouterChatModel) -> None:
    counter = RunCounter()
    chunks = list(router.stream(COMPLEX_ZH, config={"callbacks": [counter]}))
    assert len(counter.starts) == 1 and len(counter.ends) == 1
    direct = router.models["complex"].invoke(COMPLEX_ZH)
    assert len(chunks) > 3
    full = aggregate(chunks)
    assert full.content == direct.content
    # Each token is reported once, by the router's run.
    assert counter.tokens == len(chunks)
    # The model name is stated once, not glued together from several chunks.
    assert full.response_metadata["model_name"] == "claude-3.5-sonnet"
    assert full.usage_metadata == direct.usage_metadata


async def test_async_calls_are_one_run_each(router: RouterChatModel) -> None:
    counter = AsyncRunCounter()
    await router.ainvoke(SIMPLE_ZH, config={"callbacks": [counter]})
    assert (counter.starts, counter.ends) == (1, 1)
    async for _ in router.astream(SIMPLE_ZH, config={"callbacks": [counter]}):
        pass
    assert (counter.starts, counter.ends) == (2, 2)


def test_usage_is_the_answering_models_not_doubled(router: RouterChatModel) -> None:
    direct = router.models["simple"].invoke(SIMPLE_ZH)
    routed = router.invoke(SIMPLE_ZH)
    assert routed.usage_metadata == direct.usage_metadata
    assert routed.usage_metadata["input_tokens"] > 0


def test_one_cache_entry_per_call_and_a_hit_skips_the_models(
    router: RouterChatModel, cache: InMemoryCache
) -> None:
    first = router.invoke(COMPLEX_ZH)
    assert len(cache._cache) == 1
    second = router.invoke(COMPLEX_ZH)
    assert len(cache._cache) == 1
    assert second.content == first.content
    assert len(router.models["complex"]._calls) == 1  # the hit never reached the model
    router.invoke(SIMPLE_ZH)
    assert len(cache._cache) == 2


def test_llm_string_includes_the_inner_models() -> None:
    a = RouterChatModel(
        models={"s": CountingSim(model_name="x"), "c": CountingSim(model_name="y")},
        strategy="rules",
    )
    b = RouterChatModel(
        models={"s": CountingSim(model_name="x"), "c": CountingSim(model_name="z")},
        strategy="rules",
    )
    same = RouterChatModel(
        models={"s": CountingSim(model_name="x"), "c": CountingSim(model_name="y")},
        strategy="rules",
    )
    assert a._get_llm_string() != b._get_llm_string()
    assert a._get_llm_string() == same._get_llm_string()
    stopped = RouterChatModel(
        models={"s": CountingSim(model_name="x"), "c": CountingSim(model_name="y")},
        stop=["\n"],
        strategy="rules",
    )
    assert stopped._get_llm_string() != a._get_llm_string()
    assert "claude" not in a._get_llm_string()
    assert a._identifying_params["models"]["c"]["model_name"] == "y"


def test_two_routers_never_share_a_cached_answer(cache: InMemoryCache) -> None:
    a = RouterChatModel(models=three_tiers(), strategy="rules")
    b = RouterChatModel(models=three_tiers(complex=CountingSim(model_name="o3")), strategy="rules")
    assert a.invoke(COMPLEX_ZH).response_metadata["model_name"] == "claude-3.5-sonnet"
    assert b.invoke(COMPLEX_ZH).response_metadata["model_name"] == "o3"
    assert len(cache._cache) == 2


# -- fallback --------------------------------------------------------------------------


def broken_simple() -> RouterChatModel:
    return RouterChatModel(
        models=three_tiers(simple=CountingSim(model_name="deepseek-v3", fail=True)),
        strategy="rules",
    )


def test_failing_tier_falls_back_to_the_next_tier_up() -> None:
    reply = broken_simple().invoke(SIMPLE_ZH)
    routing = reply.response_metadata["routing"]
    assert routing["tier"] == "medium" and routing["fallback_from"] == "simple"
    assert reply.response_metadata["model_name"] == "gpt-4o-mini"


async def test_async_fallback() -> None:
    reply = await broken_simple().ainvoke(SIMPLE_ZH)
    assert reply.response_metadata["routing"]["fallback_from"] == "simple"


def test_stream_falls_back_when_the_model_fails_before_its_first_chunk() -> None:
    chunks = list(broken_simple().stream(SIMPLE_ZH))
    full = aggregate(chunks)
    assert len(chunks) > 1
    assert full.response_metadata["routing"]["fallback_from"] == "simple"
    assert full.response_metadata["model_name"] == "gpt-4o-mini"


async def test_astream_falls_back() -> None:
    chunks = [c async for c in broken_simple().astream(SIMPLE_ZH)]
    assert aggregate(chunks).response_metadata["routing"]["tier"] == "medium"


def test_batch_falls_back_per_input() -> None:
    replies = broken_simple().batch([SIMPLE_ZH, COMPLEX_ZH])
    assert replies[0].response_metadata["routing"]["fallback_from"] == "simple"
    assert tier_of(replies[1]) == "complex"


def test_every_tier_failing_raises_the_first_error() -> None:
    failing = {t: CountingSim(model_name=t, fail=True) for t in ("simple", "complex")}
    router = RouterChatModel(models=failing, strategy="rules")
    with pytest.raises(SimulatedProviderError, match="simple"):
        router.invoke(SIMPLE_ZH)
    with pytest.raises(SimulatedProviderError):
        list(router.stream(SIMPLE_ZH))


class RejectCheapest:
    """A cascade-style strategy: start cheapest, reject the cheapest tier's answer."""

    def route(self, text: str) -> RouteDecision:
        return RouteDecision("simple", 0.0, "cascade: cheapest first")

    def accept(self, text: str, answer: str, tier: str) -> bool:
        return tier != "simple"


def test_fallback_during_a_cascade_names_the_tier_that_failed() -> None:
    router = RouterChatModel(
        models=three_tiers(medium=CountingSim(model_name="gpt-4o-mini", fail=True)),
        strategy=RejectCheapest(),
    )
    routing = router.invoke("anything").response_metadata["routing"]
    assert routing["tier"] == "complex"
    assert routing["escalated_from"] == ["simple"]
    assert routing["fallback_from"] == "medium"
    assert routing["attempts"][0]["usage"]["output_tokens"] > 0


class BrokenCheck:
    """A cascade whose answer check itself fails, and whose route can fail too."""

    def __init__(self, route_fails: bool = False) -> None:
        self.route_fails = route_fails

    def route(self, text: str) -> RouteDecision:
        if self.route_fails:
            raise RuntimeError("router model unavailable")
        return RouteDecision("simple", 0.0, "cascade: cheapest first")

    def accept(self, text: str, answer: str, tier: str) -> bool:
        raise RuntimeError("checker crashed")


async def test_a_failing_cascade_check_is_logged_and_the_answer_kept(caplog) -> None:
    # Same behaviour as RouterLLM: a broken check never fails the user's call.
    cheap = CountingSim(model_name="deepseek-v3")
    router = RouterChatModel(models=three_tiers(simple=cheap), strategy=BrokenCheck())
    with caplog.at_level("ERROR"):
        reply = router.invoke("anything")
        areply = await router.ainvoke("anything")
        streamed = "".join(c.content for c in router.stream("anything"))
    for message in (reply, areply):
        assert message.response_metadata["routing"]["tier"] == "simple"
        assert "escalated_from" not in message.response_metadata["routing"]
    assert streamed == reply.content
    assert "answer check failed" in caplog.text


def test_a_failing_route_fails_the_call_before_any_model_is_called() -> None:
    cheap = CountingSim(model_name="deepseek-v3")
    router = RouterChatModel(models=three_tiers(simple=cheap), strategy=BrokenCheck(True))
    with pytest.raises(RuntimeError, match="router model unavailable"):
        router.invoke("anything")
    assert cheap._calls == []


def test_fallback_off_raises() -> None:
    router = RouterChatModel(
        models=three_tiers(simple=CountingSim(fail=True)), fallback=False, strategy="rules"
    )
    with pytest.raises(SimulatedProviderError):
        router.invoke(SIMPLE_ZH)


# -- tools and structured output ----------------------------------------------------------


@tool
def get_weather(city: str) -> str:
    """Weather in a city."""
    return "sunny"


@tool
def add_numbers(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


def test_each_tier_formats_bound_tools_its_own_way() -> None:
    openai_like = CountingSim(model_name="gpt-4o-mini")
    anthropic_like = AnthropicStyleSim(model_name="claude-3.5-sonnet")
    router = RouterChatModel(
        models={"simple": openai_like, "complex": anthropic_like}, strategy="rules"
    )
    bound = router.bind_tools([add_numbers], tool_choice="any")

    cheap = bound.invoke("请翻译并 add 3 and 4")
    assert tier_of(cheap) == "simple"
    assert openai_like._calls[-1]["tools"][0]["type"] == "function"
    assert cheap.tool_calls[0]["args"] == {"a": 3, "b": 4}

    strong = bound.invoke("分析并比较: add 5 and 6")
    assert tier_of(strong) == "complex"
    seen = anthropic_like._seen[-1]
    assert "tools" not in seen
    assert seen["anthropic_tools"][0]["input_schema"]["required"] == ["a", "b"]
    assert seen["anthropic_tool_choice"] == {"type": "any"}
    assert strong.tool_calls[0]["args"] == {"a": 5, "b": 6}


def test_bound_tools_are_formatted_once_per_tier() -> None:
    router = RouterChatModel(models=three_tiers(), strategy="rules")
    bound = router.bind_tools([get_weather])
    for _ in range(3):
        bound.invoke("What is the weather in Paris?")
    assert router.models["medium"]._binds == [1]


def test_inner_models_get_the_tools_as_the_user_gave_them() -> None:
    # A provider's built-in tool means nothing in OpenAI's format; the tier that owns
    # it must receive it untouched.
    router = RouterChatModel(models=three_tiers(), strategy="rules")
    builtin = {"type": "web_search_20250305", "name": "web_search", "max_uses": 3}
    router.bind_tools([builtin, add_numbers]).invoke("今天天气怎么样")
    received = router.models["medium"]._bound_tools
    assert received[0] is builtin and received[1] is add_numbers


def test_tool_calls_stream_through_the_router(router: RouterChatModel) -> None:
    bound = router.bind_tools([get_weather], tool_choice="get_weather")
    full = aggregate(list(bound.stream("What is the weather in Paris?")))
    assert full.tool_calls[0]["name"] == "get_weather"
    assert full.tool_calls[0]["args"] == {"city": "Paris"}


class Person(BaseModel):
    name: str
    age: int


@pytest.mark.parametrize("method", ["function_calling", "json_schema", "json_mode"])
def test_structured_output_through_the_router(router: RouterChatModel, method: str) -> None:
    person = router.with_structured_output(Person, method=method).invoke(
        "请提取: 'Ada' is 36 years old"
    )
    assert person == Person(name="Ada", age=36)
    calls = router.models["simple"]._calls
    if method == "json_schema":  # the tier's own request format: a response format
        assert calls[-1]["response_format"]["type"] == "json_schema"
    else:
        assert calls[-1]["tools"][0]["function"]["name"] == "Person"


def test_a_tiers_structured_request_is_built_once(router: RouterChatModel) -> None:
    structured = router.with_structured_output(Person, method="json_schema")
    for _ in range(3):
        structured.invoke("请提取: 'Ada' is 36 years old")
    assert router.models["simple"]._structured == ["json_schema"]


def test_structured_output_include_raw_keeps_the_decision(router: RouterChatModel) -> None:
    out = router.with_structured_output(Person, include_raw=True).invoke("'Ada' is 36; 请提取")
    assert out["parsed"] == Person(name="Ada", age=36)
    assert tier_of(out["raw"]) == "simple"


def test_unsupported_structured_output_method_is_rejected(router: RouterChatModel) -> None:
    with pytest.raises(ValueError, match="method must be one of"):
        router.with_structured_output(Person, method="xml")


# -- what the classifier sees ---------------------------------------------------------------


def test_classifier_sees_only_the_latest_human_turn() -> None:
    seen: list[str] = []

    def spy(text: str) -> str:
        seen.append(text)
        return ComplexityClassifier().classify(text)

    router = RouterChatModel(models=three_tiers(), strategy=spy)
    messages = [
        SystemMessage("你是分析、推理、评估和架构设计专家"),  # complex cues, every call
        HumanMessage("第一个问题"),
        AIMessage("好的"),
        HumanMessage(SIMPLE_ZH),
    ]
    assert tier_of(router.invoke(messages)) == "simple"
    assert seen == [SIMPLE_ZH]


def test_include_history_sees_every_human_turn_but_no_system_prompt() -> None:
    seen: list[str] = []
    router = RouterChatModel(
        models=three_tiers(), strategy=lambda t: seen.append(t) or "medium", include_history=True
    )
    router.invoke([SystemMessage("system 分析"), HumanMessage("one"), AIMessage("x"),
                   HumanMessage("two")])  # fmt: skip
    assert seen == ["one\ntwo"]


def test_each_call_of_a_tool_conversation_is_routed_on_its_own(router: RouterChatModel) -> None:
    bound = router.bind_tools([get_weather])
    question = HumanMessage("分析并比较 the weather in Paris")
    call = bound.invoke([question])
    assert tier_of(call) == "complex" and call.tool_calls
    result = ToolMessage("sunny", tool_call_id=call.tool_calls[0]["id"])
    follow_up = bound.invoke([question, call, result, HumanMessage(SIMPLE_ZH)])
    assert tier_of(follow_up) == "simple"


def test_pinned_tool_threads_stay_on_the_tier_that_called_the_tool() -> None:
    router = RouterChatModel(models=three_tiers(), pin_tool_threads=True, strategy="rules")
    bound = router.bind_tools([get_weather])
    question = HumanMessage("分析并比较 the weather in Paris")
    call = bound.invoke([question])
    result = ToolMessage("sunny", tool_call_id=call.tool_calls[0]["id"])
    thread = [question, call, result, HumanMessage(SIMPLE_ZH)]
    follow_up = bound.invoke(thread)
    assert tier_of(follow_up) == "complex"
    assert "tool calls" in follow_up.response_metadata["routing"]["reason"]
    # ... but never against a budget downgrade.
    downgraded = bound.invoke(thread, config={"callbacks": [OverBudget()]})
    assert tier_of(downgraded) == "simple"


# -- budget downgrade protocol ----------------------------------------------------------------


def test_budget_downgrade_sends_every_call_to_the_cheapest_tier(
    router: RouterChatModel,
) -> None:
    config = {"callbacks": [OverBudget()]}
    reply = router.invoke(COMPLEX_ZH, config=config)
    assert tier_of(reply) == "simple"
    assert reply.response_metadata["routing"]["reason"] == "budget exceeded: downgraded"
    assert tier_of(aggregate(list(router.stream(COMPLEX_ZH, config=config)))) == "simple"
    assert [tier_of(r) for r in router.batch([COMPLEX_ZH, COMPLEX_ZH], config=config)] == [
        "simple",
        "simple",
    ]
    # Without the handler the same prompt goes to the strong tier again.
    assert tier_of(router.invoke(COMPLEX_ZH)) == "complex"


async def test_budget_downgrade_async_and_on_the_routers_own_callbacks() -> None:
    router = RouterChatModel(models=three_tiers(), callbacks=[OverBudget()], strategy="rules")
    assert tier_of(await router.ainvoke(COMPLEX_ZH)) == "simple"
    chunks = [c async for c in router.astream(COMPLEX_ZH)]
    assert tier_of(aggregate(chunks)) == "simple"
    assert tier_of(router.invoke(COMPLEX_ZH)) == "simple"


# -- standard settings ----------------------------------------------------------------------


def test_model_override_forces_a_tier(router: RouterChatModel) -> None:
    reply = router.invoke(SIMPLE_ZH, model="claude-3.5-sonnet")
    assert tier_of(reply) == "complex"
    assert tier_of(router.invoke(SIMPLE_ZH, model="medium")) == "medium"
    # Any other model name is LangChain's per-call override: it reaches the routed model.
    passed = router.invoke(SIMPLE_ZH, model="gpt-5")
    assert tier_of(passed) == "simple" and passed.response_metadata["model_name"] == "gpt-5"


def test_stop_and_settings_reach_the_tiers() -> None:
    original = CountingSim(model_name="deepseek-v3", answer="alpha beta gamma delta")
    router = RouterChatModel(
        models={"simple": original, "complex": CountingSim()},
        stop=["gamma"],
        max_tokens=64,
        temperature=0.3,
        strategy="rules",
    )
    assert router.invoke(SIMPLE_ZH).content.strip() == "alpha beta"
    assert router.invoke(SIMPLE_ZH, stop=["beta"]).content.strip() == "alpha"
    assert router.models["simple"].temperature == 0.3
    assert router.models["simple"].max_tokens == 64
    assert original.temperature == 0.0 and original.max_tokens is None  # not mutated
    params = router._get_ls_params()
    assert params["ls_temperature"] == 0.3 and params["ls_max_tokens"] == 64


def test_inner_models_without_streaming_still_stream_through_the_router() -> None:
    fake = GenericFakeChatModel(messages=iter([AIMessage("plain answer")]))
    router = RouterChatModel(models={"simple": fake, "complex": CountingSim()}, strategy="rules")
    full = aggregate(list(router.stream(SIMPLE_ZH)))
    assert full.content == "plain answer"
    assert tier_of(full) == "simple"


class OpenAIStyleStream(SimulatedChatModel):
    """Streams like ChatOpenAI: the model name only in the last chunk's generation_info."""

    def _stream(self, messages: Any, stop: Any = None, run_manager: Any = None, **kw: Any):
        for chunk in super()._stream(messages, stop, run_manager, **kw):
            last = chunk.message.chunk_position == "last"
            chunk.message.response_metadata = {}
            chunk.generation_info = {"model_name": self.model_name} if last else None
            yield chunk


@pytest.mark.parametrize("inner", [OpenAIStyleStream, SimulatedChatModel])
async def test_a_streamed_routed_answer_names_the_model_as_the_bare_model_does(inner) -> None:
    cheap = inner(model_name="gpt-4o-mini")
    router = RouterChatModel(
        models={"simple": cheap, "complex": inner(model_name="gpt-4o")}, strategy="rules"
    )
    bare = aggregate(list(cheap.stream(SIMPLE_ZH))).response_metadata["model_name"]
    routed = aggregate(list(router.stream(SIMPLE_ZH)))
    arouted = aggregate([c async for c in router.astream(SIMPLE_ZH)])
    assert bare == "gpt-4o-mini"
    assert routed.response_metadata["model_name"] == arouted.response_metadata["model_name"] == bare


def test_an_unknown_router_argument_is_refused_by_name() -> None:
    # threshold= belongs to the strategy: dropping it in silence left the split unmoved.
    tiers = {"cheap": SimulatedChatModel(), "strong": SimulatedChatModel()}
    with pytest.raises(TypeError, match=r"\['threshold'\].*get_strategy"):
        RouterChatModel(models=tiers, threshold=0.1)
    with pytest.raises(TypeError, match="fallbak"):
        RouterChatModel(models=tiers, fallbak=False)
    RouterChatModel(models=tiers, timeout=30, max_retries=2)  # left to the tiers


def test_a_cache_hit_runs_no_routing_and_a_budgeted_call_routes_once() -> None:
    from langchain_costopt import CostCallbackHandler

    decisions: list[str] = []

    def strategy(text: str) -> str:
        decisions.append(text)
        return "cheap"

    router = RouterChatModel(
        models={
            "cheap": SimulatedChatModel(model_name="gpt-4o-mini"),
            "strong": SimulatedChatModel(model_name="gpt-4o"),
        },
        strategy=strategy,
        cache=InMemoryCache(),
    )
    router.invoke("What is our refund policy?")
    hits = [
        router.invoke("What is our refund policy?"),
        *router.stream("What is our refund policy?"),
    ]
    assert hits and len(decisions) == 1  # a hit is served without routing
    budget = CostCallbackHandler(budget_usd=1.0)
    router.invoke("Something new", config={"callbacks": [budget]})
    assert len(decisions) == 2  # routed once, before the run (its budget reserves that tier)


@pytest.mark.parametrize("options", [{"max_tokens": 0}, {"max_tokens": -5}, {"temperature": -3}])
def test_a_router_refuses_settings_no_tier_could_take(options: dict[str, Any]) -> None:
    tiers = {
        "cheap": SimulatedChatModel(model_name="gpt-4o-mini"),
        "strong": SimulatedChatModel(model_name="gpt-4o"),
    }
    with pytest.raises(ValueError, match=next(iter(options))):
        RouterChatModel(models=tiers, **options)
