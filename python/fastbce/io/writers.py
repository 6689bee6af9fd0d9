"""Writing the per-row loss of ``fastbce score --output``: an .npy or a .parquet, written to a
temporary file in the target's directory and renamed to it at the end (atomic: a failed run leaves
nothing behind).

The output is never one of the inputs (``check_not_an_input``: the same file by any path, symlink
or hard link). An output path that is a symlink is written through: the file it points to is
replaced and the link stays (as a shell's ``>`` or ``numpy.save`` would). The temporary file's name
says which run made it, ``.NAME.fastbce-PID@HOST.tmp`` (NAME shortened and marked with a hash of
the whole where the name would pass the file system's limit): a run killed outright (SIGKILL, a
power cut) cannot remove its own, so the next run writing NAME removes those whose process is gone
(``remove_stale_temps``).
"""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Iterator
from typing import Any

import numpy as np

from .._errors import DataError, UsageError
from .formats import PARQUET_SUFFIXES, pyarrow_module

__all__ = [
    "FigureOutput",
    "NpyOutput",
    "Output",
    "ParquetOutput",
    "check_not_an_input",
    "check_output_name",
    "check_target",
    "open_output",
    "remove_stale_temps",
    "same_file",
    "temp_path",
    "whole_file",
]

_MARK = ".fastbce-"  # in a temporary file's name: .NAME.fastbce-PID@HOST.tmp


