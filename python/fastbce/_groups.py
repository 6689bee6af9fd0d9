"""Group labels to the codes of the per-group sums: ``GroupIndex``.

A ``GroupIndex`` holds the distinct labels seen so far (in first-seen order) and turns each batch
of labels into int64 (or int32) codes, with which the kernel adds every row to its group's sums
in the loss's own pass. The work per row is vectorised, never a Python loop:

- Text keys (Arrow strings, or NumPy strings and objects through Arrow) are kept only in a C++
  table (``_core.KeyCodes``: their bytes, code order), never as Python strings too: every row is
  looked up there (on a few threads for a large input), and new keys are added in C++. Arrow
  dictionary arrays (a parquet column read as a dictionary) keep their indices; only the
  dictionary (one entry per distinct value) is looked up.
- Integers (and booleans) in a compact range index a dense table of codes directly: a vectorised
  C++ pass finds their range, a second finds the labels present only while some label of the
  range is new (and stops once all are found: a few rows for a few labels), and labels 0, 1, 2,
  ... that are their own codes are not even copied. While every key is such an integer the keys
  are one int64 array (``_ints``), not Python objects (a million of those took 105 MB). Integers
  spread wider are hashed by Arrow, or sorted by ``np.unique`` without pyarrow.
- pandas objects are factorised by pandas; anything else (floats, mixed objects) by ``np.unique``.

Keys of other kinds (or text or integers mixed with others) are kept as Python objects in a list
and a dict. Python loops only over labels never seen before (each once) or, in the fallbacks,
over the distinct labels of a batch. Missing labels (None, NaN, null) share the key None.
"""

from __future__ import annotations

import math
import operator
import os
from collections.abc import Hashable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, overload

import numpy as np

from . import _core
from ._arrow import to_numpy
from ._arrow_labels import (
    ENCODE_PIECE,
    as_signed,
    dictionary_encoded,
    is_integer,
    is_string,
    text_buffers,
    to_arrow,
    used_entries,
    without_views,
)
from ._group_arrays import empty
from ._labels import is_missing, polars_integers_with_none

DENSE_MIN_SPAN = 1 << 16  # integer labels in a range this wide always use the dense table
DENSE_MAX_SPAN = 1 << 24  # never wider (a table of 128 MiB of codes)
LOCAL_KEYS = 1 << 16  # past this many keys a batch's codes are renumbered to its own labels


