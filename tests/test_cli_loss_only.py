"""fastbce score --loss-only: only rows, sum, mean and weighted_mean (overall and per group) from
the plain loss pass, equal to the full report's; --output still works; options that need the
report are refused. Also LossSums (its accumulator) against LossAccumulator in process."""

from __future__ import annotations

import json
import math
import pickle
import subprocess
import sys

import numpy as np
import pytest

import fastbce
from fastbce._loss_sums import LossSums
from fastbce.cli.report import LOSS_ONLY_KEYS

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")

KEYS = set(LOSS_ONLY_KEYS)


@pytest.fixture(scope="module")
def table(tmp_path_factory):
    rng = np.random.default_rng(5)
    n = 30_000
    x = (rng.normal(size=n) - 0.5).astype(np.float32)
    y = rng.random(n) < 1 / (1 + np.exp(-x))
    w = rng.uniform(0.5, 2.0, n).astype(np.float32)
    g = rng.choice(np.array(["de", "fr", "it", "es"]), n)
    d = rng.choice(np.array(["mobile", "web"]), n)
    path = tmp_path_factory.mktemp("loss_only") / "ctr.parquet"
    pq.write_table(
        pa.table({"y_true": y, "logit": x, "w": w, "country": g, "device": d}),
        path,
        row_group_size=7_000,
    )
    return path, y, x, w, g


def score(path, *args):
    cmd = [sys.executable, "-m", "fastbce", "score", str(path), "--y-pred", "logit", *args]
    return subprocess.run(cmd, capture_output=True, text=True, check=False)


def _json(proc):
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


@pytest.mark.parametrize(
    "extra",
    [
        [],
        ["--sample-weight", "w"],
        ["--logit-offset", "-0.25"],
        ["--batch-rows", "5000", "--sample-weight", "w"],
    ],
)
def test_json_keys_and_values_equal_the_full_reports(table, extra):
    path = table[0]
    args = ["--from-logits", "--group-by", "country", "--format", "json", *extra]
    full = _json(score(path, *args))
    lean = _json(score(path, *args, "--loss-only"))
    assert set(lean) == KEYS | {"groups"}
    assert list(lean["groups"]) == list(full["groups"]) == ["de", "es", "fr", "it"]
    for scope, want in [(lean, full), *((lean["groups"][k], v) for k, v in full["groups"].items())]:
        assert set(scope) - {"groups"} == KEYS
        for key in KEYS:
            assert scope[key] == pytest.approx(want[key], rel=1e-12, abs=0), key


def test_several_slicings_and_the_table(table):
    path = table[0]
    args = ["--from-logits", "--group-by", "country", "--group-by", "country,device"]
    full = _json(score(path, *args, "--format", "json"))
    lean = _json(score(path, *args, "--format", "json", "--loss-only"))
    assert lean["groups"] == {} and list(lean["slices"]) == ["country", "country,device"]
    for name, groups in full["slices"].items():
        assert list(lean["slices"][name]) == list(groups)
        for k, v in groups.items():
            assert lean["slices"][name][k]["sum"] == pytest.approx(v["sum"], rel=1e-12)
    proc = score(path, *args, "--loss-only")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert [line.split()[0] for line in lines[:4]] == list(LOSS_ONLY_KEYS)
    header = next(line for line in lines if line.startswith("country "))
    assert header.split() == ["country", *LOSS_ONLY_KEYS]
    assert "auc" not in proc.stdout and "log_loss" not in proc.stdout


def test_output_is_the_same_per_row_loss(table, tmp_path):
    path = table[0]
    base = ["--from-logits", "--sample-weight", "w", "--group-by", "country", "--format", "json"]
    full = _json(score(path, *base, "--output", str(tmp_path / "full.npy")))
    lean = _json(score(path, *base, "--loss-only", "--output", str(tmp_path / "lean.npy")))
    assert lean["sum"] == pytest.approx(full["sum"], rel=1e-12)
    a, b = np.load(tmp_path / "full.npy"), np.load(tmp_path / "lean.npy")
    assert a.dtype == b.dtype == np.float32 and a.shape == (30_000,)
    np.testing.assert_array_equal(a, b)
    _json(score(path, *base, "--loss-only", "--output", str(tmp_path / "lean.parquet")))
    column = pq.read_table(tmp_path / "lean.parquet").column("loss").to_numpy()
    np.testing.assert_array_equal(column, a)


def test_fail_if_on_its_keys(table):
    path = table[0]
    base = ["--from-logits", "--group-by", "country", "--loss-only"]
    proc = score(path, *base, "--fail-if", "mean>0.1")
    assert proc.returncode == 3
    assert "mean>0.1: overall" in proc.stderr and "in group de" in proc.stderr
    assert score(path, *base, "--fail-if", "rows<1").returncode == 0


