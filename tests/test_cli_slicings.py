"""fastbce score's slicings (docs/report.md): --group-by repeatable ("slices"), --group-by A,B
crossed (keys joined by ", "), Hive partition keys as group-by columns, in JSON and the table;
against fastbce.evaluate. (The same through --scheduler: tests/test_dask.py.)"""

from __future__ import annotations

import json
import math
import pickle
import subprocess
import sys

import numpy as np
import pytest

import fastbce

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")

KEYS = ("rows", "sum", "log_loss", "auc", "calibration", "ece", "omitted")


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(11)
    n = 4000
    x = rng.normal(size=n).astype(np.float32)
    y = (rng.random(n) < 1 / (1 + np.exp(-x))).astype(np.uint8)
    country = rng.choice(np.array(["de", "fr", "it"]), n)
    device = rng.choice(np.array(["mobile", "desktop"]), n)
    day = rng.integers(1, 4, n)
    return y, x, country, device, day


@pytest.fixture(scope="module")
def table(data, tmp_path_factory):
    y, x, country, device, day = data
    path = tmp_path_factory.mktemp("slices") / "ctr.parquet"
    pq.write_table(
        pa.table({"y_true": y, "logit": x, "country": country, "device": device, "day": day}),
        path,
        row_group_size=1000,
    )
    return path


@pytest.fixture(scope="module")
def hive(data, tmp_path_factory):
    """dir/country=XX/part-0.parquet without a country column, rows in file order."""
    y, x, country, device, _ = data
    root = tmp_path_factory.mktemp("hive")
    order = []
    for c in sorted(set(country.tolist())):
        rows = np.flatnonzero(country == c)
        (root / f"country={c}").mkdir()
        pq.write_table(
            pa.table({"y_true": y[rows], "logit": x[rows], "device": device[rows]}),
            root / f"country={c}" / "part-0.parquet",
        )
        order.append(rows)
    return root, np.concatenate(order)


def score(path, *args):
    cmd = [sys.executable, "-m", "fastbce", "score", str(path), "--y-pred", "logit"]
    cmd += ["--from-logits", *args]
    return subprocess.run(cmd, capture_output=True, text=True, check=False)


def _crossed(*columns):
    return np.array([", ".join(map(str, values)) for values in zip(*columns, strict=True)])


def _assert_groups(got: dict, want: dict) -> None:
    assert list(got) == [str(k) if not isinstance(k, str) else k for k in want]
    for key, scope in want.items():
        mine = got[str(key)]
        for k in KEYS:
            assert mine[k] == pytest.approx(scope[k], rel=1e-12, nan_ok=True), (key, k)