class Output:
    """The per-row loss, written to a temporary file next to `path` and renamed to it by
    commit(); abort() removes the temporary file, so a failed run leaves nothing behind."""

    def __init__(self, path: str, dtype: Any = None) -> None:
        self.path = path
        self.target = os.path.realpath(path)  # (through a symlink: its file is replaced)
        self.dtype = np.dtype(dtype)
        self.rows = 0
        check_target(path)
        remove_stale_temps(self.target)
        self.tmp = temp_path(self.target)
        try:  # (a signal, as an exception, anywhere from the file's creation on removes it)
            try:
                fd = os.open(self.tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:  # left by a dead process that had this pid
                os.unlink(self.tmp)
                fd = os.open(self.tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            os.close(fd)
            self._open()
        except BaseException:
            with contextlib.suppress(OSError):  # (the first error is the one to report)
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
        os.chmod(self.tmp, 0o666 & ~umask)  # as a file made by open(), not the temporary's 0600
        os.replace(self.tmp, self.target)
        _sync_directory(os.path.dirname(self.target))

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
    """A .parquet with one float column "loss", one row group per batch, PLAIN-encoded and
    uncompressed, without statistics: per-row losses are distinct floats, so a dictionary
    is tried and abandoned on every page (1.14-1.5x the raw size and 2-3x the time of the .npy),
    and compression saves under 10% (BYTE_STREAM_SPLIT with zstd: 11%, at 2x the time). See
    docs/scoring.md for the measurements."""

    def _open(self) -> None:
        pa = pyarrow_module()
        import pyarrow.parquet as pq

        self._type = pa.from_numpy_dtype(self.dtype)
        self._schema = pa.schema([("loss", self._type)])
        self._writer = pq.ParquetWriter(
            self.tmp,
            self._schema,
            use_dictionary=False,
            compression="none",
            write_statistics=False,  # (min/max of every page: a quarter of the writer's time)
        )

    def write(self, loss: np.ndarray) -> None:
        import pyarrow as pa

        values = np.ascontiguousarray(loss, dtype=self.dtype)  # (pa.array would import pandas)
        column = pa.Array.from_buffers(self._type, len(values), [None, pa.py_buffer(values)])
        self._writer.write_table(pa.Table.from_arrays([column], schema=self._schema))
        self.rows += loss.shape[0]

    def _finish(self) -> None:
        self._writer.close()
        self._writer = None
        fd = os.open(self.tmp, os.O_RDONLY)
        try:
            os.fsync(fd)  # on disk before the rename, as the .npy
        finally:
            os.close(fd)

    def _close(self) -> None:
        writer = getattr(self, "_writer", None)
        if writer is not None:
            writer.close()


class FigureOutput(Output):
    """A figure (``fastbce score --plot``) written as the losses are: the caller saves it to
    ``tmp``, commit() renames it to `path`, abort() removes it (a stopped run leaves neither a
    truncated figure nor a temporary file, and an older figure at `path` stays as it was)."""

    def _open(self) -> None:
        pass

    def _finish(self) -> None:
        pass


@contextlib.contextmanager
def whole_file(path: str) -> Iterator[str]:
    """A file written whole or not at all (``--plot``, ``fastbce bench``'s --json): yields a
    temporary name beside `path` to write, renamed to `path` at the end, removed on an error
    or a signal (an older file at `path` stays as it was)."""
    out = FigureOutput(path)
    try:
        yield out.tmp
    except BaseException:
        out.abort()
        raise
    out.commit()


def check_target(path: str) -> None:
    """DataError unless a file can be made at `path` (through a symlink, at its target): its
    directory exists, it is no directory, its name is within the file system's limit.
    --output's and --plot's check before any data is read."""
    directory, name = os.path.split(os.path.realpath(path))
    if not os.path.isdir(directory):
        raise DataError(f"cannot write {path}: the directory {directory} does not exist")
    if os.path.isdir(path):
        raise DataError(f"cannot write {path}: it is a directory")
    limit = _name_max(directory)
    if len(os.fsencode(name)) > limit:
        raise DataError(f"cannot write {path}: its file name is longer than {limit} bytes")


def same_file(a: str, b: str) -> bool:
    """Whether two paths name one file: the same path once resolved (``./``, ``..``, symlinks,
    even to a file not made yet) or the same device and inode (a hard link)."""
    return _is_file(_identity(a), b)


def _identity(path: str) -> tuple[str, tuple[int, int] | None]:
    """(the resolved path, (device, inode) or None where no file is there yet)."""
    try:
        st = os.stat(path)
    except OSError:
        return os.path.realpath(path), None
    return os.path.realpath(path), (st.st_dev, st.st_ino)


def _is_file(identity: tuple[str, tuple[int, int] | None], other: str) -> bool:
    """Whether `other` is the file of `identity` (_identity's; other is stat'ed only where the
    resolved paths differ and that file exists)."""
    real, inode = identity
    if os.path.realpath(other) == real:
        return True
    if inode is None:
        return False
    try:
        st = os.stat(other)
    except OSError:
        return False
    return (st.st_dev, st.st_ino) == inode


def open_output(path: str, dtype: np.dtype, inputs: list[str] | tuple[str, ...] = ()) -> Output:
    """The writer for `path` (after checking that it is none of the `inputs`)."""
    check_not_an_input(path, inputs)
    if path.lower().endswith(".npy"):
        return NpyOutput(path, dtype)
    if path.lower().endswith(PARQUET_SUFFIXES):
        return ParquetOutput(path, dtype)
    raise UsageError(f"--output {path}: the name must end in .parquet or .npy")


def check_output_name(path: str) -> None:
    if not path.lower().endswith((".npy",) + PARQUET_SUFFIXES):
        raise UsageError(f"--output {path}: the name must end in .parquet or .npy")


def check_plot_name(path: str) -> None:
    """UsageError unless a --plot path names a PNG (fastbce score and fastbce bench)."""
    if not path.lower().endswith(".png") or os.path.basename(path).lower() == ".png":
        raise UsageError(f"--plot {path}: the name must end in .png (after a name)")


def check_not_an_input(
    path: str, inputs: list[str] | tuple[str, ...], option: str = "--output"
) -> None:
    """UsageError when `path` (of `option`: --output, --plot) is one of the input files, by any
    name: the same path once resolved (``./``, ``..``, symlinks) or the same file (device and
    inode: a hard link)."""
    identity = _identity(path)  # (once, not once per input)
    for name in inputs:
        if _is_file(identity, name):
            what = "the losses" if option == "--output" else "the figure"
            raise UsageError(
                f"{option} {path} is the input {name}: writing {what} would replace the data; "
                f"choose another {option} path"
            )


def temp_path(path: str, pid: int | None = None) -> str:
    """The temporary file of a run writing `path`: .NAME.fastbce-PID@HOST.tmp beside it."""
    directory, name = os.path.split(os.path.abspath(path))
    pid = os.getpid() if pid is None else pid
    host = socket.gethostname()
    return os.path.join(directory, f"{_temp_prefix(directory, name, host)}{pid}@{host}.tmp")


def _temp_prefix(directory: str, name: str, host: str) -> str:
    """'.NAME.fastbce-', with NAME cut to fit and ended by '~' and 8 hex digits of its hash where
    the temporary's name (with a pid of up to 10 digits) would pass the limit of a file name."""
    room = _name_max(directory) - len(os.fsencode(f".{_MARK}{'0' * 10}@{host}.tmp"))
    if len(os.fsencode(name)) <= room:
        return f".{name}{_MARK}"
    import hashlib  # (only for names this long: 2 ms of a run's start-up)

    digest = hashlib.sha1(os.fsencode(name)).hexdigest()[:8]
    cut = name
    while len(os.fsencode(cut)) > room - 9:
        cut = cut[:-1]
    return f".{cut}~{digest}{_MARK}"


def _name_max(directory: str) -> int:
    """The longest file name (in bytes) the file system of `directory` takes."""
    try:
        return os.pathconf(directory, "PC_NAME_MAX")
    except (OSError, ValueError):
        return 255


def remove_stale_temps(path: str) -> list[str]:
    """Removes the temporary files of earlier runs writing `path` from this host whose process
    is gone (killed before it could clean up); returns their paths. Files of live processes,
    of other hosts (a shared file system) and any other file are left alone."""
    directory, name = os.path.split(os.path.abspath(path))
    host = socket.gethostname()
    prefix = _temp_prefix(directory, name, host)
    try:
        entries = os.listdir(directory)
    except OSError:
        return []
    removed = []
    for entry in entries:
        if not (entry.startswith(prefix) and entry.endswith(".tmp")):
            continue
        pid, _, where = entry[len(prefix) : -len(".tmp")].partition("@")
        if where != host or not pid.isdigit():
            continue
        if int(pid) != os.getpid() and _alive(int(pid)):
            continue
        try:
            os.unlink(os.path.join(directory, entry))
        except OSError:
            continue
        removed.append(os.path.join(directory, entry))
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # (signal 0: only asks whether the process exists)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def _sync_directory(directory: str) -> None:
    """Makes the rename durable (where the platform allows opening a directory)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
