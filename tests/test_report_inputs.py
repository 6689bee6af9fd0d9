"""The report reads its inputs as given: float64 labels of float32 predictions unrounded, an
Arrow dictionary's values that no row has are no groups, Arrow's view types are labels like
any other, and ci95 is the contract's 1.96 standard errors."""

from __future__ import annotations

import numpy as np
import pytest

import fastbce
from fastbce._loss_sums import LossSums

pa = pytest.importorskip("pyarrow")


def _soft_float64_labels(n, rng):
    y = rng.random(n)
    y[::3] = np.round(y[::3])
    y[7], y[8] = 1 - 1e-12, 1e-13  # (0 and 1 in float32)
    return y


@pytest.mark.parametrize(
    "options",
    [
        {"from_logits": True},
        {"from_logits": False},
        {"from_logits": True, "weighted": True},
        {"from_logits": True, "gamma": 2.0},
        {"from_logits": True, "label_smoothing": 0.1},
    ],
    ids=str,
)
def test_float64_labels_of_float32_predictions_are_taken_as_given(simd_target, options):
    rng = np.random.default_rng(3)
    n = 3000
    y = _soft_float64_labels(n, rng)
    x = rng.standard_normal(n).astype(np.float32)
    kw = dict(options)
    w = np.ones(n)
    if kw.pop("weighted", False):
        kw["sample_weight"] = rng.random(n).astype(np.float32)
        w = kw["sample_weight"].astype(np.float64)
    if not kw["from_logits"]:
        x = (1 / (1 + np.exp(-x.astype(np.float64)))).astype(np.float32)
    p = 1 / (1 + np.exp(-x.astype(np.float64))) if kw["from_logits"] else x.astype(np.float64)
    got = fastbce.evaluate(y, x, top_losses=5, **kw)
    want = {
        "base_rate": (w * y).sum() / w.sum(),
        "brier": (w * (p - y) ** 2).sum() / w.sum(),
        "calibration": (w * p).sum() / (w * y).sum(),
    }
    for key, value in want.items():
        assert got[key] == pytest.approx(value, rel=1e-12), key
    assert all(t["y_true"] == y[t["row"]] for t in got["top_losses"])
    # rows 7 and 8 are soft: with them alone the labels are not 0 and 1
    two = fastbce.evaluate(y[7:9], x[7:9], **{k: v for k, v in kw.items() if k != "sample_weight"})
    assert two["base_rate"] == pytest.approx((y[7] + y[8]) / 2, rel=1e-15)


def test_float64_labels_by_group_and_ignore_label(simd_target):
    rng = np.random.default_rng(4)
    n = 2000
    y = _soft_float64_labels(n, rng)
    x = rng.standard_normal(n).astype(np.float32)
    g = rng.integers(0, 3, n)
    got = fastbce.evaluate(y, x, from_logits=True, groups=g)
    for k in range(3):
        assert got["groups"][k]["base_rate"] == pytest.approx(y[g == k].mean(), rel=1e-12)
    # the ignore label matches the label as given, not its float32 rounding
    near = np.array([0.3, np.nextafter(0.3, 1.0), 0.3])
    report = fastbce.evaluate(near, np.zeros(3, np.float32), from_logits=True, ignore_label=0.3)
    assert report["ignored"] == 2 and report["rows"] == 1


def _countries(indices, values=("de", "fr", "us")):
    return pa.DictionaryArray.from_arrays(pa.array(indices, pa.int32()), pa.array(list(values)))


@pytest.mark.parametrize("kind", ["evaluate", "accumulator", "loss_sums"])
def test_dictionary_values_that_no_row_has_are_no_groups(kind):
    y, x = [1, 0, 1, 0, 1], [0.5, -1.0, 2.0, 0.0, 1.0]
    groups = _countries([0, 1, 0, 1, None])
    as_list = ["de", "fr", "de", "fr", None]
    if kind == "evaluate":
        got = fastbce.evaluate(y, x, from_logits=True, groups=groups)
        want = fastbce.evaluate(y, x, from_logits=True, groups=as_list)
    else:
        make = fastbce.LossAccumulator if kind == "accumulator" else LossSums
        acc, ref = make(from_logits=True), make(from_logits=True)
        acc.update(y, x, groups=groups)
        acc.update(y[:2], x[:2], groups=_countries([2, 2]))  # ("us" now has rows)
        ref.update(y, x, groups=as_list)
        ref.update(y[:2], x[:2], groups=["us", "us"])
        got, want = acc.result(), ref.result()
    assert list(got["groups"]) == list(want["groups"])
    for key in got["groups"]:
        assert got["groups"][key]["rows"] == want["groups"][key]["rows"]
        assert got["groups"][key]["sum"] == pytest.approx(want["groups"][key]["sum"], rel=1e-15)


