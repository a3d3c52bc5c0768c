"""How ``costopt_core.levers.saving_tags`` writes a saving: three float-to-text
conversions that ``float()`` reads back exactly, timed side by side.

Run: ``nice .venv/bin/python benchmarks/saving_tags_format.py`` (timeit, best of 15;
on a shared machine compare the ratios, not the nanoseconds). Exact instruction counts:
``valgrind --tool=lackey --basic-counts=yes`` on a loop of each (see the report).
"""

from __future__ import annotations

import random
import timeit

_REPR = float.__repr__
FORMATS = {
    "repr(float(x)) (before)": lambda x: repr(float(x)),
    "float.__repr__ bound": lambda x: _REPR(x),
    "f'{x:.17g}'": lambda x: f"{x:.17g}",
    "'%.17g' % x (now)": lambda x: "%.17g" % x,  # noqa: UP031 (the form measured)
}


def main() -> None:
    rng = random.Random(0)
    amounts = [rng.uniform(0, 1) * 10 ** rng.randint(-9, 1) for _ in range(1000)]
    base = None
    for name, write in FORMATS.items():
        assert all(float(write(x)) == x for x in amounts), name  # exact round trip
        best = min(timeit.repeat(lambda w=write: [w(x) for x in amounts], number=50, repeat=15))
        per_call = best / (50 * len(amounts)) * 1e9
        base = base or per_call
        print(f"{name:26s} {per_call:6.0f} ns   x{per_call / base:.2f}")


if __name__ == "__main__":
    main()
