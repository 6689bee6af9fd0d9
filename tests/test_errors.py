"""One test per error of SPEC section 3: the exception type and what its message names."""

from __future__ import annotations

import numpy as np
import pytest

import fastbce

Y = np.array([0.0, 1.0, 1.0, 0.0], dtype=np.float32)
P = np.array([0.1, 0.8, 0.6, 0.3], dtype=np.float32)
Y2 = np.zeros((4, 3), dtype=np.float32)
P2 = np.full((4, 3), 0.5, dtype=np.float32)


def bce(y=Y, p=P, **kw):
    return fastbce.binary_crossentropy(y, p, **kw)


# ---- TypeError


@pytest.mark.parametrize(
    ("y", "p", "match"),
    [
        (Y, P.astype(object), r"y_pred must be float16, float32 or float64.*object"),
        (Y.astype(object), P, r"y_true must hold bool, integer or float values; got dtype object"),
        (Y, P.astype(np.complex64), r"y_pred .*complex64"),
        (Y.astype(np.complex128), P, r"y_true .*complex128"),
        (np.array(["a", "b", "c", "d"]), P, r"y_true .*<U1"),
        (Y, np.array(["0.1", "0.2", "0.3", "0.4"]), r"y_pred .*<U3"),
        (Y, P.astype(np.int64), r"y_pred must be float16, float32 or float64.*int64"),
        (Y, P.astype(np.longdouble), r"y_pred must be float16.*float128"),
    ],
)
def test_non_numeric_or_unsupported_dtype(y, p, match):
    with pytest.raises(TypeError, match=match):
        bce(y, p)


def test_unknown_keyword():
    with pytest.raises(TypeError, match="from_logit"):
        fastbce.binary_crossentropy(Y, P, from_logit=True)
    with pytest.raises(TypeError, match="smoothing"):
        fastbce.binary_focal_crossentropy(Y, P, smoothing=0.1)


def test_keyword_only():
    with pytest.raises(TypeError):
        fastbce.binary_crossentropy(Y, P, True)  # type: ignore[misc]


def test_unsupported_sample_weight_dtype():
    with pytest.raises(TypeError, match="sample_weight .*complex"):
        bce(sample_weight=np.ones(4, dtype=np.complex64))


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("from_logits", "yes"),
        ("validate", 1),
        ("epsilon", "1e-7"),
        ("gamma", None),
        ("label_smoothing", [0.1]),
        ("threads", 2.0),
        ("threads", True),
    ],
)
def test_option_of_wrong_type(name, value):
    with pytest.raises(TypeError, match=name):
        bce(**{name: value})


# ---- ValueError: shapes


def test_shape_mismatch_names_both_shapes():
    with pytest.raises(ValueError, match=r"y_true \(4,\) and y_pred \(3,\)"):
        bce(Y, P[:3])
    with pytest.raises(ValueError, match=r"y_true \(4, 3\) and y_pred \(3, 4\)"):
        bce(Y2, P2.T)


@pytest.mark.parametrize("shape", [(3,), (4, 1), (3, 4), (12,)])
def test_disallowed_sample_weight_shape(shape):
    with pytest.raises(ValueError, match=r"sample_weight must be .*\(4, 3\).*\(4,\)") as e:
        bce(Y2, P2, sample_weight=np.ones(shape))
    assert str(e.value).endswith(f"got shape {shape}")


@pytest.mark.parametrize("shape", [(4,), (1, 3), (4, 3), (2,)])
def test_disallowed_pos_weight_shape(shape):
    with pytest.raises(ValueError, match=r"pos_weight must be a scalar or \(3,\).*\(4, 3\)"):
        bce(Y2, P2, pos_weight=np.ones(shape))


def test_pos_weight_vector_on_0d_input():
    with pytest.raises(ValueError, match=r"pos_weight must be a scalar for y_pred of shape \(\)"):
        bce(np.float32(1), np.float32(0.5), pos_weight=np.ones(1))


# ---- ValueError: values


