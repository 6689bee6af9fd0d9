"""fastbce against golden values made by the real libraries.

tests/golden/golden.json was written by tools/make_golden.py, which ran Keras 3,
TensorFlow, PyTorch, optax/JAX and scikit-learn (versions inside the file and in
the generator's docstring).  This test needs only numpy, pytest and fastbce.

Each case gives the inputs, the fastbce call that must reproduce the library
(SPEC.md section 1, "Compatibility this buys") and the library's output.  Cases
flagged ``expected_to_differ`` are documented differences: fastbce must equal
``fastbce_expected`` (made by another real library call, named in the case) and
must not equal the library value.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import fastbce

GOLDEN = Path(__file__).resolve().parent / "golden" / "golden.json"
DATA = json.loads(GOLDEN.read_text())
CASES = DATA["cases"]

# Tolerances: |got - expected| <= RTOL*|expected| (+ ATOL_X*(1 + |x|) for elementwise logits).
#
# float32, RTOL 2e-6 (about 17 ulp of 1.19e-7): both sides work in float32.  fastbce's
#   log/log1p/exp and the library's each carry a few ulp per element, label smoothing
#   rounds y' in float32, and the libraries sum their reductions in float32 (<= 48 terms)
#   while fastbce accumulates in float64.  The generator checks every library value
#   against SPEC section 1 evaluated in float64: the worst is 0.11 of this tolerance, so
#   the rest of the budget is left for fastbce's own float32 rounding.
# float64, RTOL 1e-12 (about 4500 ulp of 2.2e-16): both sides work in float64; worst
#   library value seen by the generator is 0.07 of this tolerance.
# ATOL_X = 4 eps: the elementwise logit formulas of TF/torch ((1-y)*x + softplus(-x) and
#   max(x,0) - x*y + log1p(exp(-|x|))) subtract terms of size |x|; when the true loss is
#   ~0 (e.g. x = -50, y = 0 in the weighted form) the absolute rounding error is ~eps*|x|,
#   and either side may use the other algebraic form.  Reductions get no atol.
RTOL = {"float32": 2e-6, "float64": 1e-12}
ATOL_X = {
    "float32": 4 * float(np.finfo(np.float32).eps),
    "float64": 4 * float(np.finfo(np.float64).eps),
}

# A documented difference must be far outside the tolerance, not a rounding accident.
DIFFER_FACTOR = 100.0


def _inputs(case):
    dtype = np.dtype(case["dtype"])
    y_true = np.asarray(case["y_true"], dtype=np.dtype(case.get("y_true_dtype", case["dtype"])))
    y_pred = np.asarray(case["y_pred"], dtype=dtype)
    kwargs = {}
    for key, value in case["fastbce"]["kwargs"].items():
        kwargs[key] = np.asarray(value, dtype=dtype) if isinstance(value, list) else value
    if "sample_weight" in case:
        kwargs["sample_weight"] = np.asarray(case["sample_weight"], dtype=dtype)
    return y_true, y_pred, kwargs


def _run(case):
    y_true, y_pred, kwargs = _inputs(case)
    copies = [
        a.copy()
        for a in (y_true, y_pred) + tuple(v for v in kwargs.values() if isinstance(v, np.ndarray))
    ]
    fn = getattr(fastbce, case["fastbce"]["function"])
    got = fn(y_true, y_pred, **kwargs)
    # SPEC section 2/3: inputs are never modified.
    after = [y_true, y_pred] + [v for v in kwargs.values() if isinstance(v, np.ndarray)]
    for before, now in zip(copies, after, strict=True):
        np.testing.assert_array_equal(before, now)

    reduction = kwargs.get("reduction", "mean")
    if reduction == "none":
        got = np.asarray(got)
        assert got.shape == y_pred.shape, (got.shape, y_pred.shape)
        got = got.astype(np.float64)
    else:
        assert isinstance(got, float), f"reductions return a Python float, got {type(got)}"
        got = np.float64(got)
    if case["compare"] == "mean_last_axis":
        got = got.mean(axis=-1)
    return got * case.get("scale", 1.0), y_pred


def _tolerance(case, expected, y_pred):
    dtype = case["dtype"]
    tol = RTOL[dtype] * np.abs(expected)
    if case["compare"] == "elementwise":
        x = (
            np.abs(y_pred.astype(np.float64))
            if case["fastbce"]["kwargs"].get("from_logits")
            else 0.0
        )
        tol = tol + ATOL_X[dtype] * (1.0 + x)
    return tol


def _describe(case, got, expected):
    err = np.abs(got - expected)
    i = np.unravel_index(np.argmax(err), np.shape(err)) if np.ndim(err) else ()
    return (
        f"{case['id']}: {case['call']}\n"
        f"  fastbce.{case['fastbce']['function']}(**{case['fastbce']['kwargs']})\n"
        f"  worst at {i}: fastbce {np.asarray(got)[i]!r} vs expected {np.asarray(expected)[i]!r}"
    )


@pytest.mark.usefixtures("simd_target")
@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_golden(case):
    got, y_pred = _run(case)
    library = np.asarray(case["expected"], dtype=np.float64)
    assert np.shape(got) == library.shape

    etd = case.get("expected_to_differ")
    want = library if etd is None else np.asarray(etd["fastbce_expected"], dtype=np.float64)
    tol = _tolerance(case, want, y_pred)
    assert not np.any(np.isnan(got)), _describe(case, got, want)
    assert np.all(np.abs(got - want) <= tol), _describe(case, got, want)

    if etd is not None:
        # The documented difference: the library value is far from fastbce's.
        gap = np.max(np.abs(got - library))
        assert gap > DIFFER_FACTOR * np.max(tol), (
            f"{case['id']}: documented as differing from {case['library']} ({etd['reason']}), "
            f"but fastbce {got!r} is within {gap:.3g} of the library value {library!r}"
        )


def test_golden_file_is_complete():
    """The data file records where it came from and covers every library SPEC names."""
    versions = DATA["versions"]
    for lib in ("keras", "tensorflow", "torch", "jax", "optax", "scikit-learn", "numpy"):
        assert versions.get(lib), lib
    ids = [c["id"] for c in CASES]
    assert len(ids) == len(set(ids))
    assert {c["library"] for c in CASES} == {"keras", "tensorflow", "torch", "optax", "sklearn"}
    assert {c["dtype"] for c in CASES} == {"float32", "float64"}
    assert any("expected_to_differ" in c for c in CASES)
    assert GOLDEN.stat().st_size < 1_000_000
