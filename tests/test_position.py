"""An element's loss does not depend on where it sits in the array.

The kernel runs a tile in vector loops; without care the last partial vector of a tile (a
masked or scalar epilogue, contracted into FMA differently), a tile boundary, or the fast and
general paths a tile may take could round the same element differently. Dropping the first k
elements moves every element to another lane, tile offset and tile: the loss must keep its bits.
"""

from __future__ import annotations

import ctypes
import mmap
import sys

import numpy as np
import pytest

import fastbce

N = 1500  # three tiles of 512 and a partial one; the offsets move every tile boundary
OFFSETS = range(41)
# (0.03: a nonzero subnormal float64 loss for |x| in (708, 745))
GAMMAS = [0.03, 0.5, 1.0, 2.0, 2.5, 2.7, 4.0]


def _logits(rng: np.random.Generator, n: int) -> np.ndarray:
    sign = rng.choice([-1.0, 1.0], n)
    parts = [
        rng.normal(0.0, 3.0, n),
        sign * 10.0 ** rng.uniform(-3, 30, n),  # up to 1e30: far outside any exp's range
        sign * rng.uniform(80.0, 110.0, n),  # around float32's fast exp limit and underflow
        sign * rng.uniform(690.0, 760.0, n),  # the same for float64
        sign * rng.uniform(130.0, 400.0, n),  # float64 focal losses that can be subnormal
        sign * rng.choice([0.0, 86.0, 87.5, 700.0, 709.0, 745.5, np.inf], n),
    ]
    which = rng.integers(0, len(parts), n)
    return np.choose(which, parts)


def _probabilities(rng: np.random.Generator, n: int) -> np.ndarray:
    parts = [
        rng.uniform(0.0, 1.0, n),
        10.0 ** rng.uniform(-45, -1, n),  # near 0 (below epsilon too)
        1.0 - 10.0 ** rng.uniform(-17, -1, n),  # near 1
        rng.choice([0.0, 1.0, 1e-7, 1.0 - 1e-7, 0.5], n),
    ]
    which = rng.integers(0, len(parts), n)
    return np.clip(np.choose(which, parts), 0.0, 1.0)


def _inputs(dtype: type, from_logits: bool, seed: int):
    rng = np.random.default_rng(seed)
    soft = rng.uniform(0.0, 1.0, N)
    hard = rng.integers(0, 2, N).astype(np.float64)
    y = np.where(rng.random(N) < 0.5, soft, hard).astype(dtype)
    pred = (_logits(rng, N) if from_logits else _probabilities(rng, N)).astype(dtype)
    w = rng.uniform(0.0, 3.0, N).astype(dtype)
    w[rng.random(N) < 0.05] = 0.0
    return y, pred, w


def _option_mixes(w: np.ndarray):
    """(loss function, keyword arguments with sliceable per-element weights) for each mix."""
    bce, focal = fastbce.binary_crossentropy, fastbce.binary_focal_crossentropy
    yield bce, {}
    yield bce, {"sample_weight": w}
    yield bce, {"pos_weight": 2.5}
    yield bce, {"label_smoothing": 0.1}
    yield bce, {"label_smoothing": 0.05, "pos_weight": 0.5, "sample_weight": w}
    for gamma in GAMMAS:
        yield focal, {"gamma": gamma}
        yield focal, {"gamma": gamma, "alpha": 0.25}
        yield focal, {"gamma": gamma, "alpha": 0.25, "sample_weight": w}
    yield focal, {"gamma": 2.0, "label_smoothing": 0.1, "pos_weight": 3.0, "sample_weight": w}
    yield focal, {"gamma": 2.7, "alpha": 0.6, "label_smoothing": 0.2}


