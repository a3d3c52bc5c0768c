"""Stores that hold (issue 16): files that say what they hold, malformed rows skipped and
counted, index memory that follows the entries held rather than the tenants."""

from __future__ import annotations

import json
import logging
import sqlite3
import tracemalloc

import numpy as np
import pytest

from costopt_core.stores.base import CacheEntry, MalformedRows, normalize_vector
from costopt_core.stores.index import ExactIndex
from costopt_core.stores.memory import MemoryStore
from costopt_core.stores.sqlite import SQLiteStore
from costopt_core.stores.sqlite_file import SCHEMA_VERSION

DIM = 8


def vec(seed: int, dim: int = DIM) -> np.ndarray:
    return normalize_vector(np.random.default_rng(seed).standard_normal(dim))


def entry(text: str, seed: int, partition: str = "p") -> CacheEntry:
    return CacheEntry(partition, text, vec(seed), f"answer to {text}", created_at=0.0)


def meta(path) -> dict[str, str]:
    with sqlite3.connect(path) as conn:
        return dict(conn.execute("SELECT key, value FROM costopt_cache_meta"))


def raw_insert(path, text: str, vector: object, created_at: object, metadata: str = "{}"):
    """A row written by hand or by another program, bypassing every check."""
    with sqlite3.connect(path) as conn:
        conn.execute(
            "INSERT INTO costopt_cache_entries (partition, text, vector, response,"
            " created_at, last_used_at, metadata) VALUES ('p', ?, ?, 'bad', ?, 0, ?)",
            (text, vector, created_at, metadata),
        )


# -- the file says what it holds -----------------------------------------------------


def test_a_store_opened_with_dim_reopens_without_arguments(tmp_path):
    path = tmp_path / "c.db"
    SQLiteStore(path, dim=DIM).close()  # nothing stored yet
    assert meta(path) == {"kind": "cache", "schema_version": str(SCHEMA_VERSION), "dim": "8"}
    with SQLiteStore(path) as store:
        assert store.dim == DIM
        store.upsert(entry("q", 1))
        with pytest.raises(ValueError, match="this store holds 8"):
            store.upsert(CacheEntry("p", "other", vec(2, dim=4), "r", 0.0))
    with pytest.raises(ValueError, match="holds 8-d vectors, dim=4"):
        SQLiteStore(path, dim=4)


def test_a_file_without_recorded_dim_learns_it_from_its_rows(tmp_path):
    path = tmp_path / "old.db"
    with SQLiteStore(path) as store:
        store.upsert(entry("q", 1))
    with sqlite3.connect(path) as conn:  # as written before the size was recorded
        conn.execute("DELETE FROM costopt_cache_meta")
    with SQLiteStore(path) as store:
        assert store.dim == DIM
        assert store.search("p", vec(1), now=1.0, ttl_seconds=None)[0].entry.text == "q"
    assert meta(path)["dim"] == "8"


def test_a_file_from_a_newer_costopt_is_refused_not_misread(tmp_path):
    path = tmp_path / "new.db"
    SQLiteStore(path, dim=DIM).close()
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE costopt_cache_meta SET value = '99' WHERE key = 'schema_version'")
    with pytest.raises(RuntimeError, match="newer costopt"):
        SQLiteStore(path)


# -- malformed rows: skipped, counted, never fatal ---------------------------------------

MALFORMED = {
    "wrong-size vector": dict(vector=vec(7, dim=4).tobytes(), created_at=0.0),
    "text timestamp": dict(vector=vec(7).tobytes(), created_at="yesterday"),
    "bad JSON": dict(vector=vec(7).tobytes(), created_at=0.0, metadata="{not json"),
    "JSON not an object": dict(vector=vec(7).tobytes(), created_at=0.0, metadata="[1, 2]"),
    "NaN vector": dict(vector=np.full(DIM, np.nan, dtype="<f4").tobytes(), created_at=0.0),
    "unnormalized vector": dict(vector=np.full(DIM, 3.0, dtype="<f4").tobytes(), created_at=0.0),
    "vector as text": dict(vector="0.1,0.2", created_at=0.0),
}


@pytest.mark.parametrize("damage", list(MALFORMED))
def test_a_malformed_row_written_before_opening_is_skipped_and_counted(tmp_path, damage):
    path = tmp_path / "c.db"
    with SQLiteStore(path) as store:
        for i in range(5):
            store.upsert(entry(f"good-{i}", i))
    raw_insert(path, "bad", **MALFORMED[damage])
    with SQLiteStore(path) as store:  # opens: the bad row does not stop it
        for i in range(5):
            hit = store.search("p", vec(i), now=1.0, ttl_seconds=None)[0]
            assert hit.entry.text == f"good-{i}"
        assert store.search("p", vec(7), k=10, now=1.0, ttl_seconds=None)[0].entry.text != "bad"
        assert store.get_exact("p", "bad", now=1.0, ttl_seconds=None) is None
        assert store.get_exact("p", "good-3", now=1.0, ttl_seconds=None).response.endswith("3")
        store.upsert(entry("after", 42))  # writes go on
        assert store.search("p", vec(42), now=1.0, ttl_seconds=None)[0].entry.text == "after"
        assert store.stats == {"malformed_rows": 1}  # one row, counted once however often met


