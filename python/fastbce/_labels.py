"""Labels: group labels to contiguous codes, class labels to 0/1, and the messages about them.

Shared by ``LossAccumulator`` (groups), ``encode_labels``, the ``fastbce score`` command (labels
read from files) and ``fastbce.dask`` (the row of an error in the whole input). NumPy only;
pyarrow and pandas objects are used through their own methods when given.
"""

from __future__ import annotations

import math
import re
from collections.abc import Hashable
from typing import Any

import numpy as np

__all__ = [
    "encode",
    "encode_labels",
    "factorize",
    "is_missing",
    "kind_of",
    "shift_index",
    "some_values",
]


# --------------------------------------------------------------------------- groups


def factorize(groups: Any) -> tuple[np.ndarray, list[Hashable]]:
    """(codes, keys): contiguous int64 codes in [0, len(keys)), one per label, vectorised.

    Missing labels (None, NaN, null) get the key None. pyarrow arrays are dictionary-encoded by
    Arrow and pandas objects factorized by pandas (both in C); anything else goes through NumPy.
    """
    if hasattr(groups, "dictionary_encode"):  # pyarrow Array / ChunkedArray
        return _factorize_arrow(groups)
    if hasattr(groups, "factorize") and hasattr(groups, "to_numpy"):  # pandas Series / Index
        codes, uniques = groups.factorize(use_na_sentinel=True)
        return _with_missing(np.asarray(codes, dtype=np.int64), list(uniques.tolist()))
    arr = np.asarray(groups)
    if arr.ndim != 1:
        raise ValueError(f"groups must be 1-D (one label per row); got shape {arr.shape}")
    if arr.dtype.kind == "O":
        missing = is_missing(arr)
    elif arr.dtype.kind in "fc":
        missing = np.isnan(arr)
    else:
        return _unique(arr)
    if not missing.any():
        return _unique(arr)
    # missing labels (None, NaN, null) form one more group, keyed None
    codes = np.empty(arr.shape[0], dtype=np.int64)
    present_codes, keys = _unique(arr[~missing])
    codes[~missing] = present_codes
    codes[missing] = len(keys)
    return codes, keys + [None]


def _unique(arr: np.ndarray) -> tuple[np.ndarray, list[Hashable]]:
    try:
        uniques, inverse = np.unique(arr, return_inverse=True)
    except TypeError:
        kinds = sorted({type(v).__name__ for v in arr[:10_000].tolist()})  # (the error path)
        raise TypeError(
            f"groups: labels of mixed types ({', '.join(kinds)}) cannot be ordered; "
            "use labels of one type, for example strings"
        ) from None
    return np.ascontiguousarray(inverse.reshape(-1), dtype=np.int64), uniques.tolist()


def is_missing(arr: np.ndarray) -> np.ndarray:
    """None or NaN, elementwise over an object array (vectorised comparisons)."""
    is_none = arr == np.array(None, dtype=object)
    not_self = arr != arr  # NaN is the one value not equal to itself
    return np.asarray(is_none | not_self, dtype=bool)


def _with_missing(codes: np.ndarray, keys: list[Hashable]) -> tuple[np.ndarray, list[Hashable]]:
    missing = codes < 0
    if missing.any():
        codes = codes.copy()
        codes[missing] = len(keys)
        keys = keys + [None]
    return np.ascontiguousarray(codes, dtype=np.int64), keys


def _factorize_arrow(groups: Any) -> tuple[np.ndarray, list[Hashable]]:
    if hasattr(groups, "combine_chunks"):  # a ChunkedArray
        groups = groups.combine_chunks()
    if hasattr(groups, "dictionary") and hasattr(groups, "indices"):  # already encoded
        encoded = groups
    else:
        encoded = groups.dictionary_encode()
    indices = encoded.indices.fill_null(-1).to_numpy(zero_copy_only=False)
    keys = encoded.dictionary.to_pylist()
    codes, keys = _with_missing(indices.astype(np.int64), keys)
    if any(isinstance(k, float) and math.isnan(k) for k in keys):  # NaN values (not nulls)
        merged: list[Hashable] = []  # NaN joins the missing labels under None
        where: dict[Hashable, int] = {}
        remap = np.empty(len(keys), dtype=np.int64)
        for i, key in enumerate(keys):  # one iteration per group
            if isinstance(key, float) and math.isnan(key):
                key = None
            remap[i] = where.setdefault(key, len(merged))
            if remap[i] == len(merged):
                merged.append(key)
        return remap[codes], merged
    return codes, keys


# --------------------------------------------------------------------------- labels


def encode_labels(values: Any, positive: Any) -> np.ndarray:
    """Class labels to 0/1: a uint8 array, 1 where ``values == positive`` and 0 elsewhere.

    ``values`` holds string or integer (or any comparable) labels, for example "cat"/"dog" with
    ``positive="dog"`` or {1, 2} with ``positive=2``. Raises ValueError when ``positive`` does not
    occur at all (it names it and shows some values that do occur), which catches a misspelt or
    mistyped label (``positive="2"`` for integer labels) before it silently scores everything as
    the negative class.
    """
    encoded, found = encode(values, positive)
    if not found:
        raise ValueError(_missing_positive_message(positive, values))
    return encoded


def encode(values: Any, positive: Any) -> tuple[np.ndarray, bool]:
    """(uint8 0/1 labels, whether positive occurs)."""
    arr = np.asarray(values)
    if arr.dtype.kind not in "biufUSO":
        raise TypeError(f"values: labels of dtype {arr.dtype} cannot be class labels")
    hit = np.asarray(arr == positive, dtype=bool)
    if hit.shape != arr.shape:  # a comparison NumPy could not do elementwise
        raise TypeError(f"values: labels of dtype {arr.dtype} cannot be compared to {positive!r}")
    return hit.view(np.uint8), bool(hit.any())


def _missing_positive_message(positive: Any, values: Any, limit: int = 5) -> str:
    sample = some_values(values, limit)
    shown = ", ".join(map(repr, sample[:limit]))
    if len(sample) > limit:
        shown += ", ..."
    kind = kind_of(values)
    return f"positive label {positive!r} does not occur in the labels; they include " + (
        f"{shown} ({kind})" if shown else "nothing (there are no labels)"
    )


def kind_of(values: Any) -> str:
    dtype = getattr(values, "type", None) or getattr(values, "dtype", None)  # pyarrow, NumPy
    if dtype is None:
        dtype = np.asarray(values).dtype  # (the error path)
    return f"labels of type {dtype}"


def some_values(values: Any, limit: int) -> list[Any]:
    """Up to limit + 1 distinct values from the start of values, as Python objects."""
    if hasattr(values, "unique") and hasattr(values, "to_pylist"):  # pyarrow
        return values.slice(0, 100_000).unique().to_pylist()[: limit + 1]
    arr = np.asarray(values).reshape(-1)[:100_000]
    try:
        distinct = np.unique(arr).tolist()
    except TypeError:
        distinct = list(dict.fromkeys(arr.tolist()))
    return distinct[: limit + 1]


_FLAT_INDEX = re.compile(r"at flat index (\d+)")


def shift_index(message: str, offset: int, what: str = "row") -> str:
    """Rewrites "at flat index i" of a 1-D batch's error as the row in the whole input."""
    return _FLAT_INDEX.sub(lambda m: f"at {what} {offset + int(m.group(1))}", message)
