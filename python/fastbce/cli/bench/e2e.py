"""``fastbce bench --e2e``: scoring a parquet file end to end, against Polars and DuckDB.

Generates a table of clicks (``logit`` float32, ``clicked`` bool, ``country`` string with 50
values, ``weight`` float32; row groups of 1M rows, snappy) and times, each as a fresh process and
the best of the repeats (every task once a round, so that a drift of the machine falls on all
alike): the log loss overall and per country with ``fastbce score`` (with the report, and with
``--loss-only``: the report's cost is the difference), with one Polars expression
(``scan_parquet``) and with one DuckDB query; the floor "interpreter start +
pyarrow reading the same columns" (country as a dictionary), the fastest of three ways of
reading them, and "interpreter start + imports only"; ``--output`` as .npy and .parquet
(time and size); and, in process, ``LossAccumulator.update`` with string groups and with integer
codes. Every answer is checked against a float64 reference computed when the data is made. Peak
resident memory is each child's own (``wait4``).

Polars and DuckDB are optional peers (``pip install "fastbce[e2e]"``); a missing one is skipped
with a message. The machine's CPU and fastbce's SIMD tier head the table. On a machine shared
with other work, compare the ratios of one run rather than times across runs. The same run is
``benchmarks/e2e_score.py`` (a thin wrapper around :func:`main`).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any

from .child import run_child
from .timing import cpu_model

E2E_PEERS = {"polars": "polars", "duckdb": "duckdb"}  # peer -> module
E2E_INSTALL = 'pip install "fastbce[e2e]"'
SKIPPABLE = ("polars", "duckdb", "output", "accumulator", "floor")

COUNTRIES = (
    "ar au at be br ca ch cl cn co cz de dk eg es fi fr gb gr hk hu id ie il in it jp kr mx my "
    "ng nl no nz pe ph pk pl pt ro ru sa se sg th tr tw ua us za"
).split()
assert len(COUNTRIES) == 50
TOLERANCE = 1e-5  # relative: float32 losses summed in float64 are within ~1e-7
LOSS_ONLY = "fastbce score --loss-only"  # (the plain loss pass: the report's cost is the rest)
SCORE_ARGS = ["--y-true", "clicked", "--y-pred", "logit", "--from-logits", "--format", "json"]


# --------------------------------------------------------------------------- the data


def data_name(rows: int, groups: int, seed: int) -> str:
    """The generated file's name: one per size and seed (another seed does not overwrite it)."""
    return f"clicks-{rows}-{groups}{f'-seed{seed}' if seed else ''}.parquet"


