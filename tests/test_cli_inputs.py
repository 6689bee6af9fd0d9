"""fastbce score's inputs and JSON keys where they were wrong or unclear: a `**` glob that read
files twice, group keys that JSON printed alike (the text "null" and the missing group, the int 1
and the text "1" of two files, an infinite float), a CSV column in two roles, CSV texts such as
"NA" in text columns, a bad byte in a CSV row, nested or duplicated columns; and fastbce bench's
--sizes, --json and --plot, checked before anything runs."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

import fastbce
from fastbce.cli.score import to_json

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")


def fastbce_cli(*args, cwd=None):
    cmd = [sys.executable, "-m", "fastbce", *map(str, args)]
    return subprocess.run(cmd, capture_output=True, text=True, check=False, cwd=cwd, timeout=300)


def score_json(*args):
    proc = fastbce_cli("score", *args, "--format", "json")
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def one_line_error(proc, status, text):
    assert proc.returncode == status, proc.stderr
    assert proc.stderr.strip().count("\n") == 0 and text in proc.stderr, proc.stderr
    assert proc.stdout == ""


def test_a_doublestar_glob_reads_each_file_once(tmp_path):
    (tmp_path / "data" / "sub").mkdir(parents=True)
    table = pa.table({"y_true": [1, 0], "y_pred": [0.9, 0.2]})
    pq.write_table(table, tmp_path / "data" / "part-0.parquet")
    pq.write_table(table, tmp_path / "data" / "sub" / "part-1.parquet")
    (tmp_path / "data" / "_SUCCESS").write_text("")
    whole = score_json(tmp_path / "data", "--loss-only")
    assert whole["rows"] == 4
    for pattern in ("data/**", "data/*", "data/**/*.parquet"):
        got = score_json(tmp_path / pattern, "--loss-only", "--output", tmp_path / "loss.npy")
        assert got == whole, pattern
        assert np.load(tmp_path / "loss.npy").shape == (4,), pattern


def test_json_keys_of_groups_printed_alike_stay_apart(tmp_path):
    path = tmp_path / "g.parquet"
    groups = ["null", None, "a", "null"]
    pq.write_table(
        pa.table({"y_true": [1, 0, 1, 0], "y_pred": [0.9, 0.2, 0.7, 0.4], "g": groups}), path
    )
    for options in ([], ["--loss-only"]):
        got = score_json(path, "--group-by", "g", *options)
        assert {k: v["rows"] for k, v in got["groups"].items()} == {
            "a": 1,
            "null": 2,
            "(missing)": 1,
        }
        # several slicings: the same under "slices"
        got = score_json(path, "--group-by", "g", "--group-by", "y_true", *options)
        assert set(got["slices"]["g"]) == {"a", "null", "(missing)"}
    # the library's result through to_json names them as the command line does
    acc = fastbce.LossAccumulator()
    acc.update(np.array([1.0, 0, 1, 0]), np.array([0.9, 0.2, 0.7, 0.4]), groups=groups)
    assert set(to_json(acc.result())["groups"]) == {"a", "null", "(missing)"}
    # without a text "null" the missing group is "null", as documented
    pq.write_table(pa.table({"y_true": [1, 0], "y_pred": [0.9, 0.2], "g": ["a", None]}), path)
    assert set(score_json(path, "--group-by", "g")["groups"]) == {"a", "null"}


def test_missing_group_beside_texts_null_and_missing(tmp_path):
    """Groups that are the texts "null" and "(missing)": the missing group takes the next name
    no group has, "((missing))", in the JSON and in the table (two groups under one JSON key
    were one to a JSON reader)."""
    path = tmp_path / "g.parquet"
    groups = ["null", None, "(missing)", "a", "((missing)"]
    y, p = [1, 0, 1, 0, 1], [0.9, 0.2, 0.7, 0.4, 0.6]
    pq.write_table(pa.table({"y_true": y, "y_pred": p, "g": groups}), path)
    want = {"null", "(missing)", "a", "((missing)", "((missing))"}
    for options in ([], ["--loss-only"]):
        got = score_json(path, "--group-by", "g", *options)
        assert set(got["groups"]) == want and all(g["rows"] == 1 for g in got["groups"].values())
        table = fastbce_cli("score", path, "--group-by", "g", *options)
        assert table.returncode == 0, table.stderr
        names = [line.split()[0] for line in table.stdout.splitlines()[-5:]]
        assert sorted(names) == sorted(want)
    failed = fastbce_cli("score", path, "--group-by", "g", "--fail-if", "rows>0")
    assert failed.returncode == 3 and "in group ((missing)) (1)" in failed.stderr
    acc = fastbce.LossAccumulator()
    acc.update(np.array(y, dtype=float), np.array(p), groups=groups)
    assert set(to_json(acc.result())["groups"]) == want
    # a text "(missing)" without a text "null": the missing group is "null" in JSON, and
    # "((missing))" in the table
    pq.write_table(pa.table({"y_true": y[:2], "y_pred": p[:2], "g": ["(missing)", None]}), path)
    assert set(score_json(path, "--group-by", "g")["groups"]) == {"(missing)", "null"}
    table = fastbce_cli("score", path, "--group-by", "g", "--loss-only").stdout
    assert [line.split()[0] for line in table.splitlines()[-2:]] == ["(missing)", "((missing))"]


def test_crossed_keys_quote_values_with_commas(tmp_path):
    """--group-by a,b joins a row's values with ", "; a value holding a comma or a double quote
    is quoted as CSV quotes a field, so ("x", "y, z") and ("x, y", "z") are two groups, the same
    from parquet (Arrow) and from .npy columns (NumPy)."""
    a = ["x", "x, y", "x", 'say "hi"', "x"]
    b = ["q", "z", "y, z", "z", "q"]
    y, p = [1, 0, 1, 0, 1], [0.9, 0.2, 0.7, 0.4, 0.6]
    want = {"x, q": 2, '"x, y", z': 1, 'x, "y, z"': 1, '"say ""hi""", z': 1}
    path = tmp_path / "c.parquet"
    table = pa.table({"y_true": y, "y_pred": p, "a": a, "b": pa.array(b).dictionary_encode()})
    pq.write_table(table, path)
    got = score_json(path, "--group-by", "a,b", "--loss-only")
    assert {k: v["rows"] for k, v in got["groups"].items()} == want
    columns = {
        "y_true": np.array(y, float),
        "y_pred": np.array(p),
        "a": np.array(a),
        "b": np.array(b),
    }
    for name, values in columns.items():
        np.save(tmp_path / f"{name}.npy", values)
    npy = [f"--{r.replace('_', '-')}" for r in ("y_true", "y_pred")]
    got = score_json(
        npy[0], tmp_path / "y_true.npy", npy[1], tmp_path / "y_pred.npy",
        "--group-by", f"{tmp_path / 'a.npy'},{tmp_path / 'b.npy'}", "--loss-only",
    )  # fmt: skip
    assert {k: v["rows"] for k, v in got["groups"].items()} == want


