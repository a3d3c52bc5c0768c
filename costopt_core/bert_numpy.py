"""A BERT encoder forward pass in numpy, for small local checkpoints (MiniLM-sized): no
PyTorch. Used by the cross-encoder verifier (extra ``[crossencoder]``) and by the
benchmarks' MiniLM embedding.

Example:
    >>> import numpy as np
    >>> from costopt_core.bert_numpy import Bert, tiny_weights
    >>> bert = Bert(tiny_weights(np.random.default_rng(0), vocab=20, hidden=8, layers=1), heads=2)
    >>> bert.encode([2, 5, 7, 3], [0, 0, 1, 1]).shape
    (4, 8)

Weights are a ``name -> array`` mapping in Hugging Face's BERT layout (``embeddings.*``,
``encoder.layer.N.*``, optionally ``pooler.*`` and a sequence-classification
``classifier.*``; a ``bert.`` prefix is accepted), e.g. read from ``model.safetensors``
with ``safetensors.numpy.load_file``. Post-LN layers, exact (erf) GELU, LayerNorm eps
1e-12, as ``BertModel``. One sequence at a time: a cache judges one pair per lookup.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np


def _layer_norm(x: np.ndarray, weight: np.ndarray, bias: np.ndarray) -> np.ndarray:
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + 1e-12) * weight + bias


def _erf(x: np.ndarray) -> np.ndarray:
    # Abramowitz-Stegun 7.1.26 (max error 1.5e-7): numpy has no erf.
    sign, a = np.sign(x), np.abs(x)
    t = 1.0 / (1.0 + 0.3275911 * a)
    poly = t * (
        0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429)))
    )
    return sign * (1.0 - poly * np.exp(-a * a))


def _gelu(x: np.ndarray) -> np.ndarray:
    return 0.5 * x * (1.0 + _erf(x / math.sqrt(2.0)))


class Bert:
    """BERT encoder (+ pooler and classifier when present) over numpy weights.

    Args:
        weights: the checkpoint's tensors by name.
        heads: attention heads (12 for MiniLM-L6/L12 and BERT-base; a checkpoint's
            ``config.json`` ``num_attention_heads``).
    """

    def __init__(self, weights: Mapping[str, np.ndarray], heads: int = 12) -> None:
        self.w = {
            k.removeprefix("bert."): np.asarray(v, dtype=np.float32) for k, v in weights.items()
        }
        self.layers = 1 + max(
            int(k.split(".")[2]) for k in self.w if k.startswith("encoder.layer.")
        )
        self.hidden = self.w["embeddings.word_embeddings.weight"].shape[1]
        if self.hidden % heads:
            raise ValueError(f"heads must divide the hidden size {self.hidden}, got {heads}")
        self.heads = heads

    def _linear(self, name: str, x: np.ndarray) -> np.ndarray:
        return x @ self.w[name + ".weight"].T + self.w[name + ".bias"]

    def encode(self, ids: Sequence[int], types: Sequence[int] | None = None) -> np.ndarray:
        """Last hidden states, ``(len(ids), hidden)``."""
        w, n = self.w, len(ids)
        types = [0] * n if types is None else types
        x = (
            w["embeddings.word_embeddings.weight"][list(ids)]
            + w["embeddings.position_embeddings.weight"][:n]
            + w["embeddings.token_type_embeddings.weight"][list(types)]
        )
        x = _layer_norm(x, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"])
        size = self.hidden // self.heads
        for i in range(self.layers):
            p = f"encoder.layer.{i}."

            def split(h: np.ndarray) -> np.ndarray:
                return h.reshape(n, self.heads, size).transpose(1, 0, 2)

            q = split(self._linear(p + "attention.self.query", x))
            k = split(self._linear(p + "attention.self.key", x))
            v = split(self._linear(p + "attention.self.value", x))
            scores = q @ k.transpose(0, 2, 1) / math.sqrt(size)
            scores = np.exp(scores - scores.max(-1, keepdims=True))
            scores /= scores.sum(-1, keepdims=True)
            context = (scores @ v).transpose(1, 0, 2).reshape(n, self.hidden)
            x = _layer_norm(
                self._linear(p + "attention.output.dense", context) + x,
                w[p + "attention.output.LayerNorm.weight"],
                w[p + "attention.output.LayerNorm.bias"],
            )
            h = _gelu(self._linear(p + "intermediate.dense", x))
            x = _layer_norm(
                self._linear(p + "output.dense", h) + x,
                w[p + "output.LayerNorm.weight"],
                w[p + "output.LayerNorm.bias"],
            )
        return x

    def mean_pooled(self, ids: Sequence[int]) -> np.ndarray:
        """Sentence embedding: mean of the token states, L2-normalised (sentence-transformers)."""
        pooled = self.encode(ids).mean(0)
        return (pooled / np.linalg.norm(pooled)).astype(np.float32)

    def classify(self, ids: Sequence[int], types: Sequence[int]) -> np.ndarray:
        """Classifier logits of a (pair) sequence: pooler (tanh dense on [CLS]) then
        ``classifier``, as ``BertForSequenceClassification``."""
        cls = self.encode(ids, types)[0]
        if "pooler.dense.weight" in self.w:
            cls = np.tanh(self._linear("pooler.dense", cls))
        return self._linear("classifier", cls)


def tiny_weights(
    rng: np.random.Generator, vocab: int, hidden: int, layers: int, labels: int = 1
) -> dict[str, np.ndarray]:
    """Random weights in BERT's layout (tests and examples: no checkpoint needed)."""

    def lin(name: str, out: int, inp: int) -> dict[str, np.ndarray]:
        return {
            name + ".weight": rng.standard_normal((out, inp)).astype(np.float32) * 0.2,
            name + ".bias": np.zeros(out, np.float32),
        }

    def norm(name: str) -> dict[str, np.ndarray]:
        return {name + ".weight": np.ones(hidden, np.float32), name + ".bias": np.zeros(hidden)}

    w: dict[str, np.ndarray] = {
        "embeddings.word_embeddings.weight": rng.standard_normal((vocab, hidden)),
        "embeddings.position_embeddings.weight": rng.standard_normal((64, hidden)) * 0.1,
        "embeddings.token_type_embeddings.weight": rng.standard_normal((2, hidden)) * 0.1,
        **norm("embeddings.LayerNorm"),
        **lin("pooler.dense", hidden, hidden),
        **lin("classifier", labels, hidden),
    }
    for i in range(layers):
        p = f"encoder.layer.{i}."
        for name in ("query", "key", "value"):
            w |= lin(p + "attention.self." + name, hidden, hidden)
        w |= lin(p + "attention.output.dense", hidden, hidden) | norm(
            p + "attention.output.LayerNorm"
        )
        w |= lin(p + "intermediate.dense", 4 * hidden, hidden)
        w |= lin(p + "output.dense", hidden, 4 * hidden) | norm(p + "output.LayerNorm")
    return {k: np.asarray(v, np.float32) for k, v in w.items()}


__all__ = ["Bert", "tiny_weights"]