def test_several_group_by_give_slices(table, data):
    y, x, country, device, day = data
    proc = score(
        table, "--group-by", "country", "--group-by", "device,country", "--group-by", "day",
        "--format", "json",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    got = json.loads(proc.stdout)
    assert got["groups"] == {}
    assert list(got["slices"]) == ["country", "device,country", "day"]
    want = fastbce.evaluate(
        y,
        x,
        from_logits=True,
        groups={"country": country, "device,country": _crossed(device, country), "day": day},
    )
    for name in want["slices"]:
        _assert_groups(got["slices"][name], want["slices"][name])
    assert "desktop, de" in got["slices"]["device,country"]
    assert got["rows"] == len(y)


def test_one_crossed_group_by_gives_groups(table, data):
    y, x, country, device, _ = data
    proc = score(table, "--group-by", "country, device", "--format", "json")
    assert proc.returncode == 0, proc.stderr
    got = json.loads(proc.stdout)
    assert "slices" not in got
    want = fastbce.evaluate(y, x, from_logits=True, groups=_crossed(country, device))
    _assert_groups(got["groups"], want["groups"])
    assert len(got["groups"]) == 6


def test_the_table_shows_each_slicing(table):
    proc = score(table, "--group-by", "country", "--group-by", "country,device")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    heads = [line.split()[0] for line in lines if line.split()[:2][1:] == ["rows"]]
    assert heads == ["country", "country,device"]
    assert any(line.startswith("fr, mobile ") for line in lines)


def test_json_of_slices_is_what_json_dumps_gives(table):
    """The streamed JSON is json.dumps(..., indent=2) of the result, byte for byte."""
    proc = score(table, "--group-by", "country", "--group-by", "day,device", "--format", "json")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == json.dumps(json.loads(proc.stdout), indent=2) + "\n"


def test_json_of_many_groups_is_json_dumps(tmp_path):
    """Groups past one text of json_rows (1,024 groups) and one block of the report (8,192): the
    streamed JSON is still json.dumps(..., indent=2) of the result, every group in it."""
    rng = np.random.default_rng(5)
    n, groups = 30_000, 9_000
    path = tmp_path / "many.parquet"
    user = np.array([f"u{i:05d}" for i in range(groups)])[rng.integers(0, groups, n)]
    x = rng.normal(size=n).astype(np.float32)
    y = (rng.random(n) < 0.4).astype(np.uint8)
    pq.write_table(pa.table({"y_true": y, "logit": x, "user": user}), path)
    proc = score(path, "--group-by", "user", "--format", "json")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == json.dumps(json.loads(proc.stdout), indent=2) + "\n"
    assert len(json.loads(proc.stdout)["groups"]) == len(set(user.tolist()))


def _python_json(values: np.ndarray) -> list[str]:
    return [repr(v) if math.isfinite(v) else "null" for v in values.tolist()]


def _rows_json(columns: list[np.ndarray], names: list[str] | None = None) -> list[str]:
    """Each row's numbers from _core.json_rows, one "<name>:a;b;..." line a row."""
    from fastbce import _core

    names = names if names is not None else [""] * len(columns[0])
    pieces = [""] + [":"] + [";"] * (len(columns) - 1) + ["|"]
    return _core.json_rows(pieces, names, columns).split("|,\n")


def test_json_numbers_are_python_repr():
    """The printer's numbers (_core.json_rows, C++) are json.dumps' text of each float64:
    repr() for finite ones (where it switches to exponents, subnormals, the extremes, -0.0),
    null for NaN and infinities; on random bit patterns and random magnitudes."""
    info = np.finfo(np.float64)
    special = [0.0, -0.0, 1.0, -2.5, 0.1, 1e-4, 1e-5, 9.999e-5, 1e15, 1e16, 9999999999999998.0]
    special += [123456789012345678.0, 0.30000000000000004, 1e22, 1e100, -1.5e300, 5e-324]
    special += [1e-310, float(info.tiny), float(info.max), -float(info.max), 2.0**52, 2.0**53]
    special += [math.nan, math.inf, -math.inf, 1 / 3, 2 / 3, 1e-7]
    rng = np.random.default_rng(4)
    magnitudes = rng.random(50_000) * 10.0 ** rng.integers(-320, 308, 50_000)
    for values in (
        np.array(special),
        rng.integers(0, 2**64, 200_000, dtype=np.uint64).view(np.float64),
        magnitudes,
        np.round(rng.random(20_000) * 1000, 3),
        rng.random(20_000).astype(np.float32).astype(np.float64),
    ):
        expected = [":" + text for text in _python_json(values)]
        expected[-1] += "|"
        assert _rows_json([values]) == expected


def test_json_rows_lays_out_names_pieces_and_integers():
    """json_rows: pieces around each row's name and values, rows joined by ",\n", integers in
    decimal (int64 and uint64 extremes), no text for no rows; bad columns are refused."""
    from fastbce import _core

    ints = np.array([0, -1, 2**63 - 1, -(2**63)], dtype=np.int64)
    big = np.array([0, 1, 2**64 - 1, 2**63], dtype=np.uint64)
    floats = np.array([0.5, np.nan, -0.0, 1e-5])
    got = _core.json_rows(["<", "=", ",", ",", ">"], ["a", "b", "c", "d"], [ints, big, floats])
    assert got == "<a=0,0,0.5>,\n<b=-1,1,null>,\n" + (
        f"<c={2**63 - 1},{2**64 - 1},-0.0>,\n<d={-(2**63)},{2**63},1e-05>"
    )
    assert _core.json_rows(["", "", ""], [], [np.empty(0)]) == ""
    # arrays from another process (fastbce.dask's results): equal dtypes, not NumPy's instances
    sent = pickle.loads(pickle.dumps([ints[:2], floats[:2]]))
    assert sent[0].dtype is not np.dtype(np.int64)
    assert _core.json_rows(["", "=", ",", ""], ["a", "b"], sent) == "a=0,0.5,\nb=-1,null"
    for pieces, columns in (
        (["", ""], [np.zeros(1)]),  # (one piece short)
        (["", "", ""], [np.zeros(2)]),  # (a value more than the names)
        (["", "", ""], [np.zeros(1, dtype=np.float32)]),
        (["", "", ""], [np.zeros((1, 1))]),
    ):
        with pytest.raises((ValueError, RuntimeError)):
            _core.json_rows(pieces, ["x"], columns)


def test_group_by_errors(table):
    for bad, says in (
        ("country,,device", "no empty name"),
        ("country,country", "named twice"),
    ):
        proc = score(table, "--group-by", bad)
        assert proc.returncode == 2 and says in proc.stderr, proc.stderr
    proc = score(table, "--group-by", "country", "--group-by", " country ")
    assert proc.returncode == 2 and "given twice" in proc.stderr
    proc = score(table, "--group-by", "country,nope")
    assert proc.returncode == 1 and "no column 'nope'" in proc.stderr


def test_hive_partition_keys_are_group_by_columns(hive, data):
    root, order = hive
    y, x, country, device, _ = data
    proc = score(root, "--group-by", "country", "--group-by", "country,device", "--format", "json")
    assert proc.returncode == 0, proc.stderr
    got = json.loads(proc.stdout)
    want = fastbce.evaluate(
        y[order],
        x[order],
        from_logits=True,
        groups={"country": country[order], "country,device": _crossed(country, device)[order]},
    )
    for name in want["slices"]:
        _assert_groups(got["slices"][name], want["slices"][name])


def test_hive_keys_only_when_asked(hive):
    root, _ = hive
    proc = score(root, "--format", "json")  # (no --group-by: no country)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["groups"] == {}
    proc = score(root, "--y-true", "country")  # (a Hive key is a group-by column only)
    assert proc.returncode == 1 and "no column 'country'" in proc.stderr


def test_a_file_column_wins_over_a_hive_key(tmp_path):
    """A column in the file and a partition key of the same name: the file's values count."""
    (tmp_path / "country=xx").mkdir()
    y = np.array([1, 0, 1, 0], np.uint8)
    x = np.array([0.5, -1.0, 2.0, 0.1], np.float32)
    pq.write_table(
        pa.table({"y_true": y, "logit": x, "country": ["de", "de", "fr", "fr"]}),
        tmp_path / "country=xx" / "part-0.parquet",
    )
    proc = score(tmp_path, "--group-by", "country", "--format", "json")
    assert proc.returncode == 0, proc.stderr
    assert list(json.loads(proc.stdout)["groups"]) == ["de", "fr"]


def test_a_hive_key_of_some_files_and_a_column_of_others(tmp_path):
    for value, with_column in (("de", True), ("fr", False)):
        (tmp_path / f"country={value}").mkdir()
        columns = {"y_true": np.array([1], np.uint8), "logit": np.array([0.5], np.float32)}
        if with_column:
            columns["country"] = ["de"]
        pq.write_table(pa.table(columns), tmp_path / f"country={value}" / "part-0.parquet")
    proc = score(tmp_path, "--group-by", "country")
    assert proc.returncode == 1
    assert "in some files and only a Hive partition key" in proc.stderr


def test_hive_default_partition_is_missing(tmp_path):
    for value in ("de", "__HIVE_DEFAULT_PARTITION__"):
        (tmp_path / f"country={value}").mkdir()
        pq.write_table(
            pa.table({"y_true": np.array([1, 0], np.uint8), "logit": np.zeros(2, np.float32)}),
            tmp_path / f"country={value}" / "part-0.parquet",
        )
    proc = score(tmp_path, "--group-by", "country", "--format", "json")
    assert proc.returncode == 0, proc.stderr
    assert list(json.loads(proc.stdout)["groups"]) == ["de", "null"]
