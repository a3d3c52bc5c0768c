"""Deferred LlamaIndex chat calls through the imitation batch APIs."""

from __future__ import annotations

import inspect
from typing import Any

import pytest
from llama_index.core.llms import ChatMessage, ChatResponse

from costopt_core.batch import BatchRequestError, BatchTimeoutError
from costopt_core.batch.imitation import ImitationBatchServer
from costopt_core.ledger import BudgetExceededError
from costopt_core.metadata_keys import BATCH_KEY
from llamaindex_costopt import CostEventHandler
from llamaindex_costopt.batch import adeferred_batch, batch_target, deferred_batch
from llamaindex_costopt.simulated import SimulatedLLM

MODEL = "gpt-4o-mini"
PROMPTS = [f"Summarise report number {i} in one line." for i in range(10)]
FAST: dict[str, Any] = {"poll_interval_s": 0.01, "max_poll_interval_s": 0.02}


def _options(batch_server: ImitationBatchServer, provider: str = "openai") -> dict[str, Any]:
    return {**batch_server.client_options(provider), **FAST}


def _direct(llm: SimulatedLLM, prompts: list[str]) -> list[ChatResponse]:
    return [llm.chat([ChatMessage(role="user", content=p)]) for p in prompts]


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_deferred_answers_are_the_direct_answers_with_usage_and_the_batch_mark(
    batch_server: ImitationBatchServer, provider: str
) -> None:
    llm = SimulatedLLM(model_name=MODEL)
    with CostEventHandler() as handler:
        answers = deferred_batch(llm, PROMPTS, **_options(batch_server, provider))
    direct = _direct(llm, PROMPTS)
    assert [a.message.content for a in answers] == [d.message.content for d in direct]
    assert [a.additional_kwargs["completion_tokens"] for a in answers] == [
        d.raw["usage"]["completion_tokens"] for d in direct
    ]
    assert all(a.additional_kwargs[BATCH_KEY] is True for a in answers)
    assert all(a.raw["model"] == MODEL and "usage" in a.raw for a in answers)
    assert handler.summary().calls == 10  # one LLM event pair per answer
    assert handler.summary().models[MODEL].output_tokens == sum(
        d.raw["usage"]["completion_tokens"] for d in direct
    )
    assert len(batch_server.submitted) == 1


def test_ten_deferred_calls_cost_half_the_same_calls_made_directly(
    batch_server: ImitationBatchServer,
) -> None:
    llm = SimulatedLLM(model_name=MODEL)
    with CostEventHandler() as deferred:
        deferred_batch(llm, PROMPTS, **_options(batch_server))
    with CostEventHandler() as direct:
        _direct(llm, PROMPTS)
    assert deferred.total_cost == pytest.approx(direct.total_cost / 2, rel=1e-12)


async def test_async_deferred_batch_answers_as_the_sync_one(
    batch_server: ImitationBatchServer,
) -> None:
    llm = SimulatedLLM(model_name=MODEL)
    with CostEventHandler() as handler:
        answers = await adeferred_batch(llm, PROMPTS[:3], **_options(batch_server, "anthropic"))
    assert [a.message.content for a in answers] == [
        d.message.content for d in _direct(llm, PROMPTS[:3])
    ]
    assert handler.summary().calls == 3


def _per_call_budget(max_tokens: int) -> float:
    # What a budget reserves for one of these calls: its prompt and a max_tokens answer.
    return 20 * 1.5e-7 + max_tokens * 6e-7


def test_a_budget_refusal_stops_the_batch_before_it_is_submitted(
    batch_server: ImitationBatchServer,
) -> None:
    llm = SimulatedLLM(model_name=MODEL, max_tokens=100)
    with CostEventHandler(budget_usd=3.5 * _per_call_budget(100)) as handler:
        with pytest.raises(BudgetExceededError):
            deferred_batch(llm, PROMPTS, **_options(batch_server))
        assert batch_server.submitted == []
        # The three calls admitted before the refusal gave their reservations back.
        assert len(deferred_batch(llm, PROMPTS[:3], **_options(batch_server))) == 3
        assert handler.summary().calls == 3


def test_an_explicit_cost_handler_is_asked_too(batch_server: ImitationBatchServer) -> None:
    llm = SimulatedLLM(model_name=MODEL, max_tokens=100)
    handler = CostEventHandler(budget_usd=3.5 * _per_call_budget(100))  # not registered
    outputs = deferred_batch(
        llm, PROMPTS, cost_handler=handler, return_exceptions=True, **_options(batch_server)
    )
    assert [type(o).__name__ for o in outputs] == ["ChatResponse"] * 3 + ["BudgetExceededError"] * 7


