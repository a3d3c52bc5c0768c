"""Deferred LangChain calls through the imitation batch APIs: half price, same answers."""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from typing import Any

import pytest
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage
from pydantic import BaseModel, SecretStr

from costopt_core.batch import BatchRequestError, BatchTimeoutError
from costopt_core.batch.imitation import ImitationBatchServer
from costopt_core.ledger import BudgetExceededError
from costopt_core.metadata_keys import BATCH_KEY
from langchain_costopt import CostCallbackHandler, RouterChatModel
from langchain_costopt.batch import (
    BatchAPIChatModel,
    adeferred_batch,
    batch_target,
    deferred_batch,
)
from langchain_costopt.simulated import SimulatedChatModel

MODEL = "gpt-4o-mini"
PROMPTS = [f"Summarise report number {i} in one line." for i in range(10)]
FAST: dict[str, Any] = {"poll_interval_s": 0.01, "max_poll_interval_s": 0.02}


def _options(batch_server: ImitationBatchServer, provider: str = "openai") -> dict[str, Any]:
    return {**batch_server.client_options(provider), **FAST}


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_ten_deferred_calls_cost_half_the_same_calls_made_directly(
    batch_server: ImitationBatchServer, provider: str
) -> None:
    model = SimulatedChatModel(model_name=MODEL)
    direct = CostCallbackHandler()
    direct_answers = model.batch(PROMPTS, {"callbacks": [direct]})
    deferred = CostCallbackHandler()
    answers = deferred_batch(
        model, PROMPTS, {"callbacks": [deferred]}, **_options(batch_server, provider)
    )
    assert [a.content for a in answers] == [a.content for a in direct_answers]
    assert [a.usage_metadata for a in answers] == [a.usage_metadata for a in direct_answers]
    assert all(a.response_metadata[BATCH_KEY] is True for a in answers)
    assert all(a.response_metadata["model_name"] == MODEL for a in answers)
    assert deferred.summary().calls == direct.summary().calls == 10
    assert deferred.total_cost == pytest.approx(direct.total_cost / 2, rel=1e-12)
    report = deferred.to_dict()
    assert report["saved_batch_usd"] == pytest.approx(direct.total_cost / 2, rel=1e-12)
    assert "batch API rates" in deferred.report()
    assert len(batch_server.submitted) == 1  # ten calls, one batch


async def test_async_deferred_calls_are_billed_alike(batch_server: ImitationBatchServer) -> None:
    model = SimulatedChatModel(model_name=MODEL)
    handler = CostCallbackHandler()
    answers = await adeferred_batch(
        model, PROMPTS[:3], {"callbacks": [handler]}, **_options(batch_server, "anthropic")
    )
    direct = CostCallbackHandler()
    await model.abatch(PROMPTS[:3], {"callbacks": [direct]})
    assert [a.response_metadata[BATCH_KEY] for a in answers] == [True] * 3
    assert handler.total_cost == pytest.approx(direct.total_cost / 2, rel=1e-12)


class _Events(BaseCallbackHandler):
    """Records each run's events and how many batches the batch_server had seen then."""

    def __init__(self, batch_server: ImitationBatchServer) -> None:
        self.batch_server = batch_server
        self.events: list[tuple[str, int]] = []

    def on_chat_model_start(self, serialized: Any, messages: Any, **kwargs: Any) -> None:
        self.events.append(("start", len(self.batch_server.submitted)))

    def on_llm_end(self, response: Any, **kwargs: Any) -> None:
        self.events.append(("end", len(self.batch_server.submitted)))

    def on_llm_error(self, error: BaseException, **kwargs: Any) -> None:
        self.events.append(("error", len(self.batch_server.submitted)))


def test_every_input_is_a_run_started_before_the_batch_is_submitted(
    batch_server: ImitationBatchServer,
) -> None:
    events = _Events(batch_server)
    deferred_batch(
        SimulatedChatModel(model_name=MODEL),
        PROMPTS[:4],
        {"callbacks": [events], "tags": ["nightly"]},
        **_options(batch_server),
    )
    assert events.events == [("start", 0)] * 4 + [("end", 1)] * 4


