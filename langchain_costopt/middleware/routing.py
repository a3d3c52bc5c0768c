"""CostRoutingMiddleware: every model call of a LangChain agent goes to the cheapest tier
that can handle it.

Example:
    >>> from langchain.agents import create_agent
    >>> from langchain_costopt.middleware import CostRoutingMiddleware
    >>> from langchain_costopt.simulated import SimulatedChatModel
    >>> tiers = {"simple": SimulatedChatModel(model_name="deepseek-v3"),
    ...          "complex": SimulatedChatModel(model_name="claude-3.5-sonnet")}
    >>> agent = create_agent(tiers["complex"], tools=[],
    ...                      middleware=[CostRoutingMiddleware(models=tiers)])
    >>> reply = agent.invoke({"messages": [("user", "请翻译: good morning")]})["messages"][-1]
    >>> reply.response_metadata["routing"]["tier"], reply.response_metadata["model_name"]
    ('simple', 'deepseek-v3')

An agent makes several model calls per user turn; most only read what a tool returned.
The middleware judges the calls that need judging and places the others:

* a call that starts a turn (the human spoke last) or follows a tool error: the
  strategy judges the latest human turn, as :class:`~langchain_costopt.RouterChatModel`
  does;
* a call that only reads successful tool results: ``tool_result_downgrade`` tiers below
  the turn's tier (0 keeps the turn's tier);
* a cost handler over budget with ``on_budget="downgrade"`` sends every call to the
  cheapest tier.

The chosen tier's model answers with the agent's tools bound to it; if it fails, the next
tier up answers (the engine's attempt loop, :mod:`costopt_core.engine`). The decision is
in the AI message's ``response_metadata["routing"]``, as from the router.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any, cast
from uuid import uuid4

from langchain.agents.middleware.types import (
    AgentMiddleware,
    ExtendedModelResponse,
    ModelRequest,
    ModelResponse,
)
from langchain_core.callbacks import CallbackManager
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.runnables import RunnableConfig
from langchain_core.runnables.config import ensure_config, var_child_runnable_config
from langgraph.errors import GraphBubbleUp

from costopt_core.budget_gate import downgrade_requested
from costopt_core.decision import RouteDecision, check_tier_mapping
from costopt_core.engine import ROUTING_KEY, Answered, AnswerFacts, RoutedCall, RoutingEngine
from costopt_core.metadata_keys import BATCH_ROUTING_KEY
from costopt_core.prompt_prefix import settings_for
from costopt_core.strategies import StrategyLike
from langchain_costopt.callbacks import CASCADE_HELD_KEY, settle_cascade_attempt
from langchain_costopt.chat_models import model_name_of
from langchain_costopt.context_values import holding
from langchain_costopt.messages import (
    is_summary,
    latest_human_index,
    latest_human_question,
    latest_human_text,
    trailing_tool_results,
)
from langchain_costopt.middleware.budget_signals import is_budget_stop, note_routing
from langchain_costopt.middleware.model_choice import (
    StepModels,
    TierRunWatch,
    model_names,
    parent_run_of,
    step_of,
    with_handler,
)
from langchain_costopt.routed_output import message_facts

ModelResult = ModelResponse[Any] | AIMessage | ExtendedModelResponse[Any]
#: Routing record key of every routed call: the tier its user's turn was given (a call
#: that reads tool results may go to a tier below it).
TURN_TIER = "turn_tier"
# The next step of an agent's model call, as ``wrap_model_call`` receives it.
CallNext = Callable[[ModelRequest[Any]], ModelResult]
ACallNext = Callable[[ModelRequest[Any]], Awaitable[ModelResult]]


class CostRoutingMiddleware(AgentMiddleware):
    """Route each model call of a ``create_agent`` agent to a tier (see the module doc).

    Args:
        models: tier name -> chat model, cheapest first (at least two tiers).
        strategy: as for ``RouterChatModel``: a name, an object with ``route(text)``
            or a ``text -> tier`` callable; the seed's rules when omitted.
        tool_result_downgrade: how many tiers below the turn's tier a call that only
            reads successful tool results goes (0 = stay on the turn's tier).
        fallback: on an error, the next tier up answers.
    """

    def __init__(
        self,
        models: Mapping[str, BaseChatModel],
        strategy: StrategyLike = None,
        tool_result_downgrade: int = 1,
        *,
        fallback: bool = True,
    ) -> None:
        super().__init__()
        if not isinstance(tool_result_downgrade, int) or tool_result_downgrade < 0:
            raise ValueError(
                f"tool_result_downgrade must be an int >= 0, got {tool_result_downgrade!r}"
            )
        self.models: dict[str, BaseChatModel] = check_tier_mapping(
            models, argument="models", model_type=BaseChatModel, model_kind="LangChain chat model"
        )
        self.tool_result_downgrade = tool_result_downgrade
        self.engine = RoutingEngine(
            strategy,
            {tier: model_name_of(model) for tier, model in self.models.items()},
            fallback=fallback,
            read_answer=_response_facts,
            propagate=(GraphBubbleUp,),
        )
        self._steps = StepModels()
        self._names = {tier: model_names(model) for tier, model in self.models.items()}
        self._tier_of: dict[str, str] = {}
        for tier, names in self._names.items():
            for name in names:
                self._tier_of.setdefault(name, tier)

    # -- decisions -----------------------------------------------------------------------

    def route(self, messages: list[BaseMessage], *, downgrade: bool = False) -> RouteDecision:
        """The decision for the agent's next model call over ``messages``."""
        if downgrade:
            return self.engine.choose("", downgrade=True)
        results = trailing_tool_results(messages)
        reads_results = results and all(r.status != "error" for r in results)
        turn = self._turn(messages)
        # The turn's tier goes in every record: a later call whose question a summary
        # replaced keeps it (see _turn), whichever tier answered this one.
        extra = {**turn.extra, TURN_TIER: turn.tier}
        if not reads_results:
            return RouteDecision(turn.tier, turn.score, turn.reason, extra)
        tiers = self.engine.tiers
        below = max(0, tiers.index(turn.tier) - self.tool_result_downgrade)
        reason = f"reads tool results: {tiers[below]} (the turn's tier is {turn.tier})"
        return RouteDecision(tiers[below], turn.score, reason, extra)

    def _turn(self, messages: list[BaseMessage]) -> RouteDecision:
        """The decision for the user's turn: the strategy's on the user's question.

        Once a summarising middleware (LangChain's ``SummarizationMiddleware``) has folded
        the question into its summary, the summary is no question to judge: the turn
        keeps the tier its calls so far were given, read from the routing record of the
        latest AI message since the summary; without one, the summary is judged."""
        index = latest_human_index(messages)
        if index >= 0 and is_summary(messages[index]):
            kept = self._recorded_turn(messages[index + 1 :])
            if kept is not None:
                return kept
        return self.engine.decide(latest_human_question(messages))

    def _recorded_turn(self, messages: list[BaseMessage]) -> RouteDecision | None:
        """The turn's decision as the routing record of the latest AI message among
        ``messages`` gives it, if it gives one of this middleware's tiers."""
        for message in reversed(messages):
            record = message.response_metadata.get(ROUTING_KEY) if message.type == "ai" else None
            if not isinstance(record, dict):
                continue
            tier = record.get(TURN_TIER, record.get("tier"))
            if tier not in self.engine.names:
                return None
            score = record.get("score")
            score = score if isinstance(score, int | float) and 0 <= score <= 1 else 0.5
            reason = f"the turn's tier, kept: a summary replaced its question ({tier})"
            return RouteDecision(tier, score, reason)
        return None

    def _open(self, request: ModelRequest[Any]) -> RoutedCall:
        note_routing()  # a BudgetMiddleware outside this one can downgrade through it
        # The agent run's handlers, as LangChain will configure the model's run: those
        # in its config and those of configure hooks (``cost_tracker``).
        callbacks = ensure_config().get("callbacks")
        handlers = CallbackManager.configure(inheritable_callbacks=callbacks).handlers
        decision = self.route(request.messages, downgrade=downgrade_requested(handlers))
        # The handlers go with the call: a budget that refuses the chosen tier and
        # downgrades (on_budget="downgrade") sends the call to the cheapest tier instead.
        return self.engine.start(decision, latest_human_text(request.messages), handlers)

    def _tier_call(
        self, call: RoutedCall, request: ModelRequest[Any], tier: str, asked: dict[str, str]
    ) -> tuple[ModelRequest[Any], RunnableConfig, TierRunWatch]:
        """The request for ``tier``'s model, the config its run is to take, and the
        watch on the model runs the call makes.

        The model's run is its own, so the decision travels in the run's metadata (a
        cost handler reads the tier, and prices the routing saving, from it), through
        the config the agent's model call picks up from its context: the tier's model
        itself answers, never a per-call copy (a copy would restart a scripted model
        and rebuild a provider's client on every call). A middleware inside this one may
        still hand the call to another model (``ModelFallbackMiddleware``): the watch
        takes the tier's info off that model's run and names the model."""
        model = self.models[tier]
        info = {**call.record(tier), "tier_models": dict(self.engine.names)}
        # A cascade's rejected attempts were runs of their own, each counted when it
        # ended: listed here too, a cost handler would count them again.
        info.pop("attempts", None)
        if self.engine.accept is not None:
            # A cascade judges the answer after its run ended and was booked: a cost
            # handler holds the booking until _settled says whether it was rejected
            # (then it is booked as an attempt, as a router's rejected attempt is).
            held = uuid4().hex
            info[CASCADE_HELD_KEY] = held
            asked[held] = tier
        config = ensure_config()
        config = {**config, "metadata": {**config.get("metadata", {}), BATCH_ROUTING_KEY: info}}
        watch = TierRunWatch(info, self._names[tier], self._tier_of, parent_run_of(config))
        routed = request.override(
            model=model, model_settings=_settings_for(model, request.model_settings)
        )
        return routed, with_handler(cast(RunnableConfig, config), watch), watch

    def _asker(
        self,
        call: RoutedCall,
        request: ModelRequest[Any],
        handler: CallNext,
        answerers: dict[str, str | None],
        asked: dict[str, str],
    ) -> Callable[[str], ModelResult]:
        def ask(tier: str) -> ModelResult:
            routed, config, watch = self._tier_call(call, request, tier, asked)
            with holding(var_child_runnable_config, config):
                result = handler(routed)
            answerers[tier] = watch.answerer
            return result

        return ask

    def _aasker(
        self,
        call: RoutedCall,
        request: ModelRequest[Any],
        handler: ACallNext,
        answerers: dict[str, str | None],
        asked: dict[str, str],
    ) -> Callable[[str], Awaitable[ModelResult]]:
        async def ask(tier: str) -> ModelResult:
            routed, config, watch = self._tier_call(call, request, tier, asked)
            with holding(var_child_runnable_config, config):
                result = await handler(routed)
            answerers[tier] = watch.answerer
            return result

        return ask

    # -- the hooks ----------------------------------------------------------------------

    def wrap_model_call(self, request: ModelRequest[Any], handler: CallNext) -> ModelResult:
        if self._chosen_outside(request):
            return handler(request)
        call = self._open(request)
        answerers: dict[str, str | None] = {}
        asked: dict[str, str] = {}
        try:
            answered = call.run(self._asker(call, request, handler, answerers, asked))
        except BaseException:
            _settled(asked, None)
            raise
        _settled(asked, answered)
        return self._annotated(answered, answerers.get(answered.tier))

    async def awrap_model_call(self, request: ModelRequest[Any], handler: ACallNext) -> ModelResult:
        if self._chosen_outside(request):
            return await handler(request)
        call = self._open(request)
        answerers: dict[str, str | None] = {}
        asked: dict[str, str] = {}
        try:
            answered = await call.arun(self._aasker(call, request, handler, answerers, asked))
        except BaseException:
            _settled(asked, None)
            raise
        _settled(asked, answered)
        return self._annotated(answered, answerers.get(answered.tier))

    def _chosen_outside(self, request: ModelRequest[Any]) -> bool:
        """Whether a middleware listed before this one handed over another model than
        the agent step started with (``ModelFallbackMiddleware``'s fallback once the
        routed tiers failed): that model answers, unrouted."""
        return self._steps.changed(step_of(request), request.model)

    def _annotated(self, answered: Answered[ModelResult], answerer: str | None) -> ModelResult:
        message = _ai_message(answered.result)
        if message is None or is_budget_stop(message):
            # A BudgetMiddleware inside this one stopped the call: no tier answered.
            return answered.result
        info = dict(answered.info)
        if answerer is not None:
            # A middleware inside this one had another model answer: the record names
            # it (and its tier, if it is one), as the cost handler booked it.
            info.update(tier=self._tier_of.get(answerer), model=answerer)
            info["fallback_from"] = answered.tier
        message.response_metadata.setdefault("model_name", info["model"])
        message.response_metadata[ROUTING_KEY] = info
        return answered.result


def _settled(asked: dict[str, str], answered: Answered[ModelResult] | None) -> None:
    """Book the answers of a cascade's tier calls (``asked``: held key -> tier asked):
    the answered tier's as the routed call, every other one as a rejected attempt (also
    when no tier answered: each was paid for, and none is the answer)."""
    for held, tier in asked.items():
        settle_cascade_attempt(held, answered is not None and tier == answered.tier)


def _settings_for(model: BaseChatModel, settings: dict[str, Any]) -> dict[str, Any]:
    """The request's model settings that ``model`` accepts.

    A provider prompt-caching middleware (Anthropic's, or costopt's
    ``PromptCacheMiddleware``) marks the request with ``cache_control``; other providers
    reject that argument, so a tier whose provider takes no mark gets the request
    without it (as LangChain's model fallback does).
    """
    return settings_for(model_name_of(model), model._llm_type, settings)


def _ai_message(result: Any) -> AIMessage | None:
    if isinstance(result, ExtendedModelResponse):
        result = result.model_response
    if isinstance(result, AIMessage):
        return result
    if isinstance(result, ModelResponse):
        return next((m for m in result.result if isinstance(m, AIMessage)), None)
    return None


def _response_facts(result: Any) -> AnswerFacts | None:
    """What a cascade strategy judges in an agent's model answer (see ``message_facts``);
    None (accepted as it is) for a budget stop, which a dearer tier would not better."""
    message = _ai_message(result)
    return None if is_budget_stop(message) else message_facts(message)


__all__ = ["ACallNext", "CallNext", "CostRoutingMiddleware", "ModelResult"]
