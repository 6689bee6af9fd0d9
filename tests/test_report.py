"""The evaluation report (issue 13): every key against a float64 NumPy computation of its formula,
AUC and the losses against scikit-learn, edge cases, merging, threads and every SIMD tier."""

from __future__ import annotations

import math
import os
import pickle
import re
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import fastbce
from fastbce import _core, _report

REL = 1e-12
SCALAR_KEYS = (
    "weight",
    "sum",
    "mean",
    "weighted_mean",
    "log_loss",
    "base_rate",
    "mean_prediction",
    "calibration",
    "normalized_entropy",
    "brier",
    "loss_positive",
    "loss_negative",
    "std_error",
    "ece",
)


# --------------------------------------------------------------------------- the reference


def _expit(x: np.ndarray) -> np.ndarray:
    out = np.empty_like(x)
    pos = x >= 0
    out[pos] = 1.0 / (1.0 + np.exp(-x[pos]))
    e = np.exp(x[~pos])
    out[~pos] = e / (1.0 + e)
    return out


def reference(
    y, x, w=None, *, mask=None, from_logits=False, ignore_label=None, logit_offset=0.0, **opts
):
    """The keys of one scope (the rows of `mask`) in float64 NumPy: the loss l and the plain
    cross-entropy come from fastbce's elementwise loss (reduction="none") of the whole input,
    everything else from the formulas."""
    x = np.asarray(x)
    working = np.float64 if x.dtype == np.float64 else np.float32
    xo = (x.astype(working) + working(logit_offset)) if logit_offset else x
    y = np.asarray(y)
    w64 = np.ones(y.shape) if w is None else np.asarray(w).astype(working).astype(np.float64)
    nan_policy = opts.get("nan_policy", "propagate")
    ignored = (y == ignore_label) if ignore_label is not None else np.zeros(y.shape, bool)
    nan = np.isnan(y.astype(np.float64)) | np.isnan(xo.astype(np.float64)) | np.isnan(w64)
    omitted = ~ignored & nan if nan_policy == "omit" else np.zeros(y.shape, bool)
    ell = fastbce.binary_crossentropy(
        y, xo, from_logits=from_logits, reduction="none", validate=False, **opts
    ).astype(np.float64)
    bce = fastbce.binary_crossentropy(
        y,
        xo,
        from_logits=from_logits,
        epsilon=opts.get("epsilon", 1e-7),
        reduction="none",
        validate=False,
    ).astype(np.float64)
    # "sum" adds the elementwise loss of reduction="none" with the weights (w * l as rounded there)
    ce = fastbce.binary_crossentropy(
        y, xo, from_logits=from_logits, sample_weight=w, reduction="none", validate=False, **opts
    ).astype(np.float64)
    if mask is not None:
        ignored, omitted = ignored & mask, omitted & mask
    keep = ~ignored & ~omitted & (True if mask is None else mask)
    yk, xk, wk, ell, bce, ce = y[keep], xo[keep], w64[keep], ell[keep], bce[keep], ce[keep]
    yd = yk.astype(np.float64)
    p = _expit(xk.astype(np.float64)) if from_logits else xk.astype(np.float64)
    with np.errstate(all="ignore"):
        W, Wy, Wn = wk.sum(), (wk * yd).sum(), (wk * (1 - yd)).sum()
        m = ce.sum() / W if W else math.nan
        log_loss = (wk * bce).sum() / W if W else math.nan
        b = Wy / W if W else math.nan
        h = -b * math.log(b) - (1 - b) * math.log1p(-b) if 0 < b < 1 else 0.0
        se = math.sqrt((wk**2 * (ell - m) ** 2).sum()) / W if W else math.nan
        bins = np.minimum(np.floor(p * 10), 9).clip(0).astype(int)
        ece = sum(abs((wk * p)[bins == k].sum() - (wk * yd)[bins == k].sum()) for k in range(10))
        return {
            "rows": int(keep.sum()),
            "omitted": int(omitted.sum()),
            "ignored": int(ignored.sum()),
            "weight": W,
            "sum": ce.sum(),
            "mean": ce.sum() / keep.sum() if keep.sum() else math.nan,
            "weighted_mean": m,
            "log_loss": log_loss,
            "base_rate": b,
            "mean_prediction": (wk * p).sum() / W if W else math.nan,
            "calibration": (wk * p).sum() / Wy if Wy else math.nan,
            "normalized_entropy": log_loss / h if h else math.nan,
            "brier": (wk * (p - yd) ** 2).sum() / W if W else math.nan,
            "loss_positive": (wk * yd * ell).sum() / Wy if Wy else math.nan,
            "loss_negative": (wk * (1 - yd) * ell).sum() / Wn if Wn else math.nan,
            "std_error": se,
            "ece": ece / W if W else math.nan,
        }