def test_malformed_rows_written_while_running_never_block_other_rows(tmp_path, caplog):
    path = tmp_path / "c.db"
    store = SQLiteStore(path)
    store.upsert(entry("good", 1))
    for i, damage in enumerate(MALFORMED.values()):
        raw_insert(path, f"bad-{i}", **damage)  # another program, while the store runs
    with caplog.at_level(logging.WARNING, logger="costopt_core.stores.base"):
        for i in range(20):
            store.upsert(entry(f"later-{i}", 100 + i))
            assert store.search("p", vec(100 + i), now=1.0, ttl_seconds=None)[0].similarity > 0.99
        assert store.search("p", vec(1), now=1.0, ttl_seconds=None)[0].entry.text == "good"
        # Rows whose vector is fine are mirrored; their other fields are checked when met.
        assert store.stats["malformed_rows"] == len(MALFORMED) - 2
        for i in range(len(MALFORMED)):
            assert store.get_exact("p", f"bad-{i}", now=1.0, ttl_seconds=None) is None
    assert store.stats["malformed_rows"] == len(MALFORMED)
    warnings = [r for r in caplog.records if "malformed row" in r.getMessage()]
    assert len(warnings) == 1  # the first is logged, the rest counted
    assert store.count() == 1 + 20 + len(MALFORMED)
    # Deleting the bad rows (here: all expire) forgets them; the store stays consistent.
    expired = 1 + 20 + len(MALFORMED) - 1  # all but the text timestamp
    assert store.evict_expired(now=10**9, ttl_seconds=1.0) == expired
    store.clear()
    assert store.count() == 0
    store.upsert(entry("fresh", 5))
    assert store.search("p", vec(5), now=1.0, ttl_seconds=None)[0].entry.text == "fresh"
    store.close()


def test_a_malformed_search_hit_is_dropped_not_raised(tmp_path):
    path = tmp_path / "c.db"
    with SQLiteStore(path) as store:
        store.upsert(entry("q", 1))
        store.upsert(entry("q2", 2))
        with sqlite3.connect(path) as conn:  # metadata broken after the vector was mirrored
            conn.execute("UPDATE costopt_cache_entries SET metadata = 'oops' WHERE text = 'q'")
        hits = store.search("p", vec(1), k=2, now=1.0, ttl_seconds=None)
        assert [h.entry.text for h in hits] == ["q2"]
        assert store.stats == {"malformed_rows": 1}


def test_malformed_rows_are_counted_once_each_and_logged_once(caplog):
    rows = MalformedRows("here")
    with caplog.at_level(logging.WARNING):
        for key in [1, 2, 1, 3, 2]:
            rows.skip(key, "bad")
    assert rows.count == 3
    assert len(caplog.records) == 1 and "here" in caplog.records[0].getMessage()
    rows.forget(1)
    rows.skip(1, "bad again")  # a new row under a deleted one's key
    assert rows.count == 4


def test_cache_entry_from_row_refuses_what_is_not_an_entry():
    good = CacheEntry.from_row("p", "t", "r", 1.0, 2, 0, json.dumps({"a": 1}))
    assert good.metadata == {"a": 1} and good.last_used_at == 2
    with pytest.raises(ValueError, match="hit_count"):
        CacheEntry.from_row("p", "t", "r", 1.0, 2.0, "3", "{}")
    with pytest.raises(ValueError, match="last_used_at"):
        CacheEntry.from_row("p", "t", "r", 1.0, float("nan"), 0, "{}")
    with pytest.raises(ValueError, match="text"):
        CacheEntry.from_row("p", b"t", "r", 1.0, 2.0, 0, "{}")


# -- index memory follows entries, not tenants -------------------------------------------


def _held_bytes(partitions: int, entries: int, max_entries: int, dim: int) -> int:
    tracemalloc.start()
    store = MemoryStore(dim=dim, ann=False)
    rng = np.random.default_rng(0)
    for i in range(entries):
        v = rng.standard_normal(dim).astype(np.float32)
        store.upsert(CacheEntry(f"t{i % partitions}", f"q{i}", v / np.linalg.norm(v), "a", 0.0))
        store.enforce_max_entries(max_entries)
    held = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    assert store.count() == max_entries
    return held


def test_index_memory_is_proportional_to_entries_not_tenants():
    # 2,000 tenants of one entry each, at most 200 kept: 200 one-entry indexes must hold
    # about what 200 entries of one tenant hold (they held ~25x more: 64 spare rows each).
    many = _held_bytes(2_000, 2_000, 200, 384)
    one = _held_bytes(1, 2_000, 200, 384)
    assert many < 2 * one, (many, one)


def test_exact_index_grows_and_shrinks_with_its_rows():
    index = ExactIndex(dim=4)
    assert index.capacity == 1
    for key in range(100):
        index.add(key, vec(key, dim=4), created_at=0.0)
    assert index.capacity == 128
    for key in range(95):
        index.remove(key)
    assert len(index) == 5 and index.capacity <= 32
    assert [k for k, _ in index.search(vec(97, dim=4))] == [97]
    for key in range(95, 100):
        index.remove(key)
    assert index.capacity == 1 and index.search(vec(1, dim=4)) == []
