"""Through ``CostCallbackHandler``: budgets hold for models the run does not price (an
Azure deployment or proxy alias answering as a priced model; a model priced nowhere).
Issue 16's audits: 100 concurrent first calls of 'prod-chat' spent 10x the budget; five
calls of an unknown fake model under a $0.000001 budget all went through at $0."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from langchain_core.language_models import BaseChatModel
from langchain_core.language_models.fake_chat_models import FakeListChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult

from costopt_core.pricing import set_price
from costopt_core.tokens import quote_prompt_tokens
from langchain_costopt import BudgetExceededError, CostCallbackHandler, cost_tracker
from tests.unit_tests.langchain.exact_cost import reply_at_cap

set_price("alias-answer", input_per_token=2.5e-6, output_per_token=1e-5)
QUESTION = "hello " * 300


class Deployment(BaseChatModel):
    """Like ``AzureChatOpenAI(azure_deployment="prod-chat")`` or a proxy alias: the run
    names the deployment (or nothing), the answer names the priced model; it bills
    exactly what a reservation on that model's price holds."""

    deployment_name: str | None = "prod-chat"
    max_tokens: int = 500

    @property
    def _llm_type(self) -> str:
        return "deployment"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        named = {"deployment_name": self.deployment_name} if self.deployment_name else {}
        return {**named, "max_tokens": self.max_tokens}

    def _reply(self, messages: list[BaseMessage]) -> ChatResult:
        return reply_at_cap(messages, self.max_tokens, "alias-answer", text="x")

    def _generate(self, messages: Any, stop: Any = None, run_manager: Any = None, **kw: Any):
        return self._reply(messages)

    async def _agenerate(self, messages: Any, stop: Any = None, run_manager: Any = None, **kw: Any):
        await asyncio.sleep(0.005)
        return self._reply(messages)


CALL_COST = quote_prompt_tokens([QUESTION]) * 2.5e-6 + 500 * 1e-5
BUDGET = 10 * CALL_COST


@pytest.mark.parametrize("name", ["prod-chat", None])
async def test_concurrent_first_calls_of_an_alias_never_pass_the_budget(name) -> None:
    model = Deployment(deployment_name=name)
    handler = CostCallbackHandler(budget_usd=BUDGET)
    config: Any = {"callbacks": [handler]}
    first = await asyncio.gather(
        *(model.ainvoke(QUESTION, config=config) for _ in range(100)), return_exceptions=True
    )
    # One call finds out which model answers (before: all 100, 1000 % of the budget).
    assert sum(isinstance(r, AIMessage) for r in first) == 1
    refusal = next(r for r in first if isinstance(r, BudgetExceededError))
    assert "no known price" in str(refusal) and "set_price(" in str(refusal)
    then = await asyncio.gather(
        *(model.ainvoke(QUESTION, config=config) for _ in range(100)), return_exceptions=True
    )
    assert sum(isinstance(r, AIMessage) for r in then) == 9  # quoted on alias-answer
    assert 0.8 * BUDGET <= handler.total_cost <= BUDGET + 1e-12
    assert handler.ledger.reserved_usd == 0.0  # type: ignore[attr-defined]


def test_a_batch_of_alias_calls_uses_the_budget_without_passing_it() -> None:
    handler = CostCallbackHandler(budget_usd=BUDGET)
    config: Any = {"callbacks": [handler], "max_concurrency": 16}
    model = Deployment()
    model.invoke(QUESTION, config=config)  # the first call learns the answering model
    results = model.batch([QUESTION] * 40, config=config, return_exceptions=True)
    assert sum(isinstance(r, AIMessage) for r in results) == 9
    assert 0.8 * BUDGET <= handler.total_cost <= BUDGET + 1e-12


def test_a_model_priced_nowhere_is_refused_after_its_first_call() -> None:
    model = FakeListChatModel(responses=["a long answer " * 50] * 5)
    answered = 0
    with cost_tracker(budget_usd=0.000001, on_budget="raise") as tracker:
        for _ in range(5):
            try:
                model.invoke("question " * 200)
                answered += 1
            except BudgetExceededError as exc:
                refusal = exc
    assert answered == 1  # before: 5, at a total cost of $0.0
    assert "cannot count" in str(refusal) and "set_price('unknown-model'" in str(refusal)
    assert tracker.to_dict()["unpriced_calls"] == 1


