"""Thread scaling (issue #5): the speed-up of two threads over one belongs here, not in a test.

Two groups on the same 16 Mi elements (float32 logits, bool labels, focal loss):
- "threads: kernel": one call with threads=1, then with threads=2;
- "threads: python": two halves computed one after the other on one Python thread, then by two
  Python threads at once (each threads=1), which only scales because the GIL is released.
Every benchmark asserts its value: reductions are bit-identical whatever the thread count.

    python -m pytest benchmarks/test_bench_threads.py --benchmark-only --benchmark-columns=median
"""

from __future__ import annotations

import threading

import numpy as np
import pytest

import fastbce

N = 1 << 24


@pytest.fixture(scope="module")
def problem():
    rng = np.random.default_rng(1)
    y = rng.random(N) < 0.3
    x = rng.normal(0, 3, N).astype(np.float32)
    options = {"from_logits": True, "gamma": 2.0, "reduction": "sum"}
    want = fastbce.binary_focal_crossentropy(y, x, threads=1, **options)
    halves = [(y[: N // 2], x[: N // 2]), (y[N // 2 :], x[N // 2 :])]
    want_halves = [fastbce.binary_focal_crossentropy(a, b, threads=1, **options) for a, b in halves]
    return y, x, options, want, halves, want_halves


@pytest.mark.parametrize("threads", [1, 2])
def test_kernel_threads(benchmark, problem, threads):
    y, x, options, want, _, _ = problem
    benchmark.group = "threads: kernel"
    got = benchmark(fastbce.binary_focal_crossentropy, y, x, threads=threads, **options)
    assert got == want


@pytest.mark.parametrize("python_threads", [1, 2])
def test_python_threads(benchmark, problem, python_threads):
    _, _, options, _, halves, want_halves = problem
    benchmark.group = "threads: python"

    def one_after_the_other():
        return [fastbce.binary_focal_crossentropy(a, b, threads=1, **options) for a, b in halves]

    def at_once():
        results = [None, None]

        def run(i):
            a, b = halves[i]
            results[i] = fastbce.binary_focal_crossentropy(a, b, threads=1, **options)

        workers = [threading.Thread(target=run, args=(i,)) for i in range(2)]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        return results

    got = benchmark(one_after_the_other if python_threads == 1 else at_once)
    assert got == want_halves
