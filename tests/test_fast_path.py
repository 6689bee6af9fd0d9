"""The fast path of small calls (ndarrays, no out=, options and weights as plain Python values or
ndarrays)
gives what the general path gives, bit for bit, and raises the same errors with the same messages.

The general path is forced by making `plain_options_key` return None (as it does for options it
does not take, NumPy scalars say); a counter on `_fast_loss` shows which path ran.
"""

from __future__ import annotations

import math
from decimal import Decimal
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import fastbce
from fastbce import _api

LABEL_DTYPES = [
    "bool", "int8", "uint8", "int16", "uint16", "int32", "uint32", "int64", "uint64",
    "float16", "float32", "float64",
]  # fmt: skip
PRED_DTYPES = ["float16", "float32", "float64"]
REDUCTIONS = ["none", "sum", "mean", "weighted_mean"]
FUNCTIONS = [fastbce.binary_crossentropy, fastbce.binary_focal_crossentropy]


@pytest.fixture
def fast_calls(monkeypatch):
    """A list that collects the result of every _fast_loss call (None: it fell back)."""
    calls = []
    real = _api._fast_loss

    def counting(*args):
        result = real(*args)
        calls.append(result)
        return result

    monkeypatch.setattr(_api, "_fast_loss", counting)
    return calls


def general(fn, *args, **kwargs):
    """fn through the general path only."""
    real = _api.plain_options_key
    _api.plain_options_key = lambda *a: None  # type: ignore[assignment]
    try:
        return fn(*args, **kwargs)
    finally:
        _api.plain_options_key = real


def outcome(fn, *args, **kwargs):
    """('ok', value) or ('error', type, message): comparable between the two paths."""
    try:
        value = fn(*args, **kwargs)
    except (TypeError, ValueError) as e:
        return ("error", type(e), str(e))
    if isinstance(value, np.ndarray):
        return ("ok", value.dtype, value.shape, value.tobytes())
    return ("ok", type(value), repr(value))


def both(fn, *args, **kwargs):
    fast = outcome(fn, *args, **kwargs)
    slow = outcome(general, fn, *args, **kwargs)
    assert fast == slow
    return fast


def inputs(rng, label_dtype, pred_dtype, shape, from_logits):
    y = rng.random(shape)
    if label_dtype == "bool" or np.dtype(label_dtype).kind in "iu":
        y = y < 0.5
    y = y.astype(label_dtype)
    x = rng.normal(0, 6, shape) if from_logits else rng.random(shape)
    return y, x.astype(pred_dtype)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("pred_dtype", PRED_DTYPES)
@pytest.mark.parametrize("label_dtype", LABEL_DTYPES)
def test_every_dtype_and_reduction(
    simd_target, rng, fast_calls, label_dtype, pred_dtype, reduction
):
    for shape in [(), (0,), (7,), (3, 5), (600,)]:
        for from_logits in (False, True):
            y, x = inputs(rng, label_dtype, pred_dtype, shape, from_logits)
            for fn in FUNCTIONS:
                result = both(fn, y, x, from_logits=from_logits, reduction=reduction)
                assert result[0] == "ok"
    assert fast_calls and all(r is not None for r in fast_calls)  # the fast path ran


OPTION_SETS = [
    {},
    {"epsilon": 1e-3, "label_smoothing": 0.1},
    {"gamma": 2.0, "alpha": 0.25},
    {"gamma": 0, "alpha": 1},  # ints
    {"gamma": 2.7, "label_smoothing": 1.0},
    {"nan_policy": "omit"},
    {"nan_policy": "raise", "validate": False},
    {"threads": 1},
    {"threads": 2**40},
]


@pytest.mark.parametrize("options", OPTION_SETS, ids=str)
def test_every_option(simd_target, rng, fast_calls, options):
    for from_logits in (False, True):
        y, x = inputs(rng, "float32", "float32", (40, 3), from_logits)
        x[5, 1] = np.nan if options.get("nan_policy") != "raise" else x[5, 1]
        y[7, 2] = 0.3
        for fn in FUNCTIONS:
            for reduction in REDUCTIONS:
                both(fn, y, x, from_logits=from_logits, reduction=reduction, **options)
    assert any(r is not None for r in fast_calls)