class GroupIndex:
    """The keys seen so far and their codes: ``encode`` codes a batch and adds its new keys,
    ``rollback(mark)`` forgets those added after ``len(keys)`` was ``mark`` (a failed batch
    leaves the index as it was). Keys all text (or None): only in ``_text`` (C++); all dense
    integers: only in ``_ints``; else in ``_keys`` and ``_index``."""

    def __init__(self, keys: list[Hashable] | None = None) -> None:
        self._keys: list[Hashable] = []
        self._index: dict[Hashable, int] = {}
        self._arrow: dict[str, tuple[Any, np.ndarray]] = {}  # type -> (values seen, codes)
        self._dense = np.empty(0, dtype=np.int64)  # value - _offset -> code, -1 if unseen
        self._offset = 0
        self._identity = 0  # _dense[:_identity] == arange(_identity) (with _offset 0)
        self._text: Any = None  # _core.KeyCodes: every key, while they are all text (or None)
        self._ints: np.ndarray | None = None  # every key by code, while all are dense integers
        for key in keys or []:
            self.code(key)

    @property
    def nbytes(self) -> int:
        """The bytes of the text keys' table, the integer keys and their dense table of codes."""
        return sum(int(t.nbytes) for t in (self._text, self._ints, self._dense) if t is not None)

    @property
    def keys(self) -> Sequence[Hashable]:
        """The keys in the order of their codes."""
        if self._ints is not None:
            return _IntKeys(self._ints)
        return _TextKeys(self._text) if self._text is not None else self._keys

    def __len__(self) -> int:
        if self._ints is not None:
            return int(self._ints.size)
        return len(self._text) if self._text is not None else len(self._keys)

    def keys_at(self, codes: np.ndarray) -> list[Hashable]:
        """The keys of some codes, as a list."""
        if self._text is not None:
            return list(self._text.keys(np.ascontiguousarray(codes, dtype=np.int64)))
        if self._ints is not None:
            return list(self._ints[codes].tolist())
        return [self._keys[i] for i in np.asarray(codes).tolist()]

    def code(self, key: Hashable) -> int:
        """The code of one key, added if it is new (NaN is the missing key None)."""
        if isinstance(key, float) and math.isnan(key):
            key = None
        if self._text is None and len(self) == 0 and (key is None or isinstance(key, str)):
            self._text = _new_text_keys()  # (the first key: text mode while keys are text)
        if self._text is not None:
            if key is None:
                return int(self._text.null_code())
            if isinstance(key, str) and _is_utf8(key):
                return int(self._text.code(key))
            self._to_objects()  # (a key of another kind: every key becomes a Python object)
        if self._ints is not None:
            found = self._dense_code(key)
            if found is not None:
                return found
            self._to_objects()
        try:
            code = self._index.get(key)
        except TypeError:
            raise TypeError(unhashable_label(key)) from None
        if code is None:
            code = self._index[key] = len(self._keys)
            self._keys.append(key)
        return code

    def find(self, key: Hashable) -> int | None:
        """The code of a key seen, else None (nothing is added)."""
        if self._text is not None:
            if key is None:
                code = int(self._text.find_null())
            elif isinstance(key, str) and _is_utf8(key):
                code = int(self._text.find(key))
            else:
                return None
            return code if code >= 0 else None
        if self._ints is not None:
            return self._dense_code(key)
        return self._index.get(key)

    def _dense_code(self, key: Hashable) -> int | None:
        """The code of an integer key in the dense table, else None."""
        if type(key) is not int or not 0 <= key - self._offset < self._dense.size:
            return None
        code = int(self._dense[key - self._offset])
        return code if code >= 0 else None

    def codes_of(self, other: GroupIndex) -> np.ndarray:
        """The code here of each of other's keys, in other's code order (new ones added)."""
        if other._text is not None and (self._text is not None or len(self) == 0):
            if self._text is None:
                self._text = _new_text_keys()
            return np.asarray(self._text.absorb(other._text), dtype=np.int64)
        if other._ints is not None and (self._ints is not None or len(self) == 0):
            return self._encode_integers(other._ints)  # (integer mode stays: no Python keys)
        keys = other.keys
        return np.fromiter((self.code(k) for k in keys), np.int64, count=len(keys))

    def rollback(self, mark: int) -> None:
        if mark == len(self):
            return
        self._arrow.clear()  # (a cache: the keys kept are found again through _index)
        if self._text is not None:
            self._text.forget(mark)
            return
        if self._ints is not None:
            self._ints = self._ints[:mark].copy() if mark else None  # (none: no mode yet)
        for key in self._keys[mark:]:
            del self._index[key]
        del self._keys[mark:]
        self._dense[self._dense >= mark] = -1
        self._identity = _identity_prefix(self._dense, self._offset)

    def _to_objects(self) -> None:
        """Text or integer mode ends: the keys become Python objects (a key of another kind
        came)."""
        if self._ints is not None:
            self._keys, self._ints = self._ints.tolist(), None
        else:
            text, self._text = self._text, None
            self._keys = list(text.keys(np.arange(len(text), dtype=np.int64)))
        self._index = {k: i for i, k in enumerate(self._keys)}

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_arrow"] = {}  # (a cache of Arrow arrays)
        if self._text is not None:  # (as plain data: pybind11 pickles its objects with
            state["_text"] = ("KeyCodes", self._text.__getstate__())  # protocol >= 2 only)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        state.setdefault("_ints", None)  # (pickled before integer keys were one array)
        text = state.get("_text")
        if isinstance(text, tuple):
            state["_text"] = _core.KeyCodes.__new__(_core.KeyCodes)
            state["_text"].__setstate__(text[1])
        self.__dict__.update(state)

    # ------------------------------------------------------------------ batches

    def encode_local(self, groups: Any) -> tuple[np.ndarray, np.ndarray]:
        """(codes, table): int64 or int32 codes into the batch's own labels, one per row, and
        the code in ``keys`` of each of those labels (all distinct), so a batch has as many
        per-group sums as it has labels, whatever the number of keys so far. An Arrow dictionary
        array (a parquet column read as a dictionary) keeps its indices as the codes: only its
        dictionary is looked up, once per batch (int32 indices as they are: the kernel takes
        them, no int64 copy per batch)."""
        if hasattr(groups, "dictionary_encode"):
            local = self._arrow_local(groups)
            if local is not None:
                return kernel_codes(local[0]), local[1]
        return compact(self.encode(groups), len(self))

    def encode_batch(self, groups: Any, rows: int, name: str) -> tuple[np.ndarray, np.ndarray]:
        """encode_local of the group labels of a batch of ``rows`` rows (the slicing ``name``,
        "groups" for the single one): ValueError unless there is one label per row."""
        codes, table = self.encode_local(groups)
        _check_rows(codes, rows, name)
        return codes, table

    def encode_in_place(
        self, groups: Any, rows: int, name: str
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """encode_batch, except that past LOCAL_KEYS keys the codes are into ``keys`` and the
        table is None: for a caller that adds to every key's sums in place (a batch's own
        codes and sums would be copies). The codes are int64, or int32 as ``encode`` gives
        them or an Arrow dictionary's indices as they are (the report's kernel takes either)."""
        local = self._arrow_local(groups) if hasattr(groups, "dictionary_encode") else None
        if local is None:
            codes, table = self.encode(groups), None
        else:  # (the dictionary's positions: int32 as read, or one int64 array made of them)
            positions, table = local  # (the report's kernel checks the positions as codes)
            if len(self) > LOCAL_KEYS:
                _check_positions(positions, table.size)  # (they index the table here)
                codes = table[positions]
            else:
                codes = kernel_codes(positions)
        if len(self) > LOCAL_KEYS:
            table = None
        elif table is None:
            codes, table = compact(codes, len(self))
        _check_rows(codes, rows, name)
        return codes, table

    def _arrow_local(self, groups: Any) -> tuple[np.ndarray, np.ndarray] | None:
        """encode_local of one Arrow dictionary chunk, except that the codes are its indices as
        they are (int32, a view of Arrow's buffer when there are no nulls); None otherwise."""
        import pyarrow as pa

        chunks = groups.chunks if isinstance(groups, pa.ChunkedArray) else [groups]
        if len(chunks) != 1 or not pa.types.is_dictionary(chunks[0].type):
            return None
        chunk = chunks[0]
        if used_entries(chunk.indices, len(chunk.dictionary)) is not None:
            return None  # (values that no row has: _encode_arrow leaves them out, and checks)
        table = self._dictionary_codes(chunk.dictionary)
        indices = chunk.indices
        if indices.null_count:  # a null label is the key None
            table = np.append(table, self.code(None))
            indices = indices.fill_null(len(table) - 1)
        if not _distinct(table, len(self)):  # (a dictionary with repeated or null values)
            return None
        return to_numpy(indices), table

    def encode(self, groups: Any) -> np.ndarray:
        """int64 codes into ``keys``, one per label (1-D); int32 labels that are their own codes
        come back as they are, and labels that Arrow hashes (text) as int32 codes while the keys
        fit (half the memory of int64; the kernels take either)."""
        if hasattr(groups, "dictionary_encode"):  # pyarrow Array / ChunkedArray
            if is_integer(groups.type) and not groups.null_count:  # (a dense table, no hashing)
                return self._encode_integers(to_numpy(groups))
            return self._encode_arrow(groups)
        if hasattr(groups, "factorize") and hasattr(groups, "to_numpy"):  # pandas
            codes, uniques = groups.factorize(use_na_sentinel=True)
            codes = np.asarray(codes, dtype=np.int64)
            missing = codes < 0
            if missing.any():  # -> the key None
                codes[missing] = len(uniques)
                return self._local(codes, [*uniques.tolist(), None])
            return self._local(codes, uniques.tolist())
        arr = _labels_array(groups)
        if arr.ndim != 1:
            raise ValueError(f"groups must be 1-D (one label per row); got shape {arr.shape}")
        if arr.dtype.kind in "biu":
            return self._encode_integers(arr)
        if arr.dtype.kind in "USO":
            table = to_arrow(arr)
            if table is not None:
                return self._encode_arrow(table)
        return self._encode_numpy(arr)

    def _local(self, codes: np.ndarray, keys: list[Hashable]) -> np.ndarray:
        """Codes into a batch's own distinct keys -> codes into ``keys`` (a loop over the batch's
        distinct keys, not its rows)."""
        table = np.fromiter((self.code(k) for k in keys), dtype=np.int64, count=len(keys))
        return table[codes] if len(keys) else np.zeros(codes.shape[0], dtype=np.int64)

    def _encode_numpy(self, arr: np.ndarray) -> np.ndarray:
        """Floats, or objects and strings without pyarrow: np.unique (a sort)."""
        if arr.dtype.kind == "O":
            missing = is_missing(arr)
        elif arr.dtype.kind in "fc":
            missing = np.isnan(arr)
        else:
            missing = np.zeros(arr.shape[0], dtype=bool)
        any_missing = bool(missing.any())
        present = arr[~missing] if any_missing else arr
        try:
            uniques, inverse = np.unique(present, return_inverse=True)
            keys = uniques.tolist()
        except TypeError:  # labels that cannot be sorted (1 and "a"): by a dict, first seen first
            keys, inverse = _first_seen_codes(present)
        if not any_missing:
            return self._local(inverse.reshape(-1), keys)
        codes = np.full(arr.shape[0], len(keys), dtype=np.int64)  # missing -> the key None
        codes[~missing] = inverse.reshape(-1)
        return self._local(codes, [*keys, None])

    # ------------------------------------------------------------------ integers

    def _encode_integers(self, arr: np.ndarray) -> np.ndarray:
        if arr.shape[0] == 0:
            return np.empty(0, dtype=np.int64)
        if not arr.dtype.isnative:  # (the C++ scans read native integers: '>i4' read as 7 << 24)
            arr = arr.astype(arr.dtype.newbyteorder("="))
        values = np.ascontiguousarray(arr.view(np.uint8) if arr.dtype.kind == "b" else arr)
        if values.dtype == np.uint64:  # (beyond the C++ scan: NumPy's min and max)
            lo, hi = int(values.min()), int(values.max())
        else:  # (one vectorised C++ pass)
            lo, hi = _core.int_range(values)
        if self._dense.size:  # the table covers the values of earlier batches too
            lo_all = min(lo, self._offset)
            hi_all = max(hi, self._offset + self._dense.size - 1)
        else:
            lo_all, hi_all = lo, hi
        span = hi_all - lo_all + 1
        wide = span > max(DENSE_MIN_SPAN, 2 * arr.shape[0]) or span > DENSE_MAX_SPAN
        if wide or not -(2**62) <= lo_all <= hi_all < 2**62:  # spread out, or huge: hash them
            table = to_arrow(arr)
            return self._encode_arrow(table) if table is not None else self._encode_numpy(arr)
        if lo_all != self._offset or span != self._dense.size:  # widen the table
            dense = np.full(span, -1, dtype=np.int64)
            start = self._offset - lo_all
            dense[start : start + self._dense.size] = self._dense
            self._dense, self._offset = dense, lo_all
            self._identity = _identity_prefix(self._dense, self._offset)
        # (int64 arithmetic: labels beyond +-2**62 never get here)
        window = self._dense[lo - self._offset : hi - self._offset + 1]  # (a view)
        if (window < 0).any():  # which labels of [lo, hi] the batch has (C++, stops early)
            marks = np.zeros(window.size, dtype=np.uint8)
            _core.mark_ints(as_signed(values), lo, marks)
            new = np.flatnonzero(marks.view(bool) & (window < 0))
            if arr.dtype.kind in "iu" and (self._ints is not None or len(self) == 0):
                start = len(self)  # (integer mode: the keys stay one array)
                self._text = None  # (no keys: not text mode either)
                self._ints = np.concatenate([self._ints if start else _NO_INTS, new + lo])
                window[new] = np.arange(start, start + new.size)
            else:
                keys = (new + lo).astype(arr.dtype).tolist()
                window[new] = [self.code(k) for k in keys]
            self._identity = _identity_prefix(self._dense, self._offset)
        if hi - self._offset < self._identity and values.dtype in (np.int64, np.int32):
            return values  # the labels are their codes (0, 1, 2, ...): no copy (the kernels
            # take int32 codes too)
        out = np.empty(values.shape[0], dtype=np.int64)
        _core.gather_codes(as_signed(values), self._offset, self._dense, out)
        return out

    # ------------------------------------------------------------------ arrow

    def _encode_arrow(self, groups: Any) -> np.ndarray:
        import pyarrow as pa

        chunks = groups.chunks if isinstance(groups, pa.ChunkedArray) else [groups]
        value_type = groups.type.value_type if pa.types.is_dictionary(groups.type) else groups.type
        if pa.types.is_nested(value_type):  # (list, struct, map: Arrow cannot hash them)
            raise TypeError(f"groups: cannot group by values of type {value_type}")
        # (a batch of one piece: each row looked up in C++; a larger input is dictionary-encoded
        # by Arrow on a few threads first, which measured faster than the lookup of every row)
        one_piece = len(chunks) == 1 and len(groups) <= ENCODE_PIECE
        if one_piece and is_string(chunks[0].type) and self._text_mode():
            return self._text_rows(chunks, len(groups))
        # (int32 codes while the keys fit, of small pages: _group_arrays.empty)
        wide = len(self) + len(groups) > np.iinfo(np.int32).max
        out = empty(len(groups), np.int64 if wide else np.int32)
        start = 0
        for chunk in dictionary_encoded(chunks):
            used = used_entries(chunk.indices, len(chunk.dictionary))
            if used is None:
                table = self._dictionary_codes(chunk.dictionary)
            else:  # (a value no row has is no group; its entry stays 0, which no row reads)
                table = np.zeros(len(chunk.dictionary), dtype=np.int64)
                table[used] = self._dictionary_codes(chunk.dictionary.take(used))
            indices = chunk.indices
            if indices.null_count:  # a null label is the key None
                table = np.append(table, self.code(None))
                indices = indices.fill_null(len(table) - 1)
            stop = start + len(chunk)
            positions = to_numpy(indices)  # (no nulls: a view of Arrow's buffer)
            if table.size == 0 or not np.array_equal(table, np.arange(table.size)):
                table = table.astype(out.dtype)  # (the codes fit: the keys do)
                # (a safe=False array's index past its dictionary: an error, not a clipped code;
                # the codes of the other branch are the positions, which the kernel checks)
                _check_positions(positions, table.size, start)
                np.take(table, positions, out=out[start:stop], mode="clip")
            else:  # the dictionary is in the order of the keys (as the first batch's)
                out[start:stop] = positions
            start = stop
        return out

    def _text_mode(self) -> bool:
        """Whether the keys are all text (or there are none yet: text mode starts)."""
        if self._text is None and len(self) == 0:
            self._text = _new_text_keys()
        return self._text is not None

    def _text_rows(self, chunks: list[Any], rows: int) -> np.ndarray:
        """The codes of Arrow string arrays, each row looked up in the text keys (C++); the
        rows of keys never seen are added in row order. A large input is looked up in pieces on
        a few threads (C++ without the GIL) once its first piece has added its keys; the adding
        comes after, on this thread (no lookup runs while the table changes)."""
        out = np.empty(rows, dtype=np.int64)
        pieces, start = [], 0
        for chunk in chunks:
            for i in range(0, len(chunk), ENCODE_PIECE):
                piece = chunk.slice(i, ENCODE_PIECE)
                pieces.append((text_buffers(piece), out[start : start + len(piece)]))
                start += len(piece)
        text = self._text
        threads = min(os.cpu_count() or 1, 8, len(pieces) - 1)
        if threads < 2:
            for buffers, codes in pieces:
                text.lookup(*buffers, codes)
                text.add_unknown(*buffers, codes)
            return out
        text.lookup(*pieces[0][0], pieces[0][1])  # (the first piece adds most new keys)
        text.add_unknown(*pieces[0][0], pieces[0][1])
        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(lambda p: text.lookup(*p[0], p[1]), pieces[1:]))
        for buffers, codes in pieces[1:]:
            text.add_unknown(*buffers, codes)
        return out

    def _dictionary_codes(self, dictionary: Any) -> np.ndarray:
        """The code of each value of an Arrow dictionary: text is looked up in the text keys;
        other values by Arrow (a hash table in C++) among the values seen before, and Python
        adds the ones never seen. (Not pa.array or Arrow's to_numpy here: both import pandas, a
        quarter of a second.)"""
        dictionary = without_views(dictionary)
        if is_string(dictionary.type) and self._text_mode():
            return self._text_rows([dictionary], len(dictionary))
        import pyarrow as pa
        import pyarrow.compute as pc  # (not for text: its import is 25 ms of a run's start)

        kind = str(dictionary.type)
        seen = self._arrow.get(kind)
        if seen is None:
            codes = np.full(len(dictionary), -1, dtype=np.int64)
            new = dictionary
        else:
            where = pc.index_in(dictionary, value_set=seen[0], skip_nulls=True)
            codes = to_numpy(where.fill_null(-1)).astype(np.int64)
            found = codes >= 0
            codes[found] = seen[1][codes[found]]
            if found.all():
                return codes
            new = dictionary.filter(pc.is_null(where))
        missing = np.flatnonzero(codes < 0)
        codes[missing] = [self.code(k) for k in new.to_pylist()]
        valid = new.is_valid()  # (nulls never match: they are found by Python each time)
        keep = np.flatnonzero(to_numpy(valid))
        old = seen if seen is not None else (new.slice(0, 0), np.empty(0, dtype=np.int64))
        self._arrow[kind] = (
            pa.concat_arrays([old[0], new.filter(valid)]),
            np.concatenate([old[1], codes[missing][keep]]),
        )
        return codes