def _sliced(kwargs: dict, k: int) -> dict:
    return {
        key: value[k:] if isinstance(value, np.ndarray) else value for key, value in kwargs.items()
    }


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("from_logits", [True, False], ids=["logits", "probabilities"])
def test_loss_does_not_depend_on_position(simd_target, dtype, from_logits):
    y, pred, w = _inputs(dtype, from_logits, seed=11 + int(from_logits))
    for fn, kwargs in _option_mixes(w):
        whole = fn(y, pred, from_logits=from_logits, reduction="none", **kwargs)
        for k in OFFSETS:
            part = fn(
                y[k:], pred[k:], from_logits=from_logits, reduction="none", **_sliced(kwargs, k)
            )
            same = (
                part.view(np.uint8).reshape(part.size, -1)
                == whole[k:].view(np.uint8).reshape(part.size, -1)
            ).all(axis=1)
            if not same.all():
                j = int(np.argmin(same))
                pytest.fail(
                    f"{fn.__name__}({kwargs and sorted(kwargs)}) offset {k}, element {k + j} "
                    f"(y={y[k + j]!r}, pred={pred[k + j]!r}): {part[j]!r} at position {j}, "
                    f"{whole[k + j]!r} at position {k + j}"
                )


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
def test_tile_boundaries_and_fast_path_do_not_change_an_element(simd_target, dtype):
    # The same element placed at every position of a tile and next to tiles that take the
    # general exp (an infinite or huge logit elsewhere in the tile) or not.
    rng = np.random.default_rng(5)
    y0, x0, _ = _inputs(dtype, True, seed=3)
    x0 = np.where(np.isfinite(x0) & (np.abs(x0) < 80), x0, 1.0).astype(dtype)[:64]
    y0 = y0[:64]
    for kwargs in ({}, {"gamma": 2.0, "alpha": 0.25}, {"gamma": 2.7}):
        fn = fastbce.binary_focal_crossentropy if kwargs else fastbce.binary_crossentropy
        ref = fn(y0, x0, from_logits=True, reduction="none", **kwargs)
        for start in (0, 1, 7, 15, 17, 63, 448, 500, 511, 513, 1000):
            filler = rng.normal(0, 2, start + 64 + 37).astype(dtype)
            filler[rng.integers(0, filler.size)] = np.inf if start % 2 else dtype(1e30)
            x = filler.copy()
            x[start : start + 64] = x0
            y = np.full(x.size, dtype(0.5))
            y[start : start + 64] = y0
            got = fn(y, x, from_logits=True, reduction="none", **kwargs)[start : start + 64]
            np.testing.assert_array_equal(got, ref, err_msg=f"start {start}, {kwargs}")


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
def test_tile_kind_does_not_change_an_element(simd_target, dtype):
    # A tile's logits choose its loops: within the fast exp's range, or with the others beyond
    # exp's underflow to 0 (the finite loops); with a float64 focal |x| whose loss may be subnormal
    # (the scaled loop); with one in between, infinite or NaN (the general loops). One tile's
    # elements must keep their bits whichever of those an extra element in the tile selects.
    rng = np.random.default_rng(17)
    n = 300
    sign = rng.choice([-1.0, 1.0], n)
    big = 746.5 if dtype == np.float64 else 104.5  # beyond exp's underflow to 0
    near = rng.choice([0.0, 0.5, 3.0, 20.0, 60.0], n) + rng.uniform(0, 1, n)
    far = big * 10.0 ** rng.uniform(0, 30, n)
    scaled = rng.uniform(130.0, 660.0, n)  # (float64: below the fast exp's limit, 700)
    # (float32: the ends of the fast exp's range and of exp's nonzero results, where weights are
    # multiplied in double, the focal bands of gamma 2 and 2.7)
    edges = rng.choice([23.2, 28.63, 79.9, 80.5, 86.9, 87.33, 87.34, 103.97, 103.98, 104.0], n)
    y = np.where(rng.random(n) < 0.5, rng.integers(0, 2, n), rng.uniform(0, 1, n)).astype(dtype)
    w = rng.uniform(0.5, 3.0, n + 1).astype(dtype)
    extras = [np.inf, np.nan, 720.0 if dtype == np.float64 else 95.0, 300.0, 81.0, 87.3, 103.98]
    mixes = [{}, {"sample_weight": w}, {"pos_weight": 2.5}, {"gamma": 0.03}, {"gamma": 2.0},
             {"gamma": 2.7, "alpha": 0.25}, {"gamma": 4.0, "sample_weight": w}]  # fmt: skip
    for part in (near, far, scaled, edges, "far first"):
        if isinstance(part, str):  # (a tile whose first |x| is large: another order of passes)
            x = (sign * np.where(rng.random(n) < 0.5, near, far)).astype(dtype)
            x[0] = dtype(200.0)
        else:
            x = (sign * np.where(rng.random(n) < 0.5, near, part)).astype(dtype)
        for kwargs in mixes:
            focal = "gamma" in kwargs
            fn = fastbce.binary_focal_crossentropy if focal else fastbce.binary_crossentropy
            first = {k: v[:n] if isinstance(v, np.ndarray) else v for k, v in kwargs.items()}
            alone = fn(y, x, from_logits=True, reduction="none", **first)
            for extra in extras:
                got = fn(
                    np.append(y, dtype(1)),
                    np.append(x, dtype(extra)),
                    from_logits=True,
                    reduction="none",
                    **kwargs,
                )[:n]
                np.testing.assert_array_equal(
                    got.view(np.uint8), alone.view(np.uint8), err_msg=f"{kwargs}, extra {extra}"
                )


