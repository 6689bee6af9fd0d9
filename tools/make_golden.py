#!/usr/bin/env python3
"""Make the golden values that tests/test_golden.py checks fastbce against.

Every expected value in ``tests/golden/golden.json`` was computed by the real
library named in the case (Keras 3, TensorFlow, PyTorch, optax/JAX,
scikit-learn); nothing in the data is computed by fastbce or by a formula of
ours.  The test suite reads the file and needs only numpy + pytest + fastbce.

How to regenerate
-----------------
The generator needs its own virtualenv (outside the repository)::

    python3 -m venv /work/venvs/golden
    /work/venvs/golden/bin/pip install torch==2.13.0    # EXACT pin: local CPU wheel
    echo torch==2.13.0 > /tmp/c.txt                      # keep every later install on it
    /work/venvs/golden/bin/pip install -c /tmp/c.txt tensorflow-cpu jax jaxlib optax \\
        scikit-learn numpy
    /work/venvs/golden/bin/python tools/make_golden.py   # writes tests/golden/golden.json

Never install torch unpinned (or anything that pulls a newer torch): it brings
gigabytes of CUDA packages.  The script is deterministic (fixed seeds, fixed
special values); ``--check`` regenerates in memory and exits 1 if the stored
file differs.

Versions used for the stored file (also stored in the file, key "versions"):
    Python 3.11.7, numpy 2.4.6, keras 3.15.1 (backend "tensorflow" unless a
    case says otherwise), tensorflow-cpu 2.21.0, torch 2.13.0+cpu,
    jax 0.10.2, jaxlib 0.10.2, optax 0.2.8, scikit-learn 1.9.1.

torchvision
-----------
torchvision is NOT used.  The only wheels reachable here are CUDA builds; the
one built for torch 2.13 (torchvision 0.28.0, ``0.28.0+cu130``) installs with
``--no-deps`` but ``import torchvision`` fails: its ``_C.so`` links against
``libc10_cuda.so``/``libtorch_cuda.so``, which the CPU torch wheel does not
have, so registering ``torchvision::nms`` raises ``RuntimeError: operator
torchvision::nms does not exist`` before ``torchvision.ops`` is reachable.  It
was not forced.  ``torchvision.ops.sigmoid_focal_loss`` computes, per element,
``ce = binary_cross_entropy_with_logits(x, y)``, ``p_t = p*y + (1-p)*(1-y)``,
``loss = ce * (1-p_t)**gamma`` and, when ``alpha >= 0``,
``loss *= alpha*y + (1-alpha)*(1-y)`` (pytorch/vision,
torchvision/ops/focal_loss.py).  ``optax.sigmoid_focal_loss(logits, labels,
alpha, gamma)`` (optax/losses/_classification.py, 0.2.8) has the same formula
(``alpha=None`` there plays the role of torchvision's ``alpha=-1``), computed in
log space, so the optax cases below stand for both.  torchvision's
``reduction="mean"/"sum"`` are plain ``loss.mean()``/``loss.sum()`` =
fastbce ``"mean"``/``"sum"``.

Data format
-----------
``{"format_version", "generator", "versions", "notes", "cases": [...]}``; each case:

``id``                readable pytest id.
``library``           keras | tensorflow | torch | optax | sklearn.
``call``              the library call in words, exactly as it was made.
``dtype``             float32 or float64: dtype of y_pred (and of y_true and
                      sample_weight unless ``y_true_dtype`` says otherwise).
``y_true``, ``y_pred``, ``sample_weight`` (optional)
                      nested lists, the arrays to give fastbce.  float32 values are
                      written as their shortest round-trip decimal, so
                      ``np.asarray(v, dtype)`` restores the exact bits.
``fastbce``           ``{"function": ..., "kwargs": {...}}`` that must reproduce the
                      library.  Array-valued kwargs (pos_weight) are lists to be
                      converted to ``dtype``.
``compare``           "scalar" (a reduction), "elementwise" (reduction="none"), or
                      "mean_last_axis" (fastbce "none" output averaged over the last
                      axis: what Keras' reduction="none" returns).
``scale``             optional: expected == scale * fastbce result (Keras
                      reduction="sum" on (batch, classes) sums per-row *means*).
``expected``          the library's output (a float, or nested lists).
``expected_to_differ`` optional: {"reason", "fastbce_expected", "fastbce_expected_call"}.
                      fastbce must equal ``fastbce_expected`` (made by another real
                      library call, stated) and must NOT equal ``expected``.
``note``              optional free text.

Mapping rules used (SPEC.md sections 1 and 2)
---------------------------------------------
* Keras ``reduction="sum_over_batch_size"`` == fastbce ``"mean"``.  Keras' loss
  functions first average over the last axis, then multiply by the per-row
  sample weight and divide by the number of rows: for (batch, classes) input
  that is sum(w*ce)/(batch*classes) = fastbce "mean" with the 1-D per-row
  ``sample_weight``.  (keras/src/losses/losses.py ``binary_crossentropy`` /
  ``binary_focal_crossentropy`` return ``ops.mean(..., axis=-1)``;
  keras/src/losses/loss.py ``reduce_values`` divides by the number of loss
  values.)
* Keras ``reduction="none"`` returns per-row means, shape (batch,): compared as
  "mean_last_axis" of fastbce ``reduction="none"`` (with the same sample_weight).
  Elementwise (per element) comparisons are made against ``tf.nn.*`` instead.
* Keras ``reduction="sum"`` on (batch, 1) == fastbce "sum"; on (batch, classes)
  it is fastbce "sum" / classes (``scale``).
* Keras on 1-D (batch,) input: the loss function averages over the only axis,
  giving one scalar before the sample weight is applied, so
  ``BinaryCrossentropy()(y, p, sample_weight=w)`` == mean(ce) * mean(w), not
  sum(w*ce)/batch, and reduction="sum"/"none" return that same mean.  Per-row
  weights in Keras need (batch, 1) input (the shape a Keras model outputs).
  One case records this as ``expected_to_differ``; the others use (batch, 1).
* ``torch`` reduction "mean" divides the weighted sum by the number of elements
  (aten/src/ATen/native/Loss.cpp: ``apply_loss_reduction`` -> ``mean()``) ==
  fastbce "mean".  torch ``weight`` of shape (batch, 1) == fastbce 1-D
  ``sample_weight`` of length batch; of full shape == full-shape sample_weight.
  torch ``pos_weight`` of shape (classes,) == fastbce ``pos_weight`` (classes,).
* ``sklearn.metrics.log_loss(y, p, sample_weight=w)`` == fastbce
  ``reduction="weighted_mean", epsilon=np.finfo(dtype).eps``; sklearn clips
  the two columns [1-p, p] at eps (sklearn/metrics/_classification.py
  ``_log_loss``), which gives the same numbers as clipping p.
  ``normalize=False`` == fastbce "sum".
* ``optax.sigmoid_focal_loss`` == fastbce ``binary_focal_crossentropy(
  from_logits=True, gamma, alpha, reduction="none")``; gamma=0 included.

Keras focal loss with from_logits=True: backend dependent
---------------------------------------------------------
``binary_focal_crossentropy`` does ``y_pred = ops.sigmoid(y_pred)`` then
``ops.binary_crossentropy(..., from_logits=False)``.  With the TensorFlow
backend ``ops.sigmoid`` tags its output with ``_keras_logits`` and
``binary_crossentropy`` recovers the logits (``_get_logits`` in
keras/src/backend/tensorflow/nn.py), so the cross-entropy is exact and does not
saturate.  With the JAX and torch backends the probability is clipped to
[1e-7, 1-1e-7] and the loss saturates (16.118 for y=1, x=-20; 15.942 for y=0,
x=20 in float32).  The normal Keras cases use the TensorFlow backend (and
include |x| up to 30 for the focal loss); the saturation is recorded as
``expected_to_differ`` cases computed in a subprocess with KERAS_BACKEND=jax
and KERAS_BACKEND=torch.

Cases (ids are prefixed by library)
-----------------------------------
keras_bce_*         BinaryCrossentropy, from_logits False/True, label_smoothing 0/0.1,
                    1-D, (B,1) and (B,C) input, with/without per-row sample_weight,
                    reductions sum_over_batch_size/sum/none, float32 and float64;
                    probabilities include exactly 0 and 1, 1e-8, 5e-8, 1e-7,
                    1-1e-7 (0.99999988 in float32) and 0.99999994 (clipped).
keras_focal_*       BinaryFocalCrossentropy grid: gamma 2.0/0.5 x
                    (apply_class_balancing False | True with alpha 0.25 | 0.4) x
                    from_logits False/True x label_smoothing 0/0.1, each without and
                    with sample_weight; plus 1-D, float64, large-logit (TF backend,
                    exact) and the saturation cases (JAX/torch backends, expected_to_differ).
tf_sigmoid_ce_*     tf.nn.sigmoid_cross_entropy_with_logits elementwise, hard and soft
                    labels, logits 0, +-50, +-1e4, float32 and float64.
tf_weighted_ce_*    tf.nn.weighted_cross_entropy_with_logits, scalar pos_weight (1-D)
                    and per-class pos_weight vector (2-D), float32 and float64.
torch_bce_logits_*  F.binary_cross_entropy_with_logits, reductions none/mean/sum x
                    (no weight | full-shape weight | (B,1) weight + pos_weight (C,) |
                    pos_weight only), float32, plus float64.
optax_focal_*       optax.sigmoid_focal_loss, alpha None/0.25 x gamma 0/0.5/2, float32,
                    soft labels, plus float64.
sklearn_log_loss_*  log_loss 1-D binary, float64/float32, with/without sample_weight,
                    normalize=False, integer labels, probabilities exactly 0 and 1.

Self-check: the generator also evaluates SPEC.md section 1 in float64 (numpy,
its own code, used only here and never stored) and refuses to write the file if
a library value is farther from it than the test tolerance allows, unless the
case is flagged expected_to_differ.  With the versions above the worst library
value uses 0.11 of the float32 tolerance and 0.07 of the float64 one, leaving the
rest for fastbce's own rounding.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")

import numpy as np  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
OUT = REPO / "tests" / "golden" / "golden.json"

# Tolerances the test uses (tests/test_golden.py repeats them with reasons).
RTOL = {"float32": 2e-6, "float64": 1e-12}
ATOL_X = {
    "float32": 4 * float(np.finfo(np.float32).eps),
    "float64": 4 * float(np.finfo(np.float64).eps),
}

B, C = 8, 5  # 2-D shape (batch, classes)
N1 = 24  # 1-D length

# ----------------------------------------------------------------------------------
# Inputs
# ----------------------------------------------------------------------------------
PROB_SPECIALS = [0.0, 1.0, 1e-8, 5e-8, 1e-7, 1 - 1e-7, 1 - 6e-8, 0.5]  # 1-6e-8 = 0.99999994 in f32
LOGIT_SPECIALS = [0.0, 50.0, -50.0, 1e4, -1e4, 20.0, -20.0, 1e-3]


def _labels(rng, shape, soft=False):
    if soft:
        y = rng.uniform(0.0, 1.0, size=shape)
        y.flat[:4] = [0.0, 1.0, 0.0, 1.0]
        return y
    return rng.integers(0, 2, size=shape).astype(np.float64)


def probs_case(seed, shape, dtype, soft=False, specials=True):
    """Hard (or soft) labels and probabilities, the specials with both labels."""
    rng = np.random.default_rng(seed)
    y = _labels(rng, shape, soft)
    p = rng.uniform(0.0, 1.0, size=shape)
    if specials:
        n = len(PROB_SPECIALS)
        flat_p, flat_y = p.reshape(-1), y.reshape(-1)
        for i, v in enumerate(PROB_SPECIALS):
            flat_p[2 * i], flat_p[2 * i + 1] = v, v
            if not soft:
                flat_y[2 * i], flat_y[2 * i + 1] = 0.0, 1.0
        assert 2 * n <= flat_p.size
    return y.astype(dtype), p.astype(dtype)


def logits_case(seed, shape, dtype, soft=False, scale=3.0, specials=(), clip=None):
    rng = np.random.default_rng(seed)
    y = _labels(rng, shape, soft)
    x = rng.normal(0.0, scale, size=shape)
    if clip is not None:
        x = np.clip(x, -clip, clip)
    flat_x, flat_y = x.reshape(-1), y.reshape(-1)
    for i, v in enumerate(specials):
        flat_x[2 * i], flat_x[2 * i + 1] = v, v
        if not soft:
            flat_y[2 * i], flat_y[2 * i + 1] = 0.0, 1.0
    return y.astype(dtype), x.astype(dtype)


def row_weights(seed, n, dtype):
    rng = np.random.default_rng(seed)
    w = rng.uniform(0.0, 3.0, size=n)
    w[0] = 0.0  # a zero weight
    w[1] = 1.0
    return w.astype(dtype)


def full_weights(seed, shape, dtype):
    rng = np.random.default_rng(seed)
    w = rng.uniform(0.0, 2.0, size=shape)
    w.flat[0] = 0.0
    return w.astype(dtype)


# ----------------------------------------------------------------------------------
# JSON encoding: float32 as shortest round-trip decimal, float64 as repr.
# ----------------------------------------------------------------------------------
def enc(a, dtype=None):
    a = np.asarray(a)
    if dtype is not None:
        a = a.astype(dtype)
    if a.dtype == np.float32:
        conv = lambda v: float(str(np.float32(v)))  # noqa: E731
    elif a.dtype.kind == "f":
        conv = float
    elif a.dtype.kind in "iub":
        conv = int
    else:
        raise TypeError(a.dtype)
    if a.ndim == 0:
        v = conv(a[()])
        if not np.isfinite(v):
            raise ValueError("non-finite value in golden data")
        return v
    out = [enc(v) for v in a] if a.ndim > 1 else [conv(v) for v in a]
    if a.ndim == 1 and not all(np.isfinite(out)):
        raise ValueError("non-finite value in golden data")
    return out


# ----------------------------------------------------------------------------------
# SPEC.md section 1 in float64: used only for the self-check, never stored.
# ----------------------------------------------------------------------------------
def _softplus(t):
    return np.maximum(t, 0.0) + np.log1p(np.exp(-np.abs(t)))


def spec_elementwise(
    y_true,
    y_pred,
    dtype,
    *,
    from_logits=False,
    epsilon=1e-7,
    label_smoothing=0.0,
    sample_weight=None,
    pos_weight=None,
    gamma=0.0,
    alpha=None,
):
    wp = np.float64 if dtype == "float64" else np.float32
    y = np.asarray(y_true, np.float64)
    v = np.asarray(y_pred, np.float64)
    y = y * (1.0 - label_smoothing) + label_smoothing / 2.0
    if from_logits:
        logp, log1mp = -_softplus(-v), -_softplus(v)
        logp_u, log1mp_u = logp, log1mp
    else:
        pc = np.clip(np.asarray(y_pred, wp), wp(epsilon), wp(1) - wp(epsilon)).astype(np.float64)
        logp, log1mp = np.log(pc), np.log1p(-pc)
        with np.errstate(divide="ignore"):
            logp_u, log1mp_u = np.log(v), np.log1p(-v)
    q = 1.0 if pos_weight is None else np.asarray(pos_weight, np.float64)
    ce = -(q * y * logp + (1.0 - y) * log1mp)
    if gamma > 0:
        with np.errstate(divide="ignore"):
            l1mpt = np.logaddexp(np.log(y) + log1mp_u, np.log1p(-y) + logp_u)
        ce = ce * np.exp(gamma * l1mpt)
    if alpha is not None:
        ce = ce * (alpha * y + (1 - alpha) * (1 - y))
    w = None
    if sample_weight is not None:
        w = np.asarray(sample_weight, np.float64)
        if w.ndim == 1 and ce.ndim > 1:
            w = w.reshape((-1,) + (1,) * (ce.ndim - 1))
        w = np.broadcast_to(w, ce.shape)
        ce = ce * w
    return ce, w


def spec_value(case):
    dtype = case["dtype"]
    kw = dict(case["fastbce"]["kwargs"])
    fn = case["fastbce"]["function"]
    if fn == "binary_focal_crossentropy":
        kw.setdefault("gamma", 2.0)
    red = kw.pop("reduction", "mean")
    kw.pop("nan_policy", None)
    ce, w = spec_elementwise(
        case["y_true"], case["y_pred"], dtype, sample_weight=case.get("sample_weight"), **kw
    )
    if red == "none":
        out = ce
    elif red == "sum":
        out = ce.sum()
    elif red == "mean":
        out = ce.mean()
    elif red == "weighted_mean":
        out = ce.sum() / (w.sum() if w is not None else ce.size)
    else:
        raise ValueError(red)
    if case["compare"] == "mean_last_axis":
        out = out.mean(axis=-1)
    return np.asarray(out) * case.get("scale", 1.0)


def check_close(case, got, want):
    """Same rule as tests/test_golden.py."""
    dtype = case["dtype"]
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    tol = RTOL[dtype] * np.abs(want)
    if case["compare"] == "elementwise":
        x = (
            np.abs(np.asarray(case["y_pred"], np.float64))
            if case["fastbce"]["kwargs"].get("from_logits")
            else 0.0
        )
        tol = tol + ATOL_X[dtype] * (1.0 + x)
    return np.abs(got - want) <= tol


# ----------------------------------------------------------------------------------
# Case building
# ----------------------------------------------------------------------------------
CASES: list[dict] = []


def add(
    cid,
    library,
    call,
    dtype,
    y_true,
    y_pred,
    expected,
    function,
    kwargs,
    *,
    sample_weight=None,
    compare="scalar",
    scale=None,
    note=None,
    y_true_dtype=None,
    expected_to_differ=None,
):
    case = {"id": cid, "library": library, "call": call, "dtype": dtype}
    if y_true_dtype is not None:
        case["y_true_dtype"] = y_true_dtype
        case["y_true"] = enc(np.asarray(y_true).astype(y_true_dtype))
    else:
        case["y_true"] = enc(y_true, dtype)
    case["y_pred"] = enc(y_pred, dtype)
    if sample_weight is not None:
        case["sample_weight"] = enc(sample_weight, dtype)
    kw = {}
    for k, v in kwargs.items():
        kw[k] = enc(v, dtype) if isinstance(v, np.ndarray) else v
    case["fastbce"] = {"function": function, "kwargs": kw}
    case["compare"] = compare
    if scale is not None:
        case["scale"] = scale
    exp = np.asarray(expected)
    case["expected"] = enc(exp)  # float32 outputs as shortest float32 decimal, float64 as repr
    if expected_to_differ is not None:
        etd = dict(expected_to_differ)
        etd["fastbce_expected"] = enc(np.asarray(etd["fastbce_expected"], np.float64))
        case["expected_to_differ"] = etd
    if note:
        case["note"] = note
    if any(c["id"] == cid for c in CASES):
        raise ValueError("duplicate id " + cid)
    CASES.append(case)


# ---------------------------------------------------------------- Keras (TF backend)
def keras_cases():
    import keras

    assert keras.backend.backend() == "tensorflow", keras.backend.backend()

    def run(cls, kwargs, y, p, w, dtype):
        loss = getattr(keras.losses, cls)(**kwargs, dtype=dtype)
        out = loss(y, p) if w is None else loss(y, p, sample_weight=w)
        return np.asarray(out)

    def call_text(cls, kwargs, dtype, w, shape):
        args = ", ".join(f"{k}={v!r}" for k, v in kwargs.items())
        sw = ", sample_weight=sample_weight" if w is not None else ""
        return (
            f"keras.losses.{cls}({args}, dtype='{dtype}')(y_true, y_pred{sw}); "
            f"y_true/y_pred shape {tuple(shape)}"
            + (f", sample_weight shape {tuple(np.shape(w))}" if w is not None else "")
        )

    seed = 100
    # --- BinaryCrossentropy, sum_over_batch_size, unweighted, 1-D and 2-D
    for from_logits in (False, True):
        for ls in (0.0, 0.1):
            for shape_name, shape in (("1d", (N1,)), ("2d", (B, C))):
                seed += 1
                dtype = "float32"
                if from_logits:
                    y, p = logits_case(seed, shape, dtype, specials=LOGIT_SPECIALS)
                else:
                    y, p = probs_case(seed, shape, dtype)
                kw = dict(
                    from_logits=from_logits, label_smoothing=ls, reduction="sum_over_batch_size"
                )
                add(
                    f"keras_bce_{'logits' if from_logits else 'probs'}_ls{ls:g}_{shape_name}_f32",
                    "keras",
                    call_text("BinaryCrossentropy", kw, dtype, None, shape),
                    dtype,
                    y,
                    p,
                    run("BinaryCrossentropy", kw, y, p, None, dtype),
                    "binary_crossentropy",
                    dict(from_logits=from_logits, label_smoothing=ls, reduction="mean"),
                )
    # --- BinaryCrossentropy with per-row sample_weight: (B,C) and (B,1)
    for from_logits, ls, shape_name, shape in (
        (False, 0.0, "2d", (B, C)),
        (True, 0.1, "2d", (B, C)),
        (False, 0.1, "col", (N1, 1)),
        (True, 0.0, "col", (N1, 1)),
    ):
        seed += 1
        dtype = "float32"
        y, p = (
            logits_case(seed, shape, dtype, specials=LOGIT_SPECIALS)
            if from_logits
            else probs_case(seed, shape, dtype)
        )
        w = row_weights(seed, shape[0], dtype)
        kw = dict(from_logits=from_logits, label_smoothing=ls, reduction="sum_over_batch_size")
        add(
            f"keras_bce_{'logits' if from_logits else 'probs'}_ls{ls:g}_{shape_name}_rowweight_f32",
            "keras",
            call_text("BinaryCrossentropy", kw, dtype, w, shape),
            dtype,
            y,
            p,
            run("BinaryCrossentropy", kw, y, p, w, dtype),
            "binary_crossentropy",
            dict(from_logits=from_logits, label_smoothing=ls, reduction="mean"),
            sample_weight=w,
        )
    # --- reduction="sum"
    seed += 1
    y, p = probs_case(seed, (N1, 1), "float32")
    w = row_weights(seed, N1, "float32")
    kw = dict(from_logits=False, label_smoothing=0.0, reduction="sum")
    add(
        "keras_bce_probs_col_rowweight_sum_f32",
        "keras",
        call_text("BinaryCrossentropy", kw, "float32", w, (N1, 1)),
        "float32",
        y,
        p,
        run("BinaryCrossentropy", kw, y, p, w, "float32"),
        "binary_crossentropy",
        dict(reduction="sum"),
        sample_weight=w,
    )
    seed += 1
    y, p = logits_case(seed, (B, C), "float32", specials=LOGIT_SPECIALS)
    kw = dict(from_logits=True, label_smoothing=0.1, reduction="sum")
    add(
        "keras_bce_logits_ls0.1_2d_sum_f32",
        "keras",
        call_text("BinaryCrossentropy", kw, "float32", None, (B, C)),
        "float32",
        y,
        p,
        run("BinaryCrossentropy", kw, y, p, None, "float32"),
        "binary_crossentropy",
        dict(from_logits=True, label_smoothing=0.1, reduction="sum"),
        scale=1.0 / C,
        note=(
            "Keras 'sum' on (batch, classes) sums the per-row means over classes"
            " = fastbce sum / classes"
        ),
    )
    # --- reduction="none" (per-row means)
    seed += 1
    y, p = probs_case(seed, (B, C), "float32")
    w = row_weights(seed, B, "float32")
    kw = dict(from_logits=False, label_smoothing=0.0, reduction="none")
    add(
        "keras_bce_probs_2d_rowweight_none_f32",
        "keras",
        call_text("BinaryCrossentropy", kw, "float32", w, (B, C)),
        "float32",
        y,
        p,
        run("BinaryCrossentropy", kw, y, p, w, "float32"),
        "binary_crossentropy",
        dict(reduction="none"),
        sample_weight=w,
        compare="mean_last_axis",
        note="Keras 'none' returns one value per row (mean over the last axis)",
    )
    seed += 1
    y, p = logits_case(seed, (N1, 1), "float32", specials=LOGIT_SPECIALS)
    kw = dict(from_logits=True, label_smoothing=0.1, reduction="none")
    add(
        "keras_bce_logits_ls0.1_col_none_f32",
        "keras",
        call_text("BinaryCrossentropy", kw, "float32", None, (N1, 1)),
        "float32",
        y,
        p,
        run("BinaryCrossentropy", kw, y, p, None, "float32"),
        "binary_crossentropy",
        dict(from_logits=True, label_smoothing=0.1, reduction="none"),
        compare="mean_last_axis",
    )
    # --- float64
    for from_logits in (False, True):
        seed += 1
        dtype = "float64"
        y, p = (
            logits_case(seed, (B, C), dtype, specials=LOGIT_SPECIALS)
            if from_logits
            else probs_case(seed, (B, C), dtype)
        )
        w = row_weights(seed, B, dtype)
        kw = dict(from_logits=from_logits, label_smoothing=0.1, reduction="sum_over_batch_size")
        add(
            f"keras_bce_{'logits' if from_logits else 'probs'}_ls0.1_2d_rowweight_f64",
            "keras",
            call_text("BinaryCrossentropy", kw, dtype, w, (B, C)),
            dtype,
            y,
            p,
            run("BinaryCrossentropy", kw, y, p, w, dtype),
            "binary_crossentropy",
            dict(from_logits=from_logits, label_smoothing=0.1, reduction="mean"),
            sample_weight=w,
        )
    # --- 1-D with sample_weight: Keras gives mean(ce) * mean(w)
    seed += 1
    y, p = probs_case(seed, (N1,), "float32")
    w = row_weights(seed, N1, "float32")
    kw = dict(from_logits=False, label_smoothing=0.0, reduction="sum_over_batch_size")
    lib = run("BinaryCrossentropy", kw, y, p, w, "float32")
    per_row = run("BinaryCrossentropy", kw, y[:, None], p[:, None], w, "float32")
    add(
        "keras_bce_probs_1d_rowweight_f32",
        "keras",
        call_text("BinaryCrossentropy", kw, "float32", w, (N1,)),
        "float32",
        y,
        p,
        lib,
        "binary_crossentropy",
        dict(reduction="mean"),
        sample_weight=w,
        expected_to_differ={
            "reason": (
                "Keras averages a 1-D (batch,) input over its only axis before applying "
                "sample_weight, "
                "so it returns mean(ce) * mean(w); fastbce weights each row: sum(w*ce)/batch"
            ),
            "fastbce_expected": float(per_row),
            "fastbce_expected_call": (
                "the same Keras call on y_true[:, None], y_pred[:, None] (shape (batch, 1))"
            ),
        },
    )

    # --- BinaryFocalCrossentropy grid on (B, C)
    balancing = [(False, None), (True, 0.25), (True, 0.4)]
    for weighted in (False, True):
        for gamma in (2.0, 0.5):
            for acb, alpha in balancing:
                for from_logits in (False, True):
                    for ls in (0.0, 0.1):
                        seed += 1
                        dtype = "float32"
                        if from_logits:
                            y, p = logits_case(seed, (B, C), dtype, scale=3.0, clip=7.5)
                        else:
                            y, p = probs_case(seed, (B, C), dtype)
                        w = row_weights(seed, B, dtype) if weighted else None
                        kw = dict(
                            apply_class_balancing=acb,
                            alpha=alpha if acb else 0.25,
                            gamma=gamma,
                            from_logits=from_logits,
                            label_smoothing=ls,
                            reduction="sum_over_batch_size",
                        )
                        cid = (
                            f"keras_focal_g{gamma:g}_"
                            + (f"a{alpha:g}" if acb else "nobal")
                            + f"_{'logits' if from_logits else 'probs'}_ls{ls:g}"
                            + ("_rowweight" if weighted else "")
                            + "_f32"
                        )
                        add(
                            cid,
                            "keras",
                            call_text("BinaryFocalCrossentropy", kw, dtype, w, (B, C)),
                            dtype,
                            y,
                            p,
                            run("BinaryFocalCrossentropy", kw, y, p, w, dtype),
                            "binary_focal_crossentropy",
                            dict(
                                gamma=gamma,
                                alpha=alpha if acb else None,
                                from_logits=from_logits,
                                label_smoothing=ls,
                                reduction="mean",
                            ),
                            sample_weight=w,
                        )
    # 1-D focal, unweighted
    for from_logits in (False, True):
        seed += 1
        y, p = (
            logits_case(seed, (N1,), "float32", clip=7.5)
            if from_logits
            else probs_case(seed, (N1,), "float32")
        )
        kw = dict(
            apply_class_balancing=True,
            alpha=0.25,
            gamma=2.0,
            from_logits=from_logits,
            label_smoothing=0.0,
            reduction="sum_over_batch_size",
        )
        add(
            f"keras_focal_g2_a0.25_{'logits' if from_logits else 'probs'}_1d_f32",
            "keras",
            call_text("BinaryFocalCrossentropy", kw, "float32", None, (N1,)),
            "float32",
            y,
            p,
            run("BinaryFocalCrossentropy", kw, y, p, None, "float32"),
            "binary_focal_crossentropy",
            dict(gamma=2.0, alpha=0.25, from_logits=from_logits, reduction="mean"),
        )
    # float64 focal
    for from_logits in (False, True):
        seed += 1
        dtype = "float64"
        y, p = (
            logits_case(seed, (B, C), dtype, clip=7.5)
            if from_logits
            else probs_case(seed, (B, C), dtype)
        )
        w = row_weights(seed, B, dtype)
        kw = dict(
            apply_class_balancing=True,
            alpha=0.4,
            gamma=0.5,
            from_logits=from_logits,
            label_smoothing=0.1,
            reduction="sum_over_batch_size",
        )
        add(
            f"keras_focal_g0.5_a0.4_{'logits' if from_logits else 'probs'}_ls0.1_rowweight_f64",
            "keras",
            call_text("BinaryFocalCrossentropy", kw, dtype, w, (B, C)),
            dtype,
            y,
            p,
            run("BinaryFocalCrossentropy", kw, y, p, w, dtype),
            "binary_focal_crossentropy",
            dict(
                gamma=0.5,
                alpha=0.4,
                from_logits=from_logits,
                label_smoothing=0.1,
                reduction="mean",
            ),
            sample_weight=w,
        )
    # large logits with the TF backend: exact (logits recovered through _keras_logits)
    y_big = np.array([[1, 0], [0, 1], [1, 0], [0, 1], [1, 1], [0, 0]], np.float32)
    x_big = np.array([[-20, 20], [20, -20], [-30, 30], [30, -30], [-17, 5], [16.5, -2]], np.float32)
    kw = dict(
        apply_class_balancing=True,
        alpha=0.25,
        gamma=2.0,
        from_logits=True,
        label_smoothing=0.0,
        reduction="sum_over_batch_size",
    )
    add(
        "keras_focal_g2_a0.25_logits_large_tfbackend_f32",
        "keras",
        call_text("BinaryFocalCrossentropy", kw, "float32", None, (6, 2)),
        "float32",
        y_big,
        x_big,
        run("BinaryFocalCrossentropy", kw, y_big, x_big, None, "float32"),
        "binary_focal_crossentropy",
        dict(gamma=2.0, alpha=0.25, from_logits=True, reduction="mean"),
        note=(
            "TensorFlow backend: ops.sigmoid tags its output with _keras_logits and "
            "binary_crossentropy "
            "uses the logits, so |x| = 30 does not saturate (compare the jax/torch backend cases)"
        ),
    )
    return y_big, x_big, kw


def keras_backend_worker():
    """Run in a subprocess with KERAS_BACKEND set: read jobs from stdin, print results."""
    import keras

    jobs = json.load(sys.stdin)
    res = []
    for job in jobs:
        loss = getattr(keras.losses, job["cls"])(**job["kwargs"], dtype=job["dtype"])
        out = loss(np.asarray(job["y_true"], job["dtype"]), np.asarray(job["y_pred"], job["dtype"]))
        res.append(float(np.asarray(out)))
    json.dump(
        {"backend": keras.backend.backend(), "keras": keras.__version__, "results": res}, sys.stdout
    )


def keras_saturation_cases(y_big, x_big, kw):
    import jax
    import jax.numpy as jnp
    import optax

    # fastbce target: optax float64, stable log-space, same formula; mean in float64.
    exact = float(
        np.mean(
            np.asarray(
                optax.sigmoid_focal_loss(
                    jnp.asarray(x_big, jnp.float64),
                    jnp.asarray(y_big, jnp.float64),
                    alpha=0.25,
                    gamma=2.0,
                )
            )
        )
    )
    assert jax.config.jax_enable_x64
    for backend in ("jax", "torch"):
        env = dict(os.environ, KERAS_BACKEND=backend)
        job = [
            {
                "cls": "BinaryFocalCrossentropy",
                "kwargs": kw,
                "dtype": "float32",
                "y_true": y_big.tolist(),
                "y_pred": x_big.tolist(),
            }
        ]
        r = subprocess.run(
            [sys.executable, __file__, "--keras-backend-worker"],
            input=json.dumps(job),
            capture_output=True,
            text=True,
            env=env,
            check=True,
        )
        out = json.loads(r.stdout.strip().splitlines()[-1])
        assert out["backend"] == backend
        VERSIONS[f"keras_backend_{backend}_used_for"] = "keras_focal_*_saturates_* cases"
        args = ", ".join(f"{k}={v!r}" for k, v in kw.items())
        add(
            f"keras_focal_g2_a0.25_logits_large_saturates_{backend}backend_f32",
            "keras",
            f"KERAS_BACKEND={backend}: keras.losses.BinaryFocalCrossentropy({args}, "
            "dtype='float32')(y_true, y_pred); "
            "shape (6, 2)",
            "float32",
            y_big,
            x_big,
            out["results"][0],
            "binary_focal_crossentropy",
            dict(gamma=2.0, alpha=0.25, from_logits=True, reduction="mean"),
            expected_to_differ={
                "reason": (
                    f"with the {backend} backend Keras applies sigmoid, then clips the "
                    "probability to [1e-7, 1-1e-7] in float32, so the cross-entropy saturates at "
                    "-log(1e-7) = 16.118 (y=1, x<=-17) or -log(1.19e-7) = 15.942 (y=0, x>=16.5); "
                    "fastbce uses the logits"
                ),
                "fastbce_expected": exact,
                "fastbce_expected_call": (
                    "float(np.mean(optax.sigmoid_focal_loss(jnp.float64 logits, "
                    "jnp.float64 labels, alpha=0.25, gamma=2.0))) with jax_enable_x64"
                ),
            },
        )


# ---------------------------------------------------------------- TensorFlow tf.nn
def tf_cases():
    import tensorflow as tf

    for dtype in ("float32", "float64"):
        for soft in (False, True):
            y, x = logits_case(
                300 + soft + (dtype == "float64") * 10,
                (N1,),
                dtype,
                soft=soft,
                scale=4.0,
                specials=LOGIT_SPECIALS,
            )
            out = tf.nn.sigmoid_cross_entropy_with_logits(
                labels=tf.constant(y), logits=tf.constant(x)
            ).numpy()
            add(
                f"tf_sigmoid_ce_{'soft' if soft else 'hard'}_f{dtype[-2:]}",
                "tensorflow",
                "tf.nn.sigmoid_cross_entropy_with_logits(labels=y_true, logits=y_pred)",
                dtype,
                y,
                x,
                out,
                "binary_crossentropy",
                dict(from_logits=True, reduction="none"),
                compare="elementwise",
            )
        # scalar pos_weight, 1-D
        y, x = logits_case(
            320 + (dtype == "float64"), (N1,), dtype, soft=True, scale=4.0, specials=LOGIT_SPECIALS
        )
        out = tf.nn.weighted_cross_entropy_with_logits(
            labels=tf.constant(y), logits=tf.constant(x), pos_weight=2.5
        ).numpy()
        add(
            f"tf_weighted_ce_scalar_posw_f{dtype[-2:]}",
            "tensorflow",
            "tf.nn.weighted_cross_entropy_with_logits(labels=y_true, logits=y_pred, "
            "pos_weight=2.5)",
            dtype,
            y,
            x,
            out,
            "binary_crossentropy",
            dict(from_logits=True, pos_weight=2.5, reduction="none"),
            compare="elementwise",
        )
        # per-class pos_weight, 2-D
        y, x = logits_case(
            330 + (dtype == "float64"), (B, C), dtype, scale=4.0, specials=LOGIT_SPECIALS
        )
        pw = np.array([0.5, 1.0, 2.0, 3.0, 0.0], dtype)
        out = tf.nn.weighted_cross_entropy_with_logits(
            labels=tf.constant(y), logits=tf.constant(x), pos_weight=tf.constant(pw)
        ).numpy()
        add(
            f"tf_weighted_ce_class_posw_2d_f{dtype[-2:]}",
            "tensorflow",
            "tf.nn.weighted_cross_entropy_with_logits(labels=y_true, logits=y_pred, "
            f"pos_weight=tf.constant({pw.tolist()}, {dtype})) "
            f"on shape {(B, C)}",
            dtype,
            y,
            x,
            out,
            "binary_crossentropy",
            dict(from_logits=True, pos_weight=pw, reduction="none"),
            compare="elementwise",
            note="pos_weight 0 for the last class is allowed by SPEC (not negative)",
        )


# ---------------------------------------------------------------- torch
def torch_cases():
    import torch
    import torch.nn.functional as F

    torch.set_num_threads(1)
    variants = [
        ("plain", False, None, False),
        ("fullweight", True, "full", False),
        ("rowweight_posw", True, "row", True),
        ("posw", False, None, True),
    ]
    seed = 400
    for dtype in ("float32", "float64"):
        for vname, _, wkind, use_pw in variants:
            if dtype == "float64" and vname not in ("rowweight_posw",):
                continue
            for red in ("none", "mean", "sum"):
                seed += 1
                y, x = logits_case(
                    seed, (B, C), dtype, soft=(seed % 2 == 0), scale=4.0, specials=LOGIT_SPECIALS
                )
                tdt = getattr(torch, dtype)
                kwargs, call_args, fkw = {}, [], {"from_logits": True, "reduction": red}
                sw = None
                if wkind == "full":
                    sw = full_weights(seed, (B, C), dtype)
                    kwargs["weight"] = torch.tensor(sw, dtype=tdt)
                    call_args.append("weight=sample_weight (full shape)")
                elif wkind == "row":
                    sw = row_weights(seed, B, dtype)
                    kwargs["weight"] = torch.tensor(sw, dtype=tdt)[:, None]
                    call_args.append(
                        "weight=torch.tensor(sample_weight)[:, None] (shape (batch, 1))"
                    )
                if use_pw:
                    pw = np.array([0.5, 1.0, 2.0, 4.0, 1.5], dtype)
                    kwargs["pos_weight"] = torch.tensor(pw, dtype=tdt)
                    call_args.append(f"pos_weight=torch.tensor({pw.tolist()}) (shape (classes,))")
                    fkw["pos_weight"] = pw
                out = F.binary_cross_entropy_with_logits(
                    torch.tensor(x, dtype=tdt), torch.tensor(y, dtype=tdt), reduction=red, **kwargs
                ).numpy()
                add(
                    f"torch_bce_logits_{vname}_{red}_f{dtype[-2:]}",
                    "torch",
                    "torch.nn.functional.binary_cross_entropy_with_logits("
                    "input=y_pred, target=y_true, "
                    + ", ".join(call_args + [f"reduction='{red}'"])
                    + f") on shape {(B, C)}",
                    dtype,
                    y,
                    x,
                    out,
                    "binary_crossentropy",
                    fkw,
                    sample_weight=sw,
                    compare="elementwise" if red == "none" else "scalar",
                )


# ---------------------------------------------------------------- optax
def optax_cases():
    import jax.numpy as jnp
    import optax

    seed = 500
    for dtype in ("float32", "float64"):
        for alpha in (None, 0.25):
            for gamma in (0.0, 0.5, 2.0):
                if dtype == "float64" and gamma == 0.0:
                    continue
                seed += 1
                soft = seed % 2 == 0
                y, x = logits_case(
                    seed,
                    (B, C),
                    dtype,
                    soft=soft,
                    scale=4.0,
                    specials=[0.0, 50.0, -50.0, 20.0, -20.0, 1e-3],
                )
                jdt = getattr(jnp, dtype)
                out = np.asarray(
                    optax.sigmoid_focal_loss(
                        jnp.asarray(x, jdt), jnp.asarray(y, jdt), alpha=alpha, gamma=gamma
                    )
                )
                assert str(out.dtype) == dtype, out.dtype
                add(
                    f"optax_focal_g{gamma:g}_a{'None' if alpha is None else f'{alpha:g}'}_"
                    f"{'soft' if soft else 'hard'}_f{dtype[-2:]}",
                    "optax",
                    "optax.sigmoid_focal_loss(logits=y_pred, labels=y_true, "
                    f"alpha={alpha}, gamma={gamma}) "
                    f"on shape {(B, C)}",
                    dtype,
                    y,
                    x,
                    out,
                    "binary_focal_crossentropy",
                    dict(from_logits=True, gamma=gamma, alpha=alpha, reduction="none"),
                    compare="elementwise",
                    note=(
                        "same formula as torchvision.ops.sigmoid_focal_loss "
                        "(alpha=None <-> alpha=-1)"
                    ),
                )


# ---------------------------------------------------------------- sklearn
def sklearn_cases():
    from sklearn.metrics import log_loss

    seed = 600
    for dtype in ("float64", "float32"):
        eps = float(np.finfo(dtype).eps)
        for weighted in (False, True):
            seed += 1
            y, p = probs_case(seed, (N1 * 2,), dtype)
            yi = y.astype(np.int64)
            w = full_weights(seed, (N1 * 2,), dtype) if weighted else None
            out = log_loss(yi, p, sample_weight=w)
            add(
                f"sklearn_log_loss_{'weighted' if weighted else 'unweighted'}_f{dtype[-2:]}",
                "sklearn",
                "sklearn.metrics.log_loss(y_true (int64 0/1), y_pred (1-D P(class 1))"
                + (", sample_weight=sample_weight" if weighted else "")
                + ")",
                dtype,
                yi,
                p,
                out,
                "binary_crossentropy",
                dict(epsilon=eps, reduction="weighted_mean"),
                sample_weight=w,
                y_true_dtype="int64",
                note=f"epsilon = np.finfo({dtype}).eps",
            )
        seed += 1
        y, p = probs_case(seed, (N1,), dtype)
        w = full_weights(seed, (N1,), dtype)
        out = log_loss(y.astype(np.int64), p, sample_weight=w, normalize=False)
        add(
            f"sklearn_log_loss_weighted_normalize_false_f{dtype[-2:]}",
            "sklearn",
            "sklearn.metrics.log_loss(y_true (int64 0/1), y_pred, "
            "sample_weight=sample_weight, normalize=False)",
            dtype,
            y.astype(np.int64),
            p,
            out,
            "binary_crossentropy",
            dict(epsilon=eps, reduction="sum"),
            sample_weight=w,
            y_true_dtype="int64",
        )


# ----------------------------------------------------------------------------------
VERSIONS: dict = {}


def collect_versions():
    import jax
    import jaxlib
    import keras
    import optax
    import sklearn
    import tensorflow as tf
    import torch

    VERSIONS.update(
        {
            "python": platform.python_version(),
            "numpy": np.__version__,
            "keras": keras.__version__,
            "keras_backend": keras.backend.backend(),
            "tensorflow": tf.__version__,
            "torch": torch.__version__,
            "jax": jax.__version__,
            "jaxlib": jaxlib.__version__,
            "optax": optax.__version__,
            "scikit-learn": sklearn.__version__,
            "torchvision": (
                "not used: only CUDA wheels are reachable; 0.28.0+cu130 fails to import "
                "with CPU torch 2.13.0"
            ),
        }
    )


def build():
    os.environ["KERAS_BACKEND"] = "tensorflow"
    import jax

    jax.config.update(
        "jax_enable_x64", True
    )  # float32 inputs stay float32; needed for the float64 cases
    collect_versions()
    y_big, x_big, kw = keras_cases()
    keras_saturation_cases(y_big, x_big, kw)
    tf_cases()
    torch_cases()
    optax_cases()
    sklearn_cases()

    # Self-check against SPEC.md section 1 evaluated in float64.
    bad = []
    for case in CASES:
        ref = spec_value(case)
        ok = check_close(case, case["expected"], ref)
        etd = case.get("expected_to_differ")
        if etd is None:
            if not np.all(ok):
                rel = np.max(
                    np.abs(np.asarray(case["expected"]) - ref) / np.maximum(np.abs(ref), 1e-300)
                )
                bad.append(f"{case['id']}: library differs from SPEC (max rel {rel:.3g})")
        else:
            if not np.all(check_close(case, etd["fastbce_expected"], ref)):
                bad.append(f"{case['id']}: fastbce_expected differs from SPEC")
            if np.all(ok):
                bad.append(
                    f"{case['id']}: flagged expected_to_differ but the library agrees with SPEC"
                )
    if bad:
        raise SystemExit("self-check failed:\n  " + "\n  ".join(bad))

    return {
        "format_version": 1,
        "generator": "tools/make_golden.py (run with the golden virtualenv; see its docstring)",
        "versions": VERSIONS,
        "tolerances": {
            "rtol": RTOL,
            "atol_x": ATOL_X,
            "rule": (
                "|got-expected| <= rtol*|expected| (+ atol_x*(1+|x|) elementwise, x = logit or 0)"
            ),
        },
        "notes": [
            "Every 'expected' value is the output of the library call in 'call'.",
            "Keras runs with the TensorFlow backend unless the call says KERAS_BACKEND=...",
            "Keras losses average over the last axis first; "
            "see tools/make_golden.py for the mapping rules.",
        ],
        "cases": CASES,
    }


def dump(data):
    return json.dumps(data, indent=1, allow_nan=False) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--check", action="store_true", help="exit 1 if the stored file differs from a fresh run"
    )
    ap.add_argument("--output", type=Path, default=OUT)
    ap.add_argument("--keras-backend-worker", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.keras_backend_worker:
        keras_backend_worker()
        return
    text = dump(build())
    if args.check:
        same = args.output.exists() and args.output.read_text() == text
        print(f"{args.output}: {'up to date' if same else 'DIFFERS'} ({len(CASES)} cases)")
        sys.exit(0 if same else 1)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text)
    print(f"wrote {args.output}: {len(CASES)} cases, {len(text)} bytes")


if __name__ == "__main__":
    main()