@pytest.mark.parametrize(
    "args, message",
    [
        (["--top-losses", "3"], "--top-losses needs the evaluation report: drop --loss-only"),
        (["--ignore-label", "9"], "--ignore-label needs the evaluation report"),
        (["--plot", "p.png"], "--plot needs the evaluation report"),
        (
            ["--top-losses", "1", "--plot", "p.png"],
            "--top-losses, --plot need the evaluation report",
        ),
        (["--fail-if", "auc<0.6"], "'auc' needs the evaluation report; with --loss-only the keys"),
    ],
)
def test_options_that_need_the_report_are_refused(table, args, message, tmp_path):
    proc = score(table[0], "--from-logits", "--loss-only", *args)
    assert proc.returncode == 2
    assert message in proc.stderr
    assert proc.stdout == ""


def test_help_names_it():
    proc = subprocess.run(
        [sys.executable, "-m", "fastbce", "score", "--help"], capture_output=True, text=True
    )
    assert proc.returncode == 0 and "--loss-only" in proc.stdout


# --------------------------------------------------------------------------- in process


def _batches(n, rng, kinds=("a", "b", None, "c")):
    for _ in range(n):
        rows = int(rng.integers(1, 2000))
        x = rng.normal(size=rows).astype(np.float32)
        y = (rng.random(rows) < 0.3).astype(np.float32)
        g = np.array(kinds, dtype=object)[rng.integers(0, len(kinds), rows)]
        yield y, x, rng.uniform(0, 2, rows), g


@pytest.mark.parametrize("nan_policy", ["propagate", "omit"])
def test_loss_sums_equal_the_accumulators_keys(simd_target, nan_policy):
    rng = np.random.default_rng(7)
    options = {"from_logits": True, "nan_policy": nan_policy}
    lean, full = LossSums(**options), fastbce.LossAccumulator(**options)
    halves = [LossSums(**options), LossSums(**options)]
    for i, (y, x, w, g) in enumerate(_batches(12, rng)):
        if nan_policy == "omit":
            x[::97] = np.nan
        lean.update(y, x, w, g)
        full.update(y, x, w, g)
        halves[i % 2].update(y, x, w, g)
    want, got = full.result(), lean.result()
    merged = pickle.loads(pickle.dumps(halves[0])).merge(halves[1]).result()
    assert list(got["groups"]) == list(want["groups"]) == ["a", "b", "c", None]
    for result in (got, merged):
        for scope, ref in [
            (result, want),
            *((result["groups"][k], want["groups"][k]) for k in want["groups"]),
        ]:
            assert set(scope) - {"groups"} == KEYS
            for key in KEYS:
                assert scope[key] == pytest.approx(ref[key], rel=1e-12), key


def test_loss_sums_elementwise_and_errors_leave_it_as_it_was():
    lean = LossSums(from_logits=True)
    y, x = np.array([1.0, 0.0, 1.0]), np.array([0.5, -1.0, 2.0], np.float32)
    loss = lean._update(y, x, None, ["a", "b", "a"], want_elementwise=True)
    np.testing.assert_array_equal(
        loss, fastbce.binary_crossentropy(y, x, from_logits=True, reduction="none")
    )
    before = lean.result()
    with pytest.raises(ValueError, match="y_true must be in"):
        lean.update(np.array([2.0]), np.array([0.1], np.float32), groups=["new"])
    with pytest.raises(ValueError, match="one label per row"):
        lean.update(y, x, groups=["a", "b"])
    assert lean.result() == before and list(before["groups"]) == ["a", "b"]
    empty = LossSums().result()
    assert empty["rows"] == 0 and math.isnan(empty["mean"]) and empty["groups"] == {}
    with pytest.raises(ValueError, match="need the report"):
        LossSums(top_losses=2)
    with pytest.raises(ValueError, match="different options: epsilon"):
        LossSums(epsilon=0.01).merge(LossSums())


def test_many_groups_grow_in_place():
    lean = LossSums(from_logits=True)
    rng = np.random.default_rng(1)
    for start in range(0, 200_000, 50_000):
        codes = np.arange(start, start + 50_000)
        lean.update(
            rng.random(50_000) < 0.5, rng.normal(size=50_000).astype(np.float32), groups=codes
        )
    result = lean.result()
    assert len(result["groups"]) == 200_000 and result["groups"][123_456]["rows"] == 1
    capacity = lean._slicings["groups"].sums.shape[0]
    assert 200_000 <= capacity < 2 * 200_000  # (doubling: at most twice the groups)


@pytest.mark.parametrize("dictionary", [["x", "y"], ["y", "x", "y"], ["z", "z"]])
def test_text_dictionary_keys_seen_another_way_or_repeated(dictionary):
    """New text keys of an Arrow dictionary are added in one step only when they are distinct
    and none is known yet (here "x" came first as a plain Python key); else one by one."""
    from fastbce._groups import GroupIndex

    index = GroupIndex(["x"])
    indices = pa.array(np.arange(len(dictionary), dtype=np.int32))
    codes, table = index.encode_local(pa.DictionaryArray.from_arrays(indices, pa.array(dictionary)))
    assert [index.keys[table[c]] for c in codes] == dictionary
    assert sorted(index.keys) == sorted({"x", *dictionary})
    assert {k: index.find(k) for k in index.keys} == {k: i for i, k in enumerate(index.keys)}
