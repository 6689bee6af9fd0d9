"""The text key table's lookup (cpp/include/fastbce/keys.hpp): every row's code equals a Python
dict's, for keys of 0 to 40 bytes that differ from each other only in their first, a middle or
their last byte or in their length, with nulls, unknown keys and sliced arrays, in a table small
enough to stay in cache (probed row by row) and in one of 2^18 slots (rows fetched ahead)."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from fastbce import _core
from fastbce._arrow_labels import text_buffers

pa = pytest.importorskip("pyarrow")


def _near_keys(length: int) -> list[str]:
    """Keys of `length` bytes and their neighbours: one byte changed at the start, in the middle
    or at the end, and one byte longer or shorter."""
    base = "".join(chr(ord("a") + (i * 7) % 26) for i in range(length))
    keys = [base, base + "x"]
    if length > 0:
        keys.append(base[:-1])
        for at in {0, length // 2, length - 1}:
            keys.append(base[:at] + "Z" + base[at + 1 :])
    return keys


def _queries(known: list[str], unknown: list[str], rows: int, seed: int) -> list[str | None]:
    rng = np.random.default_rng(seed)
    pool: list[str | None] = [*known, *unknown, None]
    return [pool[i] for i in rng.integers(0, len(pool), rows)]


@pytest.mark.parametrize("filler", [1_000, 70_000], ids=["in-cache", "fetched-ahead"])
@pytest.mark.parametrize("large", [False, True], ids=["string", "large_string"])
def test_lookup_gives_every_row_its_code(filler: int, large: bool) -> None:
    near = [k for n in range(41) for k in _near_keys(n)]
    known = list(dict.fromkeys([f"id-{i:06d}" for i in range(filler)] + near[::2]))
    others = dict.fromkeys(near[1::2] + ["absent", "é", "id-9999999"])
    unknown = [k for k in others if k not in known]
    kind = pa.large_string() if large else pa.string()
    table = _core.KeyCodes()
    codes = np.full(len(known), -1, dtype=np.int64)
    table.add_unknown(*text_buffers(pa.array(known, kind)), codes)
    np.testing.assert_array_equal(codes, np.arange(len(known)))
    expected_of = {k: i for i, k in enumerate(known)}

    rows = _queries(known, unknown, 20_011, seed=filler)
    array = pa.array(rows, kind)
    for piece in (array, array.slice(3, 10_007), array.slice(20_000), array.slice(5, 0)):
        got = np.full(len(piece), -7, dtype=np.int64)
        table.lookup(*text_buffers(piece), got)
        expected = [-1 if k is None else expected_of.get(k, -1) for k in piece.to_pylist()]
        np.testing.assert_array_equal(got, expected)
        # the same rows one key at a time (find), and the unknown ones added in row order
        assert [table.find(k) for k in piece.to_pylist()[:300] if k is not None] == [
            e for k, e in zip(piece.to_pylist()[:300], expected[:300], strict=True) if k is not None
        ]


def test_lookup_in_a_wide_table_of_many_keys() -> None:
    """Offsets of 8 bytes (past the narrow limit) in a table large enough to be fetched ahead."""
    keys = [f"k{i}" * (1 + i % 5) for i in range(40_000)]
    table = _core.KeyCodes(1024)
    codes = np.full(len(keys), -1, dtype=np.int64)
    table.add_unknown(*text_buffers(pa.array(keys, pa.string())), codes)
    assert table.wide
    rng = np.random.default_rng(3)
    picks = rng.integers(0, len(keys), 5_000)
    rows = [keys[i] if i % 11 else keys[i] + "!" for i in picks]
    got = np.empty(len(rows), dtype=np.int64)
    table.lookup(*text_buffers(pa.array(rows, pa.string())), got)
    np.testing.assert_array_equal(got, np.where(picks % 11 != 0, picks, -1))


def test_lookup_in_an_empty_table_finds_nothing_but_the_null() -> None:
    table = _core.KeyCodes()
    got = np.empty(3, dtype=np.int64)
    table.lookup(*text_buffers(pa.array(["a", None, ""], pa.string())), got)
    assert list(got) == [-1, -1, -1]
    null = table.null_code()
    table.lookup(*text_buffers(pa.array(["a", None, ""], pa.string())), got)
    assert list(got) == [-1, null, -1]


def test_key_lookup_script_runs() -> None:
    """benchmarks/key_lookup.py (the figures of the CHANGELOG): a short run."""
    script = os.path.join(os.path.dirname(__file__), os.pardir, "benchmarks", "key_lookup.py")
    argv = [sys.executable, script, "--keys", "50", "40000", "--rows", "30000", "--repeats", "1"]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    counts = [line.split(":")[0].strip() for line in out.stdout.splitlines()]
    assert counts == ["50 keys", "40,000 keys"]
