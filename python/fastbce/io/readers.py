"""Reading tables in batches, for ``fastbce score`` (locally and on Dask workers).

Every reader streams: it holds one batch of the columns it is asked for, whatever the size of the
input. Parquet files are read in record batches with pyarrow, CSV in blocks with pyarrow's
streaming reader, the arrays of an .npz one slice at a time out of the zip, and .npy files
memory-mapped (pages already scored are handed back to the OS, so the resident memory stays
bounded too).

Errors the user can fix raise ``DataError`` (exit status 1) or ``UsageError`` (exit status 2) with
a one-line message naming the file and, where it applies, the column.
"""

from __future__ import annotations

import csv
import glob
import io
import mmap
import os
from collections.abc import Iterator
from typing import Any

import numpy as np

from .._errors import DataError, UsageError
from .formats import GLOB_CHARS, PARQUET_SUFFIXES, first_line, pyarrow_module
from .prefetch import RowGroupReader, read_threads

__all__ = [
    "CsvSource",
    "NpySource",
    "NpzSource",
    "ParquetSource",
    "expand_inputs",
    "missing_column",
    "parquet_row_groups",
    "row_group_ranges",
    "series_values",
]

# --------------------------------------------------------------------------- finding the files


def expand_inputs(inputs: list[str]) -> tuple[str, list[str]]:
    """(kind, files) for the INPUT arguments: kind is "parquet", "csv" or "npz"; files are in
    a stable order (directories and globs sorted), which is the order of the rows."""
    files: list[tuple[str, str]] = []
    for item in inputs:
        if os.path.isdir(item):
            found = _parquet_files_in(item)
            if not found:
                raise DataError(f"{item}: no .parquet files in this directory")
            files += [("parquet", f) for f in found]
        elif os.path.exists(item):
            files.append((_kind_of(item), item))
        elif GLOB_CHARS & set(item):
            matches = sorted(glob.glob(item, recursive=True))
            if not matches:
                raise DataError(f"{item}: no files match this pattern")
            # Each file once (`data/**` matches data/, its subdirectories and their files), and
            # "_" and hidden files (_SUCCESS) skipped, as in a directory.
            reached: dict[str, str] = {}  # file -> kind
            for m in matches:
                if os.path.isdir(m):
                    reached.update(dict.fromkeys(_parquet_files_in(m), "parquet"))
                elif not os.path.basename(m).startswith((".", "_")) and m not in reached:
                    reached[m] = _kind_of(m)
            if not reached:
                raise DataError(f"{item}: no files match this pattern (only _ or hidden files)")
            files += [(kind, f) for f, kind in sorted(reached.items())]
        else:
            raise DataError(f"{item}: no such file or directory")
    kinds = sorted({kind for kind, _ in files})
    if len(kinds) > 1:
        raise UsageError(f"the inputs mix formats ({', '.join(kinds)}); score one format at a time")
    if kinds == ["npz"] and len(files) > 1:
        raise UsageError("score one .npz at a time")
    return kinds[0], [f for _, f in files]


def _parquet_files_in(directory: str) -> list[str]:
    """The .parquet files under a directory, recursively, sorted; hidden and "_" files (such as
    _SUCCESS or _metadata) and directories are skipped, as Spark and Arrow do. Suffixes in any
    case, as for a file named on the command line (part-0.PARQUET)."""
    found = []
    for root, dirs, names in os.walk(directory):
        dirs[:] = sorted(d for d in dirs if not d.startswith((".", "_")))
        found += [
            os.path.join(root, n)
            for n in names
            if n.lower().endswith(PARQUET_SUFFIXES) and not n.startswith((".", "_"))
        ]
    return sorted(found)


def _kind_of(path: str) -> str:
    lower = path.lower()
    if lower.endswith(PARQUET_SUFFIXES):
        return "parquet"
    if lower.endswith(".csv"):
        return "csv"
    if lower.endswith(".npz"):
        return "npz"
    if lower.endswith(".npy"):
        raise UsageError(
            f"{path}: to score .npy files give them as --y-true a.npy --y-pred b.npy (no INPUT)"
        )
    raise UsageError(
        f"{path}: unknown format (expected .parquet, a directory of them, .csv or .npz)"
    )


