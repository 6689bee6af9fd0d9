"""Independent float64 references of shared/SPEC.md section 1, for the tests.

`bce_reference` follows the spec step by step in NumPy float64 (the clip of probabilities happens in
the working precision, as the spec says); `bce_mpmath` is the exact value of plain cross-entropy
for one element, for ULP measurements.
"""

from __future__ import annotations

import mpmath
import numpy as np


def working_dtype(pred_dtype: np.dtype) -> type:
    return np.float64 if np.dtype(pred_dtype) == np.float64 else np.float32


def _times(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a * b where a zero weight wins over an infinite loss (SPEC: never NaN for valid input)."""
    with np.errstate(invalid="ignore"):
        return np.where(a == 0, 0.0, a * b)


def log_probabilities(y_pred, *, from_logits: bool) -> tuple[np.ndarray, np.ndarray]:
    """log p and log(1 - p) in float64, p unclipped (SPEC step 2 for logits; the focal factor's
    p for probabilities, taken in the working precision first)."""
    y_pred = np.asarray(y_pred)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        if from_logits:
            x = y_pred.astype(np.float64)
            return -np.logaddexp(0.0, -x), -np.logaddexp(0.0, x)
        p = y_pred.astype(working_dtype(y_pred.dtype)).astype(np.float64)
        return np.log(p), np.log1p(-p)


def log_one_minus_pt(ys, ys_c, log_p, log_1mp) -> np.ndarray:
    """log(1 - p_t) = logaddexp(log y' + log(1 - p), log(1 - y') + log p), SPEC step 4."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.logaddexp(np.log(ys) + log_1mp, np.log(ys_c) + log_p)


def bce_reference(
    y_true,
    y_pred,
    *,
    from_logits=False,
    epsilon=1e-7,
    label_smoothing=0.0,
    sample_weight=None,
    pos_weight=None,
    gamma=0.0,
    alpha=None,
):
    """Elementwise loss in float64 (the weights included), y_pred's shape."""
    y_pred = np.asarray(y_pred)
    work = working_dtype(y_pred.dtype)
    y = np.asarray(y_true).astype(np.float64)
    # options take the working precision first, as in fastbce (and Keras)
    s = float(work(label_smoothing))
    gamma = float(work(gamma))
    alpha = None if alpha is None else float(work(alpha))
    ys = y * (1.0 - s) + s / 2.0
    ys_c = (1.0 - y) * (1.0 - s) + s / 2.0  # 1 - y', without cancellation
    # s / 2 of the smallest float64 subnormal (s = 2**-1074) is no float64: it rounds to 0 in ys
    # and ys_c, where fastbce carries it exactly (docs/semantics.md, tiny smoothing), so that an
    # infinite logit against the label gives inf, not 0 * inf = 0. Its terms are added apart,
    # on a scaled copy of s / 2 (1 - s is 1 there)
    half_s_lost = s > 0.0 and s / 2.0 * 2.0 != s
    half_s_up = s * 2.0**600 / 2.0
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        log_p, log_1mp = log_probabilities(y_pred, from_logits=from_logits)  # p unclipped
        if from_logits:
            neg_log_p, neg_log_1mp = -log_p, -log_1mp
        else:
            lo, hi = work(epsilon), work(1) - work(epsilon)
            pc = np.clip(y_pred.astype(work), lo, hi).astype(np.float64)
            neg_log_p, neg_log_1mp = -np.log(pc), -np.log1p(-pc)
        q = 1.0 if pos_weight is None else np.asarray(pos_weight).astype(work).astype(np.float64)
        ce = _times(q * ys, neg_log_p) + _times(ys_c, neg_log_1mp)
        if half_s_lost:
            ce = ce + (_times(q * half_s_up, neg_log_p) + half_s_up * neg_log_1mp) * 2.0**-600
        if gamma > 0:
            log_1mpt = log_one_minus_pt(ys, ys_c, log_p, log_1mp)
            ce = np.where(np.isinf(ce), ce, ce * np.exp(gamma * log_1mpt))
        if alpha is not None:
            factor = alpha * ys + (1 - alpha) * ys_c
            # (s / 2 lost: the factor's exact value is that plus s / 2)
            ce = _times(factor, ce) + (half_s_up * ce * 2.0**-600 if half_s_lost else 0.0)
        if sample_weight is not None:
            w = np.asarray(sample_weight, dtype=np.float64)
            if w.ndim == 1 and y_pred.ndim > 1:  # one weight per row
                w = w.reshape((-1,) + (1,) * (y_pred.ndim - 1))
            ce = _times(np.broadcast_to(w, ce.shape), ce)
    return ce


