"""Timing: the warmed-up call that is timed (``Prepared``), how it is timed (``measure``) and
the number of threads fastbce's kernel (and so the read floor) uses."""

from __future__ import annotations

import contextlib
import gc
import math
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ... import _core
from .variants import Variant


def cpu_model() -> str:
    """The CPU's model name (/proc/cpuinfo on Linux, else what the platform module knows)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() == "model name" and value.strip():
                    return " ".join(value.split())
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def machine_line() -> str:
    """The CPU and what fastbce runs on it: the table's first line."""
    return (
        f"CPU: {cpu_model()}; SIMD tier {_core.active_target()}; "
        f"line fetch {_core.line_fetch()}; {_core.default_threads()} threads available"
    )


def kernel_threads(n: int, threads: int | None) -> int:
    """The number of threads fastbce's kernel runs on for n elements (and so the read floor)."""
    return _core.threads_for(n, threads or 0)


@dataclass
class Prepared:
    """A warmed-up, zero-argument function computing the mean loss of one Data.

    `call()` is what is timed; `value(result)` turns its result into a Python float (outside the
    timing). `context()` is entered around warm-up and timing (JAX's float64 mode).
    """

    call: Callable[[], Any]
    value: Callable[[Any], float] = float
    context: Callable[[], contextlib.AbstractContextManager[Any]] = contextlib.nullcontext
    threads: int | str = "default"


def measure(call: Callable[[], Any], repeats: int, min_time: float) -> list[float]:
    """Seconds per call, one figure per repeat. A repeat runs `call` as many times as it takes to
    last `min_time` seconds (timeit's way of timing short calls), with the garbage collector off."""
    start = time.perf_counter()
    call()
    once = time.perf_counter() - start
    inner = 1 if once >= min_time else min(1_000_000, max(1, math.ceil(min_time / max(once, 1e-7))))
    times = []
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        for _ in range(repeats):
            start = time.perf_counter_ns()
            for _ in range(inner):
                call()
            times.append((time.perf_counter_ns() - start) / inner / 1e9)
    finally:
        if gc_was_enabled:
            gc.enable()
    return times


def figures(times: list[float], n: int, nbytes: int) -> dict[str, Any]:
    """The figures of one timed entry of n elements and nbytes of traffic: its times, their
    median in ms, ns per element and GB/s (the columns of the tables, docs/benchmarks.md)."""
    median = statistics.median(times)
    return {
        "times_s": times,
        "median_ms": median * 1e3,
        "ns_per_element": median * 1e9 / n,
        "gb_per_s": nbytes / median / 1e9,
    }


@dataclass
class Settings:
    sizes: list[int]
    variants: list[Variant]
    dists: list[str]  # logit distributions (variants.DISTRIBUTIONS)
    peers: list[str]
    skipped: dict[str, str]  # peer -> why
    threads: int | None
    repeats: int
    min_time: float
    quick: bool
    seed: int