_NO_INTS = np.empty(0, dtype=np.int64)


class _IntKeys(Sequence[Hashable]):
    """The keys of an integer index as a sequence (Python ints when asked for)."""

    def __init__(self, ints: np.ndarray) -> None:
        self._ints = ints

    def __len__(self) -> int:
        return int(self._ints.size)

    @overload
    def __getitem__(self, i: int) -> Hashable: ...
    @overload
    def __getitem__(self, i: slice) -> list[Hashable]: ...
    def __getitem__(self, i: Any) -> Any:
        if isinstance(i, slice):
            return list(self._ints[i].tolist())
        return int(self._ints[operator.index(i)])

    def __iter__(self) -> Iterator[Hashable]:
        for start in range(0, self._ints.size, 1 << 16):
            yield from self._ints[start : start + (1 << 16)].tolist()


class _TextKeys(Sequence[Hashable]):
    """The keys of a text index as a sequence (made as Python strings when asked for)."""

    def __init__(self, text: Any) -> None:
        self._text = text

    def __len__(self) -> int:
        return len(self._text)

    @overload
    def __getitem__(self, i: int) -> Hashable: ...
    @overload
    def __getitem__(self, i: slice) -> list[Hashable]: ...
    def __getitem__(self, i: Any) -> Any:
        n = len(self._text)
        if isinstance(i, slice):
            return list(self._text.keys(np.arange(n, dtype=np.int64)[i]))
        j = operator.index(i)
        if not -n <= j < n:
            raise IndexError("key index out of range")
        return self._text.keys(np.array([j % n], dtype=np.int64))[0]

    def __iter__(self) -> Iterator[Hashable]:
        n = len(self._text)
        for start in range(0, n, 1 << 16):
            yield from self._text.keys(np.arange(start, min(n, start + (1 << 16)), dtype=np.int64))


