"""What the group state of a million groups holds: the text key table's bytes (4-byte slots and
offsets, growing by an eighth), its 8-byte offsets past the narrow limit, and the per-group sums
growing in place (docs/scoring.md, "Memory"). Sizes of the structures, not resident memory."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

import fastbce
from fastbce import _core, _group_arrays
from fastbce._arrow_labels import text_buffers

pa = pytest.importorskip("pyarrow")


def _table(keys: list[str | None], narrow_limit: int | None = None) -> tuple[object, np.ndarray]:
    table = _core.KeyCodes() if narrow_limit is None else _core.KeyCodes(narrow_limit)
    codes = np.full(len(keys), -1, dtype=np.int64)
    table.add_unknown(*text_buffers(pa.array(keys, pa.string())), codes)
    return table, codes


def test_key_table_of_a_million_keys_is_about_23_mb() -> None:
    n = 1_000_000
    keys = [f"g{i:07d}" for i in range(n)]
    table, codes = _table(keys)
    np.testing.assert_array_equal(codes, np.arange(n))
    # slots: 2^21 of 4 bytes; offsets: 4 bytes a key; the bytes: 8 a key; an eighth spare at most
    floor = 4 * (1 << 21) + 4 * (n + 1) + 8 * n
    assert floor <= table.nbytes <= floor + (12 * n) // 8 + 4096
    assert table.nbytes < 24_000_000  # (the former table: 45 MB)
    assert not table.wide


def test_group_index_counts_its_text_keys() -> None:
    """GroupIndex.nbytes (what the read-ahead gives way to) holds its key table's bytes."""
    from fastbce._groups import GroupIndex

    index = GroupIndex()
    empty = index.nbytes
    index.encode_local(np.array([f"g{i:07d}" for i in range(100_000)], dtype=object))
    assert index.nbytes == index._text.nbytes + index._dense.nbytes
    assert index.nbytes - empty >= 100_000 * 8  # (the keys' 8 characters at least)


def test_offsets_widen_past_the_narrow_limit() -> None:
    keys = [f"key-{i}" * (1 + i % 3) for i in range(200)] + [None, "é", ""]
    narrow, codes = _table(keys)
    wide, wide_codes = _table(keys, narrow_limit=64)  # (the bytes pass 64 after a few keys)
    assert wide.wide and not narrow.wide
    np.testing.assert_array_equal(wide_codes, codes)
    assert len(wide) == len(narrow) == 203
    np.testing.assert_array_equal(wide.order(), narrow.order())
    everything = np.arange(len(narrow), dtype=np.int64)
    assert wide.keys(everything) == narrow.keys(everything)
    assert [wide.find(k) for k in ("key-7key-7", "é", "", "absent")] == [7, 201, 202, -1]
    assert wide.find_null() == 200
    again = pickle.loads(pickle.dumps(wide))  # (the default limit again: narrow)
    assert again.keys(everything) == narrow.keys(everything) and again.find("é") == 201
    wide.forget(100)  # (stays wide; the keys from 100 on are gone)
    assert len(wide) == 100 and wide.find("key-100") == -1 and wide.find_null() == -1
    assert wide.code("key-100") == 100


def test_key_table_pickles_and_reads_the_former_state() -> None:
    table, _ = _table(["b", None, "a"])
    chars, starts, null = table.__getstate__()
    assert starts.dtype == np.int64 and list(starts) == [0, 1, 1, 2] and null == 1
    former = _core.KeyCodes.__new__(_core.KeyCodes)
    former.__setstate__((chars, [0, 1, 1, 2], 1))  # (starts as a list: pickles before this)
    assert former.keys(np.arange(3, dtype=np.int64)) == ["b", None, "a"]
    assert former.order().dtype == np.int64 and list(former.order()) == [2, 0, 1]
    broken = _core.KeyCodes.__new__(_core.KeyCodes)
    with pytest.raises(ValueError, match="inconsistent"):
        broken.__setstate__((b"ab", [0, 3], -1))


