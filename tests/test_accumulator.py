"""LossAccumulator and encode_labels (issue #4): sums over pieces equal one pass over the whole."""

from __future__ import annotations

import math
import pickle

import numpy as np
import pytest

import fastbce

REL = 1e-12


def _data(rng: np.random.Generator, n: int = 5000, dtype=np.float32, logits: bool = False):
    y = (rng.random(n) < 0.4).astype(np.uint8)
    x = rng.normal(size=n) if logits else rng.random(n)
    w = rng.random(n) * 2.0
    g = rng.choice(np.array(["north", "south", "east", "west"]), n)
    return y, x.astype(dtype), w, g


def _close(a: float, b: float, rel: float = REL) -> bool:
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return a == pytest.approx(b, rel=rel, abs=0.0)


def _same_result(a: dict, b: dict, rel: float = REL) -> None:
    assert a["rows"] == b["rows"]
    for field in ("sum", "mean", "weighted_mean"):
        assert _close(a[field], b[field], rel), (field, a[field], b[field])
    assert set(a["groups"]) == set(b["groups"])
    for key in a["groups"]:
        ga, gb = a["groups"][key], b["groups"][key]
        assert ga["rows"] == gb["rows"], key
        for field in ("sum", "mean", "weighted_mean"):
            assert _close(ga[field], gb[field], rel), (key, field, ga[field], gb[field])


# --------------------------------------------------------------------------- one pass


def test_equals_the_reductions(simd_target, rng):
    y, x, w, g = _data(rng, logits=True)
    acc = fastbce.LossAccumulator(from_logits=True).update(y, x, sample_weight=w, groups=g)
    r = acc.result()
    assert set(r) >= {"rows", "sum", "mean", "weighted_mean", "groups", "auc", "reliability"}
    assert r["rows"] == y.size
    for reduction in ("sum", "mean", "weighted_mean"):
        expected = fastbce.binary_crossentropy(
            y, x, from_logits=True, sample_weight=w, reduction=reduction
        )
        assert _close(r[reduction], expected)  # the same elementwise loss, summed in float64
    for key in np.unique(g):
        m = g == key
        group = r["groups"][key]
        assert set(group) >= {"rows", "sum", "mean", "weighted_mean", "auc", "ci95"}
        assert group["rows"] == m.sum()
        for reduction in ("sum", "mean", "weighted_mean"):
            expected = fastbce.binary_crossentropy(
                y[m], x[m], from_logits=True, sample_weight=w[m], reduction=reduction
            )
            assert _close(group[reduction], expected), (key, reduction)


def test_group_sums_add_up_to_the_total(rng):
    y, x, w, g = _data(rng)
    r = fastbce.LossAccumulator().update(y, x, w, g).result()
    assert sum(v["rows"] for v in r["groups"].values()) == r["rows"]
    assert _close(sum(v["sum"] for v in r["groups"].values()), r["sum"])