def _labels_array(groups: Any) -> np.ndarray:
    """Group labels as NumPy holds them; a list or tuple as objects where NumPy would change
    its labels: into text (1 and "1", b"a" and "a", 1 and "a", which would become one group;
    NaN, which would become "nan"), into floats (2**63 and 2**63 + 1, one float) or into rows
    of a 2-D array (tuples as labels), so that each label keeps its type."""
    if not isinstance(groups, (list, tuple)):
        integers = polars_integers_with_none(groups)  # (NumPy would make them floats)
        if integers is not None:
            return integers
        try:
            return np.asarray(groups)
        except (TypeError, ValueError, RuntimeError) as e:  # (a bfloat16 tensor, say)
            raise TypeError(f"groups: cannot read it as an array: {e}") from None
    try:
        arr = np.asarray(groups)
    except ValueError:  # (labels of unequal lengths)
        return np.fromiter(groups, dtype=object, count=len(groups))
    if arr.ndim > 1:
        return np.fromiter(groups, dtype=object, count=len(groups))
    kind = {"U": str, "S": bytes, "f": float}.get(arr.dtype.kind)
    if kind is not None and not all(type(v) is kind for v in groups):
        return np.fromiter(groups, dtype=object, count=len(groups))
    return arr


def _new_text_keys() -> Any:
    return _core.KeyCodes()


