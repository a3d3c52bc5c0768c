"""costopt prompt compression: fewer input tokens per call, the saving in the cost report
as its own line. Fully offline.

Run:  python examples/compression.py

A support bot answers from retrieved documents and a long chat history, on gpt-4o (a
simulated model that reports usage like the real one). The same ten questions are asked
twice: once as they come, once through

* ``ChunkDocumentCompressor`` on the retrieved documents (duplicates, repeated footers
  and a text splitter's overlaps dropped; the sentences most relevant to the question
  kept within 120 tokens), and
* ``PromptCompressor`` before the model (whitespace squeezed; the history trimmed to
  400 tokens, keeping the system prompt and the latest turn).

It prints the input tokens and dollars of both runs and the compressed run's report,
whose ``compression`` saving is the removed tokens at gpt-4o's input price (the prompt
built from the compressed documents is marked with what the document compressor
removed, ``marked(..., documents_compressed_tokens(kept))``; the prompt compressor adds
its own). With a real
model nothing else changes: put ``ChatOpenAI(model="gpt-4o")`` where the simulated one is.
"""

from __future__ import annotations

from langchain_core.documents import Document
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage

from langchain_costopt import CostCallbackHandler
from langchain_costopt.compression import (
    ChunkDocumentCompressor,
    PromptCompressor,
    documents_compressed_tokens,
    marked,
)
from langchain_costopt.simulated import SimulatedChatModel

MODEL = "gpt-4o"
FOOTER = "Bikes & Co. | Opening hours 9-18 | Returns within 30 days | Privacy policy"
PAGES = [
    "Our city bikes come with a 2-year warranty on the frame. "
    "The warranty does not cover tyres, chains or brake pads, which wear with use.",
    "Electric bikes: the battery is covered for 500 charge cycles or 2 years. "
    "A battery that loses more than 30 % of its capacity within that period is replaced.",
    "Repairs are done in our workshop within 5 working days. "
    "A loan bike is available while yours is repaired, for a deposit of 50 euros.",
    "Delivery is free above 300 euros. Bikes are delivered assembled and adjusted "
    "to your height; accessories ship separately within 48 hours.",
]
QUESTIONS = [
    "How long is the battery of an electric bike covered?",
    "Does the warranty cover brake pads?",
    "How long does a repair take?",
    "Can I get a loan bike during a repair?",
    "Is delivery free?",
    "Are bikes delivered assembled?",
    "What happens if my battery loses capacity?",
    "How long is the frame warranty?",
    "How much is the loan bike deposit?",
    "When do accessories arrive?",
]


def retrieve(question: str) -> list[Document]:
    """A retriever returning every page twice (two overlapping indexes) with its footer."""
    pages = [Document(f"{page}\n{FOOTER}") for page in PAGES]
    return pages + [Document(f"{page}  \n\n\n{FOOTER}") for page in PAGES]


def prompt(history: list[BaseMessage], question: str, docs: list[Document]) -> list[BaseMessage]:
    context = "\n\n".join(doc.page_content for doc in docs)
    return [*history, HumanMessage(f"Context:\n{context}\n\nQuestion: {question}")]


def main() -> None:
    model = SimulatedChatModel(model_name=MODEL)
    documents = ChunkDocumentCompressor(max_tokens=120)
    chain = PromptCompressor(max_tokens=400) | model
    plain, compressed = CostCallbackHandler(), CostCallbackHandler()
    history: list[BaseMessage] = [SystemMessage("You are the support bot of Bikes & Co.")]
    for question in QUESTIONS:
        docs = retrieve(question)
        model.invoke(prompt(history, question, docs), config={"callbacks": [plain]})
        kept = list(documents.compress_documents(docs, question))
        # The prompt carries what the document compressor removed; PromptCompressor
        # adds what it removes, and the cost handler bills the sum as compression.
        messages = marked(prompt(history, question, kept), documents_compressed_tokens(kept))
        answer = chain.invoke(messages, config={"callbacks": [compressed]})
        history += [HumanMessage(question), AIMessage(str(answer.content))]

    before = plain.summary().models[MODEL].input_tokens
    after = compressed.summary().models[MODEL].input_tokens
    print(f"{len(QUESTIONS)} questions on {MODEL}")
    print(f"input tokens: {before:,} uncompressed, {after:,} compressed")
    print(f"input tokens cut by {100 * (before - after) / before:.0f} %")
    print(f"spend: ${plain.total_cost:.4f} uncompressed, ${compressed.total_cost:.4f} compressed")
    print(f"compression saving in the report: ${compressed.to_dict()['saved_compression_usd']:.4f}")
    print()
    print(compressed.report())


if __name__ == "__main__":
    main()
