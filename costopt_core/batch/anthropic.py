"""Anthropic's Message Batches API, as HTTP call descriptions (no I/O).

Example:
    >>> from costopt_core.batch.requests import BatchRequest
    >>> request = BatchRequest("r-0", "claude-haiku-4-5", (
    ...     {"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}),
    ...     {"max_tokens": 64, "stop": ["END"]})
    >>> params = AnthropicBatchAPI(api_key="sk-ant-test").request_entry(request)["params"]
    >>> params["system"], params["messages"], params["stop_sequences"]
    ('Be brief.', [{'role': 'user', 'content': 'hi'}], ['END'])

The flow (https://docs.anthropic.com/en/docs/build-with-claude/batch-processing): create
the batch with ``POST /v1/messages/batches`` (``{"requests": [{custom_id, params}]}``,
``params`` being a Messages API request), poll ``GET /v1/messages/batches/{id}``
(``processing_status`` ``in_progress``, ``canceling``, ``ended``), then read the JSONL at
its ``results_url``: one ``{custom_id, result: {type: succeeded | errored | canceled |
expired, ...}}`` per request, in any order.

Requests come in OpenAI's chat format and are turned into Anthropic's here: system
messages become ``system``, assistant tool calls ``tool_use`` blocks, tool messages
``tool_result`` blocks, OpenAI-format tools ``{name, description, input_schema}``, an
OpenAI ``response_format`` of type ``json_schema`` ``output_config.format``.
``max_tokens`` is required by Anthropic: without one the engine's default output limit
(the one budgets reserve) is sent.
"""

from __future__ import annotations

import json
from collections.abc import Generator, Mapping, Sequence
from typing import Any

from costopt_core.batch.requests import BatchRequest, BatchResult, ToolCall
from costopt_core.batch.wire import BatchEndpoint, BatchStatus, HttpCall, HttpReply, check_reply
from costopt_core.budget_gate import DEFAULT_MAX_OUTPUT_TOKENS

DEFAULT_BASE_URL = "https://api.anthropic.com"
API_VERSION = "2023-06-01"
BATCHES = "/v1/messages/batches"