def _is_utf8(key: str) -> bool:
    """Whether a str is text C++ can hold (no lone surrogates)."""
    if key.isascii():
        return True
    try:
        key.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _first_seen_codes(values: np.ndarray) -> tuple[list[Any], np.ndarray]:
    """(keys in first-seen order, each value's code) of object labels that np.unique cannot sort
    (mixed types): a Python loop, for this case only; a batch's keys need no order (result()
    orders them, or keeps them as first seen where they cannot be ordered: key_order)."""
    seen: dict[Any, int] = {}
    labels = values.tolist()
    try:
        codes = np.fromiter(
            (seen.setdefault(v, len(seen)) for v in labels), np.int64, values.shape[0]
        )
    except TypeError:
        raise TypeError(unhashable_label(next(v for v in labels if not _hashes(v)))) from None
    return list(seen), codes


def _hashes(label: Any) -> bool:
    try:
        hash(label)
    except TypeError:
        return False
    return True


def unhashable_label(label: Any) -> str:
    return f"group labels must be hashable (fit to be a dict's key); got a {type(label).__name__}"


def slicing_names(groups: dict[Any, Any]) -> list[str]:
    """The names of a dict of slicings as the report prints them (str of each key); two keys
    that print alike (1 and "1") would be one slicing that counts every row twice: an error."""
    names: dict[str, Any] = {}
    for key in groups:
        name = str(key)
        if name in names:
            raise ValueError(
                f"groups: the slicings {names[name]!r} and {key!r} have the same name {name!r} "
                "in the report; give them distinct names"
            )
        names[name] = key
    return list(names)


