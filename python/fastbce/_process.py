"""Whether this process is the ``fastbce`` command's own.

The command's entry point (``fastbce``, ``python -m fastbce``: ``fastbce.cli.entry_point``) says
so; the process then ends with the command, so a run may tune process-wide settings for itself
(``fastbce.io.prefetch``: glibc's malloc thresholds and jemalloc's decay with a million groups;
``one_blas_thread``: no OpenBLAS threads for ``fastbce score``; ``end``: no interpreter teardown).
``fastbce.cli.main`` called inside another program (a notebook, a test) leaves them as they were:
glibc has no getter for its thresholds (and fixing them, even to its defaults, turns off their
adjustment for good), nor pyarrow for jemalloc's decay, so they could not be restored.
Standard library only: the command imports it first (``fastbce score --help`` imports no NumPy).
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator

__all__ = ["end", "is_command", "one_blas_thread", "own"]

_command = False

# What OpenBLAS reads for its number of threads (the first set wins), when NumPy loads it.
_BLAS_THREADS = ("OPENBLAS_NUM_THREADS", "GOTO_NUM_THREADS", "OMP_NUM_THREADS")


def own() -> None:
    """Marks this process as the command's own (called once, by the entry point)."""
    global _command
    _command = True


def is_command() -> bool:
    return _command


@contextlib.contextmanager
def one_blas_thread() -> Iterator[None]:
    """NumPy imported in here (by the command's own process, first) starts no OpenBLAS threads.

    OpenBLAS starts a thread per core when NumPy loads it, and each spins about 0.1 s before it
    sleeps: on a 2-core machine 0.11 s of CPU in every ``fastbce score`` run (a third of its
    start-up's CPU), taken from the threads that decode the first row groups. The command
    never multiplies matrices. The variable is set only while NumPy loads (OpenBLAS reads it
    then), so processes the command starts do not inherit it; a value the user set is kept.
    """
    if not _command or "numpy" in sys.modules or any(v in os.environ for v in _BLAS_THREADS):
        yield
        return
    os.environ["OPENBLAS_NUM_THREADS"] = "1"
    try:
        yield
    finally:
        os.environ.pop("OPENBLAS_NUM_THREADS", None)


def end(status: int) -> int:
    """Ends the command's own process with `status` once the command is done: stdout and stderr
    flushed, the atexit functions run, then ``os._exit``, without the interpreter's teardown
    (freeing every module's objects one by one, NumPy's and pyarrow's among them: 20-30 ms of
    CPU at the end of every ``fastbce score``, with nothing left to write or close: the
    command closes its output itself). Returns `status` for the ordinary exit instead when
    other Python threads still run (their ``threading`` shutdown joins them: a Dask client's)
    or the streams cannot be flushed (a closed pipe: Python reports that as it exits)."""
    import atexit
    import threading

    if not _command or threading.active_count() > 1:
        return status
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (OSError, ValueError):  # (BrokenPipeError; a stream closed)
        return status
    atexit._run_exitfuncs()
    with contextlib.suppress(OSError, ValueError):  # (what they wrote, if it can be)
        sys.stdout.flush()
        sys.stderr.flush()
    os._exit(status)