def generate(
    path: str, rows: int, row_group_rows: int, groups: int = 50, seed: int = 0
) -> dict[str, Any]:
    """Writes the table and returns the float64 reference (overall and per country); both are
    reused when `path` and its reference file exist for the same size and seed."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    meta = {"rows": rows, "row_group_rows": row_group_rows, "groups": groups, "seed": seed}
    keys = COUNTRIES if groups == len(COUNTRIES) else [f"g{i:07d}" for i in range(groups)]
    ref_path = path + ".reference.json"
    if os.path.exists(path) and os.path.exists(ref_path):
        with open(ref_path) as f:
            saved = json.load(f)
        if saved.get("meta") == meta:
            return saved
    rng = np.random.default_rng(seed)
    names = pa.array(keys)
    schema = pa.schema(
        [
            ("logit", pa.float32()),
            ("clicked", pa.bool_()),
            ("country", pa.string()),
            ("weight", pa.float32()),
        ]
    )
    sums = np.zeros(groups)
    counts = np.zeros(groups, dtype=np.int64)
    from ...io.writers import whole_file  # (a stopped run leaves no half table in --dir)

    with whole_file(path) as tmp, pq.ParquetWriter(tmp, schema, compression="snappy") as writer:
        for start in range(0, rows, row_group_rows):
            n = min(row_group_rows, rows - start)
            logit = (rng.standard_normal(n, dtype=np.float32) * 2.0 - 0.5).astype(np.float32)
            clicked = rng.random(n) < 1.0 / (1.0 + np.exp(-logit.astype(np.float64)))
            code = rng.integers(0, groups, n, dtype=np.int32)
            weight = rng.uniform(0.5, 1.5, n).astype(np.float32)
            x = logit.astype(np.float64)
            loss = np.maximum(x, 0.0) - x * clicked + np.log1p(np.exp(-np.abs(x)))
            sums += np.bincount(code, weights=loss, minlength=groups)
            counts += np.bincount(code, minlength=groups)
            country = pa.DictionaryArray.from_arrays(pa.array(code), names).dictionary_decode()
            table = pa.table(
                [pa.array(logit), pa.array(clicked), country, pa.array(weight)], schema=schema
            )
            writer.write_table(table, row_group_size=row_group_rows)
    reference = {
        "meta": meta,
        "rows": rows,
        "sum": float(sums.sum()),
        "mean": float(sums.sum() / rows),
        "groups": {
            c: {"rows": int(k), "sum": float(s), "mean": float(s / k) if k else math.nan}
            for c, s, k in zip(keys, sums, counts, strict=True)
            if k
        },
    }
    with whole_file(ref_path) as tmp, open(tmp, "w") as f:
        json.dump(reference, f)
    return reference


# Disk a run takes per row: the table (about 10 bytes, snappy) and the --output task's loss
# files (4 bytes in .npy, about 4.3 in parquet), with room to spare.
DISK_BYTES_PER_ROW = 20


def check_room(workdir: str, rows: int, path: str) -> None:
    """OSError before anything is written when the run's files cannot fit on the disk
    of `workdir` (--rows 1e12 would write for hours and then fail); a table made by an earlier
    run (--dir) needs no room."""
    need = DISK_BYTES_PER_ROW * rows - (os.path.getsize(path) if os.path.exists(path) else 0)
    free = shutil.disk_usage(workdir).free
    if need > free:
        raise OSError(
            f"--rows {rows} needs about {need / 1e9:,.1f} GB of disk in {workdir}; "
            f"{free / 1e9:,.1f} GB are free",
        )


# --------------------------------------------------------------------------- the children
#
# Each peer is a short program run as `python -c CODE PATH`; it prints {"mean": m} or
# {"mean": m, "groups": {country: mean}} (and "seconds" when it times itself in process).

POLARS = """
import json, sys
import polars as pl
x = pl.col("logit").cast(pl.Float64)
y = pl.col("clicked").cast(pl.Float64)
loss = (x.clip(lower_bound=0.0) - x * y + (-x.abs()).exp().log1p()).alias("loss")
frame = pl.scan_parquet(sys.argv[1])
if sys.argv[2] == "group":
    out = frame.group_by("country").agg(loss.mean()).collect()
    print(json.dumps({"groups": dict(zip(out["country"].to_list(), out["loss"].to_list()))}))
else:
    print(json.dumps({"mean": frame.select(loss.mean()).collect().item()}))
"""

DUCKDB = """
import json, sys
import duckdb
duckdb.sql("SET enable_progress_bar = false")  # (it prints to stdout on long queries)
path = sys.argv[1].replace("'", "''")
loss = "greatest(x, 0) - x * y + ln(1 + exp(-abs(x)))"
rows = (
    "SELECT CAST(logit AS DOUBLE) AS x, CAST(clicked AS DOUBLE) AS y, country "
    f"FROM read_parquet('{path}')"
)
if sys.argv[2] == "group":
    out = duckdb.sql(f"SELECT country, avg({loss}) FROM ({rows}) GROUP BY country").fetchall()
    print(json.dumps({"groups": dict(out)}))
else:
    print(json.dumps({"mean": duckdb.sql(f"SELECT avg({loss}) FROM ({rows})").fetchall()[0][0]}))