def test_sums_grow_in_place_without_huge_pages() -> None:
    a = _group_arrays.grown(np.zeros((0, 15)), 1000)
    a[:] = 1.0
    address = a.__array_interface__["data"][0]
    b = _group_arrays.grown(a, 1125)
    assert b is a and b.shape == (1125, 15)
    assert (b[:1000] == 1.0).all() and (b[1000:] == 0.0).all()
    assert address != 0
    if _group_arrays._SWITCH is not None:  # (NumPy's own setting is left as it was)
        before = _group_arrays._SWITCH(True)
        _group_arrays.grown(b, 2000)
        assert _group_arrays._SWITCH(before) is True
    view = np.zeros((10, 15))[:5]  # (not owning its buffer: a copy)
    assert _group_arrays.grown(view, 8).shape == (8, 15)


def test_sums_of_many_groups_are_15_float64_each() -> None:
    n = 200_000  # (more than 65536 groups: no histograms, no ECE bins)
    acc = fastbce.LossAccumulator(from_logits=True)
    rng = np.random.default_rng(0)
    for _ in range(3):
        codes = rng.permutation(n)[:150_000] if not acc._nbytes() else rng.permutation(n)
        acc.update(codes % 2, rng.standard_normal(codes.size).astype(np.float32), groups=codes)
    slicing = acc._state.slicings["groups"]
    assert len(slicing.keys) == n
    assert 15 * 8 * n <= slicing.sums.nbytes <= 15 * 8 * (n + n // 8 + 16)
    # what `fastbce score` tells the parquet read-ahead to give way to: the sums and the keys
    # (integer keys: the keys by code and the dense table of codes, 8 bytes each)
    assert slicing.index.nbytes >= 2 * 8 * n
    assert acc._nbytes() == slicing.sums.nbytes + slicing.index.nbytes


def test_loss_only_sums_are_3_float64_each() -> None:
    from fastbce._loss_sums import LossSums

    n = 200_000
    sums = LossSums(from_logits=True)
    rng = np.random.default_rng(1)
    for codes in (rng.permutation(n)[:150_000], rng.permutation(n)):
        sums.update(codes % 2, rng.standard_normal(codes.size).astype(np.float32), groups=codes)
    groups = sums._slicings["groups"]
    assert len(groups.keys) == n
    assert 3 * 8 * n <= groups.sums.nbytes <= 3 * 8 * (n + n // 8 + 16)
    # what `fastbce score --loss-only` tells the parquet read-ahead to give way to
    assert sums._nbytes() == groups.sums.nbytes + groups.index.nbytes


@pytest.mark.parametrize("loss_only", [True, False])
def test_group_results_come_in_blocks_of_8192_groups(loss_only: bool) -> None:
    """The JSON printer formats a block of groups at once: with a million groups, blocks of
    65,536 (LossSums') held ~40 MB of text and made the peak of `score --loss-only`."""
    from fastbce._loss_sums import LossSums

    n = 20_000
    acc = LossSums(from_logits=True) if loss_only else fastbce.LossAccumulator(from_logits=True)
    rng = np.random.default_rng(2)
    codes = rng.permutation(n)
    acc.update(codes % 2, rng.standard_normal(n).astype(np.float32), groups=codes)
    blocks = [keys for keys, _columns in acc._group_blocks()]
    assert [len(b) for b in blocks] == [8192, 8192, n - 2 * 8192]
    assert [k for b in blocks for k in b] == list(range(n))


def _mapping(a: np.ndarray) -> tuple[int, str] | None:
    """(start, VmFlags line) of the mapping that holds the middle of a's buffer (Linux), else
    None. (NumPy madvises from the first whole page on, so that the first bytes are in another
    mapping.)"""
    try:
        with open("/proc/self/smaps") as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    address, inside, start = a.__array_interface__["data"][0] + a.nbytes // 2, False, 0
    for line in lines:
        head = line.split()[0] if line else ""
        if "-" in head and ":" not in head:  # a mapping's first line: start-end perms ...
            start, end = (int(part, 16) for part in head.split("-"))
            inside = start <= address < end
        elif inside and line.startswith("VmFlags:"):
            return start, line
    return None


def _hugepage_flags(a: np.ndarray) -> str | None:
    found = _mapping(a)
    return None if found is None else found[1]


def test_large_fresh_arrays_are_not_asked_for_huge_pages(monkeypatch) -> None:
    """_group_arrays.empty: a 64 MiB array is allocated with NumPy's huge-page request off
    (NumPy's own arrays ask for huge pages), and the switch is left as it was. Where the array
    has a mapping of its own (glibc maps such a block with a 16-byte header on its first page),
    that mapping is not madvised for huge pages; an array placed in an older region (a heap
    reused after an earlier NumPy array was madvised there) shows that region's flags instead,
    so a few arrays are made until one has its own mapping."""
    switch = _group_arrays._SWITCH
    if switch is None or _mapping(np.zeros(1)) is None:
        pytest.skip("no NumPy huge-page switch or no /proc/self/smaps")
    requested = []
    numpy_empty = np.empty

    def spy(*args, **kwargs):
        requested.append(switch(False))  # (what it was: False when empty() turned it off)
        return numpy_empty(*args, **kwargs)

    monkeypatch.setattr(np, "empty", spy)
    a = _group_arrays.empty(1 << 24, np.int32)
    monkeypatch.undo()
    assert requested == [False]
    assert a.shape == (1 << 24,) and a.dtype == np.int32 and a.flags.writeable
    kept = [a]
    for _ in range(8):
        start, flags = _mapping(a) or (0, "")
        if start == a.__array_interface__["data"][0] // 4096 * 4096:
            assert " hg" not in flags
            break
        a = _group_arrays.empty(1 << 24, np.int32)
        kept.append(a)
    if switch(True):  # (the switch works here: NumPy's arrays ask for them)
        assert " hg" in (_hugepage_flags(np.empty(1 << 24, np.int32)) or "")
    before = switch(False)
    _group_arrays.empty(10, np.int64)
    assert switch(before) is False


def test_arrow_text_codes_are_int32_and_match_the_keys() -> None:
    """Multi-chunk Arrow text (the dictionary-encoded path) gives int32 codes into the keys, the
    same groups as the labels given as a list; a later batch with a new key and nulls too."""
    from fastbce._groups import GroupIndex

    rng = np.random.default_rng(3)
    names = np.array(["b", "a", "é", "c"])
    labels = names[rng.integers(0, 4, 300_000)].tolist()
    chunked = pa.chunked_array([labels[:100_000], labels[100_000:]], pa.string())
    index = GroupIndex()
    codes = index.encode(chunked)
    assert codes.dtype == np.int32 and codes.shape == (300_000,)
    assert [index.keys[c] for c in codes[:1000].tolist()] == labels[:1000]
    keys = list(index.keys)
    np.testing.assert_array_equal(codes, [keys.index(k) for k in labels])
    more = ["d", None, *labels[:10]]
    codes2 = index.encode(pa.chunked_array([more[:2], more[2:]], pa.string()))
    assert codes2.dtype == np.int32
    assert [index.keys[c] for c in codes2.tolist()] == more
    x = rng.standard_normal(300_000).astype(np.float32)
    y = rng.integers(0, 2, 300_000)
    got = fastbce.LossAccumulator(from_logits=True).update(y, x, groups=chunked).result()
    want = fastbce.LossAccumulator(from_logits=True).update(y, x, groups=labels).result()
    assert got["groups"].keys() == want["groups"].keys()
    for key, group in want["groups"].items():
        assert got["groups"][key]["mean"] == group["mean"]
        assert got["groups"][key]["rows"] == group["rows"]
