"""Deferred LlamaIndex chat calls through the provider's batch API, at its batch rates.

Example:
    >>> from costopt_core.batch.imitation import ImitationBatchServer
    >>> from llamaindex_costopt.batch import deferred_batch
    >>> from llamaindex_costopt.simulated import SimulatedLLM
    >>> with ImitationBatchServer(processing_s=0.01) as server:
    ...     answers = deferred_batch(
    ...         SimulatedLLM(model_name="gpt-4o-mini"), ["What is 2 + 2?", "Name a colour."],
    ...         provider="openai", base_url=server.openai_base_url, api_key=server.api_key,
    ...         poll_interval_s=0.01)
    >>> [a.additional_kwargs["costopt_batch"] for a in answers], answers[0].raw["model"]
    ([True, True], 'gpt-4o-mini')

With LlamaIndex's ``OpenAI`` or ``Anthropic`` LLM the provider, base URL, model name,
``max_tokens`` and ``temperature`` are read from the LLM (and the key from ``OpenAI``;
LlamaIndex's ``Anthropic`` keeps its key inside its client, so pass ``api_key=`` or set
``ANTHROPIC_API_KEY``); any other LLM takes ``provider=``, ``base_url=``, ``api_key=``.

What a cost handler sees: before the batch is submitted, each call reserves its budget
with the handlers that enforce budgets (``CostEventHandler``: those registered on the
dispatcher, plus ``cost_handler=``) in a span of its own, and ``BudgetExceededError``
stops the batch before anything is submitted; once the batch has ended, each answer is
an LLM chat start/end event pair inside that span (so the reservation settles), and a
call that failed releases its reservation.

Each answer is a ``ChatResponse``: ``raw`` is the provider's answer (OpenAI chat
completion or Anthropic message, with ``usage`` and ``model``), ``additional_kwargs``
holds ``costopt_batch: True`` (``costopt_core.metadata_keys.BATCH_KEY``), ``batch_id``,
``custom_id`` and the token counts (``prompt_tokens``, ``completion_tokens``,
``total_tokens``); tool calls are in ``message.additional_kwargs["tool_calls"]`` in
OpenAI's format.
"""

from __future__ import annotations

import inspect
import json
import logging
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar, Token
from typing import Any

from llama_index.core.base.llms.types import (
    ChatMessage,
    ChatResponse,
    CompletionResponse,
    LLMMetadata,
    MessageRole,
)
from llama_index.core.instrumentation import get_dispatcher
from llama_index.core.instrumentation.span import active_span_id
from llama_index.core.llms.callbacks import llm_chat_callback
from llama_index.core.llms.custom import CustomLLM
from llama_index.core.llms.llm import LLM

from costopt_core.batch import (
    PROVIDERS,
    BatchRequest,
    BatchResult,
    BatchTarget,
    resolve_target,
)
from costopt_core.batch.deferred import DeferredBatch, DeferredOptions, converted_inputs
from costopt_core.budget_gate import BudgetGate, CallQuote, open_budget, release_budget
from costopt_core.metadata_keys import BATCH_KEY
from costopt_core.tokens import estimate_tokens
from llamaindex_costopt.messages import message_text
from llamaindex_costopt.router import RouterLLM
from llamaindex_costopt.wrapper import budget_gates, llm_model_name

logger = logging.getLogger(__name__)
dispatcher = get_dispatcher(__name__)

Conversation = Sequence[ChatMessage] | str

#: LlamaIndex LLM ``class_name()`` -> the provider whose API it calls.
_PROVIDER_OF_CLASS: Mapping[str, str] = {"openai_llm": "openai", "Anthropic_LLM": "anthropic"}
#: Where those LLMs keep their base URL and key (fields), by provider.
_BASE_URL_FIELDS: Mapping[str, str] = {"openai": "api_base", "anthropic": "base_url"}
_API_KEY_FIELDS: Mapping[str, str] = {"openai": "api_key", "anthropic": "api_key"}
_OPENAI_ROLES: Mapping[str, str] = {
    "chatbot": "assistant",
    "model": "assistant",
    "function": "tool",
}


