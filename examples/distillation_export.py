"""costopt distillation export: keep the strong tier's answers on routed traffic as a
fine-tuning set, personal data redacted, then project what a distilled model would save.
Fully offline.

Run:  python examples/distillation_export.py [--out distill.jsonl]

A router sends each prompt to one of three tiers (simulated DeepSeek-V3, GPT-4o-mini and
Claude 3.5 Sonnet). ``DistillationRecorder`` writes every answer of the strong tier as one line
of chat JSONL (``{"messages": [...]}``, the OpenAI fine-tuning format), after the
opt-in ``redact_pii`` has replaced e-mails, phone and card numbers. Then ``costopt
estimate`` projects a month in which a distilled cheap model takes half of the strong
tier's traffic. The LlamaIndex face does the same with
``llamaindex_costopt.distillation.DistillationEventHandler``.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from langchain_core.prompts import ChatPromptTemplate

from costopt_core import get_strategy
from costopt_core.cli import main as costopt
from costopt_core.distillation import redact_pii
from langchain_costopt import RouterChatModel
from langchain_costopt.distillation import DistillationRecorder
from langchain_costopt.simulated import SimulatedChatModel

PROMPTS = [
    "Translate 'see you tomorrow' into Spanish.",
    "Analyze and compare two designs for our refund service; reply to ann.lee@example.com.",
    "What is the capital of Canada?",
    "Evaluate the architecture risks of moving billing to an event queue. "
    "Call me on +1 (415) 555-0134 if unclear.",
    "请分析并比较这两种缓存架构设计的优劣，我的卡号是 4111 1111 1111 1111。",
    "Extract the date from: the meeting is on 3 May 2024.",
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="JSONL file (default: a temporary one)")
    args = parser.parse_args()
    out = args.out or Path(tempfile.mkdtemp()) / "distill.jsonl"

    recorder = DistillationRecorder(out, tiers=("complex",), redact=redact_pii)
    router = RouterChatModel(
        models={
            "simple": SimulatedChatModel(model_name="deepseek-v3"),
            "medium": SimulatedChatModel(model_name="gpt-4o-mini"),
            "complex": SimulatedChatModel(model_name="claude-3-5-sonnet"),
        },
        strategy=get_strategy("rules", languages=("zh", "en")),
    )
    prompt = ChatPromptTemplate.from_messages(
        [("system", "You are a careful senior engineer."), ("human", "{question}")]
    )
    chain = (prompt | router).with_config(callbacks=[recorder])

    for question in PROMPTS:
        tier = chain.invoke({"question": question}).response_metadata["routing"]["tier"]
        print(f"{tier:<8} {question[:70]}")
    recorder.close()

    stats = recorder.stats
    print(
        f"\n{stats['written']} strong-tier answers written to {out} "
        f"({stats['other_tier']} answers of cheaper tiers left out)"
    )
    first = json.loads(out.read_text(encoding="utf-8").splitlines()[0])
    print("first record, redacted:")
    for message in first["messages"]:
        print(f"  {message['role']:<9} {message['content'][:90]}")

    print("\nIf a distilled gpt-4o-mini took half of the strong tier's traffic:")
    costopt(
        [
            "estimate",
            "--mix",
            "simple=0.7,complex=0.3",
            "--models",
            "simple=deepseek-v3,complex=claude-3.5-sonnet",
            "--requests-per-day",
            "5000",
            "--input-tokens",
            "1000",
            "--output-tokens",
            "500",
            "--distill-share",
            "0.5",
            "--distilled-model",
            "gpt-4o-mini",
            # A fine-tuned gpt-4o-mini is billed above the base model: $0.30 / $1.20 per 1M.
            "--distilled-price",
            "0.30,1.20",
            "--distill-training-usd",
            "200",
        ]
    )


if __name__ == "__main__":
    main()
