"""Memory of the cache's per-tenant vector indexes: many tenants vs one tenant.

Run:
    .venv/bin/python benchmarks/tenant_index_memory.py
    .venv/bin/python benchmarks/tenant_index_memory.py --tenants 20000 --max-entries 1000 --dim 384

Two runs on a ``MemoryStore`` (the default store), each adding ``--tenants`` entries and
keeping at most ``--max-entries`` (LRU, as ``SemanticCache(max_entries=...)`` does after
each put):

* ``many tenants``: every entry in its own partition (a tenant with one question), so
  ``--max-entries`` partitions survive, one entry each;
* ``one tenant``: every entry in one partition.

Memory is what ``tracemalloc`` sees allocated by the store (numpy buffers included)
once the runs end. The two should be close: index memory is proportional to the
entries held, not to the number of tenants. The ratio is printed.
"""

from __future__ import annotations

import argparse
import gc
import tracemalloc

import numpy as np

from costopt_core.stores.base import CacheEntry
from costopt_core.stores.memory import MemoryStore


def fill(partitions: int, entries: int, max_entries: int, dim: int) -> int:
    """Bytes held by a store after ``entries`` upserts spread over ``partitions``."""
    rng = np.random.default_rng(0)
    gc.collect()
    tracemalloc.start()
    store = MemoryStore(dim=dim, ann=False)
    for i in range(entries):
        vector = rng.standard_normal(dim).astype(np.float32)
        vector /= np.linalg.norm(vector)
        store.upsert(CacheEntry(f"tenant-{i % partitions}", f"q{i}", vector, "answer", 0.0))
        store.enforce_max_entries(max_entries)
    del vector
    gc.collect()
    held, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert store.count() == min(entries, max_entries)
    return held


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tenants", type=int, default=20_000, help="entries added (20000)")
    parser.add_argument("--max-entries", type=int, default=1_000, help="LRU limit (1000)")
    parser.add_argument("--dim", type=int, default=384, help="vector size (384)")
    args = parser.parse_args()
    many = fill(args.tenants, args.tenants, args.max_entries, args.dim)
    one = fill(1, args.tenants, args.max_entries, args.dim)
    print(f"{args.tenants} entries added, {args.max_entries} kept, {args.dim}-d vectors")
    print(f"many tenants (one entry each): {many / 1e6:8.1f} MB")
    print(f"one tenant:                    {one / 1e6:8.1f} MB")
    print(f"ratio many/one: {many / one:.2f}")


if __name__ == "__main__":
    main()
