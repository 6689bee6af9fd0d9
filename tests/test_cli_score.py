"""``fastbce score`` (SPEC section 4, issue #4) through a subprocess, on files of every format."""

from __future__ import annotations

import io
import json
import math
import os
import struct
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pyarrow as pa  # (the test extra has it: these tests must run, not skip)
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

import fastbce

N = 3000
REL = 1e-12


def score(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "fastbce", "score", *map(str, args)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )


def score_json(*args: str, cwd: Path) -> dict:
    proc = score(*args, "--format", "json", cwd=cwd)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""  # no progress bar when stderr is not a terminal
    return json.loads(proc.stdout)


def expected(y, p, w=None, g=None, **options) -> dict:
    return fastbce.LossAccumulator(**options).update(y, p, w, g).result()


def same(got: dict, want: dict, rel: float = REL) -> None:
    """The CLI's JSON (NaN as null, keys as strings) against the library's result."""

    def close(a, b):
        if b is None or (isinstance(b, float) and math.isnan(b)):
            return a is None
        return a == pytest.approx(b, rel=rel, abs=0.0)

    assert got["rows"] == want["rows"]
    for field in ("sum", "mean", "weighted_mean"):
        assert close(got[field], want[field]), (field, got[field], want[field])

    def text(key):  # a key as JSON writes it (None is "null")
        return next(iter(json.loads(json.dumps({key: 0}))))

    assert set(got["groups"]) == {text(k) for k in want["groups"]}
    for key, value in want["groups"].items():
        g = got["groups"][text(key)]
        assert g["rows"] == value["rows"]
        for field in ("sum", "mean", "weighted_mean"):
            assert close(g[field], value[field]), (key, field)


# --------------------------------------------------------------------------- data


@pytest.fixture(scope="module")
def data() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(4)
    p = rng.random(N).astype(np.float32)
    y = (rng.random(N) < p).astype(np.uint8)
    return {
        "y_true": y,
        "y_pred": p,
        "logit": rng.normal(size=N).astype(np.float32),
        "weight": rng.random(N) * 3.0,
        "group": rng.choice(np.array(["eu", "us", "asia"]), N),
        "animal": np.where(y == 1, "dog", "cat"),
        "klass": np.where(y == 1, 2, 1).astype(np.int64),
        "with_nan": np.where(rng.random(N) < 0.05, np.nan, p.astype(np.float64)),
    }


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory, data: dict[str, np.ndarray]) -> Path:
    root = tmp_path_factory.mktemp("score")
    table = pa.table(data)
    pq.write_table(table, root / "one.parquet", row_group_size=700)
    (root / "parts").mkdir()
    for i, (a, b) in enumerate([(0, 1000), (1000, 1900), (1900, N)]):
        pq.write_table(table.slice(a, b - a), root / "parts" / f"part-{i}.parquet")
    (root / "parts" / "_SUCCESS").write_text("")  # skipped, as Spark writes it
    pacsv.write_csv(table, root / "data.csv")
    np.savez(root / "data.npz", **data)
    np.savez_compressed(root / "compressed.npz", **data)
    for name, column in data.items():
        np.save(root / f"{name}.npy", column)
    return root


def csv_floats(files: Path, column: str) -> np.ndarray:
    """A CSV column as the CLI reads it: text parsed as float64."""
    table = pacsv.read_csv(
        files / "data.csv",
        convert_options=pacsv.ConvertOptions(column_types={column: pa.float64()}),
    )
    return table[column].to_numpy()


# --------------------------------------------------------------------------- formats


INPUTS = {
    "parquet file": ["one.parquet"],
    "parquet directory": ["parts"],
    "parquet glob": ["parts/part-*.parquet"],
    "parquet files": ["parts/part-0.parquet", "parts/part-1.parquet", "parts/part-2.parquet"],
    "npz": ["data.npz"],
    "compressed npz": ["compressed.npz"],
}


@pytest.mark.parametrize("inputs", INPUTS.values(), ids=INPUTS.keys())
def test_formats_give_the_library_numbers(inputs, files, data):
    got = score_json(
        *inputs,
        "--sample-weight",
        "weight",
        "--group-by",
        "group",
        "--batch-rows",
        "500",
        cwd=files,
    )
    same(got, expected(data["y_true"], data["y_pred"], data["weight"], data["group"]))


