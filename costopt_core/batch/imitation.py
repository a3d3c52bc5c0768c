"""A local imitation of OpenAI's Batch API and Anthropic's Message Batches API.

Example:
    >>> import json, urllib.request
    >>> with ImitationBatchServer() as server:
    ...     call = urllib.request.Request(
    ...         server.openai_base_url + "/chat/completions",
    ...         data=json.dumps({"model": "gpt-4o-mini",
    ...                          "messages": [{"role": "user", "content": "hi"}]}).encode(),
    ...         headers={"Authorization": "Bearer " + server.api_key,
    ...                  "Content-Type": "application/json"})
    ...     answer = json.load(urllib.request.urlopen(call))
    >>> answer["object"], answer["usage"]["prompt_tokens"]
    ('chat.completion', 5)

A real HTTP server on 127.0.0.1 (a random free port, a thread of this process) for tests
and offline examples: it takes the providers' request shapes, checks them and refuses
malformed ones with the provider's error shapes (OpenAI ``{"error": {message, type,
param, code}}``, Anthropic ``{"type": "error", "error": {type, message}}``), and
answers every request with a deterministic simulated model
(:func:`costopt_core.simulation.simulated_answer`, the same answer and token counts as
the project's simulated LangChain and LlamaIndex models), with usage in each provider's
format. A batch is processed ``processing_s`` seconds after it is created.

Served:

* OpenAI (``openai_base_url``, ending in ``/v1``): ``POST /files`` (multipart,
  ``purpose=batch``), ``GET /files/{id}``, ``GET /files/{id}/content``, ``POST /batches``,
  ``GET /batches/{id}``, ``POST /batches/{id}/cancel``, and ``POST /chat/completions``
  for direct calls.
* Anthropic (``anthropic_base_url``): ``POST /v1/messages/batches``, ``GET .../{id}``,
  ``GET .../{id}/results``, ``POST .../{id}/cancel``, and ``POST /v1/messages``.

``fail_request(body) -> message | None`` makes chosen requests fail (an
``invalid_request_error`` for that request alone). ``submitted`` and ``cancelled`` list
batch ids; ``direct_calls`` counts direct (non-batch) calls. It is an imitation for
tests: no streaming, no real model, everything in memory.
"""

from __future__ import annotations

import email.parser
import itertools
import json
import re
import sys
import threading
import time
import zlib
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from costopt_core.simulation import choose_tool, fill_schema, simulated_answer, truncate_to_tokens
from costopt_core.tokens import estimate_tokens

FailRequest = Callable[[Mapping[str, Any]], "str | None"]

_CUSTOM_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
#: A name a provider could serve: letters, digits, ``.-_/@``; a colon only in an OpenAI
#: fine-tune (``ft:gpt-4o-mini:org::id``). No spaces, no ``router:...|...`` labels.
_MODEL_NAME = re.compile(r"^(?:ft:[A-Za-z0-9._:@-]+|[A-Za-z0-9][A-Za-z0-9._/@-]{0,127})$")
#: The top-level body fields each API takes (others are refused, as the real APIs do).
OPENAI_FIELDS = frozenset(
    {
        "model", "messages", "max_tokens", "max_completion_tokens", "temperature", "top_p",
        "n", "stop", "stream", "stream_options", "presence_penalty", "frequency_penalty",
        "logit_bias", "logprobs", "top_logprobs", "user", "seed", "tools", "tool_choice",
        "parallel_tool_calls", "response_format", "metadata", "store", "service_tier",
        "reasoning_effort", "modalities", "audio", "prediction", "web_search_options",
        "functions", "function_call", "safety_identifier", "prompt_cache_key", "verbosity",
    }
)  # fmt: skip
ANTHROPIC_FIELDS = frozenset(
    {
        "model", "messages", "max_tokens", "system", "metadata", "stop_sequences", "stream",
        "temperature", "top_k", "top_p", "tools", "tool_choice", "thinking", "service_tier",
        "container", "mcp_servers", "context_management", "output_config",
    }
)  # fmt: skip
_OPENAI_ROLES = frozenset({"system", "developer", "user", "assistant", "tool"})
_PER_MESSAGE_TOKENS = 4  # as the simulated models count a chat prompt