def _per_call_budget(max_tokens: int) -> float:
    # What the handler reserves for one of these calls: its prompt and max_tokens answer.
    return 20 * 1.5e-7 + max_tokens * 6e-7


def test_a_budget_refusal_stops_the_batch_before_it_is_submitted(
    batch_server: ImitationBatchServer,
) -> None:
    model = SimulatedChatModel(model_name=MODEL, max_tokens=100)
    handler = CostCallbackHandler(budget_usd=3.5 * _per_call_budget(100))
    with pytest.raises(BudgetExceededError):
        deferred_batch(model, PROMPTS, {"callbacks": [handler]}, **_options(batch_server))
    assert batch_server.submitted == []
    # The three calls admitted before the refusal gave their reservations back.
    answers = deferred_batch(model, PROMPTS[:3], {"callbacks": [handler]}, **_options(batch_server))
    assert len(answers) == 3 and handler.summary().calls == 3


async def test_async_budget_refusal_submits_nothing(batch_server: ImitationBatchServer) -> None:
    model = SimulatedChatModel(model_name=MODEL, max_tokens=100)
    handler = CostCallbackHandler(budget_usd=3.5 * _per_call_budget(100))
    with pytest.raises(BudgetExceededError):
        await adeferred_batch(model, PROMPTS, {"callbacks": [handler]}, **_options(batch_server))
    assert batch_server.submitted == []
    answers = await adeferred_batch(
        model, PROMPTS[:3], {"callbacks": [handler]}, **_options(batch_server)
    )
    assert len(answers) == 3 and handler.summary().calls == 3


def test_with_return_exceptions_the_admitted_calls_go_and_the_others_are_refused(
    batch_server: ImitationBatchServer,
) -> None:
    model = SimulatedChatModel(model_name=MODEL, max_tokens=100)
    handler = CostCallbackHandler(budget_usd=3.5 * _per_call_budget(100))
    outputs = deferred_batch(
        model, PROMPTS, {"callbacks": [handler]}, return_exceptions=True, **_options(batch_server)
    )
    assert [type(o).__name__ for o in outputs] == ["AIMessage"] * 3 + ["BudgetExceededError"] * 7
    assert handler.summary().calls == 3


def test_a_batch_that_times_out_is_cancelled_and_releases_its_reservations() -> None:
    model = SimulatedChatModel(model_name=MODEL, max_tokens=100)
    # Room for the ten calls once: a second batch fits only if the first gave it back.
    handler = CostCallbackHandler(budget_usd=15 * _per_call_budget(100))
    with ImitationBatchServer(processing_s=60) as slow:
        with pytest.raises(BatchTimeoutError):
            deferred_batch(
                model, PROMPTS, {"callbacks": [handler]}, timeout_s=0.05, **_options(slow)
            )
        assert slow.cancelled == slow.submitted
    with ImitationBatchServer(processing_s=0.01) as batch_server:
        answers = deferred_batch(model, PROMPTS, {"callbacks": [handler]}, **_options(batch_server))
    assert len(answers) == 10
    assert handler.summary().calls == 10


def test_a_request_the_provider_refuses_fails_alone(batch_server: ImitationBatchServer) -> None:
    def refuse_report_4(body: dict) -> str | None:
        return "content policy" if "report number 4" in str(body) else None

    model = SimulatedChatModel(model_name=MODEL)
    handler = CostCallbackHandler()
    with ImitationBatchServer(processing_s=0.01, fail_request=refuse_report_4) as refusing:
        outputs = deferred_batch(
            model, PROMPTS, {"callbacks": [handler]}, return_exceptions=True, **_options(refusing)
        )
        with pytest.raises(BatchRequestError, match="content policy"):
            deferred_batch(model, PROMPTS, **_options(refusing))
    assert isinstance(outputs[4], BatchRequestError)
    assert sum(isinstance(o, AIMessage) for o in outputs) == 9
    assert handler.summary().calls == 9