BAD_CALLS = [
    ({"from_logits": 1}, "from_logits must be True or False"),
    ({"validate": 0}, "validate must be True or False"),
    ({"epsilon": 0.7}, "epsilon must be in (0, 0.5)"),
    ({"epsilon": 10**400}, "epsilon is out of range"),
    ({"epsilon": math.nan}, "epsilon must be in (0, 0.5)"),
    ({"label_smoothing": -0.5}, "label_smoothing must be in [0, 1]"),
    ({"gamma": True}, "gamma must be a real number"),
    ({"gamma": -1.0}, "gamma must be finite and >= 0"),
    ({"gamma": Fraction(1, 2)}, "gamma must be a real number"),
    ({"alpha": Decimal("0.5")}, "alpha must be a real number"),
    ({"alpha": 2}, "alpha must be None or in [0, 1]"),
    ({"nan_policy": "skip"}, "nan_policy must be one of"),
    ({"threads": 0}, "threads must be None or an int >= 1"),
    ({"threads": 1.0}, "threads must be None or an int >= 1"),
    ({"reduction": "avg"}, "reduction must be one of"),
    ({"reduction": ["mean"]}, "reduction must be one of"),
]


@pytest.mark.parametrize(("options", "message"), BAD_CALLS, ids=str)
def test_option_errors_are_the_general_paths(rng, options, message):
    y, x = inputs(rng, "float32", "float32", (4,), False)
    for fn in FUNCTIONS:
        # valid equal-valued options first: the cache of checked calls must not let these pass
        fn(y, x, from_logits=True, gamma=1, alpha=0.5, threads=1, reduction="mean")
        fn(y, x, from_logits=True, gamma=0.5, alpha=0.5, epsilon=1e-7)
        result = both(fn, y, x, **options)
        assert result[0] == "error" and message in result[2], result


def test_array_errors_are_the_general_paths(rng):
    y, x = inputs(rng, "float32", "float32", (6, 2), False)
    bad_label = y.copy()
    bad_label[4, 1] = 1.5
    bad_pred = x.copy()
    bad_pred[2, 0] = -0.25
    nan_pred = x.copy()
    nan_pred[3, 1] = np.nan
    cases = [
        ((y, x[:3]), {}, "same shape"),
        ((y, x.astype(np.int32)), {}, "y_pred must be float16, float32 or float64"),
        ((y.astype("U3"), x), {}, "y_true must hold bool, integer or float values"),
        ((bad_label, x), {}, "y_true must be in [0, 1]; got 1.5 at flat index 9 (index (4, 1))"),
        ((y, bad_pred), {}, "y_pred must be a probability in [0, 1]"),
        ((y, nan_pred), {"nan_policy": "raise"}, "nan_policy='raise': y_pred is NaN"),
    ]
    for args, options, message in cases:
        for fn in FUNCTIONS:
            for _ in range(2):  # (the second time with the call cached, where it can be)
                result = both(fn, *args, **options)
                assert result[0] == "error" and message in result[2], result


def test_layouts_and_byte_orders(simd_target, rng, fast_calls):
    y, x = inputs(rng, "float32", "float64", (30, 8), False)
    unaligned = np.empty(y.nbytes + 1, np.uint8)[1:].view(np.float32).reshape(y.shape)
    unaligned[...] = y
    for yy, xx in [
        (y.T, x.T),
        (y[::3], x[::3]),
        (y[:, 2], x[:, 2]),
        (y[::-1], x[::-1]),
        (y.astype(">f4"), x.astype(">f8")),
        (np.asfortranarray(y), np.asfortranarray(x)),
        (unaligned, x),
    ]:
        both(fastbce.binary_crossentropy, yy, xx, reduction="none")
        both(fastbce.binary_crossentropy, yy, xx)
    assert not unaligned.flags.aligned
    assert all(r is not None for r in fast_calls)


