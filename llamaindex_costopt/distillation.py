"""DistillationEventHandler: LlamaIndex instrumentation handler that writes the strong
tier's routed answers as a chat fine-tuning set (see :mod:`costopt_core.distillation`).

Example:
    >>> import json, pathlib, tempfile
    >>> from llamaindex_costopt import RouterLLM, SimulatedLLM
    >>> from llamaindex_costopt.distillation import DistillationEventHandler
    >>> router = RouterLLM(llms={"simple": SimulatedLLM(model_name="deepseek-v3"),
    ...                          "complex": SimulatedLLM(model_name="claude-3-5-sonnet")},
    ...                    strategy="rules")
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "distill.jsonl"
    >>> with DistillationEventHandler(path, tiers=("complex",)) as recorder:
    ...     _ = router.complete("请分析并比较这两种架构设计")  # complex tier: recorded
    ...     _ = router.complete("请翻译: good morning")      # simple tier: not
    >>> recorder.stats["written"], json.loads(path.read_text())["messages"][0]["role"]
    (1, 'user')

How events are read: ``RouterLLM`` dispatches a ``RoutingDecisionEvent`` in its span,
and the tier model it called emits an LLM start/end event pair in a child span. The
handler remembers each LLM call's enclosing spans at its start (the span tree of
``CostEventHandler``) and pairs its end event (messages or prompt, and the answer) with
the decision of the router span around it, whichever of the two comes first (a whole
answer ends before the router decides; a stream's decision comes at its first chunk).
When a router span holds several LLM calls (a cascade that escalated, an LLM whose chat
calls its own completion), the last chat call is the answer. The engine's
``DistillationWriter`` decides what is kept. Nothing here raises into the application.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from llama_index.core.base.llms.types import ChatMessage, TextBlock
from llama_index.core.instrumentation import get_dispatcher
from llama_index.core.instrumentation.event_handlers import BaseEventHandler
from llama_index.core.instrumentation.events import BaseEvent
from llama_index.core.instrumentation.events.llm import (
    LLMChatEndEvent,
)
from pydantic import PrivateAttr

from costopt_core.distillation import (
    DistillationWriter,
    RecorderFace,
)
from costopt_core.metadata_keys import CACHE_HIT_KEY

# The cost handler's span tree: one definition of "which spans enclose this call".
from llamaindex_costopt.handlers import SpanTree

logger = logging.getLogger(__name__)

_MEMORY = 4096  # bounded maps: calls that never end must not pile up
_DEPTH = 8  # enclosing spans kept per LLM call (the router's is one of the nearest)
_PER_SPAN = 8  # answers waiting per span (a router span holds one call and its attempts)
_ROLES = {"chatbot": "assistant", "model": "assistant", "developer": "system"}


def to_chat_messages(messages: Sequence[ChatMessage]) -> list[dict[str, Any]]:
    """LlamaIndex messages as ``{"role", "content"}`` dicts; non-text content (images,
    tool calls) is marked so the writer skips the conversation.

    Example:
        >>> from llama_index.core.llms import ChatMessage
        >>> to_chat_messages([ChatMessage(role="system", content="Be brief."),
        ...                   ChatMessage(role="user", content="Hi")])
        [{'role': 'system', 'content': 'Be brief.'}, {'role': 'user', 'content': 'Hi'}]
    """
    out: list[dict[str, Any]] = []
    for message in messages:
        role = getattr(message.role, "value", str(message.role))
        role = _ROLES.get(role, role)
        if message.additional_kwargs.get("tool_calls"):
            role = "assistant+tool_calls"
        blocks = message.blocks
        text = (
            "".join(b.text for b in blocks)
            if all(isinstance(b, TextBlock) for b in blocks)
            else None
        )
        out.append({"role": role, "content": text})
    return out


@dataclass(slots=True)
class _Answer:
    chat: bool
    messages: list[dict[str, Any]]
    answer: str
    cached: bool


def _answer_of(event: Any) -> _Answer | None:
    response = event.response
    if response is None:
        return None
    extra = getattr(response, "additional_kwargs", None) or {}
    cached = CACHE_HIT_KEY in extra
    if isinstance(event, LLMChatEndEvent):
        message = response.message
        chat = to_chat_messages(event.messages)
        if message.additional_kwargs.get("tool_calls"):
            chat.append({"role": "assistant+tool_calls"})  # a tool call is not text data
        return _Answer(True, chat, message.content or "", cached)
    return _Answer(False, [{"role": "user", "content": event.prompt}], response.text, cached)


class DistillationEventHandler(RecorderFace, BaseEventHandler):
    """Write routed answers from ``tiers`` to ``path`` (chat fine-tuning JSONL).

    ``DistillationEventHandler(path, tiers=("complex",), redact=None)``: the arguments of
    ``costopt_core.distillation.writer_for``; ``stats`` and ``close()`` are the writer's.
    ``register()`` attaches it to LlamaIndex's root dispatcher (or a given one), as a
    ``with`` block does; ``unregister()`` detaches it.
    """

    _writer: DistillationWriter = PrivateAttr()
    _lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)
    _spans: SpanTree = PrivateAttr(default_factory=SpanTree)
    _dispatcher: Any = PrivateAttr(default=None)
    _enclosing: OrderedDict[str, list[str]] = PrivateAttr(default_factory=OrderedDict)
    _pending: OrderedDict[str, list[_Answer]] = PrivateAttr(default_factory=OrderedDict)
    _decisions: OrderedDict[str, str] = PrivateAttr(default_factory=OrderedDict)

    @classmethod
    def class_name(cls) -> str:
        return "DistillationEventHandler"

    # -- registration --------------------------------------------------------------------

    def register(self, dispatcher: Any = None) -> DistillationEventHandler:
        """Attach to ``dispatcher`` (default: the root one); registering twice is a no-op."""
        target = dispatcher if dispatcher is not None else get_dispatcher()
        with self._lock:
            if self._dispatcher not in (None, target):
                raise ValueError("already registered on another dispatcher; unregister() first")
            self._dispatcher = target
            # The span tree must see the router's span open before its LLM call starts.
            for handlers, mine in (
                (target.span_handlers, self._spans),
                (target.event_handlers, self),
            ):
                if all(h is not mine for h in handlers):
                    handlers.append(mine)
        return self

    def unregister(self) -> None:
        """Detach and close the file (a later answer opens it again, appending)."""
        with self._lock:
            target, self._dispatcher = self._dispatcher, None
        if target is not None:
            for name, mine in (("event_handlers", self), ("span_handlers", self._spans)):
                setattr(target, name, [h for h in getattr(target, name) if h is not mine])
        self.close()

    def __enter__(self) -> DistillationEventHandler:
        return self.register()

    def __exit__(self, *exc: object) -> None:
        self.unregister()

    # -- events ----------------------------------------------------------------------------

    def handle(self, event: BaseEvent, **kwargs: Any) -> Any:
        step = _STEPS.get(event.class_name())
        if step is not None:
            try:
                step(self, event)
            except Exception:  # recording must never break the user's call
                logger.exception("DistillationEventHandler failed on %s", type(event).__name__)

    def _on_start(self, event: Any) -> None:
        if event.span_id is None:
            return
        chain = self._spans.ancestors(event.span_id)[:_DEPTH]
        with self._lock:
            _remember(self._enclosing, event.span_id, chain)

    def _on_end(self, event: Any) -> None:
        with self._lock:
            chain = self._enclosing.pop(event.span_id, None) if event.span_id else None
        if not chain:
            return  # not inside any span: not a routed call
        answer = _answer_of(event)
        if answer is None:
            return
        with self._lock:
            decided = next((s for s in chain if s in self._decisions), None)
            tier = self._decisions.pop(decided) if decided is not None else None
            if decided is None:
                # A whole answer: the router decides once it returns. Wait under every
                # enclosing span; the decision's span takes its list, the rest age out.
                for span in chain:
                    waiting = [*self._pending.get(span, ())][-_PER_SPAN + 1 :]
                    _remember(self._pending, span, [*waiting, answer])
        if tier is not None:
            self._write(answer, tier)

    def _on_decision(self, event: Any) -> None:
        span = event.span_id
        if span is None or event.error:
            return
        with self._lock:
            answers = self._pending.pop(span, None)
            if answers is None:
                _remember(self._decisions, span, event.tier)  # a stream: its answer follows
                return
        chats = [a for a in answers if a.chat]
        self._write((chats or answers)[-1], event.tier)

    def _write(self, answer: _Answer, tier: str) -> None:
        self._writer.record(answer.messages, answer.answer, tier=tier, cached=answer.cached)


# Event class name -> step: the LLM events of any LLM, and the router's decisions.
_STEPS: dict[str, Any] = {
    "LLMChatStartEvent": DistillationEventHandler._on_start,
    "LLMCompletionStartEvent": DistillationEventHandler._on_start,
    "LLMChatEndEvent": DistillationEventHandler._on_end,
    "LLMCompletionEndEvent": DistillationEventHandler._on_end,
    "RoutingDecisionEvent": DistillationEventHandler._on_decision,
}


def _remember(mapping: OrderedDict[str, Any], key: str, value: Any) -> None:
    mapping[key] = value
    mapping.move_to_end(key)
    while len(mapping) > _MEMORY:
        mapping.popitem(last=False)


__all__ = ["DistillationEventHandler", "to_chat_messages"]
