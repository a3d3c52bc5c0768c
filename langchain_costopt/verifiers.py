"""``ChatModelVerifier``: a cheap LangChain chat model judges the cache's uncertain hits.

Example:
    >>> from langchain_core.language_models.fake_chat_models import FakeListChatModel
    >>> from langchain_costopt.verifiers import ChatModelVerifier
    >>> judge = ChatModelVerifier(FakeListChatModel(responses=["YES", "No."]))
    >>> judge("Is it open on Sunday?", "Is it open Sundays?", "Yes, 9 to 5.")
    True
    >>> judge("Is it open on Monday?", "Is it open Sundays?", "Yes, 9 to 5.")
    False
    >>> judge.calls
    2

Use it as ``SemanticLLMCache(embeddings, verifier=ChatModelVerifier(cheap_model))``: the
cache asks it only about candidates it is unsure of (see
:mod:`costopt_core.cache_gate`), and learns from its verdicts, so the share of lookups
that need one falls as traffic repeats. The prompt and the reading of the reply are the
engine's (:mod:`costopt_core.cache_judge`): only a reply starting with "yes" serves.

Its cost is accounted apart from the user's calls: every verifier call runs with its own
``CostCallbackHandler`` (``.costs``; pass ``costs=CostCallbackHandler(ledger=...)`` to
book it in a shared ledger), is tagged ``costopt:cache-verifier`` with run metadata
``{"costopt_purpose": "cache-verifier"}`` (so tracing and a user's own handlers can tell
it apart), and never goes through an LLM cache (a verifier served from the cache it
guards would judge nothing).
"""

from __future__ import annotations

from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import HumanMessage, SystemMessage
from langchain_core.runnables import RunnableConfig

from costopt_core.cache_judge import judge_messages, parse_verdict
from langchain_costopt.callbacks import CostCallbackHandler

TAG = "costopt:cache-verifier"


class ChatModelVerifier:
    """``verifier(question, cached_question, cached_answer) -> bool`` on a chat model.

    Args:
        model: any LangChain chat model (a cheap one: the question is easy).
        costs: the handler that prices its calls (a new ``CostCallbackHandler`` by
            default); read ``.costs.total_cost``.
    """

    def __init__(self, model: BaseChatModel, *, costs: CostCallbackHandler | None = None) -> None:
        if not isinstance(model, BaseChatModel):
            raise TypeError(f"model must be a LangChain chat model, got {type(model).__name__}")
        if costs is not None and not isinstance(costs, CostCallbackHandler):
            raise TypeError("costs must be a CostCallbackHandler or None")
        # Never through an LLM cache (set_llm_cache would otherwise apply to it too).
        self.model = model.model_copy(update={"cache": False})
        self.costs = costs if costs is not None else CostCallbackHandler()
        self.calls = 0

    def _request(self, question: str, cached_question: str, cached_answer: str) -> Any:
        system, user = judge_messages(question, cached_question, cached_answer)
        config: RunnableConfig = {
            "callbacks": [self.costs],
            "tags": [TAG],
            "metadata": {"costopt_purpose": "cache-verifier"},
            "run_name": "cache-verifier",
        }
        self.calls += 1
        return [SystemMessage(system), HumanMessage(user)], config

    def verify(self, question: str, cached_question: str, cached_answer: str) -> bool:
        messages, config = self._request(question, cached_question, cached_answer)
        return parse_verdict(self.model.invoke(messages, config).text)

    async def averify(self, question: str, cached_question: str, cached_answer: str) -> bool:
        messages, config = self._request(question, cached_question, cached_answer)
        return parse_verdict((await self.model.ainvoke(messages, config)).text)

    __call__ = verify


__all__ = ["TAG", "ChatModelVerifier"]
