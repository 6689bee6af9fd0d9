"""``fastbce bench --sweep``: time per element against the magnitude of the inputs.

Finds speed cliffs: on Intel cores every floating-point operation with a subnormal result takes a
microcode assist of ~100 cycles, so an intermediate that underflows for some band of |x| makes
that band many times slower (AMD cores pay far less, which hides it there). Each point is one
call on n elements that all have the same |x|, with random signs and random 0/1 labels (for
probabilities, p = sigmoid(+-|x|)); the time is the process's CPU time per element (with
threads > 1, that of every thread, a watching pool thread's included), the best of the repeats,
on one thread unless asked otherwise. Where a correct prediction's loss (about
exp(-(1 + gamma)|x|), times its sample weight and class balance) is not a normal number while
exp(-|x|) is not 0 yet, the kernel works on subnormal values, so those magnitudes ("*") are
summarised apart from the others (docs/vecmath.md says what they cost).

The same functions serve ``benchmarks/magnitude_sweep.py`` (every tier at once).
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from ... import _core
from .timing import machine_line

MAGNITUDES = (
    *(0, 0.5, 1, 2, 3, 4, 6, 8, 10, 11, 12, 16, 22, 26, 30, 36, 50, 70),
    *(87, 90, 100, 104, 200, 230, 500, 710, 745, 1e3, 1e10, 1e30),
)
DTYPES = ("float32", "float64")


@dataclass(frozen=True)
class Mode:
    """One loss configuration of the sweep."""

    name: str
    from_logits: bool = True
    gamma: float = 0.0
    alpha: float | None = None
    weighted: bool = False
    pos_weight: float | None = None
    label_dtype: str | None = None  # the labels' dtype (default: the predictions')


MODES: dict[str, Mode] = {
    m.name: m
    for m in (
        Mode("logits"),
        Mode("probs", from_logits=False),
        Mode("focal", gamma=2.0, alpha=0.25),
        Mode("focal2.7", gamma=2.7),
        Mode("weighted", weighted=True),
        Mode("pos_weight", pos_weight=2.0),
        Mode("uint8", label_dtype="uint8"),
    )
}


@dataclass(frozen=True)
class Point:
    magnitude: float
    ns_per_element: float
    subnormal: bool  # a correct prediction's loss is subnormal at this magnitude


# the sweep's sample weights (weighted mode) are drawn uniformly from this range
WEIGHT_RANGE = (0.5, 2.0)


def subnormal_band(
    dtype: Any, magnitude: float, gamma: float, from_logits: bool, factor: float = 1.0
) -> bool:
    """Whether a correct prediction's loss, about factor * exp(-(1 + gamma)|x|) with factor the
    smallest weight times class balance it is multiplied by, is not a normal number (subnormal, or
    0 by underflow) while exp(-|x|) is not 0 yet: the kernel then works on subnormal values.
    (Probabilities are clipped to [epsilon, 1 - epsilon]: never.)"""
    if not from_logits:
        return False
    info = np.finfo(dtype)
    lowest = math.log(float(info.smallest_subnormal)) - math.log(2.0)  # rounds to 0 below
    log_loss = math.log(factor) - (1.0 + gamma) * magnitude
    return log_loss < math.log(float(info.tiny)) and -magnitude > lowest


def smallest_factor(mode: Mode) -> float:
    """The smallest factor a correct prediction's loss is multiplied by in the sweep: its sample
    weight (weighted: at |x| = 87 a float32 loss e^-87 is normal, but one in 14 weights makes
    the weighted loss subnormal) times the smaller class balance (alpha or 1 - alpha)."""
    factor = WEIGHT_RANGE[0] if mode.weighted else 1.0
    if mode.alpha is not None:
        factor *= min(mode.alpha, 1.0 - mode.alpha)
    return factor


# Untimed calls before each point's timing. On the Sapphire Rapids VM, once the process has
# spent 10-20 ms or more on anything else (generating the next magnitude's inputs, sleeping,
# NumPy), the next two passes over 8 MB of inputs run up to 2.5x slower (a NumPy sum of them
# too) and the third 1.1-1.3x; from the fourth on they take their usual time. The point's
# single timed call used to be the second after the inputs were made, and making them takes
# 6 ms for most magnitudes but 65-85 ms at |x| = 710 and 745 (NumPy's float64 exp with
# subnormal results) and 13-21 ms from 1000 on: those rows read up to 1.5x for inputs that
# are bit for bit those of |x| = 104.
WARM_UP_CALLS = 3


def cpu_seconds(call: Callable[[], Any], min_time: float) -> float:
    """The process's CPU seconds per call of `call`, over as many calls as last min_time seconds
    of CPU (at least one)."""
    calls, start = 0, time.process_time_ns()
    while True:
        call()
        calls += 1
        spent = time.process_time_ns() - start
        if spent >= min_time * 1e9:
            return spent / calls / 1e9


def sweep(
    mode: Mode,
    dtype: str,
    n: int,
    *,
    threads: int = 1,
    repeats: int = 5,
    min_time: float = 0.0,
    magnitudes: tuple[float, ...] = MAGNITUDES,
    seed: int = 0,
) -> list[Point]:
    """Time per element at each magnitude (those within the dtype's range) for one mode.

    Times are the process's CPU time (which a shared machine's other work does not add to,
    as it does to wall time) per call, the best over the repeats; the repeats are rounds that
    each time every magnitude once, in turn forwards and backwards, so that what other work
    still costs (caches, memory) falls on every magnitude alike. (Timed in wall time, one
    magnitude after another, a v3 float64 row read 1.32-1.73x on a loaded machine where CPU
    times of the same build read 1.02-1.11x.) Each point is timed after WARM_UP_CALLS calls on
    its inputs."""
    import fastbce

    rng = np.random.default_rng([seed, n])
    signs = np.where(rng.random(n) < 0.5, -1.0, 1.0)
    y = rng.integers(0, 2, n).astype(mode.label_dtype or dtype)
    weight = rng.uniform(*WEIGHT_RANGE, n).astype(dtype) if mode.weighted else None
    swept = [m for m in magnitudes if m <= float(np.finfo(dtype).max)]

    def inputs(magnitude: float) -> np.ndarray:
        x = signs * float(magnitude)
        if not mode.from_logits:
            with np.errstate(over="ignore"):
                x = 1.0 / (1.0 + np.exp(-x))
        return x.astype(dtype)

    def call(pred: np.ndarray) -> float:
        return fastbce.binary_crossentropy(
            y,
            pred,
            from_logits=mode.from_logits,
            gamma=mode.gamma,
            alpha=mode.alpha,
            sample_weight=weight,
            pos_weight=mode.pos_weight,
            threads=threads,
        )

    best = dict.fromkeys(swept, math.inf)
    pred = np.empty(n, dtype)  # (every magnitude's inputs in one array: the same addresses)
    for round_ in range(max(1, repeats)):
        for magnitude in swept if round_ % 2 == 0 else swept[::-1]:
            np.copyto(pred, inputs(magnitude))
            for _ in range(WARM_UP_CALLS):
                call(pred)
            seconds = cpu_seconds(functools.partial(call, pred), min_time)
            best[magnitude] = min(best[magnitude], seconds)
    return [
        Point(
            float(m),
            best[m] * 1e9 / n,
            subnormal_band(dtype, m, mode.gamma, mode.from_logits, smallest_factor(mode)),
        )
        for m in swept
    ]


def summary(points: list[Point]) -> dict[str, Any]:
    """The fastest time per element and the slowest/fastest ratios: over the magnitudes where the
    kernel works on normal numbers, and over those marked by subnormal_band."""
    fastest = min(points, key=lambda p: p.ns_per_element)
    result: dict[str, Any] = {
        "fastest_ns": fastest.ns_per_element,
        "fastest_at": fastest.magnitude,
    }
    for key, group in (
        ("normal", [p for p in points if not p.subnormal]),
        ("subnormal", [p for p in points if p.subnormal]),
    ):
        if group:
            slowest = max(group, key=lambda p: p.ns_per_element)
            result[f"{key}_ratio"] = slowest.ns_per_element / fastest.ns_per_element
            result[f"{key}_slowest_at"] = slowest.magnitude
    return result


# slowest/fastest targets (no speed cliffs): where the kernel works on normal numbers, and where a
# correct prediction's loss is not normal (an operation producing it may take the assist)
NORMAL_TARGET = 1.3
SUBNORMAL_TARGET = 3.0


def _mark(ratio: float, target: float) -> str:
    """✓ within the target, ✗ beyond it, and the target."""
    return f"{'✓' if ratio <= target else '✗'} (target {target:g}x)"


def format_sweep(results: list[tuple[Mode, str, list[Point]]], n: int, threads: int) -> str:
    """The printed report: per mode and dtype, the slowest/fastest ratios and every point."""
    lines = [
        machine_line(),
        f"magnitude sweep: n = {n:,} elements of one |x| (random signs and 0/1 labels), "
        f"threads={threads}, CPU time, best of the repeats",
        "",
    ]
    for mode, dtype, points in results:
        s = summary(points)
        text = (
            f"{mode.name} {dtype}: fastest {s['fastest_ns']:.3g} ns/elem (|x| = "
            f"{s['fastest_at']:g}); slowest/fastest {s['normal_ratio']:.2f} "
            f"{_mark(s['normal_ratio'], NORMAL_TARGET)} (|x| = {s['normal_slowest_at']:g})"
        )
        if "subnormal_ratio" in s:
            text += (
                f", where the loss is not normal* {s['subnormal_ratio']:.2f} "
                f"{_mark(s['subnormal_ratio'], SUBNORMAL_TARGET)} "
                f"(|x| = {s['subnormal_slowest_at']:g})"
            )
        lines.append(text)
        fastest = s["fastest_ns"]
        cells = [
            f"{p.magnitude:g}:{p.ns_per_element / fastest:.2f}{'*' if p.subnormal else ''}"
            for p in points
        ]
        for start in range(0, len(cells), 10):
            lines.append("    " + "  ".join(cells[start : start + 10]))
    lines.append("")
    lines.append("|x|:ratio = time per element at that magnitude / the fastest magnitude's;")
    lines.append("* = a correct prediction's loss is subnormal or 0 there while exp(-|x|) is not 0")
    lines.append("    (not in the first ratio). ✓/✗: within the target (1.3x; 3x for *) or not.")
    return "\n".join(lines)


def report(results: list[tuple[Mode, str, list[Point]]], n: int, threads: int) -> dict[str, Any]:
    """The JSON form of a sweep."""
    return {
        "schema": "fastbce-bench-sweep/1",
        "target": _core.active_target(),
        "n": n,
        "threads": threads,
        "sweeps": [
            {
                "mode": mode.name,
                "dtype": dtype,
                **summary(points),
                "points": [
                    {
                        "magnitude": p.magnitude,
                        "ns_per_element": p.ns_per_element,
                        "subnormal": p.subnormal,
                    }
                    for p in points
                ],
            }
            for mode, dtype, points in results
        ],
    }