"""

FLOOR = """
import json, os, sys
how = sys.argv[3]
# NumPy (which pyarrow imports) without OpenBLAS threads, as fastbce score loads it: each would
# spin about 0.1 s at the import, on the cores that decode (paired runs: the floor by country
# read 0.95x the time and 0.87x the CPU without them)
blas = ("OPENBLAS_NUM_THREADS", "GOTO_NUM_THREADS", "OMP_NUM_THREADS")
if not any(v in os.environ for v in blas):
    os.environ["OPENBLAS_NUM_THREADS"] = "1"
import pyarrow as pa
import pyarrow.parquet as pq
columns = ["logit", "clicked"] + (["country"] if sys.argv[2] == "group" else [])
dictionary = ["country"] if sys.argv[2] == "group" else None
if how == "imports":  # interpreter start and the imports of fastbce score, no data read
    import numpy, fastbce, fastbce.cli.score
    rows = pq.read_metadata(sys.argv[1]).num_rows
elif how == "table":  # the whole table in memory, decoded on all cores
    rows = pq.read_table(sys.argv[1], columns=columns, read_dictionary=dictionary).num_rows
elif how == "stream":  # record batches of one row group each, each decoded on all cores
    reader = pq.ParquetFile(sys.argv[1], read_dictionary=dictionary, pre_buffer=True)
    size = reader.metadata.row_group(0).num_rows
    rows = sum(b.num_rows for b in reader.iter_batches(batch_size=size, columns=columns))
else:  # "row groups": one row group per thread (as fastbce score reads), dropped in order
    from concurrent.futures import ThreadPoolExecutor
    try:
        pa.set_memory_pool(pa.jemalloc_memory_pool())
    except NotImplementedError:
        pass
    meta = pq.read_metadata(sys.argv[1])
    def read(g):
        f = pq.ParquetFile(sys.argv[1], metadata=meta, read_dictionary=dictionary)
        return f.read_row_group(g, columns=columns, use_threads=False).num_rows
    with ThreadPoolExecutor(min(os.cpu_count() or 1, 8)) as pool:
        rows = sum(pool.map(read, range(meta.num_row_groups)))
print(json.dumps({"rows": rows}))
"""

# The floor's ways of reading (the tool's name is FLOOR_TOOL + the way); the fastest of each
# section is the floor the ratios use ("imports" reads nothing: it is the start-up alone).
FLOOR_TOOL = "start + pyarrow read: "
FLOOR_WAYS = ("table", "stream", "row groups")
IMPORTS_TOOL = "start + imports only"
FLOOR_NAME = "floor (fastest pyarrow read)"


ACCUMULATOR = """
import json, sys, time
import numpy as np
import pyarrow.compute as pc
import pyarrow.parquet as pq
import fastbce
t = pq.read_table(sys.argv[1], columns=["logit", "clicked", "country"])
x = t.column("logit").to_numpy()
y = t.column("clicked").to_numpy()
groups = t.column("country")  # strings (a ChunkedArray)
if sys.argv[2] == "codes":  # int64 codes 0..49
    import pyarrow as pa
    names = pa.array(sorted(set(pc.unique(groups.chunk(0)).to_pylist())))
    groups = pc.index_in(groups, value_set=names).to_numpy().astype(np.int64)
start = time.perf_counter()
result = fastbce.LossAccumulator(from_logits=True).update(y, x, groups=groups).result()
seconds = time.perf_counter() - start
if sys.argv[2] == "codes":
    result["groups"] = {names[k].as_py(): v for k, v in result["groups"].items()}
print(json.dumps({"seconds": seconds, "mean": result["mean"],
                  "groups": {k: v["mean"] for k, v in result["groups"].items()}}))