def test_label_out_of_range_names_index_and_value():
    y = Y2.copy()
    y[2, 1] = 1.5
    with pytest.raises(
        ValueError, match=r"y_true must be in \[0, 1\]; got 1.5 at flat index 7 \(index \(2, 1\)\)"
    ):
        bce(y, P2)
    with pytest.raises(ValueError, match=r"got -1 at flat index 3"):
        bce(np.array([0, 1, 1, -1], dtype=np.int8), P)


def test_a_label_is_checked_in_the_working_precision():
    # (as the kernel reads it, and as Keras casts y_true to y_pred's dtype: with float32
    # predictions the float64 label 1 + 2**-25 is 1.0; with float64 ones it is outside [0, 1])
    y = np.array([1 + 2.0**-25, 0.0, 1.0, 0.0])
    assert bce(y, P, reduction="none")[0] == bce(np.float32(y), P, reduction="none")[0]
    with pytest.raises(ValueError, match=r"y_true must be in \[0, 1\]; got 1.0000000298"):
        bce(y, P.astype(np.float64))


def test_probability_out_of_range_names_index_and_value():
    p = P.copy()
    p[3] = 1.25
    with pytest.raises(
        ValueError, match=r"y_pred must be a probability in \[0, 1\].*got 1.25 at flat index 3"
    ):
        bce(Y, p)


def test_validate_false_skips_range_checks():
    p = P.copy()
    p[3] = 1.25
    y = Y.copy()
    y[0] = 2.0
    assert np.isfinite(bce(y, p, validate=False))


def test_first_offending_index_is_reported_in_large_input():
    y = np.zeros(3_000_000, dtype=np.float32)
    y[2_100_003] = 7.0
    y[2_900_000] = -1.0
    with pytest.raises(ValueError, match="flat index 2100003"):
        fastbce.binary_crossentropy(y, np.zeros_like(y), from_logits=True, threads=2)


def test_nan_raise_names_argument_and_index():
    p = P.copy()
    p[2] = np.nan
    with pytest.raises(ValueError, match=r"nan_policy='raise': y_pred is NaN at flat index 2"):
        bce(p=p, nan_policy="raise")
    y = Y.copy()
    y[1] = np.nan
    with pytest.raises(ValueError, match=r"y_true is NaN at flat index 1"):
        bce(y, nan_policy="raise")
    w = np.ones(4)
    w[3] = np.nan
    with pytest.raises(ValueError, match=r"sample_weight is NaN for the element at flat index 3"):
        bce(sample_weight=w, nan_policy="raise")


@pytest.mark.parametrize("bad", [-1.0, np.inf, -np.inf])
def test_negative_or_infinite_sample_weight(bad):
    with pytest.raises(
        ValueError, match=rf"sample_weight must be finite and non-negative; got {bad}"
    ):
        bce(sample_weight=bad)
    w = np.ones((4, 3))
    w[1, 2] = bad
    with pytest.raises(ValueError, match=rf"got {bad} at flat index 5 \(index \(1, 2\)\)"):
        bce(Y2, P2, sample_weight=w)
    w = np.ones(4)
    w[2] = bad
    with pytest.raises(ValueError, match=rf"got {bad} at flat index 2"):
        bce(Y2, P2, sample_weight=w)


def test_a_weight_is_finite_in_the_working_precision_however_it_is_given():
    # One rule for a scalar, a 0-d array, per-element and per-row arrays and pos_weight: the
    # value is accepted where it rounds to a finite float32 (the kernel multiplies by that), as
    # a weight array is where the kernel converts it. 3.40282356e38 is past float32's largest
    # (3.4028234664e38) but rounds to it; 3.5e38 rounds to inf.
    def ways(w):
        return {
            "scalar": {"sample_weight": w},
            "0-d": {"sample_weight": np.array(w)},
            "per element": {"sample_weight": np.full((4, 3), w)},
            "per row": {"sample_weight": np.full(4, w)},
            "pos_weight": {"pos_weight": w},
            "pos_weight per class": {"pos_weight": np.full(3, w)},
        }

    y = np.ones((4, 3), np.float32)  # (labels 1: pos_weight weighs every element)
    for name, options in ways(3.40282356e38).items():
        assert np.isfinite(bce(y, P2, **options)), name
    for name, options in ways(3.5e38).items():
        with pytest.raises(ValueError, match=r"finite in the working precision \(float32\)"):
            bce(y, P2, **options)
            pytest.fail(name)


