"""Slicings of very many groups in bounded memory (issue 12, item 2): past 65536 keys the kernel
adds to the slicing's own sums (no per-batch copy), integer keys stay one int64 array, and the
parquet read-ahead gives way to what the groups hold. Results must not change: sums to 1e-12 of
an independent float64 reference, identical for any thread count, nothing added by a batch that
fails."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

import fastbce
from fastbce._groups import GroupIndex

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")

MANY = 70_000  # keys past the in-place threshold (65536)


def _batches(rng, n_batches, rows, keys, weighted=True):
    out = []
    for _ in range(n_batches):
        x = rng.standard_normal(rows).astype(np.float32)
        y = (rng.random(rows) < 0.4).astype(np.float32)
        w = rng.uniform(0.5, 1.5, rows).astype(np.float32) if weighted else None
        out.append((y, x, w, rng.integers(0, keys, rows)))
    return out


def _reference(batches):
    """rows, sum of w*loss and sum of w per key, in float64 (losses from reduction='none')."""
    rows: dict[int, int] = {}
    wl: dict[int, float] = {}
    w: dict[int, float] = {}
    for y, x, weight, g in batches:
        loss = fastbce.binary_crossentropy(  # (w * loss in float32, as the kernel's sums)
            y, x, sample_weight=weight, from_logits=True, reduction="none"
        )
        ww = np.ones(len(x)) if weight is None else weight.astype(np.float64)
        keys, inverse = np.unique(g, return_inverse=True)
        counts = np.bincount(inverse)
        sums = np.bincount(inverse, weights=loss.astype(np.float64))
        weights = np.bincount(inverse, weights=ww)
        for k, c, s, v in zip(keys.tolist(), counts, sums, weights, strict=True):
            rows[k] = rows.get(k, 0) + int(c)
            wl[k] = wl.get(k, 0.0) + float(s)
            w[k] = w.get(k, 0.0) + float(v)
    return rows, wl, w


def _accumulate(batches, threads=None, kind="numpy"):
    acc = fastbce.LossAccumulator(from_logits=True, threads=threads, top_losses=3)
    for y, x, w, g in batches:
        labels = {
            "numpy": g,
            "arrow": pa.array(g),
            "text": pa.array(np.char.add("k", g.astype(str))),
        }
        acc.update(y, x, sample_weight=w, groups=labels[kind])
    return acc


def _sums(acc):
    s = acc._state.slicings["groups"]
    order = s.ordered()
    return s.sums[: len(s.keys)][order], s.index.keys_at(order)


def test_many_groups_match_a_float64_reference_on_every_tier(rng, simd_target):
    batches = _batches(rng, 3, 200_000, 150_000)
    acc = _accumulate(batches)
    rows, wl, w = _reference(batches)
    groups = acc.result()["groups"]
    assert len(groups) > MANY and list(groups) == sorted(rows)
    for k, got in groups.items():
        assert got["rows"] == rows[k]
        assert got["sum"] == pytest.approx(wl[k], rel=1e-12, abs=1e-300)
        assert got["weight"] == pytest.approx(w[k], rel=1e-12)
        assert np.isnan(got["auc"]) and np.isnan(got["ece"])  # (no histograms or ECE bins)
    total = acc.result()
    assert total["rows"] == sum(rows.values())
    assert total["sum"] == pytest.approx(sum(wl.values()), rel=1e-12)
    for top in total["top_losses"]:  # (the group of a top loss: its key)
        y, x, _, g = batches[top["row"] // 200_000]
        assert top["group"] == int(g[top["row"] % 200_000])


@pytest.mark.parametrize("kind", ["numpy", "arrow", "text"])
def test_many_groups_are_the_same_for_any_thread_count_and_label_kind(rng, kind):
    batches = _batches(rng, 3, 150_000, 100_000)
    one, keys = _sums(_accumulate(batches, threads=1, kind=kind))
    two, _ = _sums(_accumulate(batches, threads=2, kind=kind))
    np.testing.assert_array_equal(one, two)
    if kind != "text":  # (the same keys as plain integers, in the same order)
        numpy, numpy_keys = _sums(_accumulate(batches, threads=2))
        np.testing.assert_array_equal(one, numpy)
        assert keys == numpy_keys and all(type(k) is int for k in keys)


def test_a_failing_batch_of_many_groups_adds_nothing(rng):
    batches = _batches(rng, 2, 120_000, 200_000)
    acc = _accumulate(batches[:1])
    before, keys = _sums(acc)
    y, x, w, g = batches[1]
    bad = y.copy()
    bad[-5] = 2.0  # (in the last tile: every other row would have been added)
    with pytest.raises(ValueError, match="y_true"):
        acc.update(bad, x, sample_weight=w, groups=g)
    after, keys_after = _sums(acc)
    np.testing.assert_array_equal(before, after)
    assert keys_after == keys
    acc.update(y, x, sample_weight=w, groups=g)  # the batch again, now good
    want, _ = _sums(_accumulate(batches))
    np.testing.assert_array_equal(_sums(acc)[0], want)


def test_groups_growing_across_batches_keep_their_histograms(rng):
    """Keys that grow over batches (arrays grown in place, layouts coarsened, then past 65536
    keys none) give what one batch of all the rows gives."""
    parts = []
    for keys in (40, 3000, 50_000, 300_000):
        parts += _batches(rng, 1, 60_000, keys, weighted=False)
    for upto in (2, 3, 4):  # (before and after the histograms are dropped)
        acc = _accumulate(parts[:upto])
        y, x, g = (np.concatenate([p[i] for p in parts[:upto]]) for i in (0, 1, 3))
        one = fastbce.LossAccumulator(from_logits=True, top_losses=3).update(y, x, groups=g)
        a, b = acc._state.slicings["groups"], one._state.slicings["groups"]
        n = len(a.keys)
        assert a.bits == b.bits and a.width == b.width and n == len(b.keys)
        order_a, order_b = a.ordered(), b.ordered()
        np.testing.assert_allclose(a.sums[:n][order_a], b.sums[:n][order_b], rtol=1e-12, atol=0)
        if a.hist is not None:
            np.testing.assert_array_equal(a.hist[:n][order_a], b.hist[:n][order_b])


def test_integer_keys_stay_one_array_until_another_kind_comes():
    index = GroupIndex()
    codes = index.encode(pa.array([7, 3, 7, 1000], pa.int64()))
    assert index._ints is not None and not index._keys
    np.testing.assert_array_equal(index.keys_at(codes), [7, 3, 7, 1000])
    assert index.find(3) is not None and index.find(4) is None and index.find("3") is None
    copy = pickle.loads(pickle.dumps(index))
    mark = len(index)
    index.encode(np.array([5, 3]))
    index.rollback(mark)
    assert sorted(index.keys) == [3, 7, 1000]
    assert index.code("x") == 3  # (a key of another kind: Python objects from here on)
    assert index._ints is None and index.keys == [3, 7, 1000, "x"]
    assert list(copy.keys) == [3, 7, 1000]
    merged = GroupIndex()
    merged.encode(np.array([1000, 2]))
    table = merged.codes_of(copy)
    np.testing.assert_array_equal(table, [merged.find(3), merged.find(7), merged.find(1000)])
    assert merged._ints is not None and sorted(merged.keys) == [2, 3, 7, 1000]


def test_arrow_integers_with_nulls_have_the_missing_key():
    acc = fastbce.LossAccumulator()
    acc.update([1, 0, 1], [0.9, 0.2, 0.6], groups=pa.array([4, None, 4]))
    assert list(acc.result()["groups"]) == [4, None]


def test_read_ahead_gives_way_to_what_the_consumer_holds(tmp_path):
    """reserve(): nothing ahead while unknown (None) or while the consumer holds the budget,
    rows still in input order."""
    from fastbce.io.prefetch import RowGroupReader

    path = tmp_path / "a.parquet"
    x = np.arange(10_000)
    pq.write_table(pa.table({"x": x}), path, row_group_size=1000)
    meta = pq.read_metadata(path)
    for held in (None, 0, 1 << 40):
        reader = RowGroupReader([str(path)], [meta], ["x"], [], threads=3)
        reader.reserve(held)
        got = []
        for _, start, batch in reader.batches(1000):
            assert start == len(got)
            got += batch["x"].to_pylist()
            reader.reserve(held)
        assert got == x.tolist()


@pytest.mark.parametrize("dtype", ["int8", "uint8", "int16", "uint16", "int32", "uint32", "int64"])
def test_int_range_is_the_minimum_and_maximum(dtype):
    """_core.int_range (the vectorised scan that checks group codes and sizes the dense table of
    integer keys) on every length up to a few vectors, the extremes of the dtype included."""
    from fastbce import _core

    info = np.iinfo(dtype)
    rng = np.random.default_rng(7)
    for n in [*range(1, 70), 1000, 100_003]:
        values = rng.integers(info.min, info.max, n, dtype=dtype, endpoint=True)
        assert _core.int_range(values) == (int(values.min()), int(values.max()))
        at = rng.integers(0, n)
        for extreme in (info.min, info.max):
            edged = values.copy()
            edged[at] = extreme
            assert _core.int_range(edged) == (int(edged.min()), int(edged.max()))
