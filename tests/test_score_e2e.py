"""``fastbce score`` end to end (issue 12): group labels coded without Python loops, row groups
read ahead in order and in bounded memory, the parquet output's encoding, the output never one of
the inputs, signals and stale temporary files, and what the command imports at start-up."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa  # (the test extra has it)
import pyarrow.parquet as pq
import pytest

import fastbce

REL = 1e-12


def score(*args, cwd: Path, **kwargs) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "fastbce", "score", *map(str, args)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        **kwargs,
    )


def score_json(*args, cwd: Path, target: str | None = None) -> dict:
    env = dict(os.environ, FASTBCE_FORCE_TARGET=target) if target else None
    proc = score(*args, "--format", "json", cwd=cwd, env=env)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def reference(y: np.ndarray, logit: np.ndarray, groups: np.ndarray) -> tuple[float, dict]:
    """float64 mean log loss of logits, overall and per group (NumPy only)."""
    x = logit.astype(np.float64)
    loss = np.maximum(x, 0.0) - x * y + np.log1p(np.exp(-np.abs(x)))
    keys, codes = np.unique(groups, return_inverse=True)
    sums = np.bincount(codes, weights=loss, minlength=len(keys))
    counts = np.bincount(codes, minlength=len(keys))
    means = {k: s / c for k, s, c in zip(keys.tolist(), sums, counts, strict=True)}
    return float(loss.mean()), means


# --------------------------------------------------------------------------- 1. group codes


@pytest.fixture(scope="module")
def many_groups(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """Two files, small row groups, 5000 string groups (so every row group has its own
    dictionary, in its own order) and some nulls."""
    root = tmp_path_factory.mktemp("groups")
    rng = np.random.default_rng(12)
    n = 60_000
    logit = rng.normal(size=n).astype(np.float32)
    y = rng.random(n) < 0.4
    names = np.array([f"k{i:05d}" for i in range(5000)], dtype=object)
    groups = names[rng.integers(0, 5000, n)]
    groups[rng.random(n) < 0.01] = None
    table = pa.table({"logit": logit, "clicked": y, "g": pa.array(groups, pa.string())})
    (root / "d").mkdir()
    pq.write_table(table.slice(0, 25_000), root / "d" / "a.parquet", row_group_size=4000)
    pq.write_table(table.slice(25_000), root / "d" / "b.parquet", row_group_size=7000)
    keyed = np.where(groups == None, "null", groups).astype(str)  # noqa: E711 (elementwise)
    mean, per_group = reference(y, logit, keyed)
    return root, {"mean": mean, "groups": per_group, "logit": logit, "y": y, "g": groups}


def test_parquet_string_groups_match_float64(many_groups):
    root, want = many_groups
    got = score_json(
        "d",
        "--y-true",
        "clicked",
        "--y-pred",
        "logit",
        "--from-logits",
        "--group-by",
        "g",
        "--threads",
        "2",
        cwd=root,
    )
    assert got["rows"] == 60_000
    assert got["mean"] == pytest.approx(want["mean"], rel=1e-6)
    assert set(got["groups"]) == set(want["groups"])
    for key, mean in want["groups"].items():
        assert got["groups"][key]["mean"] == pytest.approx(mean, rel=1e-6), key


def test_parquet_groups_equal_the_library(many_groups, simd_target):
    root, want = many_groups
    acc = fastbce.LossAccumulator(from_logits=True).update(
        want["y"], want["logit"], groups=want["g"]
    )
    got = score_json(
        "d",
        "--y-true",
        "clicked",
        "--y-pred",
        "logit",
        "--from-logits",
        "--group-by",
        "g",
        cwd=root,
        target=simd_target,
    )
    lib = acc.result()
    assert got["sum"] == pytest.approx(lib["sum"], rel=REL)
    for key, value in lib["groups"].items():
        assert got["groups"]["null" if key is None else key]["sum"] == pytest.approx(
            value["sum"], rel=REL
        )


def _labels_of_every_kind(rng: np.random.Generator, n: int) -> dict[str, object]:
    codes = rng.integers(0, 7, n)
    words = np.array(["de", "fr", "us", "jp", "br", "in", "za"])
    strings = words[codes]
    with_missing = strings.astype(object)
    with_missing[::11] = None
    with_missing[5::13] = np.nan
    chunked = pa.chunked_array([pa.array(strings[: n // 3]), pa.array(strings[n // 3 :][::-1])])
    return {
        "int64 compact": codes,
        "int32 negative": (codes - 3).astype(np.int32),
        "int64 spread": codes.astype(np.int64) * 10**12 - 5,
        "uint64 huge": codes.astype(np.uint64) + np.uint64(2**63),
        "bool": codes % 2 == 0,
        "unicode": strings,
        "object with missing": with_missing,
        "arrow strings": pa.array(strings),
        "arrow dictionary": pa.array(strings).dictionary_encode(),
        "arrow chunked": chunked,
        "arrow with nulls": pa.array(with_missing.tolist(), pa.string(), from_pandas=True),
        "floats with nan": np.where(codes == 3, np.nan, codes * 0.5),
    }


def _plain_keys(groups) -> list:
    """One Python label per row, as the library's keys should be (missing -> None)."""
    if isinstance(groups, (pa.Array, pa.ChunkedArray)):
        if isinstance(groups, pa.ChunkedArray):
            groups = groups.combine_chunks()
        if pa.types.is_dictionary(groups.type):
            groups = groups.dictionary_decode()
        values = groups.to_pylist()
    else:
        values = np.asarray(groups).tolist()
    return [None if v is None or (isinstance(v, float) and v != v) else v for v in values]


