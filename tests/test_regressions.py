"""Regression tests for what the hardening work (issue #5) found: each test failed before its fix
(except the zero-stride `out` one: a data race that only a thread sanitizer would report).

Found by the API fuzzer (tests/fuzz_api.py), the kernel fuzzer (tests/fuzz/fuzz_run.cpp) or the
property tests; docs/hardening.md lists them."""

from __future__ import annotations

import numpy as np
import pytest

import fastbce

Y = np.array([1.0, 0.0, 1.0], dtype=np.float32)
P = np.array([0.0, 0.5, 0.5], dtype=np.float32)


# ---- kernel


def test_huge_gamma_in_float32_gives_no_nan():
    """gamma = 1e39 is finite (valid) but inf in float32: inf * log(1 - p_t) was inf * 0 = NaN
    for p_t = 0 (y = 1, p = 0). The factor is 1 there and 0 where p_t > 0."""
    got = fastbce.binary_focal_crossentropy(Y, P, gamma=1e39, reduction="none")
    np.testing.assert_allclose(got, [-np.log(np.float32(1e-7)), 0.0, 0.0], rtol=1e-6)
    got64 = fastbce.binary_focal_crossentropy(Y.astype(np.float64), P.astype(np.float64), gamma=1e300,
                                              reduction="none")
    np.testing.assert_allclose(got64, [-np.log(1e-7), 0.0, 0.0], rtol=1e-12)


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_small_alpha_is_exact_for_positive_labels(dtype):
    """Found by hypothesis: the class-balancing factor was computed as (1 - alpha) + (2 alpha - 1) y,
    which cancels for y = 1: alpha = 1e-5 came out with a relative error of 1.4e-3 in float32."""
    y = np.array([1.0, 0.0], dtype=np.float32)
    p = np.array([0.0, 1.0], dtype=dtype)
    got = fastbce.binary_crossentropy(y, p, alpha=1e-5, reduction="none")
    work = np.float64 if dtype == np.float64 else np.float32
    lost = -np.log(np.float64(work(1e-7)))  # both elements: the clipped worst prediction
    lost_hi = -np.log1p(-np.float64(work(1) - work(1e-7)))
    np.testing.assert_allclose(got, [1e-5 * lost, (1 - 1e-5) * lost_hi], rtol=1e-6)


def test_without_alpha_the_factor_is_exactly_one():
    y = np.linspace(0, 1, 10001, dtype=np.float32)
    p = np.full_like(y, 0.3)
    plain = fastbce.binary_crossentropy(y, p, reduction="none")
    np.testing.assert_array_equal(plain, fastbce.binary_crossentropy(y, p, alpha=None, reduction="none"))
    half = fastbce.binary_crossentropy(y, p, alpha=0.5, reduction="none")
    np.testing.assert_allclose(half, plain / 2, rtol=1e-6)
