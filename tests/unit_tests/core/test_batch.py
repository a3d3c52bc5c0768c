"""The batch engine against the local imitation of OpenAI's and Anthropic's batch APIs."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest

from costopt_core.batch import (
    AnthropicBatchAPI,
    BatchAPIError,
    BatchJob,
    BatchRequest,
    BatchTimeoutError,
    HttpReply,
    OpenAIBatchAPI,
    PollSettings,
    Wait,
    arun_batch,
    batch_api,
    batch_requests,
    run_batch,
)
from costopt_core.batch.deferred import DeferredBatch, DeferredOptions
from costopt_core.batch.imitation import ImitationBatchServer
from costopt_core.batch.requests import BatchRequestError, BatchResult
from costopt_core.ledger import BudgetExceededError

FAST = {"poll_interval_s": 0.01, "max_poll_interval_s": 0.02}
# One client for the tests' own calls (opening one loads the CA bundle: ~0.1 s each).
_HTTP = httpx.Client(verify=False, trust_env=False)
QUESTIONS = [f"What is {i} times {i + 1}?" for i in range(5)]


def _api(batch_server: ImitationBatchServer, provider: str) -> OpenAIBatchAPI | AnthropicBatchAPI:
    return batch_api(provider, batch_server.api_key, batch_server.base_url(provider))  # type: ignore[return-value]


def _conversations(questions: list[str]) -> list[list[dict[str, str]]]:
    return [[{"role": "user", "content": q}] for q in questions]


def _direct(batch_server: ImitationBatchServer, provider: str, question: str) -> dict:
    """The same request made directly (not batched), as the provider's own endpoint."""
    if provider == "openai":
        response = _HTTP.post(
            batch_server.openai_base_url + "/chat/completions",
            json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": question}]},
            headers={"Authorization": f"Bearer {batch_server.api_key}"},
        )
        body = response.json()
        return {"text": body["choices"][0]["message"]["content"], "usage": body["usage"]}
    response = _HTTP.post(
        batch_server.anthropic_base_url + "/v1/messages",
        json={
            "model": "gpt-4o-mini",
            "max_tokens": 4096,
            "messages": [{"role": "user", "content": question}],
        },
        headers={"x-api-key": batch_server.api_key, "anthropic-version": "2023-06-01"},
    )
    body = response.json()
    return {"text": body["content"][0]["text"], "usage": body["usage"]}


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_batch_answers_every_request_in_order_with_the_direct_calls_usage(
    batch_server: ImitationBatchServer, provider: str
) -> None:
    requests = batch_requests("gpt-4o-mini", _conversations(QUESTIONS))
    results = run_batch(_api(batch_server, provider), requests, **FAST)
    # The Anthropic imitation returns results in reverse order: matched back by custom_id.
    assert [r.custom_id for r in results] == [r.custom_id for r in requests]
    assert all(r.ok and r.model == "gpt-4o-mini" for r in results)
    for question, result in zip(QUESTIONS, results, strict=True):
        direct = _direct(batch_server, provider, question)
        assert result.text == direct["text"]
        assert result.usage is not None
        assert result.usage.output_tokens == direct["usage"].get(
            "completion_tokens", direct["usage"].get("output_tokens")
        )
    assert len(batch_server.submitted) == 1


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
async def test_async_batch_answers_as_the_sync_one(
    batch_server: ImitationBatchServer, provider: str
) -> None:
    requests = batch_requests("gpt-4o-mini", _conversations(QUESTIONS[:2]))
    results = await arun_batch(_api(batch_server, provider), requests, **FAST)
    expected = run_batch(_api(batch_server, provider), requests, **FAST)
    assert [(r.text, r.usage) for r in results] == [(r.text, r.usage) for r in expected]


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_a_request_the_provider_refuses_fails_alone(provider: str) -> None:
    def refuse_question_2(body: dict) -> str | None:
        return "no twos here" if "2 times" in json.dumps(body) else None

    with ImitationBatchServer(processing_s=0.01, fail_request=refuse_question_2) as batch_server:
        results = run_batch(
            _api(batch_server, provider),
            batch_requests("gpt-4o-mini", _conversations(QUESTIONS)),
            **FAST,
        )
    failed = [r for r in results if not r.ok]
    assert [r.custom_id for r in failed] == ["request-2"]
    assert failed[0].error == "no twos here"
    assert failed[0].error_type == "invalid_request_error"
    assert failed[0].usage is None
    assert sum(r.ok for r in results) == 4


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_a_batch_not_ended_in_time_is_cancelled_and_raises(provider: str) -> None:
    with ImitationBatchServer(processing_s=60) as batch_server:
        with pytest.raises(BatchTimeoutError) as raised:
            run_batch(
                _api(batch_server, provider),
                batch_requests("gpt-4o-mini", _conversations(QUESTIONS)),
                timeout_s=0.1,
                **FAST,
            )
        assert batch_server.cancelled == [raised.value.batch_id] == batch_server.submitted


