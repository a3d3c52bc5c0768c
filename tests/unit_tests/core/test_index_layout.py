"""Vectors held by rows (a partition with an approximate index) search as by columns."""

from __future__ import annotations

import numpy as np
import pytest

from costopt_core.stores.index import ExactIndex, VectorIndex, ann_available

DIM = 16


def unit_rows(rng: np.random.Generator, n: int) -> np.ndarray:
    m = rng.standard_normal((n, DIM)).astype(np.float32)
    return m / np.linalg.norm(m, axis=1, keepdims=True)


def fill(index: ExactIndex, vectors: np.ndarray) -> None:
    for i, v in enumerate(vectors):
        index.add(i, v, created_at=float(i))
    for i in range(0, len(vectors), 3):  # holes filled by the last vector, then shrinking
        index.remove(i)


@pytest.mark.parametrize("n", [5, 200, 3000])  # 3000 * 16 > one product: pieces
def test_an_index_by_rows_finds_what_one_by_columns_finds(n: int) -> None:
    rng = np.random.default_rng(n)
    vectors = unit_rows(rng, n)
    columns, rows = ExactIndex(DIM), ExactIndex(DIM, by_rows=True)
    fill(columns, vectors)
    fill(rows, vectors)
    converted = columns.with_layout(by_rows=True)
    assert converted.by_rows and not columns.by_rows
    assert converted.with_layout(by_rows=False).by_rows is False
    for q in unit_rows(rng, 20):
        expected = columns.search(q, k=5, min_similarity=-1.0, min_created_at=3.0)
        for index in (rows, converted, converted.with_layout(by_rows=False)):
            found = index.search(q, k=5, min_similarity=-1.0, min_created_at=3.0)
            assert [key for key, _ in found] == [key for key, _ in expected]
            assert np.allclose([s for _, s in found], [s for _, s in expected], atol=1e-6)
    keys = np.array(sorted(k for k in range(n) if k % 3), dtype=np.int64)
    for index in (rows, converted):
        _, sims, created = index.held_scores(vectors[1], keys)
        assert np.allclose(sims, vectors[keys] @ vectors[1], atol=1e-6)
        assert created.tolist() == keys.astype(float).tolist()
        held, _ = index.rows_of(keys)
        assert np.array_equal(held, vectors[keys])
        assert len(index) == len(keys) and all(int(k) in index for k in keys)


@pytest.mark.skipif(not ann_available(), reason="needs the [ann] extra (faiss)")
def test_a_partition_holds_vectors_by_rows_while_it_has_an_approximate_index() -> None:
    rng = np.random.default_rng(0)
    vectors = unit_rows(rng, 400)
    index = VectorIndex(DIM, ann=True, ann_threshold=300, nprobe=64, background_build=False)
    for i, v in enumerate(vectors):
        index.add(i, v, created_at=0.0)
    assert index.uses_ann and index.exact.by_rows
    queries = vectors[:50] + 0.01 * rng.standard_normal((50, DIM)).astype(np.float32)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    assert [index.search(q, k=1)[0][0] for q in queries] == list(range(50))
    for i in range(260):  # below half the threshold: exact scan by columns again
        index.remove(i)
    assert not index.uses_ann and not index.exact.by_rows
    assert [index.search(q, k=1)[0][0] for q in vectors[260:300]] == list(range(260, 300))