"""


@dataclass
class Task:
    section: str  # "overall", "group", "output", "accumulator"
    tool: str
    argv: list[str]
    check: str  # "mean", "groups", "rows", "output"
    inner: bool = False  # time from the child's "seconds" (in process) rather than the wall
    output: str | None = None
    times: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)  # user + system seconds of each run
    rss_mb: float = math.nan
    error: str | None = None
    rel_error: float = math.nan
    size: int | None = None


def _strict(task: Task) -> dict[str, Any]:
    """A task's figures for strict JSON: NaN and infinities (a failed task's) as null."""

    def finite(v: Any) -> Any:
        if isinstance(v, list):
            return [finite(x) for x in v]
        return None if isinstance(v, float) and not math.isfinite(v) else v

    return {k: finite(v) for k, v in vars(task).items() if k != "argv"}


def rel(a: float | None, b: float) -> float:
    if a is None:
        return math.inf
    return abs(a - b) / abs(b) if b else abs(a)


def check(task: Task, answer: dict[str, Any], ref: dict[str, Any]) -> float:
    """The largest relative error of the task's answer against the reference."""
    if task.check == "rows":
        return 0.0 if answer.get("rows") == ref["rows"] else math.inf
    errors = []
    if "mean" in answer:
        errors.append(rel(answer["mean"], ref["mean"]))
    if task.check == "groups":
        got = answer.get("groups", {})
        if set(got) != set(ref["groups"]):
            return math.inf
        errors += [
            rel(got[k]["mean"] if isinstance(got[k], dict) else got[k], v["mean"])
            for k, v in ref["groups"].items()
        ]
    if task.check == "output":
        errors.append(rel(output_sum(task.output), ref["sum"]))
    return max(errors) if errors else math.inf


def output_sum(path: str | None) -> float | None:
    import numpy as np

    if path is None or not os.path.exists(path):
        return None
    if path.endswith(".npy"):
        return float(np.load(path, mmap_mode="r").sum(dtype=np.float64))
    import pyarrow.parquet as pq

    column = pq.read_table(path).column("loss")
    return float(sum(c.to_numpy().sum(dtype=np.float64) for c in column.chunks))


# --------------------------------------------------------------------------- the plan


def tasks(path: str, workdir: str, python: str, skip: set[str]) -> list[Task]:
    fastbce = [python, "-m", "fastbce", "score", path, *SCORE_ARGS]
    group = ["--group-by", "country"]
    out = []
    for section, args, check_kind in (("overall", [], "mean"), ("group", group, "groups")):
        mode = "group" if section == "group" else "all"
        out.append(Task(section, "fastbce score", fastbce + args, check_kind))
        out.append(Task(section, LOSS_ONLY, fastbce + args + ["--loss-only"], check_kind))
        if "polars" not in skip:
            out.append(Task(section, "Polars", [python, "-c", POLARS, path, mode], check_kind))
        if "duckdb" not in skip:
            out.append(Task(section, "DuckDB", [python, "-c", DUCKDB, path, mode], check_kind))
        if "floor" not in skip:
            out.append(
                Task(section, IMPORTS_TOOL, [python, "-c", FLOOR, path, mode, "imports"], "rows")
            )
            for how in FLOOR_WAYS:
                argv = [python, "-c", FLOOR, path, mode, how]
                out.append(Task(section, FLOOR_TOOL + how, argv, "rows"))
    for suffix in (".npy", ".parquet"):
        target = os.path.join(workdir, "loss" + suffix)
        out.append(
            Task(
                "output",
                f"fastbce score --output {suffix}",
                fastbce + ["--output", target],
                "output",
                output=target,
            )
        )
    for kind, tool in (("strings", "string groups"), ("codes", "int64 codes")):
        out.append(
            Task(
                "accumulator",
                f"LossAccumulator.update, {tool}",
                [python, "-c", ACCUMULATOR, path, kind],
                "groups",
                inner=True,
            )
        )
    return out


