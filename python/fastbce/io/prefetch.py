"""Parquet row groups decoded ahead on a few threads and handed over in input order.

``RowGroupReader.batches`` yields (path, first row in the file, {column: Arrow array}) like the
other readers, while the next row groups, of the same file or the next ones, are decoded by a
small thread pool: pyarrow releases the GIL while it decodes, so reading runs on the other cores
while the kernel (which releases the GIL too) scores the batch in hand. Text columns named in
``dictionary`` are read as Arrow dictionaries (the parquet dictionary indices, not strings).

Memory stays bounded: the row groups waiting or being decoded together never exceed
``budget_bytes`` of decoded columns (estimated from the footer), less what the consumer says it
holds (``reserved``: the sums of a million groups); when that leaves no room, one row group at
a time is decoded (on a pool thread, while the consumer waits: no read-ahead). A row group
larger than the budget alone is streamed in batches on this thread, as pyarrow's batch reader
does.
"""

from __future__ import annotations

import collections
import os
import sys
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from .. import _process
from .._errors import DataError
from . import parquet_bools
from .formats import first_line

__all__ = ["DEFAULT_BUDGET_BYTES", "RowGroupReader", "read_threads", "use_jemalloc"]

DEFAULT_BUDGET_BYTES = 96 << 20


def read_threads(threads: int | None) -> int:
    """Decoding threads: the --threads cap, or one per core (at most 8: more gain nothing once
    the disk or the consumer is the limit, and each holds a row group)."""
    if threads is not None:
        return max(1, threads)
    return max(1, min(os.cpu_count() or 1, 8))


@dataclass(frozen=True)
class _Unit:
    """Consecutive row groups of one file, read (and scored) together."""

    file: int  # index into the reader's files
    row_groups: tuple[int, ...]
    first: int  # first row of the first row group in its file
    rows: int
    nbytes: int  # decoded size, estimated