def batch_target(
    llm: LLM,
    *,
    provider: str | None = None,
    base_url: str | None = None,
    api_key: str | None = None,
    model_name: str | None = None,
    **kwargs: Any,
) -> BatchTarget:
    """Read an LLM's provider, endpoint, key, name and settings (explicit wins).

    Example:
        >>> from llamaindex_costopt.simulated import SimulatedLLM
        >>> target = batch_target(SimulatedLLM(model_name="gpt-4o-mini", max_tokens=64),
        ...                       provider="openai", api_key="sk-test")
        >>> target.model, dict(target.params)
        ('gpt-4o-mini', {'max_tokens': 64})
    """
    if not isinstance(llm, LLM):
        raise TypeError(f"llm must be a LlamaIndex LLM, got {type(llm).__name__}")
    detected = _PROVIDER_OF_CLASS.get(llm.class_name())
    known = provider or detected
    url = base_url
    key = api_key
    if known in PROVIDERS:
        url = url or _text_field(llm, _BASE_URL_FIELDS[known])
        key = key or _text_field(llm, _API_KEY_FIELDS[known])
    params: dict[str, Any] = {}
    limit = getattr(llm, "max_tokens", None)
    if type(limit) is int and limit > 0:
        params["max_tokens"] = limit
    temperature = getattr(llm, "temperature", None)
    if isinstance(temperature, int | float) and not isinstance(temperature, bool):
        params["temperature"] = temperature
    params.update(kwargs)
    return resolve_target(
        provider=provider,
        detected=detected,
        base_url=url,
        api_key=key,
        model_name=model_name or llm_model_name(llm),
        params=params,
    )


def _text_field(llm: LLM, name: str) -> str | None:
    value = getattr(llm, name, None)
    return value if isinstance(value, str) and value else None


def openai_messages(messages: Sequence[ChatMessage]) -> list[dict[str, Any]]:
    """LlamaIndex chat messages in OpenAI's chat format (text, tool calls, tool results).

    Example:
        >>> openai_messages([ChatMessage(role="system", content="Be brief."),
        ...                  ChatMessage(role="user", content="hi")])
        [{'role': 'system', 'content': 'Be brief.'}, {'role': 'user', 'content': 'hi'}]
    """
    out: list[dict[str, Any]] = []
    for message in messages:
        role = message.role.value if isinstance(message.role, MessageRole) else str(message.role)
        role = _OPENAI_ROLES.get(role, role)
        entry: dict[str, Any] = {"role": role, "content": message_text(message)}
        extra = message.additional_kwargs or {}
        if role == "tool" and extra.get("tool_call_id"):
            entry["tool_call_id"] = extra["tool_call_id"]
        if role == "assistant" and extra.get("tool_calls"):
            entry["tool_calls"] = list(extra["tool_calls"])
        out.append(entry)
    return out


def chat_response(result: BatchResult, target: BatchTarget, batch_id: str | None) -> ChatResponse:
    """The ``ChatResponse`` of an answered request, marked as billed at the batch rate."""
    usage = result.usage
    extra: dict[str, Any] = {
        BATCH_KEY: True,
        "batch_id": batch_id,
        "custom_id": result.custom_id,
        "model": result.model or target.model,
    }
    if usage is not None:
        extra.update(
            prompt_tokens=usage.input_tokens,
            completion_tokens=usage.output_tokens,
            total_tokens=usage.total_tokens,
        )
    message_extra: dict[str, Any] = {}
    if result.tool_calls:
        message_extra["tool_calls"] = [
            {
                "id": call.id,
                "type": "function",
                "function": {"name": call.name, "arguments": json.dumps(dict(call.args))},
            }
            for call in result.tool_calls
        ]
    raw = dict(result.raw)
    raw.setdefault("model", result.model or target.model)
    return ChatResponse(
        message=ChatMessage(
            role=MessageRole.ASSISTANT, content=result.text, additional_kwargs=message_extra
        ),
        raw=raw,
        additional_kwargs=extra,
    )


# -- the events of each call ------------------------------------------------------------

_ANSWER: ContextVar[ChatResponse | None] = ContextVar("costopt_batch_answer", default=None)