def test_csv(files, data):
    got = score_json(
        "data.csv",
        "--sample-weight",
        "weight",
        "--group-by",
        "group",
        "--batch-rows",
        "500",
        cwd=files,
    )
    p = csv_floats(files, "y_pred")
    same(got, expected(data["y_true"], p, csv_floats(files, "weight"), data["group"]))


def test_csv_bytes_are_read_by_arrow_not_through_python(files, monkeypatch):
    # Arrow's streaming CSV reader reads the next block ahead on its own IO thread; through a
    # Python file object that thread needs the GIL, and a read still pending when an error ends
    # the process aborted it at interpreter shutdown (exit -6 instead of 1, seen once in CI). The
    # race is timing-dependent; what removes it is that the source handed to Arrow is Arrow's own.
    from fastbce.io.readers import CsvSource

    sources = []
    open_csv = pacsv.open_csv

    def recording(source, *args, **kwargs):
        sources.append(source)
        return open_csv(source, *args, **kwargs)

    monkeypatch.setattr(pacsv, "open_csv", recording)
    reader = CsvSource([str(files / "data.csv")], ["y_true", "y_pred"], ["y_pred"])
    rows = sum(len(b["y_true"]) for _, _, b in reader.batches(1000))
    assert rows == N
    assert sources and all(isinstance(s, pa.NativeFile) for s in sources)
    assert reader.fraction() == 1.0


def test_csv_empty_fields_are_missing_values(tmp_path):
    (tmp_path / "holes.csv").write_text("y_true,y_pred,g\n1,0.9,a\n,0.5,b\n0,,a\n0,0.2,\n")
    got = score_json("holes.csv", "--nan-policy", "omit", "--group-by", "g", cwd=tmp_path)
    y = np.array([1, np.nan, 0, 0])
    p = np.array([0.9, 0.5, np.nan, 0.2])
    same(
        got, expected(y, p, None, np.array(["a", "b", "a", None], dtype=object), nan_policy="omit")
    )
    group_b = {
        k: got["groups"]["b"][k] for k in ("rows", "sum", "mean", "weighted_mean", "omitted")
    }
    assert group_b == {"rows": 0, "sum": 0.0, "mean": None, "weighted_mean": None, "omitted": 1}
    assert got["groups"]["null"]["rows"] == 1  # an empty group field is a missing group


def test_npy_pair_memory_mapped(files, data):
    got = score_json(
        "--y-true",
        "y_true.npy",
        "--y-pred",
        "y_pred.npy",
        "--sample-weight",
        "weight.npy",
        "--group-by",
        "group.npy",
        "--batch-rows",
        "700",
        cwd=files,
    )
    same(got, expected(data["y_true"], data["y_pred"], data["weight"], data["group"]))
    plain = score_json("--y-true", "y_true.npy", "--y-pred", "y_pred.npy", cwd=files)
    same(plain, expected(data["y_true"], data["y_pred"]))
    assert plain["groups"] == {}


def test_npy_names_in_upper_case(files, data, tmp_path):
    """.NPY is an .npy file for every role, --group-by too (the check ignores case)."""
    for name in ("y_true", "y_pred", "group"):
        (tmp_path / f"{name.upper()}.NPY").write_bytes((files / f"{name}.npy").read_bytes())
    got = score_json(
        "--y-true", "Y_TRUE.NPY", "--y-pred", "Y_PRED.NPY", "--group-by", "GROUP.NPY", cwd=tmp_path
    )
    same(got, expected(data["y_true"], data["y_pred"], None, data["group"]))


def test_parquet_suffixes_in_upper_case_in_a_directory(files, tmp_path):
    # (a file named on the command line was matched in any case, one in a directory was not)
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "PART-0.PARQUET").write_bytes((files / "one.parquet").read_bytes())
    (tmp_path / "d" / "part-1.Pq").write_bytes((files / "one.parquet").read_bytes())
    assert score_json("d", cwd=tmp_path)["rows"] == 2 * N


def test_json_has_the_spec_fields(files):
    got = score_json("one.parquet", "--group-by", "group", cwd=files)
    assert isinstance(got["rows"], int) and got["rows"] == N
    for field in ("sum", "mean", "weighted_mean"):
        assert isinstance(got[field], float)
    assert set(got["groups"]) == {"eu", "us", "asia"}
    for value in got["groups"].values():
        assert {"rows", "sum", "mean"} <= set(value)


