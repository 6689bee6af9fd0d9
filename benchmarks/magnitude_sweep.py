"""Time per element against the magnitude of the logits, on every SIMD tier: finds speed cliffs
(subnormal intermediates cost a microcode assist of ~100 cycles each on Intel cores).

The sweep itself is ``fastbce.cli.bench.sweep`` (also ``fastbce bench --sweep``, which runs the
active tier): one thread, n elements, every |x| the same with random signs and random 0/1 labels;
per mode and dtype, the time per element at each magnitude relative to the fastest, and the
slowest/fastest ratio over the magnitudes where the kernel works on normal numbers and over those
marked "*" (a correct prediction's loss is not normal while exp(-|x|) is not 0 yet). Timings are
the process's CPU time, the best of --repeat rounds over every magnitude.

    python benchmarks/magnitude_sweep.py [--n 1000000] [--repeat 5] [--tiers x86-64-v4 ...]
"""

from __future__ import annotations

import argparse

from fastbce import _core
from fastbce.cli.bench import sweep
from script_args import count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=count, default=1_000_000)
    parser.add_argument("--repeat", type=count, default=5)
    parser.add_argument("--tiers", nargs="*", default=list(_core.supported_targets()))
    parser.add_argument("--modes", nargs="*", default=list(sweep.MODES), choices=list(sweep.MODES))
    parser.add_argument("--dtypes", nargs="*", default=list(sweep.DTYPES))
    args = parser.parse_args()
    previous = _core.active_target()
    try:
        for tier in args.tiers:
            _core.set_target(tier)
            results = [
                (sweep.MODES[mode], dtype, sweep.sweep(sweep.MODES[mode], dtype, args.n,
                                                       repeats=args.repeat))
                for mode in args.modes
                for dtype in args.dtypes
            ]  # fmt: skip
            print(sweep.format_sweep(results, args.n, threads=1))
            print()
    finally:
        _core.set_target(previous)


if __name__ == "__main__":
    main()