def test_wrapper_answers_invoke_directly_and_deferred_batches_through_the_batch_api(
    batch_server: ImitationBatchServer,
) -> None:
    model = BatchAPIChatModel(
        model=SimulatedChatModel(model_name=MODEL),
        provider="openai",
        base_url=batch_server.openai_base_url,
        api_key=SecretStr(batch_server.api_key),
        poll_interval_s=0.01,
    )
    handler = CostCallbackHandler()
    now = model.invoke("What is 2 + 2?", config={"callbacks": [handler]})
    assert BATCH_KEY not in now.response_metadata and batch_server.submitted == []
    plain = model.batch(PROMPTS[:2], {"callbacks": [handler]})
    assert all(BATCH_KEY not in a.response_metadata for a in plain) and batch_server.submitted == []
    later = model.batch(PROMPTS[:2], {"callbacks": [handler]}, deferred=True)
    assert all(a.response_metadata[BATCH_KEY] for a in later) and len(batch_server.submitted) == 1
    assert handler.summary().calls == 5


def test_router_tiers_batch_their_groups_through_their_batch_apis(
    batch_server: ImitationBatchServer,
) -> None:
    def tier(model: str) -> BatchAPIChatModel:
        return BatchAPIChatModel(
            model=SimulatedChatModel(model_name=model),
            provider="openai",
            base_url=batch_server.openai_base_url,
            api_key=SecretStr(batch_server.api_key),
            poll_interval_s=0.01,
        )

    router = RouterChatModel(
        models={"cheap": tier(MODEL), "strong": tier("gpt-4o")},
        strategy=lambda text: "strong" if "number 7" in text or "number 8" in text else "cheap",
    )
    handler = CostCallbackHandler()
    answers = router.batch(PROMPTS, {"callbacks": [handler]}, deferred=True)
    tiers = [a.response_metadata["routing"]["tier"] for a in answers]
    assert tiers == ["cheap"] * 7 + ["strong"] * 2 + ["cheap"]
    assert all(a.response_metadata[BATCH_KEY] for a in answers)
    assert len(batch_server.submitted) == 2  # one batch per tier
    direct = CostCallbackHandler()
    router.batch(PROMPTS, {"callbacks": [direct]})
    assert handler.total_cost == pytest.approx(direct.total_cost / 2, rel=1e-12)
    data = handler.to_dict()
    assert data["saved_batch_usd"] == pytest.approx(handler.total_cost, rel=1e-12)
    assert data["saved_routing_usd"] == pytest.approx(direct.to_dict()["saved_routing_usd"])


class _OpenAILike(SimulatedChatModel):
    """Carries its endpoint and key the way ``ChatOpenAI`` does."""

    openai_api_base: str | None = None
    openai_api_key: SecretStr | None = None

    def _get_ls_params(self, stop: list[str] | None = None, **kwargs: Any) -> Any:
        params = super()._get_ls_params(stop=stop, **kwargs)
        params["ls_provider"] = "openai"
        return params


def test_the_provider_endpoint_and_key_are_read_from_the_model(
    batch_server: ImitationBatchServer,
) -> None:
    model = _OpenAILike(
        model_name=MODEL,
        openai_api_base=batch_server.openai_base_url,
        openai_api_key=SecretStr(batch_server.api_key),
        max_tokens=50,
    )
    target = batch_target(model)
    assert (target.api.name, target.api.base_url, target.model) == (
        "openai",
        batch_server.openai_base_url,
        MODEL,
    )
    assert target.params["max_tokens"] == 50
    [answer] = deferred_batch(model, [[SystemMessage("Be brief."), HumanMessage("hi")]], **FAST)
    assert answer.usage_metadata is not None and answer.usage_metadata["output_tokens"] <= 50


def test_a_model_without_a_known_provider_or_key_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(ValueError, match="provider must be one of"):
        batch_target(SimulatedChatModel(model_name=MODEL))
    with pytest.raises(ValueError, match="api_key"):
        batch_target(SimulatedChatModel(model_name=MODEL), provider="openai")
    with pytest.raises(TypeError, match="chat model"):
        batch_target("gpt-4o-mini", provider="openai", api_key="k")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="inputs"):
        deferred_batch(SimulatedChatModel(model_name=MODEL), [], provider="openai", api_key="k")