def test_table_format(files, data):
    proc = score("one.parquet", "--group-by", "group", cwd=files)
    assert proc.returncode == 0 and proc.stderr == ""
    lines = proc.stdout.splitlines()
    assert lines[0].split() == ["rows", str(N)]
    assert lines[2].split()[0] == "mean"
    assert float(lines[2].split()[1]) == pytest.approx(
        fastbce.binary_crossentropy(data["y_true"], data["y_pred"]), rel=1e-5
    )
    header = next(line for line in lines if line.startswith("group"))
    assert header.split()[:3] == ["group", "rows", "log_loss"]
    assert "calibration" in header.split() and "auc" in header.split()
    assert {line.split()[0] for line in lines[lines.index(header) + 1 :]} == {"eu", "us", "asia"}


# --------------------------------------------------------------------------- options


OPTIONS = [
    (["--from-logits", "--y-pred", "logit"], {"from_logits": True}, "logit"),
    (["--epsilon", "0.01"], {"epsilon": 0.01}, "y_pred"),
    (["--label-smoothing", "0.1"], {"label_smoothing": 0.1}, "y_pred"),
    (["--pos-weight", "3"], {"pos_weight": 3.0}, "y_pred"),
    (["--gamma", "2", "--alpha", "0.25"], {"gamma": 2.0, "alpha": 0.25}, "y_pred"),
    (["--gamma", "0.5"], {"gamma": 0.5}, "y_pred"),
    (["--nan-policy", "omit", "--y-pred", "with_nan"], {"nan_policy": "omit"}, "with_nan"),
    (["--y-pred", "with_nan"], {}, "with_nan"),  # propagate: NaN (null in JSON)
    (["--threads", "1"], {"threads": 1}, "y_pred"),
    (["--no-validate", "--y-true", "weight"], {"validate": False}, "y_pred"),
]


@pytest.mark.parametrize(("args", "options", "column"), OPTIONS, ids=lambda v: str(v))
def test_loss_options(args, options, column, files, data):
    got = score_json("one.parquet", "--group-by", "group", *args, cwd=files)
    labels = data["weight"] if "--no-validate" in args else data["y_true"]
    same(got, expected(labels, data[column], None, data["group"], **options))


@pytest.mark.parametrize("inputs", [["one.parquet"], ["data.csv"], ["data.npz"]])
def test_positive_label_strings(inputs, files, data):
    got = score_json(*inputs, "--y-true", "animal", "--positive-label", "dog", cwd=files)
    p = csv_floats(files, "y_pred") if inputs == ["data.csv"] else data["y_pred"]
    same(got, expected(data["y_true"], p))


@pytest.mark.parametrize("inputs", [["one.parquet"], ["data.csv"], ["data.npz"]])
def test_positive_label_integers(inputs, files, data):
    got = score_json(*inputs, "--y-true", "klass", "--positive-label", "2", cwd=files)
    p = csv_floats(files, "y_pred") if inputs == ["data.csv"] else data["y_pred"]
    same(got, expected(fastbce.encode_labels(data["klass"], 2), p))


def test_positive_label_with_npy(files, data):
    got = score_json(
        "--y-true", "animal.npy", "--y-pred", "y_pred.npy", "--positive-label", "dog", cwd=files
    )
    same(got, expected(data["y_true"], data["y_pred"]))


# --------------------------------------------------------------------------- per-row output


