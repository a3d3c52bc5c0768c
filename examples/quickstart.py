"""costopt quickstart: route, cache and account an LCEL chain, fully offline.

Run:  python examples/quickstart.py

Each prompt prints the tier and model that answered, what it cost and what it saved
against always asking the strongest model; then the cache and the cost report.
Three simulated tiers stand in for DeepSeek-V3, GPT-4o-mini and Claude 3.5 Sonnet
(deterministic answers, realistic token usage, no API key). Swap in real chat models,
e.g. ``ChatOpenAI(model="gpt-4o-mini")``, and nothing else changes.
"""

from __future__ import annotations

from langchain_core.globals import set_llm_cache
from langchain_core.prompts import ChatPromptTemplate

from costopt_core.metadata_keys import CACHE_MARKER_KEY
from langchain_costopt import (
    CostCallbackHandler,
    HashingEmbeddings,
    RouterChatModel,
    SemanticLLMCache,
)
from langchain_costopt.simulated import SimulatedChatModel

PROMPTS = [
    "Translate 'good morning' into French.",
    "请把这段话翻译成英文：今天天气很好。",
    "Summarize this paragraph in one sentence: costopt routes each call to a cheaper model.",
    "提取下面文本中的日期：会议定于2024年5月3日举行。",
    "What is the capital of Australia?",
    "Write a haiku about autumn rain.",
    "How do I reverse a list in Python?",
    "Analyze the trade-offs and compare a monolith with microservices for a 5-person team.",
    "请分析并比较 PostgreSQL 与 MongoDB 在电商系统架构设计中的优劣。",
    "Design an architecture for a real-time fraud detection system and evaluate its risks.",
    "评估这个推理过程是否正确：所有猫都会飞，汤姆是猫，所以汤姆会飞。",
    "Classify this review as positive or negative: 'The battery died in an hour.'",
]


def build_chain(cost: CostCallbackHandler):
    router = RouterChatModel(
        models={
            "simple": SimulatedChatModel(model_name="deepseek-v3"),
            "medium": SimulatedChatModel(model_name="gpt-4o-mini"),
            "complex": SimulatedChatModel(model_name="claude-3-5-sonnet"),
        },
        # No strategy: the default (the seed's rules on the seed's cue words, a zero-shot
        # judgement of every other prompt, English or Chinese).
    )
    prompt = ChatPromptTemplate.from_messages(
        [("system", "You are a concise assistant."), ("human", "{question}")]
    )
    return (prompt | router).with_config(callbacks=[cost])


def main() -> None:
    cost = CostCallbackHandler(baseline_model="claude-3-5-sonnet")
    # A fixed threshold is the seed's rule (the cosine alone decides): it lets this
    # offline demo's lexical hashing embedding show a reworded hit. In production give
    # no threshold (the calibrated gate, which also refuses look-alikes such as another
    # city or number) and a neural embedding (the [embeddings] extra: LocalEmbeddings).
    cache = SemanticLLMCache(embeddings=HashingEmbeddings(dim=384), similarity_threshold=0.85)
    set_llm_cache(cache)
    chain = build_chain(cost)

    print(f"{'tier':<8} {'model':<18} {'cost USD':>10} {'saved USD':>10}  prompt")
    for question in PROMPTS:
        spent, saved = cost.total_cost, cost.total_saved
        reply = chain.invoke({"question": question})
        spent, saved = cost.total_cost - spent, cost.total_saved - saved
        routing = reply.response_metadata["routing"]
        print(
            f"{routing['tier']:<8} {routing['model']:<18} {spent:>10.6f} {saved:>10.6f}"
            f"  {question[:50]}"
        )

    print("\nAsking again, once verbatim and once reworded:")
    for question in (
        "What is the capital of Australia?",
        "What's the capital of Australia?",
    ):
        reply = chain.invoke({"question": question})
        hit = reply.response_metadata.get(CACHE_MARKER_KEY)
        status = f"cache hit (similarity {hit['similarity']:.2f})" if hit else "model call"
        print(f"  {status:<28} {question}")

    stats = cache.stats
    print(
        f"\ncache: {stats['hits']} hits, {stats['misses']} misses, "
        f"hit rate {stats['hit_rate']:.0%}, saved ${stats['saved_usd']:.6f}"
    )
    print()
    print(cost.report())
    set_llm_cache(None)


if __name__ == "__main__":
    main()