async def test_a_cancelled_task_cancels_its_batch() -> None:
    with ImitationBatchServer(processing_s=60) as batch_server:
        api = _api(batch_server, "anthropic")
        submitted = asyncio.Event()
        task = asyncio.create_task(
            arun_batch(
                api,
                batch_requests("gpt-4o-mini", _conversations(QUESTIONS)),
                on_submit=lambda _: submitted.set(),
                **FAST,
            )
        )
        await submitted.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert batch_server.cancelled == batch_server.submitted


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_a_wrong_key_is_refused_before_anything_is_submitted(
    batch_server: ImitationBatchServer, provider: str
) -> None:
    base = batch_server.openai_base_url if provider == "openai" else batch_server.anthropic_base_url
    with pytest.raises(BatchAPIError) as raised:
        run_batch(
            batch_api(provider, "sk-wrong", base),
            batch_requests("gpt-4o-mini", _conversations(QUESTIONS)),
            **FAST,
        )
    assert raised.value.status_code == 401
    assert batch_server.submitted == []


def test_an_openai_batch_that_fails_validation_says_why(batch_server: ImitationBatchServer) -> None:
    hi = ({"role": "user", "content": "hi"},)
    requests = [BatchRequest("a", "gpt-4o-mini", hi), BatchRequest("b", "gpt-4o", hi)]
    with pytest.raises(BatchAPIError, match="model_mismatch"):
        run_batch(_api(batch_server, "openai"), requests, **FAST)


def test_anthropic_requests_are_translated_from_the_openai_chat_format() -> None:
    tool = {
        "type": "function",
        "function": {
            "name": "add",
            "description": "Add two numbers",
            "parameters": {"type": "object", "properties": {"a": {"type": "number"}}},
        },
    }
    messages = (
        {"role": "system", "content": "Be exact."},
        {"role": "user", "content": "add 2 and 3"},
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "add", "arguments": '{"a": 2}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "5"},
    )
    entry = AnthropicBatchAPI.request_entry(
        BatchRequest("r", "claude-haiku-4-5", messages, {"tools": [tool], "tool_choice": "auto"})
    )
    params = entry["params"]
    assert params["system"] == "Be exact."
    assert params["max_tokens"] == 4096  # Anthropic requires one: the budgets' default
    assert params["messages"][1] == {
        "role": "assistant",
        "content": [{"type": "tool_use", "id": "call_1", "name": "add", "input": {"a": 2}}],
    }
    assert params["messages"][2]["content"] == [
        {"type": "tool_result", "tool_use_id": "call_1", "content": "5"}
    ]
    assert params["tools"] == [
        {
            "name": "add",
            "input_schema": tool["function"]["parameters"],
            "description": "Add two numbers",
        }
    ]
    assert params["tool_choice"] == {"type": "auto"}