def test_a_batch_that_times_out_is_cancelled_and_releases_its_reservations() -> None:
    llm = SimulatedLLM(model_name=MODEL, max_tokens=100)
    with CostEventHandler(budget_usd=15 * _per_call_budget(100)) as handler:
        with ImitationBatchServer(processing_s=60) as slow:
            with pytest.raises(BatchTimeoutError):
                deferred_batch(llm, PROMPTS, timeout_s=0.05, **_options(slow))
            assert slow.cancelled == slow.submitted
        with ImitationBatchServer(processing_s=0.01) as batch_server:
            assert len(deferred_batch(llm, PROMPTS, **_options(batch_server))) == 10
        assert handler.summary().calls == 10


def test_a_request_the_provider_refuses_fails_alone() -> None:
    def refuse_report_4(body: dict) -> str | None:
        return "content policy" if "report number 4" in str(body) else None

    llm = SimulatedLLM(model_name=MODEL)
    with ImitationBatchServer(processing_s=0.01, fail_request=refuse_report_4) as batch_server:
        with CostEventHandler() as handler:
            outputs = deferred_batch(llm, PROMPTS, return_exceptions=True, **_options(batch_server))
        with pytest.raises(BatchRequestError, match="content policy"):
            deferred_batch(llm, PROMPTS, **_options(batch_server))
    assert isinstance(outputs[4], BatchRequestError)
    assert sum(isinstance(o, ChatResponse) for o in outputs) == 9
    assert handler.summary().calls == 9


class _OpenAILike(SimulatedLLM):
    """Names itself and keeps its endpoint and key as LlamaIndex's ``OpenAI`` does."""

    api_base: str | None = None
    api_key: str | None = None

    @classmethod
    def class_name(cls) -> str:
        return "openai_llm"


def test_the_provider_endpoint_and_key_are_read_from_the_llm(
    batch_server: ImitationBatchServer,
) -> None:
    llm = _OpenAILike(
        model_name=MODEL,
        api_base=batch_server.openai_base_url,
        api_key=batch_server.api_key,
        max_tokens=40,
    )
    target = batch_target(llm)
    assert (target.api.name, target.api.base_url, target.model) == (
        "openai",
        batch_server.openai_base_url,
        MODEL,
    )
    conversation = [
        ChatMessage(role="system", content="Be brief."),
        ChatMessage(role="user", content="hi"),
    ]
    [answer] = deferred_batch(llm, [conversation], **FAST)
    assert answer.additional_kwargs["completion_tokens"] <= 40


def test_an_llm_without_a_known_provider_or_key_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    with pytest.raises(ValueError, match="provider must be one of"):
        batch_target(SimulatedLLM(model_name=MODEL))
    with pytest.raises(ValueError, match="api_key"):
        batch_target(SimulatedLLM(model_name=MODEL), provider="anthropic")
    with pytest.raises(TypeError, match="LlamaIndex LLM"):
        batch_target("gpt-4o-mini", provider="openai", api_key="k")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="conversations"):
        deferred_batch(SimulatedLLM(model_name=MODEL), [], provider="openai", api_key="k")


def test_help_lists_every_keyword_deferred_batch_takes() -> None:
    for function in (deferred_batch, adeferred_batch):
        parameters = inspect.signature(function).parameters
        assert list(parameters)[:3] == ["llm", "conversations", "cost_handler"]
        for name in ("return_exceptions", "provider", "api_key", "timeout_s", "http_client"):
            assert parameters[name].kind is inspect.Parameter.KEYWORD_ONLY
        assert list(parameters)[-1] == "kwargs"  # the rest goes with every request


def test_a_router_is_refused_with_what_to_do_instead(batch_server: ImitationBatchServer) -> None:
    from llamaindex_costopt import RouterLLM

    router = RouterLLM(
        llms={
            "simple": SimulatedLLM(model_name=MODEL),
            "complex": SimulatedLLM(model_name="gpt-4o"),
        }
    )
    with pytest.raises(TypeError, match=r"llm must be one LLM, not a RouterLLM.*router\.llms"):
        deferred_batch(router, PROMPTS[:2], **_options(batch_server))
    assert batch_server.submitted == []


def test_bad_input_names_the_argument(batch_server: ImitationBatchServer) -> None:
    llm = SimulatedLLM(model_name=MODEL)
    with pytest.raises(
        TypeError, match=r"conversations\[0\] must be a text or a list of ChatMessage"
    ):
        deferred_batch(llm, [42], **_options(batch_server))  # type: ignore[list-item]
    with pytest.raises(TypeError, match="conversations must be a list"):
        deferred_batch(llm, "What is 2 + 2?", **_options(batch_server))
    with pytest.raises(TypeError, match=r"poll_intervall_s.*did you mean 'poll_interval_s'"):
        deferred_batch(llm, ["hi"], **_options(batch_server), poll_intervall_s=0.02)
    assert batch_server.submitted == []
    [answer] = deferred_batch(llm, ["hi"], **_options(batch_server), temperature=0.3, top_p=0.9)
    assert answer.additional_kwargs[BATCH_KEY]