@pytest.mark.parametrize("gamma", [0.0, 2.0])
@pytest.mark.parametrize("labels", ["float32", "uint8", "weighted"])
def test_large_call_reads_as_small_ones(simd_target, line_fetch, labels, gamma, rng):
    """From 16 MiB of input a call reads every cache line of a tile before its loops, or has the
    previous tile's table loop prefetch them (the memory-streaming path; line fetch "touch"), or
    leaves it to the CPU ("hardware"): either way the elementwise losses, and the sum, equal those
    of calls too small to take it, bit for bit. A run of logits beyond the softplus table (tiles
    of the general exp, touched again) sits among the others."""
    n = (1 << 22) - 777  # over 16 MiB with uint8 labels too (5 bytes an element)
    x = rng.normal(0.0, 4.0, n).astype(np.float32)
    x[1_000_003:1_030_000] = np.where(rng.random(29_997) < 0.5, -40.0, 40.0)
    y = (rng.random(n) < 0.5).astype(np.float32 if labels != "uint8" else np.uint8)
    w = rng.uniform(0.0, 2.0, n).astype(np.float32) if labels == "weighted" else None
    opts = dict(from_logits=True, gamma=gamma)
    whole = fastbce.binary_focal_crossentropy(y, x, sample_weight=w, reduction="none", **opts)
    parts = [
        fastbce.binary_focal_crossentropy(
            y[i : i + 100_000],
            x[i : i + 100_000],
            sample_weight=None if w is None else w[i : i + 100_000],
            reduction="none",
            **opts,
        )
        for i in range(0, n, 100_000)
    ]
    np.testing.assert_array_equal(whole, np.concatenate(parts))
    total = fastbce.binary_focal_crossentropy(y, x, sample_weight=w, reduction="sum", **opts)
    strided = fastbce.binary_focal_crossentropy(
        np.repeat(y, 2)[::2], np.repeat(x, 2)[::2],
        sample_weight=None if w is None else np.repeat(w, 2)[::2], reduction="sum", **opts,
    )  # fmt: skip
    assert total == strided  # (a strided input is not touched; the same blocks and sums)


def _before_guard_page(stack: list, n: int, dtype: type) -> np.ndarray:
    """An n-element array that ends where a page the process may not read begins (mprotect
    PROT_NONE): a read past its end faults. Its mapping goes on `stack`, for _release."""
    page = mmap.PAGESIZE
    nbytes = n * np.dtype(dtype).itemsize
    body = (nbytes + page - 1) // page * page
    buf = mmap.mmap(-1, body + page)
    address = ctypes.addressof(ctypes.c_char.from_buffer(buf))
    libc = ctypes.CDLL(None, use_errno=True)
    guard = ctypes.c_void_p(address + body)
    assert libc.mprotect(guard, ctypes.c_size_t(page), 0) == 0, ctypes.get_errno()  # PROT_NONE
    stack.append((libc, guard, page))
    return np.frombuffer(buf, dtype=dtype, count=n, offset=body - nbytes)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="mprotect through libc (Linux)")
