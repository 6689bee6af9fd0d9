"""The report reads its inputs as given: float64 labels of float32 predictions unrounded, an
Arrow dictionary's values that no row has are no groups, Arrow's view types are labels like
any other, and ci95 is the contract's 1.96 standard errors."""

from __future__ import annotations

import math

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


# --------------------------------------------------------------------------- containers (round 19)


class _DLPackOnly:
    """An object that offers its memory through __dlpack__ alone."""

    def __init__(self, a: np.ndarray) -> None:
        self.a = a

    def __dlpack__(self, **kwargs):
        return self.a.__dlpack__(**kwargs)

    def __dlpack_device__(self):
        return self.a.__dlpack_device__()


Y5 = np.array([0, 1, 1, 0, 1], np.float32)
P5 = np.array([0.1, 0.8, 0.6, 0.3, 0.9], np.float32)


def test_accumulators_take_tensors_and_dlpack_objects_as_arrays():
    """A torch tensor's np.size is its .size method and a __dlpack__ object's np.size is 1: the
    accumulators read both as arrays first (update failed, or counted a batch as one row)."""
    want = fastbce.evaluate(Y5, P5, groups=list("abaab"), top_losses=2)
    inputs = [(_DLPackOnly(Y5), _DLPackOnly(P5))]
    torch = pytest.importorskip("torch")
    inputs.append((torch.tensor(Y5), torch.tensor(P5)))
    two = fastbce.LossAccumulator(top_losses=3)
    two.update(Y5, P5).update(Y5, P5[::-1].copy())
    for y, p in inputs:
        got = fastbce.evaluate(y, p, groups=list("abaab"), top_losses=2)
        assert got == want
        acc = fastbce.LossAccumulator(top_losses=3)
        acc.update(y, p).update(Y5, P5[::-1].copy())
        assert acc.result() == two.result() and acc.result()["rows"] == 10
    a = fastbce.LossAccumulator(pos_weight=_DLPackOnly(np.array([2.0])))
    a.merge(fastbce.LossAccumulator(pos_weight=np.array([2.0])))  # (the same values: merges)
    with pytest.raises(ValueError, match="y_pred is not array-like"):  # (NumPy's words alone)
        fastbce.evaluate([[0, 1], [1, 0]], [[0.1, 0.2], [0.3]])


def test_integer_prediction_columns_with_missing_values_are_a_type_error():
    """pandas, pyarrow and polars give a nullable integer column with a missing value to NumPy
    as float64 with NaN; it is an integer column all the same."""
    pd = pytest.importorskip("pandas")
    pa = pytest.importorskip("pyarrow")
    columns = [pd.Series([0, None, 1, 0], dtype="Int64"), pa.array([0, None, 1, 0])]
    try:
        import polars as pl

        columns.append(pl.Series([0, None, 1, 0]))
    except ImportError:
        pass
    for p in columns:
        with pytest.raises(TypeError, match="y_pred must be float16, float32 or float64"):
            fastbce.binary_crossentropy(Y5[:4], p, nan_policy="omit")


def test_nullable_frames_and_polars_columns_read_missing_labels_as_nan():
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame({"a": [0, None], "b": [True, False]}).astype(
        {"a": "Int64", "b": "boolean"}
    )
    pred = np.array([[0.2, 0.7], [0.6, 0.3]])
    want = fastbce.binary_crossentropy(np.array([[0, 1], [np.nan, 0]]), pred, nan_policy="omit")
    assert fastbce.binary_crossentropy(frame, pred, nan_policy="omit") == want
    with pytest.raises(TypeError, match="y_true must hold"):
        fastbce.binary_crossentropy(pd.DataFrame({"a": [0, "x"]}), pred[:, :1])
    pl = pytest.importorskip("polars")
    labels = pl.Series([True, None, False, True])
    got = fastbce.binary_crossentropy(labels, P5[:4], nan_policy="omit")
    assert got == fastbce.binary_crossentropy([1.0, np.nan, 0.0, 1.0], P5[:4], nan_policy="omit")


def test_polars_integer_groups_with_nulls_keep_integer_keys():
    """NumPy reads a polars Int64 column with a null as floats (1 -> 1.0, 2**62 + 1 rounded):
    the keys are the column's integers and None, as for pandas' nullable Int64."""
    pl = pytest.importorskip("polars")
    big = 2**62 + 1
    for labels, keys in [
        (pl.Series([1, None, 2, 1, 2]), [1, 2, None]),
        (pl.Series([big, None, big, 1, 1]), [1, big, None]),
        (pl.Series([3, None, 200, 3, 3], dtype=pl.UInt8), [3, 200, None]),
    ]:
        got = fastbce.evaluate(Y5, P5, groups=labels)["groups"]
        assert list(got) == keys
        assert all(type(k) is int for k in list(got)[:-1])
        assert [g["rows"] for g in got.values()] == [labels.to_list().count(k) for k in keys]


