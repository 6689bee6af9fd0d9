"""Reading and writing the data files of ``fastbce score``: parquet, CSV, .npz and .npy.

``readers`` streams the inputs in batches (and in partitions, for Dask workers); ``writers``
writes the per-row loss atomically. Errors the user can fix are ``DataError`` / ``UsageError``
(``fastbce._errors``) with a one-line message naming the file.
"""

from __future__ import annotations

from .readers import (
    CsvSource,
    NpySource,
    NpzSource,
    ParquetSource,
    expand_inputs,
    missing_column,
    parquet_row_groups,
    row_group_ranges,
    series_values,
)
from .writers import NpyOutput, Output, ParquetOutput, check_output_name, open_output

__all__ = [
    "CsvSource",
    "NpyOutput",
    "NpySource",
    "NpzSource",
    "Output",
    "ParquetOutput",
    "ParquetSource",
    "check_output_name",
    "expand_inputs",
    "missing_column",
    "open_output",
    "parquet_row_groups",
    "row_group_ranges",
    "series_values",
]
