"""Peak resident memory of ``fastbce score`` on the end-to-end benchmark's table, by group count.

    python benchmarks/score_memory.py                          # 5e7 rows, 1e6 text groups
    python benchmarks/score_memory.py --rows 1e7 --groups 50 --dir /tmp/e2e --limit-mb 300
    python benchmarks/score_memory.py --integers               # the groups as int64 codes
    python benchmarks/score_memory.py --loss-only              # fastbce score --loss-only
    python benchmarks/score_memory.py --groups 65536           # the most groups with AUC histograms

The table is the one of ``fastbce bench --e2e`` (``country`` holds --groups text values;
with --integers it is rewritten with the codes as int64). Each run is a fresh process; its peak
resident memory is its VmHWM (Linux). Exit status 1 when a peak is
over --limit-mb.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time

from fastbce.cli.bench.e2e import SCORE_ARGS, generate


def integer_copy(path: str, out: str) -> None:
    """The table with `country` as int64 codes (g0000042 -> 42), row group by row group."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    source = pq.ParquetFile(path)
    with pq.ParquetWriter(out, source.schema_arrow.set(2, pa.field("country", pa.int64()))) as w:
        for g in range(source.num_row_groups):
            t = source.read_row_group(g)
            codes = pc.cast(pc.utf8_slice_codeunits(t.column("country"), 1), pa.int64())
            w.write_table(t.set_column(2, "country", codes))


def peak(argv: list[str]) -> tuple[float, float, int]:
    """(wall s, CPU s, peak RSS MB) of one fresh process: its VmHWM, read until it exits (the
    children's ru_maxrss would count this process's pages at the fork)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    child = subprocess.Popen(argv, stdout=subprocess.DEVNULL)
    high = 0
    while child.poll() is None:
        try:
            with open(f"/proc/{child.pid}/status") as f:
                for line in f:
                    if line.startswith("VmHWM"):
                        high = max(high, int(line.split()[1]) // 1024)
        except OSError:  # (it has just exited)
            pass
        time.sleep(0.02)
    if child.returncode:
        raise SystemExit(f"{argv}: exit status {child.returncode}")
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    return wall, cpu, high


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--rows", type=float, default=5e7)
    parser.add_argument("--groups", type=int, default=1_000_000)
    parser.add_argument("--integers", action="store_true", help="int64 group codes")
    parser.add_argument("--loss-only", action="store_true", help="score with --loss-only")
    parser.add_argument("--dir", help="keep the data here (reused) instead of a temporary dir")
    parser.add_argument("--limit-mb", type=int, help="exit 1 when a peak is over this")
    args = parser.parse_args()
    workdir = args.dir or tempfile.mkdtemp(prefix="fastbce-mem-")
    os.makedirs(workdir, exist_ok=True)  # (a --dir that does not exist yet)
    rows = int(args.rows)
    path = os.path.join(workdir, f"clicks-{rows}-{args.groups}.parquet")
    generate(path, rows, 1_000_000, args.groups)
    if args.integers:
        ints = path.replace(".parquet", "-int.parquet")
        if not os.path.exists(ints):
            integer_copy(path, ints)
        path = ints
    score = [sys.executable, "-m", "fastbce", "score", path, *SCORE_ARGS]
    if args.loss_only:
        score.append("--loss-only")
    worst = 0
    for label, extra in (("no groups", []), ("--group-by country", ["--group-by", "country"])):
        wall, cpu, mb = peak(score + extra)
        worst = max(worst, mb)
        print(f"{label:<20} wall {wall:6.1f} s  CPU {cpu:6.1f} s  peak RSS {mb} MB")
    if args.dir is None:
        for name in os.listdir(workdir):
            os.unlink(os.path.join(workdir, name))
        os.rmdir(workdir)
    return 1 if args.limit_mb is not None and worst > args.limit_mb else 0


if __name__ == "__main__":
    sys.exit(main())
