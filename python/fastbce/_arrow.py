"""Arrow arrays as NumPy arrays, without pandas.

pyarrow's ``to_numpy`` and ``pa.array`` import pandas when it is installed (a quarter of a second
of start-up for ``fastbce score``), so the columns of a batch are handed over through DLPack: a
view of Arrow's buffer for numbers without nulls; nulls are filled (NaN for floats) and booleans
cast to uint8 by Arrow's compute functions first.
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
    import pyarrow.compute as pc

    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    kind = values.type
    if values.null_count:
        if null is None:
            raise ValueError(f"{values.null_count} null values where none are allowed")
        if not pa.types.is_floating(kind):
            values = pc.cast(values, pa.float64())
        values = pc.fill_null(values, null)
        kind = values.type
    if pa.types.is_boolean(kind):
        return np.from_dlpack(pc.cast(values, pa.uint8())).view(np.bool_)
    if pa.types.is_integer(kind) or pa.types.is_floating(kind):
        return np.from_dlpack(values)
    return values.to_numpy(zero_copy_only=False)
