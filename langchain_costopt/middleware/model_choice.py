"""Who chose an agent call's model, and which model answered it: what
:class:`~langchain_costopt.middleware.CostRoutingMiddleware` needs to live next to
another middleware that picks models (LangChain's ``ModelFallbackMiddleware``).

Example:
    >>> from langchain_costopt.simulated import SimulatedChatModel
    >>> agent_model, fallback = SimulatedChatModel(), SimulatedChatModel()
    >>> steps = StepModels()
    >>> steps.changed("task-1", agent_model), steps.changed("task-1", agent_model)
    (False, False)
    >>> steps.changed("task-1", fallback)  # a middleware outside swapped the model
    True

* A middleware listed *before* the routing middleware (outside it) that calls the rest
  of the chain again with another model (a fallback after the routed tiers failed) hands
  over a request whose model is not the one the agent step started with:
  :class:`StepModels` remembers, per step of the agent (a LangGraph task), the first
  model it was handed, so the routing middleware lets the other model answer.
* A middleware listed *after* it (inside) that swaps the tier's model for another one
  makes a model run that is not the tier's: :class:`TierRunWatch`, a callback handler
  on the tier's call, sees it start and takes the tier's routing info off that run (a
  cost handler books it as what it is), and tells which model answered.
"""

from __future__ import annotations

import contextlib
import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any
from uuid import UUID

from langchain_core.callbacks import BaseCallbackHandler, BaseCallbackManager
from langchain_core.language_models import BaseChatModel
from langchain_core.runnables import RunnableConfig
from langchain_core.runnables.config import ensure_config

from costopt_core.metadata_keys import BATCH_ROUTING_KEY, model_name_in
from langchain_costopt.chat_models import model_name_of

# How long a step's first model is remembered. No middleware hook runs when an agent
# step ends (a middleware outside may call the chain again after the routing returned or
# raised), so steps are forgotten by age: longer than a step trying every tier, with its
# retries and timeouts, takes before a fallback outside hands over its model.
STEP_MAX_AGE = 15 * 60.0
# A safety net only: every step of every run through one middleware that started within
# STEP_MAX_AGE is remembered (a busy server); this bounds the memory (about 260 bytes a
# step, 34 MB full) if far more start than any server runs.
STEPS_KEPT = 1 << 17


def step_of(request: Any) -> str | None:
    """The agent step (LangGraph task) a ``ModelRequest`` belongs to, if it tells.

    Example:
        >>> step_of(object()) is None  # outside a graph
        True
    """
    info = getattr(getattr(request, "runtime", None), "execution_info", None)
    task = getattr(info, "task_id", None)
    if isinstance(task, str) and task:
        return task
    # LangGraph before execution_info: the task's own checkpoint namespace.
    namespace = ensure_config().get("configurable", {}).get("checkpoint_ns")
    return namespace if isinstance(namespace, str) and namespace else None


