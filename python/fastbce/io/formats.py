"""What the readers and writers share: the file suffixes, pyarrow (imported when needed) and the
one-line form of a library's error message."""

from __future__ import annotations

from typing import Any

from .._errors import DataError

__all__ = ["GLOB_CHARS", "PARQUET_SUFFIXES", "first_line", "pyarrow_module"]

PARQUET_SUFFIXES = (".parquet", ".pq", ".parq")
GLOB_CHARS = set("*?[")


def first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


def pyarrow_module() -> Any:
    try:
        import pyarrow
    except ImportError:
        raise DataError(
            "reading parquet or csv needs pyarrow: pip install 'fastbce[parquet]'"
        ) from None
    return pyarrow
