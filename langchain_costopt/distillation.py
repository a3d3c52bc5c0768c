"""DistillationRecorder: a LangChain callback handler that writes the strong tier's
routed answers as a chat fine-tuning set (see :mod:`costopt_core.distillation`).

Example:
    >>> import json, os, tempfile
    >>> from langchain_costopt import RouterChatModel
    >>> from langchain_costopt.distillation import DistillationRecorder
    >>> from langchain_costopt.simulated import SimulatedChatModel
    >>> path = os.path.join(tempfile.mkdtemp(), "distill.jsonl")
    >>> recorder = DistillationRecorder(path, tiers=("complex",))
    >>> router = RouterChatModel(
    ...     models={"simple": SimulatedChatModel(model_name="deepseek-v3"),
    ...             "complex": SimulatedChatModel(model_name="claude-3-5-sonnet")},
    ...     strategy="rules", callbacks=[recorder])
    >>> _ = router.invoke("请分析并比较这两种架构设计")  # two complex cues: complex tier
    >>> _ = router.invoke("请翻译: good morning")      # simple tier: not recorded
    >>> recorder.close()
    >>> [m["role"] for m in json.loads(open(path).read())["messages"]]
    ['user', 'assistant']
    >>> recorder.stats["written"]
    1

Give it wherever callbacks go (``callbacks=[recorder]`` on the router, the chain, or
``config={"callbacks": [...]}`` per call). It reads each answer's routing record
(``response_metadata["routing"]``; for a grouped ``RouterChatModel.batch``, the decision
the router hands the inner run in its metadata), pairs it with the messages the run
started with, and hands both to the engine's ``DistillationWriter``, which decides what
is kept. It never raises into the application: a failure is logged.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any
from uuid import UUID

from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, LLMResult

from costopt_core.distillation import (
    RecorderFace,
)
from costopt_core.engine import ROUTING_KEY
from costopt_core.metadata_keys import BATCH_ROUTING_KEY, CACHE_MARKER_KEY

logger = logging.getLogger(__name__)

_MAX_OPEN_RUNS = 4096  # runs that never end (abandoned streams) must not pile up
_ROLES = {"system": "system", "human": "user", "ai": "assistant"}


def to_chat_messages(messages: Sequence[BaseMessage]) -> list[dict[str, Any]]:
    """LangChain messages as ``{"role", "content"}`` dicts; a message that is not plain
    text (tool call, tool result, image) keeps a role the writer does not accept, so the
    conversation is skipped rather than written without it.

    Example:
        >>> from langchain_core.messages import HumanMessage, SystemMessage, ToolMessage
        >>> to_chat_messages([SystemMessage("Be brief."), HumanMessage("Hi")])
        [{'role': 'system', 'content': 'Be brief.'}, {'role': 'user', 'content': 'Hi'}]
        >>> to_chat_messages([ToolMessage("42", tool_call_id="t1")])[0]["role"]
        'tool'
    """
    out: list[dict[str, Any]] = []
    for message in messages:
        role = _ROLES.get(message.type, message.type)
        if message.type == "chat":
            role = str(getattr(message, "role", "chat"))
        content: Any = message.content
        if isinstance(message, AIMessage) and message.tool_calls:
            role = "assistant+tool_calls"
        if not isinstance(content, str):
            texts = [
                b if isinstance(b, str) else b.get("text")
                for b in content
                if isinstance(b, str) or (isinstance(b, dict) and b.get("type") == "text")
            ]
            content = "\n".join(str(t) for t in texts) if len(texts) == len(content) else None
        out.append({"role": role, "content": content})
    return out


def _cached(generation: ChatGeneration) -> bool:
    info = generation.generation_info or {}
    return CACHE_MARKER_KEY in info or CACHE_MARKER_KEY in generation.message.response_metadata


class DistillationRecorder(RecorderFace, BaseCallbackHandler):
    """Write routed answers from ``tiers`` to ``path`` (chat fine-tuning JSONL).

    ``DistillationRecorder(path, tiers=("complex",), redact=None)``: the arguments of
    ``costopt_core.distillation.writer_for``; ``stats`` and ``close()`` are the writer's.
    """

    raise_error = False  # LangChain: a failing handler must not fail the call

    def _start(self) -> None:
        self._runs: OrderedDict[UUID, tuple[list[BaseMessage], dict[str, Any] | None]] = (
            OrderedDict()
        )
        self._lock = threading.Lock()

    def on_chat_model_start(
        self,
        serialized: dict[str, Any],
        messages: list[list[BaseMessage]],
        *,
        run_id: UUID,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        batch_routing = (metadata or {}).get(BATCH_ROUTING_KEY)
        with self._lock:
            self._runs[run_id] = (messages[0] if messages else [], batch_routing)
            while len(self._runs) > _MAX_OPEN_RUNS:
                self._runs.popitem(last=False)

    def on_llm_end(self, response: LLMResult, *, run_id: UUID, **kwargs: Any) -> None:
        with self._lock:
            started = self._runs.pop(run_id, None)
        if started is None:
            return
        messages, batch_routing = started
        try:
            for generations in response.generations[:1]:
                for generation in generations[:1]:
                    if isinstance(generation, ChatGeneration):
                        self._record(messages, generation, batch_routing)
        except Exception:  # recording must never break the user's call
            logger.exception("DistillationRecorder failed on run %s", run_id)

    def on_llm_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        with self._lock:
            self._runs.pop(run_id, None)

    def _record(
        self,
        messages: list[BaseMessage],
        generation: ChatGeneration,
        batch_routing: dict[str, Any] | None,
    ) -> None:
        answer = generation.message
        routing = answer.response_metadata.get(ROUTING_KEY) or batch_routing
        if not isinstance(routing, dict):
            return  # not a routed answer (e.g. the router's inner call): nothing to do
        tier = routing.get("tier")
        if isinstance(answer, AIMessage) and answer.tool_calls:
            chat = [*to_chat_messages(messages), {"role": "assistant+tool_calls"}]
            self.writer.record(chat, "", tier=tier)
            return
        self.writer.record(
            to_chat_messages(messages),
            answer.text,
            tier=tier,
            cached=_cached(generation),
        )


__all__ = ["DistillationRecorder", "to_chat_messages"]