class StepModels:
    """The model each recent agent step was first handed (see the module doc).

    A step is remembered for ``max_age`` seconds after it started (by ``clock``), or
    until more than ``size`` steps started since; its model is held by a weak
    reference, so a model built for one request (a per-tenant client) dies with it.
    """

    def __init__(
        self,
        size: int = STEPS_KEPT,
        max_age: float = STEP_MAX_AGE,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not isinstance(size, int) or size < 1:
            raise ValueError(f"size must be an int >= 1, got {size!r}")
        if not isinstance(max_age, int | float) or not max_age > 0:
            raise ValueError(f"max_age must be a number of seconds > 0, got {max_age!r}")
        if not callable(clock):
            raise TypeError(f"clock must be a callable returning seconds, got {clock!r}")
        self.size = size
        self.max_age = float(max_age)
        self.clock = clock
        # step -> (its first model, when the step started); oldest first.
        self._first: OrderedDict[str, tuple[Callable[[], BaseChatModel | None], float]]
        self._first = OrderedDict()
        self._lock = threading.Lock()

    def changed(self, step: str | None, model: BaseChatModel) -> bool:
        """Whether ``model`` is not the model step ``step`` was first handed (a step
        that cannot be told apart, ``None``, never is)."""
        if step is None:
            return False
        now = self.clock()
        with self._lock:
            self._forget_before(now - self.max_age)
            entry = self._first.get(step)
            first = entry[0]() if entry is not None else None
            if first is None:
                # A new step, or one whose model is gone: no request of it still runs.
                self._first[step] = (_reference(model), now)
                self._first.move_to_end(step)
                if len(self._first) > self.size:
                    self._first.popitem(last=False)
                return False
        return first is not model

    def __len__(self) -> int:
        """How many steps are remembered."""
        return len(self._first)

    def _forget_before(self, oldest: float) -> None:
        """Forget the steps that started before ``oldest`` (the lock is held)."""
        while self._first:
            started = next(iter(self._first.values()))[1]
            if started >= oldest:
                return
            self._first.popitem(last=False)


def _reference(model: BaseChatModel) -> Callable[[], BaseChatModel | None]:
    """A weak reference to ``model``, or a strong one if its class takes none."""
    try:
        return weakref.ref(model)
    except TypeError:
        return lambda: model


def model_names(model: BaseChatModel) -> frozenset[str]:
    """The names a run of ``model`` can report itself by (its params' model name,
    LangChain's ``ls_model_name``)."""
    names = {model_name_of(model), model_name_in(dict(model._identifying_params))}
    # A provider's own override of the LangSmith params may need call arguments.
    with contextlib.suppress(Exception):
        names.add(model._get_ls_params().get("ls_model_name"))
    return frozenset(n for n in names if isinstance(n, str) and n)


class TierRunWatch(BaseCallbackHandler):
    """Watches the model runs one routed tier call makes (see the module doc).

    Only runs started directly by the agent's model call (not runs nested in a model)
    and carrying this call's routing info (``info``) are looked at. A run naming a
    model outside ``names`` is another model's: its routing info is replaced by the
    tier of that model (``tiers``: model name -> tier), or dropped when it is none of
    them, and ``answerer`` names it until a run of the tier's own model starts again.
    """

    # Only run starts matter; every other event skips this handler.
    ignore_llm = True
    ignore_chain = True
    ignore_agent = True
    ignore_retriever = True
    ignore_retry = True
    ignore_custom_event = True
    run_inline = True  # a few dict reads: no hop to an executor thread

    def __init__(
        self,
        info: dict[str, Any],
        names: frozenset[str],
        tiers: Mapping[str, str],
        parent_run_id: UUID | None,
    ) -> None:
        self.info = info
        self.names = names
        self.tiers = tiers
        self.parent_run_id = parent_run_id
        self.answerer: str | None = None

    def on_chat_model_start(
        self,
        serialized: dict[str, Any],
        messages: list[list[Any]],
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        if parent_run_id != self.parent_run_id or not isinstance(metadata, dict):
            return
        if metadata.get(BATCH_ROUTING_KEY) is not self.info:
            return
        name = model_name_in(kwargs.get("invocation_params")) or metadata.get("ls_model_name")
        if not isinstance(name, str) or not name or name in self.names:
            self.answerer = None
            return
        self.answerer = name
        # The run's own metadata (every handler of this run reads the same dict): a
        # cost handler books the run as this model's when its answer ends the run.
        tier = self.tiers.get(name)
        if tier is None:
            del metadata[BATCH_ROUTING_KEY]
        else:
            metadata[BATCH_ROUTING_KEY] = {**self.info, "tier": tier, "model": name}


def parent_run_of(config: RunnableConfig) -> UUID | None:
    """The run that ``config``'s callbacks make the parent of the runs they start."""
    callbacks = config.get("callbacks")
    return callbacks.parent_run_id if isinstance(callbacks, BaseCallbackManager) else None


def with_handler(config: RunnableConfig, handler: BaseCallbackHandler) -> RunnableConfig:
    """``config`` with ``handler`` first among its callbacks (the config is not changed).

    First: a handler that raises at a run's start (a budget's refusal) stops LangChain
    from calling the handlers after it, and in async code leaves their coroutines
    never awaited (a RuntimeWarning)."""
    callbacks = config.get("callbacks")
    if isinstance(callbacks, BaseCallbackManager):
        manager = callbacks.copy()
        manager.handlers.insert(0, handler)
        manager.inheritable_handlers.insert(0, handler)
        return {**config, "callbacks": manager}
    return {**config, "callbacks": [handler, *(callbacks or ())]}


__all__ = [
    "STEPS_KEPT",
    "STEP_MAX_AGE",
    "StepModels",
    "TierRunWatch",
    "model_names",
    "parent_run_of",
    "step_of",
    "with_handler",
]
