"""Property tests: for random shapes, dtypes, layouts and options, the reductions agree with
reduction="none" followed by NumPy, and "none" agrees with the float64 reference."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import fastbce
from reference import bce_reference

pytestmark = pytest.mark.usefixtures("simd_target")

shapes = hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=9)
pred_dtypes = st.sampled_from([np.float16, np.float32, np.float64])
label_dtypes = st.sampled_from([np.bool_, np.uint8, np.int8, np.int32, np.float32, np.float64])


@st.composite
def problems(draw):
    shape = draw(shapes)
    pdt = draw(pred_dtypes)
    from_logits = draw(st.booleans())
    soft = draw(st.booleans())
    ldt = draw(label_dtypes) if not soft else draw(st.sampled_from([np.float32, np.float64]))
    width = 16 if pdt == np.float16 else 32
    if from_logits:  # any logit, infinities included
        elements = st.floats(allow_nan=False, width=width)
    else:
        elements = st.floats(0, 1, width=width)
    pred = draw(hnp.arrays(pdt, shape, elements=elements))
    if soft:
        y = draw(hnp.arrays(ldt, shape, elements=st.floats(0, 1, width=32)))
    else:
        y = draw(hnp.arrays(ldt, shape, elements=st.integers(0, 1))).astype(ldt)
    options = {"from_logits": from_logits}
    if draw(st.booleans()):
        options["label_smoothing"] = draw(st.floats(0, 1))
    if draw(st.booleans()):
        options["gamma"] = draw(st.floats(0, 5))
    if draw(st.booleans()):
        options["alpha"] = draw(st.floats(0, 1))
    work_tiny = np.finfo(np.float64 if pdt == np.float64 else np.float32).tiny
    if not from_logits and options.get("gamma", 0.0) > 0.0:
        if 0.0 < options.get("label_smoothing", 0.0) / 2 < work_tiny:
            # (documented, docs/semantics.md: such a smoothing is left out of the focal factor,
            # which at a probability of exactly 0 or 1 is then 0, not (s/2)^gamma)
            del options["label_smoothing"]
    kind = draw(
        st.sampled_from(["none", "scalar", "element", "row"] if len(shape) else ["none", "scalar"])
    )
    w_elems = st.floats(0, 10, width=32)
    if kind == "scalar":
        options["sample_weight"] = draw(w_elems)
    elif kind == "element":
        options["sample_weight"] = draw(hnp.arrays(np.float32, shape, elements=w_elems))
    elif kind == "row":
        options["sample_weight"] = draw(hnp.arrays(np.float64, shape[:1], elements=w_elems))
    if len(shape) and draw(st.booleans()):
        options["pos_weight"] = draw(hnp.arrays(np.float64, shape[-1:], elements=st.floats(0, 5)))
    transpose = draw(st.booleans()) and len(shape) >= 2
    return y, pred, options, transpose


@given(problems())
def test_reductions_agree_with_elementwise(problem):
    y, pred, options, transpose = problem
    if transpose:  # same data read through non-contiguous views
        y, pred = y.T.copy().T, pred.T.copy().T
    elementwise = fastbce.binary_crossentropy(y, pred, reduction="none", **options)
    assert elementwise.shape == pred.shape
    assert not np.isnan(elementwise).any()
    e64 = elementwise.astype(np.float64)
    total = fastbce.binary_crossentropy(y, pred, reduction="sum", **options)
    rtol = 1e-12 if pred.dtype == np.float64 else 1e-6
    np.testing.assert_allclose(total, e64.sum(), rtol=rtol, atol=1e-300)
    mean = fastbce.binary_crossentropy(y, pred, reduction="mean", **options)
    if pred.size:
        np.testing.assert_allclose(mean, e64.mean(), rtol=rtol, atol=1e-300)
    else:
        assert np.isnan(mean)
    with np.errstate(over="ignore"):  # a loss beyond float32's range is inf there
        want = bce_reference(y, pred, **options).astype(elementwise.dtype)
    tol = 1e-12 if pred.dtype == np.float64 else 1e-5
    np.testing.assert_allclose(elementwise, want, rtol=tol, atol=1e-30)


@given(problems(), st.integers(1, 4))
def test_threads_and_layout_do_not_change_results(problem, threads):
    y, pred, options, _ = problem
    base = fastbce.binary_crossentropy(y, pred, reduction="sum", **options)
    again = fastbce.binary_crossentropy(
        np.asfortranarray(y), np.asfortranarray(pred), reduction="sum", threads=threads, **options
    )
    if pred.ndim < 2:
        assert repr(base) == repr(again)
    else:
        np.testing.assert_allclose(again, base, rtol=1e-12 if pred.dtype == np.float64 else 1e-6)