def test_results_are_parsed_with_tool_calls_and_cache_usage() -> None:
    openai_line = {
        "custom_id": "r",
        "response": {
            "status_code": 200,
            "body": {
                "model": "gpt-4o-mini",
                "choices": [
                    {
                        "message": {
                            "content": None,
                            "tool_calls": [
                                {
                                    "id": "c1",
                                    "type": "function",
                                    "function": {"name": "add", "arguments": '{"a": 1}'},
                                }
                            ],
                        },
                        "finish_reason": "tool_calls",
                    }
                ],
                "usage": {
                    "prompt_tokens": 100,
                    "completion_tokens": 10,
                    "prompt_tokens_details": {"cached_tokens": 60},
                },
            },
        },
        "error": None,
    }
    result = OpenAIBatchAPI.parse_result_line(openai_line)
    assert (result.tool_calls[0].name, dict(result.tool_calls[0].args)) == ("add", {"a": 1})
    assert result.usage is not None and result.usage.cache_read_tokens == 60
    anthropic_line = {
        "custom_id": "r",
        "result": {
            "type": "succeeded",
            "message": {
                "model": "claude-haiku-4-5",
                "content": [{"type": "text", "text": "ok"}],
                "usage": {"input_tokens": 40, "output_tokens": 5, "cache_read_input_tokens": 60},
            },
        },
    }
    parsed = AnthropicBatchAPI.parse_result_line(anthropic_line)
    # Anthropic counts cache reads apart from input: LangChain's convention adds them.
    assert parsed.usage is not None
    assert (parsed.usage.input_tokens, parsed.usage.cache_read_tokens) == (100, 60)
    expired = AnthropicBatchAPI.parse_result_line({"custom_id": "r", "result": {"type": "expired"}})
    assert not expired.ok and expired.error_type == "expired"


class _ScriptedProvider(OpenAIBatchAPI):
    """Replies come from the test, so the job's own decisions can be watched."""


def _run_scripted(replies: list[HttpReply], settings: PollSettings) -> tuple[list, list]:
    now = [0.0]
    job = BatchJob(
        _ScriptedProvider("sk-test"),
        batch_requests("gpt-4o-mini", _conversations(["hi"])),
        settings,
        clock=lambda: now[0],
    )
    steps = job.steps()
    seen: list = []
    feed = iter(replies)
    reply = None
    try:
        while True:
            step = steps.send(reply)
            seen.append(step)
            if isinstance(step, Wait):
                now[0] += step.seconds
                reply = None
            else:
                reply = next(feed)
    except StopIteration as done:
        return seen, done.value


def _json(status: int, body: dict) -> HttpReply:
    return HttpReply(status, json.dumps(body).encode())


def test_polling_backs_off_and_rides_out_transient_errors() -> None:
    running = _json(200, {"id": "b1", "status": "in_progress"})
    ended = _json(200, {"id": "b1", "status": "completed", "output_file_id": "f2"})
    line = {
        "custom_id": "request-0",
        "response": {"status_code": 200, "body": {"choices": [{"message": {"content": "x"}}]}},
    }
    replies = [
        HttpReply(429, b"slow down"),  # the upload is tried again
        _json(200, {"id": "f1"}),
        _json(200, {"id": "b1"}),
        running,
        HttpReply(503, b"busy"),  # a failed poll is just another poll
        running,
        running,
        ended,
        HttpReply(200, (json.dumps(line) + "\n").encode()),
    ]
    settings = PollSettings(poll_interval_s=1.0, max_poll_interval_s=2.0)
    seen, results = _run_scripted(replies, settings)
    waits = [s.seconds for s in seen if isinstance(s, Wait)]
    assert waits == [1.0, 1.0, 1.5, 2.0, 2.0]  # retry, then polls backing off to the cap
    assert [r.text for r in results] == ["x"]


def test_a_batch_that_ended_without_result_files_reports_every_request_missing() -> None:
    replies = [
        _json(200, {"id": "f1"}),
        _json(200, {"id": "b1"}),
        _json(200, {"id": "b1", "status": "cancelled"}),  # cancelled elsewhere, nothing run
    ]
    _, results = _run_scripted(replies, PollSettings(poll_interval_s=1.0))
    assert [(r.ok, r.error_type) for r in results] == [(False, "missing")]


def test_a_job_that_outlives_its_timeout_cancels() -> None:
    running = _json(200, {"id": "b1", "status": "in_progress"})
    replies = [_json(200, {"id": "f1"}), _json(200, {"id": "b1"})] + [running] * 10
    replies.append(_json(200, {"id": "b1", "status": "cancelling"}))
    with pytest.raises(BatchTimeoutError):
        _run_scripted(replies, PollSettings(poll_interval_s=1.0, timeout_s=3.0))