def key_order(index: GroupIndex) -> np.ndarray:
    """The codes of an index's keys sorted by key (None, the only missing key, last), or in the
    order first seen when the keys cannot be ordered (mixed types): the order of the groups in
    results."""
    if index._text is not None:  # (sorted in C++: UTF-8 bytes sort as the code points)
        return np.asarray(index._text.order(), dtype=np.int64)
    if index._ints is not None:  # (distinct integers)
        return np.argsort(index._ints, kind="stable").astype(np.int64)
    keys = index.keys
    missing = index.find(None)
    order = list(range(len(keys)))
    if missing is not None:
        del order[missing]
    try:
        order.sort(key=keys.__getitem__)  # type: ignore[arg-type]  # (a C key function)
    except TypeError:  # keys of mixed types: the order first seen (None last all the same)
        order = [i for i in range(len(keys)) if i != missing]
    return np.asarray(order if missing is None else [*order, missing], dtype=np.int64)


def compact(codes: np.ndarray, n_keys: int) -> tuple[np.ndarray, np.ndarray]:
    """(codes, table) as ``encode_local`` gives them, from codes into n_keys keys: the codes
    themselves while the keys are few, else renumbered to the batch's own (vectorised)."""
    if n_keys <= LOCAL_KEYS:
        return codes, np.arange(n_keys, dtype=np.int64)
    used = np.zeros(n_keys, dtype=bool)
    used[codes] = True
    table = np.flatnonzero(used)
    renumber = np.empty(n_keys, dtype=np.int64)
    renumber[table] = np.arange(table.size)
    return renumber[codes], table.astype(np.int64)


