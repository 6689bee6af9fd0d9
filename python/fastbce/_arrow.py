"""Arrow arrays as NumPy arrays, without pandas.

pyarrow's ``to_numpy`` and ``pa.array`` import pandas when it is installed (a quarter of a second
of start-up for ``fastbce score``), so the columns of a batch are handed over through DLPack: a
view of Arrow's buffer for numbers without nulls. Booleans without nulls are unpacked from their
bitmap by NumPy (``np.unpackbits``: 8x faster than Arrow's cast to uint8, and no import of
``pyarrow.compute``, 25 ms of a run's start-up); nulls are filled (NaN for floats) by Arrow's
compute functions first.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["to_numpy"]


def to_numpy(values: Any, null: float | None = None) -> np.ndarray:
    """A 1-D Arrow array (or one-chunk ChunkedArray) of numbers or booleans as NumPy: booleans
    as bool, nulls as `null` (the array becomes float64 if it is not floating; ValueError when
    there are nulls and `null` is None). Other types go through pyarrow's own conversion."""
    import pyarrow as pa

    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    kind = values.type
    if values.null_count:
        if null is None:
            raise ValueError(f"{values.null_count} null values where none are allowed")
        import pyarrow.compute as pc  # (only for nulls: its import is 25 ms)

        if not pa.types.is_floating(kind):
            values = pc.cast(values, pa.float64())
        values = pc.fill_null(values, null)
        kind = values.type
    if pa.types.is_boolean(kind):
        return _unpack_bools(values)
    if pa.types.is_integer(kind) or pa.types.is_floating(kind):
        return np.from_dlpack(values)
    return values.to_numpy(zero_copy_only=False)


def _unpack_bools(values: Any) -> np.ndarray:
    """A boolean Arrow array without nulls as NumPy bool: its bitmap (least significant bit
    first, from bit ``offset``) unpacked a byte at a time."""
    n = len(values)
    if n == 0:
        return np.zeros(0, dtype=np.bool_)
    first, skip = divmod(values.offset, 8)
    bitmap = np.frombuffer(
        values.buffers()[1], dtype=np.uint8, count=(skip + n + 7) // 8, offset=first
    )
    bits = np.unpackbits(bitmap, count=skip + n, bitorder="little")
    return bits[skip:].view(np.bool_)
