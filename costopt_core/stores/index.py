"""Nearest-neighbour search over one partition's vectors: exact numpy scan, with an
optional approximate (faiss IVF) accelerator for large partitions (extra ``[ann]``).

Example:
    >>> from costopt_core.stores.base import normalize_vector
    >>> from costopt_core.stores.index import VectorIndex
    >>> index = VectorIndex(dim=3)
    >>> index.add(7, normalize_vector([1, 0, 0]), created_at=0.0)
    >>> index.add(8, normalize_vector([0, 1, 0]), created_at=0.0)
    >>> [(key, round(sim, 2)) for key, sim in index.search(normalize_vector([1, 0.3, 0]))]
    [(7, 0.96)]

Why these choices (measured on 100k random unit 384-d float32 vectors, queries = stored
vectors plus noise at cosine 0.90-0.96, single queries, 2 shared vCPUs, faiss 1.15;
``benchmarks/cache_lookup.py`` re-measures the chosen one):

* The exact scan is one float32 matrix-vector product: ~0.13-0.5 ms at 10k entries, but
  ~7-10 ms at 100k (30 ms on a loaded machine), bound by memory bandwidth (150 MB per
  query). Partitions from :data:`DEFAULT_ANN_THRESHOLD` entries use an approximate index.
* Candidates at 100k, median latency / recall@1 / build time:
  faiss IVF, float16 lists (``IndexIVFScalarQuantizer``), 632 lists: nprobe 12
  0.15-0.19 ms / 0.97 at cosine 0.93, nprobe 48 0.53 ms / 1.0; 1264 lists: nprobe 12
  0.12-0.13 ms / 0.975, nprobe 48 0.35 ms / 0.998;
  faiss IVF, 4-bit fast-scan product codes (``IndexIVFPQFastScan``, 48 codes), 632
  lists: nprobe 24 0.06 ms / 0.998, nprobe 48 0.12 ms / 1.0 (1.0 at cosine 0.90 too),
  4-6 s; 96 codes about as fast, and more accurate (see :class:`ANNIndex`);
  faiss HNSW (M 32, float16): ef 64 0.45 ms / 0.995, 88 s; hnswlib (M=16,
  ef_construction 100): ef 64 0.37 ms / 0.85, ef 128 0.69 ms / 0.96, 34 s; usearch
  (connectivity 16): expansion 128 1.66 ms / 0.98, 151 s.
  Random vectors are the hard case for graphs and clusters alike (real sentence
  embeddings cluster); a cache asks for near duplicates, which IVF finds by probing the
  lists nearest the query. The fast-scan IVF is the ``[ann]`` backend, with
  ``nlist = 2 * sqrt(n)`` (:data:`LISTS_PER_ROOT`) and ``nprobe = 48``
  (:data:`DEFAULT_NPROBE`): one look, so a miss costs what a hit does (a float16 index
  needed a second, wider look to keep recall on misses: ~1 ms at 100k).
* Similarities returned are exact: faiss's candidates (24) are re-scored against the
  float32 vectors; only recall is approximate, and a missed neighbour costs a cache
  miss, never a wrong answer. Memory: faiss's codes take 48 bytes a 384-d vector (6 % of
  the float32 vectors the exact index keeps).
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import math
import sys
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

#: Partition size from which the approximate index is used, when available. Below it
#: the exact scan is as fast (~0.1-0.2 ms, in CPU caches) and has perfect recall; at 10k
#: entries it costs ~0.55 ms against ~0.16 ms for the fast-scan index.
DEFAULT_ANN_THRESHOLD = 4096

#: Largest vector-matrix product (elements) OpenBLAS runs on one thread (its ``gemv``
#: threads from 115200 * GEMM_MULTITHREAD_THRESHOLD (4) elements). Longer scans are cut
#: into products below it: a threaded ``gemv`` hands half the work to a second thread,
#: and on a busy machine waiting for that thread to be scheduled cost 16-25 ms per
#: search at 2k-10k entries (measured, load ~11 on 2 vCPUs), against 0.5-0.8 ms for the
#: same scan in one-thread pieces; on an idle machine the pieces cost ~2x the threaded
#: product. Other BLAS libraries just see a few more calls.
ONE_THREAD_PRODUCT = 115200 * 4

#: IVF lists a search scans (of ``2 * sqrt(n)``). 48 found the stored vector nearest a
#: query at cosine 0.90-0.96 for 100 % of queries on 100k random vectors, 24 for
#: 98.5-100 %; 48 fast-scan lists cost ~0.12 ms there.
DEFAULT_NPROBE = 48

#: IVF lists per square root of the entries at build time (632 lists at 100k). With
#: fast-scan codes a list is cheap to scan and the coarse quantizer's pass over the
#: centroids is a large part of a search: more lists would cost more than they save.
LISTS_PER_ROOT = 2

_ANN_EXTRA_HINT = 'the approximate index needs faiss: pip install "costopt-llm[ann]"'


def ann_available() -> bool:
    """True when the ``[ann]`` extra (faiss) is installed. Does not import it: faiss is
    loaded only when a partition first grows large enough to need it."""
    if "faiss" in sys.modules:
        return sys.modules["faiss"] is not None
    try:
        return importlib.util.find_spec("faiss") is not None
    except (ImportError, ValueError):
        return False


def _require_faiss() -> Any:
    try:
        return importlib.import_module("faiss")
    except ImportError as exc:
        raise ImportError(_ANN_EXTRA_HINT) from exc


class ExactIndex:
    """Unit vectors keyed by integer ids, stored as the columns of one float32 matrix;
    brute-force search.

    Removal swaps the last column into the hole, so the matrix stays dense and a search
    is BLAS vector-matrix products over it, each small enough to stay on one thread
    (:data:`ONE_THREAD_PRODUCT`). Columns, not rows: ``vector @ matrix`` runs BLAS's
    ``gemv_n`` kernel, 2-3x faster on one thread than ``matrix @ vector`` over rows
    (``gemv_t``): ~0.3-0.6 ms against ~1.1-1.4 ms at 10k 384-d entries.

    ``by_rows=True`` stores one vector per row instead: the layout of a partition that
    has an approximate index (:class:`VectorIndex`), whose searches read a dozen
    candidates' vectors rather than scan them all. A column is a strided gather of
    ``dim`` floats, one cache line each (384 lines per vector); a row is 24 lines: on
    100k 384-d vectors, reading 12 candidates cost ~60 us by columns against ~12 us by
    rows (~180 against ~60 with cold caches), as much as the rest of the search.

    Capacity starts at ``capacity`` columns (default 1), doubles when full and halves
    when a quarter full: memory follows the entries held, so a cache with thousands of
    tenants of one entry each holds one column per tenant, not a block of spare ones
    (64 spare 384-d vectors were ~100 KB per tenant). Amortized, an add still copies
    each vector O(1) times.

    Example:
        >>> import numpy as np
        >>> index = ExactIndex(dim=384)
        >>> index.add(1, np.ones(384, dtype=np.float32) / np.sqrt(384), created_at=0.0)
        >>> index.capacity, index.nbytes
        (1, 1552)
    """

    def __init__(self, dim: int, capacity: int = 1, *, by_rows: bool = False) -> None:
        if dim < 1:
            raise ValueError(f"dim must be >= 1, got {dim}")
        self.dim = dim
        if capacity < 0:
            raise ValueError(f"capacity must be >= 0, got {capacity}")
        self._min_capacity = capacity
        self.by_rows = by_rows
        self._matrix = self._new_matrix(capacity)
        self._ids = np.empty(self._min_capacity, dtype=np.int64)
        self._created = np.empty(self._min_capacity, dtype=np.float64)
        self._rows: dict[int, int] = {}  # key -> its column
        self._size = 0
        self._chunk = max(1, (ONE_THREAD_PRODUCT - 1) // dim)  # columns per product

    def __len__(self) -> int:
        return self._size

    def __contains__(self, key: int) -> bool:
        return key in self._rows

    def _new_matrix(self, capacity: int) -> np.ndarray:
        shape = (capacity, self.dim) if self.by_rows else (self.dim, capacity)
        return np.empty(shape, dtype=np.float32)

    @property
    def _vectors(self) -> np.ndarray:
        """The matrix with one vector per row, whatever the layout (a view)."""
        return self._matrix if self.by_rows else self._matrix.T

    def with_layout(self, *, by_rows: bool) -> ExactIndex:
        """This index with its vectors laid out by rows or by columns (itself if they
        already are; else a copy, sized to the vectors held)."""
        if by_rows == self.by_rows:
            return self
        other = ExactIndex(self.dim, self._min_capacity, by_rows=by_rows)
        n = self._size
        other._resize(max(n, self._min_capacity, 1))
        other._vectors[:n] = self._vectors[:n]
        other._ids[:n] = self._ids[:n]
        other._created[:n] = self._created[:n]
        other._rows = dict(self._rows)
        other._size = n
        return other

    @property
    def capacity(self) -> int:
        """Vectors allocated (held plus spare)."""
        return int(self._vectors.shape[0])

    @property
    def nbytes(self) -> int:
        """Bytes of the index's arrays."""
        return int(self._matrix.nbytes + self._ids.nbytes + self._created.nbytes)

    def _resize(self, capacity: int) -> None:
        n = self._size
        held = self._vectors[:n]
        self._matrix = self._new_matrix(capacity)
        self._vectors[:n] = held
        for name in ("_ids", "_created"):
            old = getattr(self, name)
            new = np.empty(capacity, dtype=old.dtype)
            new[:n] = old[:n]
            setattr(self, name, new)

    def add(self, key: int, vector: np.ndarray, created_at: float) -> None:
        row = self._rows.get(key)
        if row is None:
            if self._size == self.capacity:
                self._resize(max(1, self._size * 2))
            row = self._size
            self._size += 1
            self._rows[key] = row
            self._ids[row] = key
        self._vectors[row] = vector
        self._created[row] = created_at

    def remove(self, key: int) -> bool:
        row = self._rows.pop(key, None)
        if row is None:
            return False
        last = self._size - 1
        if row != last:
            vectors = self._vectors
            vectors[row] = vectors[last]
            self._ids[row] = self._ids[last]
            self._created[row] = self._created[last]
            self._rows[int(self._ids[row])] = row
        self._size = last
        capacity = self.capacity
        # Halve at a quarter full (not at half: an add/remove pair at the boundary
        # would otherwise copy the matrix every time).
        if last <= capacity // 4 and capacity // 2 >= self._min_capacity:
            self._resize(capacity // 2)
        return True

    def vectors(self) -> tuple[np.ndarray, np.ndarray]:
        """(ids, matrix with one row per vector) of the live entries, for building
        another index: views, copy before the index changes."""
        return self._ids[: self._size], self._vectors[: self._size]

    def rows_of(self, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(vectors as rows, created_at) of ``keys``, in order; every key must be present."""
        rows = np.fromiter((self._rows[int(k)] for k in keys), dtype=np.int64, count=len(keys))
        return self._vectors[rows], self._created[rows]

    def created_at(self, key: int) -> float | None:
        row = self._rows.get(key)
        return None if row is None else float(self._created[row])

    def held_scores(
        self, vector: np.ndarray, keys: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(the ``keys`` held, their exact cosine with ``vector``, their created_at), in
        the order given; keys not held are dropped."""
        where = self._rows.get
        rows = np.fromiter((where(k, -1) for k in keys.tolist()), np.int64, len(keys))
        held = rows >= 0
        rows = rows[held]
        return keys[held], self._vectors.take(rows, axis=0) @ vector, self._created.take(rows)

    def _similarities(self, vector: np.ndarray, n: int) -> np.ndarray:
        """Cosine of ``vector`` with the first ``n`` columns, one-thread products."""
        matrix, chunk = self._matrix, self._chunk
        if self.by_rows:
            sims = np.empty(n, dtype=np.float32)
            for start in range(0, n, chunk):
                stop = min(n, start + chunk)
                np.matmul(matrix[start:stop], vector, out=sims[start:stop])
            return sims
        if n <= chunk:
            return vector @ matrix[:, :n]
        sims = np.empty(n, dtype=np.float32)
        for start in range(0, n, chunk):
            stop = min(n, start + chunk)
            np.matmul(vector, matrix[:, start:stop], out=sims[start:stop])
        return sims

    def search(
        self,
        vector: np.ndarray,
        k: int = 1,
        min_similarity: float = -1.0,
        min_created_at: float | None = None,
    ) -> list[tuple[int, float]]:
        """Top ``k`` (id, cosine) with cosine >= ``min_similarity``, created at or after
        ``min_created_at``; most similar first."""
        n = self._size
        if n == 0:
            return []
        sims = self._similarities(vector, n)
        # The floor first: a cache's floor leaves a handful of candidates, so the TTL
        # check and the ranking touch those only, not all n.
        found = np.flatnonzero(sims >= min_similarity)
        if min_created_at is not None and found.size:
            found = found[self._created[found] >= min_created_at]
        if found.size > k:
            if k == 1:  # argmax: of equal similarities, the first column wins
                found = found[np.argmax(sims[found])][None]
            else:
                found = np.sort(found[np.argpartition(-sims[found], k - 1)[:k]])
        found = found[np.argsort(-sims[found], kind="stable")]
        return [(int(self._ids[i]), float(sims[i])) for i in found]


class ANNIndex:
    """faiss inverted-file index over unit vectors, inner product, each vector kept as a
    4-bit product-quantized code (``IndexIVFPQFastScan``, ``dim / 4`` sub-quantizers:
    48 bytes for a 384-d vector).

    ``nlist`` (number of clusters) is ``2 * sqrt(n)`` at build time (capped at ``n / 39``,
    the points k-means wants per centroid); ``nprobe`` clusters are scanned per query.

    Fast-scan codes, not float16 vectors (``IndexIVFScalarQuantizer``): faiss scores 32
    codes at once with SIMD table lookups, so a search reads 48 bytes an entry instead
    of 768. At 100k random 384-d vectors (faiss 1.15, one thread) 48 lists of 632 cost
    ~0.1-0.15 ms with fast-scan codes against ~0.53 ms as float16 lists, at the same
    recall of the stored vector nearest a query (1.000 at cosine 0.90-0.96 to the
    query); faiss's copy of the vectors is 1/16 of theirs. The codes rank candidates
    only roughly: :class:`VectorIndex` re-scores the first 24 against the exact float32
    vectors, so the similarities it returns are exact. Four dimensions a code, not
    eight: on 100k anisotropic vectors shaped like a sentence embedding's (mean cosine
    0.81 between unrelated entries, the nearest at cosine 0.93-0.97) the exact nearest
    was among the first 24 candidates for 100 % of queries with 96 codes, 98-99 % with
    48 (which needed 64 candidates for 99.8 %), at about the same search time.
    """

    #: Dimensions per 4-bit sub-quantizer, for vectors of at least 64 dimensions.
    DIMS_PER_CODE = 4

    def __init__(self, dim: int, nprobe: int = DEFAULT_NPROBE) -> None:
        self._faiss = _require_faiss()
        self.dim = dim
        # Fewer dimensions a code for short vectors: with 4 a 3-d vector would get one
        # 16-level code, and a crowded sphere ranks at random (self found for 43 % of
        # 5k 3-d vectors; 100 % with a code a dimension).
        self._per_code = self.DIMS_PER_CODE if dim >= 64 else 2 if dim >= 32 else 1
        # Product quantization splits the vector into equal parts: pad with zeros (inner
        # products unchanged) to a multiple of the part size.
        self._padded = -(-dim // self._per_code) * self._per_code
        self.nprobe = nprobe
        self._index: Any = None
        self.built_size = 0
        self.keys_at_build: set[int] = set()

    def _rows(self, matrix: np.ndarray) -> np.ndarray:
        matrix = np.ascontiguousarray(matrix, dtype=np.float32)
        if self._padded == self.dim:
            return matrix
        padded = np.zeros((matrix.shape[0], self._padded), dtype=np.float32)
        padded[:, : self.dim] = matrix
        return padded

    @contextmanager
    def _one_thread(self) -> Iterator[None]:
        """faiss on one OpenMP thread (this thread's setting only, restored after)
        while it builds or changes the index. An index shares the machine with the
        application, and on a busy one OpenMP's spinning teams made a 6k-vector build
        take 8-38 s instead of 0.4 s, and each add milliseconds (measured, load ~4 on 2
        vCPUs). Single-query searches do not use OpenMP."""
        faiss = self._faiss
        threads = faiss.omp_get_max_threads()
        faiss.omp_set_num_threads(1)
        try:
            yield
        finally:
            faiss.omp_set_num_threads(threads)

    def build(self, ids: np.ndarray, matrix: np.ndarray) -> None:
        with self._one_thread():
            self._build(ids, matrix)

    def _build(self, ids: np.ndarray, matrix: np.ndarray) -> None:
        faiss = self._faiss
        n = matrix.shape[0]
        nlist = max(8, min(int(LISTS_PER_ROOT * math.sqrt(n)), n // 39))
        quantizer = faiss.IndexFlatIP(self._padded)
        index = faiss.IndexIVFPQFastScan(
            quantizer,
            self._padded,
            nlist,
            self._padded // self._per_code,
            4,  # bits per code: the fast-scan kernels' width
            faiss.METRIC_INNER_PRODUCT,
        )
        # Codes of each vector's offset from its list's centroid: the direction every
        # sentence embedding shares is in the centroid, and the codes spend their bits
        # on what tells entries apart.
        index.by_residual = True
        # k-means needs ~40 points per centroid; more only slows the build.
        sample = min(n, 64 * nlist)
        rng = np.random.default_rng(0)
        pick = rng.choice(n, size=sample, replace=False) if sample < n else slice(None)
        index.train(self._rows(matrix[pick]))
        index.add_with_ids(self._rows(matrix), np.ascontiguousarray(ids, dtype=np.int64))
        index.nprobe = min(self.nprobe, nlist)
        self._index = index
        self.built_size = n

    def add(self, key: int, vector: np.ndarray, *, replace: bool = False) -> None:
        if replace:
            self.remove(key)
        self.add_many(np.array([key], dtype=np.int64), vector[None, :])

    def add_many(self, keys: np.ndarray, matrix: np.ndarray) -> None:
        """Add fresh keys in one call."""
        with self._one_thread():
            self._index.add_with_ids(self._rows(matrix), np.ascontiguousarray(keys, dtype=np.int64))

    def remove(self, key: int) -> None:
        # Fast-scan lists have no id map: this scans them (~0.5 ms at 100k). Only a
        # reused key needs it; removed entries are otherwise left stale.
        with self._one_thread():
            self._index.remove_ids(np.array([key], dtype=np.int64))

    def search(self, vector: np.ndarray, k: int) -> np.ndarray:
        """Ids of (up to) ``k`` candidates near ``vector``, roughly nearest first."""
        _, ids = self._index.search(self._rows(vector[None, :]), k)
        found = ids[0]
        return found[found >= 0]


class VectorIndex:
    """One partition's vectors: :class:`ExactIndex` always, plus an :class:`ANNIndex`
    once the partition holds ``ann_threshold`` vectors.

    ``ann``: ``None`` uses faiss when installed, ``True`` requires it (ImportError
    naming the ``[ann]`` extra otherwise), ``False`` always scans exactly.

    Keeping the ANN index cheap to maintain:

    * New vectors first go to a small *tail* (up to ``TAIL_SIZE`` keys, an
      :class:`ExactIndex` of their own, so scanning it is one small product) that
      searches scan exactly; the tail is added to faiss in one batch when full. A
      fast-scan add costs ~35 us a vector whatever the batch (100k entries: 1 vector
      0.06-0.09 ms, 64 2.3 ms, 256 8.7 ms), so the tail is kept short: every lookup
      scans it (~15 us for 128 vectors, ~3 us for 16).
    * Removal is lazy: removed keys stay in faiss as *stale* ids that searches skip
      (they are gone from the exact index); single-id removal from an IVF index costs
      milliseconds. A rebuild drops them.
    * faiss's candidates are re-scored against the exact vectors (``RESCORED`` plus
      spares for stale ids): the similarities returned are exact, faiss only chooses
      which entries to look at. With
      an ANN index the exact vectors are held by rows (``ExactIndex(by_rows=True)``),
      which makes reading those candidates ~5x cheaper; the exact scan, needed then only
      when every candidate is stale, is bound by memory bandwidth at such sizes anyway.
    * The index is rebuilt (re-clustered) when the partition has doubled since the
      last build or a quarter of it is stale. Building takes seconds at 100k entries,
      so by default it runs in a background thread on a snapshot; searches meanwhile
      use the previous index (or the exact scan), and changes made during the build are
      replayed when the new index is swapped in, at the next call.
      ``background_build=False`` builds inline (deterministic, for tests).

    Not thread-safe otherwise: stores lock around every call.
    """

    #: Keys searched exactly before they are batch-added to the ANN index.
    TAIL_SIZE = 16

    #: faiss candidates re-scored exactly at least (plus spares for stale entries).
    RESCORED = 16

    def __init__(
        self,
        dim: int,
        *,
        ann: bool | None = None,
        ann_threshold: int = DEFAULT_ANN_THRESHOLD,
        nprobe: int = DEFAULT_NPROBE,
        background_build: bool = True,
    ) -> None:
        if ann_threshold < 1:
            raise ValueError(f"ann_threshold must be >= 1, got {ann_threshold}")
        if nprobe < 1:
            raise ValueError(f"nprobe must be >= 1, got {nprobe}")
        if ann:
            _require_faiss()
        self.exact = ExactIndex(dim)
        self._use_ann = ann_available() if ann is None else ann
        self._ann_threshold = ann_threshold
        self._nprobe = nprobe
        self._background = background_build
        self._ann: ANNIndex | None = None
        # Entries not in faiss yet: with the ANN index only (a one-entry tenant holds none).
        self._tail: ExactIndex | None = None
        self._stale: set[int] = set()  # keys in faiss whose entry is gone
        # In-flight background build: its thread, the index it fills (set when done),
        # and the keys added (True) or removed (False) since its snapshot.
        self._builder: threading.Thread | None = None
        self._built: ANNIndex | None = None
        self._replay: list[tuple[int, bool]] = []
        self._retry_at = 0  # after a failed build, wait for the next doubling

    def __len__(self) -> int:
        return len(self.exact)

    @property
    def uses_ann(self) -> bool:
        self._adopt_build()
        return self._ann is not None

    def wait_for_build(self, timeout: float | None = None) -> None:
        """Block until an in-flight background build has finished. The next call
        (search, add, ``uses_ann``) adopts it, under the caller's lock."""
        builder = self._builder
        if builder is not None:
            builder.join(timeout)

    def settle(self) -> bool:
        """Adopt a finished background build and start the next one if it is due (the
        partition doubled meanwhile); whether a build is in flight."""
        self._adopt_build()
        self._maybe_build()
        return self._builder is not None

    def add(self, key: int, vector: np.ndarray, created_at: float) -> None:
        self._adopt_build()
        if self._ann is not None:
            tail = self._ann_tail()
            in_faiss = key in self._stale or (key in self.exact and key not in tail)
            if in_faiss:  # a reused key: its old vector must not be found (rare)
                self._ann.remove(key)
                self._stale.discard(key)
        self.exact.add(key, vector, created_at)
        if self._ann is not None:
            tail = self._ann_tail()
            tail.add(key, vector, created_at)
            if len(tail) >= self.TAIL_SIZE:
                self._flush_tail()
        if self._builder is not None:
            self._replay.append((key, True))
        self._maybe_build()

    def remove(self, key: int) -> bool:
        self._adopt_build()
        if not self.exact.remove(key):
            return False
        if self._ann is not None and not self._ann_tail().remove(key):
            self._stale.add(key)
        if self._builder is not None:
            self._replay.append((key, False))
        if len(self.exact) < self._ann_threshold // 2:
            # Small again: the exact scan is as fast and exact; drop all ANN state.
            self._ann, self._builder, self._built = None, None, None
            self._tail, self._stale, self._replay = None, set(), []
            self.exact = self.exact.with_layout(by_rows=False)
        else:
            self._maybe_build()
        return True

    def _ann_tail(self) -> ExactIndex:
        """The tail, which exists while the ANN index does."""
        assert self._tail is not None
        return self._tail

    def _new_tail(self, keys: Iterable[int] = ()) -> ExactIndex:
        """A tail holding ``keys`` (all in the exact index). Its room for ``TAIL_SIZE``
        is allocated once: only partitions large enough for faiss have a tail."""
        tail = ExactIndex(self.exact.dim, capacity=self.TAIL_SIZE)
        ids = np.fromiter(keys, dtype=np.int64)
        if ids.size:
            vectors, created = self.exact.rows_of(ids)
            for key, vector, created_at in zip(ids.tolist(), vectors, created, strict=True):
                tail.add(key, vector, float(created_at))
        return tail

    def _flush_tail(self) -> None:
        assert self._ann is not None
        keys, matrix = self._ann_tail().vectors()
        self._ann.add_many(keys, matrix)
        self._tail = self._new_tail()

    def _adopt_build(self) -> None:
        builder = self._builder
        if builder is None or builder.is_alive():
            return
        built, self._built = self._built, None
        self._builder = None
        replay, self._replay = self._replay, []
        if built is None:  # the build raised (logged); try again at the next doubling
            self._retry_at = 2 * len(self.exact)
            return
        in_faiss = built.keys_at_build
        tail: dict[int, None] = {}
        stale: set[int] = set()
        for key, added in replay:
            if added:
                if key in in_faiss:  # reused key (rare): drop the snapshot's vector
                    built.remove(key)
                    in_faiss.discard(key)
                    stale.discard(key)
                tail[key] = None
            elif key in tail:
                del tail[key]
            elif key in in_faiss:
                stale.add(key)
        built.keys_at_build = set()
        self._ann, self._stale = built, stale
        self.exact = self.exact.with_layout(by_rows=True)
        self._tail = self._new_tail(tail)
        if len(tail) >= self.TAIL_SIZE:
            self._flush_tail()

    def _maybe_build(self) -> None:
        n = len(self.exact)
        if not self._use_ann or n < max(self._ann_threshold, self._retry_at):
            return
        if self._builder is not None:
            return
        if (
            self._ann is not None
            and n < 2 * self._ann.built_size
            and len(self._stale) <= self._ann.built_size // 4
        ):
            return
        ids, matrix = self.exact.vectors()
        ids, matrix = ids.copy(), matrix.copy()
        if not self._background:
            ann = ANNIndex(self.exact.dim, nprobe=self._nprobe)
            ann.build(ids, matrix)
            self._ann, self._stale = ann, set()
            self.exact = self.exact.with_layout(by_rows=True)
            self._tail = self._new_tail()
            return

        def build() -> None:
            try:
                ann = ANNIndex(self.exact.dim, nprobe=self._nprobe)
                ann.build(ids, matrix)
                ann.keys_at_build = set(ids.tolist())
                self._built = ann
            except Exception:
                logger.exception("building the approximate index failed; exact search stays")

        self._builder = threading.Thread(target=build, name="costopt-ann-build", daemon=True)
        self._builder.start()

    def search(
        self,
        vector: np.ndarray,
        k: int = 1,
        min_similarity: float = -1.0,
        min_created_at: float | None = None,
    ) -> list[tuple[int, float]]:
        self._adopt_build()
        if self._ann is None:
            return self.exact.search(vector, k, min_similarity, min_created_at)
        # Candidates to re-score: the codes' ranking is rough, and expired or removed
        # entries must be droppable without a rescan.
        spare = 8 + min(len(self._stale), 56)
        candidates = self._ann.search(vector, max(k, self.RESCORED) + spare)
        # A removed (stale) key is no longer held: one lookup drops it.
        keys, sims, created = self.exact.held_scores(vector, candidates)
        live = sims >= min_similarity
        alive = bool(keys.size)  # some candidate neither removed nor expired
        if min_created_at is not None:
            fresh = created >= min_created_at
            live &= fresh
            alive = bool(fresh.any())
        hits = list(zip(keys[live].tolist(), sims[live].tolist(), strict=True))
        tail = self._ann_tail()
        if len(tail):
            hits += tail.search(vector, k, min_similarity, min_created_at)
        if not hits and candidates.size and not alive:
            # Every candidate was expired or removed and may hide a live one further
            # down faiss's ranking: scan exactly rather than miss.
            return self.exact.search(vector, k, min_similarity, min_created_at)
        hits.sort(key=lambda hit: -hit[1])  # exact similarities: the true order
        return hits[:k]
