"""A RouterLLM tier that failed gives its budget reservation back before the next tier
reserves (``CostEventHandler.release_tier``), and every way a routed call ends leaves
nothing reserved and releases no reservation twice: an answer from the first tier or a
fallback (plain, async, streamed), every tier failing, a refused climb, a cascade's
rejected answer, a cancelled call, a router under a SemanticCacheLLM."""

from __future__ import annotations

import asyncio
import contextvars
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from llama_index.core.llms.callbacks import llm_completion_callback

from costopt_core import SQLiteLedger
from costopt_core.decision import RouteDecision
from costopt_core.ledger import BudgetExceededError, CostLedger
from costopt_core.pricing import set_price
from llamaindex_costopt import CostEventHandler, RouterLLM, SemanticCacheLLM
from llamaindex_costopt.requests import CompleteRequest
from llamaindex_costopt.simulated import HashingEmbedding, SimulatedLLM, SimulatedProviderError
from llamaindex_costopt.wrapper import request_quotes

PRICES = {
    "ltr-cheap": (1e-6, 4e-6),
    "ltr-medium": (3e-6, 1e-5),
    "ltr-strong": (1e-5, 3e-5),
}
for _name, (_input, _output) in PRICES.items():
    set_price(_name, input_per_token=_input, output_per_token=_output)
QUESTION = "请分析并比较两种架构"


def most(model: str) -> float:
    """The most one call of ``model`` may cost: what the budget reserves for it."""
    request = CompleteRequest(QUESTION, False, {})
    return request_quotes(request, [(model, SimulatedLLM(max_tokens=100))])[0].max_cost()


class _Releases:
    """A ledger noting each reservation it is asked to release."""

    released: list[str]

    def release(self, reservation_id: str) -> None:
        self.released.append(reservation_id)
        super().release(reservation_id)  # type: ignore[misc]

    def released_twice(self) -> list[str]:
        return [r for r, times in Counter(self.released).items() if times > 1]


class MemoryLedger(_Releases, CostLedger):
    def __init__(self) -> None:
        super().__init__()
        self.released = []


class FileLedger(_Releases, SQLiteLedger):
    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.released = []


class _Slow(SimulatedLLM):
    """Answers after 5 s: long enough to be cancelled."""

    @llm_completion_callback()
    async def acomplete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> Any:
        await asyncio.sleep(5)
        return self.complete(prompt, formatted=formatted, **kwargs)


class RejectCheap:
    """A cascade that starts cheap and rejects the cheap tier's answers."""

    def route(self, text: str) -> RouteDecision:
        return RouteDecision("simple", 0.1, "cascade starts cheap")

    def accept(self, text: str, answer: str, tier: str) -> bool:
        return tier != "simple"


def tier(model: str, *, fail: bool = False, slow: bool = False) -> SimulatedLLM:
    # Long enough to be cut at max_tokens: each answer costs close to its maximum.
    kind = _Slow if slow else SimulatedLLM
    return kind(model_name=model, fail=fail, max_tokens=100, answer_words=400)


def router(*, strong_fails: bool = False, strong_slow: bool = False) -> RouterLLM:
    """Every call starts on the cheap tier, which is down."""
    return RouterLLM(
        llms={
            "simple": tier("ltr-cheap", fail=True),
            "complex": tier("ltr-strong", fail=strong_fails, slow=strong_slow),
        },
        strategy=lambda text: "simple",
    )


def cascade() -> RouterLLM:
    """Cheap answers (rejected: paid for), medium is down, strong answers."""
    return RouterLLM(
        llms={
            "simple": tier("ltr-cheap"),
            "medium": tier("ltr-medium", fail=True),
            "complex": tier("ltr-strong"),
        },
        strategy=RejectCheap(),
    )


@pytest.fixture(params=["memory", "sqlite"])
def ledger(request: pytest.FixtureRequest, tmp_path: Path) -> _Releases:
    return MemoryLedger() if request.param == "memory" else FileLedger(tmp_path / "c.db")


def settled(handler: CostEventHandler, ledger: _Releases) -> None:
    assert handler.ledger.reserved_usd == pytest.approx(0.0, abs=1e-15)
    assert ledger.released_twice() == []


def routing(response: Any) -> dict[str, Any]:
    return response.additional_kwargs["routing"]


def test_a_fallback_answer_is_settled_and_nothing_stays_reserved(ledger: _Releases) -> None:
    handler = CostEventHandler(budget_usd=1.0, ledger=ledger)

    async def asynchronous() -> list[Any]:
        stream = await router().astream_complete(QUESTION)
        return [await router().acomplete(QUESTION), [c async for c in stream][-1]]

    with handler:
        answers = [router().complete(QUESTION), list(router().stream_complete(QUESTION))[-1]]
        answers += asyncio.run(asynchronous())
    assert [routing(a)["fallback_from"] for a in answers] == ["simple"] * 4
    assert handler.summary().calls == 4
    assert handler.total_cost == pytest.approx(4 * most("ltr-strong"), rel=0.05)
    assert len(ledger.released) == 4  # each call's cheap tier, once
    settled(handler, ledger)


