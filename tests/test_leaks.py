"""Memory stays flat: 100,000 calls of every entry point, error paths and `out=` included.

Resident memory (RSS) is measured after a warm-up (allocator pools and caches fill up first) and
again after the calls. A leak of even 16 bytes a call would show as 1.6 MB; the bound is 1 MiB.
Under AddressSanitizer RSS says nothing (freed memory sits in its quarantine), so the
sanitizer run (tools/run_sanitized_tests.sh) skips these; LeakSanitizer covers the C++ side in the
kernel fuzzer instead."""

from __future__ import annotations

import gc
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import fastbce

CALLS = 100_000
WARMUP = 5_000
BOUND = 1 << 20  # bytes of RSS growth allowed over CALLS calls

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="reads RSS from /proc"),
    pytest.mark.skipif(
        os.environ.get("FASTBCE_SANITIZED") == "1",
        reason="RSS is meaningless under AddressSanitizer (quarantine)",
    ),
]


def rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


rng = np.random.default_rng(5)
Y = (rng.random((16, 4)) < 0.5).astype(np.float32)
P = rng.random((16, 4)).astype(np.float32)
X = rng.normal(size=(16, 4))
W_ROW = rng.random(16)
Q = np.array([1.0, 2.0, 0.5, 3.0])
OUT = np.empty((16, 4), np.float32)
BAD_Y = Y.copy()
BAD_Y[3, 2] = 1.5
NAN_P = P.copy()
NAN_P[7, 1] = np.nan


def _expect(error, fn, *args, **kwargs):
    def call():
        try:
            fn(*args, **kwargs)
        except error:
            return
        raise AssertionError("no error")

    return call


ENTRY_POINTS = {
    "mean": lambda: fastbce.binary_crossentropy(Y, P),
    "none": lambda: fastbce.binary_crossentropy(Y, P, reduction="none"),
    "out": lambda: fastbce.binary_crossentropy(Y, P, reduction="none", out=OUT),
    "out-copy": lambda: fastbce.binary_crossentropy(Y, P, reduction="none", out=OUT.T.copy().T),
    "focal-weights": lambda: fastbce.binary_focal_crossentropy(
        Y,
        X,
        from_logits=True,
        sample_weight=W_ROW,
        pos_weight=Q,
        alpha=0.25,
        reduction="weighted_mean",
    ),
    "strided-float64": lambda: fastbce.binary_crossentropy(
        Y.T, X.T, from_logits=True, reduction="sum"
    ),
    "lists": lambda: fastbce.binary_crossentropy([0, 1, 1], [0.2, 0.7, 0.9], nan_policy="omit"),
    "type-error": _expect(TypeError, fastbce.binary_crossentropy, Y, P.astype(np.int32)),
    "option-error": _expect(ValueError, fastbce.binary_focal_crossentropy, Y, P, epsilon=0.7),
    "label-error": _expect(ValueError, fastbce.binary_crossentropy, BAD_Y, P),
    "nan-error": _expect(ValueError, fastbce.binary_crossentropy, Y, NAN_P, nan_policy="raise"),
    "shape-error": _expect(ValueError, fastbce.binary_crossentropy, Y, P[:3]),
}


def measure(name: str) -> int:
    """RSS growth in bytes over CALLS calls of one entry point, after a warm-up."""
    call = ENTRY_POINTS[name]
    for _ in range(WARMUP):
        call()
    gc.collect()
    before = rss()
    for _ in range(CALLS):
        call()
    gc.collect()
    return rss() - before


@pytest.mark.parametrize("name", list(ENTRY_POINTS))
def test_memory_is_flat_over_many_calls(name):
    # In a fresh interpreter: in the suite's own process, background threads of earlier tests
    # (a Dask cluster's, say) allocate while this runs, and their RSS showed up here as 2-5 MB
    # of growth that a clean process does not have (0 KiB).
    code = (
        f"import sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); "
        f"import test_leaks; print(test_leaks.measure({name!r}))"
    )
    run = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=900, check=False
    )
    assert run.returncode == 0, run.stderr
    grown = int(run.stdout.split()[-1])
    print(f"{name}: grew {grown / 1024:.0f} KiB over {CALLS} calls", file=sys.stderr)
    assert grown < BOUND, f"RSS grew by {grown / 1024:.0f} KiB over {CALLS} calls of {name}"