def run_task(task: Task, ref: dict[str, Any], env: dict[str, str]) -> None:
    """One run of the task: its time, CPU and memory added, or its error set."""
    if task.output and os.path.exists(task.output):
        os.unlink(task.output)
    wall, cpu, rss, status, out, err = run_child(task.argv, env)
    if status != 0:
        lines = err.strip().splitlines()
        task.error = f"exit {status}: {lines[-1] if lines else ''}"
        return
    try:
        answer = json.loads(out)
    except ValueError:
        task.error = f"not JSON on stdout: {out[:60]!r}"
        return
    task.rel_error = max(check(task, answer, ref), 0.0 if not task.times else task.rel_error)
    task.times.append(float(answer["seconds"]) if task.inner else wall)
    task.cpu.append(cpu)
    task.rss_mb = rss if math.isnan(task.rss_mb) else max(task.rss_mb, rss)
    if task.output:
        task.size = os.path.getsize(task.output)
    if task.rel_error > TOLERANCE:
        task.error = f"wrong answer: relative error {task.rel_error:.2e}"


# --------------------------------------------------------------------------- the report


# Whether the timed fastbce compiles its modules in every process: some not byte-compiled and
# none written (PYTHONDONTWRITEBYTECODE): 40-60 ms of each start-up, not an installed fastbce's
BYTECODE = """
import importlib.util as u, os, sys, fastbce
top = os.path.dirname(fastbce.__file__)
files = [os.path.join(d, f) for d, _, fs in os.walk(top) for f in fs if f.endswith(".py")]
print(sys.dont_write_bytecode and any(not os.path.exists(u.cache_from_source(f)) for f in files))
"""


COMPILES_NOTE = (
    "note: fastbce's modules are not byte-compiled and PYTHONDONTWRITEBYTECODE is set: each "
    "fastbce process compiles them (40-60 ms); an installed fastbce does not"
)


def machine(python: str, env: dict[str, str]) -> dict[str, Any]:
    info = subprocess.run(
        [python, "-m", "fastbce", "info", "--format", "json"],
        env=env,
        capture_output=True,
        text=True,
    )
    build = json.loads(info.stdout) if info.returncode == 0 else {}
    compiles = subprocess.run([python, "-c", BYTECODE], env=env, capture_output=True, text=True)
    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "tier": build.get("target", "?"),
        "line_fetch": build.get("line_fetch", "?"),
        "fastbce": build.get("version", "?"),
        "load_average": os.getloadavg()[0] if hasattr(os, "getloadavg") else math.nan,
        "compiles_each_run": compiles.stdout.strip() == "True",
    }


def best(task: Task) -> float:
    return min(task.times) if task.times and task.error is None else math.nan


def section_floor(all_tasks: list[Task], section: str) -> tuple[float, str]:
    """The fastest of the section's pyarrow reads (the floor) and its way of reading."""
    reads = [
        (best(t), t.tool[len(FLOOR_TOOL) :])
        for t in all_tasks
        if t.section == section and t.tool.startswith(FLOOR_TOOL) and not math.isnan(best(t))
    ]
    return min(reads) if reads else (math.nan, "")


