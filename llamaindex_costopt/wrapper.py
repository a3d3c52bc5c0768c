"""What RouterLLM and SemanticCacheLLM share as LlamaIndex LLMs that wrap other LLMs.

* ``predict`` / ``apredict`` / ``stream`` / ``astream`` record the template's question
  (``query_str``) for the ``chat``/``complete`` call they make (see
  :mod:`llamaindex_costopt.messages`), so a RAG prompt is judged by its question.
* A callback manager given to (or assigned on) the wrapper is handed to the wrapped
  LLMs, so LlamaIndex's legacy callbacks see the calls of the model that answered.
* The wrappers themselves are not decorated with LlamaIndex's ``llm_chat_callback`` /
  ``llm_completion_callback``: they call the wrapped model's decorated methods, so each
  call emits exactly one LLM start/end event pair, the answering model's.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from llama_index.core.base.llms.types import LLMMetadata
from llama_index.core.callbacks import CallbackManager
from llama_index.core.llms.function_calling import FunctionCallingLLM
from llama_index.core.llms.llm import LLM
from llama_index.core.prompts import BasePromptTemplate
from llama_index.core.types import TokenAsyncGen, TokenGen

from costopt_core.ledger import BudgetExceededError
from llamaindex_costopt.messages import question_scope

logger = logging.getLogger(__name__)


def llm_model_name(llm: Any) -> str:
    """The model name an LLM reports in its metadata (``model``/``model_name`` else)."""
    try:
        name = llm.metadata.model_name
    except Exception:  # metadata of a misconfigured model must not break routing
        name = None
    if isinstance(name, str) and name and name != "unknown":
        return name
    for attr in ("model", "model_name", "model_id"):
        value = getattr(llm, attr, None)
        if isinstance(value, str) and value:
            return value
    return type(llm).__name__


def merged_metadata(llms: Iterable[LLM], model_name: str) -> LLMMetadata:
    """Metadata of a wrapper over several LLMs: what holds for every one of them."""
    metas = [llm.metadata for llm in llms]
    outputs = [m.num_output for m in metas if m.num_output and m.num_output > 0]
    return LLMMetadata(
        context_window=min(m.context_window for m in metas),
        num_output=max(outputs) if outputs else metas[0].num_output,
        is_chat_model=all(m.is_chat_model for m in metas),
        is_function_calling_model=all(
            m.is_function_calling_model and isinstance(llm, FunctionCallingLLM)
            for m, llm in zip(metas, llms, strict=True)
        ),
        model_name=model_name,
        system_role=metas[0].system_role,
    )


def budget_gates(dispatcher: Any, explicit: Any = None) -> list[Any]:
    """Cost handlers whose budgets apply to a wrapper's call: ``explicit`` plus those
    registered on the dispatcher chain the wrapper's events travel (up to the root)."""
    gates: list[Any] = []
    if explicit is not None:
        gates.append(explicit)
    current: Any = dispatcher
    while current is not None:
        for handler in current.event_handlers:
            if callable(getattr(handler, "costopt_before_call", None)) and not any(
                handler is g for g in gates
            ):
                gates.append(handler)
        if not current.propagate:
            break
        try:
            current = current.parent
        except (AssertionError, KeyError):
            break
    return gates


def open_budget(gates: list[Any], *, routed: bool) -> list[tuple[Any, Any]]:
    """Ask each gate before calling a model. ``BudgetExceededError`` propagates (after
    the reservations already made are released); any other gate failure is logged."""
    tokens: list[tuple[Any, Any]] = []
    for gate in gates:
        try:
            tokens.append((gate, gate.costopt_before_call(routed=routed)))
        except BudgetExceededError:
            cancel_budget(tokens)
            raise
        except Exception:
            logger.exception("budget check failed on %r; the call goes ahead", gate)
    return tokens


def cancel_budget(tokens: list[tuple[Any, Any]]) -> None:
    """Release the reservations of a call that failed before spending."""
    for gate, token in tokens:
        if token is None:
            continue
        try:
            gate.costopt_cancel(token)
        except Exception:
            logger.exception("cancelling a budget reservation failed")


class WrapperLLM(FunctionCallingLLM):
    """Base of the costopt LlamaIndex wrappers; subclasses implement the endpoints."""

    def _wrapped_llms(self) -> list[LLM]:
        """The LLMs this wrapper delegates to."""
        raise NotImplementedError

    # -- callback manager: the wrapper's reaches the wrapped models ----------------------

    def model_post_init(self, context: Any, /) -> None:
        super().model_post_init(context)
        if "callback_manager" in self.model_fields_set:
            self._share_callback_manager()

    def __setattr__(self, name: str, value: Any) -> None:
        super().__setattr__(name, value)
        if name == "callback_manager":
            self._share_callback_manager()

    def _share_callback_manager(self) -> None:
        manager = self.__dict__.get("callback_manager")
        if not isinstance(manager, CallbackManager):
            return
        try:
            llms = self._wrapped_llms()
        except (AttributeError, NotImplementedError):  # during construction
            return
        for llm in llms:
            if llm.callback_manager is not manager:
                llm.callback_manager = manager

    # -- prompt-template entry points: remember the question -----------------------------

    def predict(self, prompt: BasePromptTemplate, **prompt_args: Any) -> str:
        with question_scope(prompt_args):
            return super().predict(prompt, **prompt_args)

    async def apredict(self, prompt: BasePromptTemplate, **prompt_args: Any) -> str:
        with question_scope(prompt_args):
            return await super().apredict(prompt, **prompt_args)

    def stream(self, prompt: BasePromptTemplate, **prompt_args: Any) -> TokenGen:
        # The chat/complete call (and so routing and the cache lookup) happens inside
        # stream(), before the token generator is returned.
        with question_scope(prompt_args):
            return super().stream(prompt, **prompt_args)

    async def astream(self, prompt: BasePromptTemplate, **prompt_args: Any) -> TokenAsyncGen:
        with question_scope(prompt_args):
            return await super().astream(prompt, **prompt_args)


__all__ = [
    "WrapperLLM",
    "budget_gates",
    "cancel_budget",
    "llm_model_name",
    "merged_metadata",
    "open_budget",
]