def reduce_reference(ce, reduction, sample_weight=None, shape=None):
    if reduction == "none":
        return ce
    if reduction == "sum":
        return float(np.sum(ce))
    if reduction == "mean":
        return float(np.mean(ce)) if ce.size else float("nan")
    w = np.ones(ce.shape) if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
    if w.ndim == 1 and ce.ndim > 1 and w.shape != ce.shape:
        w = w.reshape((-1,) + (1,) * (ce.ndim - 1))
    w = np.broadcast_to(w, ce.shape)
    return float(np.sum(ce) / np.sum(w)) if np.sum(w) else float("nan")


mpmath.mp.prec = 200


def bce_mpmath(y: float, pred: float, *, from_logits: bool, clip: tuple[float, float]) -> float:
    """Exact plain cross-entropy of one element (y and pred are taken as exact binary values)."""
    y = mpmath.mpf(float(y))
    if from_logits:
        x = mpmath.mpf(float(pred))
        neg_log_p = mpmath.log1p(mpmath.exp(-x))  # mpmath's exponent range is unbounded
        neg_log_1mp = mpmath.log1p(mpmath.exp(x))
    else:
        p = min(max(float(pred), clip[0]), clip[1])
        p = mpmath.mpf(p)
        neg_log_p, neg_log_1mp = -mpmath.log(p), -mpmath.log1p(-p)
    terms = []
    if y != 0:
        terms.append(y * neg_log_p)
    if y != 1:
        terms.append((1 - y) * neg_log_1mp)
    return float(mpmath.fsum(terms)) if terms else 0.0


def ulp_error(got: np.ndarray, exact: np.ndarray, dtype) -> np.ndarray:
    """|got - exact| in units of the spacing of `dtype` at the exact value."""
    exact = np.asarray(exact, dtype=np.float64)
    with np.errstate(over="ignore"):
        rounded = exact.astype(dtype)
    spacing = np.spacing(np.abs(rounded)).astype(np.float64)
    with np.errstate(invalid="ignore"):
        err = np.abs(got.astype(np.float64) - exact) / spacing
    both_inf = np.isinf(got) & np.isinf(rounded) & (np.sign(got) == np.sign(rounded))
    return np.where(both_inf, 0.0, err)


def focal_mpmath(
    y: float,
    pred: float,
    *,
    from_logits: bool,
    clip: tuple[float, float],
    gamma: float,
    alpha,
    label_smoothing: float = 0.0,
) -> float:
    """Focal loss of one element (SPEC steps 1-5) to within float64 rounding: the cross-entropy
    of y' = y (1 - s) + s/2 times (1 - p_t)^gamma, with 1 - p_t = y' (1 - p) + (1 - y') p formed
    without cancellation (1 - p = exp(-x) / (1 + exp(-x)) for a logit x; the unclipped p for
    probabilities, as Keras 3). s is taken as given (pass it in the working precision)."""
    yy = mpmath.mpf(float(y))
    s = mpmath.mpf(float(label_smoothing))
    ys, ys_c = yy * (1 - s) + s / 2, (1 - yy) * (1 - s) + s / 2
    if label_smoothing:
        if from_logits:
            x = mpmath.mpf(float(pred))
            neg_log_p, neg_log_1mp = mpmath.log1p(mpmath.exp(-x)), mpmath.log1p(mpmath.exp(x))
        else:
            pc = mpmath.mpf(min(max(float(pred), clip[0]), clip[1]))
            neg_log_p, neg_log_1mp = -mpmath.log(pc), -mpmath.log1p(-pc)
        ce = ys * neg_log_p + ys_c * neg_log_1mp
    else:
        ce = mpmath.mpf(bce_mpmath(y, pred, from_logits=from_logits, clip=clip))
    if from_logits:
        e = mpmath.exp(-mpmath.mpf(float(pred)))
        p, one_minus_p = 1 / (1 + e), e / (1 + e)
    else:
        p = mpmath.mpf(float(pred))
        one_minus_p = 1 - p
    loss = ce * (ys * one_minus_p + ys_c * p) ** mpmath.mpf(float(gamma))
    if alpha is not None:
        a = mpmath.mpf(float(alpha))
        loss *= a * ys + (1 - a) * ys_c
    return float(loss)
