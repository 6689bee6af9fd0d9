"""Threads and processes: correct results from many Python threads at once, the GIL released
inside the kernel, and fastbce working in a child after fork (also after threaded use).

No test asserts a timing: the GIL test checks an ordering that is impossible while the GIL is
held. The speed-up of threads is measured by benchmarks/test_bench_threads.py."""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
import time

import numpy as np
import pytest

import fastbce

pytestmark = pytest.mark.filterwarnings(
    # Python >= 3.12 warns when a process with live threads forks; pytest or other tests may
    # have left idle threads around, which is not what these tests are about.
    "ignore:This process .* is multi-threaded, use of fork:DeprecationWarning"
)

BIG = 1 << 21  # above two kernel threads' worth of elements (2 x 2^18), so threads=2 splits it


def _problem(seed: int, n: int):
    """Labels, predictions and options that differ with the seed (dtypes, options, shape)."""
    rng = np.random.default_rng(seed)
    pred_dtype = [np.float16, np.float32, np.float64][seed % 3]
    label_dtype = [np.bool_, np.uint8, np.float32, np.float64][seed % 4]
    from_logits = seed % 2 == 0
    y = (rng.random(n) < 0.3).astype(label_dtype)
    p = (rng.normal(0, 3, n) if from_logits else rng.random(n)).astype(pred_dtype)
    options = {
        "from_logits": from_logits,
        "gamma": [0.0, 2.0, 0.5][seed % 3],
        "label_smoothing": [0.0, 0.1][seed % 2],
        "sample_weight": rng.random(n) if seed % 4 == 1 else None,
    }
    if seed % 5 == 0:  # a strided view
        y, p = y[::-1], p[::-1]
    return y, p, options


def test_eight_threads_on_different_data_get_the_single_thread_results():
    problems = [_problem(seed, BIG if seed % 4 == 0 else 10_007 + 97 * seed) for seed in range(8)]
    reductions = ["sum", "mean", "weighted_mean", "none"]
    want = []
    for y, p, options in problems:
        want.append(
            {
                r: fastbce.binary_crossentropy(y, p, reduction=r, threads=1, **options)
                for r in reductions
            }
        )

    start = threading.Barrier(8)
    errors: list[str] = []

    def worker(i: int) -> None:
        y, p, options = problems[i]
        start.wait()
        for rounds in range(6):
            for r in reductions:
                got = fastbce.binary_crossentropy(
                    y, p, reduction=r, threads=1 + (i + rounds) % 3, **options
                )
                same = (
                    np.array_equal(got, want[i][r])
                    if r == "none"
                    else repr(got) == repr(want[i][r])
                )
                if not same:
                    errors.append(
                        f"thread {i}, {r}, round {rounds}: {got!r:.80} != {want[i][r]!r:.80}"
                    )

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not any(t.is_alive() for t in threads), "a thread hung"
    assert not errors, errors[:5]


def test_errors_in_threads_stay_in_their_thread():
    """Half the threads get invalid labels (a ValueError naming the index), half valid ones."""
    n = 200_003
    good_y, p = np.zeros(n, np.float32), np.full(n, 0.25, np.float32)
    bad_y = good_y.copy()
    bad_y[123_456] = 2.0
    want = fastbce.binary_crossentropy(good_y, p)
    outcomes: dict[int, object] = {}
    barrier = threading.Barrier(8)

    def worker(i: int) -> None:
        barrier.wait()
        for _ in range(20):
            try:
                outcomes[i] = fastbce.binary_crossentropy(bad_y if i % 2 else good_y, p)
            except ValueError as e:
                outcomes[i] = str(e)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    for i in range(8):
        if i % 2:
            assert "y_true must be in [0, 1]; got 2.0 at flat index 123456" in outcomes[i]
        else:
            assert outcomes[i] == want