def missing_column(
    path: str, column: str, columns: list[str], hive: dict[str, Any] | None = None
) -> DataError:
    listed = ", ".join(columns) if columns else "none"
    keys = f"; its Hive partition keys: {', '.join(hive)}" if hive else ""
    return DataError(f"{path}: no column {column!r}; the columns are: {listed}{keys}")


HIVE_NULL = "__HIVE_DEFAULT_PARTITION__"  # what Hive, Spark and Arrow write for a missing value


def check_named_once(path: str, names: list[str], column: str) -> None:
    """DataError if the file has several columns of this name (which one to read?)."""
    if names.count(column) > 1:
        raise DataError(
            f"{path}: {names.count(column)} columns are named {column!r}; "
            "which to read is ambiguous"
        )


def hive_keys(path: str) -> dict[str, str | None]:
    """The Hive partition keys of a file from its directories (``.../country=de/day=1/x.parquet``
    gives {"country": "de", "day": "1"}); values are text, URL-decoded, the default partition
    None (a missing value). A key named twice takes its deepest value."""
    from urllib.parse import unquote

    out: dict[str, str | None] = {}
    for part in os.path.dirname(os.path.normpath(path)).split(os.sep):
        key, eq, value = part.partition("=")
        if eq and key:
            out[unquote(key)] = None if value == HIVE_NULL else unquote(value)
    return out


def _constant_text(value: str | None, rows: int) -> Any:
    """`rows` copies of one text value as an Arrow dictionary array (a code per row, no string
    per row), or nulls."""
    import pyarrow as pa

    if value is None:
        return pa.nulls(rows, pa.string())
    zeros = np.zeros(rows, dtype=np.int32)
    indices = pa.Array.from_buffers(pa.int32(), rows, [None, pa.py_buffer(zeros)])
    return pa.DictionaryArray.from_arrays(indices, pa.array([value], pa.string()))


# --------------------------------------------------------------------------- sources
#
# A source yields (path, first row of the batch in that file, {column: array}) with pyarrow
# Arrays (parquet, csv) or NumPy arrays (npz, npy); `fraction()` tells how far it has got.


