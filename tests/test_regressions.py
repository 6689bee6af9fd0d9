"""Regression tests for what the hardening work (issue #5) found: each test failed before its fix
(except the zero-stride `out` one: a data race that only a thread sanitizer would report).

Found by the API fuzzer (tests/fuzz_api.py), the kernel fuzzer (tests/fuzz/fuzz_run.cpp) or the
property tests; docs/hardening.md lists them."""

from __future__ import annotations

import warnings

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
    got64 = fastbce.binary_focal_crossentropy(
        Y.astype(np.float64), P.astype(np.float64), gamma=1e300, reduction="none"
    )
    np.testing.assert_allclose(got64, [-np.log(1e-7), 0.0, 0.0], rtol=1e-12)


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_small_alpha_is_exact_for_positive_labels(dtype):
    """Found by hypothesis: the class-balancing factor was computed as (1 - alpha) +
    (2 alpha - 1) y, which cancels for y = 1: alpha = 1e-5 had a 1.4e-3 relative error in float32
    (fixed the same way in main meanwhile)."""
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
    np.testing.assert_array_equal(
        plain, fastbce.binary_crossentropy(y, p, alpha=None, reduction="none")
    )
    half = fastbce.binary_crossentropy(y, p, alpha=0.5, reduction="none")
    np.testing.assert_allclose(half, plain / 2, rtol=1e-6)


# ---- Python layer: every failure is a TypeError or ValueError naming the argument


def test_threads_beyond_the_c_int_range_is_a_cap_like_any_other():
    """threads=2**40 raised pybind11's TypeError 'incompatible function arguments'."""
    want = fastbce.binary_crossentropy(Y, P)
    assert fastbce.binary_crossentropy(Y, P, threads=2**40) == want
    with pytest.raises(ValueError, match="threads"):
        fastbce.binary_crossentropy(Y, P, threads=-(2**70))


@pytest.mark.parametrize("name", ["epsilon", "label_smoothing", "gamma", "alpha"])
def test_option_int_beyond_float_range(name):
    """An int too large for a float raised OverflowError."""
    with pytest.raises(ValueError, match=name):
        fastbce.binary_crossentropy(Y, P, **{name: 10**400})


@pytest.mark.parametrize("value", [["omit"], np.array(["omit", "raise"]), {"omit": 1}])
def test_unhashable_nan_policy(value):
    """A list or array raised TypeError: unhashable type (naming no argument)."""
    with pytest.raises(ValueError, match="nan_policy"):
        fastbce.binary_crossentropy(Y, P, nan_policy=value)


@pytest.mark.parametrize("value", [np.array(["sum", "mean"]), ["sum"], None, 1])
def test_array_reduction(value):
    """An array raised 'The truth value of an array ... is ambiguous' (naming no argument)."""
    with pytest.raises(ValueError, match="reduction"):
        fastbce.binary_crossentropy(Y, P, reduction=value)


@pytest.mark.parametrize("name", ["sample_weight", "pos_weight"])
def test_scalar_weight_beyond_the_working_precision(name):
    """A finite weight of 1e39 is inf in float32: sample_weight gave inf (and NaN where the
    loss is 0), pos_weight gave NaN (inf * 0 for y = 0). Like a per-element weight it is an
    error now, naming the weight and the working precision."""
    with pytest.raises(
        ValueError, match=rf"{name} must be finite in the working precision \(float32\)"
    ):
        fastbce.binary_crossentropy(Y, P, **{name: 1e39})
    # fine in float64
    got = fastbce.binary_crossentropy(
        Y.astype(np.float64), P.astype(np.float64), reduction="none", **{name: 1e39}
    )
    assert not np.isnan(got).any()


def test_per_class_pos_weight_beyond_float32_warns_no_more():
    """The cast to float32 emitted 'RuntimeWarning: overflow encountered in cast' before the
    ValueError."""
    y2, p2 = Y.reshape(1, 3), P.reshape(1, 3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ValueError, match=r"pos_weight .*1e\+39 at index 1"):
            fastbce.binary_crossentropy(y2, p2, pos_weight=np.array([1.0, 1e39, 1.0]))


def test_per_element_weight_beyond_float32_says_why():
    with pytest.raises(ValueError, match=r"sample_weight must be finite in the working precision"):
        fastbce.binary_crossentropy(Y, P, sample_weight=np.array([1.0, 1e39, 1.0]))


def test_out_with_zero_strides_is_written_like_numpy():
    """A writeable out whose elements all share one address was written in place by every
    kernel thread at once (a data race); now it goes through a copy, as NumPy does."""
    n = 1 << 20
    y = np.zeros(n, np.float32)
    p = np.full(n, 0.25, np.float32)
    out = np.lib.stride_tricks.as_strided(np.zeros(1, np.float32), (n,), (0,))
    got = fastbce.binary_crossentropy(y, p, reduction="none", out=out, threads=2)
    assert got is out
    np.testing.assert_allclose(out[0], -np.log1p(-0.25), rtol=1e-6)


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64, np.int32])
def test_unaligned_input_reaches_the_kernel_aligned(dtype):
    """Found by UBSan (tools/run_sanitized_tests.sh): an unaligned but contiguous array went to
    the kernel as it was ("load of misaligned address ... for type 'const double'"), because
    np.ascontiguousarray does not copy a contiguous array. Undefined behaviour, and a crash
    wherever the compiler uses aligned vector loads."""
    from fastbce._api import _flat

    raw = np.zeros(64 * np.dtype(dtype).itemsize + 1, np.uint8)
    unaligned = raw[1:].view(dtype)
    assert not unaligned.flags.aligned and unaligned.flags.c_contiguous
    arr, stride = _flat(unaligned)
    assert arr.flags.aligned and stride == 1
    np.testing.assert_array_equal(arr, unaligned)