def test_the_imitation_refuses_malformed_input_with_the_providers_error_shapes(
    batch_server: ImitationBatchServer,
) -> None:
    openai_headers = {"Authorization": f"Bearer {batch_server.api_key}"}
    wrong_purpose = _HTTP.post(
        batch_server.openai_base_url + "/files",
        files={"file": ("x.jsonl", b"{}\n", "application/jsonl")},
        data={"purpose": "fine-tune"},
        headers=openai_headers,
    )
    assert wrong_purpose.status_code == 400
    assert wrong_purpose.json()["error"]["param"] == "purpose"
    no_file = _HTTP.post(
        batch_server.openai_base_url + "/batches",
        json={
            "input_file_id": "file-missing",
            "endpoint": "/v1/chat/completions",
            "completion_window": "24h",
        },
        headers=openai_headers,
    )
    assert no_file.status_code == 404
    assert no_file.json()["error"]["type"] == "invalid_request_error"
    bad_id = _HTTP.post(
        batch_server.anthropic_base_url + "/v1/messages/batches",
        json={"requests": [{"custom_id": "no spaces allowed", "params": {}}]},
        headers={"x-api-key": batch_server.api_key, "anthropic-version": "2023-06-01"},
    )
    assert bad_id.status_code == 400
    assert bad_id.json()["type"] == "error"
    assert bad_id.json()["error"]["type"] == "invalid_request_error"
    no_max_tokens = _HTTP.post(
        batch_server.anthropic_base_url + "/v1/messages",
        json={"model": "m", "messages": [{"role": "user", "content": "hi"}]},
        headers={"x-api-key": batch_server.api_key, "anthropic-version": "2023-06-01"},
    )
    assert no_max_tokens.status_code == 400 and "max_tokens" in no_max_tokens.text


@pytest.mark.slow  # importing both SDKs takes seconds
def test_the_official_sdks_read_the_imitation() -> None:
    openai = pytest.importorskip("openai")
    anthropic = pytest.importorskip("anthropic")
    with ImitationBatchServer(processing_s=0.0) as batch_server:
        client = openai.OpenAI(api_key=batch_server.api_key, base_url=batch_server.openai_base_url)
        line = OpenAIBatchAPI.input_file(batch_requests("gpt-4o-mini", _conversations(["hi"])))
        uploaded = client.files.create(file=("in.jsonl", line), purpose="batch")
        batch = client.batches.create(
            input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h"
        )
        batch = client.batches.retrieve(batch.id)
        assert batch.status == "completed" and batch.request_counts.completed == 1
        assert "chat.completion" in client.files.content(batch.output_file_id).text
        claude = anthropic.Anthropic(
            api_key=batch_server.api_key, base_url=batch_server.anthropic_base_url
        )
        entry = AnthropicBatchAPI.request_entry(
            BatchRequest("r0", "claude-haiku-4-5", ({"role": "user", "content": "hi"},))
        )
        created = claude.messages.batches.create(requests=[entry])  # type: ignore[list-item]
        assert claude.messages.batches.retrieve(created.id).processing_status == "ended"
        [result] = list(claude.messages.batches.results(created.id))
        assert result.result.type == "succeeded"
        assert result.result.message.usage.output_tokens > 0


def test_bad_arguments_name_what_is_wrong() -> None:
    with pytest.raises(ValueError, match="poll_interval_s"):
        PollSettings(poll_interval_s=-1)
    with pytest.raises(ValueError, match="custom_id"):
        BatchJob(
            OpenAIBatchAPI("sk"),
            [BatchRequest("a", "m", ({"role": "user", "content": "x"},))] * 2,
        )
    with pytest.raises(ValueError, match="requests"):
        BatchJob(OpenAIBatchAPI("sk"), [])
    too_many = batch_requests("m", [[{"role": "user", "content": "x"}]] * 50_001)
    with pytest.raises(ValueError, match="at most 50,000"):
        BatchJob(OpenAIBatchAPI("sk"), too_many)
    with pytest.raises(ValueError, match="api_key"):
        OpenAIBatchAPI("")
    with pytest.raises(ValueError, match="messages"):
        BatchRequest("a", "m", ())
    assert "sk-secret" not in repr(OpenAIBatchAPI("sk-secret"))
    assert BatchResult("x", error="e").ok is False


