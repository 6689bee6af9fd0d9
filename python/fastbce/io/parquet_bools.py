"""Boolean parquet columns (the usual labels: clicked, converted) read by fastbce's page reader
rather than pyarrow's. pyarrow 26 spends about 6 ns a row on a boolean column (a byte a value,
then bits), 2.5x its cost for a float column of 4 bytes a row: on the benchmark's file of clicks
it was the largest single cost of ``fastbce score``. A data page of a boolean column without
nulls holds the Arrow bitmap already (PLAIN: bit-packed, first value in the lowest bit) or runs
of it (RLE), so the C++ side (``_core.parquet_page_headers``, ``_core.parquet_bool_page``)
copies bits; pyarrow's codecs decompress each page.

It takes what the common writers make: a top-level BOOLEAN column, required or optional without
a null, data pages v1 or v2, PLAIN or RLE values, any codec pyarrow has. For anything else (a
null, a dictionary page, an encoding or codec it does not know, bytes that do not parse) ``read``
returns None and the caller reads the column with pyarrow, which then decides (and reports a
damaged file as before). The result is the same Arrow array either way
(tests/test_parquet_bools.py).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from .. import _core

__all__ = ["BoolColumn", "bool_columns", "read"]

# parquet.thrift's values (PageType, Encoding) and the codecs' names in pyarrow
_DATA_PAGE, _INDEX_PAGE, _DATA_PAGE_V2 = 0, 1, 3
_RLE = 3
_CODECS = {
    "UNCOMPRESSED": None,
    "SNAPPY": "snappy",
    "GZIP": "gzip",
    "BROTLI": "brotli",
    "ZSTD": "zstd",
    "LZ4_RAW": "lz4_raw",
}


class BoolColumn(NamedTuple):
    name: str
    leaf: int  # the leaf column's index in the file's schema (and its row groups)
    optional: bool  # max definition level 1 (0: required)


def bool_columns(meta: Any, columns: list[str]) -> list[BoolColumn]:
    """The `columns` of a file (its footer `meta`) that ``read`` may take: a top-level boolean
    leaf, not repeated, required or optional, whose name no other leaf has."""
    schema = meta.schema
    arrow = schema.to_arrow_schema()
    leaves: dict[str, list[int]] = {}
    for j in range(meta.num_columns):
        leaves.setdefault(schema.column(j).path, []).append(j)
    found = []
    for name in columns:
        if len(leaves.get(name, [])) != 1 or arrow.get_field_index(name) < 0:
            continue
        j = leaves[name][0]
        leaf = schema.column(j)
        if (
            leaf.physical_type == "BOOLEAN"
            and leaf.max_repetition_level == 0
            and leaf.max_definition_level <= 1
            and str(arrow.field(name).type) == "bool"
        ):
            found.append(BoolColumn(name, j, leaf.max_definition_level == 1))
    return found


def read(path: str, meta: Any, row_groups: tuple[int, ...], column: BoolColumn) -> Any:
    """The column's values in these row groups (consecutive or not, in order) as one Arrow
    BooleanArray, or None where this reader does not take them (the caller asks pyarrow)."""
    import pyarrow as pa

    rows = sum(meta.row_group(g).num_rows for g in row_groups)
    bitmap = np.zeros((rows + 7) // 8, dtype=np.uint8)
    at = 0
    try:
        with open(path, "rb") as f:
            for g in row_groups:
                end = at + meta.row_group(g).num_rows
                at = _read_chunk(f, meta.row_group(g).column(column.leaf), column, bitmap, at, end)
                if at != end:
                    return None
    except (ValueError, KeyError, OSError, pa.ArrowException):
        return None
    return pa.Array.from_buffers(pa.bool_(), rows, [None, pa.py_buffer(bitmap)])


def _read_chunk(
    f: Any, chunk: Any, column: BoolColumn, bitmap: np.ndarray, at: int, end: int
) -> int:
    """One row group's column chunk into bits [at, end) of the bitmap; returns the bit reached."""
    import pyarrow as pa

    name = _CODECS[chunk.compression]  # (KeyError: a codec this reader does not take)
    codec = pa.Codec(name) if name is not None else None
    if chunk.has_dictionary_page:
        raise ValueError("a dictionary page")
    size = chunk.total_compressed_size
    f.seek(chunk.data_page_offset)
    stored = np.frombuffer(f.read(size), dtype=np.uint8)
    if stored.size != size:
        raise ValueError("the file ends inside the column chunk")
    pages = _core.parquet_page_headers(stored).tolist()
    for page in pages:  # (the fields of _core.parquet_page_headers, in its order)
        payload, kind, packed, unpacked, n, encoding = page[:6]
        levels_encoding, levels, repeats, squeezed = page[6:]
        body = stored[payload : payload + packed]
        if kind in (_DATA_PAGE, _DATA_PAGE_V2) and (
            n > end - at or unpacked > page_bytes_at_most(n)
        ):
            raise ValueError("a page header asks for more than its values can fill")
        if kind == _DATA_PAGE:
            if column.optional and levels_encoding != _RLE:
                raise ValueError("definition levels not in RLE")
            if codec is not None:
                body = _decompressed(codec, body, unpacked)
            levels = -1 if column.optional else 0
        elif kind == _DATA_PAGE_V2:
            if repeats or (levels > 0) != column.optional:
                raise ValueError("levels a boolean column of this kind does not have")
            if codec is not None and squeezed:
                values = _decompressed(codec, body[levels:], unpacked - levels)
                body = np.concatenate([body[:levels], values])
        elif kind == _INDEX_PAGE:  # (never written; skipped as readers do)
            continue
        else:
            raise ValueError(f"a page of type {kind}")
        at = _core.parquet_bool_page(body, levels, n, encoding, bitmap, at, end)
    return at


def page_bytes_at_most(values: int) -> int:
    """The most bytes a data page of this many boolean values holds uncompressed: its levels and
    its values each as 4-byte length and RLE runs of one value (2 bytes a value, the worst any
    encoder writes). A damaged header's size beyond it is refused before any decompression (a
    codec asked for 2^31 bytes allocates them)."""
    return 4 * values + 64


def _decompressed(codec: Any, body: np.ndarray, size: int) -> np.ndarray:
    out = codec.decompress(body, decompressed_size=size)
    if out.size != size:
        raise ValueError("a page decompressed to another size than its header's")
    return np.frombuffer(out, dtype=np.uint8)