def kernel_codes(codes: np.ndarray) -> np.ndarray:
    """Codes as the kernels take them: int32 (contiguous) as they are, else an int64 copy."""
    if codes.dtype == np.int32 and codes.flags.c_contiguous:
        return codes
    return np.ascontiguousarray(codes, dtype=np.int64)


def _check_positions(positions: np.ndarray, n_values: int, first_row: int = 0) -> None:
    """ValueError unless an Arrow dictionary's indices are in [0, n_values) (pyarrow builds
    unchecked ones with ``safe=False``), worded as the loss kernel's check of its codes (the
    positions are of rows first_row, first_row + 1, ...)."""
    if positions.size == 0:
        return
    lo, hi = _core.int_range(positions)
    if lo < 0 or hi >= n_values:
        row = int(np.flatnonzero((positions < 0) | (positions >= n_values))[0])
        raise code_error(int(positions[row]), first_row + row, n_values)


GROUP_CODE_FAULT = 5  # the kernel's Fault::group_code: a code outside [0, n_groups)


def code_error(code: int, row: int, n_groups: int) -> ValueError:
    """The error of a group code outside [0, n_groups) (from an untrusted Arrow dictionary's
    indices: the codes made here are in range)."""
    return ValueError(
        f"groups: code {code} at row {row} is outside [0, {n_groups}) "
        "(an Arrow dictionary array whose indices exceed its dictionary?)"
    )


def _check_rows(codes: np.ndarray, rows: int, name: str) -> None:
    if codes.shape[0] != rows:
        where = "groups" if name == "groups" else f"groups[{name!r}]"
        raise ValueError(
            f"{where} must have one label per row of y_pred ({rows}); got {codes.shape[0]}"
        )


def _distinct(codes: np.ndarray, n_keys: int) -> bool:
    """Whether codes into n_keys keys are all different (a mark per key, not a sort)."""
    seen = np.zeros(n_keys, dtype=bool)
    seen[codes] = True
    return int(np.count_nonzero(seen)) == codes.shape[0]


def _identity_prefix(dense: np.ndarray, offset: int) -> int:
    """How many first entries of a dense table map each label to itself (0 unless the table
    starts at label 0)."""
    if offset != 0 or dense.size == 0:
        return 0
    differ = np.flatnonzero(dense != np.arange(dense.size))
    return int(differ[0]) if differ.size else dense.size
