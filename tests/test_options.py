"""Every option of SPEC section 1 against the float64 reference, on every SIMD tier."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

import fastbce
from reference import bce_reference, reduce_reference

pytestmark = pytest.mark.usefixtures("simd_target")

# Elementwise tolerance against float64: a few float32 ulp (relative) plus an absolute floor for
# tiny losses; float64 results are compared much tighter.
RTOL = {np.float16: 2e-6, np.float32: 2e-6, np.float64: 1e-13}
ATOL = {np.float16: 1e-30, np.float32: 1e-30, np.float64: 1e-300}


def make_inputs(rng, shape, dtype, from_logits, soft):
    y = rng.random(shape) if soft else (rng.random(shape) < 0.4).astype(np.float64)
    if from_logits:
        pred = rng.normal(0, 4, shape)
    else:
        pred = rng.random(shape)
        pred.flat[:: max(1, pred.size // 7)] = 0.0  # exact 0 and 1 are valid probabilities
        pred.flat[1 :: max(1, pred.size // 5)] = 1.0
    return y.astype(np.float32 if soft else np.uint8), pred.astype(dtype)


def check(y, pred, reduction="none", **options):
    got = fastbce.binary_crossentropy(y, pred, reduction=reduction, **options)
    ce = bce_reference(y, pred, **options)
    want = reduce_reference(ce, reduction, options.get("sample_weight"))
    dtype = np.float64 if pred.dtype == np.float64 else np.float32
    if reduction == "none":
        assert got.dtype == dtype and got.shape == pred.shape
        np.testing.assert_allclose(
            got, want, rtol=RTOL[pred.dtype.type], atol=ATOL[pred.dtype.type]
        )
    else:
        assert isinstance(got, float)
        np.testing.assert_allclose(got, want, rtol=RTOL[pred.dtype.type] / 2, atol=0)


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
@pytest.mark.parametrize("from_logits", [False, True])
@pytest.mark.parametrize("soft", [False, True])
@pytest.mark.parametrize(
    "options",
    [
        {},
        {"label_smoothing": 0.1},
        {"pos_weight": 3.0},
        {"gamma": 2.0},
        {"gamma": 0.5, "alpha": 0.25},
        {"alpha": 0.7},
        {"gamma": 1.5, "alpha": 0.4, "label_smoothing": 0.2, "pos_weight": 0.5},
        {"epsilon": 1e-3},
    ],
    ids=lambda o: ",".join(f"{k}={v}" for k, v in o.items()) or "plain",
)
def test_options_elementwise(rng, dtype, from_logits, soft, options):
    y, pred = make_inputs(rng, (37, 5), dtype, from_logits, soft)
    check(y, pred, from_logits=from_logits, **options)


@pytest.mark.parametrize("reduction", ["none", "sum", "mean", "weighted_mean"])
@pytest.mark.parametrize("weight_kind", ["none", "scalar", "per_row", "per_element"])
@pytest.mark.parametrize("pos_weight_kind", ["none", "scalar", "per_class"])
def test_weights_and_reductions(rng, reduction, weight_kind, pos_weight_kind):
    shape = (300, 7)
    y, pred = make_inputs(rng, shape, np.float32, True, False)
    sample_weight = {
        "none": None,
        "scalar": 2.5,
        "per_row": rng.random(shape[0]) * 3,
        "per_element": rng.random(shape) * 3,
    }[weight_kind]
    pos_weight = {"none": None, "scalar": 2.0, "per_class": rng.random(shape[-1]) * 4}[
        pos_weight_kind
    ]
    check(y, pred, reduction, from_logits=True, sample_weight=sample_weight, pos_weight=pos_weight)


def test_weighted_mean_equals_mean_without_weights(rng):
    y, pred = make_inputs(rng, (1000,), np.float32, False, True)
    mean = fastbce.binary_crossentropy(y, pred)
    assert fastbce.binary_crossentropy(y, pred, reduction="weighted_mean") == mean


def test_mean_with_weights_divides_by_elements(rng):
    y, pred = make_inputs(rng, (40, 3), np.float64, True, False)
    w = rng.random(40)
    total = fastbce.binary_crossentropy(y, pred, from_logits=True, sample_weight=w, reduction="sum")
    mean = fastbce.binary_crossentropy(y, pred, from_logits=True, sample_weight=w)
    wmean = fastbce.binary_crossentropy(
        y, pred, from_logits=True, sample_weight=w, reduction="weighted_mean"
    )
    assert mean == pytest.approx(total / y.size, rel=1e-15)
    assert wmean == pytest.approx(total / (w.sum() * 3), rel=1e-14)


@pytest.mark.parametrize(
    "label_dtype",
    [
        np.bool_,
        np.uint8,
        np.int8,
        np.int16,
        np.uint16,
        np.int32,
        np.uint32,
        np.int64,
        np.uint64,
        np.float16,
        np.float32,
        np.float64,
    ],
)
def test_label_dtypes(rng, label_dtype):
    y = (rng.random(501) < 0.5).astype(label_dtype)
    pred = rng.normal(size=501).astype(np.float32)
    want = fastbce.binary_crossentropy(y.astype(np.float32), pred, from_logits=True)
    assert fastbce.binary_crossentropy(y, pred, from_logits=True) == want


def test_soft_labels_in_every_float_dtype(rng):
    y = rng.random(300)
    pred = rng.random(300).astype(np.float32)
    want = bce_reference(y.astype(np.float16), pred)
    got = fastbce.binary_crossentropy(y.astype(np.float16), pred, reduction="none")
    np.testing.assert_allclose(got, want, rtol=2e-6)


def test_sample_weight_dtypes(rng):
    y, pred = make_inputs(rng, (64, 3), np.float32, True, False)
    w = rng.integers(0, 4, size=(64, 3))
    want = fastbce.binary_crossentropy(
        y, pred, from_logits=True, sample_weight=w.astype(np.float32)
    )
    for dtype in (np.int64, np.uint8, np.float16, np.float64, np.bool_):
        got = fastbce.binary_crossentropy(y, pred, from_logits=True, sample_weight=w.astype(dtype))
        if dtype is np.bool_:
            want_b = fastbce.binary_crossentropy(
                y, pred, from_logits=True, sample_weight=(w > 0).astype(np.float32)
            )
            assert got == want_b
        else:
            assert got == pytest.approx(want, rel=1e-12)


def test_focal_function_is_bce_with_gamma_two(rng):
    y, pred = make_inputs(rng, (100,), np.float32, False, True)
    assert fastbce.binary_focal_crossentropy(y, pred) == fastbce.binary_crossentropy(
        y, pred, gamma=2.0
    )
    assert fastbce.binary_focal_crossentropy(y, pred, gamma=0.0) == fastbce.binary_crossentropy(
        y, pred
    )


def test_pos_weight_matches_weighted_logits_form(rng):
    """q != 1 equals tf.nn.weighted_cross_entropy_with_logits' (1-y)x + (1+(q-1)y) softplus(-x)."""
    y = rng.random(2000)
    x = rng.normal(0, 6, 2000)
    q = 2.7
    want = (1 - y) * x + (1 + (q - 1) * y) * np.logaddexp(0, -x)
    got = fastbce.binary_crossentropy(y, x, from_logits=True, pos_weight=q, reduction="none")
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-15)