def test_a_large_unused_dictionary_does_not_coarsen_the_histograms():
    # (a filtered table keeps its whole dictionary: 70,000 values, 2 used; counted as groups they
    # left the histograms no bits, so the two real groups had no auc)
    rng = np.random.default_rng(0)
    dictionary = pa.array([f"k{i}" for i in range(70_000)])
    idx = rng.choice([3, 9], 2000)
    groups = pa.DictionaryArray.from_arrays(pa.array(idx.astype(np.int32)), dictionary)
    y = (rng.random(2000) < 0.3).astype(float)
    x = rng.standard_normal(2000)
    got = fastbce.evaluate(y, x, from_logits=True, groups=groups)
    want = fastbce.evaluate(y, x, from_logits=True, groups=[f"k{i}" for i in idx])
    assert list(got["groups"]) == ["k3", "k9"]
    for key in ("k3", "k9"):
        assert np.isfinite(got["groups"][key]["auc"])
        assert got["groups"][key]["auc"] == want["groups"][key]["auc"]
        assert got["groups"][key]["ece"] == want["groups"][key]["ece"]


@pytest.mark.parametrize("view", ["string_view", "binary_view"])
def test_arrow_view_labels_are_groups(view):
    values = ["a", "b", None, "a"]
    if view == "binary_view":
        values = [None if v is None else v.encode() for v in values]
    groups = pa.array(values, getattr(pa, view)())
    y, x = [1, 0, 1, 0], [0.3, 0.6, 0.2, 0.1]
    want = fastbce.evaluate(y, x, groups=values)
    got = fastbce.evaluate(y, x, groups=groups)
    assert list(got["groups"]) == list(want["groups"])
    acc = fastbce.LossAccumulator()
    acc.update(y * 2, x * 2, groups=pa.chunked_array([groups, groups]))
    assert {k: v["rows"] for k, v in acc.result()["groups"].items()} == {
        k: 2 * v["rows"] for k, v in want["groups"].items()
    }


def test_ci95_is_the_mean_plus_and_minus_1_96_standard_errors():
    got = fastbce.evaluate([0, 1, 1, 0], [0.2, 0.9, 0.6, 0.4])
    m, se = got["weighted_mean"], got["std_error"]
    assert got["ci95"] == [m - 1.96 * se, m + 1.96 * se]


# --------------------------------------------------------------------------- missing labels


def test_missing_labels_of_nullable_and_arrow_columns_are_nan():
    """pd.NA in a pandas boolean or Int label column and null in an Arrow one are a NaN label, as
    fastbce.dask reads them (in memory they were a TypeError, "dtype object"): nan_policy
    decides. A boolean prediction with a missing value stays a TypeError."""
    pd = pytest.importorskip("pandas")
    pa = pytest.importorskip("pyarrow")
    x = np.array([0.5, -1.0, 2.0, -0.25], np.float32)
    plain = np.array([1.0, 0.0, np.nan, 1.0])
    columns = [
        pd.Series([True, False, pd.NA, True], dtype="boolean"),
        pd.array([1, 0, None, 1], dtype="Int8"),
        pa.array([True, False, None, True]),
        pa.chunked_array([[1, 0], [None, 1]]),
    ]
    for y in columns:
        for policy in ("omit", "propagate"):
            want = fastbce.binary_crossentropy(plain, x, from_logits=True, nan_policy=policy)
            got = fastbce.binary_crossentropy(y, x, from_logits=True, nan_policy=policy)
            np.testing.assert_equal(got, want)
        with pytest.raises(ValueError, match="y_true is NaN at flat index 2"):
            fastbce.binary_crossentropy(y, x, from_logits=True, nan_policy="raise")
        assert fastbce.evaluate(y, x, from_logits=True, nan_policy="omit")["omitted"] == 1
    assert columns[0].isna().tolist() == [False, False, True, False]  # (left as it was)
    for p in (pd.Series([True, pd.NA], dtype="boolean"), pa.array([True, None])):
        with pytest.raises(TypeError, match="y_pred"):
            fastbce.binary_crossentropy([1.0, 0.0], p)
