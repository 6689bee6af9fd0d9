"""Group histograms through held-back adds (docs/report.md, "Cost"): a chunk's histogram adds are
sorted by group and added a group at a time, each bin in row order, straight into the output (or,
for a batch of at most REPORT_HIST_AFTER_CHECK elements, into the accumulator's own histograms
once every row passed its checks). The report must not depend on the threads, on any tier, for
any spread of the groups over the rows."""

from __future__ import annotations

import math

import numpy as np
import pytest

import fastbce
from fastbce import _core

ROUND = int(_core.REPORT_HIST_AFTER_CHECK)


def _codes(rng, n: int, kind: str) -> np.ndarray:
    if kind == "uniform":  # 50 groups, every chunk holds all of them
        return rng.integers(0, 50, n)
    if kind == "skewed":  # one group holds 90% of the rows
        return np.where(rng.random(n) < 0.9, 7, rng.integers(0, 30, n))
    if kind == "blocks":  # sorted: each chunk holds one group or two
        return np.repeat(np.arange(12), -(-n // 12))[:n]
    assert kind == "many"  # 3000 groups: 4-bit histograms
    return rng.integers(0, 3000, n)


def _inputs(rng, n: int, soft: bool):
    y = (rng.random(n) < 0.3).astype(np.float32)
    if soft:
        y = np.where(rng.random(n) < 0.2, rng.random(n), y).astype(np.float32)
    x = rng.normal(-0.5, 2.0, n).astype(np.float32)
    return y, x


@pytest.mark.parametrize(
    ("n", "kind", "weighted", "soft"),
    [
        (ROUND + 300_001, "uniform", False, False),  # two rounds
        (ROUND + 300_001, "skewed", True, True),
        (700_001, "blocks", True, False),  # one round, a group or two a chunk
        (700_001, "many", False, True),
        (40_001, "uniform", True, False),  # one chunk
    ],
)
def test_the_same_for_any_thread_count(simd_target, rng, n, kind, weighted, soft):
    y, x = _inputs(rng, n, soft)
    g = _codes(rng, n, kind)
    w = rng.uniform(0.5, 1.5, n).astype(np.float32) if weighted else None
    results = [
        repr(fastbce.evaluate(y, x, from_logits=True, sample_weight=w, groups=g, threads=t))
        for t in (1, 2, 3)
    ]
    assert results[0] == results[1] == results[2]


def _group_hist(acc: fastbce.LossAccumulator) -> np.ndarray:
    s = acc._state.slicings["groups"]
    return s.hist[: len(s.keys)].copy()


@pytest.mark.parametrize("soft", [False, True])
def test_batches_into_the_accumulator_equal_one_pass(simd_target, rng, soft):
    """Batches of at most ROUND elements add into the accumulator's histograms directly; one call
    of more uses its own and adds them after. Whole-number weights: the counts are identical."""
    n = ROUND + 100_000
    y, x = _inputs(rng, n, soft)
    if soft:  # (soft labels: multiples of 1/4, so that the class weights stay exact)
        y = (np.round(y * 4) / 4).astype(np.float32)
    g = rng.integers(0, 50, n)
    whole = fastbce.LossAccumulator(from_logits=True).update(y, x, groups=g)
    batched = fastbce.LossAccumulator(from_logits=True)
    for start in range(0, n, 400_000):
        stop = start + 400_000
        batched.update(y[start:stop], x[start:stop], groups=g[start:stop])
    np.testing.assert_array_equal(_group_hist(batched), _group_hist(whole))
    a, b = batched.result(), whole.result()
    for key in a["groups"]:
        assert a["groups"][key]["auc"] == b["groups"][key]["auc"]
        assert a["groups"][key]["rows"] == b["groups"][key]["rows"]


def test_a_failed_batch_leaves_the_histograms(rng):
    y, x = _inputs(rng, 10_000, False)
    g = rng.integers(0, 50, y.size)
    acc = fastbce.LossAccumulator(from_logits=True).update(y, x, groups=g)
    before = _group_hist(acc)
    bad = y.copy()
    bad[-1] = 3.0  # the last row fails: every other row's adds were held back
    with pytest.raises(ValueError, match="y_true"):
        acc.update(bad, x, groups=g)
    np.testing.assert_array_equal(_group_hist(acc), before)


def test_an_exception_after_the_pass_still_counts_the_batch(rng, monkeypatch):
    """Once the kernel added a batch to the accumulator's histograms, an exception that comes
    next (KeyboardInterrupt) leaves the batch counted in full, not half."""
    from fastbce import _accumulator

    y, x = _inputs(rng, 10_000, False)
    g = rng.integers(0, 50, y.size)
    want = fastbce.LossAccumulator(from_logits=True).update(y, x, groups=g)
    want.update(y, x, groups=g)
    acc = fastbce.LossAccumulator(from_logits=True).update(y, x, groups=g)
    compute = _accumulator._compute

    def interrupted(*args, **kwargs):
        compute(*args, **kwargs)
        raise KeyboardInterrupt

    monkeypatch.setattr(_accumulator, "_compute", interrupted)
    with pytest.raises(KeyboardInterrupt):
        acc.update(y, x, groups=g)
    monkeypatch.undo()
    np.testing.assert_array_equal(_group_hist(acc), _group_hist(want))
    assert repr(acc.result()) == repr(want.result())


def test_rows_of_several_elements(simd_target, rng):
    """2-D input: a group code per row of 3 elements."""
    rows = 300_001
    y, x = _inputs(rng, 3 * rows, False)
    g = rng.integers(0, 20, rows)
    y, x = y.reshape(rows, 3), x.reshape(rows, 3)
    results = [repr(fastbce.evaluate(y, x, from_logits=True, groups=g, threads=t)) for t in (1, 2)]
    assert results[0] == results[1]
    per_row = fastbce.evaluate(y.ravel(), x.ravel(), from_logits=True, groups=np.repeat(g, 3))
    got = fastbce.evaluate(y, x, from_logits=True, groups=g)
    for key, scope in per_row["groups"].items():
        assert got["groups"][key]["auc"] == scope["auc"]


@pytest.mark.parametrize("n", [ROUND + 300_001, 90_001])
def test_counted_records_equal_weighted_ones(simd_target, rng, n):
    """Tiles of weight-1 rows with hard labels hold one 8-byte record a row (its histogram entry);
    the others also a (w y, w (1 - y)) value. Mixed in one group's stream, in row order, they add
    the same bits as all-general records (an all-ones weight array), with rows left out (NaN under
    "omit", the ignore label) and soft labels (dyadic: exact in any order) among them."""
    y = (rng.random(n) < 0.3).astype(np.float32)
    x = rng.choice(np.array([-2.0, -0.5, 0.25, 1.0], dtype=np.float32), n)
    x[rng.integers(0, n, 30)] = np.nan
    y[rng.integers(0, n, 30)] = 7.0
    y[40_000:41_000] = 0.25
    g = rng.integers(0, 20, n)
    opts = {"from_logits": True, "nan_policy": "omit", "ignore_label": 7.0}
    for threads in (1, 2):
        counted = fastbce.LossAccumulator(**opts, threads=threads).update(y, x, groups=g)
        weighted = fastbce.LossAccumulator(**opts, threads=threads)
        weighted.update(y, x, np.ones(n, dtype=np.float32), groups=g)
        np.testing.assert_array_equal(_group_hist(counted), _group_hist(weighted))
        # (the groups' sums of weight-1 rows come from per-label cells: float64 rounding only)
        _same_up_to_rounding(counted.result(), weighted.result())


def _same_up_to_rounding(a, b, key=None) -> None:
    """Equal reports: counts, auc and auc_bound exactly, other floats to 1e-12 relative."""
    if isinstance(a, dict):
        assert a.keys() == b.keys()
        for k in a:
            _same_up_to_rounding(a[k], b[k], k)
    elif isinstance(a, list):
        for u, v in zip(a, b, strict=True):
            _same_up_to_rounding(u, v, key)
    elif isinstance(a, float) and key not in ("auc", "auc_bound"):
        assert math.isclose(a, b, rel_tol=1e-12, abs_tol=1e-300) or (a != a and b != b), key
    else:
        assert repr(a) == repr(b), key


def test_a_failed_first_batch_of_many_rounds_leaves_nothing(rng):
    """A slicing's first batch adds straight into its histograms at any size; one that fails in
    a later round leaves the accumulator as it was (its new groups' rows cleared)."""
    n = ROUND + 300_001
    y, x = _inputs(rng, n, False)
    g = rng.integers(0, 50, n)
    bad = y.copy()
    bad[-1] = 3.0  # (in the second round: the first one's adds are in)
    acc = fastbce.LossAccumulator(from_logits=True)
    with pytest.raises(ValueError, match="y_true"):
        acc.update(bad, x, groups=g)
    assert acc.result()["groups"] == {}
    assert "groups" not in acc._state.slicings  # (made by the batch: gone with it)
    acc.update(np.zeros(0), np.zeros(0, np.float32), groups=np.zeros(0, np.int64))
    with pytest.raises(ValueError, match="y_true"):  # (a slicing of no keys yet: fresh too)
        acc.update(bad, x, groups=g)
    assert acc._state.slicings["groups"].keys == []
    assert not acc._state.slicings["groups"].hist.any()  # (the adds of the first round: cleared)
    acc.update(y, x, groups=g)
    want = fastbce.LossAccumulator(from_logits=True).update(y, x, groups=g)
    np.testing.assert_array_equal(_group_hist(acc), _group_hist(want))
    assert repr(acc.result()) == repr(want.result())


def test_slicings_with_and_without_group_cells(simd_target, rng):
    """Common tiles add to per-group cells for slicings of few groups (here 10) and row by row for
    others (5000 groups: more than the cells take); together in one pass, each slicing's report
    equals its own pass, and the cells' sums equal one add a row, to float64 rounding."""
    n = 400_000
    y, x = _inputs(rng, n, False)
    a, b = rng.integers(0, 10, n), rng.integers(0, 5000, n)
    both = fastbce.evaluate(y, x, from_logits=True, groups={"a": a, "b": b})["slices"]
    for name, codes in (("a", a), ("b", b)):
        alone = fastbce.evaluate(y, x, from_logits=True, groups=codes)["groups"]
        _same_up_to_rounding(both[name], alone)  # (chunks differ with the other slicing)
    # all-ones weights: every tile adds row by row
    ones = np.ones(n, np.float32)
    rowwise = fastbce.evaluate(y, x, sample_weight=ones, from_logits=True, groups=a)
    _same_up_to_rounding(both["a"], rowwise["groups"])


def test_a_failed_first_batch_of_many_groups_keeps_the_layout(rng):
    """A slicing with no keys yet takes the layout of a batch's many groups (fewer histogram bits,
    or no histograms past 65536 groups) before its pass; a batch that fails gives the old layout
    back, so the next batch's report equals a fresh accumulator's."""
    y, x = _inputs(rng, 200_000, False)
    small = rng.integers(0, 20, y.size)
    for many in (rng.integers(0, 5000, y.size), np.arange(y.size)):
        bad = y.copy()
        bad[-1] = 3.0
        acc = fastbce.LossAccumulator(from_logits=True)
        acc.update(np.zeros(0), np.zeros(0, np.float32), groups=np.zeros(0, np.int64))
        before = acc._state.slicings["groups"]
        bits, width = before.bits, before.width
        with pytest.raises(ValueError, match="y_true"):
            acc.update(bad, x, groups=many)
        assert (before.bits, before.width) == (bits, width)
        acc.update(y, x, groups=small)
        want = fastbce.LossAccumulator(from_logits=True).update(y, x, groups=small)
        np.testing.assert_array_equal(_group_hist(acc), _group_hist(want))
        assert repr(acc.result()) == repr(want.result())


@pytest.mark.parametrize("n", [1_000, 3 * ROUND // 2])
@pytest.mark.parametrize("kind", ["counted", "weighted", "soft"])
def test_the_whole_inputs_histogram_is_added_only_when_a_batch_succeeds(simd_target, rng, n, kind):
    """The accumulator's own histogram of the whole input goes to the kernel, which adds a call's
    rows to it (byte counts of the common tiles, float64 partials of the others) only once the
    call has succeeded: a batch whose last row fails leaves it as it was, and the count buffers
    it dirtied are clean for the next call (the same histogram as without the failed batch)."""
    y, x = _inputs(rng, n, kind == "soft")
    w = rng.uniform(0.5, 1.5, n).astype(np.float32) if kind == "weighted" else None
    acc = fastbce.LossAccumulator(from_logits=True).update(y, x, w)
    before = acc._state.hist.copy()
    bad = y.copy()
    bad[-1] = 3.0
    with pytest.raises(ValueError, match="y_true"):
        acc.update(bad, x, w)
    np.testing.assert_array_equal(acc._state.hist, before)
    acc.update(y, x, w)
    want = fastbce.LossAccumulator(from_logits=True).update(y, x, w).update(y, x, w)
    np.testing.assert_array_equal(acc._state.hist, want._state.hist)
    fresh = fastbce.LossAccumulator(from_logits=True).update(y, x, w)
    twice = fresh._state.hist + fresh._state.hist  # (a fresh histogram added to the state's)
    if kind == "counted":  # (whole numbers: the same bits)
        np.testing.assert_array_equal(acc._state.hist, twice)
    else:
        np.testing.assert_allclose(acc._state.hist, twice, rtol=1e-12)


@pytest.mark.parametrize("index_type", ["int32", "int8"])
def test_dictionary_indices_as_codes(simd_target, rng, index_type):
    """An Arrow dictionary column (a parquet column read as one) gives the kernel its int32
    indices as they are (other index types as int64 codes): batches of them give the report of
    the same labels as text, histogram counts and top_losses identical, on every tier, with the
    common tiles' cells and rows left out ("omit") among them, for 1 and 2 threads."""
    import pyarrow as pa

    n, batch = 700_001, 250_000
    y, x = _inputs(rng, n, False)
    x[rng.integers(0, n, 20)] = np.nan
    names = np.array([f"c{i:02d}" for i in range(50)])
    labels = names[rng.integers(0, 50, n)]
    opts = {"from_logits": True, "nan_policy": "omit", "top_losses": 7}
    for threads in (1, 2):
        text = fastbce.LossAccumulator(**opts, threads=threads)
        coded = fastbce.LossAccumulator(**opts, threads=threads)
        for start in range(0, n, batch):
            part = slice(start, start + batch)
            text.update(y[part], x[part], groups=labels[part])
            column = pa.array(labels[part]).dictionary_encode()
            if index_type == "int8":
                column = column.cast(pa.dictionary(pa.int8(), pa.string()))
            coded.update(y[part], x[part], groups=column)
        np.testing.assert_array_equal(_group_hist(coded), _group_hist(text))
        _same_up_to_rounding(coded.result(), text.result())