def test_a_misspelt_wrapper_setting_is_refused_not_left_at_its_default() -> None:
    # timeout_secs= dropped in silence would leave the 24-hour default timeout.
    model = SimulatedChatModel(model_name=MODEL)
    with pytest.raises(TypeError, match=r"BatchAPIChatModel got unexpected arguments \['poll_"):
        BatchAPIChatModel(model=model, provider="openai", api_key="k", poll_intervall_s=1)
    with pytest.raises(TypeError, match="timeout_secs"):
        BatchAPIChatModel(model=model, provider="openai", api_key="k", timeout_secs=60)


@pytest.mark.slow  # importing the provider SDKs takes seconds
def test_chat_openai_and_chat_anthropic_batch_against_the_imitation(
    batch_server: ImitationBatchServer,
) -> None:
    langchain_openai = pytest.importorskip("langchain_openai")
    langchain_anthropic = pytest.importorskip("langchain_anthropic")
    models: list[BaseChatModel] = [
        langchain_openai.ChatOpenAI(
            model=MODEL, api_key=batch_server.api_key, base_url=batch_server.openai_base_url
        ),
        langchain_anthropic.ChatAnthropic(
            model="claude-haiku-4-5",
            api_key=batch_server.api_key,
            base_url=batch_server.anthropic_base_url,
            max_tokens=200,
        ),
    ]
    for model in models:
        direct = CostCallbackHandler()
        model.batch(PROMPTS, {"callbacks": [direct]})  # the direct endpoints
        deferred = CostCallbackHandler()
        deferred_batch(model, PROMPTS, {"callbacks": [deferred]}, **FAST)
        assert deferred.total_cost == pytest.approx(direct.total_cost / 2, rel=1e-12)


def test_router_defers_plain_tiers_with_the_endpoint_given_in_the_call(
    batch_server: ImitationBatchServer,
) -> None:
    # Any tier: the provider, endpoint and key ride along in the router's call kwargs.
    router = RouterChatModel(
        models={
            "cheap": SimulatedChatModel(model_name=MODEL),
            "strong": SimulatedChatModel(model_name="gpt-4o"),
        },
        strategy=lambda text: "strong" if "number 3" in text else "cheap",
    )
    handler = CostCallbackHandler()
    answers = router.batch(
        PROMPTS, {"callbacks": [handler]}, deferred=True, **_options(batch_server)
    )
    assert [a.response_metadata["routing"]["tier"] for a in answers].count("strong") == 1
    assert all(a.response_metadata[BATCH_KEY] for a in answers)
    assert len(batch_server.submitted) == 2
    direct = CostCallbackHandler()
    router.batch(PROMPTS, {"callbacks": [direct]})
    assert handler.total_cost == pytest.approx(direct.total_cost / 2, rel=1e-12)


async def test_router_abatch_deferred_goes_through_the_batch_api(
    batch_server: ImitationBatchServer,
) -> None:
    router = RouterChatModel(
        models={
            "cheap": SimulatedChatModel(model_name=MODEL),
            "strong": SimulatedChatModel(model_name="gpt-4o"),
        },
        strategy=lambda text: "cheap",
    )
    handler = CostCallbackHandler()
    answers = await router.abatch(
        PROMPTS[:4], {"callbacks": [handler]}, deferred=True, **_options(batch_server)
    )
    assert all(a.response_metadata[BATCH_KEY] for a in answers)
    assert len(batch_server.submitted) == 1
    assert handler.to_dict()["saved_batch_usd"] == pytest.approx(handler.total_cost, rel=1e-12)


def test_help_lists_every_keyword_deferred_batch_takes() -> None:
    for function in (deferred_batch, adeferred_batch):
        parameters = inspect.signature(function).parameters
        assert list(parameters)[:4] == ["model", "inputs", "config", "stop"]
        for name in ("return_exceptions", "provider", "api_key", "poll_interval_s", "settings"):
            assert parameters[name].kind is inspect.Parameter.KEYWORD_ONLY
        assert parameters["return_exceptions"].default is False
        assert list(parameters)[-1] == "kwargs"  # the rest goes with every request


