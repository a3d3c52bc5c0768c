"""How a chat model's LangChain run is configured, for a run this package opens itself.

Example:
    >>> from langchain_core.callbacks import CallbackManager
    >>> from langchain_costopt.simulated import SimulatedChatModel
    >>> model = SimulatedChatModel(model_name="gpt-4o-mini", tags=["model-tag"])
    >>> args = callback_manager_args(model, {"tags": ["call-tag"]}, model._get_ls_params())
    >>> manager = CallbackManager.configure(*args)
    >>> sorted(manager.tags), manager.metadata["ls_model_name"]
    (['call-tag', 'model-tag'], 'gpt-4o-mini')

A run replayed from the cache, or answered later by a provider's batch API, never goes
through ``BaseChatModel.generate``/``stream``, so its callback manager is configured
here the way those methods configure it: the call's callbacks, tags and metadata
(inheritable), the model's own (local), and the model's LangSmith parameters in the
metadata.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.runnables import RunnableConfig


def callback_manager_args(
    model: BaseChatModel, config: RunnableConfig, ls_params: Mapping[str, Any]
) -> tuple[Any, ...]:
    """``CallbackManager.configure``'s (or ``AsyncCallbackManager``'s) arguments for a
    run of ``model`` called with ``config``; ``ls_params``: what
    ``model._get_ls_params`` says for the call."""
    return (
        config.get("callbacks"),
        model.callbacks,
        model.verbose,
        config.get("tags"),
        model.tags,
        {**(config.get("metadata") or {}), **ls_params},
        model.metadata,
    )


__all__ = ["callback_manager_args"]