class ParquetSource:
    """Parquet files, read a row group at a time ahead of the scoring on a few threads, in input
    order (``prefetch``). The `dictionary` columns (the --group-by column) are read as Arrow
    dictionaries when they hold text: the group codes come from the parquet dictionary indices,
    and no string is ever made."""

    def __init__(
        self,
        files: list[str],
        columns: list[str],
        dictionary: list[str] | None = None,
        threads: int | None = None,
        hive: list[str] | None = None,
    ) -> None:
        pa = pyarrow_module()
        import pyarrow.parquet as pq

        self.files = files
        self.total_rows = 0
        self.types: dict[str, Any] = {}
        self.metadata: list[Any] = []
        self.threads = read_threads(threads)
        # Hive partition keys (.../country=de/part-0.parquet) that stand for the `hive` columns
        # a file lacks; a column that the file has is read from the file.
        self.hive: dict[str, dict[str, str | None]] = {}
        from_path: set[str] = set()
        wanted = list(dict.fromkeys(columns))  # (each once, in order)
        for path in files:  # every footer first: a bad file fails before any output
            try:
                meta = pq.read_metadata(path)
                schema = meta.schema.to_arrow_schema()
            except Exception as e:  # ArrowInvalid, OSError, ...
                raise DataError(f"{path}: cannot read it as parquet ({first_line(e)})") from None
            keys = hive_keys(path)
            names = set(schema.names)
            for c in wanted:
                if c not in names:
                    if c in (hive or []) and c in keys:
                        from_path.add(c)
                        continue
                    raise missing_column(path, c, schema.names, keys if hive else None)
                check_named_once(path, schema.names, c)
                self.types.setdefault(c, []).append(schema.field(c).type)
            self.hive[path] = {c: keys[c] for c in (hive or []) if c in keys}
            self.metadata.append(meta)
            self.total_rows += meta.num_rows
        mixed = from_path & set(self.types)
        if mixed:
            raise DataError(
                f"column {sorted(mixed)[0]!r} is in some files and only a Hive partition key "
                "(a directory name) of others; score them apart"
            )
        for c in dictionary or []:  # (group keys: the int 1 and the text "1" would be apart)
            nested = [t for t in self.types.get(c, []) if pa.types.is_nested(t)]
            if nested:
                raise DataError(f"column {c!r} holds {nested[0]}: a group is text or a number")
            kinds = [_is_text(t) for t in self.types.get(c, [])]
            if len(set(kinds)) > 1:
                text, other = kinds.index(True), kinds.index(False)
                raise DataError(
                    f"column {c!r} holds text in {files[text]} and "
                    f"{self.types[c][other]} in {files[other]}; group by a column of one kind"
                )
        self.from_path = [c for c in wanted if c in from_path]
        self.columns = [c for c in wanted if c not in from_path]
        self.dictionary = [
            c
            for c in dictionary or []
            if c in self.types
            and all(map(_is_text, self.types[c]))
            and all(_encoded(m, c) for m in self.metadata)
        ]
        self._reader: RowGroupReader | None = None

    def batches(self, batch_rows: int) -> Iterator[tuple[str, int, dict[str, Any]]]:
        self._reader = RowGroupReader(
            self.files, self.metadata, self.columns, self.dictionary, self.threads
        )
        return self.with_hive(self._reader.batches(batch_rows))

    def with_hive(
        self, batches: Iterator[tuple[str, int, dict[str, Any]]]
    ) -> Iterator[tuple[str, int, dict[str, Any]]]:
        """The batches with the Hive columns added: one value per file, as a dictionary array."""
        if not self.from_path:
            return batches
        return self._add_hive(batches)

    def _add_hive(
        self, batches: Iterator[tuple[str, int, dict[str, Any]]]
    ) -> Iterator[tuple[str, int, dict[str, Any]]]:
        try:
            for path, start, batch in batches:
                rows = len(next(iter(batch.values())))
                for c in self.from_path:
                    batch[c] = _constant_text(self.hive[path][c], rows)
                yield path, start, batch
        finally:
            close = getattr(batches, "close", None)
            if close is not None:
                close()

    def reserve(self, nbytes: int | None) -> None:
        """Memory the consumer holds (the groups' sums; None: not known yet): the read-ahead
        makes room for it (``RowGroupReader.reserve``)."""
        if self._reader is not None:
            self._reader.reserve(nbytes)

    def fraction(self) -> float | None:
        done = self._reader.done_rows if self._reader is not None else 0
        return done / self.total_rows if self.total_rows else None


def _encoded(meta: Any, column: str) -> bool:
    """Whether every row group of a file holds `column` as dictionary indices: a dictionary page,
    and data pages of at most 3 bytes a row (indices of up to 24 bits). A writer whose dictionary
    outgrew its limit (many distinct values) falls back to plain values: pyarrow would rebuild a
    dictionary from them, slower and larger than reading the strings and hashing them."""
    for g in range(meta.num_row_groups):
        group = meta.row_group(g)
        for j in range(group.num_columns):
            chunk = group.column(j)
            if chunk.path_in_schema != column:
                continue
            if not chunk.has_dictionary_page:
                return False
            dictionary_bytes = chunk.data_page_offset - chunk.dictionary_page_offset
            if chunk.total_uncompressed_size - dictionary_bytes > 3 * group.num_rows + 4096:
                return False
    return True