def test_outside_the_fast_path(rng, fast_calls):
    """Lists, subclasses, weights other than Python numbers and ndarrays, pos_weight arrays, out=
    and NumPy-scalar options take the general path."""
    y, x = inputs(rng, "float32", "float32", (5,), False)
    fastbce.binary_crossentropy(list(y), x)
    fastbce.binary_crossentropy(np.ma.masked_array(y), x)
    fastbce.binary_crossentropy(y, x, sample_weight=list(x))
    fastbce.binary_crossentropy(y, x, sample_weight=np.float32(2.0))
    fastbce.binary_crossentropy(y, x, sample_weight=np.array(2.0))
    fastbce.binary_crossentropy(y, x, sample_weight=True)
    fastbce.binary_crossentropy(y, x, pos_weight=np.full(5, 2.0))
    fastbce.binary_crossentropy(y, x, pos_weight=np.float64(2.0))
    fastbce.binary_crossentropy(y, x, reduction="none", out=np.empty(5, np.float32))
    fastbce.binary_crossentropy(y, x, epsilon=np.float64(1e-7))
    fastbce.binary_crossentropy(y, x, from_logits=np.bool_(False))
    assert fast_calls == []


WEIGHT_CASES = [
    {"sample_weight": 2.0},
    {"sample_weight": 3},
    {"sample_weight": 0.0, "reduction": "weighted_mean"},
    {"sample_weight": "per_element"},
    {"sample_weight": "per_row", "gamma": 2.0, "alpha": 0.25},
    {"sample_weight": "strided", "nan_policy": "omit"},
    {"pos_weight": 3.0},
    {"pos_weight": 0, "sample_weight": "per_element", "label_smoothing": 0.1},
]


@pytest.mark.parametrize("case", WEIGHT_CASES, ids=str)
@pytest.mark.parametrize("pred_dtype", PRED_DTYPES)
def test_weights(simd_target, rng, fast_calls, case, pred_dtype):
    """Weights on the fast path: the general path's results, bit for bit."""
    for from_logits in (False, True):
        y, x = inputs(rng, "float32", pred_dtype, (40, 3), from_logits)
        x[5, 1] = np.nan
        w = rng.random((80, 3)) * 4
        given = {
            "per_element": w[:40].astype(np.float32),
            "per_row": w[:40, 0],
            "strided": w[::2],
        }
        options = {k: given.get(v, v) if isinstance(v, str) else v for k, v in case.items()}
        if case.get("sample_weight") == "per_row":
            options["sample_weight"][7] = 0.0
        for reduction in REDUCTIONS if "reduction" not in case else [case["reduction"]]:
            options["reduction"] = reduction
            for fn in FUNCTIONS:
                for _ in range(2):  # (the second time with the call cached)
                    assert both(fn, y, x, from_logits=from_logits, **options)[0] == "ok"
    assert fast_calls and all(r is not None for r in fast_calls)


WEIGHT_ERRORS = [
    ({"sample_weight": -1.0}, "sample_weight must be finite and non-negative; got -1.0"),
    ({"sample_weight": math.inf}, "sample_weight must be finite and non-negative"),
    ({"sample_weight": 1e39}, "sample_weight must be finite in the working precision"),
    ({"sample_weight": 10**400}, "sample_weight must be finite; got an integer of 1329 bits"),
    ({"sample_weight": np.ones(7)}, "sample_weight must be a scalar, (6, 2) (like y_pred)"),
    ({"sample_weight": np.ones((6, 2), "U1")}, "sample_weight must hold bool, integer or float"),
    ({"sample_weight": "bad_value"}, "sample_weight must be finite and non-negative; got -2.0"),
    ({"sample_weight": "bad_row"}, "sample_weight must be finite and non-negative; got inf"),
    ({"sample_weight": "nan_row", "nan_policy": "raise"}, "sample_weight is NaN"),
    ({"pos_weight": -2}, "pos_weight must be finite and non-negative; got -2.0"),
    ({"pos_weight": math.nan}, "pos_weight must be finite and non-negative; got nan"),
    ({"pos_weight": 1e39}, "pos_weight must be finite in the working precision"),
]