@pytest.mark.parametrize("mistake", ["no provider", "wrong key"])
def test_a_deferred_batch_that_fails_never_becomes_direct_calls_on_a_dearer_tier(
    batch_server: ImitationBatchServer, mistake: str
) -> None:
    router = RouterChatModel(
        models={
            "cheap": SimulatedChatModel(model_name=MODEL),
            "strong": SimulatedChatModel(model_name="gpt-4o"),
        },
        strategy=lambda text: "cheap",
    )
    options = {} if mistake == "no provider" else {**_options(batch_server), "api_key": "sk-wrong"}
    handler = CostCallbackHandler()
    answers = router.batch(
        PROMPTS[:3], {"callbacks": [handler]}, deferred=True, return_exceptions=True, **options
    )
    assert all(isinstance(a, Exception) for a in answers)
    assert handler.summary().calls == 0 and handler.total_cost == 0.0  # nothing billed
    with pytest.raises(Exception):  # noqa: B017 - the batch API's own error, whatever it is
        router.batch(PROMPTS[:3], deferred=True, **options)


# -- a drop-in chat model: tools and structured output ----------------------------------


def get_weather(city: str) -> str:
    """The weather in a city."""
    return f"Sunny in {city}."


class Weather(BaseModel):
    """The weather report of a city."""

    city: str


@pytest.fixture
def recording() -> Iterator[tuple[ImitationBatchServer, list[dict[str, Any]]]]:
    """A batch_server that keeps every request body it answers (direct or batched)."""
    bodies: list[dict[str, Any]] = []

    def keep(body: Any) -> None:
        bodies.append(dict(body))

    with ImitationBatchServer(processing_s=0.02, fail_request=keep) as imitation:
        yield imitation, bodies


def _wrapper(
    batch_server: ImitationBatchServer, model: BaseChatModel | None = None, provider: str = "openai"
) -> BatchAPIChatModel:
    options = _options(batch_server, provider)
    return BatchAPIChatModel(
        model=model or SimulatedChatModel(model_name=MODEL),
        provider=provider,
        base_url=options["base_url"],
        api_key=SecretStr(batch_server.api_key),
        poll_interval_s=0.01,
        max_poll_interval_s=0.02,
    )


def test_the_wrapper_binds_tools_for_direct_calls_and_for_deferred_batches(
    recording: tuple[ImitationBatchServer, list[dict[str, Any]]],
) -> None:
    batch_server, bodies = recording
    bound = _wrapper(batch_server).bind_tools([get_weather])
    question = "What is the weather in Paris?"
    now = bound.invoke(question)
    assert [c["name"] for c in now.tool_calls] == ["get_weather"] and batch_server.submitted == []
    later = bound.batch([question, "Name a colour."], deferred=True)
    assert len(batch_server.submitted) == 1 and all(a.response_metadata[BATCH_KEY] for a in later)
    assert later[0].tool_calls[0]["name"] == "get_weather"
    assert later[0].tool_calls[0]["args"] == now.tool_calls[0]["args"] == {"city": "Paris"}
    assert later[1].tool_calls == []
    assert [[t["function"]["name"] for t in b["tools"]] for b in bodies] == [["get_weather"]] * 2


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
@pytest.mark.parametrize("method", ["function_calling", "json_schema"])
def test_the_wrapper_gives_structured_output_directly_and_deferred(
    batch_server: ImitationBatchServer, method: str, provider: str
) -> None:
    wrapper = _wrapper(batch_server, provider=provider)
    structured = wrapper.with_structured_output(Weather, method=method)
    question = "What is the weather in Paris?"
    assert structured.invoke(question) == Weather(city="Paris")
    assert structured.batch([question], deferred=True) == [Weather(city="Paris")]
    assert len(batch_server.submitted) == 1


def test_an_agent_runs_on_the_wrapper(batch_server: ImitationBatchServer) -> None:
    from langchain.agents import create_agent

    agent = create_agent(_wrapper(batch_server), tools=[get_weather])
    state = agent.invoke({"messages": [HumanMessage("What is the weather in Paris?")]})
    tool_results = [m for m in state["messages"] if m.type == "tool"]
    assert [m.content for m in tool_results] == ["Sunny in Paris."]