def test_infinite_float_group_keys_are_valid_json(tmp_path):
    path = tmp_path / "inf.parquet"
    g = [np.inf, 1.0, -np.inf, 2.0]
    pq.write_table(pa.table({"y_true": [1, 0, 1, 0], "y_pred": [0.9, 0.2, 0.7, 0.4], "g": g}), path)
    for options in ([], ["--loss-only"]):
        got = score_json(path, "--group-by", "g", *options)
        assert set(got["groups"]) == {"inf", "-inf", "1.0", "2.0"}


def test_a_group_column_of_text_in_one_file_and_numbers_in_another_is_an_error(tmp_path):
    pq.write_table(
        pa.table({"y_true": [1, 0], "y_pred": [0.9, 0.2], "g": [1, 2]}), tmp_path / "a.parquet"
    )
    pq.write_table(
        pa.table({"y_true": [1, 0], "y_pred": [0.9, 0.2], "g": ["1", "x"]}), tmp_path / "b.parquet"
    )
    proc = fastbce_cli("score", tmp_path, "--group-by", "g")
    one_line_error(proc, 1, "column 'g' holds text in")


def test_text_a_file_stores_as_a_dictionary_is_text(tmp_path):
    # (a pandas categorical or a dictionary_encode()d column: the file's Arrow schema says
    # dictionary<string>, which is text as a plain string column is)
    def write(name, g):
        table = pa.table({"y_true": [1, 0], "y_pred": [0.9, 0.2], "g": g})
        pq.write_table(table, tmp_path / name)

    write("a.parquet", pa.array(["de", "fr"]).dictionary_encode())
    write("b.parquet", pa.array(["de", "us"]))
    for options in ([], ["--loss-only"]):
        got = score_json(tmp_path, "--group-by", "g", *options)
        assert {k: v["rows"] for k, v in got["groups"].items()} == {"de": 2, "fr": 1, "us": 1}
        crossed = score_json(tmp_path, "--group-by", "g,y_true", *options)
        assert {k: v["rows"] for k, v in crossed["groups"].items()} == {
            "de, 1": 2,
            "fr, 0": 1,
            "us, 0": 1,
        }
    # and the int 1 of one file and the text "1" of another stay an error, not two groups "1"
    write("b.parquet", pa.array([1, 2]))
    write("a.parquet", pa.array(["1", "2"]).dictionary_encode())
    proc = fastbce_cli("score", tmp_path, "--group-by", "g")
    one_line_error(proc, 1, "column 'g' holds text in")


def test_a_csv_column_in_two_roles_scores_as_from_parquet(tmp_path):
    csv = tmp_path / "t.csv"
    csv.write_text("y_true,y_pred,w\n1,0.9,2\n0,0.2,1\n1,0.6,2\n")
    pq.write_table(
        pa.table({"y_true": [1, 0, 1], "y_pred": [0.9, 0.2, 0.6], "w": [2.0, 1.0, 2.0]}),
        tmp_path / "t.parquet",
    )
    for options in (
        ["--sample-weight", "w", "--group-by", "w"],
        ["--group-by", "y_pred"],
        ["--sample-weight", "y_true"],
    ):
        from_csv = score_json(csv, *options)
        from_parquet = score_json(tmp_path / "t.parquet", *options)
        assert from_csv["weighted_mean"] == pytest.approx(from_parquet["weighted_mean"], rel=1e-15)
        assert set(from_csv["groups"]) == set(from_parquet["groups"]), options


