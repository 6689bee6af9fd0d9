"""Edge cases: 0-d and empty inputs, lengths around the vector, tile and block widths, strided and
transposed views, special values, NaN policies, `out=`, array protocols, thread counts."""

from __future__ import annotations

import math

import numpy as np
import pytest

import fastbce
from reference import bce_reference

pytestmark = pytest.mark.usefixtures("simd_target")

LENGTHS = sorted(
    {
        n
        for k in (1, 2, 3)
        for lanes in (4, 8, 16)
        for n in (k * lanes - 1, k * lanes, k * lanes + 1)
    }
    | {0, 1, 511, 512, 513, 1023, 1025, 65535, 65536, 65537, 2 * 65536 + 3}
)


@pytest.mark.parametrize("n", LENGTHS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_lengths_around_vector_tile_and_block_widths(rng, n, dtype):
    y = (rng.random(n) < 0.5).astype(np.uint8)
    x = rng.normal(0, 3, n).astype(dtype)
    got = fastbce.binary_crossentropy(y, x, from_logits=True, reduction="none")
    want = bce_reference(y, x, from_logits=True)
    np.testing.assert_allclose(got, want, rtol=2e-6 if dtype == np.float32 else 1e-13)
    total = fastbce.binary_crossentropy(y, x, from_logits=True, reduction="sum")
    assert total == pytest.approx(float(want.sum()), rel=1e-6 if dtype == np.float32 else 1e-13)


def test_zero_d_inputs():
    got = fastbce.binary_crossentropy(np.float32(1.0), np.float32(0.25), reduction="none")
    assert isinstance(got, np.ndarray) and got.shape == () and got.dtype == np.float32
    assert float(got) == pytest.approx(-math.log(0.25), rel=1e-6)
    assert fastbce.binary_crossentropy(1, 0.25) == pytest.approx(-math.log(0.25), rel=1e-15)
    assert fastbce.binary_crossentropy(True, 0.0, from_logits=True, sample_weight=2.0) == (
        pytest.approx(2 * math.log(2), rel=1e-15)
    )


@pytest.mark.parametrize("shape", [(0,), (0, 3), (4, 0), (2, 0, 5)])
def test_empty_inputs(shape):
    y = np.zeros(shape, np.float32)
    p = np.zeros(shape, np.float32)
    assert fastbce.binary_crossentropy(y, p, reduction="sum") == 0.0
    assert math.isnan(fastbce.binary_crossentropy(y, p, reduction="mean"))
    assert math.isnan(fastbce.binary_crossentropy(y, p, reduction="weighted_mean"))
    out = fastbce.binary_crossentropy(y, p, reduction="none")
    assert out.shape == shape and out.dtype == np.float32


def test_zero_total_weight_gives_nan_weighted_mean():
    y = np.array([0.0, 1.0])
    p = np.array([0.2, 0.7])
    assert math.isnan(
        fastbce.binary_crossentropy(y, p, sample_weight=0.0, reduction="weighted_mean")
    )
    assert fastbce.binary_crossentropy(y, p, sample_weight=0.0) == 0.0


@pytest.mark.parametrize(
    "view",
    [
        lambda a: a[::3],
        lambda a: a[::-1],
        lambda a: a.reshape(60, 50).T,
        lambda a: a.reshape(60, 50)[:, 7],
        lambda a: a.reshape(60, 50)[::2, 1::3],
        lambda a: a.reshape(3, 20, 50)[:, ::-2, 5:45],
        lambda a: np.broadcast_to(a[:50], (60, 50)),
    ],
    ids=["step3", "reversed", "transposed", "column", "2d-steps", "3d-mixed", "broadcast"],
)
def test_strided_views_match_contiguous(rng, view):
    base_y = (rng.random(3000) < 0.5).astype(np.float32)
    base_x = rng.normal(0, 3, 3000).astype(np.float32)
    base_w = rng.random(3000).astype(np.float32)
    y, x, w = view(base_y), view(base_x), view(base_w)
    contiguous = [np.ascontiguousarray(a) for a in (y, x, w)]
    for reduction in ("none", "sum", "weighted_mean"):
        got = fastbce.binary_crossentropy(
            y, x, from_logits=True, sample_weight=w, reduction=reduction
        )
        want = fastbce.binary_crossentropy(
            *contiguous[:2], from_logits=True, sample_weight=contiguous[2], reduction=reduction
        )
        np.testing.assert_array_equal(got, want)


def test_unaligned_and_byteswapped_inputs(rng):
    x = rng.normal(size=1001)
    y = (rng.random(1001) < 0.5).astype(np.float64)
    want = fastbce.binary_crossentropy(y, x, from_logits=True, reduction="none")
    raw = np.zeros(1001 * 8 + 1, np.uint8)
    unaligned = raw[1:].view(np.float64)
    unaligned[:] = x
    assert not unaligned.flags.aligned
    np.testing.assert_array_equal(
        fastbce.binary_crossentropy(y, unaligned, from_logits=True, reduction="none"), want
    )
    swapped = x.astype(">f8")
    np.testing.assert_array_equal(
        fastbce.binary_crossentropy(y.astype(">f8"), swapped, from_logits=True, reduction="none"),
        want,
    )
    out = np.zeros(1001, ">f8")  # (out= in the other byte order, as NumPy's ufuncs take it)
    got = fastbce.binary_crossentropy(y, x, from_logits=True, reduction="none", out=out)
    assert got is out
    np.testing.assert_array_equal(out, want)
    pair = (np.zeros(1001, ">f8"), np.zeros(1001, ">f8"))
    grad, hess = fastbce.binary_crossentropy_grad(y, x, out=pair)
    assert grad is pair[0] and hess is pair[1]
    for got_part, want_part in zip(pair, fastbce.binary_crossentropy_grad(y, x), strict=True):
        np.testing.assert_array_equal(got_part, want_part)
    with pytest.raises(ValueError, match="dtype float64; got shape .1001,. and dtype >f4"):
        fastbce.binary_crossentropy(y, x, from_logits=True, reduction="none", out=out.astype(">f4"))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_infinite_logits_give_exact_limits(dtype):
    inf = np.inf
    x = np.array([inf, inf, -inf, -inf, inf, -inf], dtype=dtype)
    y = np.array([1, 0, 0, 1, 0.5, 0.5], dtype=dtype)
    want = [0.0, inf, 0.0, inf, inf, inf]
    for options in ({}, {"gamma": 2.0}, {"gamma": 0.3, "alpha": 0.25}, {"pos_weight": 2.0}):
        got = fastbce.binary_crossentropy(y, x, from_logits=True, reduction="none", **options)
        np.testing.assert_array_equal(got, want)
    smoothed = fastbce.binary_crossentropy(
        y[:4], x[:4], from_logits=True, label_smoothing=0.1, reduction="none"
    )
    np.testing.assert_array_equal(smoothed, [inf] * 4)


def test_zero_weights_beat_infinite_loss():
    x = np.array([-np.inf, np.inf])
    y = np.array([1.0, 0.0])
    got = fastbce.binary_crossentropy(
        y, x, from_logits=True, sample_weight=[0.0, 0.0], reduction="none"
    )
    np.testing.assert_array_equal(got, [0.0, 0.0])
    got = fastbce.binary_crossentropy(y[:1], x[:1], from_logits=True, alpha=0.0, reduction="none")
    np.testing.assert_array_equal(got, [0.0])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_probability_special_values(dtype):
    p = np.array([0.0, 1.0, 0.0, 1.0, 5e-45 if dtype == np.float32 else 5e-324], dtype=dtype)
    y = np.array([0, 1, 1, 0, 1], dtype=dtype)
    got = fastbce.binary_crossentropy(y, p, reduction="none")
    want = bce_reference(y, p)
    assert np.all(np.isfinite(got))
    np.testing.assert_allclose(got, want, rtol=1e-6)
    # float32 clips at 1 - 1e-7 rounded to 0.99999988, as Keras 3
    if dtype == np.float32:
        assert got[3] == pytest.approx(
            -math.log1p(-float(np.float32(1) - np.float32(1e-7))), rel=1e-6
        )


def test_nan_policies(rng):
    y = np.array([0.0, 1.0, np.nan, 1.0, 0.0])
    p = np.array([0.2, 0.9, 0.5, np.nan, 0.4])
    w = np.array([1.0, 2.0, 1.0, 1.0, np.nan])
    assert math.isnan(fastbce.binary_crossentropy(y, p))
    elementwise = fastbce.binary_crossentropy(y, p, reduction="none", nan_policy="omit")
    assert np.isnan(elementwise[2:4]).all() and np.isfinite(elementwise[[0, 1, 4]]).all()
    ce = bce_reference(y, p)
    for reduction, want in [
        ("sum", ce[0] + 2 * ce[1]),
        ("mean", (ce[0] + 2 * ce[1]) / 2),
        ("weighted_mean", (ce[0] + 2 * ce[1]) / 3),
    ]:
        got = fastbce.binary_crossentropy(
            y, p, sample_weight=w, reduction=reduction, nan_policy="omit"
        )
        assert got == pytest.approx(want, rel=1e-15)
    all_nan = np.full(4, np.nan)
    assert fastbce.binary_crossentropy(all_nan, all_nan, reduction="sum", nan_policy="omit") == 0.0
    assert math.isnan(fastbce.binary_crossentropy(all_nan, all_nan, nan_policy="omit"))


def test_nan_in_logits_or_labels_propagates_elementwise():
    got = fastbce.binary_crossentropy(
        np.array([np.nan, 1.0, 0.0]),
        np.array([0.0, np.nan, 1.0]),
        from_logits=True,
        gamma=1.0,
        reduction="none",
    )
    assert np.isnan(got[:2]).all() and np.isfinite(got[2])


def test_inputs_are_never_modified(rng):
    y = rng.random((50, 4)).astype(np.float32)
    p = rng.random((50, 4)).astype(np.float32)
    w = rng.random(50)
    q = rng.random(4)
    copies = [a.copy() for a in (y, p, w, q)]
    fastbce.binary_crossentropy(
        y,
        p,
        sample_weight=w,
        pos_weight=q,
        gamma=2,
        alpha=0.3,
        label_smoothing=0.1,
        reduction="none",
    )
    for a, b in zip((y, p, w, q), copies, strict=True):
        np.testing.assert_array_equal(a, b)


def test_out_is_filled_and_returned(rng):
    y = rng.random((30, 3))
    p = rng.random((30, 3))
    want = fastbce.binary_crossentropy(y, p, reduction="none")
    out = np.full((30, 3), -1.0)
    got = fastbce.binary_crossentropy(y, p, reduction="none", out=out)
    assert got is out
    np.testing.assert_array_equal(out, want)
    strided = np.full((30, 6), -1.0)[:, ::2]
    fastbce.binary_crossentropy(y, p, reduction="none", out=strided)
    np.testing.assert_array_equal(strided, want)
    fortran = np.asfortranarray(np.zeros((30, 3)))
    fastbce.binary_crossentropy(y, p, reduction="none", out=fortran)
    np.testing.assert_array_equal(fortran, want)


def test_out_may_alias_an_input(rng):
    x = rng.normal(size=2000).astype(np.float32)
    y = (rng.random(2000) < 0.5).astype(np.float32)
    want = fastbce.binary_crossentropy(y, x, from_logits=True, reduction="none")
    fastbce.binary_crossentropy(y, x, from_logits=True, reduction="none", out=x)
    np.testing.assert_array_equal(x, want)


def test_array_protocols(rng):
    y = [0, 1, 1]
    p = [0.2, 0.7, 0.9]
    want = fastbce.binary_crossentropy(np.array(y), np.array(p))
    assert fastbce.binary_crossentropy(y, p) == want
    assert fastbce.binary_crossentropy(tuple(y), memoryview(np.array(p))) == want

    class HasArray:
        def __array__(self, dtype=None, copy=None):
            return np.array(p)

    class DLPackOnly:
        def __init__(self, a):
            self._a = a

        def __dlpack__(self, **kwargs):
            return self._a.__dlpack__(**kwargs)

        def __dlpack_device__(self):
            return self._a.__dlpack_device__()

    assert fastbce.binary_crossentropy(y, HasArray()) == want
    assert fastbce.binary_crossentropy(DLPackOnly(np.array(y)), DLPackOnly(np.array(p))) == want


@pytest.mark.parametrize(
    "options", [{}, {"gamma": 2.0, "sample_weight": "rows"}, {"nan_policy": "omit"}]
)
def test_reductions_are_bit_identical_for_any_thread_count(rng, options):
    n = 2_000_003
    y = (rng.random(n) < 0.3).astype(np.uint8)
    x = rng.normal(0, 2, n).astype(np.float32)
    x[::1000] = np.nan
    if options.get("sample_weight") == "rows":
        options = {**options, "sample_weight": rng.random(n)}
    results = {
        t: fastbce.binary_crossentropy(
            y, x, from_logits=True, threads=t, reduction="sum", **options
        )
        for t in (1, 2, 3, 8)
    }
    assert len({repr(v) for v in results.values()}) == 1, results


def test_float16_and_bfloat16_predictions(rng):
    x = rng.normal(0, 3, 1000)
    y = (rng.random(1000) < 0.5).astype(np.uint8)
    x16 = x.astype(np.float16)
    got = fastbce.binary_crossentropy(y, x16, from_logits=True, reduction="none")
    assert got.dtype == np.float32
    np.testing.assert_array_equal(
        got,
        fastbce.binary_crossentropy(y, x16.astype(np.float32), from_logits=True, reduction="none"),
    )
    special = np.array([np.inf, -np.inf, np.nan, 6.1e-5, 6e-8, -0.0, 65504], dtype=np.float16)
    np.testing.assert_array_equal(
        fastbce.binary_crossentropy(np.ones(7), special, from_logits=True, reduction="none"),
        fastbce.binary_crossentropy(
            np.ones(7), special.astype(np.float32), from_logits=True, reduction="none"
        ),
    )
    ml_dtypes = pytest.importorskip("ml_dtypes", reason="bfloat16 needs the optional ml_dtypes")
    xb = x.astype(ml_dtypes.bfloat16)
    np.testing.assert_array_equal(
        fastbce.binary_crossentropy(y, xb, from_logits=True, reduction="none"),
        fastbce.binary_crossentropy(y, xb.astype(np.float32), from_logits=True, reduction="none"),
    )


def test_options_take_the_working_precision_first():
    """Found by hypothesis: gamma = 2.2e-313 and label_smoothing = 4.6e-224 are 0 in float32.
    As in Keras, options are cast to the working type first, so in float32 they are off
    (no NaN from exp(0 * log 0)), while in float64 they still act."""
    y = np.array([0.0, 1.0, 1.0])
    p = np.array([0.0, 1.0, 0.5])
    for options, same_in_float32 in [
        ({"gamma": 2.2250738585e-313}, {}),
        ({"label_smoothing": 4.6e-224, "gamma": 0.0625}, {"gamma": 0.0625}),
    ]:
        got32 = fastbce.binary_crossentropy(
            y.astype(np.float32), p.astype(np.float32), reduction="none", **options
        )
        np.testing.assert_array_equal(
            got32,
            fastbce.binary_crossentropy(
                y, p.astype(np.float32), reduction="none", **same_in_float32
            ),
        )
        got64 = fastbce.binary_crossentropy(y, p, reduction="none", **options)
        np.testing.assert_allclose(got64, bce_reference(y, p, **options), rtol=1e-12, atol=1e-300)
    # float64 keeps the tiny gamma: a perfect prediction gets 0^gamma = 0
    got = fastbce.binary_crossentropy(y, p, gamma=2.2250738585e-313, reduction="none")
    assert got[0] == 0.0 and got[1] == 0.0


@pytest.mark.parametrize("alpha", [1e-5, 1e-9, 1 - 1e-7, 0.0, 1.0])
def test_class_balancing_is_accurate_for_extreme_alpha(alpha):
    """Found by hypothesis: (1 - alpha) + (2 alpha - 1) y' cancelled in float32 for small alpha."""
    y = np.array([1.0, 0.0, 0.3], dtype=np.float32)
    p = np.array([0.0, 1.0, 0.6], dtype=np.float32)
    got = fastbce.binary_crossentropy(y, p, alpha=alpha, reduction="none")
    want = bce_reference(y, p, alpha=alpha)
    np.testing.assert_allclose(got, want, rtol=2e-6, atol=1e-37)


def test_tiny_label_smoothing_is_not_lost():
    """Found by hypothesis: with s = 6e-8, y' = 1 - s/2 rounds to 1 in float32 and 1 - y' to 0;
    fastbce computes 1 - y' from y directly."""
    got = fastbce.binary_crossentropy(
        np.array([1.0], np.float32),
        np.array([5.0], np.float32),
        from_logits=True,
        label_smoothing=5.960464477539063e-08,
        reduction="none",
    )
    want = bce_reference(
        np.array([1.0]), np.array([5.0]), from_logits=True, label_smoothing=5.960464477539063e-08
    )
    np.testing.assert_allclose(got, want, rtol=2e-6)


@pytest.mark.parametrize(
    "options", [{}, {"gamma": 2.0}, {"alpha": 0.0}, {"alpha": 1.0}, {"pos_weight": np.zeros(4)}]
)
def test_smoothing_of_the_smallest_subnormal_against_an_infinite_logit(options):
    """Found by hypothesis (a whole-suite run forced to the baseline tier, 2026-12-05): with
    s = 2^-1074, s/2 is no float64 and the test's reference rounded 1 - y' to 0, so 0 * inf gave
    a loss of 0 where fastbce, which carries s/2 exactly, gives inf (SPEC: x = +inf gives 0 only
    when y' = 1). The reference now carries s/2 too; here both, with each option that scales
    the terms, including a finite logit whose loss s/2 |x| is a normal number."""
    y = np.array([1.0, 0.0, 1.0, 0.0])
    x = np.array([np.inf, -np.inf, 1e300, -1e300])
    got = fastbce.binary_crossentropy(
        y, x, from_logits=True, label_smoothing=5e-324, reduction="none", **options
    )
    want = bce_reference(y, x, from_logits=True, label_smoothing=5e-324, **options)
    assert np.isinf(got[0]) and np.isinf(want[0])  # (pos_weight 0: -inf against label 0 is 0)
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=0)