class BatchAnswerLLM(CustomLLM):
    """Hands out an answer the batch API already gave, as an LLM call: LlamaIndex's own
    ``llm_chat_callback`` emits the call's start and end events (and legacy callbacks).

    Not for direct use: :func:`deferred_batch` calls it once per answered request.
    """

    model_name: str = "unknown"

    @classmethod
    def class_name(cls) -> str:
        return "BatchAnswerLLM"

    @property
    def metadata(self) -> LLMMetadata:
        return LLMMetadata(model_name=self.model_name, is_chat_model=True)

    @llm_chat_callback()
    def chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        answer = _ANSWER.get()
        if answer is None:
            raise RuntimeError("BatchAnswerLLM answers only inside deferred_batch")
        return answer

    @llm_chat_callback()
    async def achat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        return self.chat(messages, **kwargs)

    def complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        raise NotImplementedError("BatchAnswerLLM only replays chat answers")

    def stream_complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> Any:
        raise NotImplementedError("BatchAnswerLLM only replays chat answers")


def _span_arguments(conversation: Sequence[ChatMessage]) -> inspect.BoundArguments:
    return inspect.signature(_span_arguments).bind(conversation)


class _CallSpan:
    """A span that stays open from a call's budget reservation until its answer: opened
    before the batch is submitted, entered again to deliver the answer."""

    def __init__(self, messages: Sequence[ChatMessage]) -> None:
        self.id = f"deferred_batch.call-{uuid.uuid4()}"
        self.arguments = _span_arguments(messages)
        parent = active_span_id.get()
        dispatcher.span_enter(id_=self.id, bound_args=self.arguments, parent_id=parent)

    @contextmanager
    def active(self) -> Iterator[None]:
        token: Token[str | None] = active_span_id.set(self.id)
        try:
            yield
        finally:
            active_span_id.reset(token)

    def close(self, error: BaseException | None = None) -> None:
        if error is None:
            dispatcher.span_exit(id_=self.id, bound_args=self.arguments)
        else:
            dispatcher.span_drop(id_=self.id, bound_args=self.arguments, err=error)


#: What ``deferred_batch`` takes as each conversation (said when one is not).
ACCEPTED_INPUTS = "a text or a list of ChatMessage"


def _conversation(item: Conversation) -> list[ChatMessage]:
    if isinstance(item, str):
        return [ChatMessage(role=MessageRole.USER, content=item)]
    messages = list(item)
    if not messages or not all(isinstance(m, ChatMessage) for m in messages):
        raise TypeError(f"a conversation must be {ACCEPTED_INPUTS}")
    return messages


class _Deferred:
    """One deferred batch of an LLM: its requests, spans and budget reservations (the
    engine's ``DeferredRuns``: each call's span is its run)."""

    def __init__(
        self,
        llm: LLM,
        conversations: Sequence[Conversation],
        cost_handler: BudgetGate | None,
        keywords: dict[str, Any],
    ) -> None:
        """``keywords``: ``deferred_batch``'s options and the settings sent with every
        request."""
        if isinstance(llm, RouterLLM):
            raise TypeError(
                "llm must be one LLM, not a RouterLLM (a batch goes to one model and the "
                "router picks one per call): defer a tier's LLM (router.llms[tier]), or "
                "route first (router.route(text).tier) and defer each tier's group with "
                "its LLM"
            )
        options, params = DeferredOptions.of_call(keywords, "deferred_batch")
        self.messages = converted_inputs(
            conversations, _conversation, argument="conversations", accepted=ACCEPTED_INPUTS
        )
        self.target = target = batch_target(llm, **options.target_keywords(), **params)
        requests = [
            BatchRequest(f"request-{i}", target.model, tuple(openai_messages(m)), target.params)
            for i, m in enumerate(self.messages)
        ]
        self.batch = DeferredBatch(target.api, requests, options)
        self.replay = BatchAnswerLLM(model_name=target.model, callback_manager=llm.callback_manager)
        self.gates = budget_gates(dispatcher, cost_handler)
        self.spans: list[_CallSpan] = []
        self.reservations: list[list[Any]] = []

    def start(self, index: int) -> None:
        """Open the call's span and reserve its budget there."""
        messages = self.messages[index]
        span = _CallSpan(messages)
        self.spans.append(span)
        self.reservations.append([])
        limit = self.target.params.get("max_tokens")
        tokens = estimate_tokens("\n".join(message_text(m) for m in messages))
        quote = CallQuote(self.target.model, tokens, limit if type(limit) is int else None)
        with span.active():
            self.reservations[index] = open_budget(self.gates, routed=False, quotes=[quote])

    @contextmanager
    def delivering(self, index: int, result: BatchResult, batch_id: str | None) -> Iterator[None]:
        """Inside call ``index``'s span, with its answer for the replay LLM to give."""
        span = self.spans[index]
        try:
            with span.active():
                token = _ANSWER.set(chat_response(result, self.target, batch_id))
                try:
                    yield
                finally:
                    _ANSWER.reset(token)
        except BaseException as exc:
            span.close(exc)
            raise
        span.close()

    def end(self, index: int, result: BatchResult, batch_id: str | None) -> ChatResponse:
        with self.delivering(index, result, batch_id):
            return self.replay.chat(self.messages[index])

    def fail(self, index: int, error: BaseException) -> None:
        release_budget(self.reservations[index])
        self.reservations[index] = []
        self.spans[index].close(error)


