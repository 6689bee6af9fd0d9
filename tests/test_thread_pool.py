"""The persistent thread pool (cpp/src/parallel.hpp): the same results on any number of threads,
the caller's floating-point environment in every thread, and a bounded number of threads.
(Fork and concurrent callers: tests/test_concurrency.py.)"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import shutil
import subprocess
import threading
import time

import numpy as np
import pytest

import fastbce
from conftest import ROOT
from fastbce import _core

BLOCK = 1 << 16  # the kernel's largest block (dispatch.cpp): threads take whole blocks
SPLIT = 1 << 13  # from this many elements a call is two blocks (or more)
DEFAULT_PARALLEL = SPLIT  # unasked, a call takes two threads from this many elements on


@pytest.mark.parametrize(
    "n", [SPLIT - 1, SPLIT, 10_000, 50_001, BLOCK + 1, 100_000, 3 * BLOCK - 1, 1 << 18, 300_000]
)
def test_any_thread_count_same_bits(simd_target, rng, n):
    x = rng.normal(0, 4, n).astype(np.float32)
    y = (rng.random(n) < 0.5).astype(np.float32)
    options = {"from_logits": True, "gamma": 2.0, "reduction": "sum"}
    want = fastbce.binary_focal_crossentropy(y, x, threads=1, **options)
    for threads in (None, 2, 3, 5, 64):
        assert fastbce.binary_focal_crossentropy(y, x, threads=threads, **options) == want


def test_every_task_runs_once_from_both_ends(tmp_path):
    # tests/cpp/test_parallel_for.cpp: parallel_for alone (tasks taken from the front by the
    # caller and from the back by the pool; a task that throws)
    compiler = os.environ.get("CXX") or shutil.which("g++")
    if compiler is None:
        pytest.skip("no C++ compiler (g++ or $CXX) to build tests/cpp/test_parallel_for.cpp")
    program = tmp_path / "test_parallel_for"
    source = ROOT / "tests/cpp/test_parallel_for.cpp"
    includes = ["-I", str(ROOT / "cpp/include"), "-I", str(ROOT / "cpp/src")]
    build = [compiler, "-std=c++20", "-O2", "-DFASTBCE_STANDALONE", *includes, str(source)]
    subprocess.run([*build, "-o", str(program), "-lpthread"], check=True)
    done = subprocess.run([str(program)], capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0 and done.stdout == "ok\n", done.stdout + done.stderr


def test_two_threads_from_two_blocks():
    assert _core.threads_for(SPLIT - 1, 2) == 1  # one block: one thread
    assert _core.threads_for(SPLIT, 2) == 2  # two blocks from 2^13 elements on
    assert _core.threads_for(10**4, 2) == 2
    assert _core.threads_for(30_000, 8) == 2  # never more threads than blocks
    assert _core.threads_for(100_000, 16) == 8  # (mid-size calls: blocks of at most 2^14, even)
    assert _core.threads_for(DEFAULT_PARALLEL - 1, 0) == 1  # unasked: one thread below it
    if _core.default_threads() >= 2:
        assert _core.threads_for(DEFAULT_PARALLEL, 0) == 2
        assert _core.threads_for(100_000, 0) == 2


def _libm():
    name = ctypes.util.find_library("m")
    if name is None or not hasattr(ctypes.CDLL(name), "fesetround"):
        pytest.skip("no libm with fesetround")
    return ctypes.CDLL(name)


@pytest.mark.skipif(os.uname().machine not in ("x86_64", "AMD64"), reason="x86 FE_UPWARD value")
def test_pool_threads_take_the_callers_rounding_mode(rng):
    libm = _libm()
    fe_upward = 0x800  # <fenv.h> on x86
    n = 4 * BLOCK
    x = rng.normal(0, 4, n).astype(np.float32)
    y = (rng.random(n) < 0.5).astype(np.float32)
    nearest = fastbce.binary_crossentropy(y, x, from_logits=True, threads=2)  # (starts the pool)
    old = libm.fegetround()
    assert libm.fesetround(fe_upward) == 0
    try:
        upward = [
            fastbce.binary_crossentropy(y, x, from_logits=True, threads=t, reduction="none")
            for t in (1, 2, 4)
        ]
    finally:
        libm.fesetround(old)
    assert not np.array_equal(upward[0], fastbce.binary_crossentropy(y, x, from_logits=True,
                                                                     reduction="none"))  # fmt: skip
    for other in upward[1:]:
        np.testing.assert_array_equal(other, upward[0])
    assert fastbce.binary_crossentropy(y, x, from_logits=True, threads=2) == nearest


@pytest.mark.skipif(not os.path.isdir("/proc/self/task"), reason="counts threads in /proc")
def test_threads_are_kept_and_bounded(rng):
    n = 40 * BLOCK
    x = rng.normal(size=n).astype(np.float32)
    y = (rng.random(n) < 0.5).astype(np.float32)
    fastbce.binary_crossentropy(y, x, from_logits=True, threads=4)
    before = len(os.listdir("/proc/self/task"))
    for _ in range(20):  # a pool: no new threads per call
        fastbce.binary_crossentropy(y, x, from_logits=True, threads=4)
    assert len(os.listdir("/proc/self/task")) == before
    fastbce.binary_crossentropy(y, x, from_logits=True, threads=10_000)
    cap = max(8, 2 * _core.default_threads()) - 1
    assert len(os.listdir("/proc/self/task")) <= before + cap


def test_an_idle_pool_sleeps(rng):
    """Pool threads watch for work for a moment after a call (so that the next call's hand-off
    is quick), then sleep: an idle pool takes no CPU."""
    n = 4 * BLOCK
    x = rng.normal(size=n).astype(np.float32)
    y = (rng.random(n) < 0.5).astype(np.float32)
    for _ in range(50):
        fastbce.binary_crossentropy(y, x, from_logits=True, threads=8)
    time.sleep(0.05)
    before = time.process_time()
    time.sleep(0.5)
    assert time.process_time() - before < 0.05  # (spinning: ~0.5 s a thread)


def test_callers_sharing_the_pool(rng):
    """Python threads that all ask for pool threads at once each get their own result."""
    problems = []
    for seed in range(6):
        r = np.random.default_rng(seed)
        n = int(r.integers(BLOCK, 6 * BLOCK))
        x = r.normal(0, 3, n).astype(np.float32)
        y = (r.random(n) < 0.5).astype(np.float32)
        problems.append((y, x, fastbce.binary_crossentropy(y, x, from_logits=True, threads=1)))
    results: dict[int, list[float]] = {i: [] for i in range(len(problems))}

    def work(i):
        y, x, _ = problems[i]
        for _ in range(10):
            results[i].append(fastbce.binary_crossentropy(y, x, from_logits=True, threads=3))

    workers = [threading.Thread(target=work, args=(i,)) for i in range(len(problems))]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=300)
    for i, (_, _, want) in enumerate(problems):
        assert results[i] == [want] * 10


def test_mid_size_calls_in_a_loop_from_several_callers(rng):
    """Mid-size calls hand their second block to a pool thread watching for work (an offer in its
    slot, taken or taken back); callers racing for the same watching thread, or finding it gone
    to sleep, still get the one-thread result every time."""
    problems = []
    for n in (SPLIT, 10_000, 20_000, BLOCK + 1):
        x = rng.normal(0, 3, n).astype(np.float32)
        y = (rng.random(n) < 0.5).astype(np.float32)
        problems.append((y, x, fastbce.binary_crossentropy(y, x, from_logits=True, threads=1)))
    wrong: list[tuple[int, int]] = []

    def work(k):
        for i in range(400):
            y, x, want = problems[(i + k) % len(problems)]
            threads = (None, 2, 3)[i % 3]
            if fastbce.binary_crossentropy(y, x, from_logits=True, threads=threads) != want:
                wrong.append((k, i))
            if i % 100 == 99:
                time.sleep(0.001)  # (pool threads may stop watching: the queue path)

    workers = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for w in workers:
        w.start()
    work(4)
    for w in workers:
        w.join(timeout=300)
    assert wrong == []


def test_a_loop_of_mid_size_calls_leaves_no_thread_spinning(rng):
    """Unasked mid-size calls take only a pool thread that watches for work; in a loop they have
    one started or woken after the caller's work, to watch for the next call. Once the calls
    stop, that thread too goes to sleep, and every result is the one-thread result."""
    x = rng.normal(size=10_000).astype(np.float32)
    y = (rng.random(10_000) < 0.5).astype(np.float32)
    want = fastbce.binary_crossentropy(y, x, from_logits=True, threads=1)
    for i in range(2_000):
        assert fastbce.binary_crossentropy(y, x, from_logits=True) == want
        if i % 500 == 499:
            time.sleep(0.002)  # (the pool thread goes to sleep: woken again by the loop)
    time.sleep(0.05)
    before = time.process_time()
    time.sleep(0.5)
    assert time.process_time() - before < 0.05