def close(a: float, b: float, rel: float = REL) -> bool:
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return a == pytest.approx(b, rel=rel, abs=1e-300)


def check_scope(got: dict, want: dict, rel: float = REL) -> None:
    for key in ("rows", "omitted", "ignored"):
        assert got[key] == want[key], key
    for key in SCALAR_KEYS:
        assert close(got[key], want[key], rel), (key, got[key], want[key])
    m, se = want["weighted_mean"], want["std_error"]
    assert close(got["ci95"][0], m - 1.96 * se, rel)
    assert close(got["ci95"][1], m + 1.96 * se, rel)


def data(rng, n=20_000, *, logits=True, dtype=np.float32, soft=False):
    y = (rng.random(n) < 0.3).astype(np.float32)
    if soft:
        y = np.where(rng.random(n) < 0.2, rng.random(n), y).astype(np.float32)
    x = rng.normal(scale=2.0, size=n) if logits else rng.beta(2.0, 5.0, size=n)
    return y, x.astype(dtype)


# --------------------------------------------------------------------------- every key

OPTIONS = [
    {},
    {"label_smoothing": 0.1, "pos_weight": 2.5},
    {"gamma": 2.0, "alpha": 0.25},
    {"gamma": 0.7, "label_smoothing": 0.05},
    {"epsilon": 1e-3},
]