class AnthropicBatchAPI(BatchEndpoint):
    """Anthropic's Message Batches API (``base_url`` as ``ChatAnthropic`` takes it, without
    ``/v1``); the key is sent as ``x-api-key`` and never shown in ``repr``."""

    name = "anthropic"
    max_requests = 100_000
    default_base_url = DEFAULT_BASE_URL

    def __init__(
        self,
        api_key: str,
        base_url: str | None = None,
        *,
        api_version: str = API_VERSION,
        extra_headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(api_key, base_url, extra_headers)
        self._api_version = api_version

    def headers(self) -> dict[str, str]:
        return {
            "x-api-key": self._api_key,
            "anthropic-version": self._api_version,
            **self._extra_headers,
        }

    # -- the wire format ------------------------------------------------------------------

    @staticmethod
    def request_entry(request: BatchRequest) -> dict[str, Any]:
        """The ``{custom_id, params}`` entry of ``request``."""
        system, messages = _messages(request.messages)
        settings = dict(request.params)
        params: dict[str, Any] = {
            "model": request.model,
            "max_tokens": settings.pop("max_tokens", None)
            or settings.pop("max_completion_tokens", None)
            or DEFAULT_MAX_OUTPUT_TOKENS,
            "messages": messages,
        }
        settings.pop("max_completion_tokens", None)
        if system:
            params["system"] = system
        stop = settings.pop("stop", None)
        if stop:
            params["stop_sequences"] = [stop] if isinstance(stop, str) else list(stop)
        tools = settings.pop("tools", None)
        if tools:
            params["tools"] = [_tool(t) for t in tools]
        choice = settings.pop("tool_choice", None)
        if choice is not None:
            params["tool_choice"] = _tool_choice(choice)
        schema = _response_schema(settings.pop("response_format", None))
        if schema is not None:  # OpenAI's JSON-schema answers: Anthropic's output format
            output = dict(settings.pop("output_config", None) or {})
            params["output_config"] = {
                **output,
                "format": {"type": "json_schema", "schema": schema},
            }
        params.update(settings)
        return {"custom_id": request.custom_id, "params": params}

    @staticmethod
    def parse_result_line(line: Mapping[str, Any]) -> BatchResult:
        """A line of the results file as a result.

        Example:
            >>> AnthropicBatchAPI.parse_result_line({"custom_id": "r-1", "result": {
            ...     "type": "errored", "error": {"type": "error", "error": {
            ...     "type": "invalid_request_error", "message": "bad"}}}}).error_type
            'invalid_request_error'
        """
        custom_id = str(line.get("custom_id"))
        result = line.get("result") or {}
        kind = result.get("type")
        if kind != "succeeded":
            error = (result.get("error") or {}).get("error") or {}
            return BatchResult(
                custom_id,
                error=str(error.get("message") or f"request {kind}"),
                error_type=str(error.get("type") or kind),
            )
        message = result.get("message") or {}
        texts: list[str] = []
        calls: list[ToolCall] = []
        for block in message.get("content") or ():
            if block.get("type") == "text":
                texts.append(str(block.get("text", "")))
            elif block.get("type") == "tool_use":
                calls.append(ToolCall(str(block["id"]), str(block["name"]), block.get("input", {})))
        text = "".join(texts)
        return BatchResult.answered(custom_id, message, text, calls, message.get("stop_reason"))

    # -- the flow -------------------------------------------------------------------------

    def submit(self, requests: Sequence[BatchRequest]) -> Generator[HttpCall, HttpReply, str]:
        reply = yield HttpCall(
            "POST", BATCHES, json={"requests": [self.request_entry(r) for r in requests]}
        )
        return str(check_reply(reply, f"POST {BATCHES}").json()["id"])

    def status_call(self, batch_id: str) -> HttpCall:
        return HttpCall("GET", f"{BATCHES}/{batch_id}")

    def read_status(self, batch_id: str, reply: HttpReply) -> BatchStatus:
        batch = check_reply(reply, f"GET {BATCHES}/{batch_id}").json()
        state = str(batch.get("processing_status"))
        return BatchStatus(batch_id, state == "ended", state, batch)

    def results(self, status: BatchStatus) -> Generator[HttpCall, HttpReply, list[BatchResult]]:
        url = status.detail.get("results_url") or f"{BATCHES}/{status.batch_id}/results"
        reply = yield HttpCall("GET", str(url))
        text = check_reply(reply, f"GET {BATCHES}/{status.batch_id}/results").body.decode("utf-8")
        return [self.parse_result_line(json.loads(s)) for s in text.splitlines() if s]

    def cancel_call(self, batch_id: str) -> HttpCall:
        return HttpCall("POST", f"{BATCHES}/{batch_id}/cancel")


# -- OpenAI chat format -> Anthropic Messages format --------------------------------------


def _messages(
    messages: Sequence[Mapping[str, Any]],
) -> tuple[str, list[dict[str, Any]]]:
    system: list[str] = []
    out: list[dict[str, Any]] = []
    for message in messages:
        role = message.get("role")
        if role in ("system", "developer"):
            system.append(_text(message.get("content")))
            continue
        if role == "tool":
            block = {
                "type": "tool_result",
                "tool_use_id": message.get("tool_call_id"),
                "content": _text(message.get("content")),
            }
            # Consecutive tool results answer one assistant turn: one user message.
            if out and out[-1]["role"] == "user" and _is_tool_results(out[-1]["content"]):
                out[-1]["content"].append(block)
            else:
                out.append({"role": "user", "content": [block]})
            continue
        content = _content(message.get("content"))
        if role == "assistant" and message.get("tool_calls"):
            blocks = [{"type": "text", "text": content}] if isinstance(content, str) else content
            blocks = [b for b in blocks if b.get("type") != "text" or b.get("text")]
            for call in message["tool_calls"]:
                function = call.get("function") or {}
                blocks.append(
                    {
                        "type": "tool_use",
                        "id": call.get("id"),
                        "name": function.get("name"),
                        "input": json.loads(function.get("arguments") or "{}"),
                    }
                )
            content = blocks
        out.append({"role": "assistant" if role == "assistant" else "user", "content": content})
    return "\n\n".join(s for s in system if s), out


def _is_tool_results(content: Any) -> bool:
    return isinstance(content, list) and all(b.get("type") == "tool_result" for b in content)


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    return "".join(
        str(p.get("text", "")) for p in content or () if isinstance(p, Mapping) and "text" in p
    )


def _content(content: Any) -> str | list[dict[str, Any]]:
    if isinstance(content, str) or content is None:
        return content or ""
    blocks: list[dict[str, Any]] = []
    for part in content:
        kind = part.get("type")
        if kind == "text":
            blocks.append({"type": "text", "text": part.get("text", "")})
        elif kind == "image_url":
            url = str((part.get("image_url") or {}).get("url", ""))
            if url.startswith("data:"):
                media, _, data = url[5:].partition(";base64,")
                source = {"type": "base64", "media_type": media, "data": data}
            else:
                source = {"type": "url", "url": url}
            blocks.append({"type": "image", "source": source})
        else:  # already an Anthropic block
            blocks.append(dict(part))
    return blocks


def _tool(tool: Mapping[str, Any]) -> dict[str, Any]:
    function = tool.get("function")
    if tool.get("type") != "function" or not isinstance(function, Mapping):
        return dict(tool)  # already Anthropic's format
    spec = {"name": function["name"], "input_schema": function.get("parameters") or {}}
    if function.get("description"):
        spec["description"] = function["description"]
    return spec


def _response_schema(response_format: Any) -> dict[str, Any] | None:
    if isinstance(response_format, Mapping) and response_format.get("type") == "json_schema":
        spec = response_format.get("json_schema")
        return dict(spec.get("schema") or {}) if isinstance(spec, Mapping) else None
    return None


def _tool_choice(choice: Any) -> dict[str, Any]:
    if choice in ("auto", None):
        return {"type": "auto"}
    if choice in ("required", "any", True):
        return {"type": "any"}
    if choice == "none":
        return {"type": "none"}
    if isinstance(choice, str):
        return {"type": "tool", "name": choice}
    name = (choice.get("function") or {}).get("name") if isinstance(choice, Mapping) else None
    return {"type": "tool", "name": name} if name else dict(choice)


__all__ = ["API_VERSION", "BATCHES", "DEFAULT_BASE_URL", "AnthropicBatchAPI"]