@pytest.mark.parametrize("kind", list(_labels_of_every_kind(np.random.default_rng(0), 10)))
def test_accumulator_groups_of_every_kind(kind, rng, simd_target):
    n = 3000
    groups = _labels_of_every_kind(rng, n)[kind]
    p = rng.random(n).astype(np.float32)
    y = (rng.random(n) < p).astype(np.uint8)
    keys = _plain_keys(groups)
    got = fastbce.LossAccumulator().update(y, p, groups=groups).result()["groups"]
    assert set(got) == set(keys)
    for key in set(keys):
        rows = np.array([k == key and type(k) is type(key) for k in keys])
        want = fastbce.binary_crossentropy(y[rows], p[rows], reduction="sum")
        assert got[key]["rows"] == rows.sum()
        assert got[key]["sum"] == pytest.approx(want, rel=1e-6)
        assert type(next(k for k in got if k == key)) is type(key)  # int keys stay int, ...


@pytest.mark.parametrize("kind", ["int64 compact", "int64 spread", "unicode", "arrow strings"])
def test_no_sort_for_integers_and_strings(kind, rng, monkeypatch):
    """Integers and strings are coded by a table or by hashing (Arrow), never by np.unique's
    sort (the 11.9 s of 5e7 int64 codes in the issue)."""
    groups = _labels_of_every_kind(rng, 1000)[kind]

    def no_sort(*args, **kwargs):
        raise AssertionError("np.unique was called")

    monkeypatch.setattr(np, "unique", no_sort)
    acc = fastbce.LossAccumulator()
    acc.update(np.zeros(1000), np.full(1000, 0.5), groups=groups)
    assert acc.result()["rows"] == 1000


def test_batches_of_different_kinds_share_keys(rng):
    acc = fastbce.LossAccumulator()
    p = np.full(4, 0.5)
    acc.update(np.zeros(4), p, groups=np.array([1, 2, 2, 1]))
    acc.update(np.zeros(4), p, groups=pa.array([2, 3, 3, 3]))
    acc.update(np.zeros(4), p, groups=np.array([10**15, 1, 1, 1]))
    rows = {k: v["rows"] for k, v in acc.result()["groups"].items()}
    assert rows == {1: 5, 2: 3, 3: 3, 10**15: 1}


