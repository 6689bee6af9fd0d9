"""Groups kept across batches: one key index per slicing for every batch (a parquet dictionary is
looked up once per batch, its indices used as the codes), per-group sums that grow in place, many
groups (no histograms or ECE bins past 65536), and merging and pickling that still equal one
pass."""

from __future__ import annotations

import math
import pickle

import numpy as np
import pytest

import fastbce

pa = pytest.importorskip("pyarrow")

REL = 1e-12


def _close(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or math.isclose(a, b, rel_tol=REL, abs_tol=1e-300)


def _same_report(a: dict, b: dict) -> None:
    """Two reports equal: counts exactly, sums to 1e-12 relative (float64 rounding)."""
    assert a.keys() == b.keys()
    for key, value in a.items():
        if key in ("groups", "slices"):
            continue
        if isinstance(value, float):
            assert _close(value, b[key]), key
        elif key in ("rows", "omitted", "ignored"):
            assert value == b[key], key
    for key in ("groups", "slices"):
        if key not in a:
            continue
        ga, gb = a[key], b[key]
        if key == "slices":
            assert ga.keys() == gb.keys()
            for name in ga:
                _same_report({"groups": ga[name]}, {"groups": gb[name]})
            continue
        assert list(ga) == list(gb)
        for group in ga:
            _same_report(ga[group], gb[group])


def _reference_groups(labels: np.ndarray, y, x, from_logits=True) -> dict:
    """rows and sum of the loss per label, from the elementwise loss (float64 sums)."""
    loss = fastbce.binary_crossentropy(y, x, from_logits=from_logits, reduction="none")
    out = {}
    keys, inverse = np.unique(labels, return_inverse=True)
    sums = np.bincount(inverse, weights=loss.astype(np.float64))
    counts = np.bincount(inverse)
    for i, key in enumerate(keys.tolist()):
        out[key] = (int(counts[i]), float(sums[i]))
    return out


def _dictionary_batch(rng, words: np.ndarray, rows: int, nulls: bool = False):
    """A batch of labels as an Arrow dictionary array whose dictionary is a shuffled subset of
    `words` (a different dictionary, in a different order, every batch)."""
    vocab = rng.permutation(words)[: rng.integers(1, len(words) + 1)]
    indices = rng.integers(0, len(vocab), rows).astype(np.int32)
    mask = rng.random(rows) < 0.05 if nulls else None
    array = pa.DictionaryArray.from_arrays(pa.array(indices, mask=mask), pa.array(vocab))
    labels = vocab[indices].astype(object)
    if mask is not None:
        labels[mask] = None
    return array, labels


@pytest.mark.parametrize("decoded", [False, True], ids=["dictionary", "strings"])
def test_many_batches_with_changing_dictionaries(simd_target, rng, decoded):
    """Dictionary batches keep their indices; string batches (after the first) are looked up
    row by row in the table of keys seen: both give the one-pass report."""
    words = np.array([f"w{i:03d}" for i in range(300)])
    acc = fastbce.LossAccumulator(from_logits=True, top_losses=5)
    ys, xs, labels = [], [], []
    for _ in range(12):
        rows = int(rng.integers(0, 3000))
        batch, plain = _dictionary_batch(rng, words, rows, nulls=True)
        if decoded:
            batch = batch.dictionary_decode()
        y = (rng.random(rows) < 0.3).astype(np.float32)
        x = rng.normal(0, 2, rows).astype(np.float32)
        acc.update(y, x, groups=batch)
        ys.append(y), xs.append(x), labels.append(plain)
    y, x, g = np.concatenate(ys), np.concatenate(xs), np.concatenate(labels)
    one = fastbce.evaluate(y, x, groups=g, from_logits=True, top_losses=5)
    _same_report(acc.result(), one)
    assert acc.result()["top_losses"] == one["top_losses"]
    present = g[g != None]  # noqa: E711 (elementwise)
    ref = _reference_groups(present.astype(str), y[g != None], x[g != None])  # noqa: E711
    for key, (rows, total) in ref.items():
        group = acc.result()["groups"][key]
        assert group["rows"] == rows and math.isclose(group["sum"], total, rel_tol=1e-9)


def test_a_dictionary_with_repeated_values(simd_target, rng):
    """A dictionary may repeat a value (Arrow allows it): both entries are the one group."""
    dictionary = pa.array(["a", "b", "a", "c"])
    indices = np.array([0, 1, 2, 3, 2, 0], np.int32)
    batch = pa.DictionaryArray.from_arrays(pa.array(indices), dictionary)
    y = np.array([1, 0, 1, 0, 0, 1], np.float32)
    x = np.array([0.5, -1, 2, 0.1, -0.3, 1.5], np.float32)
    got = fastbce.LossAccumulator(from_logits=True).update(y, x, groups=batch).result()
    want = fastbce.evaluate(y, x, groups=np.array(["a", "b", "a", "c", "a", "a"]), from_logits=True)
    _same_report(got, want)
    assert got["groups"]["a"]["rows"] == 4


def test_a_failed_batch_adds_no_group(rng):
    acc = fastbce.LossAccumulator(from_logits=True)
    acc.update([1, 0], np.array([0.5, -0.5], np.float32), groups=pa.array(["a", "b"]))
    before = acc.result()
    with pytest.raises(ValueError, match="y_true"):
        acc.update([1, 7], np.array([0.5, -0.5], np.float32), groups=pa.array(["c", "d"]))
    assert list(acc.result()["groups"]) == ["a", "b"]
    _same_report(acc.result(), before)
    acc.update([1], np.array([2.0], np.float32), groups=pa.array(["d"]))
    assert list(acc.result()["groups"]) == ["a", "b", "d"]


@pytest.mark.parametrize("kind", ["arrow", "integers", "strings"])
def test_more_than_65536_groups(rng, kind):
    """1e5+ groups over several batches: every group's sums; no AUC and no ECE past 65536
    groups (both NaN, the keys still there); merge and pickle give the one-pass report."""
    n_groups, rows = 120_000, 400_000
    codes = rng.integers(0, n_groups, rows)
    y = (rng.random(rows) < 0.4).astype(np.float32)
    x = rng.normal(0, 2, rows).astype(np.float32)
    names = np.array([f"k{i}" for i in range(n_groups)])

    def labels(part):
        if kind == "integers":
            return codes[part]
        if kind == "strings":
            return names[codes[part]]
        return pa.array(names[codes[part]]).dictionary_encode()

    cuts = [0, 50_000, 50_001, 180_000, 330_000, rows]
    parts = [slice(a, b) for a, b in zip(cuts[:-1], cuts[1:], strict=True)]
    acc = fastbce.LossAccumulator(from_logits=True)
    for part in parts:
        acc.update(y[part], x[part], groups=labels(part))
    result = acc.result()
    groups = result["groups"]
    assert len(groups) == len(np.unique(codes))
    ref = _reference_groups(codes, y, x)
    for code, (count, total) in list(ref.items())[::997]:
        key = code if kind == "integers" else f"k{code}"
        assert groups[key]["rows"] == count
        assert math.isclose(groups[key]["sum"], total, rel_tol=1e-9)
        assert math.isnan(groups[key]["auc"]) and math.isnan(groups[key]["ece"])
    assert not math.isnan(result["auc"]) and not math.isnan(result["ece"])

    one = fastbce.evaluate(y, x, groups=labels(slice(0, rows)), from_logits=True)
    _same_report(result, one)
    halves = [fastbce.LossAccumulator(from_logits=True) for _ in range(2)]
    for i, part in enumerate(parts):
        halves[i % 2 if i < 2 else 1].update(y[part], x[part], groups=labels(part))
    _same_report(halves[0].merge(halves[1]).result(), one)
    _same_report(pickle.loads(pickle.dumps(acc)).result(), result)


def test_histograms_coarsen_as_groups_grow(rng):
    """The layout depends on the number of groups only: a slicing that grows from 10 to 5000
    groups over batches has the histograms of 5000 groups, as one pass and a merge have."""
    rows = 60_000
    codes = np.concatenate([rng.integers(0, 10, rows // 2), rng.integers(0, 5000, rows // 2)])
    y = (rng.random(rows) < 0.5).astype(np.float32)
    x = rng.normal(0, 2, rows).astype(np.float32)
    acc = fastbce.LossAccumulator(from_logits=True)
    for start in range(0, rows, 7000):
        part = slice(start, start + 7000)
        acc.update(y[part], x[part], groups=codes[part])
    one = fastbce.evaluate(y, x, groups=codes, from_logits=True)
    _same_report(acc.result(), one)
    first, second = (fastbce.LossAccumulator(from_logits=True) for _ in range(2))
    first.update(y[: rows // 2], x[: rows // 2], groups=codes[: rows // 2])
    second.update(y[rows // 2 :], x[rows // 2 :], groups=codes[rows // 2 :])
    merged = pickle.loads(pickle.dumps(first)).merge(second).result()
    _same_report(merged, one)
    for key in list(one["groups"])[:50]:
        a, b = merged["groups"][key]["auc"], one["groups"][key]["auc"]
        assert a == b or (math.isnan(a) and math.isnan(b))


@pytest.mark.parametrize("code", [3, 7, -1, -(2**31)])
@pytest.mark.parametrize(("n", "at"), [(5000, 4321), (3_000_000, 5), (3_000_000, 2_900_001)])
def test_a_dictionary_index_outside_its_dictionary(simd_target, code, n, at):
    """An index past the dictionary or negative (Arrow builds such arrays with safe=False) is
    reported with its row, in one round and past it, whatever its place in the kernel's blocks."""
    indices = np.zeros(n, np.int32)
    indices[at] = code
    batch = pa.DictionaryArray.from_arrays(pa.array(indices), pa.array(["a", "b", "c"]), safe=False)
    x = np.zeros(n, np.float32)
    with pytest.raises(ValueError, match=f"code {code} at row {at} is outside"):
        fastbce.evaluate(np.zeros(n, np.uint8), x, from_logits=True, groups=batch)
