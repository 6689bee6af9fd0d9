"""Per-group arrays that grow in place: the groups' sums (``_report``, ``_loss_sums``); and the
large fresh arrays of one batch (``empty``: the codes of a batch's string labels).

A million groups' report sums are 120 MB, so they must never be in memory twice while they grow:
an array is resized in place, a ``realloc`` that Linux does by moving the pages (``mremap``), not
by copying them. NumPy asks for transparent huge pages for every array of 4 MiB or more
(``madvise``), and a region of huge pages that moves is copied: growing 76 MB of sums to 107 MB
took the peak resident memory 72 MB higher (the copy and the old pages, at once). So these arrays
are made and grown without that request (their pages are the usual 4 KiB ones; the scatter of a
million groups' adds measured no slower).

A fresh array of huge pages also costs more than it saves where memory is fragmented (a machine
running other jobs): the kernel compacts memory for each huge page while the array is first
written (``defrag=madvise``, the usual setting). The 400 MB of codes of 5e7 string labels took
0.08 s of CPU time to fill on huge pages at best and 0.6 to 1.0 s while the kernel compacted, from
one run to the next; on small pages a steady 0.15 s (0.08 s for the int32 codes used now).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

__all__ = ["empty", "grown", "narrowed"]


def _hugepage_switch() -> Callable[[bool], bool] | None:
    """NumPy's switch of its huge-page request (private; None where it has none)."""
    for name in ("numpy._core.multiarray", "numpy.core.multiarray"):
        try:
            module = __import__(name, fromlist=["_set_madvise_hugepage"])
        except ImportError:
            continue
        switch: Any = getattr(module, "_set_madvise_hugepage", None)
        if switch is not None:
            return switch
    return None


_SWITCH = _hugepage_switch()


@contextlib.contextmanager
def _small_pages() -> Iterator[None]:
    """Arrays allocated (or reallocated) inside are not given to huge pages."""
    if _SWITCH is None:
        yield
        return
    previous = _SWITCH(False)
    try:
        yield
    finally:
        _SWITCH(previous)


def grown(a: np.ndarray, rows: int) -> np.ndarray:
    """a with `rows` rows (at least as many as it has), the new ones zero. In place when a owns
    its buffer (nothing may hold a view of it then); else a new array of small pages."""
    with _small_pages():
        if a.flags.owndata and a.flags.c_contiguous and a.base is None and a.size:
            a.resize((rows, *a.shape[1:]), refcheck=False)  # (numpy zeroes the new rows)
            return a
        out = np.zeros((rows, *a.shape[1:]), dtype=a.dtype)
        out[: a.shape[0]] = a
        return out


def narrowed(a: np.ndarray, width: int) -> np.ndarray:
    """The first `width` columns of a 2-D array as a new array of small pages."""
    with _small_pages():
        return np.ascontiguousarray(a[:, :width])


def empty(n: int, dtype: Any) -> np.ndarray:
    """np.empty(n, dtype) of small pages (a large array filled once, then dropped)."""
    with _small_pages():
        return np.empty(n, dtype=dtype)
