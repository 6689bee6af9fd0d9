"""How long the text key table takes to look up a batch of group labels, by number of keys.

    python benchmarks/key_lookup.py [--keys 50 30000 100000 1000000] [--rows 1e6] [--repeats 7]

For each key count: a table holding that many 8-byte keys (g0000000, g0000001, ...), then the
best of --repeats lookups of --rows labels drawn at random among them (one thread, the C++
``KeyCodes.lookup`` that ``fastbce score --group-by`` runs on text columns), in ns per row. The
codes are checked against ``KeyCodes.find`` on the first 20,000 rows.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from fastbce import _core
from fastbce._arrow_labels import text_buffers
from script_args import count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=count, nargs="*", default=[50, 30_000, 100_000, 1_000_000])
    parser.add_argument("--rows", type=count, default=1_000_000)
    parser.add_argument("--repeats", type=count, default=7)
    args = parser.parse_args()
    import pyarrow as pa

    rng = np.random.default_rng(0)
    for n_keys in args.keys:
        keys = [f"g{i:07d}" for i in range(n_keys)]
        table = _core.KeyCodes()
        codes = np.full(n_keys, -1, dtype=np.int64)
        table.add_unknown(*text_buffers(pa.array(keys, pa.string())), codes)
        rows = pa.array([keys[i] for i in rng.integers(0, n_keys, args.rows)], pa.string())
        buffers, got = text_buffers(rows), np.empty(args.rows, dtype=np.int64)
        best = float("inf")
        for _ in range(args.repeats):
            start = time.perf_counter()
            table.lookup(*buffers, got)
            best = min(best, time.perf_counter() - start)
        sample = rows.slice(0, 20_000).to_pylist()
        assert [table.find(k) for k in sample] == got[: len(sample)].tolist()
        print(f"{n_keys:>9,} keys: {best / args.rows * 1e9:6.1f} ns a row (best of {args.repeats})")


if __name__ == "__main__":
    main()
