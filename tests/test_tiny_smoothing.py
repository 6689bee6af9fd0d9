"""Label smoothing s whose s/2 is below the working type's normal range (s < 2^-125 in float32,
2^-1021 in float64): s/2 rounds to 0 (or a subnormal) there, yet x s/2 can be a normal number.
Hypothesis found y = 0, x = -1.427262e15 (float32 logit), s = 1.4e-45: the loss was 0 where it is
|x| s/2 = 1.00001e-30. Each value below is y' = y(1 - s) + s/2 taken exactly."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

import fastbce

F32_S = float(np.float32(1.4e-45))  # the smallest float32 subnormal
F64_S = 5e-324  # the smallest float64 subnormal
F32_X = -1.427262e15
F64_X = -1e300


def _times_half_s(s: float, *factors: float) -> float:
    """s/2 times the factors, exactly, then rounded once (s/2 itself is not a float here)."""
    product = Fraction(s) / 2
    for f in factors:
        product *= Fraction(float(f))
    return float(product)


def _cases():
    # (dtype, s, x, options, exact loss of y = 0): y' = s/2, 1 - y' = 1 - s/2
    q32, q64 = np.float32(1e30), 1e300
    return [
        (np.float32, F32_S, F32_X, {}, _times_half_s(F32_S, -np.float32(F32_X))),
        (np.float64, F64_S, F64_X, {}, _times_half_s(F64_S, -F64_X)),
        (np.float32, F32_S, -1e10, {"pos_weight": q32}, _times_half_s(F32_S, q32, 1e10)),
        (np.float64, F64_S, -1e10, {"pos_weight": q64}, _times_half_s(F64_S, q64, 1e10)),
        # alpha = 1: the class balance alpha y' + (1 - alpha)(1 - y') is y' = s/2 itself
        (np.float32, F32_S, -F32_X, {"alpha": 1.0}, _times_half_s(F32_S, -np.float32(F32_X))),
        (np.float64, F64_S, -F64_X, {"alpha": 1.0}, _times_half_s(F64_S, -F64_X)),
    ]


@pytest.mark.parametrize("dtype, s, x, options, exact", _cases())
def test_tiny_smoothing_loss(simd_target, dtype, s, x, options, exact):
    y = np.zeros(1, dtype)
    pred = np.array([x], dtype)
    if "pos_weight" in options:
        options = {**options, "pos_weight": np.array([options["pos_weight"]], dtype)}
    got = fastbce.binary_crossentropy(
        y, pred, from_logits=True, label_smoothing=s, reduction="none", **options
    )
    assert got.dtype == dtype
    np.testing.assert_allclose(got, [exact], rtol=1e-6 if dtype == np.float32 else 1e-13)


@pytest.mark.parametrize("dtype, s, x", [(np.float32, F32_S, F32_X), (np.float64, F64_S, F64_X)])
def test_tiny_smoothing_is_per_call_not_per_position(simd_target, dtype, s, x, rng):
    """The element's value is the same wherever it stands, among ordinary elements, and the
    reductions, the accumulator and the report take the same values."""
    n = 5000
    y = (rng.random(n) < 0.5).astype(dtype)
    pred = rng.normal(0, 3, n).astype(dtype)
    at = [0, 1, 1023, 1024, 4097, n - 1]
    y[at], pred[at] = 0, x
    got = fastbce.binary_crossentropy(
        y, pred, from_logits=True, label_smoothing=s, reduction="none"
    )
    exact = _times_half_s(s, -dtype(x))
    np.testing.assert_allclose(got[at], exact, rtol=1e-6 if dtype == np.float32 else 1e-13)
    # the other elements: as without smoothing (s/2 is far below half an ulp of their losses)
    rest = np.setdiff1d(np.arange(n), at)
    plain = fastbce.binary_crossentropy(y, pred, from_logits=True, reduction="none")
    np.testing.assert_allclose(got[rest], plain[rest], rtol=1e-6 if dtype == np.float32 else 1e-14)
    total = fastbce.binary_crossentropy(
        y, pred, from_logits=True, label_smoothing=s, reduction="sum"
    )
    np.testing.assert_allclose(total, got.astype(np.float64).sum(), rtol=1e-6)
    # alone, so that the sum is the tiny value itself
    one = fastbce.binary_crossentropy(
        y[:1], pred[:1], from_logits=True, label_smoothing=s, reduction="sum"
    )
    np.testing.assert_allclose(one, exact, rtol=1e-6)
    acc = fastbce.LossAccumulator(from_logits=True, label_smoothing=s)
    acc.update(y[:1], pred[:1])
    np.testing.assert_allclose(acc.result()["sum"], exact, rtol=1e-6)
    report = fastbce.evaluate(y[:1], pred[:1], from_logits=True, label_smoothing=s)
    np.testing.assert_allclose(report["sum"], exact, rtol=1e-6)


@pytest.mark.parametrize(
    "dtype, s, x, q", [(np.float32, F32_S, -1e15, 1e30), (np.float64, F64_S, -1e10, 1e300)]
)
def test_tiny_smoothing_gradient(simd_target, dtype, s, x, q):
    """d/dx of q y' softplus(-x) + ...: -q y' (1 - p) = -q s/2 for y = 0 and p = 0."""
    y = np.zeros(3, dtype)
    pred = np.array([x, x, 2.0], dtype)
    pos_weight = float(dtype(q))
    g, h = fastbce.binary_crossentropy_grad(y, pred, label_smoothing=s, pos_weight=pos_weight)
    exact = -_times_half_s(s, pos_weight)
    np.testing.assert_allclose(g[:2], exact, rtol=1e-6 if dtype == np.float32 else 1e-13)
    np.testing.assert_array_equal(h[:2], 0.0)
    # an ordinary element beside it: as without smoothing
    g0, h0 = fastbce.binary_crossentropy_grad(y, pred, pos_weight=pos_weight)
    np.testing.assert_allclose([g[2], h[2]], [g0[2], h0[2]], rtol=1e-6)


def test_ordinary_smoothing_takes_the_usual_path():
    """s/2 at the bottom of the normal range is not tiny: the same values as s = 2^-125 taken
    through y' = y(1 - s) + s/2 in the working type."""
    y = np.zeros(1, np.float32)
    x = np.array([-1e30], np.float32)
    s = 2.0**-125
    got = fastbce.binary_crossentropy(y, x, from_logits=True, label_smoothing=s, reduction="none")
    np.testing.assert_allclose(got, [1e30 * s / 2], rtol=1e-6)


@pytest.mark.parametrize("gamma", [0.5, 2.0, 2.7])
def test_tiny_smoothing_focal_gradient_float32(simd_target, gamma):
    """float32 focal gradients take s/2 in float64 (the float focal path is skipped for such a
    call): the same values as the float64 call on the same inputs, rounded."""
    y = np.zeros(3, np.float32)
    x = np.array([-1e15, -30.0, 2.0], np.float32)
    opts = {"label_smoothing": F32_S, "pos_weight": 1e30, "gamma": gamma}
    g, h = fastbce.binary_crossentropy_grad(y, x, **opts)
    g64, h64 = fastbce.binary_crossentropy_grad(y.astype(np.float64), x.astype(np.float64), **opts)
    np.testing.assert_allclose(g, g64.astype(np.float32), rtol=1e-5, atol=3e-45)
    np.testing.assert_allclose(h, h64.astype(np.float32), rtol=1e-5, atol=3e-45)