def test_tiny_pos_weight_does_not_underflow_before_the_loss():
    """Found by hypothesis: q = 1.4e-45 (float32's smallest) times y' = 0.5 underflows to 0, but
    q * y' * 7.1e14 = 5e-31 does not."""
    got = fastbce.binary_crossentropy(
        np.array([0.5], np.float32),
        np.array([-7.13631e14], np.float32),
        from_logits=True,
        pos_weight=np.array([1.40129846e-45]),
        reduction="none",
    )
    np.testing.assert_allclose(got, [0.5 * 1.40129846e-45 * 7.13631e14], rtol=1e-5)


@pytest.mark.parametrize("pred_dtype", [np.float32, np.float16])
@pytest.mark.parametrize("label_dtype", [np.uint8, np.bool_, np.float32])
@pytest.mark.parametrize(
    "options",
    [
        {},
        {"gamma": 2.0},
        {"gamma": 0.5, "alpha": 0.25},
        {"gamma": 1.0, "weighted": True},
        {"gamma": 4.0, "alpha": 0.25, "weighted": True},
    ],
)
def test_a_nan_logit_is_nan_wherever_it_sits(simd_target, rng, pred_dtype, label_dtype, options):
    """A quiet NaN logit (either sign) gives a NaN loss, NaN reductions and a NaN report sum, in
    the table loops too: on AMD's Zen 4 (x86-64-v4) a vrangeps turned it into 2^-30, so uint8 or
    bool labels and focal calls with gamma in {1/2, ..., 4} gave it ln 2's loss (finite sums)."""
    n = 1200
    x = (rng.normal(0.0, 4.0, n)).astype(pred_dtype)
    y = (rng.random(n) < 0.5).astype(label_dtype)
    kw: dict = {"from_logits": True, **options}
    if kw.pop("weighted", False):
        kw["sample_weight"] = rng.uniform(0.5, 1.5, n).astype(np.float32)
    clean = fastbce.binary_crossentropy(y, x, reduction="none", **kw)
    others = np.ones(n, dtype=bool)
    for at, nan in [(0, np.nan), (5, -np.nan), (20, np.nan), (511, -np.nan), (530, np.nan)]:
        xs = x.copy()
        xs[at] = nan
        got = fastbce.binary_crossentropy(y, xs, reduction="none", **kw)
        assert np.isnan(got[at]), (at, got[at])
        others[:] = True
        others[at] = False
        np.testing.assert_array_equal(got[others], clean[others])
        assert np.isnan(fastbce.binary_crossentropy(y, xs, **kw))
        assert np.isnan(fastbce.evaluate(y, xs, **kw)["sum"])