class RowGroupReader:
    """Reads `columns` of parquet `files` (with their footers `metadata`) a row group at a time,
    ahead, in order; small consecutive row groups of a file are read as one batch, as pyarrow's
    batch reader does (fewer kernel calls, and batches as long as --batch-rows)."""

    def __init__(
        self,
        files: list[str],
        metadata: list[Any],
        columns: list[str],
        dictionary: list[str],
        threads: int,
        budget_bytes: int = DEFAULT_BUDGET_BYTES,
        row_groups: list[list[int]] | None = None,
        own_bools: bool = True,
    ) -> None:
        self.files, self.metadata, self.columns = files, metadata, columns
        self.dictionary = dictionary
        self.threads = max(1, threads)
        self.budget = budget_bytes
        self.done_rows = 0
        self.row_groups = row_groups
        self.reserved = 0  # bytes the consumer holds, counted against the budget (reserve())
        self._returning = False  # (freed pages go back at once)
        # boolean columns fastbce's page reader takes, per file (parquet_bools: pyarrow's
        # boolean decode was the costliest part of scoring a file of clicks)
        self.own_bools = [
            parquet_bools.bool_columns(meta, columns) if own_bools else [] for meta in metadata
        ]

    def reserve(self, nbytes: int | None) -> None:
        """Memory the consumer holds (None: not known yet, so no read-ahead): the read-ahead
        makes room for it; once it is the whole budget, the freed decode buffers go back to the
        OS at once (``_return_freed_pages``)."""
        if nbytes is not None and nbytes >= self.budget and not self._returning:
            _return_freed_pages()
            self._returning = True
        self.reserved = self.budget if nbytes is None else nbytes

    def _units(self, batch_rows: int) -> list[_Unit]:
        """The row groups wanted, in order, joined into runs of at most `batch_rows` rows (a
        longer row group is a run of its own)."""
        units: list[_Unit] = []
        for i, meta in enumerate(self.metadata):
            wanted = range(meta.num_row_groups) if self.row_groups is None else self.row_groups[i]
            first, starts = 0, []
            for g in range(meta.num_row_groups):
                starts.append(first)
                first += meta.row_group(g).num_rows
            run: list[int] = []
            for g in sorted(set(wanted)):
                group = meta.row_group(g)
                size = _decoded_bytes(group, self.columns, self.dictionary)
                last = units[-1] if run else None
                if (
                    last is not None
                    and run[-1] == g - 1
                    and last.rows + group.num_rows <= batch_rows
                    and last.nbytes + size <= self.budget
                ):
                    run.append(g)
                    units[-1] = _Unit(
                        i, tuple(run), last.first, last.rows + group.num_rows, last.nbytes + size
                    )
                else:
                    run = [g]
                    units.append(_Unit(i, (g,), starts[g], group.num_rows, size))
        return units

    def batches(self, batch_rows: int) -> Iterator[tuple[str, int, dict[str, Any]]]:
        units = self._units(batch_rows)
        pending: collections.deque[tuple[_Unit, Future[Any]]] = collections.deque()
        waiting = 0  # decoded bytes submitted and not yet consumed
        todo = 0  # the next unit to submit
        pool = ThreadPoolExecutor(self.threads, thread_name_prefix="fastbce-read")
        try:
            while True:
                while (  # keep the pool busy, within the budget
                    todo < len(units)
                    and len(pending) <= self.threads
                    and units[todo].nbytes <= self.budget
                    and (not pending or waiting + units[todo].nbytes <= self.budget - self.reserved)
                ):
                    unit = units[todo]
                    pending.append((unit, pool.submit(self._read, unit)))
                    waiting += unit.nbytes
                    todo += 1
                if pending:
                    unit, future = pending.popleft()
                    table = self._result(unit, future)
                    yield from self._split(unit, table.to_batches(max_chunksize=batch_rows))
                    del table
                    waiting -= unit.nbytes
                elif todo < len(units):  # a row group over the budget: stream it here
                    unit = units[todo]
                    todo += 1
                    yield from self._split(unit, self._stream(unit, batch_rows))
                else:
                    return
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

    def _split(self, unit: _Unit, batches: Any) -> Iterator[tuple[str, int, dict[str, Any]]]:
        path = self.files[unit.file]
        start = unit.first
        for rb in batches:
            yield path, start, {c: rb.column(c) for c in self.columns}
            start += rb.num_rows
            self.done_rows += rb.num_rows

    def _open(self, unit: _Unit) -> Any:
        import pyarrow.parquet as pq

        return pq.ParquetFile(
            self.files[unit.file],
            metadata=self.metadata[unit.file],
            read_dictionary=self.dictionary or None,
            buffer_size=1 << 20,
            pre_buffer=False,
        )

    def _read(self, unit: _Unit) -> Any:  # (on a pool thread)
        own = {}
        for column in self.own_bools[unit.file]:
            array = parquet_bools.read(
                self.files[unit.file], self.metadata[unit.file], unit.row_groups, column
            )
            if array is not None:  # (None: pyarrow reads it, below)
                own[column.name] = array
        rest = [c for c in self.columns if c not in own]
        if not rest:
            return pa_table(own, self.columns)
        table = self._open(unit).read_row_groups(
            list(unit.row_groups), columns=rest, use_threads=False
        )
        table = table.combine_chunks() if len(unit.row_groups) > 1 else table
        if not own:
            return table
        own.update((c, table.column(c)) for c in rest)
        return pa_table(own, self.columns)

    def _result(self, unit: _Unit, future: Future[Any]) -> Any:
        try:
            return future.result()
        except Exception as e:  # ArrowInvalid, OSError, ...
            raise self._error(unit, e) from None

    def _stream(self, unit: _Unit, batch_rows: int) -> Iterator[Any]:
        try:
            reader = self._open(unit)
            yield from reader.iter_batches(
                batch_size=batch_rows, row_groups=list(unit.row_groups), columns=self.columns
            )
        except Exception as e:  # (an error of the consumer is not raised in here)
            raise self._error(unit, e) from None

    def _error(self, unit: _Unit, e: BaseException) -> DataError:
        return DataError(f"{self.files[unit.file]}: cannot read it as parquet ({first_line(e)})")