# -- a deferred batch of framework runs (what both faces drive) ---------------------------


class _Runs:
    """A face's runs, recorded; ``refuse``: the calls whose start a budget refuses."""

    def __init__(self, refuse: tuple[int, ...] = ()) -> None:
        self.refuse = refuse
        self.events: list[tuple[str, int, object]] = []

    def start(self, index: int) -> None:
        self.events.append(("start", index, None))
        if index in self.refuse:
            raise BudgetExceededError(f"call {index} is over budget")

    def end(self, index: int, result: BatchResult, batch_id: str | None) -> str:
        self.events.append(("end", index, batch_id))
        return result.text

    def fail(self, index: int, error: BaseException) -> None:
        self.events.append(("fail", index, type(error).__name__))


class _AsyncRuns:
    def __init__(self, runs: _Runs) -> None:
        self.runs = runs

    async def start(self, index: int) -> None:
        self.runs.start(index)

    async def end(self, index: int, result: BatchResult, batch_id: str | None) -> str:
        return self.runs.end(index, result, batch_id)

    async def fail(self, index: int, error: BaseException) -> None:
        self.runs.fail(index, error)


def _deferred(
    batch_server: ImitationBatchServer, key: str | None = None, **options: object
) -> DeferredBatch:
    api = batch_api("openai", key or batch_server.api_key, batch_server.openai_base_url)
    requests = batch_requests("gpt-4o-mini", _conversations(QUESTIONS[:3]))
    return DeferredBatch(api, requests, DeferredOptions(**{**FAST, **options}))  # type: ignore[arg-type]


def test_a_deferred_batch_starts_every_run_before_submitting_and_ends_each_with_its_answer(
    batch_server: ImitationBatchServer,
) -> None:
    runs = _Runs()
    batch = _deferred(batch_server)
    answers = batch.run(runs)
    assert len(answers) == 3 and all(isinstance(a, str) and a for a in answers)
    assert [e[0] for e in runs.events] == ["start"] * 3 + ["end"] * 3
    assert {e[2] for e in runs.events[3:]} == {batch.batch_id} != {None}
    assert len(batch_server.submitted) == 1


def test_a_budget_refusal_stops_the_batch_before_anything_is_submitted(
    batch_server: ImitationBatchServer,
) -> None:
    runs = _Runs(refuse=(1,))
    with pytest.raises(BudgetExceededError, match="call 1"):
        _deferred(batch_server).run(runs)
    assert batch_server.submitted == []
    assert sorted(e[:2] for e in runs.events if e[0] == "fail") == [
        ("fail", 0),
        ("fail", 1),
        ("fail", 2),
    ]


async def test_with_return_exceptions_a_refused_call_keeps_its_refusal_and_the_others_run() -> None:
    sent: list[str] = []

    def record(body: dict) -> None:
        sent.append(json.dumps(body))

    with ImitationBatchServer(processing_s=0.01, fail_request=record) as batch_server:
        runs = _Runs(refuse=(1,))
        answers = await _deferred(batch_server, return_exceptions=True).arun(_AsyncRuns(runs))
    assert isinstance(answers[1], BudgetExceededError)
    assert isinstance(answers[0], str) and isinstance(answers[2], str)
    assert ("fail", 1, "BudgetExceededError") in runs.events
    assert len(sent) == 2 and not any("1 times" in body for body in sent)  # admitted only


@pytest.mark.parametrize("return_exceptions", [False, True])
def test_a_batch_that_fails_as_a_whole_fails_every_run(
    batch_server: ImitationBatchServer, return_exceptions: bool
) -> None:
    runs = _Runs()
    batch = _deferred(batch_server, key="sk-wrong", return_exceptions=return_exceptions)
    if return_exceptions:
        answers = batch.run(runs)
        assert [type(a) for a in answers] == [BatchAPIError] * 3
    else:
        with pytest.raises(BatchAPIError):
            batch.run(runs)
    assert [e for e in runs.events if e[0] == "fail"] == [
        ("fail", i, "BatchAPIError") for i in range(3)
    ]


