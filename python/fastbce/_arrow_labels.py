"""The Arrow side of group labels (``_groups.GroupIndex``): which values of a dictionary rows
use, view types as plain ones, string buffers as NumPy views, dictionary encoding on a few
threads, and NumPy labels as Arrow arrays. pyarrow is imported where it is used."""

from __future__ import annotations

import collections
import os
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import numpy as np

from . import _core
from ._arrow import to_numpy

__all__ = [
    "ENCODE_PIECE",
    "as_signed",
    "dictionary_encoded",
    "is_integer",
    "is_string",
    "text_buffers",
    "to_arrow",
    "used_entries",
    "without_views",
]


def without_views(values: Any) -> Any:
    """Arrow's string_view and binary_view values as large_string and large_binary (a copy of
    a dictionary's values only): the lookups and Arrow's filter take those, not the views."""
    import pyarrow as pa

    if pa.types.is_string_view(values.type):
        return values.cast(pa.large_string())
    if pa.types.is_binary_view(values.type):
        return values.cast(pa.large_binary())
    return values


def used_entries(indices: Any, n_values: int) -> np.ndarray | None:
    """The positions (ascending) of the values of an Arrow dictionary that some row has, or None
    when every value is used (the usual case: a parquet row group's dictionary holds the values of
    its rows; C++ marks them and stops once all are marked). A value that no row has (a filtered
    or sliced array keeps its whole dictionary) is no group, as with the same labels as a list."""
    if n_values == 0:
        return None
    positions = to_numpy(indices.drop_null() if indices.null_count else indices)
    if positions.size == 0:  # (no rows, or only nulls: no value is used)
        return np.empty(0, dtype=np.int64)
    marks = np.zeros(n_values, dtype=np.uint8)
    _core.mark_ints(as_signed(positions), 0, marks)
    return None if marks.all() else np.flatnonzero(marks)


def as_signed(values: np.ndarray) -> np.ndarray:
    """Integers as the C++ scans take them (uint64 below 2**62, as all in a table, as int64)."""
    return values.view(np.int64) if values.dtype == np.uint64 else values


def is_integer(arrow_type: Any) -> bool:
    import pyarrow as pa

    return bool(pa.types.is_integer(arrow_type))


def is_string(arrow_type: Any) -> bool:
    import pyarrow as pa

    return bool(pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type))


def text_buffers(array: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, int]:
    """(offsets (n + 1), bytes, validity bitmap or None, its first bit) of an Arrow string
    array, as NumPy views: what ``KeyCodes.lookup`` takes."""
    import pyarrow as pa

    width = np.int64 if pa.types.is_large_string(array.type) else np.int32
    buffers = array.buffers()
    offsets = np.frombuffer(buffers[1], dtype=width, count=array.offset + len(array) + 1)
    data = np.frombuffer(buffers[2], dtype=np.uint8) if buffers[2] is not None else None
    valid = None
    if array.null_count and buffers[0] is not None:
        valid = np.frombuffer(buffers[0], dtype=np.uint8)
    return (
        offsets[array.offset :],
        data if data is not None else np.empty(0, dtype=np.uint8),
        valid,
        array.offset,
    )


ENCODE_PIECE = 1 << 20  # rows dictionary-encoded by one thread at a time


def dictionary_encoded(chunks: list[Any]) -> Iterator[Any]:
    """The chunks as dictionary arrays, in order. Arrow's dictionary_encode (a hash table in C++)
    runs on one core and releases the GIL, so pieces of a large input are encoded on a few
    threads, a few pieces ahead (bounded memory)."""
    import pyarrow as pa

    pieces = []
    for chunk in chunks:
        if pa.types.is_dictionary(chunk.type) or len(chunk) <= ENCODE_PIECE:
            pieces.append(chunk)
        else:
            pieces += [chunk.slice(i, ENCODE_PIECE) for i in range(0, len(chunk), ENCODE_PIECE)]
    todo = [i for i, p in enumerate(pieces) if not pa.types.is_dictionary(p.type)]
    threads = min(os.cpu_count() or 1, 8, len(todo))
    if sum(len(pieces[i]) for i in todo) < 2 * ENCODE_PIECE or threads < 2:
        for piece in pieces:
            yield piece if pa.types.is_dictionary(piece.type) else piece.dictionary_encode()
        return
    with ThreadPoolExecutor(threads) as pool:
        ahead: collections.deque[Future[Any]] = collections.deque()
        for piece in pieces:
            ahead.append(pool.submit(_encode_piece, piece))
            if len(ahead) > 2 * threads:
                yield ahead.popleft().result()
        while ahead:
            yield ahead.popleft().result()


def _encode_piece(piece: Any) -> Any:
    import pyarrow as pa

    return piece if pa.types.is_dictionary(piece.type) else piece.dictionary_encode()


def to_arrow(arr: np.ndarray) -> Any:
    """NumPy labels as an Arrow array when pyarrow can hash them: strings, bytes, integers, or
    objects that are all strings or all integers (missing ones as nulls); else None."""
    try:
        import pyarrow as pa
    except ImportError:
        return None
    if arr.dtype.kind in "US" and _has_inner_nul(arr):
        arr = arr.astype(object)  # (pyarrow ends a NumPy string at its first NUL: "a\0b" -> "a")
    try:
        table = pa.array(arr, from_pandas=True)  # (converted in C++: None and NaN become null)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, OverflowError):
        return None
    except UnicodeError:  # (a lone surrogate, not UTF-8: Python's keys hold it)
        return None
    kind = table.type
    if arr.dtype.kind == "O" and not (
        pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_integer(kind)
    ):
        return None  # floats, mixed numbers, bools, ...: keep Python's keys (np.unique)
    return table


def _has_inner_nul(arr: np.ndarray) -> bool:
    """Whether a NumPy str or bytes array holds a NUL before a string's end (its padding is
    NULs after it): fewer nonzero characters than the string's length."""
    if arr.size == 0 or arr.dtype.itemsize == 0:
        return False
    unit = np.uint32 if arr.dtype.kind == "U" else np.uint8
    chars = np.ascontiguousarray(arr).view(unit).reshape(arr.size, -1)
    return bool((np.count_nonzero(chars, axis=1) < np.char.str_len(arr)).any())
