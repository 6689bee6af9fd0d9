"""A NaN input stays NaN whatever its weights (nan_policy="propagate"), and inputs that NumPy
reads one way are read that way: bool arrays whose bytes are not 0 or 1, Python ints past 64
bits, tensors that cannot give an array."""

from __future__ import annotations

import math

import numpy as np
import pytest

import fastbce

# options under which some weight of a NaN element is 0: the sample weight, pos_weight 0 (the
# positive term of a positive label), alpha 0 or 1 (the class balance of one class)
OPTIONS = [
    {},
    {"pos_weight": 0.0},
    {"pos_weight": 2.0},
    {"label_smoothing": 0.1},
    {"alpha": 0.0},
    {"gamma": 2.0},
    {"gamma": 2.0, "alpha": 0.0},
    {"gamma": 0.7, "alpha": 1.0},
    {"gamma": 2.0, "alpha": 0.25, "label_smoothing": 0.1},
]
NAN_ROWS = (5, 7, 9, 11, 13)


def _inputs(dtype, from_logits, n=300):
    """Labels, predictions and weights with NaN elements whose weights are 0 (rows 5 and 7),
    NaN predictions of either label (9 and 11) and a NaN weight (13) among rows of all kinds."""
    rng = np.random.default_rng(7)
    y = (rng.random(n) < 0.5).astype(dtype)
    y[::4] = rng.random(len(y[::4]))  # soft labels too
    x = (rng.standard_normal(n) * 4).astype(dtype)
    if not from_logits:
        x = (1 / (1 + np.exp(-x.astype(np.float64)))).astype(dtype)
    w = rng.random(n).astype(dtype)
    w[::3] = 0
    x[5], w[5] = np.nan, 0
    y[7], w[7] = np.nan, 0
    y[9], x[9] = 1, np.nan
    y[11], x[11] = 0, np.nan
    w[13] = np.nan
    return y, x, w


def _zero_weight_nan_only(y, x, w):
    """The inputs with rows 9, 11 and 13 made finite: NaN only where the weight is 0."""
    y, x, w = y.copy(), x.copy(), w.copy()
    x[[9, 11]] = x[10]
    w[13] = 1
    return y, x, w


@pytest.mark.parametrize("options", OPTIONS, ids=str)
@pytest.mark.parametrize("from_logits", [True, False])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_nan_with_zero_weights_stays_nan(simd_target, dtype, from_logits, options):
    y, x, w = _inputs(dtype, from_logits)
    kw = {"from_logits": from_logits, "sample_weight": w, **options}
    elementwise = fastbce.binary_crossentropy(y, x, reduction="none", **kw)
    assert np.isnan(elementwise[list(NAN_ROWS)]).all()
    others = np.ones(len(y), bool)
    others[list(NAN_ROWS)] = False
    assert np.isfinite(elementwise[others]).all()
    # the sums, where the only NaN elements are those of weight 0
    only = _zero_weight_nan_only(y, x, w)
    kw_only = {**kw, "sample_weight": only[2]}
    for reduction in ("sum", "mean", "weighted_mean"):
        assert math.isnan(
            fastbce.binary_crossentropy(only[0], only[1], reduction=reduction, **kw_only)
        )
    report = fastbce.evaluate(only[0], only[1], **kw_only)
    for key in (
        "sum",
        "log_loss",
        "loss_positive",
        "loss_negative",
        "std_error",
        "brier",
        "mean_prediction",
    ):
        assert math.isnan(report[key]), key
    # "omit" leaves exactly those rows out (their weights included)
    omitted = fastbce.binary_crossentropy(y, x, reduction="sum", nan_policy="omit", **kw)
    kept = fastbce.binary_crossentropy(
        y[others], x[others], reduction="sum", **{**kw, "sample_weight": w[others]}
    )
    assert omitted == pytest.approx(kept, rel=1e-12)


@pytest.mark.parametrize(
    "options", [{}, {"pos_weight": 0.0}, {"gamma": 2.0, "alpha": 0.0}], ids=str
)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_derivatives_of_nan_with_zero_weights_are_nan(simd_target, dtype, options):
    y, x, w = _inputs(dtype, True)
    for weights in (w, None):
        grad, hess = fastbce.binary_crossentropy_grad(y, x, sample_weight=weights, **options)
        rows = [r for r in NAN_ROWS if weights is not None or r != 13]
        assert np.isnan(grad[rows]).all() and np.isnan(hess[rows]).all()


def test_zero_weight_still_beats_an_infinite_loss(simd_target):
    # (the rule the NaN rule refines: an infinite loss of weight 0 is 0)
    x = np.array([-np.inf, np.inf, np.nan], np.float32)
    y = np.array([1.0, 0.0, 1.0], np.float32)
    got = fastbce.binary_crossentropy(
        y, x, from_logits=True, sample_weight=np.zeros(3, np.float32), reduction="none"
    )
    assert got[0] == 0.0 and got[1] == 0.0 and math.isnan(got[2])