@pytest.mark.parametrize(
    "labels, keys",
    [
        ([1, "1", 1, "1", 1], [1, "1"]),  # (NumPy made both "1": one group of 5)
        ([b"a", "a", b"a", "a", "a"], [b"a", "a"]),
        ([(1, 2), (3, 4), (1, 2), (3, 4), (1, 2)], [(1, 2), (3, 4)]),  # (a 2-D array)
        (["\ud800", "a", "\ud800", "a", "a"], ["a", "\ud800"]),  # (not UTF-8: Arrow refused it)
    ],
)
def test_list_group_labels_keep_their_types(labels, keys):
    got = fastbce.evaluate(Y5, P5, groups=labels)["groups"]
    assert sorted(got, key=repr) == sorted(keys, key=repr)
    assert sum(g["rows"] for g in got.values()) == 5


def test_unhashable_group_labels_are_a_type_error_naming_them():
    for labels in ([{"a": 1}] * 5, [{1}, {2}, {1}, {2}, {1}], [1, "a", [2], "a", 1]):
        with pytest.raises(TypeError, match="group labels must be hashable"):
            fastbce.evaluate(Y5, P5, groups=labels)


def test_weights_of_rows_without_elements_are_checked():
    with pytest.raises(ValueError, match=r"sample_weight must be .* got -1.0 at flat index 1"):
        fastbce.binary_crossentropy(np.zeros((2, 0)), np.full((2, 0), 0.5), sample_weight=[1, -1])


def test_gradient_outputs_may_be_the_columns_of_one_array():
    y, x = Y5[:4], np.array([0.5, -1.0, 2.0, 0.1], np.float32)
    both = np.zeros((4, 2), np.float32)
    g, h = fastbce.binary_crossentropy_grad(y, x, out=(both[:, 0], both[:, 1]))
    want = fastbce.binary_crossentropy_grad(y, x)
    np.testing.assert_array_equal(both[:, 0], want[0])
    np.testing.assert_array_equal(both[:, 1], want[1])
    with pytest.raises(ValueError, match="must not overlap"):
        fastbce.binary_crossentropy_grad(y, x, out=(both[:, 0], both[::-1, 0][::-1]))


def test_group_columns_arrow_dictionaries_without_rows_and_big_endian_integers():
    pa = pytest.importorskip("pyarrow")
    y, p = Y5[:4], P5[:4]
    d = pa.array(["a", "b", "a", "b"]).dictionary_encode()

    def rows(report):
        return {k: g["rows"] for k, g in report["groups"].items()}

    # (an empty chunk or only nulls reached a C++ scan of no positions: RuntimeError)
    chunked = pa.chunked_array([d.slice(0, 2), d.slice(2, 0), d.slice(2)])
    assert rows(fastbce.evaluate(y, p, groups=chunked)) == {"a": 2, "b": 2}
    assert rows(fastbce.evaluate(y[:0], p[:0], groups=d.slice(0, 0))) == {}
    assert rows(fastbce.evaluate(y, p, groups=pa.nulls(4))) == {None: 4}
    # (big-endian integers were read byte-swapped: 7 as 117440512)
    for dtype in (">i2", ">i4", ">i8", ">u4", ">u8"):
        got = rows(fastbce.evaluate(y, p, groups=np.array([7, 8, 7, 8], dtype)))
        assert got == {7: 2, 8: 2}, dtype
    # NaN among text labels is missing (NumPy made it "nan"); big ints stay apart
    assert rows(fastbce.evaluate(y, p, groups=["a", math.nan, "b", "a"])) == {
        "a": 2, "b": 1, None: 1,
    }  # fmt: skip
    assert rows(fastbce.evaluate(y, p, groups=[0, 2**63, 2**63 + 1, 0])) == {
        0: 2, 2**63: 1, 2**63 + 1: 1,
    }  # fmt: skip


def test_mixed_type_groups_put_the_missing_one_last_however_the_rows_come():
    """Keys that cannot be ordered come first seen, and None last (one pass gave [1, 'a', None],
    two batches [1, None, 'a'])."""
    y, p = Y5[:3], P5[:3]
    labels = np.array([1, None, "a"], dtype=object)
    whole = list(fastbce.evaluate(y, p, groups=labels)["groups"])
    acc = fastbce.LossAccumulator()
    acc.update(y[:2], p[:2], groups=labels[:2]).update(y[2:], p[2:], groups=labels[2:])
    assert whole == list(acc.result()["groups"]) == [1, "a", None]