@pytest.mark.parametrize(
    "options", [{}, {"alpha": 0.0}, {"gamma": 0.5, "alpha": 0.0}, {"gamma": 2.0}]
)
def test_smoothed_labels_near_one_keep_float32_accuracy(options):
    """Found by hypothesis under the sanitized run: 1 - y' computed as 1 - (y(1 - s) + s/2)
    cancels y''s rounding error for y near 1, up to 1e-4 relative error in float32 (used by the
    negative term, the focal term and class balancing). (1 - y)(1 - s) + s/2 has no cancellation."""
    from reference import bce_reference

    y = np.array([0.99999, 0.999, 0.9999999, 0.75], np.float32)
    p = np.array([0.999, 0.99, 0.0, 0.5], np.float32)
    options = {"label_smoothing": 2.0**-8, **options}
    got = fastbce.binary_crossentropy(y, p, reduction="none", **options)
    np.testing.assert_allclose(got, bce_reference(y, p, **options), rtol=2e-6)


@pytest.mark.parametrize(
    "y, x, options",
    [
        # y' * q * -log p = 2^128 in float32; times the weight 1/2 it is 2^127
        ([True, False], [-(2.0**127), 0.0], {"pos_weight": [2.0, 2.0], "sample_weight": 0.5}),
        # smoothing and alpha: 2^128 * 3/4 before alpha's 1/4 brings it back into range
        ([False], [-(2.0**127)], {"label_smoothing": 1.0, "alpha": 0.0, "pos_weight": [4.0]}),
        # the focal factor (1/2 here) brings it back
        ([False], [2.0**127], {"label_smoothing": 1.0, "gamma": 1.0, "sample_weight": 4.0}),
        (
            [True, False],
            [-2.903743e38, 0.0],
            {"label_smoothing": 0.75, "gamma": 1.0, "alpha": 1.0, "pos_weight": [3.0, 3.0]},
        ),
    ],
)
def test_float32_products_do_not_overflow_early(simd_target, y, x, options):
    """Found by hypothesis (test_properties) while the kernel was being split into stages, and
    there before: with label smoothing, pos_weight, alpha, focal and weights the loss is a product
    of up to six factors, and a float32 intermediate overflowed to inf where the float64 reference
    rounds to a finite float32. The general options now multiply in float64."""
    from reference import bce_reference

    y = np.array(y)
    x = np.array(x, np.float32)
    options = {k: np.array(v) if isinstance(v, list) else v for k, v in options.items()}
    got = fastbce.binary_crossentropy(y, x, from_logits=True, reduction="none", **options)
    with np.errstate(over="ignore"):
        want = bce_reference(y, x, from_logits=True, **options).astype(np.float32)
    assert np.isfinite(want).all()
    np.testing.assert_allclose(got, want, rtol=1e-6)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("options", [{}, {"gamma": 2.0, "alpha": 0.25}, {"gamma": 0.7}])
def test_option_levels_agree(simd_target, rng, dtype, options):
    """The kernel has one instantiation per options level (types.hpp, Options): neutral values of
    an option take a heavier one and must give the same losses: hard labels exactly (every
    product is exact or the same rounding), soft labels to a float64 product's rounding. (On
    AVX-512 float32 focal losses of the plain and weighted levels take 1 - p_t from the sigmoid
    table, the general level from exp and a division: each within 1.5 ulp, on either side, and
    the factor's exponent gamma multiplies that: 3 gamma float32 ulps more.)"""
    n = 5000
    x = rng.normal(0, 4, n).astype(dtype)
    x[:4] = [np.inf, -np.inf, 0.0, 60.0]
    for y in [(rng.random(n) < 0.5).astype(dtype), rng.random(n).astype(dtype)]:
        plain = fastbce.binary_crossentropy(y, x, from_logits=True, reduction="none", **options)
        weighted = fastbce.binary_crossentropy(
            y, x, from_logits=True, reduction="none", sample_weight=np.ones(n, dtype), **options
        )
        general = fastbce.binary_crossentropy(
            y, x, from_logits=True, reduction="none", pos_weight=np.ones(n, dtype), **options
        )
        np.testing.assert_array_equal(weighted, plain)
        focal_ulps = 3 * options.get("gamma", 0.0) if dtype == np.float32 else 0.0
        rtol = (4 + focal_ulps) * np.finfo(dtype).eps
        np.testing.assert_allclose(general, plain, rtol=rtol, atol=0)
