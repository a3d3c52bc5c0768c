"""CascadeStrategy: checks, and escalation with cost accounting through RouterChatModel."""

from __future__ import annotations

import re

import pytest

from costopt_core.cascade import CascadeStrategy, parse_confidence, parse_json_answer
from costopt_core.pricing import get_price
from costopt_core.strategies import get_strategy
from langchain_costopt.chat_models import RouterChatModel
from langchain_costopt.simulated import SimulatedChatModel

PROSE = "Sure! The total is 4 apples."
JSON = '{"total": 4}'


def _router(cheap_answer: str, strong_answer: str = JSON, **checks) -> RouterChatModel:
    return RouterChatModel(
        models={
            "cheap": SimulatedChatModel(model_name="gpt-4o-mini", answer=cheap_answer),
            "strong": SimulatedChatModel(model_name="gpt-4o", answer=strong_answer),
        },
        strategy=CascadeStrategy(**checks),
    )


def test_rejected_cheap_answer_escalates_and_its_usage_is_recorded() -> None:
    reply = _router(PROSE, require_json=True).invoke("Count the apples; answer as JSON")
    assert reply.content == JSON
    assert reply.response_metadata["model_name"] == "gpt-4o"
    routing = reply.response_metadata["routing"]
    assert routing["tier"] == "strong" and routing["escalated_from"] == ["cheap"]
    (attempt,) = routing["attempts"]
    assert attempt["tier"] == "cheap" and attempt["model"] == "gpt-4o-mini"
    usage = attempt["usage"]
    assert usage["input_tokens"] > 0 and usage["output_tokens"] > 0
    # Both calls are priced: the rejected attempt adds to what the answer cost.
    wasted = get_price("gpt-4o-mini").cost(usage["input_tokens"], usage["output_tokens"])
    answered = get_price("gpt-4o").cost(
        reply.usage_metadata["input_tokens"], reply.usage_metadata["output_tokens"]
    )
    assert wasted > 0 and answered > 0


def test_accepted_cheap_answer_stays_cheap() -> None:
    reply = _router('```json\n{"total": 4}\n```', require_json=True).invoke("Count, as JSON")
    routing = reply.response_metadata["routing"]
    assert routing["tier"] == "cheap" and "attempts" not in routing
    assert routing["reason"].startswith("cascade: cheapest tier first")


async def test_async_escalation() -> None:
    reply = await _router(PROSE, json_keys=["total"]).ainvoke("Count the apples")
    assert reply.response_metadata["routing"]["escalated_from"] == ["cheap"]


def test_three_tiers_escalate_twice_and_stream_the_final_answer() -> None:
    router = RouterChatModel(
        models={
            "simple": SimulatedChatModel(
                model_name="deepseek-v3", answer="I'm sorry, but I can't help with that."
            ),
            "medium": SimulatedChatModel(model_name="gpt-4o-mini", answer="ok"),
            "complex": SimulatedChatModel(
                model_name="claude-3.5-sonnet", answer="A full answer, long enough."
            ),
        },
        strategy=CascadeStrategy(min_length=10),
    )
    chunks = list(router.stream("Explain it"))
    text = "".join(c.content for c in chunks)
    assert text == "A full answer, long enough."
    routing = next(
        c.response_metadata["routing"] for c in chunks if "routing" in c.response_metadata
    )
    assert [a["model"] for a in routing["attempts"]] == ["deepseek-v3", "gpt-4o-mini"]


def test_last_tier_answer_is_kept_even_if_rejected() -> None:
    reply = _router(PROSE, strong_answer="still prose", require_json=True).invoke("JSON please")
    assert reply.content == "still prose"
    assert reply.response_metadata["routing"]["tier"] == "strong"


def test_checks_one_by_one() -> None:
    c = CascadeStrategy(pattern=r"answer: \d+", reject_refusals=False)
    assert c.accept("q", "the answer: 12", "t") and not c.accept("q", "twelve", "t")
    conf = CascadeStrategy(min_confidence=0.7)
    assert conf.accept("q", "42. Confidence: 80%", "t")
    assert not conf.accept("q", "42. Confidence: 0.5", "t")
    assert conf.check("q", "42", "t").reason == "no self-reported confidence"
    assert not CascadeStrategy().accept("q", "As an AI language model, I cannot", "t")
    assert not CascadeStrategy().accept("q", "抱歉，我无法回答这个问题", "t")
    assert CascadeStrategy().accept("q", "Here is the plan.", "t")
    keys = CascadeStrategy(json_keys=["a", "b"])
    assert keys.check("q", '{"a": 1}', "t").reason == "JSON lacks keys ['b']"
    assert not keys.accept("q", "[1, 2]", "t")


def test_validator_signatures_and_exceptions() -> None:
    seen = []

    def by_answer(answer):
        return answer.endswith(".")

    def by_question(question, answer):
        return question.split()[0] in answer

    def by_tier(question, answer, tier):
        seen.append(tier)
        return tier != "cheap"

    def broken(answer):
        raise RuntimeError("validator bug")

    assert CascadeStrategy(by_answer).accept("q", "done.", "t")
    assert not CascadeStrategy(by_question).accept("Paris?", "London", "t")
    assert not CascadeStrategy(by_tier).accept("q", "a", "cheap") and seen == ["cheap"]
    assert CascadeStrategy(broken).check("q", "a", "t").reason == "validator raised RuntimeError"


def test_parsers() -> None:
    assert parse_confidence("conf 3/10 ... final confidence: 9/10") == 0.9
    assert parse_confidence("Confidence level: high") == 0.85
    assert parse_confidence("置信度：0.6") == 0.6
    assert parse_confidence("no number here") is None
    assert parse_json_answer('```json\n{"x": 1}\n```') == {"x": 1}
    with pytest.raises(ValueError, match="not JSON"):
        parse_json_answer("nope")


def test_start_strategy_and_by_name() -> None:
    c = CascadeStrategy(start="rules")
    assert c.route("分析并比较两种架构").tier == "complex"
    by_name = get_strategy("cascade", require_json=True)
    assert by_name.route("x").tier == "simple" and not by_name.accept("x", "prose", "simple")


def test_bad_arguments() -> None:
    with pytest.raises(TypeError, match="validator must be callable"):
        CascadeStrategy(validator="yes")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="min_confidence"):
        CascadeStrategy(min_confidence=80)
    with pytest.raises(ValueError, match="min_length"):
        CascadeStrategy(min_length=-1)
    with pytest.raises(ValueError, match="regular expression"):
        CascadeStrategy(pattern="(")
    assert CascadeStrategy(pattern=re.compile("x")).accept("q", "xyz", "t")
