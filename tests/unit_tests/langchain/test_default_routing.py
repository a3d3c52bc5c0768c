"""What a LangChain user sees from a router given no strategy."""

from __future__ import annotations

from langchain_costopt import RouterChatModel
from langchain_costopt.simulated import SimulatedChatModel

ANALYSIS = (
    "Analyse our support tickets from last quarter, compare the top complaint themes "
    "with the quarter before, then design a step-by-step plan to cut the backlog."
)


def test_a_two_tier_router_with_no_strategy_saves_on_everyday_english() -> None:
    router = RouterChatModel(
        models={
            "cheap": SimulatedChatModel(model_name="gpt-4o-mini"),
            "strong": SimulatedChatModel(model_name="gpt-4o"),
        }
    )
    routed = {
        text: router.invoke(text).response_metadata["routing"]
        for text in ("hi", "What's the weather in Paris?", "Translate 'hello' into French")
    }
    assert {r["tier"] for r in routed.values()} == {"cheap"}
    assert {r["model"] for r in routed.values()} == {"gpt-4o-mini"}
    strong = router.invoke(ANALYSIS).response_metadata["routing"]
    assert (strong["tier"], strong["model"]) == ("strong", "gpt-4o")
    assert strong["reason"].startswith("zero-shot")
    # The seed's own Chinese prompts keep the seed's tiers.
    assert router.invoke("请翻译这句话").response_metadata["routing"]["tier"] == "cheap"
    assert router.invoke("请分析并比较两种架构").response_metadata["routing"]["tier"] == "strong"


CONTEXT = "Acme Corp was founded in 1987 by Jane Doe in Springfield. It makes pumps. " * 60
RAG_TEMPLATES = (
    # LangChain hub's rlm/rag-prompt: the question before the context.
    "You are an assistant for question-answering tasks. Use the following pieces of "
    "retrieved context to answer the question.\nQuestion: {question} \nContext: {context} "
    "\nAnswer:",
    "Context:\n{context}\n\nQuestion: {question}",
    "Use the following pieces of context to answer the question at the end.\n\n{context}"
    "\n\nQuestion: {question}\n\nHelpful Answer:",
    "根据以下资料回答问题。\n上下文：{context}\n问题：{question}",
)


def test_a_rag_prompt_is_routed_on_its_question_not_on_the_retrieved_context() -> None:
    # Judged whole, ~3k tokens of context sent every RAG question to the strong tier.
    from langchain_core.prompts import ChatPromptTemplate

    router = RouterChatModel(
        models={
            "cheap": SimulatedChatModel(model_name="gpt-4o-mini"),
            "strong": SimulatedChatModel(model_name="gpt-4o"),
        }
    )
    for template in RAG_TEMPLATES:
        chain = ChatPromptTemplate.from_messages([("human", template)]) | router
        for question, tier in (("Who founded Acme Corp?", "cheap"), (ANALYSIS, "strong")):
            reply = chain.invoke({"context": CONTEXT, "question": question})
            assert reply.response_metadata["routing"]["tier"] == tier, (template, question)