def test_focal_stays_finite_for_small_gamma_and_confident_predictions():
    """gamma < 1 and |x| large: (1 - p_t)^gamma must neither underflow to 0 nor give NaN."""
    x = np.array([-200.0, -80.0, 80.0, 200.0, 1e30, -1e30], dtype=np.float32)
    y = np.array([0, 0, 1, 1, 1, 0], dtype=np.float32)
    for gamma in (0.01, 0.1, 0.5, 1.0, 2.0, 5.0):
        got = fastbce.binary_crossentropy(y, x, from_logits=True, gamma=gamma, reduction="none")
        want = bce_reference(y, x, from_logits=True, gamma=gamma)
        assert np.all(np.isfinite(got))
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-45)


def test_combinations_of_everything(rng):
    shape = (17, 4)
    for from_logits, smoothing, gamma, alpha in itertools.product(
        [False, True], [0.0, 0.3], [0.0, 0.7, 3.0], [None, 0.6]
    ):
        y, pred = make_inputs(rng, shape, np.float64, from_logits, True)
        check(
            y,
            pred,
            "none",
            from_logits=from_logits,
            label_smoothing=smoothing,
            gamma=gamma,
            alpha=alpha,
            sample_weight=rng.random(shape[0]),
            pos_weight=rng.random(shape[1]) * 2,
        )