class _Refused(Exception):
    """A request refused with an HTTP status and the provider's error body."""

    def __init__(self, status: int, body: dict[str, Any]) -> None:
        super().__init__(body)
        self.status = status
        self.body = body


def _openai_error(
    status: int, message: str, *, code: str | None = None, param: Any = None
) -> _Refused:
    kind = "invalid_request_error" if status < 500 else "server_error"
    return _Refused(
        status, {"error": {"message": message, "type": kind, "param": param, "code": code}}
    )


def _anthropic_error(status: int, message: str, kind: str = "invalid_request_error") -> _Refused:
    return _Refused(status, {"type": "error", "error": {"type": kind, "message": message}})


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            str(p.get("text", "")) for p in content if isinstance(p, dict) and "text" in p
        )
    return ""


def _response_schema(response_format: Any) -> dict[str, Any] | None:
    """The JSON schema of an OpenAI ``response_format`` of type ``json_schema``."""
    if isinstance(response_format, dict) and response_format.get("type") == "json_schema":
        spec = response_format.get("json_schema")
        return (spec.get("schema") or {}) if isinstance(spec, dict) else {}
    return None


def _choice_of(tool_choice: Any) -> Any:
    """Anthropic's ``tool_choice`` as the simulated models take it (OpenAI's words)."""
    if not isinstance(tool_choice, dict):
        return None
    kind = tool_choice.get("type")
    return tool_choice.get("name") if kind == "tool" else {"any": "any", "none": "none"}.get(kind)


def _tool_call(
    tools: Mapping[str, dict[str, Any]], question: str, choice: Any, after_tool: bool
) -> tuple[str, dict[str, Any], str] | None:
    """The tool call the simulated models make (name, arguments, id), if any: none right
    after a tool result, as the project's simulated chat models."""
    if not tools or after_tool:
        return None
    name = choose_tool(list(tools), question, choice)
    if name is None or name not in tools:
        return None
    args = fill_schema(tools[name], question)
    return name, args, f"call_{zlib.crc32(f'{name}|{question}'.encode()):08x}"


def _simulate(
    model: str, texts: list[str], question: str, max_tokens: Any, stop: Any
) -> tuple[str, str, int, int]:
    """Answer text, finish kind ("stop"/"length"), prompt and answer tokens."""
    answer = simulated_answer(model, question)
    finish = "stop"
    for token in [stop] if isinstance(stop, str) else stop or ():
        if token and token in answer:
            answer = answer[: answer.index(token)]
    if isinstance(max_tokens, int):
        cut = truncate_to_tokens(answer, max_tokens)
        if cut != answer:
            answer, finish = cut, "length"
    answer = answer or "…"
    prompt = sum(estimate_tokens(t) + _PER_MESSAGE_TOKENS for t in texts)
    return answer, finish, prompt, max(1, estimate_tokens(answer))


class _QuietServer(ThreadingHTTPServer):
    """Says nothing when a client hangs up mid-call (a cancelled task, a closed client):
    a provider's server would not print a traceback in the caller's terminal either."""

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)