class Named(BaseChatModel):
    """A chat model whose run names ``request`` and whose answer names ``answer`` (20
    input and 10 output tokens), after ``delay`` seconds."""

    request: str = "prod-chat"
    answer: str = "gpt-4o-mini"
    delay: float = 0.0

    @property
    def _llm_type(self) -> str:
        return "named"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"model_name": self.request, "max_tokens": 100}

    def _reply(self) -> ChatResult:
        usage = {"input_tokens": 20, "output_tokens": 10, "total_tokens": 30}
        message = AIMessage(
            "ok", usage_metadata=usage, response_metadata={"model_name": self.answer}
        )
        return ChatResult(generations=[ChatGeneration(message=message)])

    def _generate(self, messages: Any, stop: Any = None, run_manager: Any = None, **kw: Any):
        return self._reply()

    async def _agenerate(self, messages: Any, stop: Any = None, run_manager: Any = None, **kw: Any):
        await asyncio.sleep(self.delay)
        return self._reply()


async def test_an_alias_first_call_in_flight_blocks_no_priced_call() -> None:
    # Review repro r1: a $10 budget, nothing spent, an alias's first call running.
    handler = CostCallbackHandler(budget_usd=10.0)
    config: Any = {"callbacks": [handler]}
    first = asyncio.create_task(Named(delay=0.2).ainvoke("hello", config=config))
    await asyncio.sleep(0.05)
    priced = Named(request="gpt-4o-mini")
    results = await asyncio.gather(
        *(priced.ainvoke("hi", config=config) for _ in range(5)), return_exceptions=True
    )
    await first
    # Before: all 5 refused, "cost budget exceeded (total): $10.000000 used of $10.000000".
    assert all(isinstance(r, AIMessage) for r in results)
    assert handler.summary().calls == 6


def test_a_router_with_an_unpriced_local_tier_budgets_its_priced_tier() -> None:
    # Review repro r2: the cheapest tier is a local model with no price.
    from langchain_costopt import RouterChatModel

    router = RouterChatModel(
        models={
            "simple": Named(request="my-local-llm", answer="my-local-llm"),
            "complex": Named(request="gpt-4o", answer="gpt-4o"),
        },
        strategy=lambda text: "simple" if text.startswith("easy") else "complex",
    )
    handler = CostCallbackHandler(budget_usd=5.0)
    config: Any = {"callbacks": [handler]}
    tiers = [
        router.invoke(q, config=config).response_metadata["routing"]["tier"]
        for q in ("easy 1", "hard 1", "hard 2")
    ]
    assert tiers == ["simple", "complex", "complex"]  # before: the hard ones refused
    with pytest.raises(BudgetExceededError, match=r"set_price\('my-local-llm'"):
        router.invoke("easy 2", config=config)  # known now to have no price


def test_a_call_first_routed_to_the_priced_tier_teaches_nothing_of_the_local_one() -> None:
    from langchain_costopt import RouterChatModel

    router = RouterChatModel(
        models={
            "simple": Named(request="my-local-llm-2", answer="my-local-llm-2"),
            "complex": Named(request="gpt-4o", answer="gpt-4o"),
        },
        strategy=lambda text: "simple" if text.startswith("easy") else "complex",
    )
    handler = CostCallbackHandler(budget_usd=5.0)
    config: Any = {"callbacks": [handler]}
    router.invoke("hard 1", config=config)
    router.invoke("easy 1", config=config)
    # Before: 'my-local-llm-2' was learned as "answered by gpt-4o" by the first call,
    # and its calls went on, quoted on gpt-4o while costing nothing the budget counts.
    with pytest.raises(BudgetExceededError, match=r"set_price\('my-local-llm-2'"):
        router.invoke("easy 2", config=config)