def report(
    all_tasks: list[Task], info: dict[str, Any], rows: int, groups: int, size: int, repeat: int
) -> str:
    lines = [
        f"fastbce score end to end: {rows:,} rows, {groups:,} countries, "
        f"{size / 1e6:.0f} MB of parquet; best of {repeat}, each a fresh process",
        f"CPU: {info['cpu']}, {info['cores']} cores; fastbce {info['fastbce']} on tier "
        f"{info['tier']}, line fetch {info['line_fetch']}; load average "
        f"{info['load_average']:.1f} at the start",
    ]
    if info.get("compiles_each_run"):
        lines.append(COMPILES_NOTE)
    lines += [
        "",
        f"{'task':<12} {'tool':<42} {'best s':>7} {'runs (s)':<20} {'cpu s':>6} {'peak MB':>8} "
        f"{'rel err':>8}  note",
    ]
    for t in all_tasks:
        runs = " ".join(f"{x:.2f}" for x in t.times)
        note = t.error or ""
        if t.size is not None and not t.error:
            note = f"{t.size / 1e6:.1f} MB ({t.size / (4 * rows):.2f}x the float32 losses)"
        lines.append(
            f"{t.section:<12} {t.tool:<42} {best(t):>7.3f} {runs:<20} "
            f"{min(t.cpu, default=math.nan):>6.2f} {t.rss_mb:>8.0f} "
            f"{t.rel_error:>8.1e}  {note}".rstrip()
        )
    lines += ["", "ratios (best times of this run; target in brackets):"]
    find = {(t.section, t.tool): best(t) for t in all_tasks}
    for section in ("overall", "group"):
        floor, way = section_floor(all_tasks, section)
        imports = find.get((section, IMPORTS_TOOL), math.nan)
        if not math.isnan(floor):
            lines.append(
                f"  {section:<8} {FLOOR_NAME} = {way}, {floor:.3f} s; {IMPORTS_TOOL} "
                f"{imports:.3f} s (the floor's start-up share {imports / floor:.0%})"
            )
        peers = [("Polars", 0.7), ("DuckDB", 0.5)]
        for tool in ("fastbce score", LOSS_ONLY):
            mine = find.get((section, tool), math.nan)
            if math.isnan(mine):
                continue
            ratios = [
                f"{mine / find[(section, peer)]:.2f}x {peer} (<= {target})"
                for peer, target in peers
                if (section, peer) in find
            ]
            if not math.isnan(floor):
                ratios.append(f"{mine / floor:.2f}x floor (<= 1.2)")
            lines.append(f"  {section:<8} {tool:<26} " + ", ".join(ratios))
        for peer, target in peers:  # a target below pyarrow's read of the columns: fastbce
            goal = target * find.get((section, peer), math.nan)  # meets it only by reading
            if goal < floor:  # some of them itself (its boolean columns: docs/scoring.md)
                lines.append(
                    f"  {section:<8} {target}x {peer} = {goal:.3f} s is below the floor "
                    f"({floor:.3f} s): within reach only of a faster reader than pyarrow's"
                )
        mine = find.get((section, "fastbce score"), math.nan)
        if (section, LOSS_ONLY) in find:
            ratio = mine / find[(section, LOSS_ONLY)]
            label = "with the report / without (--loss-only)"
            lines.append(f"  {section:<8} {label:<47} {ratio:6.2f}  (<= 1.15)")
    npy = find.get(("output", "fastbce score --output .npy"))
    pqt = find.get(("output", "fastbce score --output .parquet"))
    if npy and pqt:
        lines.append(f"  output   .parquet / .npy time {'':<20} {pqt / npy:6.2f}  (<= 1.5)")
    polars_group = find.get(("group", "Polars"))
    acc = find.get(("accumulator", "LossAccumulator.update, string groups"), math.nan)
    if polars_group and not math.isnan(acc):  # (not with --skip accumulator)
        lines.append(
            f"  in-process accumulator (strings) / Polars by group {acc / polars_group:6.2f}"
            "  (<= 1)"
        )
    return "\n".join(lines)


def missing_peers(skip: set[str]) -> dict[str, str]:
    """The peers not skipped whose module is not installed -> why they are skipped."""
    return {
        peer: f"{module} is not installed ({E2E_INSTALL})"
        for peer, module in E2E_PEERS.items()
        if peer not in skip and importlib.util.find_spec(module) is None
    }


