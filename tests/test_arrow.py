"""Arrow columns as NumPy arrays (``fastbce._arrow.to_numpy``): numbers as views of Arrow's
buffers, booleans unpacked from their bitmap at any offset, nulls filled."""

from __future__ import annotations

import math

import numpy as np
import pytest

pa = pytest.importorskip("pyarrow")

from fastbce._arrow import to_numpy  # noqa: E402


@pytest.mark.parametrize("n", [0, 1, 7, 8, 9, 64, 1000, 100_003])
def test_booleans_at_every_offset(n):
    values = np.random.default_rng(n).random(n) < 0.3
    array = pa.array(values)
    for offset in sorted({o for o in (0, 1, 3, 7, 8, 13, 64, n // 2) if o <= n}):
        for length in sorted({m for m in (0, 1, 5, 17, n - offset) if offset + m <= n}):
            got = to_numpy(array.slice(offset, length))
            assert got.dtype == np.bool_
            assert np.array_equal(got, values[offset : offset + length])


def test_chunked_booleans():
    values = np.random.default_rng(1).random(1001) < 0.5
    array = pa.array(values)
    chunked = pa.chunked_array([array.slice(0, 333), array.slice(333, 1), array.slice(334)])
    assert np.array_equal(to_numpy(chunked), values)


def test_booleans_with_nulls_are_nan_where_null():
    got = to_numpy(pa.array([True, None, False, True]), null=math.nan)
    assert got.dtype == np.float64
    assert np.array_equal(got, [1.0, math.nan, 0.0, 1.0], equal_nan=True)
    with pytest.raises(ValueError, match="1 null values"):
        to_numpy(pa.array([True, None]))


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int32, np.uint8])
def test_numbers_are_views(dtype):
    values = np.arange(10, dtype=dtype)
    array = pa.array(values).slice(3, 5)
    got = to_numpy(array)
    assert got.dtype == dtype
    assert np.array_equal(got, values[3:8])