@pytest.mark.parametrize("kind", ["int64 compact", "unicode", "arrow dictionary", "bool"])
def test_a_failed_batch_adds_no_group(kind, rng):
    acc = fastbce.LossAccumulator()
    acc.update(np.zeros(2), np.full(2, 0.5), groups=np.array([100, 101]))
    before = acc.result()
    groups = _labels_of_every_kind(rng, 50)[kind]
    y = np.zeros(50)
    y[49] = 2.0  # out of range: the batch raises
    with pytest.raises(ValueError, match="y_true must be in"):
        acc.update(y, np.full(50, 0.5), groups=groups)
    assert acc.result() == before
    acc.update(np.zeros(50), np.full(50, 0.5), groups=groups)  # and the index still works
    assert sum(v["rows"] for v in acc.result()["groups"].values()) == 52


# --------------------------------------------------------------------------- 2. read ahead


def test_read_ahead_keeps_input_order_with_tiny_budgets(tmp_path):
    """Row groups decoded on threads, some over the budget (streamed), come out in order."""
    from fastbce.io.prefetch import RowGroupReader

    files, metas, want = [], [], []
    for i, sizes in enumerate([[100, 5000, 7], [3000], [1, 1, 2000]]):
        path = tmp_path / f"p{i}.parquet"
        with pq.ParquetWriter(path, pa.schema([("x", pa.int64()), ("g", pa.string())])) as w:
            for size in sizes:
                x = np.arange(len(want), len(want) + size)
                w.write_table(pa.table({"x": x, "g": [f"v{v % 3}" for v in x.tolist()]}))
                want += x.tolist()
        files.append(str(path))
        metas.append(pq.read_metadata(path))
    for budget in (1, 20_000, 1 << 30):
        reader = RowGroupReader(files, metas, ["x", "g"], ["g"], threads=3, budget_bytes=budget)
        got, starts = [], {}
        for path, start, batch in reader.batches(700):
            assert len(batch["x"]) <= 700
            assert pa.types.is_dictionary(batch["g"].type)
            assert start == starts.get(path, 0)
            starts[path] = start + len(batch["x"])
            got += batch["x"].to_pylist()
        assert got == want
        assert reader.done_rows == len(want)


def test_read_ahead_error_names_the_file(tmp_path):
    good = tmp_path / "a.parquet"
    pq.write_table(pa.table({"y_true": [0.0] * 10, "y_pred": [0.5] * 10}), good)
    bad = tmp_path / "b.parquet"
    data = good.read_bytes()
    bad.write_bytes(data[:4] + b"\x00" * (len(data) - 12) + data[-8:])  # footer kept, pages not
    proc = score(good, bad, cwd=tmp_path)
    assert proc.returncode == 1
    assert "b.parquet" in proc.stderr and "Traceback" not in proc.stderr


# --------------------------------------------------------------------------- 3. output encoding


def test_parquet_output_is_plain_uncompressed_floats(many_groups, tmp_path):
    root, want = many_groups
    out = tmp_path / "loss.parquet"
    proc = score(
        "d", "--y-true", "clicked", "--y-pred", "logit", "--from-logits", "--output", out, cwd=root
    )
    assert proc.returncode == 0, proc.stderr
    meta = pq.read_metadata(out)
    for i in range(meta.num_row_groups):
        column = meta.row_group(i).column(0)
        assert column.compression == "UNCOMPRESSED"
        assert not column.has_dictionary_page
        assert "PLAIN" in column.encodings
    assert out.stat().st_size <= 1.2 * 4 * 60_000 + 4096
    loss = pq.read_table(out).column("loss").to_numpy()
    np.testing.assert_array_equal(
        loss,
        fastbce.binary_crossentropy(want["y"], want["logit"], from_logits=True, reduction="none"),
    )


# --------------------------------------------------------------------------- 4. never lose a file


