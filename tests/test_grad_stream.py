"""binary_crossentropy_grad on large float32 outputs, on every SIMD tier the CPU has.

From 2^22 elements on, the plain and weighted float32 derivatives are written with non-temporal
stores in short chunks that start on the gradient's cache lines (cpp/include/fastbce/grad.hpp,
plain_float_streamed); other layouts of the outputs take the per-tile path. Every element's
values must be those of a small call (which writes straight to the caller's arrays), whatever
the outputs' offsets in a cache line, the length and the threads.
"""

from __future__ import annotations

import numpy as np
import pytest

import fastbce

pytestmark = pytest.mark.usefixtures("simd_target")

STREAM_MIN = 1 << 22  # grad.hpp's kStreamMin
N = STREAM_MIN + 77  # an odd length: the last block ends inside a vector
PIECE = 1 << 20  # calls this long take the small path


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(20261202)
    x = rng.normal(0, 6, N).astype(np.float32)
    x[::1001] *= 30  # some beyond the fast exp's range, in many chunks
    x[5::4099] = np.inf
    y = rng.random(N).astype(np.float32)
    y[::3] = np.round(y[::3])
    w = rng.uniform(0, 2, N).astype(np.float32)
    return y, x, w


def _in_pieces(y, x, **options):
    """The small path's values: the call in pieces below the streaming size."""
    w = options.pop("sample_weight", None)
    parts = [
        fastbce.binary_crossentropy_grad(
            y[i : i + PIECE],
            x[i : i + PIECE],
            sample_weight=None if w is None else w[i : i + PIECE],
            **options,
        )
        for i in range(0, y.size, PIECE)
    ]
    hess = None if parts[0][1] is None else np.concatenate([p[1] for p in parts])
    return np.concatenate([p[0] for p in parts]), hess


def _at_offset(buffer, offset):
    """N float32 elements of `buffer` starting `offset` elements after a 64-byte boundary."""
    start = (-buffer.ctypes.data % 64) // 4 + offset
    return buffer[start : start + N]


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("hessian", ["exact", "none"])
def test_streamed_equals_small_calls(data, weighted, hessian):
    y, x, w = data
    options = {"hessian": hessian, "sample_weight": w if weighted else None}
    want_g, want_h = _in_pieces(y, x, **options)
    buffers = [np.empty(N + 64, np.float32) for _ in range(2)]
    # (grad's offset in a cache line, hess's offset; None: the call allocates; "strided")
    layouts = [(None, None), (0, 0), (4, 4), (1, 1), (15, 15), (3, 8), (0, "strided")]
    for threads in (1, 2):
        for g_off, h_off in layouts:
            if g_off is None:
                out = None
            else:
                g_out = _at_offset(buffers[0], g_off)
                if h_off == "strided":
                    h_out = np.empty(2 * N, np.float32)[::2]
                else:
                    h_out = _at_offset(buffers[1], h_off)
                out = (g_out, None if hessian == "none" else h_out)
            g, h = fastbce.binary_crossentropy_grad(y, x, threads=threads, out=out, **options)
            where = f"threads={threads}, offsets {g_off}, {h_off}"
            assert np.array_equal(g.view(np.uint32), want_g.view(np.uint32)), where
            if hessian == "none":
                assert h is None
            else:
                assert np.array_equal(h.view(np.uint32), want_h.view(np.uint32)), where


def test_streamed_label_error_names_the_element(data):
    y, x, _ = data
    bad = y.copy()
    bad[N - 40] = 1.5  # in the last block, after streamed chunks of the same tile
    message = rf"y_true must be in \[0, 1\]; got 1.5 at flat index {N - 40}"
    with pytest.raises(ValueError, match=message):
        fastbce.binary_crossentropy_grad(bad, x, threads=2)
