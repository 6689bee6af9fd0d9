"""Loss-only group sums (LossSums, what ``fastbce score --loss-only --group-by`` uses) from int32
codes: an Arrow dictionary's indices and NumPy int32 labels reach the kernel as they are (no int64
copy per batch) and give the same sums, bit for bit, as int64 codes and text labels, on every
tier, with 1 and 2 threads. Codes out of range (an unchecked Arrow dictionary) raise
ValueError."""

from __future__ import annotations

import numpy as np
import pytest

import fastbce
from fastbce._groups import GroupIndex
from fastbce._loss_sums import LossSums

pa = pytest.importorskip("pyarrow")

N_GROUPS = 50
NAMES = np.array([f"c{i:02d}" for i in range(N_GROUPS)])
# (more than one kernel block per batch, so two threads split it; and a short one)
BATCH_ROWS = (70_001, 140_003, 999)


def _batches(rng: np.random.Generator, row_size: int) -> list[tuple]:
    out = []
    for rows in BATCH_ROWS:
        codes = rng.permutation(np.arange(rows) % N_GROUPS)  # (every group in every batch)
        shape = (rows,) if row_size == 1 else (rows, row_size)
        y = (rng.random(shape) < 0.3).astype(np.float32)
        x = rng.normal(0, 3, shape).astype(np.float32)
        x.reshape(-1)[::101] = np.nan
        w = rng.random(rows).astype(np.float32) + 0.5
        out.append((y, x, w, codes))
    return out


def _labels(kind: str, codes: np.ndarray):
    if kind == "text":
        return NAMES[codes]
    if kind == "int64":
        return codes.astype(np.int64)
    if kind == "int32":
        return codes.astype(np.int32)
    indices = pa.array(codes.astype(np.int32), pa.int32())
    return pa.DictionaryArray.from_arrays(indices, pa.array(NAMES))  # "arrow"


def _group_sums(kind: str, batches: list[tuple], threads: int, nan_policy: str) -> dict:
    sums = LossSums(from_logits=True, threads=threads, nan_policy=nan_policy)
    for y, x, w, codes in batches:
        sums.update(y, x, w, groups=_labels(kind, codes))
    result = sums.result()
    groups = {k if isinstance(k, str) else str(NAMES[k]): v for k, v in result["groups"].items()}
    del result["groups"]
    return {"all": result, **groups}


def test_int32_codes_reach_the_kernel_as_they_are():
    codes = np.arange(1000, dtype=np.int32) % N_GROUPS
    assert GroupIndex().encode_local(codes)[0].dtype == np.int32
    arrow = _labels("arrow", codes)
    local = GroupIndex().encode_local(arrow)[0]
    assert local.dtype == np.int32
    assert np.shares_memory(local, np.frombuffer(arrow.indices.buffers()[1], np.int32))
    # other integer dtypes still become int64 codes
    assert GroupIndex().encode_local(codes.astype(np.int16))[0].dtype == np.int64


@pytest.mark.parametrize("row_size", [1, 3])
@pytest.mark.parametrize("nan_policy", ["propagate", "omit"])
def test_int32_codes_give_the_same_sums_bit_for_bit(simd_target, nan_policy, row_size):
    batches = _batches(np.random.default_rng(12), row_size)
    want = _group_sums("int64", batches, 1, nan_policy)
    assert len(want) == N_GROUPS + 1
    for kind in ("text", "int32", "arrow"):
        for threads in (1, 2):
            got = _group_sums(kind, batches, threads, nan_policy)
            assert repr(got) == repr(want), (kind, threads)  # (repr: NaN == NaN, bits)


@pytest.mark.parametrize("dtype", [np.int64, np.int32])
@pytest.mark.parametrize("row_size", [1, 3])
def test_codes_out_of_range_are_refused(simd_target, dtype, row_size):
    from fastbce._api import _compute
    from fastbce._options import LossOptions

    y = np.zeros((80_000, row_size), np.float32)
    for bad, row in ((-1, 5), (3, 79_999), (2**31 - 1, 70_000)):
        codes = np.zeros(80_000, dtype)
        codes[row] = bad
        for threads in (1, 2):
            opts = LossOptions(from_logits=True, threads=threads)
            message = rf"groups: code {bad} at row {row} is outside \[0, 3\)"
            with pytest.raises(ValueError, match=message):
                _compute(opts, y, y, None, groups=codes, group_sums=np.zeros((3, 3)))


@pytest.mark.parametrize("index_type", ["int32", "int64"])
@pytest.mark.parametrize("kind", [LossSums, fastbce.LossAccumulator])
def test_an_arrow_dictionary_with_indices_out_of_range_is_refused(kind, index_type):
    sums = kind(from_logits=True)
    y = np.zeros(8, np.float32)
    sums.update(y, y, groups=np.array(list("abcabcab")))
    before = sums.result()
    for bad in (-1, 3, 10**6):
        indices = pa.array([0, 1, 2, bad, 0, 1, 2, 0], getattr(pa, index_type)())
        labels = pa.DictionaryArray.from_arrays(indices, pa.array(list("abc")), safe=False)
        with pytest.raises(ValueError, match=rf"groups: code {bad} at row 3 is outside \[0, 3\)"):
            sums.update(y, y, groups=labels)
    assert sums.result() == before


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("row_size", [1, 3])
def test_the_report_kernel_refuses_indices_out_of_range(simd_target, threads, row_size):
    # (the report's own check, per chunk, before the codes index anything: a long batch of
    # several chunks, the bad row late in it, a second slicing; the state is left as it was)
    rng = np.random.default_rng(7)
    rows = 300_001
    shape = (rows,) if row_size == 1 else (rows, row_size)
    y = (rng.random(shape) < 0.3).astype(np.float32)
    x = rng.normal(0, 3, shape).astype(np.float32)
    good = pa.DictionaryArray.from_arrays(
        pa.array(np.arange(rows, dtype=np.int32) % 3), pa.array(list("abc"))
    )
    acc = fastbce.LossAccumulator(from_logits=True, threads=threads)
    acc.update(y[:1000], x[:1000], groups={"g": good[:1000], "h": good[:1000]})
    before = acc.result()
    for bad_row, bad in ((250_007, 3), (5, -1), (rows - 1, 10**6)):
        indices = np.arange(rows, dtype=np.int32) % 3
        indices[bad_row] = bad
        labels = pa.DictionaryArray.from_arrays(
            pa.array(indices), pa.array(list("abc")), safe=False
        )
        with pytest.raises(
            ValueError, match=rf"groups: code {bad} at row {bad_row} is outside \[0, 3\)"
        ):
            acc.update(y, x, groups={"g": good, "h": labels})
    assert acc.result() == before