@pytest.fixture
def table_dir(tmp_path: Path) -> Path:
    rng = np.random.default_rng(3)
    p = rng.random(5000)
    pq.write_table(
        pa.table({"y_true": rng.random(5000) < p, "y_pred": p}), tmp_path / "data.parquet"
    )
    np.save(tmp_path / "p.npy", p)
    np.save(tmp_path / "y.npy", (rng.random(5000) < p).astype(np.uint8))
    return tmp_path


def _snapshot(directory: Path) -> dict:
    return {
        p.name: (p.read_bytes(), p.stat().st_mtime_ns)
        for p in sorted(directory.iterdir())
        if not p.is_dir()
    } | {"entries": sorted(p.name for p in directory.iterdir())}


@pytest.mark.parametrize(
    "how",
    [
        "same path",
        "dot path",
        "absolute",
        "symlink",
        "hard link",
        "in a directory input",
        "npy input",
    ],
)
def test_output_that_is_an_input_is_refused(how, table_dir):
    args = ["data.parquet"]
    if how == "same path":
        out = "data.parquet"
    elif how == "dot path":
        out = "./sub/../data.parquet"
        (table_dir / "sub").mkdir()
    elif how == "absolute":
        out = str(table_dir / "data.parquet")
    elif how == "symlink":
        os.symlink(table_dir / "data.parquet", table_dir / "link.parquet")
        out = "link.parquet"
    elif how == "hard link":
        os.link(table_dir / "data.parquet", table_dir / "hard.parquet")
        out = "hard.parquet"
    elif how == "in a directory input":
        args, out = ["."], "data.parquet"
    else:
        args, out = ["--y-true", "y.npy", "--y-pred", "p.npy"], "p.npy"
    before = _snapshot(table_dir)
    proc = score(*args, "--output", out, cwd=table_dir)
    assert proc.returncode == 2, proc.stderr
    assert "--output" in proc.stderr and "input" in proc.stderr
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert _snapshot(table_dir) == before  # nothing touched, no temporary file