@pytest.mark.parametrize("options", OPTIONS, ids=lambda o: ",".join(o) or "plain")
@pytest.mark.parametrize("logits", [True, False], ids=["logits", "probabilities"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_every_key_matches_the_formula(simd_target, rng, options, logits, dtype):
    y, x = data(rng, logits=logits, dtype=dtype, soft=True)
    w = rng.random(y.size) * 3.0
    g = rng.choice(np.array(["a", "b", "c"]), y.size)
    r = fastbce.evaluate(y, x, sample_weight=w, groups=g, from_logits=logits, **options)
    check_scope(r, reference(y, x, w, from_logits=logits, **options))
    for key in ("a", "b", "c"):
        m = g == key
        check_scope(r["groups"][key], reference(y, x, w, mask=m, from_logits=logits, **options))


def test_reliability_bins(simd_target, rng):
    y, x = data(rng, logits=False, dtype=np.float64)
    r = fastbce.evaluate(y, x)
    bins = np.minimum(np.floor(x * 10), 9).astype(int)
    assert [b["lo"] for b in r["reliability"]] == [k / 10 for k in range(10)]
    for k, b in enumerate(r["reliability"]):
        m = bins == k
        assert b["weight"] == m.sum()
        if m.any():
            assert close(b["mean_prediction"], x[m].mean())
            assert close(b["base_rate"], y[m].astype(np.float64).mean())
        else:
            assert math.isnan(b["mean_prediction"]) and math.isnan(b["base_rate"])
    assert "reliability" not in fastbce.evaluate(y, x, groups=y > 0)["groups"][True]


# --------------------------------------------------------------------------- scikit-learn


@pytest.mark.parametrize("logits", [True, False], ids=["logits", "probabilities"])
def test_auc_within_its_bound_of_scikit_learn(simd_target, rng, logits):
    metrics = pytest.importorskip("sklearn.metrics")
    n = 200_000
    score = rng.normal(size=n)
    y = (rng.random(n) < _expit(1.5 * score)).astype(np.uint8)
    x = (score if logits else _expit(score)).astype(np.float32)
    w = rng.random(n)
    r = fastbce.evaluate(y, x, sample_weight=w, from_logits=logits)
    expected = metrics.roc_auc_score(y, x, sample_weight=w.astype(np.float32))
    assert r["auc_bound"] < 1e-4  # continuous scores: the binning costs less than 1e-4
    assert abs(r["auc"] - expected) <= r["auc_bound"] + 1e-12


def test_auc_with_ties_and_soft_labels(rng):
    metrics = pytest.importorskip("sklearn.metrics")
    x = rng.choice(np.array([0.1, 0.3, 0.5, 0.9]), 1000)  # few distinct values: exact AUC
    y = (rng.random(1000) < x).astype(np.float64)
    r = fastbce.evaluate(y, x)
    assert close(r["auc"], metrics.roc_auc_score(y, x))
    # a soft label y counts as a positive of weight y and a negative of weight 1 - y
    soft = rng.random(1000)
    r = fastbce.evaluate(soft, x)
    ys = np.r_[np.ones(1000), np.zeros(1000)]
    expected = metrics.roc_auc_score(ys, np.r_[x, x], sample_weight=np.r_[soft, 1 - soft])
    assert close(r["auc"], expected)


def test_brier_and_log_loss_against_scikit_learn(rng):
    metrics = pytest.importorskip("sklearn.metrics")
    y, x = data(rng, logits=False, dtype=np.float64)
    w = rng.random(y.size)
    eps = float(np.finfo(np.float64).eps)
    r = fastbce.evaluate(y, x, sample_weight=w, epsilon=eps)
    assert close(r["brier"], metrics.brier_score_loss(y, x, sample_weight=w))
    assert close(r["log_loss"], metrics.log_loss(y, x, sample_weight=w), 1e-10)


# --------------------------------------------------------------------------- edge cases


def test_a_group_with_only_positives(rng):
    y = np.array([1, 1, 1, 0, 1], dtype=np.uint8)
    x = np.array([0.9, 0.8, 0.6, 0.3, 0.7])
    r = fastbce.evaluate(y, x, groups=np.array(["p", "p", "p", "m", "m"]))
    g = r["groups"]["p"]
    assert g["base_rate"] == 1.0
    assert close(g["calibration"], (0.9 + 0.8 + 0.6) / 3)
    for key in ("normalized_entropy", "loss_negative", "auc", "auc_bound"):
        assert math.isnan(g[key]), key
    assert close(g["loss_positive"], g["weighted_mean"])
    assert r["groups"]["m"]["auc"] == 1.0


def test_all_weights_zero(rng):
    y, x = data(rng, n=100)
    r = fastbce.evaluate(y, x, sample_weight=np.zeros(100), from_logits=True, top_losses=2)
    assert r["rows"] == 100 and r["weight"] == 0.0 and r["sum"] == 0.0 and r["mean"] == 0.0
    for key in SCALAR_KEYS[3:] + ("auc", "auc_bound"):
        assert math.isnan(r[key]), key
    assert all(math.isnan(v) for v in r["ci95"])
    assert [t["loss"] for t in r["top_losses"]] == [0.0, 0.0]


def test_one_row():
    r = fastbce.evaluate(np.array([1.0]), np.array([0.8]))
    assert r["rows"] == 1 and close(r["log_loss"], -math.log(0.8))
    assert r["std_error"] == 0.0 and r["ci95"] == [r["weighted_mean"], r["weighted_mean"]]
    assert math.isnan(r["auc"]) and math.isnan(r["normalized_entropy"])
    assert close(r["ece"], 0.2)


@pytest.mark.parametrize("from_logits", [True, False])
def test_one_row_has_std_error_zero_whatever_its_weight(rng, from_logits):
    # sqrt(w^2 (l - m)^2) / w with m = w l / w: the sums' difference left ~1e-8 of m where w l / w
    # does not round to l (about one weight in six)
    for _ in range(200):
        y = [float(rng.integers(0, 2))]
        p = [float(rng.normal() * 3 if from_logits else rng.uniform(0.01, 0.99))]
        w = [float(rng.uniform(0.01, 10.0))]
        r = fastbce.evaluate(y, p, from_logits=from_logits, sample_weight=w, groups=["a"])
        for scope in (r, r["groups"]["a"]):
            assert scope["std_error"] == 0.0
            assert scope["ci95"] == [scope["weighted_mean"], scope["weighted_mean"]]


def test_empty_input():
    r = fastbce.evaluate(np.zeros(0), np.zeros(0, np.float32), groups=np.zeros(0))
    assert r["rows"] == 0 and r["sum"] == 0.0 and r["groups"] == {}
    assert math.isnan(r["mean"]) and math.isnan(r["auc"]) and math.isnan(r["std_error"])


def test_nan_under_each_policy(rng):
    y, x = data(rng, n=1000)
    x[[3, 500]] = np.nan
    y[7] = np.nan
    r = fastbce.evaluate(y, x, from_logits=True)  # propagate: NaN in, NaN out
    for key in ("sum", "weighted_mean", "log_loss", "mean_prediction", "auc", "ece"):
        assert math.isnan(r[key]), key
    assert r["omitted"] == 0 and r["rows"] == 1000
    r = fastbce.evaluate(y, x, from_logits=True, nan_policy="omit", groups=np.arange(1000) % 2)
    check_scope(r, reference(y, x, from_logits=True, nan_policy="omit"))
    assert r["groups"][1]["omitted"] == 2 and r["groups"][0]["omitted"] == 1
    with pytest.raises(ValueError, match="nan_policy='raise': y_pred is NaN at flat index 3"):
        fastbce.evaluate(y, x, from_logits=True, nan_policy="raise")


def test_ignored_rows_count_nowhere(rng):
    y, x = data(rng, n=2000)
    y[::10] = -1  # outside [0, 1]: no range error, since those rows are skipped
    r = fastbce.evaluate(y, x, from_logits=True, ignore_label=-1, groups=np.arange(2000) % 3)
    check_scope(r, reference(y, x, from_logits=True, ignore_label=-1))
    assert sum(g["ignored"] for g in r["groups"].values()) == 200
    with pytest.raises(ValueError, match="y_true must be in"):
        fastbce.evaluate(y, x, from_logits=True, ignore_label=2)


def test_no_warning_for_any_edge(rng):
    # (warnings are errors in this suite) infinite logits, huge weights, a single class
    y = np.array([1, 0, 1, 0], dtype=np.float32)
    x = np.array([np.inf, -np.inf, -np.inf, 3.0], dtype=np.float32)
    r = fastbce.evaluate(y, x, from_logits=True, sample_weight=np.array([1e30, 1, 1, 0]))
    assert math.isinf(r["sum"])
    fastbce.evaluate(np.ones(3), np.ones(3))


@pytest.mark.parametrize("weight", [None, 2.0], ids=["unweighted", "scalar-weight"])
@pytest.mark.parametrize("logits", [True, False], ids=["logits", "probabilities"])
def test_every_kind_of_tile(simd_target, rng, logits, weight):
    # the pass takes per tile of 512 rows a path of its own: labels all 0/1 or not, every row
    # counted or not (ignored, NaN omitted), a partial last tile, logits beyond the fast exp
    n = 512 * 12 + 37
    y = (rng.random(n) < 0.3).astype(np.float32)
    x = rng.normal(scale=2.0, size=n).astype(np.float32)
    y[512 * 3 : 512 * 5 : 7] = 0.25  # soft labels in tiles 3 and 4
    y[512 * 6 + 5 : 512 * 6 + 300 : 11] = -1.0  # ignored rows in tile 6
    x[512 * 8 + 9] = np.nan  # omitted in tile 8
    if logits:
        x[512 * 10 : 512 * 10 + 20] = 800.0 * np.sign(x[512 * 10 : 512 * 10 + 20])
    else:
        x = 1.0 / (1.0 + np.exp(-x.astype(np.float64)))
    opts = {"from_logits": logits, "nan_policy": "omit", "sample_weight": weight}
    r = fastbce.evaluate(y, x, ignore_label=-1.0, **opts)
    w = None if weight is None else np.full(n, weight)
    check_scope(r, reference(y, x, w, ignore_label=-1.0, from_logits=logits, nan_policy="omit"))
    assert (r["rows"], r["ignored"], r["omitted"]) == (n - 27 - 1, 27, 1)
    # the histogram of the whole input: the same as the per-group ones of one group
    g = fastbce.evaluate(y, x, ignore_label=-1.0, groups=np.zeros(n, dtype=int), **opts)
    assert g["auc"] == g["groups"][0]["auc"] and g["auc_bound"] == g["groups"][0]["auc_bound"]
    assert [b["weight"] for b in r["reliability"]] == [b["weight"] for b in g["reliability"]]


# --------------------------------------------------------------------------- options


def test_logit_offset(simd_target, rng):
    y, x = data(rng, n=5000)
    r = fastbce.evaluate(y, x, from_logits=True, logit_offset=-2.0, top_losses=3)
    check_scope(r, reference(y, x, from_logits=True, logit_offset=-2.0))
    shifted = fastbce.evaluate(y, x + np.float32(-2.0), from_logits=True)
    assert r["auc"] == shifted["auc"] and r["sum"] == shifted["sum"]
    assert r["top_losses"][0]["y_pred"] == float(x[r["top_losses"][0]["row"]])  # as given
    with pytest.raises(ValueError, match="logit_offset.*from_logits=True"):
        fastbce.evaluate(y, _expit(x), logit_offset=1.0)


def test_top_losses(simd_target, rng):
    y, x = data(rng, n=300_000)
    x[::1000] = 0.0  # ties
    w = rng.random(y.size)
    g = rng.choice(np.array(["u", "v"]), y.size)
    r = fastbce.evaluate(y, x, from_logits=True, sample_weight=w, groups=g, top_losses=50)
    ell = fastbce.binary_crossentropy(y, x, from_logits=True, reduction="none").astype(float)
    order = np.lexsort((np.arange(y.size), -ell))[:50]
    assert [t["row"] for t in r["top_losses"]] == order.tolist()
    # an entry's loss is the value reduction="none" gives the row (w·l in the working precision)
    wl = fastbce.binary_crossentropy(y, x, from_logits=True, sample_weight=w, reduction="none")
    for t in r["top_losses"]:
        i = t["row"]
        assert t["y_true"] == y[i] and t["y_pred"] == x[i] and t["group"] == g[i]
        assert t["loss"] == float(wl[i]), (i, t["loss"], float(wl[i]))
    assert "top_losses" not in fastbce.evaluate(y, x, from_logits=True)


def test_slices(rng):
    y, x = data(rng, n=3000)
    a = rng.choice(np.array(["de", "fr"]), y.size)
    b = rng.integers(0, 3, y.size)
    r = fastbce.evaluate(y, x, from_logits=True, groups={"country": a, "device": b})
    assert r["groups"] == {} and set(r["slices"]) == {"country", "device"}
    for key in (0, 1, 2):
        m = b == key
        check_scope(r["slices"]["device"][key], reference(y, x, mask=m, from_logits=True))
    assert set(r["slices"]["country"]) == {"de", "fr"}


def test_slicings_whose_names_print_alike_are_an_error(rng):
    # {1: ..., "1": ...} was one slicing "1" that counted every row twice
    y, x = data(rng, n=60)
    groups = {1: rng.integers(0, 2, y.size), "1": rng.choice(np.array(["a", "b"]), y.size)}
    acc = fastbce.LossAccumulator(from_logits=True)
    with pytest.raises(ValueError, match=r"slicings 1 and '1' have the same name '1'"):
        acc.update(y, x, groups=groups)
    assert acc.result()["rows"] == 0  # (left as it was)
    with pytest.raises(ValueError, match="same name"):
        fastbce.evaluate(y, x, from_logits=True, groups=groups)


def test_2d_input_per_row_weights_and_groups(rng):
    y = (rng.random((400, 3)) < 0.5).astype(np.float32)
    x = rng.normal(size=(400, 3)).astype(np.float32)
    w = rng.random(400)
    g = np.repeat([1, 2], 200)
    r = fastbce.evaluate(y, x, from_logits=True, sample_weight=w, groups=g)
    w_full = np.repeat(w, 3)
    check_scope(r, reference(y.ravel(), x.ravel(), w_full, from_logits=True))
    m = np.arange(1200) >= 600
    check_scope(r["groups"][2], reference(y.ravel(), x.ravel(), w_full, mask=m, from_logits=True))


def test_bad_options():
    y, x = np.array([0.0, 1.0]), np.array([0.2, 0.7])
    with pytest.raises(ValueError, match="ignore_label"):
        fastbce.evaluate(y, x, ignore_label=float("nan"))
    with pytest.raises(ValueError, match="logit_offset must be finite"):
        fastbce.evaluate(y, x, from_logits=True, logit_offset=float("inf"))
    with pytest.raises(ValueError, match="top_losses"):
        fastbce.evaluate(y, x, top_losses=-1)
    with pytest.raises(TypeError, match="top_losses"):
        fastbce.evaluate(y, x, top_losses=1.5)
    with pytest.raises(TypeError, match="reduction"):
        fastbce.evaluate(y, x, reduction="sum")
    with pytest.raises(TypeError, match="evaluate"):
        fastbce.evaluate(y, x, colour="red")


def test_histogram_resolution_per_number_of_groups():
    assert _report.histogram_bits(1) == 11
    assert _report.histogram_bits(50) == 9
    assert _report.histogram_bits(1000) == 5
    assert _report.histogram_bits(32768) == 0
    assert _report.histogram_bits(70000) is None
    # a coarser histogram is the finer one with adjacent bins added
    rng = np.random.default_rng(1)
    y, x = data(rng, n=5000)
    fine = fastbce.evaluate(y, x, from_logits=True, groups=np.zeros(5000, int))
    coarse = fastbce.evaluate(y, x, from_logits=True, groups=np.arange(5000) % 1000)
    assert coarse["groups"][0]["auc_bound"] >= 0.0 and fine["groups"][0]["auc"] == fine["auc"]


# --------------------------------------------------------------------------- merging, threads


@given(
    cuts=st.lists(st.integers(1, 2999), max_size=6, unique=True),
    seed=st.integers(0, 2**32 - 1),
    weighted=st.booleans(),
)
def test_merge_equals_one_pass(cuts, seed, weighted):
    rng = np.random.default_rng(seed)
    y, x = data(rng, n=3000)
    w = rng.random(3000) if weighted else None
    g = rng.choice(np.array(["a", "b", "c"]), 3000)
    opts = {"from_logits": True, "top_losses": 7}
    whole = fastbce.LossAccumulator(**opts).update(y, x, w, g)
    bounds = [0, *sorted(cuts), 3000]
    parts = []
    for a, b in zip(bounds[:-1], bounds[1:], strict=True):
        sw = None if w is None else w[a:b]
        parts.append(
            pickle.loads(
                pickle.dumps(fastbce.LossAccumulator(**opts).update(y[a:b], x[a:b], sw, g[a:b]))
            )
        )
    merged = fastbce.LossAccumulator(**opts)
    for p in parts:
        merged.merge(p)
    one, many = whole.result(), merged.result()
    assert many["top_losses"] == one["top_losses"]
    check_scope(many, one | {"std_error": one["std_error"]}, REL)
    for key in one["groups"]:
        check_scope(many["groups"][key], one["groups"][key], REL)
    if w is None:  # whole-number weights: histogram counts are exact, so the AUC is identical
        np.testing.assert_array_equal(merged._state.hist, whole._state.hist)
        assert many["auc"] == one["auc"]
    else:
        assert close(many["auc"], one["auc"])


def test_the_same_for_any_thread_count(simd_target, rng):
    y, x = data(rng, n=3_000_000)
    w = rng.random(y.size).astype(np.float32)
    g = rng.integers(0, 40, y.size)
    results = [
        repr(
            fastbce.evaluate(
                y, x, from_logits=True, sample_weight=w, groups=g, top_losses=5, threads=t
            )
        )
        for t in (1, 2, 3)
    ]
    assert results[0] == results[1] == results[2]


@pytest.mark.parametrize("n", [2 * 65536 + 1, 200_001, 4 * 65536 - 1, 500_001])
@pytest.mark.parametrize(("weighted", "soft"), [(False, False), (True, False), (False, True)])
def test_mid_size_calls_the_same_for_any_thread_count(simd_target, rng, n, weighted, soft):
    """Calls of 2 to 8 chunk units (65536 rows) are cut in at least as many chunks as units, up to
    4, whatever the threads: the report's bits do not depend on how many run them."""
    y, x = data(rng, n=n, soft=soft)
    w = rng.random(y.size).astype(np.float32) if weighted else None
    g = rng.integers(0, 7, y.size)
    results = [
        repr(fastbce.evaluate(y, x, from_logits=True, sample_weight=w, groups=g, threads=t))
        for t in (1, 2, 3)
    ]
    assert results[0] == results[1] == results[2]


def test_report_cost_script_in_batches():
    """benchmarks/report_cost.py times the report in calls of --batch rows (a stream of batches)."""
    script = os.path.join(os.path.dirname(__file__), os.pardir, "benchmarks", "report_cost.py")
    argv = [sys.executable, script, "--n", "300000", "--batch", "131072", "--repeats", "1"]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "calls of 131,072 rows" in out.stdout
    assert re.search(r"^ratio +\d+\.\d\dx", out.stdout, re.M)


@pytest.mark.parametrize("threads", [1, 2])
def test_counted_histogram_equals_float_adds(simd_target, rng, threads):
    """Unweighted hard-label rows count their histogram bins in bytes (carries every 256 rows):
    the histogram equals one float64 add of 1.0 a row (an all-ones weight array), with bins of
    tens of thousands of rows, tiles with rows left out (NaN under "omit", the ignore label) and
    tiles of soft labels in between (whose adds are dyadic here, so exact in any order)."""
    n = 700_000
    x = rng.choice(np.array([-3.0, -0.5, 0.25, 0.25001, 2.0], dtype=np.float32), n)
    y = (rng.random(n) < 0.3).astype(np.float32)
    x[rng.integers(0, n, 40)] = np.nan
    y[rng.integers(0, n, 40)] = 7.0  # (the ignore label)
    y[100_000:101_000] = 0.25
    x[-1] = 9.0  # a bin of one row
    opts = {"from_logits": True, "nan_policy": "omit", "ignore_label": 7.0, "threads": threads}
    counted = fastbce.LossAccumulator(**opts).update(y, x)
    added = fastbce.LossAccumulator(**opts).update(y, x, np.ones(n, dtype=np.float32))
    np.testing.assert_array_equal(counted._state.hist, added._state.hist)
    assert counted._state.hist.max() > 10_000
    assert repr(counted.result()) == repr(added.result())


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("rows", [256, 512, 256 * 255])
def test_counted_bins_of_whole_multiples_of_256(simd_target, threads, rows):
    """A bin whose byte count wrapped to exactly 0 (256, 512, ... rows of one class, with the
    neighbouring bins empty) still has its rows in the histogram: they were once lost (an AUC of
    0 for a perfect ranking)."""
    x = np.repeat(np.array([1.0, -1.0, 0.5, -0.5], dtype=np.float32), [rows, rows, 1, 1])
    y = np.repeat(np.array([1, 0, 0, 1], dtype=np.uint8), [rows, rows, 1, 1])
    counted = fastbce.LossAccumulator(from_logits=True, threads=threads).update(y, x)
    added = fastbce.LossAccumulator(from_logits=True, threads=threads).update(
        y, x, np.ones(y.size, dtype=np.float32)
    )
    np.testing.assert_array_equal(counted._state.hist, added._state.hist)
    assert counted._state.hist.sum() == y.size
    result = counted.result()
    assert close(result["auc"], 1.0 - 1.0 / (rows + 1) ** 2, rel=1e-12)
    assert repr(result) == repr(added.result())


def test_accumulator_pickles_with_the_report(rng):
    y, x = data(rng, n=1000)
    acc = fastbce.LossAccumulator(from_logits=True, top_losses=3, ignore_label=0.5)
    acc.update(y, x, groups=np.arange(1000) % 4)
    copy = pickle.loads(pickle.dumps(acc))
    assert repr(copy.result()) == repr(acc.result())
    assert copy.options["top_losses"] == 3 and copy.options["ignore_label"] == 0.5
    with pytest.raises(ValueError, match="top_losses"):
        copy.merge(fastbce.LossAccumulator(from_logits=True))


def _python_entropy(b: float) -> float:
    if not 0.0 < b < 1.0:
        return 0.0 if b in (0.0, 1.0) else math.nan
    return -b * math.log(b) - (1.0 - b) * math.log1p(-b)


def test_entropies_are_the_python_formula_bit_for_bit():
    """normalized_entropy's denominator (_core.entropies, C++ with the C library's log and
    log1p) has the bits of the Python expression with math.log and math.log1p, at the ends of
    (0, 1), at 0 and 1 (0.0), outside [0, 1] and at NaN (NaN), and on random base rates."""
    rng = np.random.default_rng(11)
    tiny = np.finfo(np.float64).tiny
    special = [0.0, 1.0, -0.0, 0.5, 5e-324, tiny, 1e-300, 1e-16, 1 - 2**-53, 1 - 1e-12, 0.3]
    special += [-1e-300, 1.0000000000000002, 2.0, -1.0, math.nan, math.inf, -math.inf]
    values = np.concatenate([special, rng.random(100_000), 10.0 ** rng.uniform(-300, 0, 50_000)])
    got = _core.entropies(values)
    expected = np.array([_python_entropy(b) for b in values.tolist()])
    np.testing.assert_array_equal(
        got.view(np.uint64)[~np.isnan(expected)], expected.view(np.uint64)[~np.isnan(expected)]
    )
    np.testing.assert_array_equal(np.isnan(got), np.isnan(expected))
