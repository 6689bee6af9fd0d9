"""Time per element against the magnitude of the logits: finds speed cliffs (issue: subnormal
intermediates cost a microcode assist of ~100 cycles each on Intel cores).

One thread, n elements, every |x| the same with random signs and random 0/1 labels; for each SIMD
tier, mode and dtype, prints the time per element at each magnitude relative to the fastest
magnitude, and the slowest/fastest ratio over the magnitudes where every result is a normal
number and over those where a correct prediction's loss is subnormal (marked "sub"), each
with ✓ or ✗ against its target (1.3x and 3x).
Timings are the minimum over --repeat runs.

    python benchmarks/magnitude_sweep.py [--n 1000000] [--repeat 5] [--tiers x86-64-v4 ...]
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np

import fastbce
from fastbce import _core

# slowest/fastest targets (issue 11): where every result is normal, and where a correct
# prediction's loss is subnormal (an FP operation producing it may take the assist once)
NORMAL_TARGET = 1.3
SUBNORMAL_TARGET = 3.0

MAGNITUDES = [*range(13), 16, 22, 26, 30, 36, 50, 87, 90, 100, 200, 710, 745, 1e3, 1e10, 1e30]

# name: (from_logits, keyword arguments, focal gamma or 0)
MODES = {
    "logits": (True, {}, 0.0),
    "probabilities": (False, {}, 0.0),
    "focal2": (True, {"gamma": 2.0, "alpha": 0.25}, 2.0),
    "focal2.7": (True, {"gamma": 2.7}, 2.7),
    "weighted": (True, {"sample_weight": "w"}, 0.0),
    "pos_weight": (True, {"pos_weight": 2.0}, 0.0),
}


def subnormal_band(dtype: type, magnitude: float, gamma: float, from_logits: bool) -> bool:
    """Whether a correct prediction's loss, about exp(-(1 + gamma)|x|), is not a normal number
    (subnormal, or 0 by underflow) while exp(-|x|) is not 0 yet: the kernel then works on
    subnormal values."""
    if not from_logits:  # probabilities are clipped to [eps, 1 - eps]
        return False
    info = np.finfo(dtype)
    lowest = math.log(float(info.smallest_subnormal)) - math.log(2.0)  # rounds to 0 below
    return -(1.0 + gamma) * magnitude < math.log(float(info.tiny)) and -magnitude > lowest


def verdict(ratio: float, target: float) -> str:
    """The ratio with a check mark (within the target) or a cross, and the target."""
    return f"{ratio:.2f}x {'✓' if ratio <= target else '✗'} (<= {target:g}x)"


def time_call(fn, repeat: int) -> float:
    best = math.inf
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def sweep(dtype: type, mode: str, n: int, repeat: int, rng: np.random.Generator) -> None:
    from_logits, kwargs, gamma = MODES[mode]
    signs = rng.choice([-1.0, 1.0], n)
    y = rng.integers(0, 2, n).astype(dtype)
    w = rng.uniform(0.5, 2.0, n).astype(dtype)
    loss = fastbce.binary_focal_crossentropy if gamma else fastbce.binary_crossentropy
    options = {k: (w if v == "w" else v) for k, v in kwargs.items()}
    rows = []
    for magnitude in MAGNITUDES:
        if magnitude > float(np.finfo(dtype).max):
            continue
        x64 = signs * float(magnitude)
        if from_logits:
            pred = x64.astype(dtype)
        else:
            with np.errstate(over="ignore"):
                pred = (1.0 / (1.0 + np.exp(-x64))).astype(dtype)

        def call(pred=pred):
            return loss(y, pred, from_logits=from_logits, threads=1, **options)

        call()  # warm up
        rows.append(
            (
                magnitude,
                time_call(call, repeat) / n * 1e9,
                subnormal_band(dtype, magnitude, gamma, from_logits),
            )
        )
    fastest = min(t for _, t, _ in rows)
    cells = [f"{m:g}:{t / fastest:.2f}{'*' if sub else ''}" for m, t, sub in rows]
    normal = [t for _, t, sub in rows if not sub]
    sub = [t for _, t, s in rows if s]
    summary = f"normal {verdict(max(normal) / fastest, NORMAL_TARGET)}"
    if sub:
        summary += f", sub* {verdict(max(sub) / fastest, SUBNORMAL_TARGET)}"
    print(
        f"  {mode:<13} {np.dtype(dtype).name:<7} fastest {fastest:.2f} ns/el, slowest/fastest: "
        f"{summary}"
    )
    print("    " + " ".join(cells))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--tiers", nargs="*", default=list(_core.supported_targets()))
    parser.add_argument("--modes", nargs="*", default=list(MODES))
    parser.add_argument("--dtypes", nargs="*", default=["float32", "float64"])
    args = parser.parse_args()
    previous = _core.active_target()
    rng = np.random.default_rng(0)
    try:
        for tier in args.tiers:
            _core.set_target(tier)
            print(
                f"tier {tier} (n = {args.n}, one thread, min of {args.repeat}; "
                "magnitude:time relative to the fastest, * = a correct prediction's loss is "
                "subnormal)"
            )
            for mode in args.modes:
                for dtype in args.dtypes:
                    sweep(np.dtype(dtype).type, mode, args.n, args.repeat, rng)
    finally:
        _core.set_target(previous)


if __name__ == "__main__":
    main()