@pytest.fixture(scope="module")
def slow_input(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Enough rows, scored in small batches, for a run to take a few seconds."""
    root = tmp_path_factory.mktemp("slow")
    rng = np.random.default_rng(5)
    n = 2_000_000
    p = rng.random(n).astype(np.float32)
    pq.write_table(
        pa.table({"y_true": (rng.random(n) < p), "y_pred": p}),
        root / "big.parquet",
        row_group_size=50_000,
    )
    return root


def _default_signals() -> None:
    # the run starts as from a shell: a test runner started under nohup would hand on an ignored
    # SIGHUP, which the run rightly keeps ignoring (test_an_ignored_sighup_is_kept_ignored)
    for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(s, signal.SIG_DFL)


def _start_and_wait_for_temp(
    slow_input: Path, out: Path, preexec: Any = _default_signals
) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "fastbce",
            "score",
            slow_input / "big.parquet",
            "--output",
            out,
            "--batch-rows",
            "100",
            "--threads",
            "1",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=preexec,
    )
    deadline = time.monotonic() + 60
    while not _temps(out.parent) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(0.2)  # some batches written
    assert proc.poll() is None, "the run ended before it could be stopped"
    assert _temps(out.parent)
    return proc


def _temps(directory: Path) -> list[str]:
    return [p.name for p in directory.iterdir() if p.name.startswith(".")]


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT])
@pytest.mark.parametrize("suffix", [".npy", ".parquet"])
def test_a_signal_leaves_no_output_and_no_temporary_file(signum, suffix, slow_input, tmp_path):
    out = tmp_path / f"loss{suffix}"
    proc = _start_and_wait_for_temp(slow_input, out)
    proc.send_signal(signum)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signum, stderr
    assert "Traceback" not in stderr
    assert list(tmp_path.iterdir()) == []


def test_an_ignored_sighup_is_kept_ignored(slow_input, tmp_path):
    # under nohup a closed terminal must not stop the job: the run completes and writes its output
    def ignore_sighup() -> None:
        _default_signals()
        signal.signal(signal.SIGHUP, signal.SIG_IGN)

    out = tmp_path / "loss.npy"
    proc = _start_and_wait_for_temp(slow_input, out, preexec=ignore_sighup)
    proc.send_signal(signal.SIGHUP)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 0, stderr
    assert [p.name for p in tmp_path.iterdir()] == ["loss.npy"]


def test_a_stale_temporary_file_of_a_killed_run_is_removed(slow_input, tmp_path):
    out = tmp_path / "loss.npy"
    proc = _start_and_wait_for_temp(slow_input, out)
    proc.kill()
    proc.communicate()
    stale = _temps(tmp_path)
    assert len(stale) == 1  # SIGKILL cannot be caught: the temporary file stays
    alive = tmp_path / stale[0].replace(str(proc.pid), str(os.getpid()))  # a live run's: kept
    alive.write_bytes(b"in progress")
    other = tmp_path / ".loss.npy.something-else.tmp"  # not ours: kept
    other.write_bytes(b"x")
    small = tmp_path / "small.parquet"
    pq.write_table(pa.table({"y_true": [0.0, 1.0], "y_pred": [0.2, 0.7]}), small)
    proc = score(small, "--output", out, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [alive.name, other.name, "loss.npy", "small.parquet"]
    )
    assert np.load(out).shape == (2,)


def test_an_output_that_is_a_symlink_writes_its_target(table_dir):
    # as a shell's ">" or numpy.save: the file the link names is replaced, the link stays
    (table_dir / "results").mkdir()
    target = table_dir / "results" / "loss.npy"
    np.save(target, np.zeros(3))
    os.symlink(target, table_dir / "link.npy")
    os.symlink(table_dir / "results" / "new.npy", table_dir / "dangling.npy")
    for link, real in (("link.npy", target), ("dangling.npy", table_dir / "results" / "new.npy")):
        proc = score("data.parquet", "--output", link, cwd=table_dir)
        assert proc.returncode == 0, proc.stderr
        assert (table_dir / link).is_symlink() and np.load(real).shape == (5000,)
    assert sorted(p.name for p in (table_dir / "results").iterdir()) == ["loss.npy", "new.npy"]
    assert not [p for p in table_dir.iterdir() if p.name.startswith(".")]


def test_long_output_names(table_dir):
    # a name up to the file system's 255 bytes works (its temporary's name is shortened, and a
    # killed run's is still found); a longer one is refused before the data is read
    from fastbce.io.writers import temp_path

    name = "é" * 124 + ".npy"  # 252 bytes
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    stale = Path(temp_path(str(table_dir / name), pid=int(dead.stdout)))
    assert len(stale.name.encode()) <= 255
    stale.write_bytes(b"left by a killed run")
    proc = score("data.parquet", "--output", name, cwd=table_dir)
    assert proc.returncode == 0, proc.stderr
    assert np.load(table_dir / name).shape == (5000,) and not stale.exists()
    before = _snapshot(table_dir)
    proc = score("data.parquet", "--output", "a" * 252 + ".npy", cwd=table_dir)
    assert proc.returncode == 1 and "longer than 255 bytes" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr and _snapshot(table_dir) == before


def test_output_mode_follows_the_umask(table_dir):
    out = table_dir / "loss.parquet"
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            "import os, sys; os.umask(0o027); from fastbce.cli import main; "
            "sys.exit(main(sys.argv[1:]))",
            "score",
            "data.parquet",
            "--output",
            out,
        ],
        cwd=table_dir,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    assert out.stat().st_mode & 0o777 == 0o640


# --------------------------------------------------------------------------- 5. start-up


def _imported(*args: str, cwd: Path) -> set[str]:
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "fastbce", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    names = set()
    for line in proc.stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            names.add(line.rsplit("|", 1)[1].strip())
    return names


HEAVY = (
    "pyarrow",
    "pandas",
    "dask",
    "distributed",
    "polars",
    "duckdb",
    "torch",
    "tensorflow",
    "jax",
    "matplotlib",
)


def test_help_imports_no_data_library(tmp_path):
    names = _imported("score", "--help", cwd=tmp_path)
    assert not {n for n in names if n.split(".")[0] in (*HEAVY, "numpy")}
    assert not {n for n in names if n.startswith("fastbce.cli.bench")}


def test_small_file_imports_only_what_it_needs(table_dir):
    names = _imported("score", "data.parquet", cwd=table_dir)
    assert "pyarrow.parquet" in names
    heavy = {n.split(".")[0] for n in names} & (set(HEAVY) - {"pyarrow"})
    assert not heavy
    assert not {n for n in names if n.startswith("fastbce.cli.bench")}
    # (.npz's zipfile and a long output name's hashlib: 6 ms of start-up a parquet run needs not)
    assert not names & {"zipfile", "hashlib"}


@pytest.mark.parametrize("extra", [[], ["--loss-only"], ["--sample-weight", "w"]])
def test_columns_without_nulls_need_no_arrow_compute(tmp_path, extra):
    # (bool labels, float predictions and weights, text groups read as a dictionary: each is a
    # view or an unpacked bitmap; pyarrow.compute's import is 25 ms of every run's start-up)
    rng = np.random.default_rng(5)
    n = 3000
    table = {
        "y_true": rng.random(n) < 0.4,
        "y_pred": rng.random(n).astype(np.float32),
        "w": rng.random(n).astype(np.float32),
        "country": rng.choice(["de", "fr", "us"], n),
    }
    pq.write_table(pa.table(table), tmp_path / "g.parquet")
    names = _imported("score", "g.parquet", "--group-by", "country", *extra, cwd=tmp_path)
    assert "pyarrow.parquet" in names
    assert "pyarrow.compute" not in names


# ------------------------------------------------------------- printing, a group at a time


@pytest.mark.parametrize(
    "groups",
    [
        None,
        np.array(["b", "a", "b", "c"]),
        np.array([3, 1, 3, 2]),
        np.array(["x", None, "x", np.nan], dtype=object),
    ],
    ids=["no groups", "strings", "integers", "missing"],
)
def test_streamed_json_is_what_json_dumps_gives(groups):
    import io
    from types import SimpleNamespace

    from fastbce.cli.score import _print_result, to_json

    acc = fastbce.LossAccumulator()
    p = np.array([0.2, 0.7, np.nan, 0.4])
    acc.update(np.array([0.0, 1.0, 1.0, 0.0]), p, groups=groups)
    job = SimpleNamespace(args=SimpleNamespace(format="json"), slicings=[("g", ("g",))])
    out = io.StringIO()
    _print_result(acc, job, out)
    assert out.getvalue() == json.dumps(to_json(acc.result()), indent=2, allow_nan=False) + "\n"


def test_text_groups_stored_as_plain_values_are_read_as_strings(tmp_path):
    """A column whose writer fell back from a dictionary to plain values (many distinct values)
    is read as strings and hashed; one stored as a dictionary is read as indices."""
    from fastbce.io import ParquetSource

    n = 20_000
    table = pa.table(
        {"y": np.zeros(n), "few": ["a", "b"] * (n // 2), "many": [f"k{i}" for i in range(n)]}
    )
    pq.write_table(table, tmp_path / "t.parquet", dictionary_pagesize_limit=1024)
    source = ParquetSource([str(tmp_path / "t.parquet")], ["y", "few", "many"], ["few", "many"])
    assert source.dictionary == ["few"]
    got = score_json(
        tmp_path / "t.parquet", "--y-true", "y", "--y-pred", "y", "--group-by", "many", cwd=tmp_path
    )
    assert len(got["groups"]) == n
