"""What the evaluation report costs next to a plain mean loss, on the same data in one run.

    python benchmarks/report_cost.py [--n 1e8] [--threads 2] [--repeats 5] [--groups 0]
                                     [--batch ROWS]

Times ``fastbce.binary_crossentropy(reduction="mean")`` and ``fastbce.evaluate`` (every key of
docs/report.md) on float32 logits with uint8 labels, and prints the best time of each and their
ratio. With ``--batch``, the input goes in calls of that many rows, as a stream of batches
does: ``binary_crossentropy(reduction="sum")`` per batch against ``LossAccumulator.update``.
Timings on a machine shared with other work are noisy: compare ratios from one run.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import fastbce
from script_args import count


def best_of(repeats: int, fn) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=count, default=1e8)
    parser.add_argument("--threads", type=count, default=2)
    parser.add_argument("--repeats", type=count, default=5)
    parser.add_argument("--groups", type=int, default=0, help="number of groups (0: none)")
    parser.add_argument("--batch", type=count, default=None, help="rows a call (default: all)")
    args = parser.parse_args()
    n = int(args.n)
    rng = np.random.default_rng(0)
    x = rng.standard_normal(n, dtype=np.float32)
    y = (rng.random(n, dtype=np.float32) < 0.3).view(np.uint8)
    groups = rng.integers(0, args.groups, n) if args.groups else None

    batch = n if args.batch is None else int(args.batch)
    starts = range(0, n, batch)

    def plain() -> None:
        if args.batch is None:
            fastbce.binary_crossentropy(y, x, from_logits=True, threads=args.threads)
            return
        for s in starts:
            fastbce.binary_crossentropy(
                y[s : s + batch], x[s : s + batch], from_logits=True, reduction="sum",
                threads=args.threads,
            )  # fmt: skip

    def report() -> None:
        if args.batch is None:
            fastbce.evaluate(y, x, from_logits=True, threads=args.threads, groups=groups)
            return
        acc = fastbce.LossAccumulator(from_logits=True, threads=args.threads)
        for s in starts:
            part = None if groups is None else groups[s : s + batch]
            acc.update(y[s : s + batch], x[s : s + batch], groups=part)

    plain()
    report()  # (warm: page faults, thread start)
    t_plain = best_of(args.repeats, plain)
    t_report = best_of(args.repeats, report)
    print(f"fastbce {fastbce.__version__}, SIMD target {fastbce.build_info()['target']}")
    print(
        f"n = {n:.3g} float32 logits, uint8 labels, {args.threads} threads, groups {args.groups}"
        + ("" if args.batch is None else f", calls of {batch:,} rows")
    )
    print(f"mean loss   {t_plain * 1e3:9.1f} ms  {t_plain / n * 1e9:6.3f} ns/element")
    print(f"full report {t_report * 1e3:9.1f} ms  {t_report / n * 1e9:6.3f} ns/element")
    print(f"ratio       {t_report / t_plain:9.2f}x  (target <= 1.3x)")


if __name__ == "__main__":
    main()