@pytest.mark.parametrize(("case", "message"), WEIGHT_ERRORS, ids=str)
def test_weight_errors_are_the_general_paths(rng, case, message):
    y, x = inputs(rng, "float32", "float32", (6, 2), True)
    bad_value = np.ones((6, 2), np.float32)
    bad_value[3, 1] = -2.0
    bad_row, nan_row = np.ones(6), np.ones(6)
    bad_row[4], nan_row[2] = np.inf, np.nan
    given = {"bad_value": bad_value, "bad_row": bad_row, "nan_row": nan_row}
    options = {k: given.get(v, v) if isinstance(v, str) else v for k, v in case.items()}
    for fn in FUNCTIONS:
        # valid weights of the same dtype and shape first: cached checks must not let these pass
        fn(y, x, from_logits=True, sample_weight=np.ones((6, 2), np.float32))
        fn(y, x, from_logits=True, sample_weight=np.ones(6), pos_weight=2.0)
        for _ in range(2):
            result = both(fn, y, x, from_logits=True, **options)
            assert result[0] == "error" and message in result[2], result


def test_weights_of_rows_without_elements_are_checked_after_a_valid_call():
    # (a (3, 0) input: the kernel reads no weight, so the checks the cache skips must run)
    y, x = np.zeros((3, 0), np.float32), np.zeros((3, 0), np.float32)
    for fn in FUNCTIONS:
        for bad in (-1.0, np.inf):
            fn(y, x, sample_weight=np.ones(3))
            w = np.ones(3)
            w[1] = bad
            with pytest.raises(ValueError, match=rf"got {bad} at flat index 1"):
                fn(y, x, sample_weight=w)


def test_the_cache_is_bounded(rng):
    y, x = inputs(rng, "float32", "float32", (3,), False)
    for size in range(1, 2 * _api._CHECKED_CALLS_MAX):
        fastbce.binary_crossentropy(y[: size % 3], x[: size % 3], epsilon=1e-7 * size / 1e3)
        assert len(_api._CHECKED_CALLS) <= _api._CHECKED_CALLS_MAX


@given(
    label_dtype=st.sampled_from(LABEL_DTYPES),
    pred_dtype=st.sampled_from(PRED_DTYPES),
    shape=st.sampled_from([(), (1,), (5,), (2, 3), (513,)]),
    from_logits=st.booleans(),
    epsilon=st.sampled_from([1e-7, 1e-3, 0.25]),
    label_smoothing=st.sampled_from([0.0, 0.05, 1]),
    gamma=st.sampled_from([0.0, 1, 2.0, 2.7]),
    alpha=st.sampled_from([None, 0.25, 0, 1.0]),
    nan_policy=st.sampled_from(["propagate", "omit"]),
    reduction=st.sampled_from(REDUCTIONS),
    seed=st.integers(0, 2**32 - 1),
)
def test_same_as_general_path(
    label_dtype, pred_dtype, shape, from_logits, epsilon, label_smoothing, gamma, alpha,
    nan_policy, reduction, seed,
):  # fmt: skip
    y, x = inputs(np.random.default_rng(seed), label_dtype, pred_dtype, shape, from_logits)
    both(
        fastbce.binary_crossentropy, y, x, from_logits=from_logits, epsilon=epsilon,
        label_smoothing=label_smoothing, gamma=gamma, alpha=alpha, nan_policy=nan_policy,
        reduction=reduction,
    )  # fmt: skip


def test_bfloat16(simd_target, rng, fast_calls):
    ml_dtypes = pytest.importorskip("ml_dtypes")
    for from_logits in (False, True):
        y, x = inputs(rng, "float32", "float32", (3, 70), from_logits)
        y, x = y.astype(ml_dtypes.bfloat16), x.astype(ml_dtypes.bfloat16)
        for reduction in REDUCTIONS:
            both(fastbce.binary_crossentropy, y, x, from_logits=from_logits, reduction=reduction)
    assert fast_calls and all(r is not None for r in fast_calls)


def test_a_scalar_weight_is_cached_by_its_bits(rng):
    """-0.0 == 0.0 in Python: the fast path's cache keys a float by its bits, so each zero gives
    what the general path gives (a NumPy scalar takes that path), bit for bit, in either order."""
    y, x = inputs(rng, "float32", "float32", (5,), True)
    for first, second in ((0.0, -0.0), (-0.0, 0.0)):
        for weight in (first, second):
            got = fastbce.binary_crossentropy(
                y, x, from_logits=True, sample_weight=weight, reduction="none"
            )
            want = fastbce.binary_crossentropy(
                y, x, from_logits=True, sample_weight=np.float64(weight), reduction="none"
            )
            assert got.tobytes() == want.tobytes(), (weight, got, want)