class ImitationBatchServer:
    """Both providers' batch APIs (and direct chat endpoints) on 127.0.0.1.

    Use it as a context manager (or ``start()`` / ``close()``).
    """

    def __init__(
        self,
        *,
        processing_s: float = 0.05,
        api_key: str = "sk-imitation",
        fail_request: FailRequest | None = None,
    ) -> None:
        if not isinstance(processing_s, int | float) or processing_s < 0:
            raise ValueError(f"processing_s must be a number >= 0, got {processing_s!r}")
        self.processing_s = float(processing_s)
        self.api_key = api_key
        self.fail_request = fail_request
        self.submitted: list[str] = []
        self.cancelled: list[str] = []
        self.direct_calls = 0
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._files: dict[str, dict[str, Any]] = {}
        self._batches: dict[str, dict[str, Any]] = {}
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ------------------------------------------------------------------------

    def start(self) -> ImitationBatchServer:
        if self._server is not None:
            return self
        imitation = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                imitation._serve(self, "GET")

            def do_POST(self) -> None:
                imitation._serve(self, "POST")

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = _QuietServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="imitation-batch-server", daemon=True
        )
        self._thread.start()
        return self

    def close(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()

    def __enter__(self) -> ImitationBatchServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("the imitation server is not started: use start() or `with`")
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def openai_base_url(self) -> str:
        """The base URL to give an OpenAI client (``.../v1``)."""
        return self.url + "/v1"

    @property
    def anthropic_base_url(self) -> str:
        """The base URL to give an Anthropic client."""
        return self.url

    def base_url(self, provider: str) -> str:
        """The base URL of ``provider``'s imitation ("openai" or "anthropic")."""
        return self.openai_base_url if provider == "openai" else self.anthropic_base_url

    def client_options(self, provider: str = "openai") -> dict[str, str]:
        """What a deferred batch needs to reach ``provider``'s imitation: ``provider``,
        ``base_url`` and ``api_key`` (``deferred_batch(model, inputs, **options)``)."""
        return {"provider": provider, "base_url": self.base_url(provider), "api_key": self.api_key}

    # -- HTTP -----------------------------------------------------------------------------

    def _serve(self, handler: BaseHTTPRequestHandler, method: str) -> None:
        path = handler.path.split("?", 1)[0]
        anthropic = path.startswith("/v1/messages")
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else b""
        try:
            self._authenticate(handler, anthropic)
            status, payload, content_type = self._route(method, path, handler, body)
        except _Refused as refused:
            status, payload, content_type = refused.status, refused.body, "application/json"
        except Exception as exc:  # an imitation bug: answer as a provider's 500 would
            error = _anthropic_error if anthropic else _openai_error
            refused = error(500, f"imitation server error: {exc!r}")
            status, payload, content_type = 500, refused.body, "application/json"
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        handler.send_response(status)
        handler.send_header("Content-Type", content_type)
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)

    def _authenticate(self, handler: BaseHTTPRequestHandler, anthropic: bool) -> None:
        if anthropic:
            # The x-api-key header, or a bearer token as recent Anthropic SDKs send it.
            bearer = handler.headers.get("Authorization") == f"Bearer {self.api_key}"
            if handler.headers.get("x-api-key") != self.api_key and not bearer:
                raise _anthropic_error(401, "invalid x-api-key", "authentication_error")
            if not handler.headers.get("anthropic-version"):
                raise _anthropic_error(400, "anthropic-version: header is required")
        elif handler.headers.get("Authorization") != f"Bearer {self.api_key}":
            raise _openai_error(401, "Incorrect API key provided.", code="invalid_api_key")

    def _route(
        self, method: str, path: str, handler: BaseHTTPRequestHandler, body: bytes
    ) -> tuple[int, Any, str]:
        parts = [p for p in path.split("/") if p][1:]  # after "v1"
        json_type = "application/json"
        if parts[:1] == ["messages"]:
            rest = parts[1:]
            if method == "POST" and rest == []:
                return 200, self._anthropic_direct(_json_body(body, anthropic=True)), json_type
            if rest[:1] == ["batches"]:
                if method == "POST" and len(rest) == 1:
                    return 200, self._anthropic_create(_json_body(body, anthropic=True)), json_type
                if method == "GET" and len(rest) == 2:
                    return 200, self._anthropic_batch(rest[1]), json_type
                if method == "GET" and len(rest) == 3 and rest[2] == "results":
                    return 200, self._anthropic_results(rest[1]), "application/binary"
                if method == "POST" and len(rest) == 3 and rest[2] == "cancel":
                    return 200, self._cancel(rest[1], anthropic=True), json_type
            raise _anthropic_error(404, f"Not found: {method} {path}", "not_found_error")
        if method == "POST" and parts == ["chat", "completions"]:
            return 200, self._openai_direct(_json_body(body, anthropic=False)), json_type
        if parts[:1] == ["files"]:
            if method == "POST" and len(parts) == 1:
                return 200, self._upload(handler.headers.get("Content-Type") or "", body), json_type
            if method == "GET" and len(parts) == 2:
                return 200, self._file(parts[1])["object"], json_type
            if method == "GET" and len(parts) == 3 and parts[2] == "content":
                return 200, self._file(parts[1])["content"], "application/octet-stream"
        if parts[:1] == ["batches"]:
            if method == "POST" and len(parts) == 1:
                return 200, self._openai_create(_json_body(body, anthropic=False)), json_type
            if method == "GET" and len(parts) == 2:
                return 200, self._openai_batch(parts[1]), json_type
            if method == "POST" and len(parts) == 3 and parts[2] == "cancel":
                return 200, self._cancel(parts[1], anthropic=False), json_type
        raise _openai_error(404, f"Invalid URL ({method} {path})")

    # -- the simulated model ----------------------------------------------------------------

    def _openai_completion(self, body: Any) -> dict[str, Any]:
        """A chat completion for ``body``; :class:`_Refused` (400) for a malformed one."""
        if not isinstance(body, dict):
            raise _openai_error(400, "The request body must be a JSON object.")
        model, messages = body.get("model"), body.get("messages")
        if not isinstance(model, str) or not model:
            raise _openai_error(400, "you must provide a model parameter", param="model")
        unknown = sorted(set(body) - OPENAI_FIELDS)
        if unknown:
            raise _openai_error(400, f"Unrecognized request argument supplied: {unknown[0]}")
        if body.get("stream"):
            raise _openai_error(400, "stream is not supported in a batch", param="stream")
        if not _MODEL_NAME.match(model):
            raise _openai_error(
                404,
                f"The model `{model}` does not exist or you do not have access to it.",
                code="model_not_found",
            )
        if not isinstance(messages, list) or not messages:
            raise _openai_error(400, "'messages' must be a non-empty array", param="messages")
        for i, message in enumerate(messages):
            if not isinstance(message, dict) or message.get("role") not in _OPENAI_ROLES:
                raise _openai_error(
                    400, f"Invalid value for 'messages[{i}].role'.", param=f"messages[{i}].role"
                )
        limit = body.get("max_completion_tokens", body.get("max_tokens"))
        if limit is not None and (not isinstance(limit, int) or limit < 1):
            raise _openai_error(400, "max_tokens must be an integer >= 1", param="max_tokens")
        refusal = self.fail_request(body) if self.fail_request else None
        if refusal:
            raise _openai_error(400, refusal)
        texts = [_text(m.get("content")) for m in messages]
        users = [t for m, t in zip(messages, texts, strict=True) if m["role"] == "user"]
        question = users[-1] if users else texts[-1]
        answer, finish, prompt, output = _simulate(model, texts, question, limit, body.get("stop"))
        message: dict[str, Any] = {"role": "assistant", "content": answer, "refusal": None}
        schema = _response_schema(body.get("response_format"))
        if schema is not None:
            message["content"] = json.dumps(fill_schema(schema, question), ensure_ascii=False)
        tools = {
            t["function"]["name"]: t["function"].get("parameters") or {}
            for t in body.get("tools") or ()
            if isinstance(t, dict) and isinstance(t.get("function"), dict)
        }
        call = _tool_call(tools, question, body.get("tool_choice"), messages[-1]["role"] == "tool")
        if call is not None:
            name, args, call_id = call
            arguments = json.dumps(args, ensure_ascii=False)
            function = {"name": name, "arguments": arguments}
            message.update(
                content=None, tool_calls=[{"id": call_id, "type": "function", "function": function}]
            )
            finish = "tool_calls"
        return {
            "id": f"chatcmpl-{next(self._ids)}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": message,
                    "logprobs": None,
                    "finish_reason": finish,
                }
            ],
            "usage": {
                "prompt_tokens": prompt,
                "completion_tokens": output,
                "total_tokens": prompt + output,
                "prompt_tokens_details": {"cached_tokens": 0},
                "completion_tokens_details": {"reasoning_tokens": 0},
            },
        }

    def _anthropic_message(self, params: Any) -> dict[str, Any]:
        """A message for ``params``; :class:`_Refused` (400) for a malformed one."""
        if not isinstance(params, dict):
            raise _anthropic_error(400, "params: Input should be an object")
        model, messages, limit = (
            params.get("model"),
            params.get("messages"),
            params.get("max_tokens"),
        )
        if not isinstance(model, str) or not model:
            raise _anthropic_error(400, "model: Field required")
        unknown = sorted(set(params) - ANTHROPIC_FIELDS)
        if unknown:
            raise _anthropic_error(400, f"{unknown[0]}: Extra inputs are not permitted")
        if params.get("stream"):
            raise _anthropic_error(400, "stream: streaming is not supported in a batch")
        if not _MODEL_NAME.match(model):
            raise _anthropic_error(404, f"model: {model}", "not_found_error")
        if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
            raise _anthropic_error(400, "max_tokens: Field required (an integer >= 1)")
        if not isinstance(messages, list) or not messages:
            raise _anthropic_error(400, "messages: at least one message is required")
        for i, message in enumerate(messages):
            if not isinstance(message, dict) or message.get("role") not in ("user", "assistant"):
                raise _anthropic_error(
                    400, f"messages.{i}.role: Input should be 'user' or 'assistant'"
                )
        refusal = self.fail_request(params) if self.fail_request else None
        if refusal:
            raise _anthropic_error(400, refusal)
        system = params.get("system")
        texts = ([_text(system)] if system else []) + [_text(m.get("content")) for m in messages]
        users = [_text(m.get("content")) for m in messages if m["role"] == "user"]
        question = users[-1] if users else texts[-1]
        answer, finish, prompt, output = _simulate(
            model, texts, question, limit, params.get("stop_sequences")
        )
        output_format = (params.get("output_config") or {}).get("format")
        if isinstance(output_format, dict) and output_format.get("type") == "json_schema":
            schema = output_format.get("schema") or {}
            answer = json.dumps(fill_schema(schema, question), ensure_ascii=False)
        content: list[dict[str, Any]] = [{"type": "text", "text": answer}]
        stop_reason = "max_tokens" if finish == "length" else "end_turn"
        tools = {
            t["name"]: t.get("input_schema") or {}
            for t in params.get("tools") or ()
            if isinstance(t, dict) and isinstance(t.get("name"), str)
        }
        last = messages[-1].get("content")
        after_tool = isinstance(last, list) and any(
            isinstance(b, dict) and b.get("type") == "tool_result" for b in last
        )
        call = _tool_call(tools, question, _choice_of(params.get("tool_choice")), after_tool)
        if call is not None:
            name, args, call_id = call
            content = [{"type": "tool_use", "id": call_id, "name": name, "input": args}]
            stop_reason = "tool_use"
        return {
            "id": f"msg_{next(self._ids):06d}",
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": content,
            "stop_reason": stop_reason,
            "stop_sequence": None,
            "usage": {
                "input_tokens": prompt,
                "output_tokens": output,
                "cache_creation_input_tokens": 0,
                "cache_read_input_tokens": 0,
            },
        }

    def _openai_direct(self, body: Any) -> dict[str, Any]:
        with self._lock:
            self.direct_calls += 1
        return self._openai_completion(body)

    def _anthropic_direct(self, params: Any) -> dict[str, Any]:
        with self._lock:
            self.direct_calls += 1
        return self._anthropic_message(params)

    # -- OpenAI files and batches -------------------------------------------------------------

    def _upload(self, content_type: str, body: bytes) -> dict[str, Any]:
        if not content_type.startswith("multipart/form-data"):
            raise _openai_error(
                400, "Expected a multipart/form-data body with 'file' and 'purpose'."
            )
        message = email.parser.BytesParser().parsebytes(
            b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + body
        )
        fields: dict[str, tuple[str | None, bytes]] = {}
        for part in message.get_payload() if message.is_multipart() else ():
            name = part.get_param("name", header="content-disposition")
            if isinstance(name, str):
                fields[name] = (part.get_filename(), part.get_payload(decode=True) or b"")
        purpose = fields.get("purpose", (None, b""))[1].decode()
        if purpose != "batch":
            raise _openai_error(
                400, f"Invalid purpose {purpose!r}: this imitation takes 'batch'.", param="purpose"
            )
        if "file" not in fields:
            raise _openai_error(400, "'file' is a required property", param="file")
        filename, content = fields["file"]
        with self._lock:
            file_id = f"file-{next(self._ids):06d}"
            self._files[file_id] = self._file_entry(
                file_id, filename or "upload.jsonl", content, "batch"
            )
        return self._files[file_id]["object"]

    def _file_entry(
        self, file_id: str, filename: str, content: bytes, purpose: str
    ) -> dict[str, Any]:
        return {
            "content": content,
            "object": {
                "id": file_id,
                "object": "file",
                "bytes": len(content),
                "created_at": int(time.time()),
                "filename": filename,
                "purpose": purpose,
                "status": "processed",
            },
        }

    def _file(self, file_id: str) -> dict[str, Any]:
        with self._lock:
            entry = self._files.get(file_id)
        if entry is None:
            raise _openai_error(404, f"No such File object: {file_id}", param="id")
        return entry

    def _openai_create(self, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise _openai_error(400, "The request body must be a JSON object.")
        if body.get("endpoint") != "/v1/chat/completions":
            raise _openai_error(
                400, "This imitation serves endpoint '/v1/chat/completions'.", param="endpoint"
            )
        if body.get("completion_window") != "24h":
            raise _openai_error(400, "completion_window must be '24h'.", param="completion_window")
        file_id = body.get("input_file_id")
        entry = self._file(file_id) if isinstance(file_id, str) else None
        if entry is None:
            raise _openai_error(400, "input_file_id is required", param="input_file_id")
        lines, errors = _read_input_file(entry["content"])
        now = time.time()
        batch_id = self._register(
            "batch",
            "openai",
            {"lines": lines, "errors": errors},
            lambda batch_id: {
                "id": batch_id,
                "object": "batch",
                "endpoint": "/v1/chat/completions",
                "errors": None,
                "input_file_id": file_id,
                "completion_window": "24h",
                "status": "validating",
                "output_file_id": None,
                "error_file_id": None,
                "created_at": int(now),
                "in_progress_at": None,
                "expires_at": int(now) + 86400,
                "finalizing_at": None,
                "completed_at": None,
                "failed_at": None,
                "expired_at": None,
                "cancelling_at": None,
                "cancelled_at": None,
                "request_counts": {"total": len(lines), "completed": 0, "failed": 0},
                "metadata": body.get("metadata"),
            },
        )
        return self._openai_batch(batch_id)

    def _register(
        self,
        prefix: str,
        provider: str,
        work: dict[str, Any],
        describe: Callable[[str], dict[str, Any]],
    ) -> str:
        """Record a new batch (``work``: what it will answer; ``describe``: the provider's
        object for its id) and return its id."""
        with self._lock:
            batch_id = f"{prefix}_{next(self._ids):06d}"
            self._batches[batch_id] = {
                "provider": provider,
                "created": time.monotonic(),
                **work,
                "cancelled": False,
                "done": None,
                "object": describe(batch_id),
            }
            self.submitted.append(batch_id)
        return batch_id

    def _batch(self, batch_id: str, anthropic: bool) -> dict[str, Any]:
        batch = self._batches.get(batch_id)
        if batch is None or (batch["provider"] == "anthropic") != anthropic:
            if anthropic:
                raise _anthropic_error(
                    404, f"No batch found with id '{batch_id}'", "not_found_error"
                )
            raise _openai_error(404, f"No batch found with id '{batch_id}'.")
        return batch

    def _due(self, batch: dict[str, Any]) -> bool:
        return time.monotonic() - batch["created"] >= self.processing_s

    def _openai_batch(self, batch_id: str) -> dict[str, Any]:
        with self._lock:
            batch = self._batch(batch_id, anthropic=False)
            view = batch["object"]
            now = int(time.time())
            if view["status"] in ("completed", "failed", "cancelled"):
                return dict(view)
            if batch["errors"]:
                view.update(
                    status="failed",
                    failed_at=now,
                    errors={"object": "list", "data": batch["errors"]},
                )
            elif batch["cancelled"] or self._due(batch):
                self._finish_openai(batch, cancelled=batch["cancelled"])
            else:
                view.update(status="in_progress", in_progress_at=view["in_progress_at"] or now)
            return dict(view)

    def _finish_openai(self, batch: dict[str, Any], *, cancelled: bool) -> None:
        outputs: list[str] = []
        failures: list[str] = []
        for n, line in enumerate(batch["lines"]):
            custom_id = line["custom_id"]
            entry: dict[str, Any] = {"id": f"batch_req_{n:06d}", "custom_id": custom_id}
            if cancelled:
                entry.update(
                    response=None,
                    error={
                        "code": "batch_cancelled",
                        "message": "This request was not run: the batch was cancelled.",
                    },
                )
                failures.append(json.dumps(entry))
                continue
            try:
                completion = self._openai_completion(line["body"])
            except _Refused as refused:
                entry.update(
                    response={
                        "status_code": refused.status,
                        "request_id": f"req_{n}",
                        "body": refused.body,
                    },
                    error=None,
                )
                failures.append(json.dumps(entry))
                continue
            entry.update(
                response={"status_code": 200, "request_id": f"req_{n}", "body": completion},
                error=None,
            )
            outputs.append(json.dumps(entry))
        view = batch["object"]
        now = int(time.time())
        for key, rows, name in (
            ("output_file_id", outputs, "output"),
            ("error_file_id", failures, "errors"),
        ):
            if rows:
                file_id = f"file-{next(self._ids):06d}"
                content = ("\n".join(rows) + "\n").encode()
                self._files[file_id] = self._file_entry(
                    file_id, f"batch_{name}.jsonl", content, "batch_output"
                )
                view[key] = file_id
        view["request_counts"] = {
            "total": len(batch["lines"]),
            "completed": len(outputs),
            "failed": len(failures),
        }
        if cancelled:
            view.update(status="cancelled", cancelled_at=now)
        else:
            view.update(
                status="completed",
                finalizing_at=now,
                completed_at=now,
                in_progress_at=view["in_progress_at"] or now,
            )

    # -- Anthropic message batches ---------------------------------------------------------------

    def _anthropic_create(self, body: Any) -> dict[str, Any]:
        requests = body.get("requests") if isinstance(body, dict) else None
        if not isinstance(requests, list) or not requests:
            raise _anthropic_error(400, "requests: Field required (a non-empty list)")
        seen: set[str] = set()
        for i, entry in enumerate(requests):
            if not isinstance(entry, dict) or not isinstance(entry.get("params"), dict):
                raise _anthropic_error(400, f"requests.{i}.params: Field required")
            custom_id = entry.get("custom_id")
            if not isinstance(custom_id, str) or not _CUSTOM_ID.match(custom_id):
                raise _anthropic_error(
                    400,
                    f"requests.{i}.custom_id: String should match pattern "
                    "'^[a-zA-Z0-9_-]{1,64}$'",
                )
            if custom_id in seen:
                raise _anthropic_error(400, f"Duplicate custom_id: {custom_id}")
            seen.add(custom_id)
        now = datetime.now(UTC)
        batch_id = self._register(
            "msgbatch",
            "anthropic",
            {"requests": requests},
            lambda batch_id: {
                "id": batch_id,
                "type": "message_batch",
                "processing_status": "in_progress",
                "request_counts": {
                    "processing": len(requests),
                    "succeeded": 0,
                    "errored": 0,
                    "canceled": 0,
                    "expired": 0,
                },
                "ended_at": None,
                "created_at": _rfc3339(now),
                "expires_at": _rfc3339(now + timedelta(days=1)),
                "archived_at": None,
                "cancel_initiated_at": None,
                "results_url": None,
            },
        )
        return self._anthropic_batch(batch_id)

    def _anthropic_batch(self, batch_id: str) -> dict[str, Any]:
        with self._lock:
            batch = self._batch(batch_id, anthropic=True)
            view = batch["object"]
            if view["processing_status"] != "ended" and (batch["cancelled"] or self._due(batch)):
                rows: list[str] = []
                counts = {
                    "processing": 0,
                    "succeeded": 0,
                    "errored": 0,
                    "canceled": 0,
                    "expired": 0,
                }
                for entry in batch["requests"]:
                    if batch["cancelled"]:
                        result: dict[str, Any] = {"type": "canceled"}
                    else:
                        try:
                            result = {
                                "type": "succeeded",
                                "message": self._anthropic_message(entry["params"]),
                            }
                        except _Refused as refused:
                            result = {"type": "errored", "error": refused.body}
                    counts[result["type"]] += 1
                    rows.append(json.dumps({"custom_id": entry["custom_id"], "result": result}))
                # Results come in any order: reversed, so a client must match by custom_id.
                batch["done"] = ("\n".join(reversed(rows)) + "\n").encode()
                view.update(
                    processing_status="ended",
                    ended_at=_rfc3339(datetime.now(UTC)),
                    request_counts=counts,
                    results_url=f"{self.url}/v1/messages/batches/{batch_id}/results",
                )
            return dict(view)

    def _anthropic_results(self, batch_id: str) -> bytes:
        with self._lock:
            batch = self._batch(batch_id, anthropic=True)
            if batch["done"] is None:
                raise _anthropic_error(
                    400, f"Message Batch {batch_id} has not yet ended; results are not available."
                )
            return batch["done"]

    def _cancel(self, batch_id: str, *, anthropic: bool) -> dict[str, Any]:
        with self._lock:
            batch = self._batch(batch_id, anthropic=anthropic)
            ended = batch["done"] is not None or batch["object"].get("status") in (
                "completed",
                "failed",
                "cancelled",
            )
            if not ended:
                batch["cancelled"] = True
                self.cancelled.append(batch_id)
                if anthropic:
                    batch["object"].update(
                        processing_status="canceling",
                        cancel_initiated_at=_rfc3339(datetime.now(UTC)),
                    )
                else:
                    batch["object"].update(status="cancelling", cancelling_at=int(time.time()))
            return dict(batch["object"])


def _json_body(body: bytes, *, anthropic: bool) -> Any:
    try:
        return json.loads(body.decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        if anthropic:
            raise _anthropic_error(400, f"The request body is not valid JSON: {exc}") from None
        raise _openai_error(
            400, f"We could not parse the JSON body of your request: {exc}"
        ) from None


def _read_input_file(content: bytes) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The lines of a batch input file and, per OpenAI's validation, what is wrong with it."""
    lines: list[dict[str, Any]] = []
    errors: list[dict[str, Any]] = []
    seen: set[str] = set()
    models: set[str] = set()
    for number, text in enumerate(content.decode("utf-8", "replace").splitlines(), start=1):
        if not text.strip():
            continue
        try:
            line = json.loads(text)
        except ValueError:
            errors.append(
                {
                    "code": "invalid_json_line",
                    "message": "This line is not parseable as valid JSON.",
                    "param": None,
                    "line": number,
                }
            )
            continue
        problem = None
        if not isinstance(line, dict) or not isinstance(line.get("custom_id"), str):
            problem = ("missing_required_parameter", "Missing required parameter: 'custom_id'.")
        elif line["custom_id"] in seen:
            problem = (
                "duplicate_custom_id",
                f"The custom_id '{line['custom_id']}' is used more than once.",
            )
        elif line.get("method") != "POST":
            problem = ("invalid_method", "The method must be 'POST'.")
        elif line.get("url") != "/v1/chat/completions":
            problem = (
                "mismatched_endpoint",
                "The url must match the batch's endpoint '/v1/chat/completions'.",
            )
        elif not isinstance(line.get("body"), dict) or not isinstance(
            line["body"].get("model"), str
        ):
            problem = ("missing_required_parameter", "Missing required parameter: 'body.model'.")
        if problem:
            errors.append(
                {"code": problem[0], "message": problem[1], "param": None, "line": number}
            )
            continue
        seen.add(line["custom_id"])
        models.add(line["body"]["model"])
        lines.append(line)
    if not lines and not errors:
        errors.append(
            {
                "code": "empty_file",
                "message": "The input file is empty.",
                "param": None,
                "line": None,
            }
        )
    if len(models) > 1:
        errors.append(
            {
                "code": "model_mismatch",
                "message": "All requests of a batch must use the same model.",
                "param": None,
                "line": None,
            }
        )
    return lines, errors


def _rfc3339(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


__all__ = ["FailRequest", "ImitationBatchServer"]