class _AsyncDeferred:
    """The async engine's ``AsyncDeferredRuns`` of a :class:`_Deferred`: only the
    answer's replay awaits (budgets and spans are synchronous in LlamaIndex)."""

    def __init__(self, job: _Deferred) -> None:
        self.job = job

    async def start(self, index: int) -> None:
        self.job.start(index)

    async def end(self, index: int, result: BatchResult, batch_id: str | None) -> ChatResponse:
        with self.job.delivering(index, result, batch_id):
            return await self.job.replay.achat(self.job.messages[index])

    async def fail(self, index: int, error: BaseException) -> None:
        self.job.fail(index, error)


@DeferredOptions.keywords(more=True)
def deferred_batch(
    llm: LLM,
    conversations: Sequence[Conversation],
    *,
    cost_handler: BudgetGate | None = None,
    **kwargs: Any,
) -> list[Any]:
    """Answer ``conversations`` (message lists, or a text each) with ``llm`` through its
    provider's batch API; waits for the batch and returns ``ChatResponse``s in order.

    Keyword arguments: ``costopt_core.batch.deferred.DeferredOptions``
    (``return_exceptions``, ``provider``, ``base_url``, ``api_key``, ``model_name``,
    ``poll_interval_s``, ``max_poll_interval_s``, ``timeout_s``, ``settings``,
    ``http_client``); any other is sent with every request, except a name shaped like an
    option (ending in ``_s``, starting with ``poll``, or close to one: a TypeError).
    ``llm`` is one LLM: a ``RouterLLM`` is refused (defer a tier's LLM, or route first).
    Failures as in
    ``langchain_costopt.batch.deferred_batch``: ``BudgetExceededError`` before anything
    is submitted, ``BatchAPIError``, ``BatchTimeoutError`` (the batch is cancelled),
    ``BatchRequestError`` for a request not answered (returned in its place with
    ``return_exceptions=True``).
    """
    job = _Deferred(llm, conversations, cost_handler, kwargs)
    return job.batch.run(job)


@DeferredOptions.keywords(more=True)
async def adeferred_batch(
    llm: LLM,
    conversations: Sequence[Conversation],
    *,
    cost_handler: BudgetGate | None = None,
    **kwargs: Any,
) -> list[Any]:
    """Async :func:`deferred_batch` (polls with ``asyncio.sleep``; ``http_client`` is an
    ``httpx.AsyncClient``)."""
    job = _Deferred(llm, conversations, cost_handler, kwargs)
    return await job.batch.arun(_AsyncDeferred(job))


__all__ = [
    "BatchAnswerLLM",
    "adeferred_batch",
    "batch_target",
    "chat_response",
    "deferred_batch",
    "openai_messages",
]