@pytest.mark.parametrize("threads", [1, 2, 3])
@pytest.mark.parametrize("nan_policy", ["propagate", "omit"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_group_sums_are_the_elementwise_losses_in_order(
    simd_target, rng, threads, nan_policy, dtype
):
    """Each group's sums are its rows' float32 (float64) losses and weights added in float64 in
    row order (one block: n below the kernel's block size), whatever the threads; integer labels
    that are their own codes (0..k), offset ones, and a strided array give the same sums."""
    n = 50_000
    y, x, w, _ = _data(rng, n=n, dtype=dtype, logits=True)
    if nan_policy == "omit":
        x[rng.choice(n, 100, replace=False)] = np.nan
    w = w.astype(dtype)
    codes = rng.integers(0, 37, size=2 * n)
    options = {"from_logits": True, "nan_policy": nan_policy, "threads": threads}
    losses = fastbce.binary_crossentropy(y, x, sample_weight=w, reduction="none", **options)
    kept = ~np.isnan(x)
    expected = {}
    for key in range(37):
        m = (codes[::2] == key) & kept
        # (np.cumsum adds one after another, in order)
        expected[key] = (
            np.cumsum(losses[m].astype(np.float64))[-1],
            np.cumsum(w[m].astype(np.float64))[-1],
        )
    for labels in (codes[::2], np.ascontiguousarray(codes[::2]), codes[::2] + 1000):
        r = fastbce.LossAccumulator(**options).update(y, x, w, labels).result()
        for key, (loss, weight) in expected.items():
            group = r["groups"][key + (1000 if labels[0] != codes[0] else 0)]
            assert group["sum"] == loss
            assert group["sum"] / group["weighted_mean"] == pytest.approx(weight, rel=1e-15)


# --------------------------------------------------------------------------- merging


@pytest.mark.parametrize("seed", range(6))
def test_merge_over_random_splits_equals_one_pass(seed):
    rng = np.random.default_rng(seed)
    y, x, w, g = _data(rng, n=20_000, dtype=np.float64 if seed % 2 else np.float32)
    options = {"gamma": 1.5, "alpha": 0.3, "label_smoothing": 0.05} if seed % 3 == 0 else {}
    whole = fastbce.LossAccumulator(**options).update(y, x, w, g).result()

    cuts = np.sort(rng.choice(np.arange(1, y.size), size=rng.integers(1, 40), replace=False))
    pieces = []
    for a, b in zip(np.r_[0, cuts], np.r_[cuts, y.size], strict=True):
        pieces.append(fastbce.LossAccumulator(**options).update(y[a:b], x[a:b], w[a:b], g[a:b]))
    rng.shuffle(pieces)  # merged in any order, linearly and as a tree
    linear = fastbce.LossAccumulator(**options)
    for piece in pieces:
        linear.merge(piece)
    _same_result(linear.result(), whole)

    level = [pickle.loads(pickle.dumps(p)) for p in pieces]
    while len(level) > 1:
        level = [
            level[i].merge(level[i + 1]) if i + 1 < len(level) else level[i]
            for i in range(0, len(level), 2)
        ]
    _same_result(level[0].result(), whole)


def test_update_in_batches_equals_one_pass(rng):
    y, x, w, g = _data(rng, n=10_000)
    whole = fastbce.LossAccumulator().update(y, x, w, g).result()
    acc = fastbce.LossAccumulator()
    for a in range(0, y.size, 777):
        acc.update(y[a : a + 777], x[a : a + 777], w[a : a + 777], g[a : a + 777])
    _same_result(acc.result(), whole)


def test_a_group_missing_from_some_pieces(rng):
    y, x, _, _ = _data(rng, n=100)
    g = np.array(["a"] * 50 + ["b"] * 50)
    first = fastbce.LossAccumulator().update(y[:50], x[:50], groups=g[:50])
    second = fastbce.LossAccumulator().update(y[50:], x[50:], groups=g[50:])
    merged = first.merge(second).result()
    assert list(merged["groups"]) == ["a", "b"]
    _same_result(merged, fastbce.LossAccumulator().update(y, x, groups=g).result())


def test_merge_refuses_different_options(rng):
    a = fastbce.LossAccumulator(from_logits=True)
    b = fastbce.LossAccumulator(from_logits=False)
    with pytest.raises(ValueError, match="from_logits=True vs False"):
        a.merge(b)
    with pytest.raises(ValueError, match="pos_weight"):
        fastbce.LossAccumulator(pos_weight=2.0).merge(fastbce.LossAccumulator())
    with pytest.raises(TypeError, match="LossAccumulator"):
        a.merge({"rows": 1})
    # NumPy 2 compares np.float32(0.1) == 0.1 in float32 (True), but their float64 losses differ
    for name, value in (("gamma", 0.1), ("epsilon", 1e-7), ("logit_offset", 0.3)):
        with pytest.raises(ValueError, match=rf"{name}={value!r} vs np\.float32"):
            kw = {"from_logits": True} if name == "logit_offset" else {}
            fastbce.LossAccumulator(**{name: value}, **kw).merge(
                fastbce.LossAccumulator(**{name: np.float32(value)}, **kw)
            )
    # the same number in another type is the same option; threads and validate do not change
    # the value: merging is fine
    fastbce.LossAccumulator(gamma=2).merge(fastbce.LossAccumulator(gamma=np.float64(2.0)))
    fastbce.LossAccumulator(threads=1).merge(fastbce.LossAccumulator(validate=False))


# --------------------------------------------------------------------------- pickling


def test_a_few_rows_pickle_to_a_few_kilobytes(rng):
    # (a Dask chunk's accumulator travels pickled: its histograms, 2 MB for the whole input and
    # more per group, went whole, nearly all zeros; their nonzero cells go now, and come back)
    y, x, w, g = _data(rng)
    acc = fastbce.LossAccumulator(from_logits=True).update(y[:5], x[:5], w[:5], g[:5])
    assert len(pickle.dumps(acc)) < 16_384
    copy = pickle.loads(pickle.dumps(acc))
    assert repr(copy.result()) == repr(acc.result())
    copy.update(y, x, w, g)
    assert repr(copy.result()) == repr(acc.update(y, x, w, g).result())


def test_pickle_round_trip(rng):
    y, x, w, g = _data(rng)
    acc = fastbce.LossAccumulator(gamma=2.0, pos_weight=np.float64(3.0)).update(y, x, w, g)
    copy = pickle.loads(pickle.dumps(acc))
    assert repr(copy.result()) == repr(acc.result())  # (repr: NaN equals NaN)
    assert copy.options == acc.options
    # still works after the trip: more data, more groups, merges
    copy.update(y[:10], x[:10], groups=np.array(["new"] * 10))
    assert copy.result()["groups"]["new"]["rows"] == 10
    copy.merge(acc)
    assert copy.result()["rows"] == 2 * y.size + 10


def test_pickle_of_an_empty_accumulator():
    acc = pickle.loads(pickle.dumps(fastbce.LossAccumulator()))
    r = acc.result()
    assert r["rows"] == 0 and r["sum"] == 0.0 and r["groups"] == {}
    assert math.isnan(r["mean"]) and math.isnan(r["weighted_mean"])


# --------------------------------------------------------------------------- groups


def test_integer_groups(rng):
    y, x, _, _ = _data(rng, n=1000)
    g = rng.integers(0, 5, size=1000) * 10
    r = fastbce.LossAccumulator().update(y, x, groups=g).result()
    assert list(r["groups"]) == [0, 10, 20, 30, 40]
    assert all(type(k) is int for k in r["groups"])  # Python ints, not NumPy scalars
    for key in r["groups"]:
        assert _close(
            r["groups"][key]["mean"], fastbce.binary_crossentropy(y[g == key], x[g == key])
        )


def test_string_groups_from_a_list_and_object_array(rng):
    y, x, _, _ = _data(rng, n=6)
    labels = ["b", "a", "b", "c", "a", "b"]
    r1 = fastbce.LossAccumulator().update(y, x, groups=labels).result()
    r2 = fastbce.LossAccumulator().update(y, x, groups=np.array(labels, dtype=object)).result()
    assert list(r1["groups"]) == ["a", "b", "c"]
    assert all(type(k) is str for k in r1["groups"])
    _same_result(r1, r2)
    assert r1["groups"]["b"]["rows"] == 3


def test_missing_group_labels_go_under_none(rng):
    y, x, _, _ = _data(rng, n=6)
    r = (
        fastbce.LossAccumulator()
        .update(y, x, groups=np.array(["a", None, "b", float("nan"), "a", None], dtype=object))
        .result()
    )
    assert list(r["groups"]) == ["a", "b", None]
    assert r["groups"][None]["rows"] == 3
    floats = fastbce.LossAccumulator().update(y, x, groups=[1.0, np.nan, 2.0, 1.0, np.nan, 2.0])
    assert list(floats.result()["groups"]) == [1.0, 2.0, None]


def test_groups_from_pyarrow_and_pandas(rng):
    import pandas as pd
    import pyarrow as pa

    y, x, _, _ = _data(rng, n=8)
    labels = ["x", "y", None, "x", "y", "y", None, "x"]
    expected = fastbce.LossAccumulator().update(y, x, groups=np.array(labels, dtype=object))
    from_arrow = fastbce.LossAccumulator().update(y, x, groups=pa.array(labels))
    from_dict = fastbce.LossAccumulator().update(y, x, groups=pa.array(labels).dictionary_encode())
    from_pandas = fastbce.LossAccumulator().update(y, x, groups=pd.Series(labels))
    for acc in (from_arrow, from_dict, from_pandas):
        _same_result(acc.result(), expected.result())


def test_groups_per_row_of_2d_input(rng):
    y = (rng.random((30, 4)) < 0.5).astype(np.float32)
    x = rng.random((30, 4)).astype(np.float32)
    g = np.repeat([7, 8, 9], 10)
    r = fastbce.LossAccumulator().update(y, x, groups=g).result()
    assert r["rows"] == 120  # elements counted: rows x classes
    assert r["groups"][8]["rows"] == 40
    assert _close(r["groups"][8]["mean"], fastbce.binary_crossentropy(y[10:20], x[10:20]))


def test_group_errors(rng):
    y, x, _, _ = _data(rng, n=5)
    acc = fastbce.LossAccumulator()
    with pytest.raises(ValueError, match=r"one label per row of y_pred \(5\); got 4"):
        acc.update(y, x, groups=["a"] * 4)
    with pytest.raises(ValueError, match="1-D"):
        acc.update(y, x, groups=np.zeros((5, 2)))
    with pytest.raises(ValueError, match="at least one axis"):
        acc.update(np.float32(1), np.float32(0.5), groups=["a"])
    assert acc.result()["rows"] == 0


def test_labels_of_mixed_types_in_one_batch_as_in_several(rng):
    # (one batch raised "cannot be ordered" where the same labels over two batches were taken)
    y, x, _, _ = _data(rng, n=6)
    labels = np.array(["a", 1, "b", 1, "a", 2.5], dtype=object)
    one = fastbce.LossAccumulator().update(y, x, groups=labels).result()["groups"]
    acc = fastbce.LossAccumulator()
    acc.update(y[:3], x[:3], groups=labels[:3]).update(y[3:], x[3:], groups=labels[3:])
    split = acc.result()["groups"]
    assert list(one) == list(split) == ["a", 1, "b", 2.5]  # (first seen: no order exists)
    for key, rows in (("a", [0, 4]), (1, [1, 3]), ("b", [2]), (2.5, [5])):
        assert one[key]["rows"] == split[key]["rows"] == len(rows)
        assert _close(one[key]["sum"], split[key]["sum"])
        assert _close(
            one[key]["sum"], fastbce.binary_crossentropy(y[rows], x[rows], reduction="sum")
        )


def test_empty_batches(rng):
    acc = fastbce.LossAccumulator()
    acc.update(np.zeros(0, np.uint8), np.zeros(0, np.float32), groups=np.array([], dtype=str))
    r = acc.result()
    assert r["rows"] == 0 and r["sum"] == 0.0 and r["groups"] == {}


# --------------------------------------------------------------------------- options and NaN


def test_a_failed_update_leaves_the_accumulator_as_it_was(rng):
    y, x, _, g = _data(rng, n=100)
    acc = fastbce.LossAccumulator().update(y, x, groups=g)
    before = acc.result()
    bad = y.copy()
    bad[50] = 2
    with pytest.raises(ValueError, match="y_true must be in"):
        acc.update(bad, x, groups=g)
    assert repr(acc.result()) == repr(before)  # (repr: NaN equals NaN)


def test_omit_policy_counts_only_the_rows_without_nan(rng):
    y, x, w, g = _data(rng, n=1000, dtype=np.float64)
    x[::7] = np.nan
    w[::11] = np.nan
    r = fastbce.LossAccumulator(nan_policy="omit").update(y, x, w, g).result()
    keep = ~(np.isnan(x) | np.isnan(w))
    assert r["rows"] == keep.sum()
    assert _close(
        r["sum"],
        fastbce.binary_crossentropy(y, x, sample_weight=w, nan_policy="omit", reduction="sum"),
    )
    assert _close(
        r["weighted_mean"],
        fastbce.binary_crossentropy(
            y[keep], x[keep], sample_weight=w[keep], reduction="weighted_mean"
        ),
    )
    for key in np.unique(g):
        m = (g == key) & keep
        assert r["groups"][key]["rows"] == m.sum()
        assert _close(
            r["groups"][key]["mean"], fastbce.binary_crossentropy(y[m], x[m], sample_weight=w[m])
        )
    propagate = fastbce.LossAccumulator().update(y, x).result()
    assert propagate["rows"] == 1000 and math.isnan(propagate["mean"])


def test_a_group_with_every_row_omitted(rng):
    y = np.array([1, 0, 1], np.uint8)
    x = np.array([0.5, np.nan, 0.25])
    r = fastbce.LossAccumulator(nan_policy="omit").update(y, x, groups=["a", "b", "a"]).result()
    assert r["groups"]["b"]["rows"] == 0 and r["groups"]["b"]["sum"] == 0.0
    assert math.isnan(r["groups"]["b"]["mean"])


OPTIONS = [
    {},
    {"from_logits": True},
    {"epsilon": 1e-3},
    {"label_smoothing": 0.2},
    {"pos_weight": 2.5},
    {"gamma": 2.0},
    {"gamma": 0.5, "alpha": 0.25},
    {"alpha": 0.7},
    {"nan_policy": "omit"},
    {"validate": False},
    {"threads": 1},
    {"from_logits": True, "pos_weight": 0.5, "gamma": 1.0, "label_smoothing": 0.1},
]


@pytest.mark.parametrize("options", OPTIONS, ids=lambda o: ",".join(o) or "defaults")
def test_every_option_passes_through(options, rng):
    y, x, w, g = _data(rng, n=3000, logits=options.get("from_logits", False))
    y = np.where(rng.random(y.size) < 0.1, 0.5, y).astype(np.float32)  # some soft labels
    acc = fastbce.LossAccumulator(**options).update(y, x, w, g)
    r = acc.result()
    for reduction in ("sum", "mean", "weighted_mean"):
        expected = fastbce.binary_crossentropy(
            y, x, sample_weight=w, reduction=reduction, **options
        )
        assert _close(r[reduction], expected), reduction
    m = g == "east"
    assert _close(
        r["groups"]["east"]["sum"],
        fastbce.binary_crossentropy(y[m], x[m], sample_weight=w[m], reduction="sum", **options),
    )
    assert acc.options == {**acc.options, **options}


def test_per_class_pos_weight(rng):
    y = (rng.random((50, 3)) < 0.5).astype(np.uint8)
    x = rng.normal(size=(50, 3)).astype(np.float32)
    q = np.array([1.0, 2.0, 0.5])
    acc = fastbce.LossAccumulator(from_logits=True, pos_weight=q).update(y, x)
    assert acc.result()["mean"] == fastbce.binary_crossentropy(y, x, from_logits=True, pos_weight=q)
    # equal per-class arrays merge; different ones do not
    acc.merge(fastbce.LossAccumulator(from_logits=True, pos_weight=q.copy()))
    with pytest.raises(ValueError, match="pos_weight"):
        acc.merge(fastbce.LossAccumulator(from_logits=True, pos_weight=q * 2))


def test_bad_options_fail_in_the_constructor():
    with pytest.raises(ValueError, match="epsilon"):
        fastbce.LossAccumulator(epsilon=0.7)
    with pytest.raises(ValueError, match="nan_policy"):
        fastbce.LossAccumulator(nan_policy="drop")
    with pytest.raises(TypeError):
        fastbce.LossAccumulator(reduction="mean")  # not an accumulator option
    with pytest.raises(TypeError):
        fastbce.LossAccumulator(True)  # keyword-only


# --------------------------------------------------------------------------- encode_labels


def test_encode_string_labels():
    out = fastbce.encode_labels(["cat", "dog", "dog", "cat"], "dog")
    assert out.dtype == np.uint8
    assert out.tolist() == [0, 1, 1, 0]
    arr = np.array(["cat", "dog", "bird"])
    assert fastbce.encode_labels(arr, "cat").tolist() == [1, 0, 0]


def test_encode_integer_labels():
    assert fastbce.encode_labels(np.array([1, 2, 2, 1]), 2).tolist() == [0, 1, 1, 0]
    assert fastbce.encode_labels([3, 4, 5], 5).tolist() == [0, 0, 1]


def test_encoded_labels_score_like_a_comparison(rng):
    classes = rng.choice(np.array(["spam", "ham"]), 100)
    p = rng.random(100).astype(np.float32)
    assert fastbce.binary_crossentropy(fastbce.encode_labels(classes, "spam"), p) == (
        fastbce.binary_crossentropy(classes == "spam", p)
    )


def test_encode_labels_names_a_missing_positive_label():
    with pytest.raises(ValueError) as e:
        fastbce.encode_labels(["cat", "dog", "dog", "bird"], "dgo")
    message = str(e.value)
    assert "'dgo'" in message and "'bird', 'cat', 'dog'" in message
    with pytest.raises(ValueError, match=r"'2' does not occur.*1, 2, 3 \(labels of type int64\)"):
        fastbce.encode_labels(np.array([1, 2, 3], dtype=np.int64), "2")  # a str for int labels
    with pytest.raises(ValueError, match=r"\.\.\."):
        fastbce.encode_labels(np.arange(100), 1000)  # shows a few values only
    with pytest.raises(TypeError, match="cannot be class labels"):
        fastbce.encode_labels(np.array([1 + 2j]), 1)


@pytest.mark.parametrize("large", [False, True])
def test_text_dictionaries_over_many_batches(rng, large):
    """Arrow dictionaries of strings (as parquet row groups give) share one table of the text
    keys across batches: repeated, new, sliced and large_string dictionaries, and a batch that
    fails leaves no key behind."""
    pa = pytest.importorskip("pyarrow")
    text = pa.large_string() if large else pa.string()
    names = np.array([f"k{i:03d}" for i in range(300)], dtype=object)
    acc = fastbce.LossAccumulator()
    ys, xs, labels = [], [], []
    for batch in range(6):
        n = 2000
        y, x, _, _ = _data(rng, n=n)
        picked = names[rng.integers(0, 40 * (batch + 1), n)]
        column = pa.array(picked, type=text).dictionary_encode()
        if batch == 3:  # a slice of a longer dictionary array
            longer = pa.array(np.concatenate([picked, names[:5]]), type=text)
            column = longer.dictionary_encode().slice(0, n)
        if batch == 4:  # fails: one label short; its new keys are forgotten
            with pytest.raises(ValueError, match="one label per row"):
                acc.update(y, x, groups=pa.array(names[250:], type=text).dictionary_encode())
        acc.update(y, x, groups=column)
        ys.append(y)
        xs.append(x)
        labels.append(picked)
    y, x, g = np.concatenate(ys), np.concatenate(xs), np.concatenate(labels)
    r = acc.result()
    assert list(r["groups"]) == sorted(set(g.tolist()))
    for key, group in r["groups"].items():
        m = g == key
        assert group["rows"] == m.sum()
        assert _close(group["sum"], fastbce.binary_crossentropy(y[m], x[m], reduction="sum"))


# --------------------------------------------------------------------------- threads and signals


def test_one_accumulator_updated_from_several_threads_equals_one_pass(rng):
    # (the kernel adds into the accumulator's histograms with the GIL released: without a lock,
    # interleaved updates gave another AUC, "fastbce internal" errors or a broken accumulator)
    import threading

    batches = [_data(rng, n=20_000, logits=True) for _ in range(16)]
    shared = fastbce.LossAccumulator(from_logits=True)
    errors = []

    def work(first):
        try:
            for y, x, _, g in batches[first::4]:
                shared.update(y, x, groups=g)
        except Exception as e:  # pragma: no cover (the failure this test looks for)
            errors.append(e)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    alone = fastbce.LossAccumulator(from_logits=True)
    for y, x, _, g in batches:
        alone.update(y, x, groups=g)
    got, want = shared.result(), alone.result()
    _same_result(got, want)
    assert got["auc"] == want["auc"]  # (whole-number histogram counts: any order, the same bits)
    assert {k: v["auc"] for k, v in got["groups"].items()} == {
        k: v["auc"] for k, v in want["groups"].items()
    }


def test_a_signal_during_update_comes_after_the_whole_batch(rng, monkeypatch):
    # Ctrl-C landing between the kernel's adds and the Python state that goes with them counted
    # the batch without its top losses (or left a slicing's keys grown without its sums)
    import os
    import signal

    from fastbce import _accumulator

    y, x, _, g = _data(rng, n=5000, logits=True)
    compute = _accumulator._compute

    def interrupted(*args, **kw):
        out = compute(*args, **kw)
        os.kill(os.getpid(), signal.SIGINT)  # (delivered now, as a real Ctrl-C would be)
        return out

    def ctrl_c(signum, frame):  # (Python's own handler, installed whatever the test inherited:
        raise KeyboardInterrupt  # a process started in the background ignores SIGINT)

    monkeypatch.setattr(_accumulator, "_compute", interrupted)
    previous = signal.signal(signal.SIGINT, ctrl_c)
    try:
        acc = fastbce.LossAccumulator(from_logits=True, top_losses=3)
        with pytest.raises(KeyboardInterrupt):
            acc.update(y, x, groups=g)
        assert signal.getsignal(signal.SIGINT) is ctrl_c  # (given back after the batch)
    finally:
        signal.signal(signal.SIGINT, previous)
    monkeypatch.setattr(_accumulator, "_compute", compute)
    whole = fastbce.LossAccumulator(from_logits=True, top_losses=3).update(y, x, groups=g)
    got, want = acc.result(), whole.result()
    assert got["top_losses"] == want["top_losses"] and len(got["top_losses"]) == 3
    _same_result(got, want)