@pytest.mark.parametrize("bad", [-0.5, np.inf, np.nan])
def test_negative_or_non_finite_pos_weight(bad):
    with pytest.raises(ValueError, match="pos_weight must be finite and non-negative"):
        bce(pos_weight=bad)
    q = np.ones(3)
    q[1] = bad
    with pytest.raises(
        ValueError, match=r"pos_weight must be finite and non-negative; got .* at index 1"
    ):
        bce(Y2, P2, pos_weight=q)


@pytest.mark.parametrize("eps", [0.0, -1e-7, 0.5, 0.7, np.nan])
def test_epsilon_range(eps):
    with pytest.raises(ValueError, match=r"epsilon must be in \(0, 0.5\)"):
        bce(epsilon=eps)


@pytest.mark.parametrize("s", [-0.1, 1.01, np.nan])
def test_label_smoothing_range(s):
    with pytest.raises(ValueError, match=r"label_smoothing must be in \[0, 1\]"):
        bce(label_smoothing=s)


@pytest.mark.parametrize("g", [-1.0, np.inf, np.nan])
def test_gamma_negative_or_non_finite(g):
    with pytest.raises(ValueError, match="gamma must be finite and >= 0"):
        bce(gamma=g)
    with pytest.raises(ValueError, match="gamma must be finite and >= 0"):
        fastbce.binary_focal_crossentropy(Y, P, gamma=g)


@pytest.mark.parametrize("a", [-0.1, 1.5, np.nan])
def test_alpha_range(a):
    with pytest.raises(ValueError, match=r"alpha must be None or in \[0, 1\]"):
        bce(alpha=a)


def test_unknown_reduction_and_nan_policy():
    with pytest.raises(
        ValueError,
        match=r"reduction must be one of 'none', 'sum', 'mean', 'weighted_mean'; got 'avg'",
    ):
        bce(reduction="avg")
    with pytest.raises(
        ValueError, match=r"nan_policy must be one of 'propagate', 'omit', 'raise'; got 'skip'"
    ):
        bce(nan_policy="skip")


def test_out_wrong_shape_dtype_or_reduction():
    with pytest.raises(
        ValueError, match=r"out must have y_pred's shape \(4,\) and dtype float32; got shape \(3,\)"
    ):
        bce(reduction="none", out=np.empty(3, np.float32))
    with pytest.raises(ValueError, match=r"got shape \(4,\) and dtype float64"):
        bce(reduction="none", out=np.empty(4, np.float64))
    with pytest.raises(
        ValueError, match="out is only allowed with reduction='none'; got reduction='mean'"
    ):
        bce(out=np.empty(4, np.float32))
    readonly = np.empty(4, np.float32)
    readonly.flags.writeable = False
    with pytest.raises(ValueError, match="out must be writeable"):
        bce(reduction="none", out=readonly)
    with pytest.raises(TypeError, match="out must be a numpy.ndarray; got list"):
        bce(reduction="none", out=[0.0] * 4)


@pytest.mark.parametrize("t", [0, -2])
def test_threads_below_one(t):
    with pytest.raises(ValueError, match=rf"threads must be None or an int >= 1; got {t}"):
        bce(threads=t)


def test_errors_leave_inputs_unmodified():
    y = Y.copy()
    y[1] = 3
    p = P.copy()
    before = (y.copy(), p.copy())
    with pytest.raises(ValueError):
        bce(y, p)
    np.testing.assert_array_equal(y, before[0])
    np.testing.assert_array_equal(p, before[1])