def _is_text(arrow_type: Any) -> bool:
    """Whether pyarrow can read a parquet column of this type as a dictionary: text, or text
    the file's Arrow schema already calls a dictionary (a pandas categorical, a column written
    from `dictionary_encode()`), which pyarrow reads as one either way."""
    import pyarrow as pa

    t = pa.types
    if t.is_dictionary(arrow_type):
        arrow_type = arrow_type.value_type
    return bool(
        t.is_string(arrow_type)
        or t.is_large_string(arrow_type)
        or t.is_binary(arrow_type)
        or t.is_large_binary(arrow_type)
    )


class CsvSource:
    """CSV files streamed in blocks. y_pred and sample_weight are read as float64, the other
    columns as text (labels are converted after reading, so the message can say what is wrong)."""

    def __init__(self, files: list[str], columns: list[str], floats: list[str]) -> None:
        pyarrow_module()
        self.files = files
        self.columns = list(dict.fromkeys(columns))
        self.floats = floats
        self.total_rows = None
        self._sizes = [max(os.path.getsize(f), 1) for f in files]
        self._done_bytes = 0
        self._file: Any = None
        for path in files:
            header = _csv_header(path)
            for c in columns:
                if c not in header:
                    raise missing_column(path, c, header)
                check_named_once(path, header, c)

    def batches(self, batch_rows: int) -> Iterator[tuple[str, int, dict[str, Any]]]:
        import pyarrow as pa
        import pyarrow.csv as pacsv

        types = {c: (pa.float64() if c in self.floats else pa.string()) for c in self.columns}
        # use_threads=False: no parse threads, which could outlive an error here (an abort at
        # exit under AddressSanitizer: a joinable thread destroyed)
        read = pacsv.ReadOptions(
            block_size=max(1 << 16, min(batch_rows * 24, 1 << 26)), use_threads=False
        )
        # In the float columns an empty field and the texts Arrow takes for a missing number
        # (NA, NaN, null, N/A, ...) are nulls: NaN. In the text columns (labels, groups) only an
        # empty field is (_empty_as_null): "NA" (Namibia) or "null" is a value there.
        convert = pacsv.ConvertOptions(
            include_columns=self.columns, column_types=types, strings_can_be_null=False
        )
        text = [c for c in self.columns if c not in self.floats]
        for path, size in zip(self.files, self._sizes, strict=True):
            start = 0
            # An Arrow file, not a Python one: Arrow reads the next block on its IO thread even
            # with use_threads=False, and a read through a Python object there takes the GIL; one
            # still pending when an error ends the process met interpreter shutdown and aborted
            # it ("terminate called without an active exception", exit -6 instead of 1).
            with pa.OSFile(path, "rb") as f:
                self._file = f
                reader = None
                try:
                    reader = pacsv.open_csv(f, read_options=read, convert_options=convert)
                    for rb in reader:
                        batch = {c: rb.column(c) for c in self.columns}
                        for c in text:
                            batch[c] = _empty_as_null(batch[c])
                        yield path, start, batch
                        start += rb.num_rows
                except DataError:
                    raise
                except Exception as e:  # (an error of the consumer is not raised in here)
                    raise DataError(f"{path}: cannot read it as csv ({first_line(e)})") from None
                finally:
                    if reader is not None:  # before the file it reads is closed
                        reader.close()
                    self._file = None
            self._done_bytes += size

    def fraction(self) -> float | None:
        done = self._done_bytes
        f = self._file
        if f is not None:
            try:
                done += f.tell()
            except (OSError, ValueError):
                pass
        return min(done / sum(self._sizes), 1.0)