@pytest.mark.parametrize("asynchronous", [False, True])
def test_every_tier_failing_leaves_nothing_reserved(ledger: _Releases, asynchronous: bool) -> None:
    handler = CostEventHandler(budget_usd=1.0, ledger=ledger)
    failing = router(strong_fails=True)
    with handler, pytest.raises(SimulatedProviderError):
        if asynchronous:
            asyncio.run(failing.acomplete(QUESTION))
        else:
            failing.complete(QUESTION)
    assert handler.summary().calls == 0 and handler.total_cost == 0.0
    assert len(ledger.released) == 2  # the cheap tier's, then the strong tier's
    settled(handler, ledger)


def test_a_refused_climb_leaves_nothing_reserved(ledger: _Releases) -> None:
    # The cheap tier fits, the strong one does not: its climb is refused.
    handler = CostEventHandler(budget_usd=most("ltr-cheap") * 1.5, ledger=ledger)
    with handler, pytest.raises(BudgetExceededError):
        router().complete(QUESTION)
    assert handler.total_cost == 0.0
    settled(handler, ledger)


def test_a_cancelled_fallback_leaves_nothing_reserved(ledger: _Releases) -> None:
    # asyncio.wait_for cancels the call while the strong tier (reserved after the cheap
    # tier failed and gave its reservation back) is answering.
    handler = CostEventHandler(budget_usd=1.0, ledger=ledger)

    async def time_out() -> None:
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(router(strong_slow=True).acomplete(QUESTION), 0.05)

    with handler:
        asyncio.run(time_out())
    assert handler.total_cost == 0.0
    assert len(ledger.released) == 2
    settled(handler, ledger)


def test_an_abandoned_fallback_stream_leaves_nothing_reserved(ledger: _Releases) -> None:
    handler = CostEventHandler(budget_usd=1.0, ledger=ledger)
    with handler:
        stream = router().stream_complete(QUESTION)
        assert routing(next(stream))["fallback_from"] == "simple"
        stream.close()
    assert handler.summary().calls == 1  # what it streamed was billed
    assert handler.ledger.reserved_usd == pytest.approx(0.0, abs=1e-15)


def test_a_router_under_a_cache_gives_a_failed_tier_back(ledger: _Releases) -> None:
    def cached(llm: RouterLLM) -> SemanticCacheLLM:
        return SemanticCacheLLM(llm, embed_model=HashingEmbedding(dim=256))

    handler = CostEventHandler(budget_usd=2 * most("ltr-strong"), ledger=ledger)
    with handler:
        answer = cached(router()).complete(QUESTION)
        with pytest.raises(SimulatedProviderError):
            cached(router(strong_fails=True)).complete(QUESTION)
        # The first call's failed cheap tier held nothing: a second strong answer fits.
        again = cached(router()).complete(QUESTION)
    assert routing(answer)["tier"] == routing(again)["tier"] == "complex"
    assert handler.summary().calls == 2
    settled(handler, ledger)


def cascade_budget() -> float:
    return 3 * (most("ltr-cheap") + most("ltr-strong"))


def test_a_rejected_answer_keeps_its_reservation_and_a_failed_tier_gives_its_back(
    ledger: _Releases,
) -> None:
    # Each call spends cheap (rejected, paid for) + strong; the budget fits 3 of them.
    # The third used to answer with the rejected cheap answer ("escalation_refused"):
    # the failed medium tier's reservation held room under the strong tier's.
    budget = cascade_budget()
    handler = CostEventHandler(budget_usd=budget, ledger=ledger)
    with handler:
        replies = [cascade().complete(QUESTION) for _ in range(3)]
        with pytest.raises(BudgetExceededError):
            cascade().complete(QUESTION)
    assert [routing(r)["tier"] for r in replies] == ["complex"] * 3
    assert all(routing(r)["escalated_from"] == ["simple"] for r in replies)
    assert 0.95 * budget <= handler.total_cost <= budget + 1e-12
    settled(handler, ledger)


async def test_rejected_answers_stay_reserved_under_concurrency() -> None:
    # A rejected cheap answer was paid for: its reservation is held while the strong
    # tier answers, so many calls at once never spend past the budget.
    budget = cascade_budget() + 0.5 * most("ltr-cheap")
    handler = CostEventHandler(budget_usd=budget)
    with handler:
        results = await asyncio.gather(
            *(cascade().acomplete(QUESTION) for _ in range(60)), return_exceptions=True
        )
    assert all(
        not isinstance(r, BaseException) or isinstance(r, BudgetExceededError) for r in results
    )
    assert sum(not isinstance(r, BaseException) for r in results) >= 3
    assert handler.total_cost <= budget + 1e-12
    assert handler.ledger.reserved_usd == pytest.approx(0.0, abs=1e-15)


def test_sixteen_threads_use_the_whole_budget(ledger: _Releases) -> None:
    budget = 5 * most("ltr-strong")
    handler = CostEventHandler(budget_usd=budget, ledger=ledger)
    shared = router()

    def call() -> Any:
        try:
            return shared.complete(QUESTION)
        except BudgetExceededError as exc:
            return exc

    with handler, ThreadPoolExecutor(16) as pool:
        futures = [pool.submit(contextvars.copy_context().run, call) for _ in range(60)]
        results = [f.result() for f in futures]
    assert sum(not isinstance(r, BudgetExceededError) for r in results) == 5  # was 4
    assert 0.95 * budget <= handler.total_cost <= budget + 1e-12
    settled(handler, ledger)