@pytest.mark.parametrize("suffix", [".parquet", ".npy"])
@pytest.mark.parametrize("inputs", [["parts"], ["data.npz"], ["--y-true", "y_true.npy"]])
def test_output_is_reduction_none_in_input_order(suffix, inputs, files, data, tmp_path):
    out = tmp_path / f"loss{suffix}"
    extra = (
        ["--y-pred", "y_pred.npy", "--sample-weight", "weight.npy"]
        if "--y-true" in inputs
        else ["--sample-weight", "weight"]
    )
    proc = score(*inputs, *extra, "--batch-rows", "333", "--output", out, cwd=files)
    assert proc.returncode == 0, proc.stderr
    loss = np.load(out) if suffix == ".npy" else pq.read_table(out)["loss"].to_numpy()
    want = fastbce.binary_crossentropy(
        data["y_true"], data["y_pred"], sample_weight=data["weight"], reduction="none"
    )
    assert loss.dtype == want.dtype == np.float32
    np.testing.assert_array_equal(loss, want)
    if suffix == ".parquet":
        assert pq.read_schema(out).names == ["loss"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [out.name]  # no temporary left


def test_output_from_csv_and_with_nan(files, data, tmp_path):
    out = tmp_path / "loss.npy"
    proc = score(
        "data.csv",
        "--y-pred",
        "with_nan",
        "--nan-policy",
        "omit",
        "--output",
        out,
        "--batch-rows",
        "100",
        cwd=files,
    )
    assert proc.returncode == 0, proc.stderr
    want = fastbce.binary_crossentropy(
        data["y_true"], csv_floats(files, "with_nan"), nan_policy="omit", reduction="none"
    )
    assert np.load(out).dtype == np.float64  # the CLI reads CSV numbers as float64
    np.testing.assert_array_equal(np.load(out), want)
    assert np.isnan(np.load(out)).sum() == np.isnan(data["with_nan"]).sum()


def test_output_file_mode_is_that_of_a_normal_file(files, tmp_path):
    out = tmp_path / "loss.npy"
    assert score("one.parquet", "--output", out, cwd=files).returncode == 0
    umask = os.umask(0)
    os.umask(umask)
    assert out.stat().st_mode & 0o777 == 0o666 & ~umask


# --------------------------------------------------------------------------- errors


@pytest.fixture(scope="module")
def bad(files: Path, data: dict[str, np.ndarray]) -> Path:
    root = files / "bad"
    root.mkdir()
    y = data["y_true"].copy()
    y[2500] = 2  # late: after several batches have been scored and written
    pq.write_table(pa.table({"y_true": y, "y_pred": data["y_pred"]}), root / "late.parquet")
    np.save(root / "late.npy", y)
    (root / "corrupt.parquet").write_bytes((files / "one.parquet").read_bytes()[:2000])
    (root / "corrupt.npz").write_bytes(b"not a zip file" * 10)
    whole = (files / "y_pred.npy").read_bytes()
    (root / "truncated.npy").write_bytes(whole[: len(whole) // 2])
    (root / "header.npy").write_bytes(b"\x93NUMPY garbage")
    pq.write_table(
        pa.table({"y_true": pa.array([1, 0], pa.timestamp("s")), "y_pred": [0.5, 0.5]}),
        root / "timestamps.parquet",
    )
    np.savez(root / "complex.npz", y_true=np.array([1j, 0j]), y_pred=np.array([0.5, 0.5]))
    (root / "bad.csv").write_text("y_true,y_pred\n1,0.5\n0,oops\n")
    (root / "notes.txt").write_text("hello")
    # a compressed .npz whose deflate stream is broken at its start (read with the header) and
    # in its middle (read with a batch): zlib's errors, not zipfile's
    for name, where in (("deflate_head.npz", 0.0), ("deflate_body.npz", 0.5)):
        np.savez_compressed(root / name, y_true=data["y_true"], y_pred=data["y_pred"])
        raw = bytearray((root / name).read_bytes())
        member = zipfile.ZipFile(root / name).getinfo("y_pred.npy")
        h = member.header_offset
        name_len, extra_len = struct.unpack("<HH", raw[h + 26 : h + 30])
        raw[h + 30 + name_len + extra_len + int(where * member.compress_size)] ^= 0xFF
        (root / name).write_bytes(bytes(raw))
    # .npy headers np.load refuses: a negative shape, and an array per element
    with open(root / "negative.npy", "wb") as f:
        np.lib.format.write_array_header_1_0(
            f, {"descr": "<f8", "fortran_order": False, "shape": (-5,)}
        )
        f.write(np.zeros(8).tobytes())
    with open(root / "subarray.npy", "wb") as f:  # (np.save would make it shape (4, 2))
        header = {"descr": ("<f8", (2,)), "fortran_order": False, "shape": (4,)}
        np.lib.format.write_array_header_1_0(f, header)
        f.write(np.zeros(8).tobytes())
    return root


DATA_ERRORS = [
    (["nothere.parquet"], "nothere.parquet: no such file or directory"),
    (["nothere/*.parquet"], "no files match"),
    (["--y-true", "y_true.npy", "--y-pred", "nothere.npy"], "nothere.npy: no such file"),
    (
        ["one.parquet", "--y-pred", "score"],
        "one.parquet: no column 'score'; the columns are: y_true, y_pred, logit, weight",
    ),
    (["data.csv", "--group-by", "region"], "data.csv: no column 'region'; the columns are: y_true"),
    (["data.npz", "--sample-weight", "w"], "data.npz: no column 'w'; the columns are: y_true"),
    (["bad/corrupt.parquet"], "bad/corrupt.parquet: cannot read it as parquet"),
    (["bad/corrupt.npz"], "bad/corrupt.npz: cannot read it as .npz"),
    (["bad/deflate_head.npz"], "bad/deflate_head.npz[y_pred]: cannot read it as .npy"),
    (["bad/deflate_body.npz"], "bad/deflate_body.npz: array 'y_pred': "),
    (["--y-true", "y_true.npy", "--y-pred", "bad/negative.npy"], "shape (-5,) is negative"),
    (["--y-true", "y_true.npy", "--y-pred", "bad/subarray.npy"], "subarray.npy: holds arrays"),
    (["--y-true", "y_true.npy", "--y-pred", "bad/truncated.npy"], "the file is truncated"),
    (["--y-true", "y_true.npy", "--y-pred", "bad/header.npy"], "cannot read it as .npy"),
    (["--y-true", "y_true.npy", "--y-pred", "data.csv.npy"], "data.csv.npy: no such file"),
    (["bad/bad.csv"], "bad/bad.csv: cannot read it as csv"),
    (
        ["bad/late.parquet"],
        "bad/late.parquet: y_true (column 'y_true') must be in [0, 1]; got 2 at row 2500",
    ),
    (
        ["--y-true", "bad/late.npy", "--y-pred", "y_pred.npy"],
        "y_true (bad/late.npy) must be in [0, 1]; got 2 at row 2500",
    ),
    (["one.parquet", "--y-true", "animal"], "column 'animal' holds strings ('cat', 'dog')"),
    (["data.npz", "--y-true", "animal"], "pass --positive-label VALUE"),
    (
        ["one.parquet", "--y-true", "animal", "--positive-label", "dgo"],
        "--positive-label 'dgo' does not occur in column 'animal'; it holds 'cat', 'dog'",
    ),
    (
        ["one.parquet", "--y-true", "klass", "--positive-label", "two"],
        "--positive-label 'two' is not an integer",
    ),
    (["bad/timestamps.parquet"], "has type timestamp[ms], which cannot be a label"),
    (["bad/complex.npz"], "has dtype complex128, which cannot be a label"),
    (["one.parquet", "--y-pred", "klass"], "column 'klass' has type int64; predictions"),
    (["one.parquet", "--y-pred", "logit"], "y_pred (column 'logit') must be a probability"),
    (
        ["one.parquet", "--y-pred", "with_nan", "--nan-policy", "raise"],
        "--nan-policy raise: y_pred (column 'with_nan') is NaN at row 17",
    ),
]


@pytest.mark.parametrize(("args", "message"), DATA_ERRORS, ids=[m for _, m in DATA_ERRORS])
def test_data_errors_exit_1_with_one_line(args, message, files, bad):
    proc = score(*args, cwd=files)
    assert proc.returncode == 1, proc.stderr
    assert proc.stdout == ""
    assert "Traceback" not in proc.stderr
    assert proc.stderr.count("\n") == 1, proc.stderr  # one line
    assert proc.stderr.startswith("fastbce score: error: ")
    assert message in proc.stderr


USAGE_ERRORS = [
    ([], "no INPUT"),
    (["--y-true", "y_true.npy"], "no INPUT"),  # --y-pred is still the column name y_pred
    (["one.parquet", "--output", "loss.csv"], "must end in .parquet or .npy"),
    (["one.parquet", "--epsilon", "0.7"], "--epsilon must be in (0, 0.5)"),
    (["one.parquet", "--alpha", "2"], "--alpha must be None or in [0, 1]"),
    (["one.parquet", "--threads", "0"], "--threads must be None or an int >= 1"),
    (["one.parquet", "--batch-rows", "0"], "--batch-rows must be >= 1"),
    (["one.parquet", "--pos-weight", "-1"], "--pos-weight must be finite and non-negative"),
    (["one.parquet", "data.csv"], "the inputs mix formats (csv, parquet)"),
    (["y_true.npy"], "give them as --y-true a.npy --y-pred b.npy"),
    (["bad/notes.txt"], "unknown format"),
    (["one.parquet", "--gamma", "lots"], "invalid float value: 'lots'"),
    (["one.parquet", "--nan-policy", "drop"], "invalid choice: 'drop'"),
    (["one.parquet", "--frobnicate"], "unrecognized arguments: --frobnicate"),
    (["one.parquet", "--scheduler", ""], "--scheduler needs an address"),  # (an unset $ADDR)
]


@pytest.mark.parametrize(("args", "message"), USAGE_ERRORS, ids=[m for _, m in USAGE_ERRORS])
def test_usage_errors_exit_2(args, message, files, bad):
    proc = score(*args, cwd=files)
    assert proc.returncode == 2, proc.stderr
    assert proc.stdout == ""
    # one line, argparse's own errors included (it printed the usage block first, and blamed an
    # unknown option on "fastbce")
    (line,) = proc.stderr.splitlines()
    assert line.startswith("fastbce score: error: ")
    assert message in line


@pytest.mark.parametrize("suffix", [".parquet", ".npy"])
@pytest.mark.parametrize(
    "args",
    [
        ["bad/late.parquet"],  # fails at row 2500, after batches have been written
        ["one.parquet", "--y-true", "animal", "--positive-label", "dgo"],  # fails at the end
        ["--y-true", "bad/late.npy", "--y-pred", "y_pred.npy"],
    ],
    ids=["label out of range", "positive label never seen", "npy"],
)
def test_a_failed_run_leaves_no_output(suffix, args, files, bad, tmp_path):
    out = tmp_path / f"loss{suffix}"
    proc = score(*args, "--batch-rows", "500", "--output", out, cwd=files)
    assert proc.returncode == 1, proc.stderr
    assert list(tmp_path.iterdir()) == []  # neither the file nor a temporary one

    out.write_bytes(b"the previous results")  # an existing output is left as it was
    proc = score(*args, "--batch-rows", "500", "--output", out, cwd=files)
    assert proc.returncode == 1
    assert out.read_bytes() == b"the previous results"
    assert list(tmp_path.iterdir()) == [out]


def test_output_into_a_missing_directory(files, tmp_path):
    proc = score("one.parquet", "--output", tmp_path / "no" / "loss.npy", cwd=files)
    assert proc.returncode == 1
    assert "does not exist" in proc.stderr and "Traceback" not in proc.stderr


# --------------------------------------------------------------------------- progress


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_bar_only_on_a_terminal_and_erased_at_the_end():
    from fastbce.cli.output import Progress

    term = FakeTerminal()
    bar = Progress(stream=term)
    bar.update(0.1)  # too early (runs under a second show nothing)
    assert term.getvalue() == ""
    bar.start -= 5.0
    bar.update(0.5)
    shown = term.getvalue()
    assert "50.0%" in shown and "5 s left" in shown and "\n" not in shown
    bar.close()
    assert term.getvalue().endswith("\r")
    assert term.getvalue()[len(shown) :].strip() == ""

    piped = io.StringIO()  # not a terminal
    bar = Progress(stream=piped)
    bar.start -= 5.0
    bar.update(0.5)
    bar.close()
    assert piped.getvalue() == ""

    quiet = Progress(enabled=False, stream=FakeTerminal())  # --format json
    quiet.start -= 5.0
    quiet.update(0.5)
    assert quiet.stream.getvalue() == ""


# --------------------------------------------------------------------------- bounded memory


PEAK_BOUND_MIB = 300
MEASURE = (
    "import resource, subprocess, sys\n"
    "code = subprocess.run(sys.argv[1:]).returncode\n"
    "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss // 1024)\n"
    "sys.exit(code)\n"
)


@pytest.mark.slow
@pytest.mark.skipif(
    os.environ.get("FASTBCE_SANITIZED") == "1",
    reason="RSS is meaningless under AddressSanitizer (quarantine, shadow memory)",
)
def test_streaming_keeps_memory_bounded(tmp_path):
    """Scores (and writes the per-row loss of) an input larger than the memory bound: 40 million
    rows, 343 MiB of columns (float64 predictions, uint8 labels; a 321 MiB file) and 305 MiB of
    output. The peak resident memory of the scoring process stays under the bound."""
    rows, chunk = 40_000_000, 4_000_000
    path = tmp_path / "big.parquet"
    schema = pa.schema([("y_true", pa.uint8()), ("y_pred", pa.float64())])
    rng = np.random.default_rng(0)
    total = fastbce.LossAccumulator()
    with pq.ParquetWriter(path, schema, compression="none") as writer:
        for _ in range(rows // chunk):
            p = rng.random(chunk)
            y = (rng.random(chunk) < p).astype(np.uint8)
            total.update(y, p)
            writer.write_table(
                pa.table({"y_true": y, "y_pred": p}, schema=schema), row_group_size=1 << 20
            )
    input_mb = rows * (8 + 1) / 2**20
    assert input_mb > PEAK_BOUND_MIB

    out = tmp_path / "loss.npy"
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            MEASURE,
            sys.executable,
            "-m",
            "fastbce",
            "score",
            path,
            "--output",
            out,
            "--format",
            "json",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    *result, peak_mb = proc.stdout.strip().splitlines()
    got = json.loads("\n".join(result))
    assert got["rows"] == rows
    assert got["mean"] == pytest.approx(total.result()["mean"], rel=1e-12)
    loss = np.load(out, mmap_mode="r")
    assert loss.shape == (rows,) and loss.dtype == np.float64
    print(
        f"input {input_mb:.0f} MiB in memory, {path.stat().st_size / 2**20:.0f} MiB on disk; "
        f"output {loss.nbytes / 2**20:.0f} MiB; peak RSS {peak_mb} MiB"
    )
    assert int(peak_mb) < PEAK_BOUND_MIB


@pytest.fixture(scope="module")
def many_groups(tmp_path_factory: pytest.TempPathFactory) -> dict[int, tuple[Path, dict]]:
    """The e2e benchmark's table (1M-row row groups) at 1e7 rows, `country` with 65536 and
    200000 text values: (path, float64 reference) by group count."""
    from fastbce.cli.bench.e2e import generate

    folder = tmp_path_factory.mktemp("many-groups")
    out = {}
    for groups in (65536, 200_000):
        path = folder / f"clicks-{groups}.parquet"
        out[groups] = path, generate(str(path), 10_000_000, 1_000_000, groups)
    return out


@pytest.mark.slow
@pytest.mark.skipif(
    os.environ.get("FASTBCE_SANITIZED") == "1",
    reason="RSS is meaningless under AddressSanitizer (quarantine, shadow memory)",
)
@pytest.mark.parametrize("groups", [65536, 200_000])
@pytest.mark.parametrize("loss_only", [False, True])
def test_score_of_many_groups_keeps_memory_bounded(many_groups, groups, loss_only):
    """Grouped by 65536 or 200000 countries, the report and --loss-only peak under the bound.
    65536 groups are the most with AUC histograms; their report's chunks each copied every
    group's sums (366 MB); 200000 groups' loss-only pass kept blocks x groups partials of
    32 MB (302 MB on 5e7 rows)."""
    path, reference = many_groups[groups]
    args = ["--y-true", "clicked", "--y-pred", "logit", "--from-logits", "--format", "json"]
    args += ["--group-by", "country"] + (["--loss-only"] if loss_only else [])
    command = [sys.executable, "-m", "fastbce", "score", str(path), *args]
    proc = subprocess.run(
        [sys.executable, "-c", MEASURE, *command], capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr
    *result, peak_mb = proc.stdout.strip().splitlines()
    got = json.loads("\n".join(result))
    assert got["rows"] == reference["rows"] and len(got["groups"]) == groups
    assert got["mean"] == pytest.approx(reference["mean"], rel=1e-9)
    for key in ("g0000000", f"g{groups - 1:07d}"):
        assert got["groups"][key]["rows"] == reference["groups"][key]["rows"]
        # (float32 losses: each within a few ulp of the float64 reference)
        assert got["groups"][key]["sum"] == pytest.approx(reference["groups"][key]["sum"], rel=1e-6)
    print(f"{groups} groups{' --loss-only' if loss_only else ''}: peak RSS {peak_mb} MiB")
    assert int(peak_mb) < PEAK_BOUND_MIB


@pytest.mark.parametrize(
    ("variable", "value", "command"),
    [
        ("FASTBCE_FORCE_TARGET", "no-such-tier", ["info"]),
        ("FASTBCE_LINE_FETCH", "sometimes", ["info"]),
        ("FASTBCE_FORCE_TARGET", "no-such-tier", ["score", "one.parquet"]),
    ],
)
def test_a_refused_environment_variable_is_a_one_line_usage_error(variable, value, command, files):
    env = {**os.environ, variable: value}
    proc = subprocess.run(
        [sys.executable, "-m", "fastbce", *command],
        cwd=files,
        env=env,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2, proc.stderr
    (line,) = proc.stderr.splitlines()
    assert line.startswith(f"fastbce {command[0]}: error: {variable}: "), line
    assert value in line