def _empty_as_null(column: Any) -> Any:
    """A CSV text column with its empty fields as nulls (missing labels or groups)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    empty = pc.equal(pc.binary_length(column), 0)
    if not pc.any(empty).as_py():
        return column
    return pc.if_else(empty, pa.scalar(None, column.type), column)


def _csv_header(path: str) -> list[str]:
    """The names in the first record (the header), decoded alone: a bad byte in a data row is
    reported by the reader with its place, not blamed on the header."""
    data = b""
    with open(path, "rb") as f:
        while True:  # (a quoted name may hold a line break: read on while the record is open)
            chunk = f.read(1 << 16)
            data += chunk
            end = _record_end(data)
            if end < len(data) or not chunk:
                break
    try:
        text = data[:end].decode("utf-8-sig")
    except UnicodeDecodeError:
        raise DataError(f"{path}: cannot read it as csv (the header is not UTF-8 text)") from None
    return next(csv.reader(io.StringIO(text, newline="")), [])


def _record_end(data: bytes) -> int:
    """Where the first CSV record of data ends: its first line break outside quotes (an even
    number of quote characters before it), or len(data)."""
    start = 0
    while True:
        breaks = [i for i in (data.find(b"\n", start), data.find(b"\r", start)) if i >= 0]
        if not breaks:
            return len(data)
        cut = min(breaks)
        if data.count(b'"', 0, cut) % 2 == 0:
            return cut
        start = cut + 1


class NpzSource:
    """The arrays of an .npz (each 1-D, the same length), read a slice at a time out of the zip
    (compressed or not), never whole."""

    def __init__(self, path: str, columns: list[str]) -> None:
        import zipfile  # (.npz only: zipfile and what it loads are 4 ms of a run's start-up)

        self.path = path
        self.columns = columns
        try:
            self._zip = zipfile.ZipFile(path)
            names = [n[:-4] for n in self._zip.namelist() if n.endswith(".npy")]
        except _zip_errors() as e:
            raise DataError(f"{path}: cannot read it as .npz ({first_line(e)})") from None
        self.dtypes: dict[str, np.dtype] = {}
        self.total_rows = 0
        for i, c in enumerate(dict.fromkeys(columns)):
            if c not in names:
                raise missing_column(path, c, names)
            with self._open(c) as f:
                shape, dtype = _npy_header(f, f"{path}[{c}]")
            rows = _one_dimensional(shape, f"{path}: array {c!r}")
            if i and rows != self.total_rows:
                raise DataError(
                    f"{path}: array {c!r} has {rows} rows but {columns[0]!r} has {self.total_rows}"
                )
            self.total_rows = rows
            self.dtypes[c] = dtype
        self._done = 0

    def _open(self, column: str) -> Any:
        try:
            return self._zip.open(column + ".npy")
        except _zip_errors() as e:
            raise DataError(f"{self.path}: cannot read it as .npz ({first_line(e)})") from None

    def batches(self, batch_rows: int) -> Iterator[tuple[str, int, dict[str, Any]]]:
        streams = {}
        try:
            for c in dict.fromkeys(self.columns):
                f = self._open(c)
                _npy_header(f, f"{self.path}[{c}]")
                streams[c] = f
            for start in range(0, self.total_rows, batch_rows):
                rows = min(batch_rows, self.total_rows - start)
                batch = {c: self._read(f, c, rows) for c, f in streams.items()}
                yield self.path, start, batch
                self._done = start + rows
        finally:
            for f in streams.values():
                f.close()

    def rows(self, start: int, stop: int, batch_rows: int) -> Iterator[tuple[str, int, dict]]:
        """Rows [start, stop) of the arrays, a batch at a time (a Dask partition)."""
        streams = {}
        try:
            for c in dict.fromkeys(self.columns):
                f = self._open(c)
                _npy_header(f, f"{self.path}[{c}]")
                try:  # (a compressed member is read from its start up to there)
                    f.seek(f.tell() + start * self.dtypes[c].itemsize)
                except _zip_errors() as e:
                    raise DataError(f"{self.path}: array {c!r}: {first_line(e)}") from None
                streams[c] = f
            for first in range(start, stop, batch_rows):
                rows = min(batch_rows, stop - first)
                batch = {c: self._read(f, c, rows) for c, f in streams.items()}
                yield self.path, first, batch
        finally:
            for f in streams.values():
                f.close()

    def _read(self, f: Any, column: str, rows: int) -> np.ndarray:
        """The next `rows` values of a column's member, or a DataError naming it (a bad or
        corrupt member: a bad CRC, a deflate stream zlib cannot read, a short one)."""
        dtype = self.dtypes[column]
        try:
            data = f.read(rows * dtype.itemsize)
        except _zip_errors() as e:
            raise DataError(f"{self.path}: array {column!r}: {first_line(e)}") from None
        if len(data) != rows * dtype.itemsize:
            raise DataError(f"{self.path}: array {column!r} is truncated")
        return np.frombuffer(data, dtype=dtype)

    def fraction(self) -> float | None:
        return self._done / self.total_rows if self.total_rows else None


class NpySource:
    """.npy files memory-mapped, one per column (--y-true a.npy --y-pred b.npy ...)."""

    def __init__(self, paths: dict[str, str]) -> None:
        self.columns = list(paths)
        self.paths = paths
        self.arrays: dict[str, np.ndarray] = {}
        self._maps: dict[str, mmap.mmap] = {}
        self._offsets: dict[str, int] = {}
        self.total_rows = 0
        first = None
        for column, path in paths.items():
            if column in self.arrays:
                continue
            arr, m, offset = _map_npy(path)
            rows = _one_dimensional(arr.shape, path)
            if first is not None and rows != self.total_rows:
                raise DataError(f"{path} has {rows} rows but {first} has {self.total_rows}")
            first, self.total_rows = path, rows
            self.arrays[column], self._maps[column], self._offsets[column] = arr, m, offset
        self.dtypes = {c: a.dtype for c, a in self.arrays.items()}
        self._done = 0

    def batches(self, batch_rows: int) -> Iterator[tuple[str, int, dict[str, Any]]]:
        for start in range(0, self.total_rows, batch_rows):
            stop = min(start + batch_rows, self.total_rows)
            yield (
                self.paths[self.columns[0]],
                start,
                {c: a[start:stop] for c, a in self.arrays.items()},
            )
            self._done = stop
            for c, a in self.arrays.items():  # give the pages scored back to the OS
                _release(self._maps[c], self._offsets[c], a.itemsize * stop)

    def rows(self, start: int, stop: int, batch_rows: int) -> Iterator[tuple[None, int, dict]]:
        """Rows [start, stop) of the arrays, a batch at a time (a Dask partition)."""
        for first in range(start, stop, batch_rows):
            last = min(first + batch_rows, stop)
            yield None, first, {c: a[first:last] for c, a in self.arrays.items()}

    def fraction(self) -> float | None:
        return self._done / self.total_rows if self.total_rows else None


def _map_npy(path: str) -> tuple[np.ndarray, mmap.mmap, int]:
    """A read-only memory map of an .npy (as np.load(mmap_mode="r") makes), keeping the mmap
    object so that pages already read can be released."""
    try:
        with open(path, "rb") as f:
            shape, dtype = _npy_header(f, path)
            offset = f.tell()
            count = int(np.prod(shape))
            if offset + count * dtype.itemsize > os.fstat(f.fileno()).st_size:
                raise DataError(f"{path}: the file is truncated (shorter than its header says)")
            m = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) if count else None
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise DataError(f"{path}: is a directory, not an .npy file") from None
    if m is None:
        return np.empty(shape, dtype), mmap.mmap(-1, 1), offset
    arr = np.frombuffer(m, dtype=dtype, count=count, offset=offset).reshape(shape)
    return arr, m, offset


def _release(m: mmap.mmap, offset: int, done_bytes: int) -> None:
    if not hasattr(mmap, "MADV_DONTNEED"):
        return
    end = (offset + done_bytes) // mmap.PAGESIZE * mmap.PAGESIZE
    if end > 0:
        try:
            m.madvise(mmap.MADV_DONTNEED, 0, min(end, len(m)))
        except (OSError, ValueError):
            pass


def _zip_errors() -> tuple[type[BaseException], ...]:
    """What reading a member of a bad .npz raises (zipfile's import is left to .npz input)."""
    import zipfile
    import zlib

    return (zipfile.BadZipFile, zlib.error, OSError, EOFError, ValueError)


def _npy_header(f: Any, name: str) -> tuple[tuple[int, ...], np.dtype]:
    fmt = np.lib.format
    try:
        version = fmt.read_magic(f)
        if version == (1, 0):
            shape, fortran, dtype = fmt.read_array_header_1_0(f)
        elif version == (2, 0):
            shape, fortran, dtype = fmt.read_array_header_2_0(f)
        else:
            raise ValueError(f"unsupported .npy version {version}")
    except _zip_errors() + (SyntaxError,) as e:  # (a member of an .npz may be a bad zip)
        raise DataError(f"{name}: cannot read it as .npy ({first_line(e)})") from None
    if any(d < 0 for d in shape):  # (np.load refuses it; read as it is, all bytes would do)
        raise DataError(f"{name}: cannot read it as .npy (its header's shape {shape} is negative)")
    if dtype.subdtype is not None:  # (each element an array: the reader's counts would not fit)
        raise DataError(f"{name}: holds arrays of {dtype} per element; fastbce reads 1-D columns")
    if dtype.hasobject:
        raise DataError(
            f"{name}: holds Python objects (dtype {dtype}); save strings as a str dtype"
        )
    return shape, dtype


def _one_dimensional(shape: tuple[int, ...], name: str) -> int:
    if len(shape) != 1:
        raise DataError(f"{name} has shape {shape}; fastbce score reads 1-D columns")
    return int(shape[0])


# --------------------------------------------------------------------------- partitions


def row_group_ranges(files: list[str], rows: int) -> list[tuple[str, list[int], int]]:
    """(file, row groups, first row) partitions of about `rows` rows, whole row groups each."""
    import pyarrow.parquet as pq

    parts = []
    for path in files:
        meta = pq.read_metadata(path)
        groups: list[int] = []
        first = count = 0
        for i in range(meta.num_row_groups):
            groups.append(i)
            count += meta.row_group(i).num_rows
            if count >= rows:
                parts.append((os.path.abspath(path), groups, first))
                first += count
                groups, count = [], 0
        if groups:
            parts.append((os.path.abspath(path), groups, first))
    return parts


def parquet_row_groups(
    path: str,
    row_groups: list[int],
    columns: list[str],
    dictionary: list[str],
    batch_rows: int,
    hive: list[str] | None = None,
) -> Iterator[tuple[str, int, dict[str, Any]]]:
    """The batches of some row groups of a parquet file (for a Dask worker: one thread reads
    ahead), with the `dictionary` columns read as dictionaries when they hold text and the
    `hive` columns the file lacks taken from its directories' partition keys."""
    source = ParquetSource([path], columns, dictionary, threads=1, hive=hive)
    reader = RowGroupReader(
        source.files, source.metadata, source.columns, source.dictionary, 1, row_groups=[row_groups]
    )
    return source.with_hive(reader.batches(batch_rows))


def series_values(x: Any) -> Any:
    """A NumPy array from a pandas Series (nullable numbers: missing values become NaN, in
    float64, or the float's own width; missing text or objects become None)."""
    if x is None or isinstance(x, np.ndarray) or not hasattr(x, "to_numpy"):
        return x
    dtype = x.dtype
    if isinstance(dtype, np.dtype):
        return x.to_numpy()
    if getattr(dtype, "kind", "O") in "biuf":  # pandas' nullable and Arrow-backed numbers
        if x.isna().any():  # (a Float32 column stays float32: whether a part has a NaN must
            width = dtype.numpy_dtype if dtype.kind == "f" else np.float64  # not change it)
            return x.to_numpy(dtype=width, na_value=np.nan)
        return x.to_numpy(dtype=dtype.numpy_dtype)
    if x.hasnans:  # (pd.NA of string columns: None, the missing label or group)
        return x.to_numpy(dtype=object, na_value=None)
    return x.to_numpy()
