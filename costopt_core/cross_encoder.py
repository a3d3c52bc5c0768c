"""``CrossEncoderVerifier``: a local cross-encoder judges the cache's uncertain hits
(extra ``[crossencoder]``: ``safetensors`` and ``tokenizers``; no PyTorch).

Example:
    >>> from costopt_core.cross_encoder import CrossEncoderVerifier, write_tiny_model
    >>> import tempfile
    >>> folder = write_tiny_model(tempfile.mkdtemp())  # a random toy model, for the example
    >>> judge = CrossEncoderVerifier(folder, threshold=0.5)
    >>> isinstance(judge("Is it open on Sunday?", "Is it open Sundays?", "Yes."), bool)
    True
    >>> 0.0 <= judge.score("a question", "another question") <= 1.0
    True

A cross-encoder reads both questions together, so it sees word order, negation and
numbers that a sentence embedding averages away; it is far cheaper than a chat model
(milliseconds on a CPU for a MiniLM-sized model) and free per call. It reads a BERT
sequence-classification checkpoint from a *local folder* you provide (``config.json``,
``model.safetensors``, ``tokenizer.json``: the layout of Hugging Face's cross-encoder
repositories, e.g. an STS or paraphrase cross-encoder fetched once by you). Nothing is
downloaded at run time. The score is the sigmoid of the single logit (or of the last
class's logit minus the first for two-class heads); ``score >= threshold`` is "yes".
Which questions it compares: the new one and the cached one (a paraphrase judgement);
the cached answer is not needed.
"""

from __future__ import annotations

import json
import math
import threading
from pathlib import Path

import numpy as np

from costopt_core.bert_numpy import Bert, tiny_weights
from costopt_core.cache_gate import number_in
from costopt_core.exports import require_extra


class CrossEncoderVerifier:
    """``verifier(question, cached_question, cached_answer) -> bool`` on a local
    cross-encoder.

    Args:
        model_dir: folder with ``config.json``, ``model.safetensors``, ``tokenizer.json``.
        threshold: probability in (0, 1) from which the pair counts as the same question.
        max_length: tokens of the pair kept (longer pairs are truncated).
    """

    def __init__(self, model_dir: str | Path, threshold: float = 0.5, max_length: int = 256):
        if not number_in(threshold, 0, 1) or threshold == 1:
            raise ValueError(f"threshold must be a probability in (0, 1), got {threshold!r}")
        if not isinstance(max_length, int) or max_length < 8:
            raise ValueError(f"max_length must be an int >= 8, got {max_length!r}")
        folder = Path(model_dir)
        for name in ("config.json", "model.safetensors", "tokenizer.json"):
            if not (folder / name).is_file():
                raise ValueError(f"model_dir must hold {name}: not found in {folder}")
        require_extra("safetensors", "crossencoder", "CrossEncoderVerifier")
        require_extra("tokenizers", "crossencoder", "CrossEncoderVerifier")
        from safetensors.numpy import load_file
        from tokenizers import Tokenizer

        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
        self.bert = Bert(
            load_file(str(folder / "model.safetensors")),
            heads=int(config.get("num_attention_heads", 12)),
        )
        self.tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(max_length)
        self.threshold = float(threshold)
        self._lock = threading.Lock()  # a Tokenizer is not documented as thread-safe

    def score(self, question: str, cached_question: str) -> float:
        """Probability that the two questions ask the same thing."""
        with self._lock:
            encoding = self.tokenizer.encode(question, cached_question)
        logits = self.bert.classify(encoding.ids, encoding.type_ids)
        logit = float(logits[-1] - logits[0]) if logits.shape[0] > 1 else float(logits[0])
        return 1.0 / (1.0 + math.exp(-logit))

    def verify(self, question: str, cached_question: str, cached_answer: str) -> bool:
        return self.score(question, cached_question) >= self.threshold

    __call__ = verify


def write_tiny_model(folder: str | Path, seed: int = 0) -> Path:
    """Write a random, tiny cross-encoder in the expected layout (for examples and
    tests: the real one is yours to provide)."""
    require_extra("safetensors", "crossencoder", "write_tiny_model")
    from safetensors.numpy import save_file
    from tokenizers import Tokenizer, models, pre_tokenizers, processors

    words = "[PAD] [UNK] [CLS] [SEP] a an the is it open on sunday sundays question another"
    vocab = {w: i for i, w in enumerate(words.split())}
    tokenizer = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])],
    )
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer.save(str(out / "tokenizer.json"))
    weights = tiny_weights(np.random.default_rng(seed), vocab=len(vocab), hidden=8, layers=1)
    save_file(weights, str(out / "model.safetensors"))
    (out / "config.json").write_text(json.dumps({"num_attention_heads": 2}), encoding="utf-8")
    return out


__all__ = ["CrossEncoderVerifier", "write_tiny_model"]