def run_e2e(
    rows: int,
    *,
    groups: int = 50,
    repeat: int = 3,
    row_group_rows: int = 1_000_000,
    data_dir: str | None = None,
    python: str = sys.executable,
    skip: set[str] | None = None,
    json_path: str | None = None,
    quiet: bool = False,
    seed: int = 0,
) -> list[Task]:
    """Makes the data (kept in `data_dir` and reused when given, else in a temporary directory),
    runs every task not in `skip`, prints the table on stdout and returns the tasks."""

    def note(message: str) -> None:
        if not quiet:
            print(message, file=sys.stderr)

    python = os.path.abspath(shutil.which(python) or python)
    skip = set(skip or ())
    for peer, why in missing_peers(skip).items():
        note(f"skipping {peer}: {why}")
        skip.add(peer)
    env = dict(os.environ)
    workdir = data_dir or tempfile.mkdtemp(prefix="fastbce-e2e-")
    os.makedirs(workdir, exist_ok=True)
    try:
        path = os.path.join(workdir, data_name(rows, groups, seed))
        check_room(workdir, rows, path)
        start = time.perf_counter()
        ref = generate(path, rows, row_group_rows, groups, seed)
        note(f"data: {path} ({time.perf_counter() - start:.1f} s)")
        info = machine(python, env)
        plan = [t for t in tasks(path, workdir, python, skip) if t.section not in skip]
        for round_ in range(repeat):  # (every task once a round: a drift falls on all alike)
            for t in plan:
                if t.error is None:
                    run_task(t, ref, env)
                note(f"  {round_ + 1}/{repeat} {t.section} / {t.tool}: {best(t):.3f} s")
        table = report(plan, info, rows, groups, os.path.getsize(path), repeat)
        if json_path:  # (before the table: a reader that goes away must not lose the file)
            from ...io.writers import whole_file

            with whole_file(json_path) as tmp, open(tmp, "w") as f:
                json.dump(
                    {
                        "machine": info,
                        "rows": rows,
                        "groups": groups,
                        "seed": seed,
                        "repeat": repeat,
                        "skipped": sorted(skip),
                        "tasks": [_strict(t) for t in plan],
                    },
                    f,
                    indent=1,
                    allow_nan=False,
                )
            note(f"wrote {json_path}")
        print(table)
    finally:
        if data_dir is None:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            for suffix in (".npy", ".parquet"):
                target = os.path.join(workdir, "loss" + suffix)
                if os.path.exists(target):
                    os.unlink(target)
    return plan


def main(argv: list[str] | None = None) -> int:
    """The benchmark as a script (benchmarks/e2e_score.py); exit status 1 if an answer is wrong
    or a tool failed."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--rows", type=float, default=5e7, help="rows (default 5e7)")
    parser.add_argument("--row-group-rows", type=int, default=1_000_000)
    parser.add_argument("--groups", type=int, default=50, help="distinct countries (default 50)")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each task (the best counts)")
    parser.add_argument(
        "--dir", help="keep the data here (reused when it exists) instead of a temporary directory"
    )
    parser.add_argument("--python", default=sys.executable, help="the interpreter to time")
    parser.add_argument("--skip", default="", help="comma-separated: " + ", ".join(SKIPPABLE))
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    parser.add_argument("--seed", type=int, default=0, help="seed of the data (default 0)")
    args = parser.parse_args(argv)
    if args.seed < 0:
        parser.error(f"--seed must be >= 0; got {args.seed}")
    for name in ("rows", "repeat", "groups", "row_group_rows"):
        if not getattr(args, name) >= 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1; got {getattr(args, name)}")
    skip = {s.strip().lower() for s in args.skip.split(",") if s.strip()}
    unknown = skip - set(SKIPPABLE)
    if unknown:
        parser.error(f"--skip: unknown {sorted(unknown)[0]!r}; choose from {', '.join(SKIPPABLE)}")
    from ..signals import stop_on_signals

    try:
        with stop_on_signals():  # (SIGTERM and SIGHUP clean up as Ctrl-C does)
            plan = run_e2e(
                int(args.rows),
                groups=args.groups,
                repeat=args.repeat,
                row_group_rows=args.row_group_rows,
                data_dir=args.dir,
                python=args.python,
                skip=skip,
                json_path=args.json,
                seed=args.seed,
            )
    except KeyboardInterrupt as e:
        signum = getattr(e, "signum", signal.SIGINT)
        print(f"e2e_score: stopped by {signal.Signals(signum).name}", file=sys.stderr)
        return 128 + signum
    except OSError as e:  # (no room for the data, an unwritable --dir)
        print(f"e2e_score: error: {e}", file=sys.stderr)
        return 1
    return 1 if any(t.error for t in plan) else 0