def test_the_gil_is_released_inside_the_kernel():
    """One thread computes a long elementwise loss into `out` on one kernel thread (the kernel
    then writes `out` front to back); the main thread, running Python the whole time, watches
    `out`. If the call held the GIL, the main thread could run only before the kernel starts or
    after it has finished, so it could never see the first element written while the last is
    not: seeing that proves that Python ran while the kernel was inside the call. Retried a few
    times in case the main thread is not scheduled at all during a call."""
    n = 1 << 24
    y = np.zeros(n, np.bool_)
    p = np.zeros(n, np.float32)  # logits 0: p = 1/2, focal factor 1/4
    out = np.empty(n, np.float32)
    want = np.float32(np.log(2) / 4)
    for _attempt in range(10):
        out.fill(np.nan)
        worker = threading.Thread(
            target=fastbce.binary_focal_crossentropy,
            args=(y, p),
            kwargs={
                "from_logits": True,
                "gamma": 2.0,
                "reduction": "none",
                "out": out,
                "threads": 1,
            },
        )
        worker.start()
        python_steps = 0
        seen_inside = False
        while worker.is_alive():
            python_steps += 1
            if not np.isnan(out[0]):
                seen_inside = bool(np.isnan(out[-1]))
                break
        worker.join(timeout=300)
        assert not worker.is_alive()
        np.testing.assert_allclose(out[[0, n // 2, -1]], want, rtol=1e-6)
        if seen_inside:
            assert python_steps > 0
            return
    pytest.fail("the main thread never ran while the kernel was inside the call: is the GIL held?")


def _child_check(y, p, want) -> int:
    """Runs in a forked child: fastbce with kernel threads, and from Python threads too."""
    try:
        if fastbce.binary_crossentropy(y, p, threads=2) != want:
            return 3
        results = []
        threads = [
            threading.Thread(
                target=lambda: results.append(fastbce.binary_crossentropy(y, p, threads=2))
            )
            for _ in range(3)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return 0 if results == [want] * 3 else 4
    except BaseException:  # noqa: BLE001 - any failure is the child's exit status
        return 5


def _wait(pid: int, seconds: float) -> int:
    deadline = time.monotonic() + seconds
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            pytest.fail(f"the forked child hung for {seconds} s")
        time.sleep(0.02)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
@pytest.mark.parametrize("parent_used_threads", [False, True])
def test_fork_child_computes(parent_used_threads):
    y, p, _ = _problem(3, BIG)
    want = fastbce.binary_crossentropy(y, p, threads=1)
    if parent_used_threads:  # kernel threads and Python threads in the parent before the fork
        assert fastbce.binary_crossentropy(y, p, threads=2) == want
        pool = [
            threading.Thread(target=fastbce.binary_crossentropy, args=(y, p), kwargs={"threads": 2})
            for _ in range(4)
        ]
        for t in pool:
            t.start()
        for t in pool:
            t.join()
    pid = os.fork()
    if pid == 0:  # the child: never return into pytest
        os._exit(_child_check(y, p, want))
    assert _wait(pid, 120) == 0
    assert fastbce.binary_crossentropy(y, p, threads=2) == want  # and the parent still works


def _pool_task(seed: int) -> float:
    y, p, options = _problem(seed, BIG // 4)
    return fastbce.binary_crossentropy(y, p, threads=2, **options)


@pytest.mark.skipif("fork" not in multiprocessing.get_all_start_methods(), reason="needs fork")
def test_multiprocessing_fork_pool_after_threaded_use():
    seeds = list(range(6))
    want = [_pool_task(seed) for seed in seeds]  # threads=2 in the parent first
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(2) as pool:
        result = pool.map_async(_pool_task, seeds)
        got = result.get(timeout=300)
    assert [repr(g) for g in got] == [repr(w) for w in want]


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_fork_while_other_threads_report():
    # The report's histogram buffers come from a process-wide pool behind a mutex; a child forked
    # while another thread held it must start a pool of its own, not wait on the parent's lock.
    # (The lock is held for a few ns per call, so this exercises the path; it cannot force it.)
    y, p, _ = _problem(5, BIG // 4)
    want = fastbce.evaluate(y, p, threads=2)["auc"]
    stop = threading.Event()

    def report_in_a_loop():
        while not stop.is_set():
            fastbce.evaluate(y, p, threads=2)

    workers = [threading.Thread(target=report_in_a_loop) for _ in range(2)]
    for t in workers:
        t.start()
    try:
        for _ in range(5):
            pid = os.fork()
            if pid == 0:  # the child: never return into pytest
                try:
                    same = fastbce.evaluate(y, p, threads=2)["auc"] == want
                    os._exit(0 if same else 3)
                except BaseException:  # noqa: BLE001 - any failure is the child's exit status
                    os._exit(5)
            assert _wait(pid, 120) == 0
    finally:
        stop.set()
        for t in workers:
            t.join()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_grandchild_of_a_forked_child_computes():
    # Each process makes its own thread pool and report buffers after a fork (per_process.hpp):
    # a child that made them forks again, and its child must make them anew in turn (the
    # handlers registered once, when the library loaded, run in every generation).
    y, p, _ = _problem(5, BIG // 4)
    want = fastbce.binary_crossentropy(y, p, threads=1)
    want_auc = fastbce.evaluate(y, p, threads=2)["auc"]

    def uses_both() -> bool:
        loss = fastbce.binary_crossentropy(y, p, threads=2)
        return loss == want and fastbce.evaluate(y, p, threads=2)["auc"] == want_auc

    pid = os.fork()
    if pid == 0:  # the child: never return into pytest
        try:
            if not uses_both():
                os._exit(3)
            grandchild = os.fork()
            if grandchild == 0:
                os._exit(0 if uses_both() else 4)
            code = _wait(grandchild, 60)  # (kills it and fails, so exits 5, if it hangs)
            os._exit(code if code != 0 else (0 if uses_both() else 6))
        except BaseException:  # noqa: BLE001 - any failure is the child's exit status
            os._exit(5)
    assert _wait(pid, 120) == 0
