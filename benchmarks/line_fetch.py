"""The two ways a large call fetches its input from memory, timed against each other in one run.

    python benchmarks/line_fetch.py [--n 1e8] [--threads 0] [--rounds 12] [--variants ...]

From 16 MiB of input a call either has each 512-element tile read one byte of each of its cache
lines before computing and prefetch the next tile's ("touch"), or leaves the lines to the CPU's
own prefetchers ("hardware"); fastbce picks one by the CPU's vendor (``build_info()["line_fetch"]``,
the variable FASTBCE_LINE_FETCH). This script alternates the two call by call in one process
(``_core.set_line_fetch``), the order flipped every round, so that both see the same machine: on
a shared machine the time of a 1e8-element call drifts by 1.5x within minutes, and only paired
ratios mean anything. Logits are N(0, 4^2), labels 0/1 (the benchmarks' normal4). Prints, per
variant, the median and best time of each way, the ratio of the medians (hardware / touch), the
median of the per-round ratios, and whether both gave the same result (they must, bit for bit).
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import numpy as np

import fastbce
from fastbce import _core
from script_args import count

WAYS = ("touch", "hardware")


def variants(n: int, threads: int | None) -> dict[str, Callable[[], float]]:
    rng = np.random.default_rng(1)
    x = rng.standard_normal(n, dtype=np.float32) * np.float32(4)
    y = (rng.random(n) < 0.5).astype(np.float32)
    y_u8 = y.astype(np.uint8)
    w = rng.uniform(0.0, 2.0, n).astype(np.float32)
    p = (1.0 / (1.0 + np.exp(-x.astype(np.float64)))).astype(np.float32)
    opts = {"threads": threads}
    return {
        "logits": lambda: fastbce.binary_crossentropy(y, x, from_logits=True, **opts),
        "focal": lambda: fastbce.binary_focal_crossentropy(
            y, x, from_logits=True, gamma=2.0, alpha=0.25, **opts
        ),
        "uint8": lambda: fastbce.binary_crossentropy(y_u8, x, from_logits=True, **opts),
        "weighted": lambda: fastbce.binary_crossentropy(
            y, x, from_logits=True, sample_weight=w, **opts
        ),
        "probs": lambda: fastbce.binary_crossentropy(y, p, **opts),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=count, default=1e8)
    parser.add_argument("--threads", type=int, default=0, help="0: fastbce's default")
    parser.add_argument("--rounds", type=count, default=12)
    parser.add_argument("--variants", default="logits,focal,uint8,weighted,probs")
    args = parser.parse_args()
    n = int(args.n)
    threads = args.threads or None
    calls = variants(n, threads)
    chosen = args.variants.split(",")
    unknown = sorted(set(chosen) - set(calls))
    if unknown:
        parser.error(f"--variants: unknown {', '.join(unknown)} (known: {', '.join(calls)})")
    default = _core.line_fetch()
    times: dict[tuple[str, str], list[float]] = {(v, w): [] for v in chosen for w in WAYS}
    results: dict[str, set[float]] = {v: set() for v in chosen}
    try:
        for r in range(args.rounds):
            for v in chosen:
                for way in WAYS if r % 2 == 0 else WAYS[::-1]:
                    _core.set_line_fetch(way)
                    start = time.perf_counter()
                    results[v].add(float(calls[v]()))
                    times[(v, way)].append((time.perf_counter() - start) * 1e3)
    finally:
        _core.set_line_fetch(default)
    info = fastbce.build_info()
    print(
        f"line fetch, {n:.0e} elements, threads {args.threads or info['default_threads']}, "
        f"{args.rounds} rounds; tier {info['target']}, default here {default}"
    )
    print(f"{'variant':<9} {'touch ms (best)':>16} {'hardware ms (best)':>19} {'ratio':>6} "
          f"{'paired':>7}  same result")  # fmt: skip
    for v in chosen:
        t, h = times[(v, "touch")], times[(v, "hardware")]
        paired = statistics.median(b / a for a, b in zip(t, h, strict=True))
        ratio = statistics.median(h) / statistics.median(t)
        same = "yes" if len(results[v]) == 1 else "NO"
        print(
            f"{v:<9} {statistics.median(t):8.1f} ({min(t):5.1f}) "
            f"{statistics.median(h):10.1f} ({min(h):6.1f}) {ratio:6.3f} {paired:7.3f}  {same}"
        )


if __name__ == "__main__":
    main()
