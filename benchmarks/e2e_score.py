"""End-to-end scoring of a parquet file: ``fastbce score`` against Polars and DuckDB.

The same run as ``fastbce bench --e2e`` (the implementation is ``fastbce.cli.bench.e2e``):

    python benchmarks/e2e_score.py                     # 5e7 rows (about 480 MB, made in a temp dir)
    python benchmarks/e2e_score.py --rows 10000000 --dir /tmp/e2e --json e2e.json
    python benchmarks/e2e_score.py --groups 1000000 --skip output,accumulator

Polars and DuckDB are optional (``pip install ".[e2e]"``); a missing one is skipped with a message.
"""

from __future__ import annotations

import sys

from fastbce.cli.bench.e2e import main

if __name__ == "__main__":
    sys.exit(main())