def test_a_request_the_provider_did_not_answer_fails_its_run_alone() -> None:
    def refuse_question_1(body: dict) -> str | None:
        return "no ones here" if "1 times" in json.dumps(body) else None

    with ImitationBatchServer(processing_s=0.01, fail_request=refuse_question_1) as batch_server:
        runs = _Runs()
        answers = _deferred(batch_server, return_exceptions=True).run(runs)
        assert isinstance(answers[1], BatchRequestError)
        assert [e[:2] for e in runs.events[3:]] == [("end", 0), ("fail", 1), ("end", 2)]
        with pytest.raises(BatchRequestError):
            _deferred(batch_server).run(_Runs())


def test_bad_poll_settings_fail_before_any_run_starts(batch_server: ImitationBatchServer) -> None:
    with pytest.raises(ValueError, match="poll_interval_s"):
        _deferred(batch_server, poll_interval_s=0)
    with pytest.raises(
        TypeError, match="run_batch\\(\\) got unexpected keyword arguments: \\['poll_s'\\]"
    ):
        run_batch(_api(batch_server, "openai"), [], poll_s=1)


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_the_imitation_refuses_a_model_no_provider_serves_and_unknown_fields(
    batch_server: ImitationBatchServer, provider: str
) -> None:
    hi = ({"role": "user", "content": "hi"},)
    common = {"max_tokens": 20, "temperature": 0.2, "top_p": 0.9, "metadata": {"user_id": "u"}}
    requests = [
        BatchRequest("router", "router:gpt-4o-mini|gpt-4o", hi),
        BatchRequest("spaced", "gpt 4o mini", hi),
        BatchRequest("misspelt", "gpt-4o-mini", hi, {"poll_intervall_s": 0.02}),
        BatchRequest("streamed", "gpt-4o-mini", hi, {"stream": True}),
        BatchRequest("plain", "gpt-4o-mini", hi, common),
    ]
    if provider == "openai":  # one model per OpenAI batch: each its own
        results = [run_batch(_api(batch_server, provider), [r], **FAST)[0] for r in requests]
    else:
        results = run_batch(_api(batch_server, provider), requests, **FAST)
    by_id = {r.custom_id: r for r in results}
    for custom_id, model in (("router", "router:gpt-4o-mini|gpt-4o"), ("spaced", "gpt 4o mini")):
        assert not by_id[custom_id].ok and model in str(by_id[custom_id].error)
    assert not by_id["misspelt"].ok and "poll_intervall_s" in str(by_id["misspelt"].error)
    assert not by_id["streamed"].ok and "stream" in str(by_id["streamed"].error)
    assert by_id["plain"].ok
    fine_tuned = BatchRequest("ft", "ft:gpt-4o-mini:acme::abc123", hi)
    assert run_batch(_api(batch_server, provider), [fine_tuned], **FAST)[0].ok


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_the_imitation_answers_a_forced_tool_call_in_the_providers_shape(
    batch_server: ImitationBatchServer, provider: str
) -> None:
    tool = {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "The weather in a city.",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
    }
    request = BatchRequest(
        "r0",
        "gpt-4o-mini",
        ({"role": "user", "content": "What is the weather in Paris?"},),
        {"tools": [tool], "tool_choice": "required"},
    )
    [result] = run_batch(_api(batch_server, provider), [request], **FAST)
    assert [call.name for call in result.tool_calls] == ["get_weather"]
    assert result.tool_calls[0].args == {"city": "Paris"}


def test_a_client_that_hangs_up_mid_call_leaves_no_traceback(
    capfd: pytest.CaptureFixture[str],
) -> None:
    import socket
    import struct
    import time

    with ImitationBatchServer() as batch_server:
        host, port = batch_server.url.removeprefix("http://").split(":")
        for _ in range(3):
            client = socket.create_connection((host, int(port)))
            client.sendall(
                b"GET /v1/batches/batch_1 HTTP/1.1\r\nHost: x\r\n"
                b"Authorization: Bearer " + batch_server.api_key.encode() + b"\r\n\r\n"
            )
            # Close with a reset (as a cancelled client's socket may): the batch_server's
            # read or write of this call then fails.
            client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            client.close()
        time.sleep(0.2)
        assert _HTTP.get(batch_server.url + "/v1/batches/none").status_code == 401  # still serving
    assert "Traceback" not in capfd.readouterr().err
