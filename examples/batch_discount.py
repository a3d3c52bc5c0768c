"""costopt batch discount: calls that can wait go through the provider's batch API at half
price. Fully offline: a local imitation of OpenAI's Batch API stands in for OpenAI.

Run:  python examples/batch_discount.py

Ten summarisation requests are made twice with the same model: directly (an answer now,
at the standard price) and deferred (one batch, answered "within 24 hours", here within
a fraction of a second). Both are tracked by a cost handler; the deferred ones are billed
at the catalog's batch rate and the report shows what that saved on its own "batch"
line.

With the real API nothing else changes: put ``ChatOpenAI(model="gpt-4o-mini")`` (or
``ChatAnthropic(...)``) where the simulated model is and drop ``provider``,
``base_url`` and ``api_key``; they are read from the model. A ``RouterChatModel`` whose
tiers are ``BatchAPIChatModel``s batches each tier's group with
``router.batch(inputs, deferred=True)``.
"""

from __future__ import annotations

from costopt_core.batch.imitation import ImitationBatchServer
from langchain_costopt import CostCallbackHandler
from langchain_costopt.batch import BatchAPIChatModel
from langchain_costopt.simulated import SimulatedChatModel

MODEL = "gpt-4o-mini"
DOCUMENTS = [
    "the quarterly sales report for the northern region",
    "a customer complaint about a late delivery",
    "the release notes of version 2.4 of the mobile app",
    "an internal memo on the new travel policy",
    "a support ticket about a failed password reset",
    "the minutes of Monday's planning meeting",
    "a product review praising the battery life",
    "the onboarding guide for new engineers",
    "a supplier's offer for office chairs",
    "the incident report of last night's outage",
]
PROMPTS = [f"Summarise in two sentences: {doc}." for doc in DOCUMENTS]


def main() -> None:
    with ImitationBatchServer(processing_s=0.2) as openai_imitation:
        model = BatchAPIChatModel(
            model=SimulatedChatModel(model_name=MODEL),  # e.g. ChatOpenAI(model=MODEL)
            provider="openai",
            base_url=openai_imitation.openai_base_url,
            api_key=openai_imitation.api_key,
            poll_interval_s=0.05,
        )

        direct = CostCallbackHandler()
        model.batch(PROMPTS, {"callbacks": [direct]})  # urgent: answered now

        deferred = CostCallbackHandler()
        answers = model.batch(PROMPTS, {"callbacks": [deferred]}, deferred=True)

    batch_id = answers[0].response_metadata["batch_id"]
    print(f"{len(answers)} deferred calls answered by batch {batch_id}")
    print(f"first answer: {answers[0].content[:70]}...")
    print()
    print(f"direct:   {direct.summary().calls} calls, {direct.total_cost:.6f} USD")
    print(f"deferred: {deferred.summary().calls} calls, {deferred.total_cost:.6f} USD")
    ratio = deferred.total_cost / direct.total_cost
    print(f"the deferred batch cost {ratio:.0%} of the direct calls")
    print()
    print(deferred.report())


if __name__ == "__main__":
    main()
