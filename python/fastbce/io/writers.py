"""Writing the per-row loss of ``fastbce score --output``: an .npy or a .parquet, written to a
temporary file in the target's directory and renamed to it at the end (atomic: a failed run leaves
nothing behind)."""

from __future__ import annotations

import os
import tempfile

import numpy as np

from .._errors import DataError, UsageError
from .formats import PARQUET_SUFFIXES, pyarrow_module

__all__ = ["NpyOutput", "Output", "ParquetOutput", "check_output_name", "open_output"]


class Output:
    """The per-row loss, written to a temporary file next to `path` and renamed to it by
    commit(); abort() removes the temporary file, so a failed run leaves nothing behind."""

    def __init__(self, path: str, dtype: np.dtype) -> None:
        self.path = path
        self.dtype = np.dtype(dtype)
        self.rows = 0
        directory = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(directory):
            raise DataError(f"cannot write {path}: the directory {directory} does not exist")
        if os.path.isdir(path):
            raise DataError(f"cannot write {path}: it is a directory")
        fd, self.tmp = tempfile.mkstemp(
            dir=directory, prefix=f".{os.path.basename(path)}.", suffix=".tmp"
        )
        os.close(fd)
        try:
            self._open()
        except BaseException:
            self.abort()
            raise

    def _open(self) -> None:
        raise NotImplementedError

    def write(self, loss: np.ndarray) -> None:
        raise NotImplementedError

    def _finish(self) -> None:
        raise NotImplementedError

    def commit(self) -> None:
        self._finish()
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(self.tmp, 0o666 & ~umask)  # as a file made by open(), not mkstemp's 0600
        os.replace(self.tmp, self.path)

    def abort(self) -> None:
        try:
            self._close()
        finally:
            try:
                os.unlink(self.tmp)
            except FileNotFoundError:
                pass

    def _close(self) -> None:
        pass


class NpyOutput(Output):
    """An .npy written in order, one batch after the other. Its header has a fixed size, so the
    number of rows (unknown until the end for CSV) is filled in when the file is complete."""

    HEADER_BYTES = 128

    def _open(self) -> None:
        self._f = open(self.tmp, "wb")  # noqa: SIM115 (closed by _finish or _close)
        self._f.write(self._header(0))

    def _header(self, rows: int) -> bytes:
        text = repr(
            {
                "descr": np.lib.format.dtype_to_descr(self.dtype),
                "fortran_order": False,
                "shape": (rows,),
            }
        )
        body = text.ljust(self.HEADER_BYTES - 10 - 1) + "\n"
        return b"\x93NUMPY\x01\x00" + len(body).to_bytes(2, "little") + body.encode("latin1")

    def write(self, loss: np.ndarray) -> None:
        self._f.write(np.ascontiguousarray(loss, dtype=self.dtype).data)
        self.rows += loss.shape[0]

    def _finish(self) -> None:
        self._f.seek(0)
        self._f.write(self._header(self.rows))
        self._f.flush()
        os.fsync(self._f.fileno())
        self._f.close()

    def _close(self) -> None:
        f = getattr(self, "_f", None)
        if f is not None:
            f.close()


class ParquetOutput(Output):
    """A .parquet with one float column "loss", one row group per batch."""

    def _open(self) -> None:
        pa = pyarrow_module()
        import pyarrow.parquet as pq

        self._schema = pa.schema([("loss", pa.from_numpy_dtype(self.dtype))])
        self._writer = pq.ParquetWriter(self.tmp, self._schema)

    def write(self, loss: np.ndarray) -> None:
        import pyarrow as pa

        column = pa.array(np.asarray(loss, dtype=self.dtype))
        self._writer.write_table(pa.Table.from_arrays([column], schema=self._schema))
        self.rows += loss.shape[0]

    def _finish(self) -> None:
        self._writer.close()
        self._writer = None

    def _close(self) -> None:
        writer = getattr(self, "_writer", None)
        if writer is not None:
            writer.close()


def open_output(path: str, dtype: np.dtype) -> Output:
    if path.lower().endswith(".npy"):
        return NpyOutput(path, dtype)
    if path.lower().endswith(PARQUET_SUFFIXES):
        return ParquetOutput(path, dtype)
    raise UsageError(f"--output {path}: the name must end in .parquet or .npy")


def check_output_name(path: str) -> None:
    if not path.lower().endswith((".npy",) + PARQUET_SUFFIXES):
        raise UsageError(f"--output {path}: the name must end in .parquet or .npy")
