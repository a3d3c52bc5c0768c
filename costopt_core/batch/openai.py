"""OpenAI's Batch API for chat completions, as HTTP call descriptions (no I/O).

Example:
    >>> from costopt_core.batch.requests import BatchRequest
    >>> api = OpenAIBatchAPI(api_key="sk-test")
    >>> hi = ({"role": "user", "content": "hi"},)
    >>> line = api.request_line(BatchRequest("r-0", "gpt-4o-mini", hi, {"max_tokens": 5}))
    >>> line["url"], line["body"]["model"], line["body"]["max_tokens"]
    ('/v1/chat/completions', 'gpt-4o-mini', 5)

The flow (https://platform.openai.com/docs/guides/batch): upload the requests as a JSONL
file (``POST /files``, ``purpose=batch``; one ``{custom_id, method, url, body}`` per
line), create the batch (``POST /batches``, ``completion_window="24h"``), poll
``GET /batches/{id}`` (``validating``, ``in_progress``, ``finalizing``, then
``completed``, ``expired``, ``cancelled`` or ``failed``), then read the output file
(answered requests) and the error file (the others) with ``GET /files/{id}/content``.
An expired or cancelled batch still has files: what was answered is kept.
"""

from __future__ import annotations

import json
from collections.abc import Generator, Mapping, Sequence
from typing import Any

from costopt_core.batch.requests import BatchAPIError, BatchRequest, BatchResult, ToolCall
from costopt_core.batch.wire import BatchEndpoint, BatchStatus, HttpCall, HttpReply, check_reply

DEFAULT_BASE_URL = "https://api.openai.com/v1"
ENDPOINT = "/v1/chat/completions"

_RUNNING = frozenset({"validating", "in_progress", "finalizing", "cancelling"})
#: Ended with result files (some requests may have been answered).
_ENDED = frozenset({"completed", "expired", "cancelled"})


class OpenAIBatchAPI(BatchEndpoint):
    """OpenAI's (or an OpenAI-compatible server's) Batch API for ``/v1/chat/completions``.

    ``base_url`` is the API root as the OpenAI SDK and ``ChatOpenAI`` take it (ending in
    ``/v1``); the key is sent as a bearer token and never shown in ``repr``.
    """

    name = "openai"
    max_requests = 50_000
    default_base_url = DEFAULT_BASE_URL

    def __init__(
        self,
        api_key: str,
        base_url: str | None = None,
        *,
        organization: str | None = None,
        extra_headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(api_key, base_url, extra_headers)
        self._organization = organization

    def headers(self) -> dict[str, str]:
        headers = {"Authorization": f"Bearer {self._api_key}", **self._extra_headers}
        if self._organization:
            headers["OpenAI-Organization"] = self._organization
        return headers

    # -- the wire format ------------------------------------------------------------------

    @staticmethod
    def request_line(request: BatchRequest) -> dict[str, Any]:
        """One line of the batch's input file."""
        body = {"model": request.model, "messages": [dict(m) for m in request.messages]}
        body.update(request.params)
        return {"custom_id": request.custom_id, "method": "POST", "url": ENDPOINT, "body": body}

    @staticmethod
    def input_file(requests: Sequence[BatchRequest]) -> bytes:
        """The JSONL input file of ``requests``."""
        lines = (json.dumps(OpenAIBatchAPI.request_line(r), ensure_ascii=False) for r in requests)
        return ("\n".join(lines) + "\n").encode("utf-8")

    @staticmethod
    def parse_result_line(line: Mapping[str, Any]) -> BatchResult:
        """A line of the output or error file as a result.

        Example:
            >>> OpenAIBatchAPI.parse_result_line({"custom_id": "r-1", "response": None,
            ...     "error": {"code": "batch_expired", "message": "not run in time"}}).error_type
            'batch_expired'
        """
        custom_id = str(line.get("custom_id"))
        error = line.get("error")
        response = line.get("response") or {}
        body = response.get("body") or {}
        if error:
            return BatchResult(
                custom_id, error=str(error.get("message")), error_type=str(error.get("code"))
            )
        status = response.get("status_code", 200)
        if status != 200 or "error" in body:
            failure = body.get("error") or {}
            return BatchResult(
                custom_id,
                raw=body,
                error=str(failure.get("message") or f"HTTP {status}"),
                error_type=str(failure.get("type") or failure.get("code") or status),
            )
        choice = (body.get("choices") or [{}])[0]
        message = choice.get("message") or {}
        calls = tuple(
            ToolCall(
                str(c.get("id")),
                str(c["function"]["name"]),
                json.loads(c["function"].get("arguments") or "{}"),
            )
            for c in message.get("tool_calls") or ()
            if c.get("type", "function") == "function"
        )
        text = message.get("content") or ""
        return BatchResult.answered(custom_id, body, text, calls, choice.get("finish_reason"))

    # -- the flow -------------------------------------------------------------------------

    def submit(self, requests: Sequence[BatchRequest]) -> Generator[HttpCall, HttpReply, str]:
        upload = yield HttpCall(
            "POST",
            "/files",
            files={"file": ("costopt-batch.jsonl", self.input_file(requests), "application/jsonl")},
            data={"purpose": "batch"},
        )
        file_id = check_reply(upload, "POST /files").json()["id"]
        created = yield HttpCall(
            "POST",
            "/batches",
            json={"input_file_id": file_id, "endpoint": ENDPOINT, "completion_window": "24h"},
        )
        return str(check_reply(created, "POST /batches").json()["id"])

    def status_call(self, batch_id: str) -> HttpCall:
        return HttpCall("GET", f"/batches/{batch_id}")

    def read_status(self, batch_id: str, reply: HttpReply) -> BatchStatus:
        batch = check_reply(reply, f"GET /batches/{batch_id}").json()
        state = str(batch.get("status"))
        if state == "failed":
            errors = (batch.get("errors") or {}).get("data") or []
            reasons = "; ".join(
                f"{e.get('code')}: {e.get('message')}"
                + (f" (line {e['line']})" if e.get("line") else "")
                for e in errors
            )
            raise BatchAPIError(
                f"batch {batch_id} failed: {reasons or 'no reason given'}", error_type="failed"
            )
        if state not in _RUNNING and state not in _ENDED:
            raise BatchAPIError(f"batch {batch_id}: unknown status {state!r}")
        return BatchStatus(batch_id, state in _ENDED, state, batch)

    def results(self, status: BatchStatus) -> Generator[HttpCall, HttpReply, list[BatchResult]]:
        results: list[BatchResult] = []
        for key in ("output_file_id", "error_file_id"):
            file_id = status.detail.get(key)
            if not file_id:
                continue
            reply = yield HttpCall("GET", f"/files/{file_id}/content")
            text = check_reply(reply, f"GET /files/{file_id}/content").body.decode("utf-8")
            results.extend(self.parse_result_line(json.loads(s)) for s in text.splitlines() if s)
        return results

    def cancel_call(self, batch_id: str) -> HttpCall:
        return HttpCall("POST", f"/batches/{batch_id}/cancel")


__all__ = ["DEFAULT_BASE_URL", "ENDPOINT", "OpenAIBatchAPI"]