@pytest.mark.parametrize("labels", ["float32", "uint8"])
@pytest.mark.parametrize("threads", [1, 2])
def test_large_call_reads_nothing_past_its_inputs(simd_target, line_fetch, labels, threads, rng):
    """From 16 MiB of input each tile touches its own cache lines and prefetches the next
    tile's (tile_inputs.hpp, touch_lines and prefetch_lines), or the table loops prefetch it
    (prefetch_ahead), or (line fetch "hardware") none of that: inputs that end right before an
    unreadable page give the results of copies, whatever the threads. A touch past the end would
    fault; a prefetch does not (the table loops' last tile asks for lines past the end)."""
    n = (1 << 22) - 777  # over 16 MiB with uint8 labels too (5 bytes an element)
    x = rng.normal(0.0, 4.0, n).astype(np.float32)
    y = (rng.random(n) < 0.5).astype(np.float32 if labels == "float32" else np.uint8)
    guarded: list = []
    try:
        gx = _before_guard_page(guarded, n, np.float32)
        gy = _before_guard_page(guarded, n, y.dtype.type)
        gx[:], gy[:] = x, y
        for gamma in (0.0, 2.0):
            alpha = 0.25 if gamma else None
            opts = dict(from_logits=True, gamma=gamma, alpha=alpha, threads=threads)
            want = fastbce.binary_focal_crossentropy(y, x, reduction="none", **opts)
            got = fastbce.binary_focal_crossentropy(gy, gx, reduction="none", **opts)
            np.testing.assert_array_equal(got, want)
            assert fastbce.binary_focal_crossentropy(gy, gx, **opts) == (
                fastbce.binary_focal_crossentropy(y, x, **opts)
            )
    finally:
        for libc, guard, page in guarded:  # readable again (PROT_READ | PROT_WRITE)
            libc.mprotect(guard, ctypes.c_size_t(page), 3)


SPECIAL_LABELS = [0.0, -0.0, 1.0, 1e-300, 1.0 - 2.0**-53, -0.5, 1.5, np.nan]


@pytest.mark.skipif(
    not {"x86-64-v2", "baseline"} <= set(fastbce._core.supported_targets()),
    reason="compares the two x86-64 tiers without FMA",
)
@pytest.mark.parametrize("from_logits", [True, False], ids=["logits", "probabilities"])
def test_tiers_without_fma_agree_bit_for_bit(from_logits):
    """Baseline (SSE2) forms the float64 general loop's selects on the label and the sign of x
    from integer masks and a float64 ternary (loss_loop.hpp, bits_mask: so that GCC vectorises
    the loop there instead of branching on the data); x86-64-v2 takes the plain selects. Neither
    contracts into FMA, so each element must get the same bits on both, for every option mix and
    unvalidated labels outside [0, 1]."""
    _core = fastbce._core
    rng = np.random.default_rng(20261205)
    previous = _core.active_target()
    try:
        for seed in range(3):
            y, pred, w = _inputs(np.float64, from_logits, seed)
            at = rng.random(N) < 0.1
            y[at] = rng.choice(SPECIAL_LABELS, int(at.sum()))
            mixes = [
                *_option_mixes(w),
                (fastbce.binary_crossentropy, {"pos_weight": 0.0}),
                (fastbce.binary_crossentropy, {"pos_weight": 1e250, "alpha": 0.3}),
            ]
            for fn, kwargs in mixes:
                got = []
                for tier in ("x86-64-v2", "baseline"):
                    _core.set_target(tier)
                    got.append(
                        fn(
                            y,
                            pred,
                            from_logits=from_logits,
                            reduction="none",
                            validate=False,
                            **kwargs,
                        )
                    )
                v2, base = got
                same = v2.view(np.uint64) == base.view(np.uint64)
                bad = np.flatnonzero(~(same | (np.isnan(v2) & np.isnan(base))))
                assert bad.size == 0, (
                    seed,
                    kwargs.keys(),
                    [(y[i], pred[i], v2[i], base[i]) for i in bad[:3]],
                )
    finally:
        _core.set_target(previous)