def _bool_of_bytes(values):
    return np.array(values, np.uint8).view(np.bool_)


def test_bool_weights_of_other_bytes_are_weights_of_one():
    y = np.array([1, 1, 0, 1], np.float32)
    p = np.array([0.3, 0.6, 0.2, 0.9], np.float32)
    w = _bool_of_bytes([1, 255, 0, 2])
    want = fastbce.binary_crossentropy(y, p, sample_weight=w.astype(np.float32), reduction="none")
    for _ in range(2):  # (the second call takes the checked-call cache)
        got = fastbce.binary_crossentropy(y, p, sample_weight=w, reduction="none")
        np.testing.assert_array_equal(got, want)
        assert fastbce.binary_crossentropy(y, p, sample_weight=w, reduction="sum") == float(
            want.astype(np.float64).sum()
        )
    assert np.array_equal(w.view(np.uint8), [1, 255, 0, 2])  # the input is not modified


def test_bool_label_of_another_byte_names_the_byte():
    y = _bool_of_bytes([1, 0, 2])
    p = np.array([0.3, 0.3, 0.3], np.float32)
    with pytest.raises(
        ValueError, match=r"y_true must be in \[0, 1\]; got a bool stored as byte 2 at flat index 2"
    ):
        fastbce.binary_crossentropy(y, p)


def test_python_ints_past_64_bits_are_numbers():
    y = np.array([0, 1], np.uint8)
    p = np.array([0.3, 0.6], np.float32)
    for name in ("sample_weight", "pos_weight"):
        big = fastbce.binary_crossentropy(y, p, **{name: 2**70})
        assert big == fastbce.binary_crossentropy(y, p, **{name: float(2**70)})
        with pytest.raises(
            ValueError, match=rf"{name} must be finite; got an integer of 1329 bits"
        ):
            fastbce.binary_crossentropy(y, p, **{name: 10**400})
    with pytest.raises(ValueError, match=r"y_true must be in \[0, 1\]"):
        fastbce.binary_crossentropy(2**70, 0.5)
    # a prediction must be a float, past 64 bits too (it was taken as the float 2**70)
    for big in (2**64, 2**70, -(2**70)):
        with pytest.raises(TypeError, match=r"y_pred must be float16, .*; got an integer of"):
            fastbce.binary_crossentropy(0.0, big, from_logits=True)
        with pytest.raises(TypeError, match=r"logits must be float16, .*; got an integer of"):
            fastbce.binary_crossentropy_grad(0.0, big)


def test_an_object_whose_array_conversion_fails_is_a_type_error_naming_it():
    class Refuses:
        def __array__(self, dtype=None, copy=None):
            raise RuntimeError("Can't call numpy() on Tensor that requires grad")

    y = np.array([0.0, 1.0], np.float32)
    for name, kw in [
        ("y_pred", {"y_pred": Refuses()}),
        ("y_true", {"y_true": Refuses()}),
        ("sample_weight", {"sample_weight": Refuses()}),
    ]:
        args = {"y_true": y, "y_pred": y, **kw}
        with pytest.raises(TypeError, match=rf"^{name}: cannot read it as an array: Can't call"):
            fastbce.binary_crossentropy(
                args["y_true"], args["y_pred"], sample_weight=kw.get("sample_weight")
            )


def test_torch_bfloat16_tensors_are_read_in_place():
    torch = pytest.importorskip("torch")
    pytest.importorskip("ml_dtypes")
    x = torch.tensor([0.5, -2.0, 3.0, 0.0], dtype=torch.bfloat16)
    y = torch.tensor([1.0, 0.0, 1.0, 0.0])
    want = fastbce.binary_crossentropy(
        y.numpy(), x.float().numpy(), from_logits=True, reduction="none"
    )
    got = fastbce.binary_crossentropy(y, x, from_logits=True, reduction="none")
    np.testing.assert_array_equal(got, want)
    with pytest.raises(TypeError, match="^y_pred: cannot read it as an array"):
        fastbce.binary_crossentropy(y, x.clone().requires_grad_(True))


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
@pytest.mark.parametrize("kind", ["meta", "sparse"])
def test_torch_tensors_without_readable_memory_are_a_type_error_naming_them(dtype, kind):
    # (a bfloat16 one escaped as NotImplementedError or as torch's own TypeError)
    torch = pytest.importorskip("torch")
    pytest.importorskip("ml_dtypes")
    t = torch.tensor([0.1, 0.8, 0.6, 0.3], dtype=getattr(torch, dtype))
    t = t.to("meta") if kind == "meta" else t.to_sparse()
    with pytest.raises(TypeError, match="^y_pred is not array-like: "):
        fastbce.binary_crossentropy(np.array([0, 1, 1, 0], np.float32), t)
