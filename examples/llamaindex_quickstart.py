"""costopt for LlamaIndex: route, cache and account a RAG query engine, fully offline.

Run:  python examples/llamaindex_quickstart.py

A query engine over in-memory documents answers questions with
``SemanticCacheLLM(RouterLLM(...))`` as ``Settings.llm`` while a ``CostEventHandler``
prices every call. Three simulated tiers stand in for DeepSeek-V3, GPT-4o-mini and
Claude 3.5 Sonnet (deterministic answers, realistic token usage, no API key); the index
uses the deterministic ``HashingEmbedding``. Swap in real LLMs, e.g.
``OpenAI(model="gpt-4o-mini")``, and nothing else changes.
"""

from __future__ import annotations

import sys
from typing import Any

try:
    from llama_index.core import Document, Settings, VectorStoreIndex
    from llama_index.core.instrumentation import get_dispatcher
    from llama_index.core.instrumentation.event_handlers import BaseEventHandler
except ImportError:  # the extra is not installed: say which, not a bare traceback
    sys.exit(f'{__file__} needs the [llamaindex] extra: pip install "costopt-llm[llamaindex]"')

from llamaindex_costopt import CostEventHandler, RouterLLM, SemanticCacheLLM
from llamaindex_costopt.simulated import HashingEmbedding, SimulatedLLM

DOCUMENTS = [
    "The support desk is open from 9am to 6pm, Monday to Friday; urgent tickets are "
    "answered within two hours.",
    "Refunds are issued within 14 days of a returned purchase; opened software cannot be refunded.",
    "Our platform runs on PostgreSQL with a Redis cache; the order service and the "
    "payment service talk through a message queue.",
    "退货政策：商品签收后七天内可无理由退货，运费由买家承担。",
    "系统架构：订单服务与支付服务通过消息队列解耦，数据库采用主从复制。",
]

QUESTIONS = [
    "When is the support desk open?",
    "Translate 'refunds are issued within 14 days' into French.",
    "请把退货政策翻译成英文。",
    "Summarize the refund policy in one sentence.",
    "How long do urgent tickets take?",
    "Analyze the trade-offs and compare a message queue with direct calls for our services.",
    "请分析并比较主从复制与分片在我们架构设计中的优劣。",
    "Evaluate the risks of running payments and orders on one PostgreSQL database.",
]

AGAIN = [
    "When is the support desk open?",  # verbatim repeat
    "When's the support desk open?",  # reworded
    "how long do the urgent tickets take",  # reworded
    "What hours is the support desk open?",  # too different for a lexical embedding
]


class LastDecision(BaseEventHandler):
    """Remembers the routing decision or cache hit of the latest call, for printing."""

    last: Any = None

    @classmethod
    def class_name(cls) -> str:
        return "LastDecision"

    def handle(self, event: Any, **kwargs: Any) -> None:
        if event.class_name() in ("RoutingDecisionEvent", "CacheHitEvent"):
            self.last = event

    def describe(self) -> str:
        event = self.last
        if event is None:
            return "-"
        if event.class_name() == "CacheHitEvent":
            return f"cache hit (similarity {event.similarity:.2f}, saved ${event.saved_usd:.6f})"
        return f"{event.tier:<8} {event.model}"


def main() -> None:
    cost = CostEventHandler(baseline_model="claude-3.5-sonnet").register()
    last = LastDecision()
    root = get_dispatcher()
    root.add_event_handler(last)

    router = RouterLLM(
        llms={
            "simple": SimulatedLLM(model_name="deepseek-v3"),
            "medium": SimulatedLLM(model_name="gpt-4o-mini"),
            "complex": SimulatedLLM(model_name="claude-3.5-sonnet"),
        },
        # No strategy: the default (the seed's rules on the seed's cue words, a zero-shot
        # judgement of every other prompt, English or Chinese).
    )
    # A fixed threshold is the seed's rule (the cosine alone decides): it lets this
    # offline demo's lexical hashing embedding show a reworded hit. In production give
    # no threshold (the calibrated gate) and a neural embedding (LocalEmbedding).
    cached = SemanticCacheLLM(
        router, embed_model=HashingEmbedding(dim=384), similarity_threshold=0.85
    )
    Settings.llm = cached
    Settings.embed_model = HashingEmbedding(dim=384)
    index = VectorStoreIndex.from_documents([Document(text=t) for t in DOCUMENTS])
    # The retrieved context is part of the exact cache key (an answer is only reused
    # over the same context), so one best chunk per question keeps paraphrases aligned.
    engine = index.as_query_engine(similarity_top_k=1)

    print("Routing is decided on the question, not on the retrieved context:\n")
    print(f"{'tier':<8} {'model':<18} question")
    for question in QUESTIONS:
        engine.query(question)
        print(f"{last.describe():<27} {question[:64]}")

    print("\nAsking again:")
    for question in AGAIN:
        engine.query(question)
        print(f"  {last.describe():<48} {question}")

    stats = cached.stats
    print(
        f"\ncache: {stats['hits']} hits, {stats['misses']} misses, "
        f"hit rate {stats['hit_rate']:.0%}, saved ${stats['saved_usd']:.6f}\n"
    )
    print(cost.report())

    root.event_handlers = [h for h in root.event_handlers if h is not last]
    cost.unregister()


if __name__ == "__main__":
    main()