def pa_table(arrays: dict[str, Any], columns: list[str]) -> Any:
    """A pyarrow Table of the arrays (Arrays or one-chunk ChunkedArrays), in `columns`' order."""
    import pyarrow as pa

    return pa.table({c: arrays[c] for c in columns})


def use_jemalloc() -> Callable[[], None]:
    """pyarrow's jemalloc as its default allocator, when pyarrow has it and the user chose none
    (ARROW_DEFAULT_MEMORY_POOL): on the benchmark's file it held 30-45 MB less than mimalloc for
    the same speed, and it can be told to return freed pages at once (docs/scoring.md,
    "Memory"). Returns what puts the previous allocator back, so that a command run inside
    another program (``fastbce.cli.main``) leaves its pyarrow as it found it."""
    import pyarrow as pa

    if os.environ.get("ARROW_DEFAULT_MEMORY_POOL"):
        return lambda: None
    previous = pa.default_memory_pool()
    try:
        pa.set_memory_pool(pa.jemalloc_memory_pool())
    except NotImplementedError:  # (a build without jemalloc)
        return lambda: None
    return lambda: pa.set_memory_pool(previous)


def _return_freed_pages() -> None:
    """jemalloc returns freed pages at once rather than after a delay (each row group's decode
    buffers are freed and made again): with a million groups the pages kept meanwhile were
    40-60 MB of the peak, but at once costs 10-15% of the time of a fast run, so only then.
    The same for glibc's malloc (NumPy's arrays, the key table), ``_map_large_blocks``. Both
    settings last for the process, so only in the command's own (``fastbce._process``)."""
    if not _process.is_command():
        return
    import pyarrow as pa

    if pa.default_memory_pool().backend_name == "jemalloc":
        pa.jemalloc_set_decay_ms(0)
    _map_large_blocks()


GLIBC_MMAP_THRESHOLD = 1 << 20


def _map_large_blocks() -> None:
    """glibc's malloc maps every block of 1 MiB or more on its own (returned when freed) and
    gives back the free top of its heap past 1 MiB. By default it raises both thresholds to the
    size of each mapped block freed (up to 32 MiB and 64 MiB), so after a batch's 8 MB arrays
    are freed the next ones come from the heap, whose holes stay resident: with a million groups
    20-40 MB of the peak. Fixing them (mallopt) stops that, and the holes made so far are given
    back (malloc_trim); the cost, fresh pages for each batch's arrays, is a few milliseconds a
    batch. Not when the user set either threshold (glibc's environment variables or tunables)."""
    if not sys.platform.startswith("linux") or _user_set_malloc_thresholds(os.environ):
        return
    import ctypes

    try:
        libc = ctypes.CDLL(None)
        mallopt, trim = libc.mallopt, libc.malloc_trim
    except (OSError, AttributeError):  # (not glibc)
        return
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    trim.argtypes = [ctypes.c_size_t]
    mallopt(-3, GLIBC_MMAP_THRESHOLD)  # (M_MMAP_THRESHOLD)
    mallopt(-1, GLIBC_MMAP_THRESHOLD)  # (M_TRIM_THRESHOLD)
    trim(0)


def _user_set_malloc_thresholds(environ: Mapping[str, str]) -> bool:
    """Whether glibc's mmap or trim threshold was set for this process by its environment."""
    if "MALLOC_MMAP_THRESHOLD_" in environ or "MALLOC_TRIM_THRESHOLD_" in environ:
        return True
    tunables = environ.get("GLIBC_TUNABLES", "")
    return "malloc.mmap_threshold" in tunables or "malloc.trim_threshold" in tunables


def _decoded_bytes(group: Any, columns: list[str], dictionary: list[str]) -> int:
    """About the Arrow size of `columns` of a row group: the larger of the pages' uncompressed
    size and the rows times a fixed width (8 bytes a value; 4 for dictionary indices)."""
    total = 0
    rows = group.num_rows
    for j in range(group.num_columns):
        chunk = group.column(j)
        name = chunk.path_in_schema
        if name in columns:
            width = 4 if name in dictionary else 8
            total += max(chunk.total_uncompressed_size, rows * width)
    return total
