"""Labels: class labels to 0/1, missing values, and the messages about labels.

Shared by ``encode_labels``, the group codes (``_groups``), the ``fastbce score`` command (labels
read from files) and ``fastbce.dask`` (the row of an error in the whole input). NumPy only;
pyarrow and pandas objects are used through their own methods when given.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np

__all__ = [
    "encode",
    "encode_labels",
    "is_missing",
    "kind_of",
    "polars_integers_with_none",
    "shift_index",
    "some_values",
]


# --------------------------------------------------------------------------- missing values


def is_missing(arr: np.ndarray) -> np.ndarray:
    """None, NaN or pandas' NA, elementwise over an object array (vectorised comparisons)."""
    try:
        is_none = arr == np.array(None, dtype=object)
        not_self = arr != arr  # NaN is the one value not equal to itself
        return np.asarray(is_none | not_self, dtype=bool)
    except TypeError:  # pd.NA: its comparisons give NA, whose truth is an error; one by one
        return np.fromiter(map(_missing_value, arr.tolist()), dtype=bool, count=arr.shape[0])


def _missing_value(v: Any) -> bool:
    if v is None:
        return True
    try:
        return bool(v != v)
    except TypeError:  # pd.NA
        return True


# --------------------------------------------------------------------------- labels


def polars_integers_with_none(values: Any) -> np.ndarray | None:
    """A polars integer Series with nulls as objects, Python ints and None (pandas' nullable
    Int64 keeps its keys so; NumPy would make them floats: 1 -> 1.0, 2**62 + 1 rounded); None
    for anything else."""
    if not type(values).__module__.startswith("polars") or not hasattr(values, "null_count"):
        return None
    dtype = getattr(values, "dtype", None)
    if not getattr(dtype, "is_integer", lambda: False)() or values.null_count() == 0:
        return None
    out = values.fill_null(0).to_numpy().astype(object)
    out[values.is_null().to_numpy()] = None
    return out


def encode_labels(values: Any, positive: Any) -> np.ndarray:
    """Class labels to 0/1: 1 where ``values == positive`` and 0 elsewhere.

    Parameters
    ----------
    values : array_like
        String or integer (or any comparable) labels, for example "cat"/"dog" or 1/2.
    positive : object
        The label of the positive class, of the labels' type (``2``, not ``"2"``, for integers).

    Returns
    -------
    numpy.ndarray
        uint8 labels of ``values``' shape, ready for ``binary_crossentropy``.

    Raises
    ------
    ValueError
        ``positive`` does not occur at all (the message shows some labels that do): a misspelt or
        mistyped label would otherwise score everything as the negative class.
    TypeError
        ``values`` has a dtype that cannot hold class labels.

    Examples
    --------
    >>> import numpy as np
    >>> import fastbce
    >>> fastbce.encode_labels(np.array(["cat", "dog", "dog", "cat"]), "dog")
    array([0, 1, 1, 0], dtype=uint8)
    >>> fastbce.encode_labels([1, 2, 2, 1], 2)
    array([0, 1, 1, 0], dtype=uint8)
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