def test_csv_texts_are_values_in_text_columns_and_missing_in_number_columns(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("y_true,y_pred,country\n1,0.9,NA\n0,0.2,US\n1,NA,null\n0,0.3,\n")
    got = score_json(path, "--group-by", "country", "--nan-policy", "omit")
    assert got["omitted"] == 1  # the prediction "NA" is a missing number
    assert {k: v["rows"] for k, v in got["groups"].items()} == {
        "NA": 1,
        "US": 1,
        "null": 0,
        "(missing)": 1,
    }
    labels = tmp_path / "l.csv"
    labels.write_text("animal,y_pred\nNA,0.9\ncat,0.2\n,0.5\n")
    got = score_json(labels, "--y-true", "animal", "--positive-label", "NA", "--nan-policy", "omit")
    assert got["rows"] == 2 and got["omitted"] == 1 and got["base_rate"] == 0.5


def test_a_bad_byte_in_a_csv_row_is_reported_where_it_is(tmp_path):
    path = tmp_path / "t.csv"
    path.write_bytes(b"y_true,y_pred,city\n1,0.9,Z\xfcrich\n0,0.2,Bern\n")
    proc = fastbce_cli("score", path, "--group-by", "city")
    one_line_error(proc, 1, "Row #2")
    assert "header" not in proc.stderr
    # a quoted header name may hold a line break; a bad byte in the header is still named so
    path.write_bytes(b'y_true,"y\npred"\n1,0.9\n')
    assert score_json(path, "--y-pred", "y\npred")["rows"] == 1
    path.write_bytes(b"y_true,y_pr\xfcd\n1,0.9\n")
    one_line_error(fastbce_cli("score", path), 1, "the header is not UTF-8 text")


def test_nested_group_columns_are_a_one_line_error(tmp_path):
    path = tmp_path / "n.parquet"
    table = pa.table(
        {"y_true": [1, 0], "y_pred": [0.9, 0.2], "tags": [[1], [2]], "st": [{"a": 1}, {"a": 2}]}
    )
    pq.write_table(table, path)
    for column, kind in (("tags", "list<"), ("st", "struct<")):
        proc = fastbce_cli("score", path, "--group-by", column, "--output", tmp_path / "o.npy")
        one_line_error(proc, 1, f"column {column!r} holds {kind}")
        assert sorted(p.name for p in tmp_path.iterdir()) == ["n.parquet"]
    acc = fastbce.LossAccumulator()
    with pytest.raises(TypeError, match=r"groups: cannot group by values of type list<"):
        acc.update(np.array([1.0, 0.0]), np.array([0.9, 0.2]), groups=table.column("tags"))
    assert acc.result()["rows"] == 0


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_a_column_named_twice_is_a_one_line_error(tmp_path, fmt):
    path = tmp_path / f"dup.{fmt}"
    if fmt == "parquet":
        columns = [pa.array([1, 0]), pa.array([0.9, 0.2]), pa.array([0.1, 0.3])]
        pq.write_table(pa.Table.from_arrays(columns, names=["y_true", "y_pred", "y_pred"]), path)
    else:
        path.write_text("y_true,y_pred,y_pred\n1,0.9,0.1\n0,0.2,0.3\n")
    one_line_error(fastbce_cli("score", path), 1, "2 columns are named 'y_pred'")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--sizes", "1e400"], "a size must be finite"),
        (["--sizes", ","], "no size in ','"),
        (["--e2e", "--rows", "1e400"], "a size must be finite"),
        (["--json", "{tmp}/no_such_dir/b.json"], "no such folder"),
        (["--plot", "{tmp}/no_such_dir/b.png"], "no such folder"),
        (["--plot", "{tmp}/b.txt"], "--plot {tmp}/b.txt: the name must end in .png"),
        (["--json", "{tmp}"], "is a folder"),
    ],
)
def test_bench_output_paths_and_sizes_are_checked_before_anything_runs(tmp_path, args, message):
    args = [a.format(tmp=tmp_path) for a in args]
    proc = fastbce_cli("bench", "--sizes", "1e3", "--peers", "none", "--repeats", "1", *args)
    assert proc.returncode == 2, proc.stderr
    assert message.format(tmp=tmp_path) in proc.stderr
    assert proc.stdout == ""
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_bench_sizes_beyond_memory_end_in_one_line(tmp_path):
    # (2^47 float64 labels, a PiB: every allocator refuses it at once)
    proc = fastbce_cli("bench", "--sizes", str(2**47), "--peers", "none", "--variants", "logits")
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith("fastbce bench: error: out of memory")
    assert "Traceback" not in proc.stderr