def test_a_router_bound_with_tools_keeps_its_batch_api_tiers(
    recording: tuple[ImitationBatchServer, list[dict[str, Any]]],
) -> None:
    batch_server, bodies = recording
    router = RouterChatModel(
        models={
            "cheap": _wrapper(batch_server),
            "strong": _wrapper(batch_server, SimulatedChatModel()),
        },
        strategy=lambda text: "cheap",
    )
    bound = router.bind_tools([get_weather])
    now = bound.invoke("What is the weather in Paris?")
    routing = now.response_metadata["routing"]
    assert routing["tier"] == "cheap" and not routing.get("fallback_from")
    assert now.tool_calls[0]["name"] == "get_weather"
    later = bound.batch(["What is the weather in Rome?"], deferred=True)
    assert later[0].response_metadata[BATCH_KEY] and later[0].tool_calls[0]["args"] == {
        "city": "Rome"
    }
    assert all("tools" in b for b in bodies)


@pytest.mark.slow  # importing the provider SDKs takes seconds
def test_chat_openai_and_chat_anthropic_bound_tools_go_in_their_own_format(
    recording: tuple[ImitationBatchServer, list[dict[str, Any]]],
) -> None:
    langchain_openai = pytest.importorskip("langchain_openai")
    langchain_anthropic = pytest.importorskip("langchain_anthropic")
    batch_server, bodies = recording
    openai_model = langchain_openai.ChatOpenAI(
        model=MODEL, api_key=batch_server.api_key, base_url=batch_server.openai_base_url
    )
    claude = langchain_anthropic.ChatAnthropic(
        model="claude-haiku-4-5",
        api_key=batch_server.api_key,
        base_url=batch_server.anthropic_base_url,
    )
    for model, key in ((openai_model, "function"), (claude, "input_schema")):
        bodies.clear()
        wrapper = BatchAPIChatModel(model=model, poll_interval_s=0.01, max_poll_interval_s=0.02)
        [answer] = wrapper.bind_tools([get_weather], tool_choice="get_weather").batch(
            ["What is the weather in Paris?"], deferred=True
        )
        assert answer.response_metadata[BATCH_KEY]
        assert answer.tool_calls[0]["args"] == {"city": "Paris"}
        [body] = bodies
        assert key in body["tools"][0]


def test_bad_input_names_the_argument(batch_server: ImitationBatchServer) -> None:
    model = SimulatedChatModel(model_name=MODEL)
    with pytest.raises(TypeError, match=r"inputs\[0\] must be a text, a PromptValue"):
        deferred_batch(model, [42], **_options(batch_server))  # type: ignore[list-item]
    with pytest.raises(TypeError, match="inputs must be a list"):
        deferred_batch(model, "What is 2 + 2?", **_options(batch_server))
    with pytest.raises(ValueError, match=r"provider must be one of \['anthropic', 'openai'\]"):
        BatchAPIChatModel(model=model, provider="azure")
    with pytest.raises(TypeError, match=r"poll_intervall_s.*did you mean 'poll_interval_s'"):
        deferred_batch(model, ["hi"], **_options(batch_server), poll_intervall_s=0.02)
    router = RouterChatModel(models={"cheap": model, "strong": SimulatedChatModel()})
    with pytest.raises(TypeError, match=r"RouterChatModel.*deferred=True"):
        deferred_batch(router, ["hi"], **_options(batch_server))
    assert batch_server.submitted == []


def test_model_parameters_still_go_with_every_request(
    recording: tuple[ImitationBatchServer, list[dict[str, Any]]],
) -> None:
    batch_server, bodies = recording
    model = SimulatedChatModel(model_name=MODEL)
    deferred_batch(model, ["hi"], **_options(batch_server), temperature=0.3, max_tokens=9, seed=7)
    [body] = bodies
    assert (body["temperature"], body["max_tokens"], body["seed"]) == (0.3, 9, 7)
